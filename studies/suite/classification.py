"""The classification-to-bandit suite: every agent on scikit-learn's digits, wine, breast cancer and iris.

One stratified split per data set (``--split``): the prior half fits the empirical-Bayes chain
(dts_ppl.experiments.classification), the other half feeds ``--runs`` bandit runs of ``--rounds``
rounds. Runs are paired across agents (run r has the same examples for every agent). Writes
studies/suite/results/classification.json, read by studies/suite/make_doc.py.

    PYTHONPATH=. python studies/suite/classification.py [--datasets digits,wine,...] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "classification.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,wine,breast-cancer,iris")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--split", type=int, default=0, help="seed of the stratified split")
    parser.add_argument("--json", default=OUT)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    from dts_ppl.bandits import simulate
    from dts_ppl.experiments.classification import CLASSIFICATION, classification_agents, classification_setup

    results = json.load(open(args.json)) if os.path.exists(args.json) else {}
    command = "PYTHONPATH=. python studies/suite/classification.py"
    for name in args.datasets.split(","):
        start = time.perf_counter()
        load = [round(x, 2) for x in os.getloadavg()]
        setup = classification_setup(name, jax.random.PRNGKey(args.split))
        fit = setup["fit"]
        row = {
            "command": f"{command} --datasets {name} --runs {args.runs} --rounds {args.rounds} --split {args.split}",
            "num_classes": setup["num_classes"],
            "dim": int(setup["gauss"].mean.shape[0]),
            "num_prior_examples": setup["num_prior_examples"],
            "num_bandit_examples": setup["num_bandit_examples"],
            "fitted": {k: float(v) for k, v in fit.values.items()},
            "at_bound": list(fit.at_bound),
            "runs": args.runs,
            "rounds": args.rounds,
            "split": args.split,
            "prior_fraction": CLASSIFICATION.prior_fraction,
            "load_average_at_start": load,
            "agents": {},
        }
        finals = {}
        for agent_name, agent in classification_agents(setup).items():
            t0 = time.perf_counter()
            res = simulate(
                jax.random.PRNGKey(1000 + args.split), setup["env"], agent, args.rounds, args.runs, progress=False
            )
            finals[agent_name] = res.cumulative[:, -1]
            curve_at = np.unique(np.linspace(0, args.rounds - 1, 50).astype(int))
            row["agents"][agent_name] = {
                "final_mean": res.final_mean,
                "final_se": res.final_se,
                "accuracy": 1.0 - res.final_mean / args.rounds,
                "seconds": time.perf_counter() - t0,
                "curve_rounds": (curve_at + 1).tolist(),
                "curve_mean": res.mean[curve_at].tolist(),
                "curve_se": res.se[curve_at].tolist(),
            }
            print(
                f"{name} {agent_name}: {res.final_mean:.1f} +- {res.final_se:.1f} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        base = finals["LinUCB"]
        for agent_name, f in finals.items():
            diff = f - base
            row["agents"][agent_name]["minus_linucb_mean"] = float(diff.mean())
            row["agents"][agent_name]["minus_linucb_se"] = float(diff.std(ddof=1) / np.sqrt(diff.size))
        row["seconds"] = time.perf_counter() - start
        results[name] = row
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(results, fh, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
