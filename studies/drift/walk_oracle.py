"""The random walk's ceiling: Thompson sampling on the exact posterior of the walk (it knows the walk).

The oracle agent is Thompson sampling on dts_ppl.core.walk_filter: the Kalman filter over
(u, e_1, ..., e_K) for the environment's random walk with its true step size 1 / sqrt(tau),
the exact posterior of the theta path (tests/core/test_walk_filter.py). Each round it draws every
action's mean reward x^T theta_a jointly from that posterior (mean (K,), covariance (K, K)) and
plays the argmax. No forgetting rule can use more than this posterior does: its regret against
undiscounted dTS's is the most that forgetting could gain on the walk.

The runs are those of studies/drift/forgetting.py (same problem, seed, keys: run r sees the same
theta path, contexts and noise), so the oracle is paired with the no-discount and discounted rows
of studies/drift/results/forgetting*.json, read from there.

``--variant`` runs a filter that is told a wrong walk, to see which part of the exact posterior
the gain comes from: ``shared-fixed`` believes the shared part u = f_1(psi_1) does not move (only
each action's own part e_a walks), ``own-fixed`` believes the e_a do not move (only u walks).

    PYTHONPATH=. python studies/drift/walk_oracle.py
"""

from __future__ import annotations

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.base import Agent
from dts_ppl.bandits.envs import drift_process
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.core import walk_filter
from studies.common import results_dir, save_json
from studies.drift.forgetting import CURVE_EVERY, NOISE, K, problem

JITTER = 1e-6  # relative to the scores' mean variance, for the float32 Cholesky


VARIANTS = {"exact": (1.0, 1.0), "shared-fixed": (1.0, 0.0), "own-fixed": (0.0, 1.0)}  # (e_a, u) step factors


def walk_oracle(prior, scale, shared_scale) -> Agent:
    """Thompson sampling on the filter of a walk with steps ``scale`` (e_a) and ``shared_scale`` (u), traced."""
    dtype = prior.cov1.dtype
    model = walk_filter.walk_model(prior, 0.0, NOISE**2, 0.0)
    model = model._replace(scale=jnp.asarray(scale, dtype), shared_scale=jnp.asarray(shared_scale, dtype))

    def init():
        return walk_filter.walk_init(model, K)

    def act(key, state, x):
        mean, cov = walk_filter.walk_scores(state, x)
        cov = cov + JITTER * jnp.trace(cov) / K * jnp.eye(K, dtype=cov.dtype)
        draw = mean + jnp.linalg.cholesky(cov) @ jax.random.normal(key, (K,), mean.dtype)
        return jnp.argmax(draw), draw

    def update(state, x, action, reward):
        return walk_filter.walk_observe(model, state, x, action, reward)

    return Agent(init, act, update)


def run_cells(env, prior, taus: list[int], runs: int, rounds: int, seed: int, variant: str) -> np.ndarray:
    """(len(taus), runs, rounds) cumulative regret of the oracle, one compiled vmap over (tau, run)."""
    base = jax.random.PRNGKey(seed + 1)
    scale = jnp.asarray([1.0 / math.sqrt(t) for t in taus], jnp.float32)
    own, shared = VARIANTS[variant]

    def one(s, run):
        walk = drift_process(env, s, jnp.asarray(0, jnp.int32))
        agent = walk_oracle(prior, own * s, shared * s)
        return jnp.cumsum(run_regret(jax.random.fold_in(base, run), walk, agent, rounds))

    c_idx, r_idx = np.meshgrid(np.arange(len(taus)), np.arange(runs), indexing="ij")
    out = jax.jit(jax.vmap(one))(scale[c_idx.ravel()], jnp.asarray(r_idx.ravel()))
    return np.asarray(out).reshape(len(taus), runs, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taus", default="1000", help="walk time scales, comma-separated")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--variant", default="exact", choices=sorted(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(results_dir("drift") / "walk-oracle.json"))
    args = parser.parse_args()
    taus = [int(t) for t in args.taus.split(",") if t]
    env, prior = problem(args.seed)
    try:
        with open(args.json) as f:
            out = json.load(f)
    except OSError:
        out = {}
    out.setdefault("cells", {})
    command = f"PYTHONPATH=. python studies/drift/walk_oracle.py --taus {args.taus} --runs {args.runs}"
    if args.variant != "exact":
        command += f" --variant {args.variant}"
    if args.json != str(results_dir("drift") / "walk-oracle.json"):
        command += f" --json studies/drift/results/{args.json.rsplit('/', 1)[-1]}"
    start = time.perf_counter()
    cum = run_cells(env, prior, taus, args.runs, args.rounds, args.seed, args.variant)
    seconds = time.perf_counter() - start
    for tau, c in zip(taus, cum, strict=True):
        name = f"walk-{tau}" if args.variant == "exact" else f"walk-{tau}/{args.variant}"
        out["cells"][name] = dict(
            env=f"walk-{tau}",
            variant=args.variant,
            tau=tau,
            runs=args.runs,
            rounds=args.rounds,
            seed=args.seed,
            seconds=seconds,
            command=command,
            final=c[:, -1].tolist(),
            curve_rounds=list(range(CURVE_EVERY, args.rounds + 1, CURVE_EVERY)),
            curve_mean=c[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
        )
        print(f"{name} oracle: {c[:, -1].mean():.0f} +- {c[:, -1].std(ddof=1) / math.sqrt(len(c)):.0f}", flush=True)
    save_json(args.json, out)
    print(f"{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
