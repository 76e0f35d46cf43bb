"""Newcomer regret when items arrive and leave: dTS against LinTS-fresh, LinTS-copy-nearest and bank TS.

    PYTHONPATH=. python studies/catalogue/arrivals.py --source generated
    PYTHONPATH=. python studies/catalogue/arrivals.py --source movielens --data-dir DIR

The process and the agents are :mod:`dts_ppl.experiments.arrivals`. Every agent sees the same
items, contexts and reward noise in each run (paired runs). Writes
studies/catalogue/results/arrivals_<source>.json: per agent the mean and s.e. over runs of the
newcomers' first-pulls regret and post-arrival window regret, paired differences against dTS,
the issue's targets, and the mean per-round regret around an arrival (the plot of docs/catalogue.md).
Runs in JAX's default float32, the dtype of the ``movielens`` preset and its cached DDPM prior.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from dts_ppl.experiments import arrivals as ar
from studies.common import results_dir, save_json

BEFORE = 100  # rounds before an arrival in the regret-around-an-arrival curve


def _mean_se(v) -> dict:
    v = np.asarray(v, float)
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(v.size))}


def around_arrival(sim: dict, cfg: ar.ArrivalConfig) -> list[float]:
    """Mean per-round regret at offsets -BEFORE .. window-1 from an arrival (arrivals with a full window)."""
    regret = sim["regret"]
    rows = []
    for j in range(cfg.arrivals):
        start = cfg.interval * (j + 1)
        if start - BEFORE >= 0 and start + cfg.window <= cfg.rounds:
            rows.append(regret[:, start - BEFORE : start + cfg.window])
    return np.mean(np.concatenate(rows, 0), 0).tolist()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=("generated", "movielens"), required=True)
    p.add_argument("--data-dir", default=None, help="MovieLens directory (movielens source)")
    p.add_argument("--runs", type=int, default=ar.ArrivalConfig().runs)
    p.add_argument("--rounds", type=int, default=ar.ArrivalConfig().rounds)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="output (default studies/catalogue/results/arrivals_<source>.json)")
    args = p.parse_args(argv)
    cfg0 = ar.ArrivalConfig()
    cfg = cfg0._replace(runs=args.runs, rounds=args.rounds)
    if args.source == "generated":
        setup = ar.generated_arrivals(cfg)
    else:
        setup = ar.movielens_arrivals(cfg, args.data_dir)
    cats = ar.arrival_agents(setup, cfg)
    key = jax.random.PRNGKey(args.seed)
    metrics, curves, seconds = {}, {}, {}
    for name, cat in cats.items():
        t0 = time.perf_counter()
        copy, side = name == "LinTS-copy-nearest", name == "dTS + side info"
        sim = ar.simulate_arrivals(key, cat, setup, cfg, copy=copy, side=side)
        seconds[name] = time.perf_counter() - t0
        metrics[name] = ar.newcomer_regret(sim, cfg)
        curves[name] = around_arrival(sim, cfg)
        m = metrics[name]
        print(
            f"{name:20s} first-{cfg.pulls}-pulls {m['pulls_regret'].mean():8.2f}  window-{cfg.window} "
            f"{m['window_regret'].mean():8.2f}  total {m['total_regret'].mean():9.1f}  ({seconds[name]:.0f} s)",
            flush=True,
        )
    paired, ratios = {}, {}
    for name in [n for n in ar.AGENTS[1:] if n in metrics]:
        paired[name] = {
            k: _mean_se(metrics["dTS"][k] - metrics[name][k]) for k in ("pulls_regret", "window_regret", "total_regret")
        }
        ratios[name] = {
            k: float(metrics["dTS"][k].mean() / metrics[name][k].mean()) for k in ("pulls_regret", "window_regret")
        }
    targets = {}
    for k in ("pulls_regret", "window_regret"):
        d = paired["LinTS-copy-nearest"][k]
        targets[k] = {
            "dts_vs_fresh_ratio": ratios["LinTS-fresh"][k],
            "at_least_20pct_below_fresh": ratios["LinTS-fresh"][k] <= 0.8,
            "dts_minus_copy_in_se": d["mean"] / d["se"] if d["se"] > 0 else None,
            "not_above_copy_by_2se": d["mean"] <= 2 * d["se"],
        }
    command = f"PYTHONPATH=. python studies/catalogue/arrivals.py --source {args.source}"
    if args.source == "movielens":
        command += " --data-dir DIR"
    for flag, value, default in (("--runs", args.runs, cfg0.runs), ("--rounds", args.rounds, cfg0.rounds)):
        if value != default:
            command += f" {flag} {value}"
    if args.seed:
        command += f" --seed {args.seed}"
    out = {
        "command": command,
        "source": args.source,
        "setup": setup.name,
        "info": setup.info,
        "config": dict(cfg._asdict(), arrivals=cfg.arrivals, lifetime=cfg.lifetime, seed=args.seed),
        "dtype": str(setup.bank.dtype),
        "agents": {
            name: {k: _mean_se(v) for k, v in m.items()} | {"seconds": seconds[name]} for name, m in metrics.items()
        },
        "per_run": {name: {k: np.asarray(v).tolist() for k, v in m.items()} for name, m in metrics.items()},
        "paired_dts_minus": paired,
        "dts_over": ratios,
        "targets": targets,
        "around_arrival": {"offsets": list(range(-BEFORE, cfg.window)), "mean_regret": curves},
    }
    path = args.json or results_dir("catalogue") / f"arrivals_{args.source}.json"
    save_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
