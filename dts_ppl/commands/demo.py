"""``dts-ppl demo``: a short version of the paper's first experiment, with its regret table.

Linear diffusion prior (d = 5, L = 2, K = 100), Gaussian rewards, contexts U[-1, 1]^5: dTS
against HierTS, LinTS and LinUCB (the preset ``fig1-lindiff-lin-k100`` with fewer runs and
rounds). Takes well under a minute on one CPU core, most of it XLA compilation (set
DTS_PPL_JAX_CACHE to a folder to cache compilations across calls).
"""

from __future__ import annotations

import time

from dts_ppl.bandits.simulation import plot_regret
from dts_ppl.commands import positive_int
from dts_ppl.commands.bench import regret_table, run_experiment


def register(sub):
    p = sub.add_parser("demo", help="a short regret experiment of the paper (dTS vs HierTS, LinTS, LinUCB)")
    p.add_argument(
        "--preset", default="fig1-lindiff-lin-k100", help="regret preset (default %(default)s; see bench regret --list)"
    )
    p.add_argument("--runs", type=positive_int, default=20, help="independent runs (default %(default)s)")
    p.add_argument("--rounds", type=positive_int, default=1000, help="rounds per run (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the problem and the runs (default %(default)s)")
    p.add_argument("--plot", default=None, help="save the regret curves here (png/pdf)")
    p.set_defaults(run=run)


def run(args) -> int:

    start = time.perf_counter()
    results, runs, rounds = run_experiment(
        args.preset, args.runs, args.rounds, args.seed, progress=False, log=lambda s: None
    )
    print(f"dts-ppl demo: preset {args.preset} (dts-ppl bench regret --list shows the others)")
    print(regret_table(results, rounds, runs))
    best = min(results, key=lambda n: results[n].final_mean)
    print(f"lowest regret: {best}; total time {time.perf_counter() - start:.0f} s")
    if args.plot:
        plot_regret(results, args.plot, title=args.preset)
        print(f"wrote {args.plot}")
    return 0
