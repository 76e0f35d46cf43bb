"""Simulation throughput: runs x rounds per second of `dts_ppl.simulate` (vmap over runs, scan over rounds).

For each configuration (K, d, L, runs) the simulator is compiled once (one untimed call), then
timed over ``--repeats`` calls with fresh keys (best of them); throughput = runs * rounds / s.
Linear-diffusion Gaussian bandit (agent_timing.timing_prior), float32, dTS (default options) and LinTS.

    PYTHONPATH=. python studies/performance/throughput.py --json studies/performance/results/throughput.json
"""

from __future__ import annotations

import argparse
import os

import jax

from dts_ppl import Gaussian, simulate
from dts_ppl.agents import dts, lin_ts, theta_marginal
from dts_ppl.bandits.envs import diffusion_environment
from studies.common import save_json, timing_prior

CONFIGS = [(100, 5, 2, 50), (100, 20, 4, 50), (100, 5, 40, 50), (1000, 20, 4, 10)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for K, d, L, runs in CONFIGS:
        prior = timing_prior(jax.random.PRNGKey(0), d, L)
        env = diffusion_environment(prior, K, Gaussian(1.0))
        agents = {"dTS": dts(prior, Gaussian(1.0), K), "LinTS": lin_ts(theta_marginal(prior), Gaussian(1.0), K)}
        for name, agent in agents.items():
            first = simulate(jax.random.PRNGKey(0), env, agent, args.rounds, runs, progress=False).seconds
            best = min(
                simulate(jax.random.PRNGKey(r + 1), env, agent, args.rounds, runs, progress=False).seconds
                for r in range(args.repeats)
            )
            row = dict(
                agent=name,
                K=K,
                d=d,
                L=L,
                runs=runs,
                rounds=args.rounds,
                seconds=best,
                first_call_seconds=first,
                run_rounds_per_s=runs * args.rounds / best,
            )
            rows.append(row)
            print(
                f"K={K:5d} d={d:3d} L={L:3d} runs={runs:3d} {name:6s}: {row['run_rounds_per_s']:10.0f} "
                f"run-rounds/s (first call, with compilation: {first:.1f} s)",
                flush=True,
            )
    if args.json:
        save_json(
            args.json, dict(dtype="float32", device=str(jax.devices()[0]), load_average=os.getloadavg(), rows=rows)
        )


if __name__ == "__main__":
    main()
