"""Markdown table of final regrets from studies/paper/results/*.json next to the paper's values.

python studies/paper/regret_table.py [results_dir]
"""

from __future__ import annotations

import json
import pathlib
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"

# The paper's final regrets at n = 5000 (read off its figures, about +-5%), from issue 3.
PAPER = {
    "fig1-lindiff-lin-k100": {"dTS": 2.0e3, "HierTS": 2.6e3, "LinTS": 3.2e3, "LinUCB": 7.9e3},
    "fig1-lindiff-logistic-k100": {"dTS": 0.48e3, "dTS (linear reward)": 0.80e3, "GLM-TS": 0.82e3, "UCB-GLM": 1.6e3},
    "fig1-nonlindiff-lin-k100": {"dTS": 0.37e4, "LinTS": 0.61e4, "LinUCB": 0.88e4},
    "fig1-nonlindiff-logistic-k100": {
        "dTS": 0.40e3,
        "dTS (linear reward)": 0.70e3,
        "GLM-TS": 0.93e3,
        "UCB-GLM": 1.40e3,
    },
    "fig1-lindiff-lin-k10000": {"dTS": 0.37e5, "HierTS": 1.27e5, "LinTS": 3.05e5, "LinUCB": 3.45e5},
    "fig1-lindiff-logistic-k10000": {"dTS": 0.08e3, "dTS (linear reward)": 1.08e3, "GLM-TS": 2.55e3, "UCB-GLM": 2.55e3},
    "fig1-nonlindiff-lin-k10000": {"dTS": 0.7e7, "LinTS": 1.25e7, "LinUCB": 3.35e7},
    "fig1-nonlindiff-logistic-k10000": {"dTS": 1.8e2, "dTS (linear reward)": 2.4e2, "GLM-TS": 8e2, "UCB-GLM": 8e2},
    "fig2a-k10": {"dTS": 0.02e4, "LinTS": 0.02e4},
    "fig2a-k100": {"dTS": 0.12e4, "LinTS": 0.25e4},
    "fig2a-k500": {"dTS": 0.22e4, "LinTS": 0.86e4},
    "fig2a-k5000": {"dTS": 0.42e4, "LinTS": 1.44e4},
    "fig2a-k50000": {"dTS": 0.52e4, "LinTS": 1.61e4},
}
COLUMNS = [
    "dTS",
    "dTS (iterated)",
    "dTS (identity)",
    "dTS (MLE expansion)",
    "dTS (linear reward)",
    "HierTS",
    "LinTS",
    "LinUCB",
    "GLM-TS",
    "UCB-GLM",
    "exact TS",
]


def fmt(x):
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.2g}"


def markdown_table(directory=RESULTS) -> str:
    """The regret table (markdown) of every regret JSON in ``directory``, one row per preset run."""
    merged = {}  # several JSON files of one preset (e.g. an extra algorithm run later) -> one row
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "algorithms" not in data:
            continue
        key = (data["preset"], data.get("seed", 0), data["runs"], data["rounds"])
        merged.setdefault(key, {}).update(data["algorithms"])
    rows = []
    for (preset, seed, runs, rounds), algos in merged.items():
        paper = PAPER.get(preset, {})
        cells = []
        for col in COLUMNS:
            if col not in algos:
                cells.append("-")
                continue
            a = algos[col]
            ref = f" ({fmt(paper[col])})" if col in paper else ""
            cells.append(f"{fmt(a['final_regret_mean'])} ± {fmt(a['final_regret_se'])}{ref}")
        rows.append(f"| {preset} | {seed} | {runs} x {rounds} | " + " | ".join(cells) + " |")
    head = "| preset | seed | runs x rounds | " + " | ".join(COLUMNS) + " |\n|---|---|---|" + "---|" * len(COLUMNS)
    return "\n".join([head, *rows])


def main(directory=RESULTS):
    print(markdown_table(directory))


if __name__ == "__main__":
    main(*sys.argv[1:])
