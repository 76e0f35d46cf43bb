"""Empirical Bayes on data from a known linear chain: does fit_hyperparameters find sigma and S_1?

The chain is the paper's linear prior of fig1-lindiff-lin-k100 (K = 100, d = 5, L = 2; W_l ~
U[-1, 1] with zeroed columns, latent covariances I) with S_1 = 0.3^2 I; rewards
y = x^T theta_A + N(0, 0.5^2) at n = 2000 contexts x ~ N(0, I_5) and uniform actions. Each seed
draws a new chain, theta and data; the fit starts from sigma = 1 and S_1 = I (the presets'
values) and fits ("noise_scale", "action_cov") with the default optimiser (L-BFGS).

Run (about a minute on one core):
    python studies/open_model/empirical_bayes.py [--seeds 20] [--out studies/open_model/empirical_bayes.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from dts_ppl import Gaussian, fit_hyperparameters  # noqa: E402
from dts_ppl.core.evidence import log_marginal_likelihood  # noqa: E402
from dts_ppl.core.sampling import sample_prior  # noqa: E402
from dts_ppl.experiments.synthetic import paper_prior  # noqa: E402

K, D, ACTIVE, N = 100, 5, (5, 2), 2000
TRUE_SIGMA, TRUE_S1_SCALE = 0.5, 0.3


def one(seed: int) -> dict:
    k_prior, k_theta, k_x, k_a, k_y = jax.random.split(jax.random.PRNGKey(seed), 5)
    start = paper_prior(k_prior, "linear", D, ACTIVE, hidden=20)  # S_1 = I: where the fit starts
    truth = start._replace(cov1=TRUE_S1_SCALE**2 * jnp.eye(D))
    theta = sample_prior(k_theta, truth, 1, K)[1][0]
    X = jax.random.normal(k_x, (N, D))
    A = jax.random.randint(k_a, (N,), 0, K)
    y = jnp.sum(X * theta[A], -1) + TRUE_SIGMA * jax.random.normal(k_y, (N,))
    t0 = time.perf_counter()
    out = fit_hyperparameters(start, Gaussian(1.0), X, A, y, fit=("noise_scale", "action_cov"), num_actions=K)
    wall = time.perf_counter() - t0
    at_truth = float(log_marginal_likelihood(truth, Gaussian(TRUE_SIGMA), X, A, y, K))
    return {
        "seed": seed,
        "noise_scale": out.values["noise_scale"],
        "action_scale": out.values["action_scale"],
        "log_evidence_start": float(out.log_evidence[0]),
        "log_evidence_fitted": float(out.log_evidence[-1]),
        "log_evidence_at_truth": at_truth,
        "grad_norm": out.grad_norm,
        "at_bound": list(out.at_bound),
        "wall_s": wall,
    }


def summary(runs: list, key: str, truth: float) -> dict:
    v = np.array([r[key] for r in runs])
    rel = v / truth - 1.0
    return {
        "truth": truth,
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)),
        "min": float(v.min()),
        "max": float(v.max()),
        "mean_relative_error": float(rel.mean()),
        "mean_abs_relative_error": float(np.abs(rel).mean()),
        "max_abs_relative_error": float(np.abs(rel).max()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "empirical_bayes.json"))
    args = ap.parse_args()
    runs = [one(s) for s in range(args.seeds)]
    for r in runs:
        print(
            f"seed {r['seed']:>2}: sigma {r['noise_scale']:.4f}  S_1 scale {r['action_scale']:.4f}"
            f"  ({r['wall_s']:.1f} s)"
        )
    result = {
        "command": "python studies/open_model/empirical_bayes.py --seeds " + str(args.seeds),
        "setup": {
            "K": K,
            "d": D,
            "L": len(ACTIVE),
            "n": N,
            "true_sigma": TRUE_SIGMA,
            "true_S1_scale": TRUE_S1_SCALE,
            "start": {"sigma": 1.0, "S1_scale": 1.0},
            "fit": ["noise_scale", "action_cov"],
            "optimiser": "optax.lbfgs, 100 steps",
        },
        "noise_scale": summary(runs, "noise_scale", TRUE_SIGMA),
        "action_scale": summary(runs, "action_scale", TRUE_S1_SCALE),
        "fitted_minus_truth_log_evidence_min": min(r["log_evidence_fitted"] - r["log_evidence_at_truth"] for r in runs),
        "runs": runs,
        "machine": platform.processor() or platform.machine(),
    }
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: result[k] for k in ("noise_scale", "action_scale")}, indent=2))


if __name__ == "__main__":
    main()
