"""Regenerate docs/results.md from the JSON in studies/<study>/results/.

    python docs/make_results.py            # writes docs/results.md
    python docs/make_results.py --check    # exits 1 if docs/results.md is out of date

Every table names the files it was built from; the commands that produced those files are
listed with each table.
"""

from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dts_ppl.experiments.study import study_table  # noqa: E402
from studies.paper.regret_table import markdown_table  # noqa: E402

STUDIES = ROOT / "studies"
PAPER = STUDIES / "paper" / "results"
PERFORMANCE = STUDIES / "performance" / "results"
SWISSROLL = STUDIES / "swissroll" / "results"
VALIDATION = STUDIES / "validation" / "results"
OUT = ROOT / "docs" / "results.md"


def _load(path: pathlib.Path):
    return json.loads(path.read_text())


def _pm(mean: float, se: float) -> str:
    return f"{mean:,.1f} ± {se:.1f}"


def regret_section() -> str:
    return f"""## Final regret next to the paper

Final cumulative pseudo-regret at n = 5000 (mean ± s.e. over runs; in brackets the paper's
value read off its figures, about ±5%), float32, seed 0. Built from every
`studies/paper/results/<preset>.json` with an `algorithms` field (`python studies/paper/regret_table.py`).
Produced, for each preset, by `dts-ppl bench regret --preset PRESET --runs RUNS --rounds 5000 --seed 0
--json studies/paper/results/PRESET.json` (RUNS = 50, 10 for K >= 10^4; `--plot PRESET.png` draws
the curves).
"dTS (MLE expansion)" expands GLM likelihoods at the paper's near-MLE point, every other GLM agent
at the prior-regularised fit (docs/choosing.md).

{markdown_table(PAPER)}
"""


def validation_section() -> str:
    rows = _load(VALIDATION / "validation_study.json")
    runs = {}
    for r in rows:  # the linearisations of one (preset, n) share one NUTS run
        runs.setdefault((r["preset"], r["num_obs"]), r["divergences"])
    div = "\n".join(f"| {p} | {n} | {d} |" for (p, n), d in runs.items())
    total = sum(runs.values())
    return f"""## The guide against NUTS as data grow

From `studies/validation/results/validation_study.json`, produced by `dts-ppl validation-study` runs (the commands,
and the ddpm reruns at target acceptance 0.95, are in docs/validation.md; every row records its NUTS
settings, attempts and wall time). Errors are in NUTS standard deviations; "MC se" is the Monte-Carlo error an exact guide
would show; "dist/floor" is the energy distance over the NUTS-vs-NUTS distance (about 1 or below:
at the floor). With affine links the three linearisations are one computation (one row).

{study_table(rows)}

![theta's max mean error and psi's energy distance against the NUTS floor, per preset and n](../studies/validation/results/validation_study.png)

(`studies/validation/results/validation_study.png`, drawn by the same command.) On the `ddpm` preset the package's default
linearisation is the paper's "identity" (`core.default_linearisation`), so there the default is the
paper row; elsewhere it is the new row.

NUTS divergences per run (the linearisations of one row group share the run): {total} in all.

| preset | n | divergences |
|---|---:|---:|
{div}
"""


def timing_section() -> str:
    data = _load(PERFORMANCE / "agent_timing_grid.json")
    lines = [
        f"| {g['K']} | {g['d']} | {g['L']} | {g['dts_us']:,.0f} | {g['lints_us']:,.0f} | {g['ratio']:.2f} |"
        for g in data["grid"]
    ]
    return (
        f"""## Per-round cost (act + update)

From `studies/performance/results/agent_timing_grid.json`, produced by
`PYTHONPATH=. python studies/performance/agent_timing.py --K 100,1000,10000 --d 5,20 --L 2,4,40 --rounds 100 --repeats 3
--blocks 10 --json studies/performance/results/agent_timing_grid.json` ({data["dtype"]}, {data["device"]},
compilation excluded, best of 3 blocks of {data["rounds_per_block"]} rounds; the machine was shared).

| K | d | L | dTS (us/round) | LinTS (us/round) | dTS / LinTS |
|---|---|---|---:|---:|---:|
"""
        + "\n".join(lines)
        + "\n"
    )


def _swiss_rows(pattern: str, key: str) -> list[str]:
    rows = {}
    for path in sorted(SWISSROLL.glob(pattern)):
        data = _load(path)
        if "agents" not in data:
            continue
        s1 = "0.1" if "@s1=0.1" in path.name else "1"
        rows.setdefault(data[key], {})[s1] = data
    out = []
    for value in sorted(rows):
        by = rows[value]
        base = next(iter(by.values()))["agents"]["LinTS"]
        cells = [f"{value:,}", _pm(base["final_mean"], base["final_se"])]
        for s1 in ("1", "0.1"):
            if s1 in by:
                a = by[s1]["agents"]["dTS (identity)"]
                cells += [_pm(a["final_mean"], a["final_se"]), f"{by[s1]['ratio']:.2f} ± {by[s1]['ratio_se']:.2f}"]
            else:
                cells += ["-", "-"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def swissroll_section() -> str:
    head = "| {} | LinTS | dTS (S_1 = I) | LinTS / dTS | dTS (S_1 = 0.1 I) | LinTS / dTS |\n|---|---|---|---|---|---|"
    s1_rows = []
    s1_files = (
        ("s1-beta.json", "beta_1 I (the DDPM's own)"),
        ("s1-0.1.json", "0.1 I"),
        ("s1-0.3.json", "0.3 I"),
        ("swissroll-depth-40.json", "I (default)"),
    )
    for name, label in s1_files:
        data = _load(SWISSROLL / name)
        lin, dts = data["agents"]["LinTS"], data["agents"]["dTS (identity)"]
        s1_rows.append(
            f"| {label} | {_pm(lin['final_mean'], lin['final_se'])} | {_pm(dts['final_mean'], dts['final_se'])} "
            f"| {data['ratio']:.2f} ± {data['ratio_se']:.2f} |"
        )
    lin_rows = []
    for path in sorted(SWISSROLL.glob("linearisations-*.json")):
        data = _load(path)
        k, n, runs = data["num_actions"], data["num_rounds"], data["num_runs"]
        cells = [data["preset"], f"{k}, {n}, {runs}"]
        for a in data["agents"].values():
            cells.append(f"{a['final_mean']:,.1f} ± {a['final_se']:.1f}")
        lin_rows.append("| " + " | ".join(cells) + f" | `{path.name}` |")
    return f"""## Swiss-roll priors trained on offline samples (the paper's Figure 2b)

Final regret at n = 1000 (mean ± s.e., 20 runs), K = 100, d = 2; ratios paired over runs. From
`studies/swissroll/results/swissroll-pretrain-N[@s1=0.1].json` and `swissroll-depth-L[@s1=0.1].json`,
produced by `python studies/swissroll/swissroll_study.py ratios` (and `ratios --action-cov 0.1`); the same
presets run with `dts-ppl bench regret --preset swissroll-...`.

By the number N of pre-training samples (L = 40):

{head.format("N")}
{chr(10).join(_swiss_rows("swissroll-pretrain-*.json", "num_samples"))}

By depth L (N = 10^4):

{head.format("L")}
{chr(10).join(_swiss_rows("swissroll-depth-*.json", "num_levels"))}

By S_1 on `swissroll-depth-40` (`python studies/swissroll/swissroll_study.py action_cov`; `s1-*.json`, and
`swissroll-depth-40.json` for S_1 = I):

| S_1 (standardised units) | LinTS | dTS | LinTS / dTS |
|---|---|---|---|
{chr(10).join(s1_rows)}

## Regret per linearisation

`python studies/swissroll/swissroll_study.py linearisations` (`linearisations-*.json`); columns: the
baseline (LinTS, or GLM-TS for logistic rewards), then dTS with "identity", "jacobian", "iterated".

| problem | K, n, runs | baseline | dTS identity | dTS jacobian | dTS iterated | file |
|---|---|---|---|---|---|---|
{chr(10).join(lin_rows)}
"""


def render() -> str:
    parts = [
        "# Results\n\n"
        "Generated by `python docs/make_results.py` from the JSON files named in each section; do not edit\n"
        "by hand (rerun the script after new results land). The commands that produced each file are\n"
        "given with its table. What the numbers mean for choosing options: docs/choosing.md.\n",
        regret_section(),
        validation_section(),
        timing_section(),
        swissroll_section(),
    ]
    return "\n".join(parts)


def write_page(out: pathlib.Path, text: str, script: str, argv) -> int:
    """``--check`` in argv: 1 if ``out`` differs from ``text``; otherwise write it. Returns the exit code."""
    if "--check" in argv:
        if not out.exists() or out.read_text() != text:
            print(f"{out} is out of date: run python {script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    return write_page(OUT, render(), "docs/make_results.py", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
