"""The approximation-error study: dTS vs NUTS as the number of observations grows.

For each preset problem (:mod:`dts_ppl.experiments.validation`) and sample size, one NUTS run
(with the preset's :data:`~dts_ppl.experiments.validation.NUTS_SETTINGS`) is the reference, and
the guide under each rule of :data:`RULES` is compared with it through
:func:`dts_ppl.ppl.comparison.compare_checked`:

- ``paper``: the paper's rules, "identity" linearisation and the GLM expanded at the near-MLE
  (ridge :data:`PAPER_RIDGE`);
- ``new``: iterated linearisation run for :data:`NEW_ITERATIONS` passes (converged: each row
  records how far one more pass moves the posterior mean of psi) and the prior-regularised GLM
  expansion (``likelihood.regularised_for(theta's prior covariance)``).

Both are spelled out explicitly, so the rows do not depend on the package's defaults. A
reference that fails the quality gates (:class:`dts_ppl.ppl.nuts.ReferenceGates`) is rerun
once (:func:`retry_settings`: a higher target acceptance after divergences, twice the warm-up and
draws after low ESS or high R-hat); every row records its reference's diagnostics and
whether it passed. Each row also times the guide's draws against NUTS per effective sample,
in the same process. :func:`study_table` renders the rows as markdown; ``dts-ppl
validation-study`` regenerates ``results/validation_study.{md,json,png}``.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from dts_ppl.agents.linear import theta_marginal
from dts_ppl.experiments.validation import NUTS_SETTINGS, make_problem
from dts_ppl.plotting import pyplot
from dts_ppl.ppl.comparison import check_inputs, compare_checked
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.nuts import (
    DEFAULT_GATES,
    NutsDiagnostics,
    NutsResult,
    NutsSettings,
    ReferenceGates,
    nuts_diagnostics,
    run_nuts,
)

PAPER_RIDGE = 1e-3  # the near-MLE expansion point of the paper's GLM approximation
NEW_ITERATIONS = 10  # passes of the iterated linearisation in the "new" rule
RULES = {
    "paper": {"linearisation": "identity", "glm": "near-MLE"},
    "new": {"linearisation": "iterated", "glm": "prior-regularised"},
}
NUM_GUIDE_TIMING_DRAWS = 2000


def rule_guide(model: BanditModel, rule: str, key=None) -> DTSGuide:
    """The guide of ``model`` under ``rule`` ("paper" or "new"; see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {tuple(RULES)}, got {rule!r}")
    lik = model.likelihood
    if hasattr(lik, "regularised_for"):  # a GLM: pick its expansion point
        if rule == "paper":
            lik = dataclasses.replace(lik, ridge=PAPER_RIDGE)
        else:
            lik = lik.regularised_for(theta_marginal(model.prior, key=key).cov)
    m = BanditModel(model.prior, None if model.shared else model.num_actions, lik, model.shared)
    if rule == "paper":
        return DTSGuide(m, linearisation="identity")
    return DTSGuide(m, linearisation="iterated", max_passes=NEW_ITERATIONS)


def last_pass_change(model: BanditModel, X, A, y) -> float:
    """max |E psi after NEW_ITERATIONS + 1 passes - after NEW_ITERATIONS| / sd: 0 once converged."""
    if model.prior.is_linear:
        return 0.0
    a = DTSGuide(model, "iterated", NEW_ITERATIONS).moments(X, A, y)
    b = DTSGuide(model, "iterated", NEW_ITERATIONS + 1).moments(X, A, y)
    sd = np.sqrt(np.diagonal(np.asarray(a.psi_cov), axis1=-2, axis2=-1))
    return float(np.max(np.abs(np.asarray(b.psi_mean) - np.asarray(a.psi_mean)) / sd))


def guide_seconds_per_draw(guide, key, X, A, y, num_draws: int = NUM_GUIDE_TIMING_DRAWS) -> float:
    """Wall seconds per guide draw, statistics and posterior included (best of 3 calls of ``num_draws``)."""

    def draw(k):
        return jax.block_until_ready(guide.sample_posterior(k, guide.fit(X, A, y), sample_shape=(num_draws,)))

    draw(key)  # compile
    best = np.inf
    for i in range(3):
        start = time.perf_counter()
        draw(jax.random.fold_in(key, i))
        best = min(best, time.perf_counter() - start)
    return best / num_draws


def study_problem(preset: str, key, num_obs: int):
    """The problem the study simulates for ``preset`` (the same for every sample size)."""
    return make_problem(preset, jax.random.fold_in(key, zlib.crc32(preset.encode())), num_obs=num_obs)


def retry_settings(
    settings: NutsSettings, diagnostics: NutsDiagnostics, gates: ReferenceGates = DEFAULT_GATES
) -> NutsSettings:
    """The NUTS settings of the next attempt after a run with ``diagnostics`` failed one of ``gates``.

    Divergences call for smaller steps: the target acceptance moves halfway to 1 (0.9 -> 0.95);
    low ESS or a high R-hat call for longer chains: warm-up and draws double. Both apply when
    both failed.
    """
    out = settings
    if diagnostics.divergences > gates.max_divergences:
        out = out._replace(target_accept_prob=(1.0 + out.target_accept_prob) / 2)
    if not diagnostics._replace(divergences=0).reliable(gates):  # the R-hat and ESS gates
        out = out._replace(num_samples=2 * out.num_samples, num_warmup=2 * out.num_warmup)
    return out


def reference(
    model: BanditModel,
    data: tuple,
    *,
    key: jax.Array,
    settings: NutsSettings,
    gates: ReferenceGates = DEFAULT_GATES,
    max_attempts: int = 2,
) -> tuple[NutsResult, int]:
    """NUTS with ``settings``; while it fails ``gates``, rerun with :func:`retry_settings`.

    Args:
        model: BanditModel.
        data: (X, A, y) from :func:`~dts_ppl.ppl.comparison.check_inputs`.
        key: PRNG key (attempt i uses ``fold_in(key, i)``).
        settings: NutsSettings of the first attempt.
        gates: the ReferenceGates a reference must pass.
        max_attempts: most NUTS runs.

    Returns:
        (NutsResult of the last attempt, attempts used).
    """
    for attempt in range(1, max_attempts + 1):
        nuts = run_nuts(model, data, settings, jax.random.fold_in(key, attempt), progress_bar=False)
        diagnostics = nuts_diagnostics(nuts)
        if diagnostics.reliable(gates) or attempt == max_attempts:
            return nuts, attempt
        settings = retry_settings(settings, diagnostics, gates)
    raise AssertionError("unreachable")


def approximation_study(
    presets: Sequence[str] = ("linear", "mlp", "logistic", "ddpm"),
    num_obs: Sequence[int] = (10, 50, 200),
    *,
    key,
    settings: dict[str, NutsSettings] | None = None,
    max_attempts: int = 2,
    progress: bool = True,
    reports: dict | None = None,
    skip=(),
    on_rows=None,
) -> list[dict]:
    """Run the study. Returns one dict per (preset, n, rule) with the report's numbers.

    Args:
        presets, num_obs: the problems and sample sizes (one data set per preset, nested sizes).
        key: PRNG key.
        settings: {preset: NutsSettings} overriding :data:`NUTS_SETTINGS` (``chain_method`` None:
            "parallel" with a device per chain, else "sequential", as in ``dts-ppl validate``).
        max_attempts: NUTS runs per problem while the reference fails the gates (see :func:`reference`).
        reports: a dict to fill with every ValidationReport, keyed (preset, n, rule).
        skip: (preset, n) pairs not to run (done before: each pair keeps its own random key).
        on_rows: called with the rows of each (preset, n) as soon as they are done (to save them).

    Row keys: preset, num_obs, rule, linearisation, glm, then per site ``{site}_max_std_mean_error``,
    ``{site}_mcse``, ``{site}_sd_ratio_min``, ``{site}_sd_ratio_max``, ``{site}_distance``,
    ``{site}_distance_nuts_floor``, and ``psis_khat`` (on the model NUTS ran), ``psis_parameterisation``,
    ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``, ``reliable``, ``problems``,
    ``nuts_settings``, ``nuts_attempts``, ``nuts_wall_s``, ``nuts_s_per_ess`` (wall time / least
    bulk ESS), ``guide_s_per_draw``, ``cost_ratio`` (the last two's ratio) and
    ``iterated_last_pass_change`` (new rule).
    """
    settings = {**NUTS_SETTINGS, **(settings or {})}
    rows = []
    jobs = [(p, n) for p in presets for n in num_obs]
    bar = tqdm(jobs, desc="study", disable=not progress)
    skip = {(p, int(n)) for p, n in skip}
    for i, (preset, n) in enumerate(bar):
        if (preset, int(n)) in skip:
            continue
        bar.set_postfix(preset=preset, n=n)
        done = len(rows)
        k_nuts, k_cmp, k_time, k_lik = jax.random.split(jax.random.fold_in(key, i), 4)
        # one data set per preset, its first n rows for each size, so sizes are nested
        problem = study_problem(preset, key, max(num_obs))
        X, A, y = problem.X[:n], problem.A[:n], problem.y[:n]
        model = problem.model
        guides = {rule: rule_guide(model, rule, key=k_lik) for rule in RULES}
        data = {rule: check_inputs(model, guide, X, A, y) for rule, guide in guides.items()}
        args = next(iter(data.values()))  # the model's arguments, the same for every guide
        nuts, attempts = reference(model, args, key=k_nuts, settings=settings[preset], max_attempts=max_attempts)
        for rule, spec in RULES.items():
            guide = guides[rule]
            report = compare_checked(model, guide, data[rule], nuts, key=k_cmp)
            if reports is not None:
                reports[(preset, int(n), rule)] = report
            row = {"preset": preset, "num_obs": int(n), "rule": rule, **spec}
            for site, s in report.sites.items():
                d = s.to_dict()
                row[f"{site}_max_std_mean_error"] = d["max_std_mean_error"]
                row[f"{site}_mcse"] = s.mcse
                row[f"{site}_sd_ratio_min"] = d["sd_ratio_min"]
                row[f"{site}_sd_ratio_max"] = d["sd_ratio_max"]
                row[f"{site}_distance"] = d["distance"]
                row[f"{site}_distance_nuts_floor"] = d["distance_nuts_floor"]
            per_draw = guide_seconds_per_draw(guide, k_time, *args)
            s_per_ess = nuts.wall_s / report.nuts.ess_bulk_min
            row.update(
                psis_khat=float(report.psis_khat),
                psis_parameterisation=report.psis_parameterisation,
                rhat_max=report.nuts.rhat_max,
                ess_bulk_min=report.nuts.ess_bulk_min,
                ess_tail_min=report.nuts.ess_tail_min,
                divergences=report.nuts.divergences,
                reliable=report.reliable,
                problems=report.reference_problems,
                nuts_settings=nuts.settings._asdict(),
                nuts_attempts=attempts,
                nuts_wall_s=nuts.wall_s,
                nuts_s_per_ess=s_per_ess,
                guide_s_per_draw=per_draw,
                cost_ratio=s_per_ess / per_draw,
            )
            if rule == "new":
                row["iterated_last_pass_change"] = last_pass_change(guide.model, *args)
            rows.append(row)
        if on_rows is not None:
            on_rows(rows[done:])
    return rows


def _fmt_khat(k):
    if k is None:
        return "n/a"
    return "exact" if k == -np.inf else f"{k:.2f}"


def study_table(rows: list[dict]) -> str:
    """The study as a markdown table (errors in NUTS sd units; distance / its NUTS floor)."""
    head = (
        "| preset | n | rule | psi max err/sd | theta max err/sd | MC se | theta sd ratio "
        "| psi dist/floor | theta dist/floor | PSIS k-hat | NUTS div | R-hat max | ESS bulk/tail min | gates |\n"
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [head]
    for r in rows:
        mcse = max(r["psi_mcse"], r["theta_mcse"])
        lines.append(
            f"| {r['preset']} | {r['num_obs']} | {r['rule']} ({r['linearisation']}"
            f"{', ' + r['glm'] if r['preset'] == 'logistic' else ''}) | {r['psi_max_std_mean_error']:.3f} "
            f"| {r['theta_max_std_mean_error']:.3f} | {mcse:.3f} "
            f"| {r['theta_sd_ratio_min']:.2f}-{r['theta_sd_ratio_max']:.2f} "
            f"| {r['psi_distance'] / r['psi_distance_nuts_floor']:.2f} "
            f"| {r['theta_distance'] / r['theta_distance_nuts_floor']:.2f} "
            f"| {_fmt_khat(r['psis_khat'])} | {r['divergences']} | {r['rhat_max']:.3f} "
            f"| {r['ess_bulk_min']:.0f}/{r['ess_tail_min']:.0f} | {'pass' if r['reliable'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def plot_study(rows: list[dict], path) -> None:
    """Save one figure: per preset (columns), theta's max standardised mean error (top) and the
    psi distance / NUTS floor (bottom) against n, one line per rule; 1.0 marks the NUTS floor."""
    plt = pyplot(headless=True)
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    fig, axes = plt.subplots(2, len(presets), figsize=(3.2 * len(presets), 5.5), squeeze=False)
    for j, preset in enumerate(presets):
        for rule, style in zip(RULES, ("o--", "s-"), strict=True):
            rs = sorted((r for r in rows if r["preset"] == preset and r["rule"] == rule), key=lambda r: r["num_obs"])
            n = [r["num_obs"] for r in rs]
            axes[0, j].plot(n, [r["theta_max_std_mean_error"] for r in rs], style, label=rule)
            axes[1, j].plot(n, [r["psi_distance"] / r["psi_distance_nuts_floor"] for r in rs], style, label=rule)
        mcse = max(r["theta_mcse"] for r in rows if r["preset"] == preset)
        axes[0, j].axhline(3 * mcse, color="grey", lw=0.8, ls=":", label="3 MC se")
        axes[1, j].axhline(1.0, color="grey", lw=0.8, ls=":", label="NUTS floor")
        axes[0, j].set_title(preset)
        axes[1, j].set_xlabel("observations n")
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_yscale("log")
    axes[0, 0].set_ylabel("theta max |dmean| / sd")
    axes[1, 0].set_ylabel("psi energy distance / NUTS floor")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle("dTS guide vs NUTS: paper rule vs new rule (identity vs iterated) (dts-ppl validation-study)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
