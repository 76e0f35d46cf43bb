"""Regenerate docs/calibration.md from the JSON in studies/calibration/results/ (written by studies/calibration/sbc_study.py).

python docs/make_calibration.py            # writes docs/calibration.md
python docs/make_calibration.py --check    # exits 1 if docs/calibration.md is out of date
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "studies" / "calibration" / "results"
OUT = ROOT / "docs" / "calibration.md"
#: the package's default per preset (core.default_linearisation: iterated for MLP links, identity
#: for DDPM links; GLMs expand at the prior-regularised fit)
DEFAULTS = {"mlp": "iterated", "ddpm": "identity", "logistic": "prior"}
_SKIP = {"preset", "seed", "chunk_size", "num_steps", "cov_scale", "mean_shift", "num_rounds", "num_runs"}


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def command(data: dict) -> str:
    """The ``dts-ppl sbc`` command that wrote ``data`` (from its recorded arguments)."""
    meta = data["meta"]
    if "command" in meta:
        return meta["command"]
    args = meta["args"]
    bandit = args["preset"].startswith("fig1")
    parts = ["dts-ppl sbc", f"--preset {args['preset']}"]
    for key, value in args.items():
        if key == "preset" or value is None:
            continue
        if bandit and key in ("num_datasets", "num_steps", "cov_scale", "mean_shift", "num_obs", "guide"):
            continue
        if not bandit and key in ("num_rounds", "num_runs"):
            continue
        if key in ("num_steps",) and args.get("guide") != "autonormal":
            continue
        if key in ("cov_scale", "mean_shift") and args.get("guide") != "distorted":
            continue
        if key == "guide" and value == "dts":
            continue
        if key in ("seed", "num_draws") and value in (0, 99):
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def _summary(data: dict) -> dict:
    q = data["quantities"]
    pits = [v["mean_pit"] for v in q.values()]
    ratios = [v["pit_var_ratio"] for v in q.values()]
    worst = max(q, key=lambda n: q[n]["max_ecdf_diff"])
    groups = {}
    for name, v in q.items():
        g = groups.setdefault(name.split("[")[0], [0, 0])
        g[0] += not v["inside"]
        g[1] += 1
    return {
        "groups": ", ".join(f"{g} {o}/{t}" for g, (o, t) in groups.items()),
        "outside": f"{data['num_outside']} / {data['num_quantities']}",
        "expected": f"{data['expected_outside_if_calibrated']:.1f}",
        "family": data["num_family_outside"],
        "worst": f"{worst} ({q[worst]['max_ecdf_diff']:.3f})",
        "pit": f"{min(pits):.3f} - {max(pits):.3f}",
        "ratio": f"{min(ratios):.2f} - {max(ratios):.2f}",
        "max_diff": q[worst]["max_ecdf_diff"],
    }


def _outside_theta(data: dict) -> int:
    """Quantities outside the band other than the latent psi's coordinates."""
    return sum(not v["inside"] for n, v in data["quantities"].items() if not n.startswith("psi"))


def _num_theta(data: dict) -> int:
    return sum(not n.startswith("psi") for n in data["quantities"])


HEAD = (
    "| {first} | outside the 95% band (expected if calibrated) | outside, by kind | rejected after Bonferroni | "
    "largest max abs(ECDF - z) | mean PIT range | PIT variance ratio range |\n|---|---|---|---|---|---|---|"
)


def _row(label: str, data: dict) -> str:
    s = _summary(data)
    return (
        f"| {label} | {s['outside']} ({s['expected']}) | {s['groups']} | {s['family']} | {s['worst']} | {s['pit']} "
        f"| {s['ratio']} |"
    )


def replicates_section() -> list:
    """Lines on how often an exact guide has every quantity inside the per-quantity band."""
    rep = _load("linear-dts-replicates")
    if rep is None:
        return []
    q, r = rep["num_quantities"], rep["replicates"]
    counts = np.bincount(rep["outside_per_replicate"])
    dist = ", ".join(f"{k}: {c}" for k, c in enumerate(counts) if c)
    fam = sum(1 for f in rep["family_rejected_per_replicate"] if f)
    return [
        "### Which decision: per quantity, or all quantities together",
        "",
        f"A calibrated guide has each quantity outside its own 95% band with probability 5%, so all {q}",
        f"inside at once is rare. Measured on the exact guide: {r} independent replicates of",
        f"{rep['datasets_per_replicate']:,} data sets each (`{rep['command']}`; {rep['seconds']:.0f} s on the shared 2-core machine):",
        "",
        "| exact guide, per replicate | measured | if the quantities were independent |",
        "|---|---|---|",
        f"| quantities outside their band, mean (s.e.) | {rep['mean_outside']:.2f} ({rep['se_mean_outside']:.2f}) "
        f"| {rep['expected_outside_if_independent']:.2f} |",
        f"| replicates with every quantity inside | {rep['fraction_all_inside']:.2f} "
        f"| {rep['probability_all_inside_if_independent']:.2f} |",
        f"| replicates with a quantity rejected after Bonferroni | {fam} / {r} ({fam / r:.3f}) | at most 0.05 |",
        "",
        f'Outside count per replicate (count: replicates): {dist}. So "every quantity inside its own band"',
        "rejects an exactly calibrated guide in most replicates; the decision for all quantities together",
        "is the Bonferroni column (a family-wise 95% test), which rejects the exact guide at or below its",
        "nominal 5% rate and rejects every quantity of the distorted guide.",
        "",
    ]


def linear_section() -> str:
    good, bad, vsbc = _load("linear-dts"), _load("linear-distorted"), _load("vsbc-autonormal-linear")
    auto = _load("linear-autonormal")
    if good is None or bad is None:
        return "## Linear preset\n\n(not measured yet: `python studies/calibration/sbc_study.py linear-dts linear-distorted`)\n"
    n = good["num_datasets"]
    lines = [
        "## The linear preset: the exact guide, and a deliberately wrong one",
        "",
        f"{n:,} data sets of the `linear` validation preset (K = 5, d = 3, L = 2, n = 50 observations),",
        f"{good['num_draws']} guide draws each; {good['num_quantities']} quantities: every coordinate of psi (6) and",
        "theta (15), x_t^T theta_a at 3 test contexts (15) and the best action's value max_a x_t^T theta_a",
        "at each (3). The wrong guide is `DistortedGuide(DTSGuide(model), cov_scale=0.5, mean_shift=0.3)`:",
        "the exact posterior with every covariance halved and every mean moved up 0.3 posterior sd.",
        "",
        HEAD.format(first="guide"),
        _row("DTSGuide (exact)", good),
        _row("distorted (cov x 0.5, mean + 0.3 sd)", bad),
        "",
        f"Commands: `{command(good)}`, `{command(bad)}` (each with `--json`, `--plot`; the plots",
        "are `studies/calibration/results/linear-dts.png` and `studies/calibration/results/linear-distorted.png`).",
        "",
        "With the per-quantity 95% band about 5% of the quantities of a calibrated guide fall outside",
        "by chance; the Bonferroni column tests all quantities together at 95%. The exact guide's",
        "quantities outside the band: "
        + (
            ", ".join(
                f"{n} (p = {v['p_value']:.4f}, Bonferroni {min(1.0, v['p_value'] * good['num_quantities']):.2f})"
                for n, v in good["quantities"].items()
                if not v["inside"]
            )
            or "none"
        )
        + ".",
        "",
        "![exact guide](../studies/calibration/results/linear-dts.png)",
        "![distorted guide](../studies/calibration/results/linear-distorted.png)",
        "",
        *replicates_section(),
        "### Time",
        "",
        "| what | data sets | wall time (2 shared CPU cores) |",
        "|---|---|---|",
        f"| `dts-ppl sbc --preset linear` (DTSGuide, one vmap per chunk of 2,000) | {n:,} | "
        f"{good['meta']['total_seconds']:.1f} s in all, of which {good['meta']['compile_seconds']:.1f} s is the "
        f"first chunk with compilation; {good['seconds']:.1f} s estimated without compilation |",
    ]
    if vsbc is not None:
        lines.append(
            f"| `numpyro.infer.calibration.vsbc_diagnostic`, AutoNormal, {vsbc['meta']['num_svi_steps']} SVI steps each "
            f"| {vsbc['num_datasets']} | {vsbc['seconds']:.1f} s (compilation included) |"
        )
    if auto is not None:
        lines.append(
            f"| `dts-ppl sbc --preset linear --guide autonormal` (SVI, {auto['meta']['args']['num_steps']} steps, vmapped) "
            f"| {auto['num_datasets']} | {auto['meta']['total_seconds']:.1f} s (compilation included) |"
        )
    loads = [
        json.loads(f.read_text()).get("meta", {}).get("load_average_at_start", [None])[0]
        for f in sorted(RESULTS.glob("*.json"))
        if f.name != "linear-dts-replicates.json"
    ]
    loads = [x for x in loads if x is not None]
    shared = (
        f" (1-minute load averages of {min(loads):.1f} to {max(loads):.1f} at the start of the runs that recorded it)"
        if loads
        else ""
    )
    lines += [
        "",
        f"The 2-core machine was shared with other jobs while these ran{shared}; the times are wall",
        "times of one run each, so they overstate what an idle machine takes.",
        "",
    ]
    if vsbc is not None:
        lines += [
            "### From NumPyro's vsbc_diagnostic",
            "",
            "`dts_ppl.ppl.sbc.report_from_vsbc(result)` builds the same report from `vsbc_diagnostic`'s",
            "ranks (the same rank definition: guide draws strictly below the truth). On the linear preset",
            f"with AutoNormal ({vsbc['num_datasets']} data sets, {vsbc['meta']['num_svi_steps']} steps of Adam(0.01)):",
            "",
            HEAD.format(first="guide"),
            _row("AutoNormal (mean field), from vsbc_diagnostic", vsbc),
            *([_row("AutoNormal, through `dts-ppl sbc --guide autonormal` (other data sets)", auto)] if auto else []),
            "",
            f"vsbc_diagnostic's own KS symmetry test gives p < 0.05 on {vsbc['meta']['ks_pvalue_below_0.05']} of "
            f"{vsbc['num_quantities']} coordinates (it tests symmetry of the PIT, not its uniformity: it",
            f"misses a guide that is too narrow but centred). Command: `{vsbc['meta']['command']}`.",
            "",
        ]
    return "\n".join(lines)


def rules_section() -> str:
    lines = [
        "## mlp, logistic and ddpm: which rule is calibrated",
        "",
        "Each preset's model and design (`dts_ppl.experiments.validation`), the guide with each",
        "linearisation (MLP and DDPM links) or GLM expansion point (logistic rewards). The default",
        "is marked. Ties in the verdicts below are broken by the smallest largest ECDF deviation.",
        "",
        HEAD.format(first="preset, rule"),
    ]
    commands, verdicts = [], []
    for preset, rules in (
        ("mlp", ("identity", "jacobian", "iterated")),
        ("logistic", ("prior", "mle")),
        ("ddpm", ("identity", "jacobian", "iterated")),
    ):
        found = {r: _load(f"{preset}-{r}") for r in rules}
        found = {r: d for r, d in found.items() if d is not None}
        if not found:
            lines.append(f"| {preset} | not measured | | | | | |")
            continue
        for rule, data in found.items():
            mark = " (default)" if rule == DEFAULTS[preset] else ""
            label = f"{preset}, {'expansion ' if preset == 'logistic' else ''}{rule}{mark}"
            lines.append(_row(f"{label}, {data['num_datasets']:,} sets", data))
            commands.append(command(data))
        best = min(found, key=lambda r: (found[r]["num_outside"], _summary(found[r])["max_diff"]))
        best_theta = min(found, key=lambda r: (_outside_theta(found[r]), _summary(found[r])["max_diff"]))
        default = DEFAULTS[preset]
        verdicts.append(
            f"- **{preset}**: fewest quantities outside: {best!r}; fewest among theta and the derived quantities "
            f"(what an agent acts on): {best_theta!r} ("
            + ", ".join(f"{r} {_outside_theta(d)}" for r, d in found.items())
            + f" of {_num_theta(next(iter(found.values())))}); the default is {default!r}."
        )
    lines += ["", *verdicts, "", "Commands:", "", *[f"    {c}" for c in commands], ""]
    return "\n".join(lines)


def bandit_section() -> str:
    names = ("fig1-lindiff-lin-k100", "fig1-nonlindiff-lin-k100", "fig1-lindiff-logistic-k100")
    found = {n: _load(f"bandit-{n}") for n in names}
    found = {n: d for n, d in found.items() if d is not None}
    lines = [
        "## Bandit SBC: the dTS posterior on the data dTS collected",
        "",
        "Each run draws (psi*, theta*) from the panel's prior, lets the panel's dTS agent play n rounds",
        "(contexts U[-1, 1]^d), builds `DTSGuide.from_statistics(model, agent statistics)` and ranks",
        "every coordinate of psi* and theta* (10 + 500), the best action's value at 3 test contexts and",
        "x_t^T theta_m of the most-played action m among 99 guide draws. Exact Bayes is calibrated under",
        "the adaptive design; an approximation need not be.",
        "",
        "| panel | runs x rounds | mean pulls of the most-played action | outside the 95% band (expected) | "
        "outside, by kind | rejected after Bonferroni | largest max abs(ECDF - z) | mean PIT range | "
        "PIT variance ratio range | wall time, in all (load average at start) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cmds = []
    for name, data in found.items():
        s, m = _summary(data), data["meta"]
        lines.append(
            f"| {name} | {m['num_runs']:,} x {m['num_rounds']} | {m['mean_pulls_of_most_played']:.1f} | "
            f"{s['outside']} ({s['expected']}) | {s['groups']} | {s['family']} | {s['worst']} | {s['pit']} | {s['ratio']} "
            f"| {m['total_seconds']:.0f} s ({m['load_average_at_start'][0]:.1f}) |"
        )
        cmds.append(command(data))
    lines += ["", "Commands:", "", *[f"    {c}" for c in cmds], ""]
    return "\n".join(lines)


def page() -> str:
    intro = """# Calibration: simulation-based calibration of the guides

Generated by `python docs/make_calibration.py` from `studies/calibration/results/*.json`, which
`PYTHONPATH=. python studies/calibration/sbc_study.py` writes (each JSON records its command).

Simulation-based calibration (Talts et al. 2018) checks a guide on average over the prior: draw
(psi, theta, y) from the model, fit the guide to y, and rank each true quantity among the guide's
draws. A calibrated guide gives uniform ranks for every quantity; a guide that is too narrow gives
U-shaped ranks (PIT variance ratio above 1), a biased one skewed ranks (mean PIT away from 1/2).

    from dts_ppl.ppl.sbc import sbc
    report = sbc(model, DTSGuide(model), key, num_datasets=10_000, num_draws=99, X=X, A=A)
    print(report); report.plot("sbc.png"); report.to_json("sbc.json")

or `dts-ppl sbc --preset linear|mlp|logistic|ddpm|fig1-...-k100 --json r.json --plot r.png`.

**The band.** Uniformity is judged with the simultaneous 95% ECDF band of Säilynoja, Bürkner and
Vehtari (2022), computed by **simulation** (their section 2.2), not by their optimisation: under
uniformity the count of ranks <= j is Binomial(N, (j + 1) / (S + 1)); the pointwise binomial
interval's tail level is lowered until 95% of 20,000 simulated uniform rank samples lie inside it
at every j. `tests/ppl/test_sbc.py` checks its false-alarm rate on fresh uniform ranks (5% within
Monte-Carlo error, at N = 200, S = 19 and N = 1000, S = 99) and that it is the exact binomial
interval when S = 1. Each quantity also gets the test's p-value; "rejected after Bonferroni"
counts quantities with p < 0.05 / Q.

**Guides.** `DTSGuide` and any guide with `fit(X, A, y)` and
`sample_posterior(rng_key, params, sample_shape=...)` are fitted to all data sets in one `vmap` per
chunk; any NumPyro AutoGuide is fitted by SVI per data set (vmapped too), with the same report.
"""
    return "\n".join([intro, linear_section(), rules_section(), bandit_section()]).rstrip() + "\n"


def main() -> int:
    text = page()
    if "--check" in sys.argv[1:]:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python docs/make_calibration.py")
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
