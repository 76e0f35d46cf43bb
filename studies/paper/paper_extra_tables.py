# ruff: noqa: E501  (markdown table rows)
"""Markdown tables of the issue-18 results (docs/experiments.md) from studies/paper/results/*.json.

python studies/paper/paper_extra_tables.py [--doc docs/experiments.md]

With --doc, each table replaces the text between its "<!-- results TAG ... -->" and
"<!-- /results TAG -->" markers in the doc; otherwise all tables are printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import re
import sys

R = pathlib.Path(__file__).resolve().parent / "results"
# Figure 2b read off the paper (about +-5%), dTS at n = 5000.
PAPER_2B = {"d5": 1200, "d10": 1840, "d15": 2300, "d20": 2750, "L2": 1200, "L4": 1350, "L5": 2200, "L6": 2600}


def load(name):
    p = R / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def cell(a):
    return f"{a['final_regret_mean']:,.0f} ± {a['final_regret_se']:,.0f}"


def fig2b():
    print("| preset | runs x rounds | dTS | LinTS | LinTS / dTS | paper dTS |")
    print("|---|---|---|---|---|---|")
    for tag in ("d5", "d10", "d15", "d20", "L2", "L4", "L5", "L6"):
        name = "fig2b-d5" if tag == "L2" else f"fig2b-{tag}"  # L = 2 is the d = 5 base problem
        d = load(name)
        if d is None:
            print(f"| fig2b-{tag} | not run | | | | {PAPER_2B[tag]:,} |")
            continue
        a = d["algorithms"]
        ratio = a["LinTS"]["final_regret_mean"] / a["dTS"]["final_regret_mean"]
        label = f"fig2b-{tag}" + (" (= fig2b-d5)" if tag == "L2" else "")
        print(
            f"| {label} | {d['runs']} x {d['rounds']} | {cell(a['dTS'])} | {cell(a['LinTS'])} | {ratio:.2f} | {PAPER_2B[tag]:,} |"
        )
    fig2b_full()


def fig2b_full():
    print()
    print("Every column active (d_l = d = 5):")
    print()
    print("| preset | runs x rounds | dTS | LinTS | LinTS / dTS | paper dTS (its L sweep) |")
    print("|---|---|---|---|---|---|")
    for L in (2, 4, 5, 6):
        d = load(f"fig2b-full-L{L}")
        if d is None:
            print(f"| fig2b-full-L{L} | not run | | | | {PAPER_2B[f'L{L}']:,} |")
            continue
        a = d["algorithms"]
        ratio = a["LinTS"]["final_regret_mean"] / a["dTS"]["final_regret_mean"]
        print(
            f"| fig2b-full-L{L} | {d['runs']} x {d['rounds']} | {cell(a['dTS'])} | {cell(a['LinTS'])} | {ratio:.2f} | {PAPER_2B[f'L{L}']:,} |"
        )


def fig2c():
    print(
        "| v | runs x rounds | dTS (perturbed W, S) | LinTS (true marginal) | LinTS (perturbed marginal) | ours fig2c-v: dTS / LinTS / HierTS (50 runs) |"
    )
    print("|---|---|---|---|---|---|")
    for v in ("0", "0.5", "1", "1.5"):
        d = load(f"fig2c-paper-v{v}")
        old = load(f"fig2c-v{v}")
        o = " / ".join(cell(old["algorithms"][n]) for n in ("dTS", "LinTS", "HierTS")) if old else "-"
        if d is None:
            print(f"| {v} | - | - | - | - | {o} |")
            continue
        a = d["algorithms"]
        print(
            f"| {v} | {d['runs']} x {d['rounds']} | {cell(a['dTS'])} | {cell(a['LinTS'])} | {cell(a['LinTS (perturbed)'])} | {o} |"
        )


def lints():
    print(
        "| problem | runs x rounds | LinTS (exact marginal) | LinTS (N(0, I)) | N(0, I) / marginal | dTS (earlier run, its runs) | paper LinTS |"
    )
    print("|---|---|---|---|---|---|---|")
    paper = {
        "fig2a-k10": 200,
        "fig2a-k100": 2500,
        "fig2a-k500": 8600,
        "fig2a-k5000": 14400,
        "fig2a-k50000": 16100,
        "fig1-lindiff-lin-k10000": 305000,
    }
    for prob in ("fig2a-k10", "fig2a-k100", "fig2a-k500", "fig2a-k5000", "fig2a-k50000", "fig1-lindiff-lin-k10000"):
        d = load(f"lints-prior-{prob}-10runs") or load(f"lints-prior-{prob}")  # the 10-run rerun when there
        ref = load(prob)
        dts = f"{cell(ref['algorithms']['dTS'])} ({ref['runs']})" if ref else "-"
        if d is None:
            print(f"| {prob} | not run | | | | {dts} | {paper[prob]:,} |")
            continue
        a = d["algorithms"]
        r = a["LinTS (N(0, I))"]["final_regret_mean"] / a["LinTS"]["final_regret_mean"]
        print(
            f"| {prob} | {d['runs']} x {d['rounds']} | {cell(a['LinTS'])} | {cell(a['LinTS (N(0, I))'])} | {r:.2f} | {dts} | {paper[prob]:,} |"
        )


def table2():
    d = load("table2-mcmc")
    if d is None:
        print("table2-mcmc: not run")
        return
    print(
        f"| agent | regret at n = {d['rounds']} ({d['runs']} runs) | ms per round ({d['runs']} runs in lockstep) | time / dTS | compile s |"
    )
    print("|---|---|---|---|---|")
    for name, a in d["agents"].items():
        print(
            f"| {name} | {cell(a)} | {a['ms_per_round']:.2f} | {a['time_ratio_to_dTS']:.1f} | {a['compile_seconds']:.0f} |"
        )


def bai():
    for name in ("bai", "bai-s1-0.1"):
        d = load(name)
        if d is None:
            print(f"{name}: not run\n")
            continue
        names = list(d["agents"])
        print(
            f"`{name}.json`: S_1 = {d.get('s1', 1.0)} I, K = {d['num_actions']}, d = {d['dim']}, "
            f"{d['runs']} runs per budget (plot: `studies/paper/results/{name}.png`)\n"
        )
        print(
            "| budget T | "
            + " | ".join(f"P(wrong), {n}" for n in names)
            + " | "
            + " | ".join(f"simple regret, {n}" for n in names)
            + " |"
        )
        print("|---" * (1 + 2 * len(names)) + "|")
        for i, b in enumerate(d["budgets"]):
            e = [f"{d['agents'][n]['error'][i]:.3f} ± {d['agents'][n]['error_se'][i]:.3f}" for n in names]
            s = [
                f"{d['agents'][n]['simple_regret'][i]:.3f} ± {d['agents'][n]['simple_regret_se'][i]:.3f}" for n in names
            ]
            print(f"| {b} | " + " | ".join(e + s) + " |")
        print()


def bound():
    d = load("regret_bound")
    if d is None:
        print("regret_bound: not run")
        return
    print(
        "| preset | runs x rounds | agent | measured final | its bound at n | bound / measured | mean <= bound at every n | lambda_1(W^T W) | E[x^T x] |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in d.items():
        lam = ", ".join(f"{v:.2f}" for v in row["lambda_max_WtW"])
        for agent, a in row["agents"].items():
            print(
                f"| {name} | {row['runs']} x {row['rounds']} | {agent} | {a['final_regret_mean']:,.0f} ± {a['final_regret_se']:,.0f} | "
                f"{a['own_bound_final']:,.0f} | {a['ratio_bound_to_regret_final']:.1f} | {a['mean_below_bound_at_every_n']} | {lam} | {row['mean_sq_context_norm']:.2f} |"
            )


SECTIONS = {
    "2B": fig2b,
    "2C": fig2c,
    "T2": table2,
    "BOUND": bound,
    "LINTS": lints,
    "BAI": bai,
}


def fill(doc):
    text = pathlib.Path(doc).read_text()
    for tag, fn in SECTIONS.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            fn()
        pattern = re.compile(rf"(<!-- results {tag}:[^\n]*-->\n)(.*?)(<!-- /results {tag} -->)", re.S)
        table = buf.getvalue()
        text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(3), text)
    pathlib.Path(doc).write_text(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--doc":
        fill(sys.argv[2])
    else:
        for tag, fn in SECTIONS.items():
            print(f"\n### {tag}\n")
            fn()
