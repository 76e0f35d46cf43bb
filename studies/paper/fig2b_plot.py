"""Figure 2b summary plot: final dTS / LinTS regret vs d and vs L, next to the paper's dTS values.

python studies/paper/fig2b_plot.py   # reads studies/paper/results/fig2b-*.json, writes studies/paper/results/fig2b.png
"""

from __future__ import annotations

import json
import pathlib

from dts_ppl.plotting import pyplot

R = pathlib.Path(__file__).resolve().parent / "results"
PAPER_D = {5: 1200, 10: 1840, 15: 2300, 20: 2750}
PAPER_L = {2: 1200, 4: 1350, 5: 2200, 6: 2600}


def series(names, agent):
    xs, ys, es = [], [], []
    for x, name in names:
        p = R / f"{name}.json"
        if p.exists():
            a = json.loads(p.read_text())["algorithms"][agent]
            xs.append(x)
            ys.append(a["final_regret_mean"])
            es.append(2 * a["final_regret_se"])
    return xs, ys, es


def main():
    plt = pyplot(headless=True)
    fig, (ax_d, ax_l) = plt.subplots(1, 2, figsize=(9, 3.5))
    d_names = [(d, f"fig2b-d{d}") for d in PAPER_D]
    l_names = [(L, "fig2b-d5" if L == 2 else f"fig2b-L{L}") for L in PAPER_L]
    full_names = [(L, f"fig2b-full-L{L}") for L in PAPER_L]
    for ax, names, paper, xlabel in ((ax_d, d_names, PAPER_D, "d (L = 2)"), (ax_l, l_names, PAPER_L, "L (d = 5)")):
        for agent in ("dTS", "LinTS"):
            xs, ys, es = series(names, agent)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=f"{agent} (ours, active (d, 2, .., 2))")
        ax.plot(list(paper), list(paper.values()), "k--", marker="x", label="dTS, paper (read off, +-5%)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("regret at n = 5000")
    for agent in ("dTS", "LinTS"):
        xs, ys, es = series(full_names, agent)
        if xs:
            ax_l.errorbar(xs, ys, yerr=es, marker="s", capsize=3, ls=":", label=f"{agent} (ours, all columns active)")
    ax_d.legend(fontsize=7)
    ax_l.legend(fontsize=7)
    fig.suptitle("Figure 2b: K = 100 linear diffusion, linear rewards (bars = 2 s.e.)", fontsize=9)
    fig.tight_layout()
    fig.savefig(R / "fig2b.png", dpi=110)
    print(f"wrote {R / 'fig2b.png'}")


if __name__ == "__main__":
    main()
