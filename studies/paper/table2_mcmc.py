"""Table 2 at this machine's scale: regret and wall time per round of dTS vs MCMC Thompson sampling.

python studies/paper/table2_mcmc.py [--runs R] [--rounds N] [--out studies/paper/results/table2-mcmc.json]

Builds the ``table2-mcmc`` preset (K = 20, d = 5, L = 2 linear diffusion, Gaussian rewards;
MCMC-TS = NUTS on the model every 10 rounds, warm-started, "fast" = 10 warm-up transitions and
thinning 1, "slow" = 50 and 3), compiles every agent's simulation first (compile time reported
apart), then times the compiled simulations interleaved in this one process (``--repeats``
rounds of agent 1, agent 2, ...; the minimum is reported). float64. All agents see the same
runs (same keys). Time per round = wall time of one compiled call / rounds (R runs vmapped in
lockstep, so this is the time of one round of R runs).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.bandits.simulation import run_regret
from dts_ppl.experiments.registry import get_preset


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="studies/paper/results/table2-mcmc.json")
    args = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    preset = get_preset("table2-mcmc")
    runs = args.runs or preset.runs
    rounds = args.rounds or preset.rounds
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(args.seed))
    env, agents = preset.build(k_build, rounds)
    keys = jax.vmap(lambda r: jax.random.fold_in(k_sim, r))(jnp.arange(runs))
    compiled, compile_s = {}, {}
    for name, agent in agents.items():
        t = time.perf_counter()
        fn = jax.jit(jax.vmap(lambda k, a=agent: jnp.cumsum(run_regret(k, env, a, rounds))))
        compiled[name] = fn.lower(keys).compile()
        compile_s[name] = time.perf_counter() - t
        print(f"compiled {name} in {compile_s[name]:.1f} s", flush=True)
    walls = {n: [] for n in agents}
    regret = {}
    for rep in range(args.repeats):
        for name, fn in compiled.items():
            t = time.perf_counter()
            out = np.asarray(jax.block_until_ready(fn(keys)))
            walls[name].append(time.perf_counter() - t)
            regret[name] = out[:, -1]
            print(f"rep {rep} {name}: {walls[name][-1]:.2f} s", flush=True)
    ref = min(walls["dTS"])
    result = {
        "preset": "table2-mcmc",
        "runs": runs,
        "rounds": rounds,
        "seed": args.seed,
        "repeats": args.repeats,
        "agents": {},
    }
    print(
        f"| agent | regret at n={rounds} (mean ± s.e., {runs} runs) | ms per round ({runs} runs in lockstep) | time / dTS | compile s |"  # noqa: E501
    )
    print("|---|---|---|---|---|")
    for name in agents:
        r = regret[name]
        w = min(walls[name])
        result["agents"][name] = {
            "final_regret_mean": float(r.mean()),
            "final_regret_se": float(r.std(ddof=1) / np.sqrt(runs)),
            "seconds_min": w,
            "seconds_all": walls[name],
            "ms_per_round": 1e3 * w / rounds,
            "time_ratio_to_dTS": w / ref,
            "compile_seconds": compile_s[name],
        }
        a = result["agents"][name]
        print(
            f"| {name} | {a['final_regret_mean']:.1f} ± {a['final_regret_se']:.1f} | {a['ms_per_round']:.2f} | "
            f"{a['time_ratio_to_dTS']:.1f} | {a['compile_seconds']:.0f} |"
        )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
