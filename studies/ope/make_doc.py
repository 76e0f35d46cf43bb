"""docs/ope.md and its RMSE plot from studies/ope/results/large_k*.json (studies/ope/large_k.py).

PYTHONPATH=. python studies/ope/make_doc.py            # writes docs/ope.md, results/large_k_rmse.png
PYTHONPATH=. python studies/ope/make_doc.py --check    # exits 1 if docs/ope.md is out of date
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from dts_ppl.io.serialization import atomic_write
from studies.common import ROOT, results_dir

RESULTS = results_dir("ope")
MAIN = RESULTS / "large_k.json"
VARIANTS = {
    "large_k_uninformed.json": "target uninformed (theta_hat an independent prior draw)",
    "large_k_categorical.json": "categorical environment (theta constant within the MIPS categories)",
    "large_k_el.json": "EL intervals with bounds on the unseen rows' mean reward (the main run's K = 1,000 and "
    "10,000 replicates)",
    "large_k_m2.json": "EL intervals with the weights' known second moment (the main run's replicates at every K)",
}
PLOT = RESULTS / "large_k_rmse.png"
DOC = ROOT / "docs" / "ope.md"
LOW, HIGH = 0.90, 0.99
#: fewer replicates inside an estimator's domain than this: the cell makes no claim for it
MIN_INSIDE = 20
#: the EL intervals whose atoms (the unseen mass) take the worst reward a bound allows: their
#: over-coverage is named with that reason
WORST_CASE_ATOMS = {
    "ips_el",
    "ips_el_policy",
    "ips_auto",
    "dr_el",
    "dr_el_policy",
    "dr_auto",
    "ips_el_mean",
    "dr_el_mean",
    "ips_el_sd",
    "dr_el_sd",
    "dr_el_post_sd",
    "ips_el_m2",
    "dr_el_m2",
    "ips_auto_m2",
    "dr_auto_m2",
}
LABELS = {
    "ips_normal": "IPS, normal",
    "snips_normal": "SNIPS, normal",
    "ips_el": "IPS, EL",
    "ips_el_policy": "IPS, EL, policy weight range",
    "ips_auto": "IPS, the rule: normal if policy ESS >= 10%, else EL (policy range)",
    "dr": "DR, normal",
    "dr_el": "DR, EL residual term",
    "dr_el_policy": "DR, EL residual, policy range",
    "dr_auto": "DR, the rule: normal if policy ESS >= 10%, else EL (policy range)",
    "ips_el_mean": "IPS, EL, atoms' reward in the true mean-reward range (`mean_reward_range`)",
    "dr_el_mean": "DR, EL, atoms' residual in the true model-error range (`mean_residual_range`)",
    "ips_el_sd": "IPS, EL, atoms tied to V by the true mean-reward sd (`mean_reward_sd`)",
    "dr_el_sd": "DR, EL, atoms tied to V by the true model-error sd (`residual_sd`)",
    "dr_el_post_sd": "DR, EL, atoms tied to V by the posterior's error sd (`posterior_error_sd`)",
    "ips_el_profile": "IPS, profile EL without atoms (E_Q[w] = 1 on the logged rows only)",
    "dr_el_profile": "DR, profile EL without atoms",
    "ips_el_m2": "IPS, EL, atoms limited by the weights' known E[w^2] (`el_moment_interval`)",
    "dr_el_m2": "DR, EL residual, atoms limited by the known E[w^2] (`second_moment`)",
    "ips_auto_m2": "IPS, the rule with the E[w^2] EL: normal if policy ESS >= 10%, else EL with E[w^2]",
    "dr_auto_m2": "DR, the rule with the E[w^2] EL: normal if policy ESS >= 10%, else EL with E[w^2]",
    "dm": "DM, dTS posterior",
    "mips_normal": "MIPS (item-feature k-means), normal",
    "mips_el": "MIPS (item-feature k-means), EL",
    "mips_post_normal": "MIPS (posterior categories), normal",
    "mips_post_el": "MIPS (posterior categories), EL",
}
#: (estimator rows, where the interval is claimed: the user's check, the package's warning outside)
DOMAINS = [
    (
        "IPS, SNIPS, DR, MIPS: normal",
        "the policies' relative ESS, `ope_large.policy_ess` = 1 / mean_i sum_a pi(a|x_i)^2 / mu(a|x_i) (over "
        "categories for MIPS), at least `ope.ESS_WARN_FRACTION` (10%); without the logging probabilities, the "
        "logged weights' own ESS (optimistic: measured below)",
        "`ope.LowEffectiveSampleSize` (`mips`, `posterior_mips`, `posterior_doubly_robust(logging=...)`: policy "
        "ESS; `ips`, `snips`, `doubly_robust`: the logged weights' ESS)",
    ),
    (
        "IPS, DR, MIPS: EL",
        "the same ESS below 10% (the complement: where the normal interval is not claimed), and, as a 95% "
        "interval, only at the cells below where its measured coverage is in [0.90, 0.99]. Elsewhere it is NOT "
        "claimed: it over-covers (up to 1.000 at K >= 1,000 under skewed logging; the worst-case reward of the "
        "atoms standing for the unseen mass), so it is conservative, which is NOT the issue's band",
        "none (the recommended interval there)",
    ),
    (
        "IPS, DR: the rule (normal if the policy ESS >= 10%, else EL with the policy weight range, or with E[w^2])",
        "everywhere, as a 95% interval only at the cells below where its measured coverage is in [0.90, 0.99]",
        "-",
    ),
    (
        "DM, dTS posterior",
        "`ope_large.prior_share` <= `ope_large.PRIOR_SHARE_WARN` (10%): the logs leave at most 10% of the "
        "target's actions' own prior variance S_1",
        "`ope_large.PriorDominated`",
    ),
    (
        "MIPS (item features or `posterior_mips`)",
        "also `prior_share` <= 10%, and the direct-effect bias under the posterior-mean reward "
        "(`ope_large.direct_effect_bias`) at most `ope_large.DIRECT_EFFECT_WARN` (0.5) se",
        "`PriorDominated`, `ope_large.DirectEffect`",
    ),
]
EXAMPLE = """
import warnings

import jax
import numpy as np

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.analysis import ope, ope_large

rng = np.random.default_rng(0)
n, K, d = 500, 50, 2
prior = DiffusionPrior.linear([np.eye(d)], [1.0, 1.0])  # the dTS prior of the reward model
theta = rng.normal(size=d) + rng.normal(size=(K, d))
X = rng.normal(size=(n, d))
logging = np.full((n, K), 1.0 / K)  # uniform logging
a = rng.integers(0, K, n)
p = logging[np.arange(n), a]
r = np.sum(X * theta[a], axis=1) + rng.normal(size=n)
scores = X @ (theta + rng.normal(0, 0.5, theta.shape)).T
target = np.exp(scores - scores.max(1, keepdims=True))
target /= target.sum(1, keepdims=True)

with warnings.catch_warnings(record=True) as caught:  # each call outside its domain warns
    warnings.simplefilter("always", ope.OutsideDomain)
    # doubly robust with the dTS posterior mean; the EL interval for heavy-tailed weights, with the
    # weight range the two policies allow on these contexts
    wr = ope_large.policy_weight_range(logging, target)
    print(ope_large.posterior_doubly_robust(prior, X, a, r, p, target, Gaussian(1.0), interval="el", weight_range=wr))
    print(ope_large.posterior_direct_method(jax.random.PRNGKey(1), prior, X, a, r, target, Gaussian(1.0)))
    # MIPS over k-means categories of the cross-fitted posterior means of theta
    print(ope_large.posterior_mips(jax.random.PRNGKey(2), prior, X, a, r, logging, target, Gaussian(1.0)))
for c in caught:
    print(c.category.__name__, str(c.message)[:80])
"""

POINTS = {
    "ips_normal": "IPS",
    "dr": "DR (dTS posterior mean)",
    "dm": "DM (dTS posterior)",
    "mips_normal": "MIPS, item-feature k-means",
    "mips_post_normal": "MIPS, posterior categories",
}


def load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def grid(data) -> tuple[list[int], list[str]]:
    """The K values and logging policies of a results file, in run order."""
    Ks, loggers = [], []
    for cell in data["cells"]:
        logger, k = cell.split("/K=")
        if int(k) not in Ks:
            Ks.append(int(k))
        if logger not in loggers:
            loggers.append(logger)
    return Ks, loggers


def in_target(c: float, est: str = "") -> bool:
    """Whether a coverage is in the issue's band [0.90, 0.99] (the same two-sided band for every estimator)."""
    return LOW <= c <= HIGH


def claimed(row: dict) -> bool:
    """Whether a cell makes a claim for an estimator: enough replicates inside its domain."""
    return row.get("inside_reps", 0) >= MIN_INSIDE


def reason(row: dict, est: str = "") -> str:
    """Why a cell misses [0.90, 0.99], from its measured bias, spread and interval (replicates inside the domain)."""
    r = row["inside"]
    if r["coverage"] > HIGH:
        cause = (
            "the worst-case bound on the unseen mass (the atoms for the weights the sample missed take the extreme "
            "reward allowed); "
            if est in WORST_CASE_ATOMS
            else ""
        )
        width, rmse = r["mean_interval_width"], r["rmse"]
        if width >= 3.92 * rmse:
            shape = (
                f"too wide: mean width {width:.3g} against an RMSE of {rmse:.3g} (an exact 95% normal interval"
                f" would be about 3.92 x RMSE = {3.92 * rmse:.3g} wide)"
            )
        else:
            shape = (
                f"mean width {width:.3g}, narrower than 3.92 x RMSE = {3.92 * rmse:.3g}: the errors are heavy-tailed"
                " (a few replicates with large errors carry the RMSE) and the interval is too wide for the bulk"
            )
        return cause + shape + ("; no replicate's truth below" if r["miss_high"] == 0 else "")
    bias, bias_se, se = r["bias"], r["bias_mc_se"], r["mean_se"]
    sd = math.sqrt(max(r["rmse"] ** 2 - bias**2, 0.0))
    parts = []
    if abs(bias) > 3 * bias_se and abs(bias) > 0.5 * se:
        parts.append(f"bias {bias:+.3g} (MC s.e. {bias_se:.2g}) against a mean se of {se:.3g}")
    if sd > 1.25 * se:
        parts.append(f"se too small: mean se {se:.3g} against an error sd of {sd:.3g}")
    if not parts:
        parts.append(f"bias {bias:+.3g}, error sd {sd:.3g}, mean se {se:.3g}")
    parts.append(f"truth above the interval in {r['miss_low']:.1%} of replicates, below in {r['miss_high']:.1%}")
    return "; ".join(parts)


def cell_text(row: dict | None, est: str = "") -> str:
    """'all-replicate coverage +- MC s.e. / coverage inside the domain (replicates) / RMSE'; bold: the claim fails."""
    if row is None:
        return "not run"
    text = f"{row['coverage']:.3f} ± {row['coverage_mc_se']:.3f}"
    if "inside_reps" not in row:
        return f"{text} ({row['reps']}) / {row['rmse']:.3f}"
    if claimed(row):
        c = row["inside"]["coverage"]
        inside = f"{c:.3f} ({row['inside_reps']})"
        inside = inside if in_target(c, est) else f"**{inside}**"
    else:
        inside = f"outside ({row['inside_reps']})"
    return f"{text} / {inside} / {row['rmse']:.3f}"


def tables(data) -> list[str]:
    Ks, loggers = grid(data)
    out = []
    for logger in loggers:
        cells = [data["cells"].get(f"{logger}/K={K}") for K in Ks]
        head = "| estimator, interval | " + " | ".join(f"K = {K:,}" for K in Ks) + " |"
        rule = "|---|" + "---|" * len(Ks)
        out += [
            f"**{logger} logging**: coverage over all replicates ± MC s.e. / coverage inside the estimator's domain "
            "(replicates inside; `outside` when fewer than 20) / RMSE",
            "",
            head,
            rule,
        ]
        for est, label in LABELS.items():
            if not any(c is not None and est in c for c in cells):
                continue
            out.append(f"| {label} | " + " | ".join(cell_text(c.get(est) if c else None, est) for c in cells) + " |")
        checks = [c.get("checks") if c else None for c in cells]
        if any(checks):
            rows = [
                ("relative ESS, IPS: policies / logged weights (mean)", ("policy_ess", "ess"), "{:.3f}"),
                (
                    "relative policy ESS, MIPS: item-feature / posterior categories",
                    ("mips_policy_ess", "post_policy_ess"),
                    "{:.3f}",
                ),
                ("prior share rho (median)", "rho", "{:.3f}"),
            ]
            for label, key, fmt in rows:
                if isinstance(key, tuple):
                    vals = [" / ".join(fmt.format(c[k]["mean"]) for k in key) if c else "" for c in checks]
                else:
                    stat = "median" if key == "rho" else "mean"
                    vals = [fmt.format(c[key][stat]) if c else "" for c in checks]
                out.append(f"| {label} | " + " | ".join(vals) + " |")
            bias_rows = ("mips_normal", "mips_post_normal", "dm", "dr")
            if all(c is None or all(e in c for e in bias_rows) for c in cells):
                out.append(
                    "| bias (MC s.e.): MIPS item-feature / posterior / DM / DR | "
                    + " | ".join(
                        " / ".join(
                            f"{c[e]['bias']:+.3f} ({c[e]['bias_mc_se']:.3f})"
                            for e in ("mips_normal", "mips_post_normal", "dm", "dr")
                        )
                        if c and all(e in c for e in ("mips_normal", "mips_post_normal", "dm", "dr"))
                        else ""
                        for c in cells
                    )
                    + " |"
                )
            out.append(
                "| direct-effect bias under the posterior mean (mean): item-feature / posterior | "
                + " | ".join(
                    f"{c['bhat_mips']['mean']:+.3f} / {c['bhat_post']['mean']:+.3f}" if c else "" for c in checks
                )
                + " |"
            )
        out.append("")
    return out


SAMPLE_ROWS = ("ips_normal", "snips_normal", "dr", "ips_el", "dr_el")


def sample_table(data) -> list[str]:
    """Coverage inside the ESS domains when the check is the logged weights' own ESS instead of the policies'."""
    Ks, loggers = grid(data)
    out = [
        "**The ESS check on the logged weights instead** (`ope.effective_sample_size`, the check of",
        "`ope.LowEffectiveSampleSize` in `ips`, `snips`, `doubly_robust`): coverage inside the domain (replicates)",
        "",
        "| estimator, interval | " + " | ".join(f"{lg} K = {K:,}" for lg in loggers for K in Ks) + " |",
        "|---|" + "---|" * (len(Ks) * len(loggers)),
    ]
    for est in SAMPLE_ROWS:
        vals = []
        for lg in loggers:
            for K in Ks:
                row = data["cells"].get(f"{lg}/K={K}", {}).get(est, {})
                if "inside_sample" in row and row["inside_sample_reps"] >= MIN_INSIDE:
                    c = row["inside_sample"]["coverage"]
                    t = f"{c:.3f} ({row['inside_sample_reps']})"
                    vals.append(t if in_target(c, est) else f"**{t}**")
                else:
                    vals.append(f"outside ({row.get('inside_sample_reps', 0)})")
        out.append(f"| {LABELS[est]} | " + " | ".join(vals) + " |")
    return out + [""]


def verdicts(data) -> tuple[list[str], list[str], list[str]]:
    """Per estimator: the verdict line and each failing cell; the labels that hold and that fail."""
    Ks, loggers = grid(data)
    out, holds, fails_at_large = [], [], []
    for est, label in LABELS.items():
        cells = [
            (lg, K, data["cells"][f"{lg}/K={K}"][est])
            for K in Ks
            for lg in loggers
            if f"{lg}/K={K}" in data["cells"] and est in data["cells"][f"{lg}/K={K}"]
        ]
        if not cells or "inside_reps" not in cells[0][2]:
            continue
        inside = [(lg, K, r) for lg, K, r in cells if claimed(r)]
        good = [(lg, K, r) for lg, K, r in inside if in_target(r["inside"]["coverage"])]
        bad = [(lg, K, r) for lg, K, r in inside if not in_target(r["inside"]["coverage"])]
        outside = [f"{lg} K = {K:,}" for lg, K, r in cells if not claimed(r)]
        where = ", ".join(f"{lg} K = {K:,}" for lg, K, _ in good) or "nowhere in this study"
        out.append(
            f"- **{label}**: claimed (coverage inside its domain in [0.90, 0.99]) at {where}"
            + (
                f"; NOT claimed (inside its domain, coverage outside the band) at "
                f"{', '.join(f'{lg} K = {K:,}' for lg, K, _ in bad)}"
                if bad
                else ""
            )
            + (f"; outside its domain at {', '.join(outside)}" if outside else "")
            + "."
        )
        for lg, K, r in bad:
            c, se = r["inside"]["coverage"], r["inside"]["coverage_mc_se"]
            kind = "over-covers" if c > HIGH else "under-covers"
            out.append(f"  - {kind}, {lg} logging, K = {K:,}: coverage {c:.3f} ± {se:.3f} inside; {reason(r, est)}.")
        if good and not bad:
            holds.append(label)
        if any(K >= 1000 for _, K, _ in bad):  # leaves the band at large K
            fails_at_large.append(label)
    return out, holds, fails_at_large


def large_held(data) -> list[str]:
    """'label (logger K)' for every cell at K >= 1,000 whose coverage inside the domain is in [0.90, 0.99]."""
    Ks, loggers = grid(data)
    return [
        f"{label} ({lg} K = {K:,}: {data['cells'][f'{lg}/K={K}'][est]['inside']['coverage']:.3f})"
        for est, label in LABELS.items()
        for K in Ks
        for lg in loggers
        if K >= 1000
        and est in data["cells"].get(f"{lg}/K={K}", {})
        and claimed(data["cells"][f"{lg}/K={K}"][est])
        and in_target(data["cells"][f"{lg}/K={K}"][est]["inside"]["coverage"])
    ]


def series(data, logger: str, est: str, field: str, fmt: str = "{:+.2f}", inside: bool = False) -> str:
    """'K = 10: x, K = 100: y, ...' of one estimator's field under one logging policy."""
    Ks, _ = grid(data)
    parts = []
    for K in Ks:
        cell = data["cells"].get(f"{logger}/K={K}")
        if cell is None or est not in cell:
            continue
        if inside:
            row = cell[est].get("inside") if claimed(cell[est]) else None
            count = f" ({cell[est]['inside_reps']})" if row else ""
            parts.append(f"{K:,}: " + (fmt.format(row[field]) + count if row else "outside"))
        else:
            parts.append(f"{K:,}: " + fmt.format(cell[est][field]))
    return ", ".join(parts)


def check_series(data, logger: str, key: str, stat: str = "mean", fmt: str = "{:.3f}") -> str:
    Ks, _ = grid(data)
    return ", ".join(
        f"{K:,}: {fmt.format(data['cells'][f'{logger}/K={K}']['checks'][key][stat])}"
        for K in Ks
        if f"{logger}/K={K}" in data["cells"]
    )


def mechanisms(data, variants) -> list[str]:
    """Why each estimator fails, with the numbers of the main run and of the variants that isolate the cause."""
    out = [
        "- **IPS, SNIPS and DR, normal interval: the importance weights.** The relative ESS the policies imply",
        f"  under uniform logging falls with K (mean, K = {check_series(data, 'uniform', 'policy_ess')}): a few rows",
        "  carry the estimate, and a sample that missed the large weights is both low and narrow (every miss",
        "  has the truth above the interval), so the normal interval undercovers (IPS, uniform logging, all",
        f"  replicates: {series(data, 'uniform', 'ips_normal', 'coverage', '{:.3f}')}; DR:",
        f"  {series(data, 'uniform', 'dr', 'coverage', '{:.3f}')}). The 10% ESS rule marks those replicates:",
        "  inside it (policy ESS >= 10%; replicates inside) the DR normal interval covers",
        f"  {series(data, 'uniform', 'dr', 'coverage', '{:.3f}', inside=True)} (uniform) and",
        f"  {series(data, 'skewed', 'dr', 'coverage', '{:.3f}', inside=True)} (skewed). The logged weights' own",
        "  ESS is no substitute: it is high exactly in the samples that missed the large weights, so the",
        "  replicates it lets in are the undercovering ones (table above).",
        "- **EL intervals: valid, and too wide.** The empirical-likelihood interval (Karampatziakis et al.",
        "  2020) lets the probability mass that the sample's weights miss (1 - mean w) sit on an unseen",
        "  weight at w_max whose reward may be anything in the reward range, at no cost in likelihood. With",
        "  rewards x^T theta + N(0, 1) the observed range spans about 7 noise sd, so the interval widens by",
        "  about (1 - mean w) x range: it never undercovers here, and it overcovers inside its domain",
        f"  (IPS EL, uniform: {series(data, 'uniform', 'ips_el', 'coverage', '{:.3f}', inside=True)};",
        f"  skewed: {series(data, 'skewed', 'ips_el', 'coverage', '{:.3f}', inside=True)}; DR EL, uniform:",
        f"  {series(data, 'uniform', 'dr_el', 'coverage', '{:.3f}', inside=True)}; skewed:",
        f"  {series(data, 'skewed', 'dr_el', 'coverage', '{:.3f}', inside=True)}). Skewed logging gives some",
        "  actions the target likes a tiny probability, so w_max is far above the weights a sample shows and",
        "  the missing mass is large. The policy weight range (`policy_weight_range`: the largest pi/mu",
        "  the policies allow on the logged contexts, instead of 1 / min p) narrows it a little (mean width,",
        f"  uniform, default / policy range: {series(data, 'uniform', 'ips_el', 'mean_interval_width', '{:.2f}')} /",
        f"  {series(data, 'uniform', 'ips_el_policy', 'mean_interval_width', '{:.2f}')}).",
        "  No reward bound is known for Gaussian rewards; with a known bounded range (e.g. clicks in [0, 1]",
        "  passed as `reward_range`) the atom's reward is limited to it. Bounds on the unseen rows' MEAN reward",
        "  (`mean_reward_range`, `mean_reward_sd`) are derived and measured in the next section.",
        "- **DM: an informed target.** The posterior shrinks the parameters of rarely logged actions to the",
        "  prior's mean; a target built from information about theta that the logs lack prefers actions that",
        "  are better than their posterior mean says, so the DM is biased low, more so as rows per action fall",
        f"  (uniform logging, bias at K = {series(data, 'uniform', 'dm', 'bias')}); its posterior interval",
        "  cannot see that bias. The prior share rho measures how much of the target's actions' own prior",
        f"  variance the logs leave (median, uniform: {check_series(data, 'uniform', 'rho', 'median')}): above",
        "  10% the DM is outside its domain and warns.",
        "- **MIPS: direct effects.** MIPS is unbiased only if the target and the logging policy choose alike",
        "  among the actions of a category. Categories from item features are not reward-homogeneous, and the",
        "  informed target picks the best actions within a category (uniform logging, bias at",
        f"  K = {series(data, 'uniform', 'mips_normal', 'bias')}). Categories from the cross-fitted posterior means",
        "  of theta (`posterior_mips`) are as homogeneous as the logs can tell, which is little where the",
        "  posterior is the prior's: the actions a fold never logged all have the same posterior mean (the",
        "  shared latent's), so k-means lumps them into a few categories inside which the informed target",
        "  picks the best; bias (uniform)",
        f"  {series(data, 'uniform', 'mips_post_normal', 'bias')}. The direct-effect check under the posterior-mean",
        "  reward sees the bias where the posterior is informed (mean estimated bias, uniform, item-feature:",
        f"  {check_series(data, 'uniform', 'bhat_mips', 'mean', '{:+.3f}')}), and the prior-share check excludes",
        "  the rest.",
    ]
    for name, (title, v) in variants.items():
        if "uninformed" in name:
            out += [
                f"- The **{title}** variant isolates the DM's cause: with a target that knows nothing of theta,",
                f"  the DM covers (all replicates, uniform: {series(v, 'uniform', 'dm', 'coverage', '{:.3f}')}; skewed:",
                f"  {series(v, 'skewed', 'dm', 'coverage', '{:.3f}')}).",
            ]
        if "categorical" in name:
            out += [
                f"- The **{title}** variant (no direct effect; MIPS given the true categories): MIPS bias",
                f"  {series(v, 'uniform', 'mips_normal', 'bias')} (uniform), {series(v, 'skewed', 'mips_normal', 'bias')}"
                " (skewed); normal-interval coverage over all replicates",
                f"  {series(v, 'uniform', 'mips_normal', 'coverage', '{:.3f}')} (uniform),",
                f"  {series(v, 'skewed', 'mips_normal', 'coverage', '{:.3f}')} (skewed).",
            ]
    return out


def fmt_range(pair) -> str:
    return f"[{pair[0]:+.1f}, {pair[1]:+.1f}]"


def el_bounds(variants) -> list[str]:
    """The derivation of the EL intervals with bounds on the unseen rows' mean reward, and what they measured."""
    out = [
        "## EL intervals with bounds on the unseen rows' mean reward",
        "",
        "The EL interval profiles V = E_Q[w r] over distributions Q with mass q_i on the n logged (w_i, r_i)",
        "and the rest on two atoms at w_min and w_max whose reward rho may be anything in [r_lo, r_hi];",
        "E_Q[1] = E_Q[w] = 1, and sum_i log q_i within chi2_1(0.95) / 2 of its maximum. Assumptions: (A1) the",
        "rows are i.i.d. from the logging policy mu; (A2) every weight lies in [w_min, w_max]; (A3) Wilks'",
        "chi-square calibration holds for the logged part (asymptotic: it needs enough rows carrying the",
        "target's mass); (A4) the bound passed holds (below).",
        "",
        "1. **The atoms' reward is a mean reward.** Let T be the target's distribution of (x, a) (dT = w dmu)",
        "   and m(x, a) = E[r | x, a]; the noise has mean 0 given (x, a), so V = E[w r] = E_T[m]. The atoms stand",
        "   for a part R of (x, a) the sample did not show, with T(R) = delta = 1 - sum_i q_i w_i, and carry",
        "   E[w r; R] = delta E_T[m | R]: rho = E_T[m | R] is an average of mean rewards. If every m(x, a) lies",
        "   in [m_lo, m_hi], so do rho and V (`ope.el_interval(..., mean_reward_range=(m_lo, m_hi))`; at the",
        "   lower end V = m_lo + a^T q with a_i = w_i (r_i - m_lo), negative where a noisy r_i < m_lo, and the",
        "   dual n exp(mean_i log D_i + c / n) - lam - mu, D_i = a_i + lam u_i + mu v_i, is maximised over the",
        "   (lam, mu) >= 0 with every D_i > 0 by Newton's method on the interior and each face:",
        "   `ope_large.el_dual_interval`).",
        "2. **A spread bound.** If sd_T(m) <= sigma, then for any R with T(R) = delta, Cov_T(m, 1_R) =",
        "   delta (E_T[m | R] - V) and |Cov_T(m, 1_R)| <= sigma sqrt(delta (1 - delta)) (Cauchy-Schwarz), so",
        "   |rho - V| <= sigma sqrt((1 - delta) / delta). With A = sum_i q_i w_i r_i and W = 1 - delta,",
        "   V = A + delta rho gives V >= (A - sigma sqrt(W (1 - W))) / W, and V >= A + delta r_lo from the",
        "   range; both increase with A, so the lower end is min_W max(F(W) + (1 - W) r_lo,",
        "   (F(W) - sigma sqrt(W (1 - W))) / W) with F(W) = min {A : Q in the EL set, sum_i q_i w_i = W}",
        "   (a dual in two multipliers), the upper end likewise (`mean_reward_sd=sigma`;",
        "   `ope_large.el_sd_interval`, atoms at w = 0 and w_max: a larger set of Q, conservative).",
        "3. **DR.** The residual term E[w (r - q)] has the same form with e = r - q; the atoms' residual is",
        "   E_T[m - q | R], the reward model's error (`doubly_robust_el(..., mean_residual_range=...,",
        "   residual_sd=...)`). The dTS posterior gives E[(x^T theta_a - x^T m_a)^2 | logs] = x^T Cov(theta_a |",
        "   logs) x, so `ope_large.posterior_error_sd` = sqrt(mean_i sum_a pi(a | x_i) x_i^T Cov(theta_a | logs)",
        "   x_i) is the error's sd under the target when the prior is right and the target is built",
        "   without information on theta beyond the logs (not true of the informed target here).",
        "4. **The profile EL without atoms** (Owen's EL with the known E[w] = 1, `el_dual_interval(...,",
        "   atoms=False)`): the constraints become equalities sum_i q_i = 1, sum_i q_i w_i = 1, the",
        "   multipliers free in sign. It assumes the sample shows every weight that matters.",
        "",
        "Each dual value is at most the primal optimum and the likelihood's level is that of a feasible q,",
        "so an inexact solve widens the interval; the duals equal SLSQP's primal solutions on small samples",
        "(tests/analysis/test_ope_large.py). A bound that holds needs no change of level; a bound that holds",
        "only with probability 1 - alpha (a posterior range) would need the EL at level 1 - (0.05 - alpha) (a",
        "union bound).",
        "",
    ]
    name = "large_k_el.json"
    if name not in variants:
        return out
    _, v = variants[name]
    Ks, loggers = grid(v)

    def cells(est: str, field: str = "coverage", fmt: str = "{:.3f}") -> str:
        parts = []
        for lg in loggers:
            for K in Ks:
                row = v["cells"].get(f"{lg}/K={K}", {}).get(est)
                if row is None:
                    continue
                val = row["inside"][field] if field == "coverage" and claimed(row) else row[field]
                parts.append(f"{lg} {K:,}: {fmt.format(val)}")
        return "; ".join(parts)

    def bound(key: str) -> str:
        parts = []
        for lg in loggers:
            for K in Ks:
                b = v["cells"].get(f"{lg}/K={K}", {}).get("bounds")
                if b is None:
                    continue
                val = b[key]
                parts.append(f"{lg} {K:,}: " + (fmt_range(val) if isinstance(val, list) else f"{val:.2f}"))
        return "; ".join(parts)

    def bands(est: str) -> str:
        """'in [0.90, 0.99]: ...; above 0.99: ...; below 0.90: ...' over the cells (coverage inside the domain)."""
        groups = {"in [0.90, 0.99]": [], "above 0.99": [], "below 0.90": []}
        for lg in loggers:
            for K in Ks:
                row = v["cells"].get(f"{lg}/K={K}", {}).get(est)
                if row is None or not claimed(row):
                    continue
                c = row["inside"]["coverage"]
                key = "above 0.99" if c > HIGH else ("below 0.90" if c < LOW else "in [0.90, 0.99]")
                groups[key].append(f"{lg} {K:,} ({c:.3f})")
        return "; ".join(f"{k}: {', '.join(g)}" for k, g in groups.items() if g) or "no cell inside its domain"

    out += [
        "**Measured** (`studies/ope/results/large_k_el.json`, the main run's replicates at K = 1,000 and",
        "10,000, every interval with the policy weight range; coverage inside the EL domain (policy ESS",
        "below 10%), mean width; the bounds are the TRUE ones of each replicate, the tightest a user could",
        "state; the tables are in the variant section below):",
        "",
        "- The mean-reward range does not help here: over the population's 100 contexts x K actions the",
        f"  true mean rewards span (mean over replicates) {bound('mean_range')}, against the noisy rewards",
        f"  the sample shows, {bound('reward_range')}: the extremes of 100 x K Gaussian means reach as far as",
        "  those of 1,000 noisy rewards. So do the model errors m - q,",
        f"  {bound('err_range')}, against the residuals {bound('residual_range')}.",
        f"  Mean width (IPS, EL, mean range): {cells('ips_el_mean', 'mean_interval_width', '{:.2f}')}; the",
        f"  plain EL's: {cells('ips_el_policy', 'mean_interval_width', '{:.2f}')}; coverage {bands('ips_el_mean')}.",
        "  A bound on every (x, a) is at least as wide as the true range, so no posterior-derived range can",
        "  do better.",
        "- The spread bound narrows the interval (mean width, IPS:",
        f"  {cells('ips_el_sd', 'mean_interval_width', '{:.2f}')}; DR: {cells('dr_el_sd', 'mean_interval_width', '{:.2f}')};",
        f"  plain EL, DR: {cells('dr_el_policy', 'mean_interval_width', '{:.2f}')}). Coverage, IPS: {bands('ips_el_sd')};",
        f"  DR: {bands('dr_el_sd')}. The true sd of the mean reward under the target: {bound('mean_sd')};",
        f"  of the model error: {bound('err_sd')} (in reward units; the noise sd is 1), so",
        "  sigma sqrt((1 - delta) / delta) still lets the atoms sit several noise sd from V when delta is small.",
        f"- The posterior's error sd ({bound('post_err_sd')}) is below the true one under this informed",
        f"  target; coverage {bands('dr_el_post_sd')} (mean width",
        f"  {cells('dr_el_post_sd', 'mean_interval_width', '{:.2f}')}); not claimed: (A4) fails.",
        f"- The profile EL without atoms: IPS {bands('ips_el_profile')}; DR {bands('dr_el_profile')}",
        f"  (mean width, IPS: {cells('ips_el_profile', 'mean_interval_width', '{:.2f}')}). It measures how much",
        "  of the EL intervals' width is the atoms': where it covers, the over-coverage of the EL intervals is",
        "  the atoms' worst case; where it undercovers, the sample missed the large weights and the atoms are",
        "  needed (the sampled weights' mean, mean over replicates and its sd across replicates:",
        f"  {bound('mean_weight')}; {bound('mean_weight_sd')}).",
        f"- Rows carrying the target's mass, n x policy ESS (mean): {bound('policy_ess_rows')}. The plain EL's",
        "  free atoms also make up for (A3) failing when these are few; bounded atoms make up for less.",
        "",
    ]
    return out


def moment_section(variants) -> list[str]:
    """The derivation of the EL interval with the weights' known second moment, and what it measured."""
    out = [
        "## EL intervals with the weights' known second moment",
        "",
        "The policies give more than the weight range: for every context, sum_a pi(a | x)^2 / mu(a | x) =",
        "E_mu[w^2 | x], so m2 = E_mu[w^2] = 1 / `ope_large.policy_ess` (its mean over the logged contexts) is",
        "known. `ope_large.el_moment_interval(w, r, w_min, w_max, m2)` (and `doubly_robust_el(...,",
        "second_moment=m2)`) adds E_Q[w^2] = m2 to the EL program and lets the atoms for the unseen weights sit",
        "anywhere in [w_min, w_max] instead of at the two ends:",
        "",
        "1. **The atoms' existence.** With q on the logged points, the atoms carry the rest of the three",
        "   moments: (m0, delta, T) = (1 - sum_i q_i, 1 - sum_i q_i w_i, m2 - sum_i q_i w_i^2). A measure on",
        "   [w_min, w_max] with these moments exists iff (m0, delta, T) lies in the moment cone M: the Hankel",
        "   matrix [[m0, delta], [delta, T]] is positive semi-definite and (w_min + w_max) delta -",
        "   w_min w_max m0 - T >= 0 (the degree-2 Hausdorff moment conditions). So the unseen target mass",
        "   delta costs atom mass m0 >= delta^2 / T: the known second moment prices the unseen mass in",
        "   likelihood, where the weight-range EL puts it at w_max almost for free.",
        "2. **The dual.** At the lower end the atoms' reward is r_lo and V = r_lo + a^T q with",
        "   a_i = w_i (r_i - r_lo) >= 0. Every constraint but the likelihood's depends on q through",
        "   s = Phi^T q, Phi_i = (1, w_i, w_i^2), and requires mu - s in M, mu = (1, 1, m2). The Lagrangian",
        "   a^T q - x . (mu - Phi^T q) - ... with x in the dual cone M* gives, as in the plain EL,",
        "",
        "       max_{x in M*}  n exp(mean_i log(a_i + p_x(w_i)) + c / n) - (x_0 + x_1 + x_2 m2),",
        "",
        "   p_x(w) = x_0 + x_1 w + x_2 w^2, and M* (the dual of the conic hull of (1, w, w^2), w in",
        "   [w_min, w_max]) is the set of quadratics non-negative on [w_min, w_max]: the weight-range EL's",
        "   dual with a quadratic in place of the line (its p is non-negative and linear, E[p(w)] = lam + mu).",
        "   By complementary slackness the atoms sit at the zeros of p on [w_min, w_max]. The level c is the",
        "   maximum of sum_i log q_i over the same set (dual: min_{x in M*} x . mu - sum_i log p_x(w_i) - n),",
        "   less chi2_1(0.95) / 2; the upper end likewise with a_i = w_i (r_hi - r_i).",
        "3. **Solved** by Newton's method in three variables with a log barrier on p at a grid of 250",
        "   weights, the barrier's weight lowered to 1e-11; the solution is then shifted up by p's exact",
        "   minimum on [w_min, w_max] where that is negative, so it is dual feasible and the value is at most",
        "   the primal optimum; c is the log-likelihood of a feasible q (the likelihood dual's solution scaled",
        "   into the set). An inexact solve widens the interval. tests/analysis/test_ope_large.py checks it",
        "   against SLSQP on the primal with the atoms on a grid (a restriction: its interval lies inside",
        "   ours, and is within 5e-3 of it) and its coverage by Monte Carlo (K = 100, relative ESS 0.06).",
        "",
    ]
    name = "large_k_m2.json"
    if name not in variants:
        return out
    _, v = variants[name]
    Ks, loggers = grid(v)

    def cells(est: str, field: str) -> str:
        parts = []
        for lg in loggers:
            for K in Ks:
                row = v["cells"].get(f"{lg}/K={K}", {}).get(est)
                if row is None or not claimed(row):
                    continue
                val = row["inside"][field]
                text = f"{val:.3f}" if field == "coverage" else f"{val:.2f}"
                parts.append(f"{lg} {K:,}: " + (text if field != "coverage" or in_target(val) else f"**{text}**"))
        return "; ".join(parts)

    out += [
        "**Measured** (`studies/ope/results/large_k_m2.json`, the main run's replicates at every K, drawn by",
        "the same keys: the coverage of the rows it shares with the main run is bit for bit the main run's;",
        "coverage inside the EL domain, policy ESS below 10%, in bold outside [0.90, 0.99]; mean width):",
        "",
        f"- IPS, EL with E[w^2]: coverage {cells('ips_el_m2', 'coverage')}; mean width"
        f" {cells('ips_el_m2', 'mean_interval_width')}; the weight-range EL's: coverage"
        f" {cells('ips_el_policy', 'coverage')}; width {cells('ips_el_policy', 'mean_interval_width')}.",
        f"- DR, EL with E[w^2]: coverage {cells('dr_el_m2', 'coverage')}; mean width"
        f" {cells('dr_el_m2', 'mean_interval_width')}; the weight-range EL's: coverage"
        f" {cells('dr_el_policy', 'coverage')}; width {cells('dr_el_policy', 'mean_interval_width')}.",
        "- The known second moment narrows the interval where the unseen mass is moderate (K = 100 and",
        "  1,000) and brings some cells into the band, but it does not remove the over-coverage under skewed",
        "  logging: the unseen target mass it allows is still of order sqrt(chi2 m2 / n) = 1.96 / sqrt(n x",
        "  policy ESS), as in the weight-range EL, and the atoms still take the extreme observed reward (or",
        "  residual). The cause of the over-coverage is the worst-case reward of the unseen mass, which no",
        "  constraint on the weights alone can remove. At K = 10,000 (m2 in the hundreds) it is no narrower.",
        "",
    ]
    return out


def plot(data, path) -> None:
    from dts_ppl.plotting import pyplot

    plt = pyplot(headless=True)
    Ks, loggers = grid(data)
    fig, axes = plt.subplots(1, len(loggers), figsize=(4.6 * len(loggers), 3.6), squeeze=False, sharey=True)
    for ax, logger in zip(axes[0], loggers, strict=True):
        for est, label in POINTS.items():
            ks = [K for K in Ks if f"{logger}/K={K}" in data["cells"]]
            ax.plot(ks, [data["cells"][f"{logger}/K={K}"][est]["rmse"] for K in ks], "o-", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (actions)")
        ax.set_title(f"{logger} logging", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("RMSE of the value estimate")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(data, variants) -> str:
    s = data["setup"]
    Ks, loggers = grid(data)
    lines, holds, fails_large = verdicts(data)
    out = [
        "# Off-policy evaluation at large K",
        "",
        "<!-- generated by studies/ope/make_doc.py from studies/ope/results/large_k*.json; do not edit -->",
        "",
        "`dts_ppl.analysis.ope_large` adds the large-K answers to importance weights that explode when there",
        "are thousands of actions: MIPS (`mips`, weights over action-embedding categories, Saito & Joachims",
        "2022; `cluster_actions` makes categories from item features; `posterior_mips` from the cross-fitted",
        "dTS posterior means), the direct method and doubly robust estimator with the dTS posterior as reward",
        "model (`posterior_direct_method`, `posterior_doubly_robust`, with a normal or an empirical-likelihood",
        "interval), and the checks that say, on your own logs, whether an estimator's interval is claimed.",
        "The module docstring states each estimator and its interval.",
        "",
        "## Where each interval is claimed",
        "",
        "Each estimator's 95% interval is claimed on a domain that you can check on your own logs; outside",
        "it the estimator warns with a subclass of `ope.OutsideDomain` (filter on that class to catch them",
        "all). The thresholds are the package's constants, fixed before this study and the same at every K.",
        "",
        "| estimator, interval | claimed where (your check) | warning outside |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in DOMAINS],
        "",
        "## Using it",
        "",
        "```python",
        *EXAMPLE.strip().splitlines(),
        "```",
        "",
        "## The simulation",
        "",
        f"Command: `{data['command']}` ({data['seconds'] / 60:.0f} min on {data['machine']}, shared CPUs).",
        "",
        f"- Every replicate redraws the problem: theta_1..theta_K from a linear diffusion prior ({s['prior']},",
        f"  d = {s['d']}); a population of {s['contexts']} contexts x ~ N(0, I / d), from which the {s['n']:,} logged",
        f"  contexts are drawn (so the true value is exact); rewards x^T theta_a + N(0, {s['noise_sd']}^2).",
        "  Coverage is therefore averaged over problems drawn from the prior: the claim a posterior",
        "  interval makes, and implied by the conditional claim of the frequentist ones.",
        f'- Target policy: {s["target"]} (a noisy reward model, "informed").',
        f"- Logging: uniform (1 / K), or skewed: {s['skewed_logging']}.",
        f"- MIPS categories: {s['embeddings']}; and (`posterior_mips`) k-means of the posterior means of theta",
        "  fitted on the other fold (2 folds), C = ceil(sqrt(K)).",
        "- DM and DR use the dTS posterior with the true prior and noise sd (a best case for the reward",
        f"  model); the DM interval uses {s['posterior_draws']} posterior draws; DR is cross-fitted on 2 folds.",
        "- Domain checks per replicate: the policy ESS over the logged contexts; the prior share of the",
        "  posterior on all rows; MIPS's direct-effect bias with the posterior mean on all rows as the reward",
        "  (item-feature categories) or each fold's cross-fitted one (posterior categories).",
        '- EL intervals use the default weight range (0, 1 / min p) unless marked "policy range"',
        "  (`policy_weight_range`); MIPS's EL intervals use the policy range.",
        f"- {s['reps']} replicates per cell ({s['reps_large']} at K = 10,000), every estimator on every replicate;",
        "  each replicate's domain checks decide whether it is inside each estimator's domain. The MC s.e.",
        "  of a coverage near 0.95 is sqrt(0.95 x 0.05 / R): 0.015 at R = 200, 0.022 at R = 100. Float32.",
        "",
        "**The claim** (issue: coverage within [0.90, 0.99] at every K where it is claimed) is judged on the",
        f"replicates inside each estimator's domain, in every cell with at least {MIN_INSIDE} of them; a coverage",
        "inside the domain outside [0.90, 0.99] is in bold.",
        "",
    ]
    out += tables(data)
    out += sample_table(data)
    out += [
        "![RMSE against K](../studies/ope/results/large_k_rmse.png)",
        "",
        "## Which claims hold, and why the others fail",
        "",
        "Every interval is judged against the issue's two-sided band [0.90, 0.99], the same for every"
        " estimator: it is claimed as a 95% interval only at the cells where its coverage inside its domain"
        " is in the band; inside its domain and outside the band it is NOT claimed, and the measured reason"
        " is given (over-coverage: the worst-case bound on the unseen mass; under-coverage: the interval's"
        " bias or too small a se, below). Estimators in the band at every cell inside their domain: "
        + ("; ".join(holds) if holds else "none")
        + ". Estimators leaving the band at K >= 1,000 inside their domain: "
        + ("; ".join(fails_large) if fails_large else "none")
        + ".",
        "",
        "At K >= 1,000 only the EL intervals and the rule are inside their domain (every other estimator is",
        "outside it there); the cells at K >= 1,000 where they are claimed (coverage in [0.90, 0.99]): "
        + ("; ".join(large_held(data)) or "none")
        + ". Per estimator:",
        "",
    ]
    out += lines
    out += ["", "## The causes, measured", ""]
    out += mechanisms(data, variants)
    out += [""] + el_bounds(variants)
    out += moment_section(variants)
    for name, (title, vdata) in variants.items():
        out += ["", f"## Variant: {title}", "", f"Command: `{vdata['command']}` (`studies/ope/results/{name}`).", ""]
        if not any(
            "inside_reps" in row for cell in vdata["cells"].values() for row in cell.values() if isinstance(row, dict)
        ):
            out += [
                "This variant was run by the earlier version of `large_k.py` (before the domain checks, the EL",
                "intervals on the first `--el-reps` replicates only): coverage over all replicates (replicates) / RMSE.",
                "",
            ]
        out += tables(vdata)
        vlines, _, _ = verdicts(vdata)
        out += vlines
    out += [""]
    return "\n".join(out)


def page() -> str:
    """docs/ope.md as the JSON in studies/ope/results/ gives it."""
    variants = {name: (title, load(RESULTS / name)) for name, title in VARIANTS.items() if (RESULTS / name).exists()}
    return render(load(MAIN), variants)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/ope.md is out of date")
    args = parser.parse_args()
    data = load(MAIN)
    text = page()
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print("docs/ope.md is out of date: run PYTHONPATH=. python studies/ope/make_doc.py")
            sys.exit(1)
        return
    atomic_write(DOC, text.encode())
    plot(data, PLOT)


if __name__ == "__main__":
    main()
