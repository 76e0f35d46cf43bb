"""Regret of dTS with the calibrated DDPM prior against LinTS with the Gaussian fitted to the same samples.

    PYTHONPATH=. python studies/realdata/calibrated_prior.py [--runs 30] [--rounds 1000] [--actions 50]

Data: a non-Gaussian 2-d ring of 8 Gaussian clusters (radius 2, sd 0.15; the ring of issue 14).
A DDPM prior is trained on 3000 ring points (L = 20, hidden 64, 3000 Adam steps, key 0) with the
default S_1 rule ("marginal": the prior's theta marginal covariance matches the data's); the
old default S_1 = I (standardised units, ``action_cov=1.0``) is the same network with its S_1
replaced by ``dts_ppl.ddpm.with_action_cov`` (no retraining), so the two dTS agents differ
only in S_1. LinTS gets ``GaussianPrior.fit`` of the same 3000 points.

Environment, built from FIXED arrays with ``Environment`` directly: a pool of 2000 held-out ring
points (another seed); each run draws K of them without replacement as theta_1..theta_K;
contexts U[-1, 1]^2; rewards N(x^T theta_a, 1). All agents see the same runs (common random
numbers), so the ratios are paired (``regret_ratio``, delta-method s.e.).

``--shared``: ONE theta per run drawn from the pool, K feature vectors x_a ~ U[-1, 1]^2 per round
(the shared-parameter variant, where the prior of theta is exactly what S_1 calibrates).

Writes studies/realdata/results/calibrated_prior[_TAG].json and .png.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import GaussianPrior, sample_prior, train_diffusion_prior, with_action_cov
from dts_ppl.agents import dts, lin_ts
from dts_ppl.bandits.envs import Environment, uniform_contexts
from dts_ppl.bandits.simulation import plot_regret, regret_ratio, simulate
from dts_ppl.core.likelihoods import Gaussian

jax.config.update("jax_enable_x64", True)
OUT = Path(__file__).parent / "results"


def ring(num_samples, seed, num_clusters=8, radius=2.0, sd=0.15):
    """(num_samples, 2) points of a ring of Gaussian clusters."""
    rng = np.random.default_rng(seed)
    ang = 2 * np.pi * rng.integers(0, num_clusters, num_samples) / num_clusters
    return radius * np.stack([np.cos(ang), np.sin(ang)], 1) + sd * rng.normal(size=(num_samples, 2))


def pool_environment(pool, num_actions, noise, shared=False):
    """theta_1..theta_K drawn without replacement from a fixed (P, d) pool per run; x ~ U[-1, 1]^d.

    With ``shared``: ONE theta (d,) drawn from the pool per run, and K action feature vectors
    x_a ~ U[-1, 1]^d per round.
    """
    pool = jnp.asarray(pool)
    dim = pool.shape[1]

    def sample_theta(key):
        if shared:
            return pool[jax.random.randint(key, (), 0, pool.shape[0])]
        return pool[jax.random.choice(key, pool.shape[0], (num_actions,), replace=False)]

    kind = "one shared theta" if shared else f"K={num_actions} thetas"
    name = f"ring pool ({pool.shape[0]} held-out points), {kind}, K={num_actions}, Gaussian rewards (sd {noise})"
    contexts = uniform_contexts(dim, num_actions if shared else None)
    return Environment(sample_theta, contexts, Gaussian(noise), num_actions, dim, shared, name)


def marginal_error(prior, data, key, num_draws=40_000):
    _, theta = sample_prior(key, prior, num_draws)
    c, ref = np.cov(np.asarray(theta[:, 0]).T), np.cov(data.T)
    return float(np.linalg.norm(c - ref) / np.linalg.norm(ref)), c.tolist()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--actions", type=int, default=50)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--linearisation", default="identity")
    p.add_argument("--shared", action="store_true", help="one theta per run, K feature vectors per round")
    p.add_argument("--tag", default="")
    a = p.parse_args()

    train, pool = ring(3000, seed=0), ring(2000, seed=1)
    t0 = time.time()
    tr = train_diffusion_prior(train, num_levels=20, hidden=64, steps=3000, key=jax.random.PRNGKey(0), progress=False)
    train_s = time.time() - t0
    calibrated = tr.prior
    old, _ = with_action_cov(tr.prior, tr.metadata, 1.0)
    gauss = GaussianPrior.fit(train)
    lik = Gaussian(a.noise)
    K = a.actions
    agents = {
        "dTS (calibrated S_1)": dts(calibrated, lik, K, linearisation=a.linearisation, shared=a.shared),
        "dTS (old action_cov=1.0)": dts(old, lik, K, linearisation=a.linearisation, shared=a.shared),
        "LinTS (GaussianPrior.fit)": lin_ts(gauss, lik, K, shared=a.shared),
    }
    env = pool_environment(pool, K, a.noise, a.shared)
    key = jax.random.PRNGKey(2026)
    results, seconds = {}, {}
    for name, agent in agents.items():
        res = simulate(key, env, agent, a.rounds, a.runs, progress=False)
        results[name], seconds[name] = res, res.seconds
        print(f"{name}: {res.final_mean:.1f} +- {res.final_se:.1f} ({res.seconds:.0f} s)", flush=True)
    lints = results["LinTS (GaussianPrior.fit)"]
    ratios = {}
    for name in ("dTS (calibrated S_1)", "dTS (old action_cov=1.0)"):
        r, se = regret_ratio(lints, results[name])
        wins = int(np.sum(results[name].cumulative[:, -1] < lints.cumulative[:, -1]))
        ratios[name] = dict(ratio_LinTS_over_dTS=r, se=se, dTS_below_LinTS_runs=wins)
        print(f"LinTS / {name}: {r:.3f} +- {se:.3f}; dTS below LinTS in {wins}/{a.runs} runs", flush=True)
    r, se = regret_ratio(results["dTS (old action_cov=1.0)"], results["dTS (calibrated S_1)"])
    ratios["old / calibrated"] = dict(ratio=r, se=se)
    print(f"dTS old / dTS calibrated: {r:.3f} +- {se:.3f}", flush=True)
    k_err = jax.random.PRNGKey(99)
    cal_err, cal_cov = marginal_error(calibrated, train, k_err)
    old_err, old_cov = marginal_error(old, train, k_err)
    out = dict(
        command="PYTHONPATH=. python studies/realdata/calibrated_prior.py "
        f"--runs {a.runs} --rounds {a.rounds} --actions {K} --noise {a.noise} --linearisation {a.linearisation}"
        + (" --shared" if a.shared else "")
        + (f" --tag {a.tag}" if a.tag else ""),
        data="ring of 8 Gaussian clusters, radius 2, sd 0.15; 3000 training points (seed 0), "
        "pool of 2000 held-out (seed 1)",
        training=dict(
            num_levels=20, hidden=64, steps=3000, key=0, seconds=train_s, final_loss=tr.metadata["final_loss"]
        ),
        S_1=dict(
            calibrated=np.asarray(calibrated.cov1).tolist(),
            old=np.asarray(old.cov1).tolist(),
            rule=tr.metadata["action_cov_rule"],
        ),
        data_cov=np.cov(train.T).tolist(),
        theta_marginal_cov=dict(calibrated=cal_cov, old=old_cov),
        theta_marginal_relative_frobenius_error=dict(calibrated=cal_err, old=old_err),
        environment=env.name,
        num_actions=K,
        num_rounds=a.rounds,
        num_runs=a.runs,
        noise=a.noise,
        linearisation=a.linearisation,
        shared=a.shared,
        seed=2026,
        final_regret={n: dict(mean=r.final_mean, se=r.final_se) for n, r in results.items()},
        ratios=ratios,
        simulate_seconds=seconds,
    )
    stem = "calibrated_prior" + (f"_{a.tag}" if a.tag else "")
    (OUT / f"{stem}.json").write_text(json.dumps(out, indent=1))
    kind = "shared theta" if a.shared else "per-action theta"
    plot_regret(results, OUT / f"{stem}.png", title=f"ring pool, {kind}, K={K}, {a.linearisation}")
    print(json.dumps(out["theta_marginal_relative_frobenius_error"]), flush=True)


if __name__ == "__main__":
    main()
