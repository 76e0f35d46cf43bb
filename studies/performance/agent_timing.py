"""Per-round time (act + update) of dTS and LinTS, and its flatness in t.

For each (K, d, L) dTS, LinTS and the naive dTS (the batch closed form recomputed every round,
O((L + K) d^3): :func:`naive_dts`) run `--rounds` rounds of a Gaussian linear-diffusion bandit inside
one jitted lax.scan (one run, float32 unless --x64); the time per round is the wall time of a
compiled block of rounds divided by its length, best of `--repeats` blocks, so compilation is
excluded. Flatness: the same compiled block is run `--blocks` times back to back on the carried
state (t grows from 0 to blocks * rounds) and each block's time is reported.

    PYTHONPATH=. python studies/performance/agent_timing.py --json studies/performance/results/agent_timing.json
    PYTHONPATH=. python studies/performance/agent_timing.py --paired 40 --rounds 100 --json studies/performance/results/agent_timing_paired.json

``--paired N`` times only the ``--flat`` configuration: N interleaved dTS/LinTS block pairs on
donated states (and dTS with the full chain in its state, ``collapse=False``, when L > 1), and
reports the median and quartiles of the per-pair ratio:

    PYTHONPATH=. python studies/performance/agent_timing.py --paired 20 --rounds 200 --flat 100,20,40 --json studies/performance/results/agent_timing_paired_k100_d20_l40.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import jax
import numpy as np

from dts_ppl import Gaussian, core
from dts_ppl.agents import Agent, AgentSpec, dts, lin_ts, theta_marginal
from dts_ppl.agents.base import ActInfo
from studies.common import block_runner, save_json, timing_prior


def naive_dts(prior, K):
    """dTS without the incremental scheme: each round recomputes every action's posterior and the
    chain from the statistics with the core's batch closed form (core.posterior), O((L + K) d^3);
    the reference the incremental agent is timed against. Statistics are the Gaussian
    likelihood's own evidence (``Gaussian.add_observation``)."""
    d, likelihood = prior.dim, Gaussian(1.0)

    def init():
        return likelihood.init_evidence(K, d, 0, prior.cov1.dtype)

    def act(key, ev, x):
        _, theta = core.sample(key, prior, core.posterior(prior, ev.stats))
        scores = theta @ x
        return jax.numpy.argmax(scores), ActInfo(scores)

    def update(ev, x, a, r):
        return likelihood.add_observation(ev, x, a, r, 0)[0]

    return Agent(init, act, update, None, AgentSpec("naive_dts", K, d, prior.num_levels, False, "gaussian"))


def time_blocks(agent, K, d, rounds, blocks):
    run = block_runner(agent, K, d, rounds)
    state = jax.block_until_ready(run(agent.init(), jax.random.PRNGKey(0)))  # compile + warm up
    times = []
    for b in range(blocks):
        start = time.perf_counter()
        state = jax.block_until_ready(run(state, jax.random.PRNGKey(b + 1)))
        times.append((time.perf_counter() - start) / rounds)
    return times


def paired_blocks(agents, K, d, rounds, pairs):
    """Blocks of the agents interleaved (A, B, A, B, ...) on donated, carried states, so both see
    the same machine load; returns {name: [seconds per round, per block]}."""
    runs = {n: block_runner(a, K, d, rounds, donate=True) for n, a in agents.items()}
    states = {n: jax.block_until_ready(runs[n](a.init(), jax.random.PRNGKey(0))) for n, a in agents.items()}
    times = {n: [] for n in agents}
    for b in range(pairs):
        for n in agents:
            start = time.perf_counter()
            states[n] = jax.block_until_ready(runs[n](states[n], jax.random.PRNGKey(b + 1)))
            times[n].append((time.perf_counter() - start) / rounds)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--K", default="100,1000,10000")
    p.add_argument("--d", default="5,20")
    p.add_argument("--L", default="2,4,40")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--flat", default="10000,20,4", help="K,d,L of the flatness check")
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--x64", action="store_true")
    p.add_argument(
        "--paired",
        type=int,
        default=0,
        help="only time the --flat configuration: this many interleaved dTS/LinTS block pairs (donated state)",
    )
    p.add_argument("--naive-max-K", type=int, default=10000, help="time the naive dTS up to this K")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    jax.config.update("jax_enable_x64", args.x64)
    Ks, ds, Ls = ([int(v) for v in s.split(",")] for s in (args.K, args.d, args.L))
    if args.paired:
        K, d, L = (int(v) for v in args.flat.split(","))
        prior = timing_prior(jax.random.PRNGKey(0), d, L)
        agents = {"dTS": dts(prior, Gaussian(1.0), K), "LinTS": lin_ts(theta_marginal(prior), Gaussian(1.0), K)}
        if L > 1:  # the full L-level chain in the state (collapse=False), as before collapse_linear
            agents["dTS full chain"] = dts(prior, Gaussian(1.0), K, collapse=False)
        times = paired_blocks(agents, K, d, args.rounds, args.paired)
        ratios = np.array(times["dTS"]) / np.array(times["LinTS"])
        q = np.percentile(ratios, [25, 50, 75])
        med = {n: 1e6 * float(np.median(t)) for n, t in times.items()}
        print(f"K={K} d={d} L={L}, {args.paired} interleaved block groups of {args.rounds} rounds:")
        print("  median us/round " + ", ".join(f"{n} {v:.0f}" for n, v in med.items()))
        print(f"  dTS/LinTS per pair: median {q[1]:.2f} (quartiles {q[0]:.2f}-{q[2]:.2f}), min {ratios.min():.2f}")
        full_ratio = None
        if "dTS full chain" in times:
            full_ratio = float(np.median(np.array(times["dTS full chain"]) / np.array(times["LinTS"])))
            print(f"  dTS full chain/LinTS per pair: median {full_ratio:.2f}")
        for n, t in times.items():
            print(f"  {n} per block: " + ", ".join(f"{1e6 * v:.0f}" for v in t))
        if args.json:
            out = dict(
                rounds_per_block=args.rounds,
                dtype="float64" if args.x64 else "float32",
                device=str(jax.devices()[0]),
                load_average=os.getloadavg(),
                paired=dict(K=K, d=d, L=L, us_per_round={n: [1e6 * v for v in t] for n, t in times.items()}),
                ratio_median=float(q[1]),
                ratio_quartiles=[float(q[0]), float(q[2])],
                full_chain_ratio_median=full_ratio,
            )
            save_json(args.json, out)
        return
    rows = []
    lints_cache = {}
    for K, d, L in itertools.product(Ks, ds, Ls):
        prior = timing_prior(jax.random.PRNGKey(0), d, L)
        t_dts = min(time_blocks(dts(prior, Gaussian(1.0), K), K, d, args.rounds, args.repeats))
        if (K, d) not in lints_cache:  # LinTS does not depend on L
            agent = lin_ts(theta_marginal(prior), Gaussian(1.0), K)
            lints_cache[K, d] = min(time_blocks(agent, K, d, args.rounds, args.repeats))
        t_lin = lints_cache[K, d]
        t_naive = None
        if K <= args.naive_max_K:
            t_naive = min(time_blocks(naive_dts(prior, K), K, d, max(args.rounds // 10, 10), args.repeats))
        row = dict(K=K, d=d, L=L, dts_us=1e6 * t_dts, lints_us=1e6 * t_lin, ratio=t_dts / t_lin)
        row["naive_us"] = None if t_naive is None else 1e6 * t_naive
        rows.append(row)
        us = f"dTS {1e6 * t_dts:9.1f} us  LinTS {1e6 * t_lin:9.1f} us  ratio {t_dts / t_lin:5.2f}"
        if t_naive is not None:
            us += f"  naive dTS {1e6 * t_naive:9.1f} us"
        print(f"K={K:6d} d={d:3d} L={L:3d}  {us}", flush=True)
    K, d, L = (int(v) for v in args.flat.split(","))
    prior = timing_prior(jax.random.PRNGKey(0), d, L)
    flat = {
        "dTS": time_blocks(dts(prior, Gaussian(1.0), K), K, d, args.rounds, args.blocks),
        "LinTS": time_blocks(lin_ts(theta_marginal(prior), Gaussian(1.0), K), K, d, args.rounds, args.blocks),
    }
    for name, ts in flat.items():
        us = ", ".join(f"{1e6 * t:.0f}" for t in ts)
        print(f"flatness K={K} d={d} L={L} {name}: us/round per block of {args.rounds} rounds: {us}")
    if args.json:
        out = dict(
            rounds_per_block=args.rounds,
            dtype="float64" if args.x64 else "float32",
            device=str(jax.devices()[0]),
            load_average=os.getloadavg(),
            repeats=args.repeats,
            grid=rows,
            flatness=dict(K=K, d=d, L=L, us_per_round={n: [1e6 * t for t in ts] for n, ts in flat.items()}),
        )
        save_json(args.json, out)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
