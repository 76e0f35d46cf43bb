"""The approximation-error study: dTS vs NUTS as the number of observations grows.

For each preset problem (:mod:`dts_ppl.experiments.validation`) and sample size, one NUTS run is the
reference, and every applicable linearisation of the guide is compared with it through
:func:`dts_ppl.ppl.validate.compare`. :func:`study_table` renders the rows as docs/results.md's
markdown table; ``dts-ppl validation-study`` regenerates it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import jax
from tqdm.auto import tqdm

from dts_ppl.core.links import LINEARISATIONS
from dts_ppl.experiments.validation import NUTS_PARAMETERISATION, make_problem
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.validate import check_inputs, compare, run_nuts


def linearisations_for(model) -> tuple:
    """All linearisations for nonlinear links; affine links make them identical, so just one."""
    return LINEARISATIONS if not model.prior.is_linear else ("identity",)


def study_problem(preset: str, key, num_obs: int):
    """The problem the study simulates for ``preset`` (the same for every sample size)."""
    return make_problem(preset, jax.random.fold_in(key, zlib.crc32(preset.encode())), num_obs=num_obs)


def approximation_study(
    presets: Sequence[str] = ("linear", "mlp", "logistic"),
    num_obs: Sequence[int] = (10, 50, 200),
    *,
    key,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_chains: int = 2,
    chain_method: str | None = "vectorized",
    progress: bool = True,
    reports: dict | None = None,
) -> list[dict]:
    """Run the study. Returns one dict per (preset, n, linearisation) with the report's numbers.

    Pass a dict as ``reports`` to also get every ValidationReport, keyed (preset, n, linearisation).

    Row keys: preset, num_obs, linearisation, then per site ``{site}_max_std_mean_error``,
    ``{site}_mcse``, ``{site}_sd_ratio_min``, ``{site}_sd_ratio_max``, ``{site}_distance``,
    ``{site}_distance_nuts_floor``, and ``psis_khat``, ``rhat_max``, ``ess_bulk_min``,
    ``divergences``.
    """
    rows = []
    jobs = [(p, n) for p in presets for n in num_obs]
    bar = tqdm(jobs, desc="study", disable=not progress)
    for i, (preset, n) in enumerate(bar):
        bar.set_postfix(preset=preset, n=n)
        k_nuts, k_cmp = jax.random.split(jax.random.fold_in(key, i))
        # one data set per preset, its first n rows for each size, so sizes are nested
        problem = study_problem(preset, key, max(num_obs))
        X, A, y = problem.X[:n], problem.A[:n], problem.y[:n]
        model = problem.model
        args = check_inputs(model, DTSGuide(model), X, A, y)
        nuts = run_nuts(
            model,
            *args,
            key=k_nuts,
            num_samples=num_samples,
            num_warmup=num_warmup,
            num_chains=num_chains,
            chain_method=chain_method,
            progress_bar=False,
            parameterisation=NUTS_PARAMETERISATION[preset],
        )
        for lin in linearisations_for(model):
            report = compare(model, DTSGuide(model, linearisation=lin), *args, nuts, key=k_cmp)
            row = {"preset": preset, "num_obs": int(n), "linearisation": lin}
            if reports is not None:
                reports[(preset, int(n), lin)] = report
            for site, s in report.sites.items():
                d = s.to_dict()
                row[f"{site}_max_std_mean_error"] = d["max_std_mean_error"]
                row[f"{site}_mcse"] = s.mcse
                row[f"{site}_sd_ratio_min"] = d["sd_ratio_min"]
                row[f"{site}_sd_ratio_max"] = d["sd_ratio_max"]
                row[f"{site}_distance"] = d["distance"]
                row[f"{site}_distance_nuts_floor"] = d["distance_nuts_floor"]
            row.update(
                psis_khat=float(report.psis_khat),
                rhat_max=report.nuts.rhat_max,
                ess_bulk_min=report.nuts.ess_bulk_min,
                divergences=report.nuts.divergences,
            )
            rows.append(row)
    return rows


def study_table(rows: list[dict]) -> str:
    """The study as a markdown table (errors in NUTS sd units; distance / its NUTS floor)."""
    head = (
        "| preset | n | linearisation | psi max err/sd | theta max err/sd | MC se | theta sd ratio "
        "| psi dist/floor | theta dist/floor | PSIS k-hat | NUTS R-hat max | NUTS ESS min |\n"
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        mcse = max(r["psi_mcse"], r["theta_mcse"])
        lines.append(
            f"| {r['preset']} | {r['num_obs']} | {r['linearisation']} | {r['psi_max_std_mean_error']:.3f} "
            f"| {r['theta_max_std_mean_error']:.3f} | {mcse:.3f} "
            f"| {r['theta_sd_ratio_min']:.2f}-{r['theta_sd_ratio_max']:.2f} "
            f"| {r['psi_distance'] / r['psi_distance_nuts_floor']:.2f} "
            f"| {r['theta_distance'] / r['theta_distance_nuts_floor']:.2f} "
            f"| {r['psis_khat']:.2f} | {r['rhat_max']:.3f} | {r['ess_bulk_min']:.0f} |"
        )
    return "\n".join(lines)
