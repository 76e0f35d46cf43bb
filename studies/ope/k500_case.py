"""OPE at catalogue size: K = 500 actions, 5,000 uniform-random logged rounds, a trained dTS agent as target.

The agent (dTS, linear diffusion prior, d = 5, L = 2, the true prior) learns from 5,000 uniform
rounds; the estimators then read 5,000 other uniform rounds (the target must not depend on the
logs it is evaluated on).

Measures, in one process:
- ``agent_policy`` time: the per-row implementation it replaced (one set of keys per row, copied
  below as ``agent_policy_per_row``) against the vectorised one (dts_ppl.analysis.ope), on the
  same rows, with the mean absolute difference of their probabilities (Monte-Carlo noise only);
- the effective sample size of the weights and the LowEffectiveSampleSize warning;
- IPS / SNIPS (EL and normal intervals) and DR against the true value of the agent's policy
  (E_x sum_a pi(a | x) x^T theta_a on fresh contexts).

    PYTHONPATH=. python studies/ope/k500_case.py [--rows 5000] [--old-rows 5000] [--json PATH]
    -> studies/ope/k500_case.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.agents import dts
from dts_ppl.agents import policy as _policy
from dts_ppl.analysis import ope

OUT = Path(__file__).with_name("k500_case.json")


def agent_policy_per_row(agent, key, state, X, num_samples=1000, mask=None, chunk=100):
    """The implementation before the vectorised draws: one key (and num_samples draws) per row.

    As shipped it vmapped over all rows at once, which at K = 500, 5,000 rows and 1,000 draws
    asks for 40.4 GB in float64 (RESOURCE_EXHAUSTED on this machine); here the same per-row
    computation runs over chunks of ``chunk`` rows (lax.map), so it fits in memory.
    """
    X = jnp.asarray(X)
    n = X.shape[0]
    keys = jax.random.split(key, n)
    one = jax.vmap(lambda k, x: _policy.propensities(agent, k, state, x, num_samples, mask).probs)
    blocks = -(-n // chunk)
    pad = blocks * chunk - n
    Xp = jnp.concatenate([X, jnp.repeat(X[-1:], pad, axis=0)]).reshape((blocks, chunk) + X.shape[1:])
    kp = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)]).reshape((blocks, chunk) + keys.shape[1:])
    probs = jax.jit(lambda k, x: jax.lax.map(lambda a: one(*a), (k, x)))(kp, Xp)
    return np.asarray(probs, dtype=float).reshape(blocks * chunk, -1)[:n]


def problem(seed: int, K: int, d: int, n: int, noise: float):
    """A linear diffusion prior (L = 2), theta_a drawn from it, x ~ U[-1, 1]^d, uniform logging."""
    rng = np.random.default_rng(seed)
    W = [jnp.asarray(rng.uniform(-1, 1, (d, d))), jnp.asarray(rng.uniform(-1, 1, (d, d)))]
    prior = DiffusionPrior.linear(W, [1.0, 1.0, 1.0])
    from dts_ppl.core.sampling import sample_prior

    _, theta = sample_prior(jax.random.PRNGKey(seed), prior, 1, num_actions=K)
    theta = np.asarray(theta[0])
    X = rng.uniform(-1, 1, (n, d))
    A = rng.integers(0, K, n)
    y = np.einsum("nd,nd->n", X, theta[A]) + noise * rng.normal(size=n)
    return prior, theta, X, A, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--old-rows", type=int, default=5000, help="rows timed with the per-row implementation")
    parser.add_argument("--actions", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--truth-contexts", type=int, default=5000)
    parser.add_argument("--json", default=str(OUT), help="output path")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    K, d, n = args.actions, 5, args.rows
    # rows [0, n): the agent's training data; [n, 2n): the logs it is evaluated on (independent of
    # the agent, as OPE requires); the rest: fresh contexts for the true value
    prior, theta, X, A, y = problem(0, K, d, 2 * n + args.truth_contexts, noise=1.0)
    agent = dts(prior, Gaussian(1.0), K)
    state = jax.jit(agent.update_batch)(agent.init(), jnp.asarray(X[:n]), jnp.asarray(A[:n]), jnp.asarray(y[:n]))
    X_fresh = X[2 * n :]
    X, A, y = X[n : 2 * n], A[n : 2 * n], y[n : 2 * n]
    key = jax.random.PRNGKey(1)
    out = {
        "command": "PYTHONPATH=. python studies/ope/k500_case.py "
        f"--rows {n} --old-rows {args.old_rows} --actions {K} --samples {args.samples} --json {args.json}",
        "python": platform.python_version(),
        "jax": jax.__version__,
        "K": K,
        "d": d,
        "rows": n,
        "num_samples": args.samples,
    }

    def timed(fn, *a, **kw):
        start = time.perf_counter()
        value = fn(*a, **kw)
        return value, time.perf_counter() - start

    m = args.old_rows
    old, t_old = timed(agent_policy_per_row, agent, key, state, X[:m], args.samples)
    new_m, t_new_m = timed(ope.agent_policy, agent, key, state, X[:m], args.samples)
    new, t_new = timed(ope.agent_policy, agent, jax.random.PRNGKey(2), state, X, args.samples)
    out["agent_policy"] = {
        "per_row_seconds": t_old,
        "vectorised_seconds_same_rows": t_new_m,
        "rows_timed": m,
        "speedup": t_old / t_new_m,
        "vectorised_seconds_all_rows_second_call": t_new,
        "mean_abs_prob_difference": float(np.mean(np.abs(old - new_m))),
        "mean_abs_prob_difference_two_vectorised_keys": float(np.mean(np.abs(new_m - new[:m]))),
        "note": "times include compilation (each implementation compiles once per shape)",
    }
    # the true value of the agent's (fixed) Thompson policy, on fresh contexts
    pi_fresh = ope.agent_policy(agent, jax.random.PRNGKey(3), state, X_fresh, args.samples)
    means_fresh = X_fresh @ theta.T
    values = np.sum(pi_fresh * means_fresh, axis=1)
    truth = float(values.mean())
    p = np.full(n, 1.0 / K)
    w = new[np.arange(n), A] / p
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ips = ope.ips(A, y, p, new)
    out["warnings"] = [str(c.message) for c in caught if issubclass(c.category, ope.LowEffectiveSampleSize)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ope.LowEffectiveSampleSize)
        q = ope.ridge_reward_model(X, A, y, K, folds=2)
        est = {
            "ips_el": ips,
            "ips_normal": ope.ips(A, y, p, new, interval="normal"),
            "snips_el": ope.snips(A, y, p, new),
            "snips_normal": ope.snips(A, y, p, new, interval="normal"),
            "dr_normal": ope.doubly_robust(A, y, p, new, q),
        }
    out["truth"] = {"value": truth, "mc_se": float(values.std(ddof=1) / np.sqrt(values.size))}
    out["weights"] = {
        "max": float(w.max()),
        "ess": ope.effective_sample_size(w),
        "ess_fraction": ope.effective_sample_size(w) / n,
    }
    out["estimates"] = {
        k: {"value": e.value, "lower": e.lower, "upper": e.upper, "covers_truth": bool(e.lower <= truth <= e.upper)}
        for k, e in est.items()
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
