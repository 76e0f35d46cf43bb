"""``dts-ppl bench regret``: run every algorithm of a preset and report final regrets.

Writes JSON {"preset", "rounds", "runs", "seed", "curve_rounds", "algorithms": {NAME: {"final_regret_mean",
"final_regret_se", "final_regrets", "curve"}}} where ``curve`` is the mean cumulative regret at the rounds listed in
``curve_rounds`` (at most 250 of them, the last one = ``rounds``), ``final_regrets`` the final
cumulative regret of every run (runs are paired across algorithms), and a plot of the curves.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np

from dts_ppl.bandits.simulation import plot_regret, regret_ratio, simulate
from dts_ppl.commands import positive_int
from dts_ppl.core.checks import check_positive_int
from dts_ppl.data.movielens import ENV_VAR
from dts_ppl.experiments.registry import get_preset, preset_names
from dts_ppl.experiments.regret import default_chunk_size


def register(sub):
    p = sub.add_parser("bench", help="benchmarks (regret experiments)")
    bsub = p.add_subparsers(dest="bench", required=True)
    r = bsub.add_parser("regret", help="regret of every algorithm of a preset (paper experiments)")
    r.add_argument("--preset", help="preset name (see --list)")
    r.add_argument("--list", action="store_true", help="list the presets and exit")
    r.add_argument("--runs", type=positive_int, default=None, help="independent runs (default: the preset's)")
    r.add_argument("--rounds", type=positive_int, default=None, help="rounds n (default: the preset's, 5000)")
    r.add_argument("--seed", type=int, default=0, help="PRNG seed of the problem and the runs (default 0)")
    r.add_argument("--json", default=None, help="write results here")
    r.add_argument("--plot", default=None, help="save a regret plot here (png/pdf)")
    r.add_argument("--agents", default=None, help="comma-separated subset of the preset's algorithms")
    r.add_argument("--chunk-size", type=positive_int, default=None, help="runs vmapped at once (default: by memory)")
    r.add_argument("--x64", action="store_true", help="float64 (default float32)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--data-dir", default=None, help="MovieLens files (movielens preset; or $DTS_MOVIELENS_DIR)")
    r.set_defaults(run=run_regret)


def regret_table(results: dict, rounds: int, runs: int) -> str:
    lines = [f"final cumulative regret after {rounds} rounds, mean +- s.e. over {runs} runs"]
    width = max(len(n) for n in results) if results else 0
    for name, res in results.items():
        lines.append(f"  {name:<{width}}  {res.final_mean:10.1f} +- {res.final_se:7.1f}   ({res.seconds:.0f} s)")
    dts = next((n for n in results if n.startswith("dTS")), None)
    if dts is not None and runs > 1:
        lines.append(f"ratio of final regrets to {dts} (paired runs, delta-method s.e.)")
        for name, res in results.items():
            if name != dts:
                r, se = regret_ratio(res, results[dts])
                lines.append(f"  {name + ' / ' + dts:<{2 * width + 3}}  {r:6.2f} +- {se:.2f}")
    return "\n".join(lines)


def run_experiment(preset_name, runs, rounds, seed, agents=None, chunk_size=None, progress=True, log=print):
    """Build a preset and simulate each of its algorithms on the same runs. Returns {name: RegretResult}."""

    preset = get_preset(preset_name)
    runs = preset.runs if runs is None else runs
    rounds = preset.rounds if rounds is None else rounds
    check_positive_int("runs", runs)
    check_positive_int("rounds", rounds)
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(seed))
    env, algos = preset.build(k_build, rounds)
    if agents:
        unknown = set(agents) - set(algos)
        if unknown:
            raise ValueError(f"agents: {sorted(unknown)} not in preset {preset_name!r} ({', '.join(algos)})")
        algos = {n: a for n, a in algos.items() if n in agents}
    chunk = min(runs, chunk_size or default_chunk_size(env.num_actions, env.dim))
    log(f"{preset_name}: {env.name}; {runs} runs x {rounds} rounds, chunks of {chunk} runs")
    results = {}
    for name, agent in algos.items():
        results[name] = simulate(k_sim, env, agent, rounds, runs, chunk_size=chunk, progress=progress, desc=name)
        res = results[name]
        log(f"  {name}: {res.final_mean:.1f} +- {res.final_se:.1f} ({res.seconds:.0f} s)")
    return results, runs, rounds


def to_json(preset: str, results: dict, rounds: int, runs: int, seed: int = 0, max_points: int = 250) -> dict:

    idx = np.unique(np.linspace(0, rounds - 1, min(max_points, rounds)).round().astype(int))
    return {
        "preset": preset,
        "rounds": rounds,
        "runs": runs,
        "seed": seed,
        "curve_rounds": [int(i) + 1 for i in idx],
        "algorithms": {
            name: {
                "final_regret_mean": res.final_mean,
                "final_regret_se": res.final_se,
                "final_regrets": [float(f"{v:.6g}") for v in np.asarray(res.cumulative)[:, -1]],
                "curve": [float(f"{v:.6g}") for v in res.mean[idx]],
            }
            for name, res in results.items()
        },
    }


def preset_table(names=None) -> str:
    """The presets as two aligned columns, name and description, one line each (``--list``).

    Args:
        names: preset names (default: every preset, sorted).
    """
    names = preset_names() if names is None else list(names)
    width = max(len(n) for n in names) + 2
    return "\n".join(f"{n:<{width}}{get_preset(n).description}".rstrip() for n in names)


def run_regret(args) -> int:
    if args.list:
        print(preset_table())
        return 0
    if not args.preset:
        raise ValueError("--preset: expected a preset name (see `dts-ppl bench regret --list`)")
    jax.config.update("jax_enable_x64", bool(args.x64))
    if args.data_dir:
        os.environ[ENV_VAR] = args.data_dir
    agents = [a.strip() for a in args.agents.split(",")] if args.agents else None
    results, runs, rounds = run_experiment(
        args.preset, args.runs, args.rounds, args.seed, agents, args.chunk_size, progress=not args.quiet
    )
    print(regret_table(results, rounds, runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(to_json(args.preset, results, rounds, runs, args.seed), f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot_regret(results, args.plot, title=args.preset)
        print(f"wrote {args.plot}")
    sys.stdout.flush()
    return 0
