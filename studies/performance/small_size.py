"""The default of ``core.linalg.SMALL_MAX_SIZE`` (how large a matrix takes the unrolled elementwise
paths), measured where d is above 3: ``simulate`` run-rounds per second of dTS and HierTS on the
paper's affine preset (K = 100, d = 5, vmapped over runs) with the unrolled paths off (0), up to
3 x 3 and up to 8 x 8, interleaved, float32; then whole ``simulate`` calls (compilation included,
as a user pays it on a first call with a new agent; the study clears ``simulate``'s compiled
programs before each call), alternated. Each size's program is traced with that size set and
then timed beside the others (the agents are built with that size set too: some of their
constant factors go through the same paths).

    PYTHONPATH=. python studies/performance/small_size.py --clock cpu     # results/small_size_cpu.json
    PYTHONPATH=. python studies/performance/small_size.py --quick
"""

from __future__ import annotations

import argparse
import time

import jax

from dts_ppl.bandits.simulation import clear_compiled_runs, simulate
from dts_ppl.commands.bench import get_preset
from dts_ppl.core import linalg
from studies.performance.common import RESULTS, device, interleaved, ratio_summary, save_json, summary, use_clock
from studies.performance.simulate_throughput import runs_fn

PRESET = "fig1-lindiff-lin-k100"
SIZES = (0, 3, 8)
AGENTS = ("dTS", "HierTS")


def main(argv=None) -> int:
    """Run the A/B/C and write results/small_size_<clock>.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--call-rounds", type=int, default=1000, help="rounds of the timed `simulate` calls")
    ap.add_argument("--call-reps", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 2 runs x 20 rounds, 2 reps")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.rounds, args.reps, args.call_rounds, args.call_reps = 2, 20, 2, 20, 1
    use_clock(args.clock)
    fns, compile_s, built = {}, {}, {}
    call_s = {f"{n} size {size}": [] for size in SIZES for n in AGENTS}
    saved = linalg.SMALL_MAX_SIZE
    try:
        for size in SIZES:
            linalg.SMALL_MAX_SIZE = size  # read when the agents are built and their programs traced
            env, algos = built[size] = get_preset(PRESET).build(jax.random.PRNGKey(0), args.rounds)
            for name in AGENTS:
                key = f"{name} size {size}"
                fns[key], compile_s[key] = runs_fn(env, algos[name], args.runs, args.rounds)
        times = interleaved(fns, args.reps, per=args.runs * args.rounds)
        for rep in range(args.call_reps):  # what a first call with a new agent costs: compilation included
            for size in SIZES:
                linalg.SMALL_MAX_SIZE = size
                env, algos = built[size]
                for name in AGENTS:
                    clear_compiled_runs()
                    start = time.process_time() if args.clock == "cpu" else time.perf_counter()
                    simulate(jax.random.PRNGKey(rep), env, algos[name], args.call_rounds, args.runs, progress=False)
                    stop = time.process_time() if args.clock == "cpu" else time.perf_counter()
                    call_s[f"{name} size {size}"].append(stop - start)
    finally:
        linalg.SMALL_MAX_SIZE = saved
    rate = {k: 1.0 / summary(t)["median_us"] * 1e6 for k, t in times.items()}
    out = {
        "preset": PRESET,
        "K": env.num_actions,
        "dim": env.dim,
        "runs": args.runs,
        "rounds": args.rounds,
        "reps": args.reps,
        "clock": args.clock,
        "device": device(),
        "command": "PYTHONPATH=. python studies/performance/small_size.py --clock " + args.clock,
        "run_rounds_per_s": rate,
        "compile_s": compile_s,
        "call_rounds": args.call_rounds,
        "call_reps": args.call_reps,
        "simulate_call_s": call_s,
        "per_run_round_us": {k: summary(t) for k, t in times.items()},
        "ratio_8_over_3": {n: ratio_summary(times[f"{n} size 8"], times[f"{n} size 3"]) for n in AGENTS},
        "ratio_8_over_0": {n: ratio_summary(times[f"{n} size 8"], times[f"{n} size 0"]) for n in AGENTS},
    }
    for k in fns:
        print(f"{k}: {rate[k]:,.0f} run-rounds/s, compile {compile_s[k]:.1f} s, simulate calls {call_s[k]}")
    if not args.quick or args.json:
        save_json(args.json or RESULTS / f"small_size_{args.clock}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
