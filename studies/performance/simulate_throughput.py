"""``simulate`` throughput (run-rounds per second) on a Swiss-roll preset: dTS with the fast chain,
dTS with the chain before it (A/B), LinTS, and the chain draws alone (one draw per run and round,
vmapped the same way: dTS's floor), interleaved, float32.

Each agent's runs go through the function ``simulate`` compiles (``jit(vmap(run_regret))``), built
once per agent and called on fresh keys, so the rate excludes compilation; the compile time (first
call) is reported beside it, and one end-to-end ``simulate`` call per agent (compilation included).

    python studies/performance/simulate_throughput.py                      # results/simulate_throughput_<backend>.json
    python studies/performance/simulate_throughput.py --runs 1000 --rounds 200
    python studies/performance/simulate_throughput.py --quick
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from dts_ppl.bandits.simulation import run_regret, simulate  # noqa: E402
from dts_ppl.core import inference as core  # noqa: E402
from dts_ppl.experiments.swissroll import STUDY, swissroll_agents, swissroll_environment  # noqa: E402
from studies.performance.common import (  # noqa: E402
    RESULTS,
    device,
    interleaved,
    ratio_summary,
    reference_chain,
    save_json,
    summary,
    swissroll_prior,
    use_clock,
)

PRESET = "swissroll-pretrain-10000"  # the shipped prior's preset (N = 10^4, L = 40)


def runs_fn(env, agent, runs: int, rounds: int):
    """(f, compile_s): f() runs ``runs`` runs of ``rounds`` rounds through simulate's compiled function."""
    fn = jax.jit(jax.vmap(lambda k: jnp.cumsum(run_regret(k, env, agent, rounds))))
    box = {"i": 0}

    def f():
        box["i"] += 1
        keys = jax.random.split(jax.random.PRNGKey(box["i"]), runs)
        return fn(keys)

    start = time.perf_counter()
    jax.block_until_ready(f())
    return f, time.perf_counter() - start


def draws_fn(prior, runs: int, rounds: int):
    """(f, compile_s): f() draws the whole chain once per round for ``runs`` runs of ``rounds``
    rounds, vmapped like ``simulate``: the chain's own cost, the floor of a dTS round."""
    post = core.prior_conditionals(prior, 1)

    def one_run(key):
        def body(acc, k):
            psi, _ = core.sample(k, prior, post)
            return acc + psi[-1, 0], None

        return jax.lax.scan(body, jnp.zeros((), prior.cov1.dtype), jax.random.split(key, rounds))[0]

    fn = jax.jit(jax.vmap(one_run))
    box = {"i": 0}

    def f():
        box["i"] += 1
        return fn(jax.random.split(jax.random.PRNGKey(box["i"]), runs))

    start = time.perf_counter()
    jax.block_until_ready(f())
    return f, time.perf_counter() - start


def throughput(runs: int, rounds: int, reps: int, old: bool = True, end_to_end: bool = True) -> dict:
    """Run-rounds per second of dTS (fast chain), dTS (chain before it, when ``old``) and LinTS."""
    env = swissroll_environment(STUDY.num_actions, STUDY.noise)
    agents = swissroll_agents(PRESET, linearisations=("identity",), progress=False)
    fns, compile_s = {}, {}
    for name, agent in (("dTS", agents["dTS (identity)"]), ("LinTS", agents["LinTS"])):
        fns[name], compile_s[name] = runs_fn(env, agent, runs, rounds)
    fns["chain draws"], compile_s["chain draws"] = draws_fn(swissroll_prior(jnp.float32), runs, rounds)
    if old:
        with reference_chain():
            old_agent = swissroll_agents(PRESET, linearisations=("identity",), progress=False)["dTS (identity)"]
            fns["dTS old"], compile_s["dTS old"] = runs_fn(env, old_agent, runs, rounds)
    times = interleaved(fns, reps, per=runs * rounds)  # seconds per run-round
    out = {
        "preset": PRESET,
        "num_actions": STUDY.num_actions,
        "runs": runs,
        "rounds": rounds,
        "reps": reps,
        "run_rounds_per_s": {n: 1.0 / float(sorted(t)[len(t) // 2]) for n, t in times.items()},
        "us_per_run_round": {n: summary(t) for n, t in times.items()},
        "compile_s": compile_s,
    }
    if old:
        out["speedup_new_over_old"] = ratio_summary(times["dTS old"], times["dTS"])
    if end_to_end:  # one simulate call each, compilation included
        e2e = {}
        for name, agent in (("dTS", agents["dTS (identity)"]), ("LinTS", agents["LinTS"])):
            e2e[name] = simulate(jax.random.PRNGKey(0), env, agent, rounds, runs, progress=False).seconds
        if old:
            with reference_chain():
                e2e["dTS old"] = simulate(jax.random.PRNGKey(0), env, old_agent, rounds, runs, progress=False).seconds
        out["simulate_call_s"] = e2e
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall time, or the process's CPU time (leaves out waiting for a core on a loaded machine)",
    )
    args = p.parse_args(argv)
    runs, rounds, reps = (2, 10, 2) if args.quick else (args.runs, args.rounds, args.reps)
    use_clock(args.clock)
    info = device()
    print("device:", info["backend"], info["devices"])
    out = {"device": info, "dtype": "float32", "clock": args.clock, **throughput(runs, rounds, reps)}
    print({k: out[k] for k in ("run_rounds_per_s", "speedup_new_over_old", "compile_s", "simulate_call_s")})
    name = f"simulate_throughput_{info['backend']}{'_quick' if args.quick else ''}.json"
    save_json(args.json or RESULTS / name, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
