"""The per-seed table of studies/nonlinear/results/prior_seeds.json, written into docs/defaults.md.

    PYTHONPATH=. python studies/nonlinear/prior_seeds_table.py            # rewrite the marked block
    PYTHONPATH=. python studies/nonlinear/prior_seeds_table.py --check    # exit 1 if it is stale

Per prior seed: each agent's final regret (mean +- s.e. over the runs, and the sd across runs),
for each dTS rule the paired difference to LinTS (mean +- s.e. of dTS - LinTS over the same
runs), how many runs end below LinTS, and the sd ratio dTS / LinTS; then the targets of the
nonlinear default (below LinTS on every seed, geometric mean of LinTS / dTS >= 1.10 over
seeds, sd ratio <= 2 on every seed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "studies" / "nonlinear" / "results" / "prior_seeds.json"
DOC = ROOT / "docs" / "defaults.md"
BEGIN = "<!-- results PRIOR-SEEDS: python studies/nonlinear/prior_seeds_table.py -->"
END = "<!-- /results PRIOR-SEEDS -->"
#: The dTS variants shown, in order, with their labels (entries of the JSON).
LABELS = {
    "default@eeb30d0": "dTS, the earlier default (step-halving rule; measured at commit eeb30d0)",
    "cold": (
        "dTS with `warm_start=False` (Gauss-Newton with an Armijo line search from the prior mean trajectory"
        " at every update: the default before the warm start; measured at commit eb1745b, same code path)"
    ),
    "default": (
        "dTS, the default (the same line search, also run from the previous posterior's trajectory; `warm_start=True`)"
    ),
    "passes50": "dTS with the warm start and `max_passes=50` (measured on the seeds whose sd ratio was above 2)",
}


def summary(data: dict, variant: str) -> dict:
    """Per-seed numbers and the three targets for one dTS variant against LinTS."""
    rows, ratios, below_all, sd_ok, n_below, n_sd = [], [], True, True, 0, 0
    for seed in sorted(data["seeds"], key=int):
        res = data["seeds"][seed]
        if variant not in res or "LinTS" not in res:
            continue
        d, lin = np.asarray(res[variant]["final_regrets"]), np.asarray(res["LinTS"]["final_regrets"])
        diff = d - lin
        sd_ratio = d.std(ddof=1) / lin.std(ddof=1)
        ratios.append(lin.mean() / d.mean())
        below_all &= bool(diff.mean() < 0)
        sd_ok &= bool(sd_ratio <= 2.0)
        n_below += int(diff.mean() < 0)
        n_sd += int(sd_ratio <= 2.0)
        rows.append(
            dict(
                seed=int(seed),
                mean=d.mean(),
                se=d.std(ddof=1) / np.sqrt(d.size),
                sd=d.std(ddof=1),
                diff=diff.mean(),
                diff_se=diff.std(ddof=1) / np.sqrt(d.size),
                below=int((diff < 0).sum()),
                runs=int(d.size),
                ratio=lin.mean() / d.mean(),
                sd_ratio=sd_ratio,
            )
        )
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")
    return dict(rows=rows, geo=geo, below_all=below_all, sd_ok=sd_ok, n_below=n_below, n_sd=n_sd, seeds=len(rows))


def render(data: dict) -> str:
    """The markdown block: one table per dTS variant, then its targets line."""
    out = [BEGIN, ""]
    lin_rows = {int(s): np.asarray(r["LinTS"]["final_regrets"]) for s, r in data["seeds"].items() if "LinTS" in r}
    for variant, label in LABELS.items():
        s = summary(data, variant)
        if not s["rows"]:
            continue
        out += [
            f"**{label}** against LinTS ({data['runs']} paired runs x {data['rounds']} rounds per seed):",
            "",
            "| seed | LinTS | dTS | dTS - LinTS (paired) | runs below LinTS | LinTS / dTS | sd dTS / sd LinTS |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lin = lin_rows[r["seed"]]
            lin_txt = f"{lin.mean():,.0f} +- {lin.std(ddof=1) / np.sqrt(lin.size):,.0f} (sd {lin.std(ddof=1):,.0f})"
            out.append(
                f"| {r['seed']} | {lin_txt} | {r['mean']:,.0f} +- {r['se']:,.0f} (sd {r['sd']:,.0f}) | "
                f"{r['diff']:+,.0f} +- {r['diff_se']:,.0f} | {r['below']} / {r['runs']} | {r['ratio']:.2f} | "
                f"{r['sd_ratio']:.1f} |"
            )
        out += [
            "",
            ("" if s["seeds"] == len(data["seeds"]) else f"(On {s['seeds']} of {len(data['seeds'])} seeds only.) ")
            + f"Targets over {s['seeds']} seeds: below LinTS on every seed (paired mean): "
            f"**{'met' if s['below_all'] else 'not met'}** ({s['n_below']} / {s['seeds']}); geometric mean "
            f"LinTS / dTS = **{s['geo']:.2f}** (target >= 1.10: {'met' if s['geo'] >= 1.10 else 'not met'}); "
            f"sd ratio <= 2 on every seed: **{'met' if s['sd_ok'] else 'not met'}** ({s['n_sd']} / {s['seeds']}).",
            "",
        ]
    out.append(END)
    return "\n".join(out)


def main(argv: list[str]) -> int:
    data = json.loads(RESULTS.read_text())
    block = render(data)
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC}: expected the markers {BEGIN!r} and {END!r}")
    new = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    if "--check" in argv:
        return int(new != text)
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
