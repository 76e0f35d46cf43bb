"""Per-round time and peak memory of dTS and LinTS as the catalogue grows (K = 10^3 .. 10^6).

For each K (d = 20, L = 4, float32) three jitted blocks of ``--rounds`` rounds run interleaved on
donated states, ``--pairs`` times: dTS, LinTS, and the memory floor (one pass over a K x d x d
array per round: the score pass v_a = Shat_a x that any per-action Thompson sampler needs).
Peak memory is XLA's own account of the compiled dTS block (arguments + outputs - aliased +
temporaries), against the bytes of the state's arrays.

    PYTHONPATH=. python studies/performance/scaling.py --K 1000,10000,100000,1000000 --json studies/performance/results/scaling.json
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import Gaussian
from dts_ppl.agents import dts, lin_ts, theta_marginal
from studies.common import block_runner, save_json, timing_prior


def floor_runner(K, d, rounds):
    """One read of a (K, d, d) array per round (the score pass), carried so XLA cannot hoist it."""

    def step(carry, key):
        cov, acc = carry
        x = jax.random.uniform(key, (d,), minval=-1.0, maxval=1.0)
        v = jnp.einsum("kij,j->ki", cov, x)
        return (cov, acc + jnp.argmax(v @ x)), None

    run = jax.jit(lambda c, key: jax.lax.scan(step, c, jax.random.split(key, rounds))[0], donate_argnums=(0,))
    init = (jnp.broadcast_to(jnp.eye(d, dtype=jnp.float32), (K, d, d)) + 0.0, jnp.zeros((), jnp.int32))
    return run, init


def memory(agent, K, d, rounds):
    """(peak bytes of the compiled block, bytes of the state's arrays)."""
    state = agent.init()
    compiled = block_runner(agent, K, d, rounds, donate=True).lower(state, jax.random.PRNGKey(0)).compile()
    m = compiled.memory_analysis()
    peak = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    return int(peak), int(state_bytes), int(m.temp_size_in_bytes)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--K", default="1000,10000,100000,1000000")
    p.add_argument("--d", type=int, default=20)
    p.add_argument("--L", type=int, default=4)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    d, L = args.d, args.L
    prior = timing_prior(jax.random.PRNGKey(0), d, L)
    rows = []
    for K in (int(k) for k in args.K.split(",")):
        # fewer rounds per block and fewer pairs once a round costs tens of ms (K d^2 >= 4e7 floats)
        rounds = max(5, min(args.rounds, int(2e9 / (K * d * d))))
        pairs = args.pairs if K * d * d < 4e7 else max(3, args.pairs // 2)
        agents = {"dTS": dts(prior, Gaussian(1.0), K), "LinTS": lin_ts(theta_marginal(prior), Gaussian(1.0), K)}
        runs = {n: block_runner(a, K, d, rounds, donate=True) for n, a in agents.items()}
        states = {n: jax.block_until_ready(runs[n](a.init(), jax.random.PRNGKey(0))) for n, a in agents.items()}
        runs["floor"], states["floor"] = floor_runner(K, d, rounds)
        states["floor"] = jax.block_until_ready(runs["floor"](states["floor"], jax.random.PRNGKey(0)))
        times = {n: [] for n in runs}
        for b in range(pairs):
            for n in runs:
                start = time.perf_counter()
                states[n] = jax.block_until_ready(runs[n](states[n], jax.random.PRNGKey(b + 1)))
                times[n].append((time.perf_counter() - start) / rounds)
        med = {n: float(np.median(t)) for n, t in times.items()}
        ratio_floor = float(np.median(np.array(times["dTS"]) / np.array(times["floor"])))
        ratio_lints = float(np.median(np.array(times["dTS"]) / np.array(times["LinTS"])))
        del states
        peak, state_bytes, temp = memory(agents["dTS"], K, d, rounds)
        row = dict(
            rounds_per_block=rounds,
            pairs=pairs,
            K=K,
            d=d,
            L=L,
            us_per_round={n: 1e6 * v for n, v in med.items()},
            dts_over_floor=ratio_floor,
            dts_over_lints=ratio_lints,
            peak_bytes=peak,
            state_bytes=state_bytes,
            temp_bytes=temp,
            peak_over_state=peak / state_bytes,
        )
        rows.append(row)
        print(
            f"K={K:8d}  dTS {1e6 * med['dTS']:10.1f} us  LinTS {1e6 * med['LinTS']:10.1f} us  floor "
            f"{1e6 * med['floor']:10.1f} us  dTS/floor {ratio_floor:5.2f}  dTS/LinTS {ratio_lints:5.2f}  "
            f"peak/state {peak / state_bytes:5.2f} ({peak / 2**20:.0f} MiB)",
            flush=True,
        )
    if args.json:
        save_json(
            args.json, dict(dtype="float32", device=str(jax.devices()[0]), load_average=os.getloadavg(), rows=rows)
        )


if __name__ == "__main__":
    main()
