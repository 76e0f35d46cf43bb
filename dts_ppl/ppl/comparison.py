"""Compare a guide with a NUTS run of the same model on the same data, per latent site.

Per site: the standardised error of the guide's posterior mean, the ratio of its standard
deviations to NUTS's, and the energy distance between the two sets of draws, each next to the
size Monte-Carlo error alone gives it (the NUTS estimates' standard error from their ESS; the
energy distance between two halves of the NUTS run). Plus the guide's PSIS k-hat against the
model NUTS ran (NUTS-free) and NUTS's own convergence diagnostics (docs/math.md section 7).

:func:`check_inputs` checks the data and the guide once (it traces model and guide);
:func:`compare` checks, then compares; :func:`compare_checked` compares data that
:func:`check_inputs` has already returned.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike
from numpyro import handlers

from dts_ppl.core import checks as _checks
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.diagnostics import psis_khat
from dts_ppl.ppl.distances import energy_distance
from dts_ppl.ppl.guide import RAW_SITES
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.nuts import DEFAULT_GATES, NutsResult, ReferenceGates, check_gates, nuts_diagnostics
from dts_ppl.ppl.report import SiteReport, ValidationReport


def _latent_sites(fn: Any, args: tuple) -> dict:
    """{name: shape} of the unobserved sample sites of one seeded run of ``fn(*args)``."""
    trace = handlers.trace(handlers.seed(fn, 0)).get_trace(*args)
    return {
        name: tuple(site["value"].shape)
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def check_inputs(model: BanditModel, guide: Any, X: ArrayLike, A: ArrayLike | None, y: ArrayLike) -> tuple:
    """Validate data and guide before any sampling (one traced run of the model and of the guide).

    Args:
        model: BanditModel.
        guide: a guide with ``fit(X, A, y)`` and ``sample_posterior(rng_key, params, sample_shape=...)``.
        X, A, y: the data, (n, d), (n,) (None for a shared model), (n,).

    Returns:
        (X, A, y) checked, with A None for a shared model: the model's arguments.

    Raises:
        ValueError: the data do not fit the model, y is missing, the guide has no
            ``sample_posterior`` or ``fit``, or its latent sites (names and shapes) differ from the model's.
    """
    if not hasattr(model, "check_data"):
        raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
    if y is None:
        raise ValueError("y: validation compares posteriors and needs the observed rewards")
    X, A, y = model.check_data(X, A, y)
    if not (callable(getattr(guide, "sample_posterior", None)) and callable(getattr(guide, "fit", None))):
        raise ValueError(
            "guide: expected a guide with sample_posterior(rng_key, params, sample_shape=...) and fit(X, A, y) "
            f"such as DTSGuide, got {type(guide).__name__}"
        )
    args = (X, None if model.shared else A, y)
    want, got = _latent_sites(model, args), _latent_sites(guide, args)
    if want != got:
        raise ValueError(f"guide: its latent sites {got} differ from the model's {want} (names and shapes must match)")
    return args


def _halves(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, equally sized parts of (chains, draws, p): chain groups, or the draws' two halves."""
    c, n = draws.shape[:2]
    if c >= 2:
        h = c // 2
        return draws[:h].reshape(-1, draws.shape[-1]), draws[h : 2 * h].reshape(-1, draws.shape[-1])
    h = n // 2
    return draws[0, :h], draws[0, h : 2 * h]


def compare_site(guide_draws: np.ndarray, nuts_draws: np.ndarray, ess_mean: np.ndarray) -> SiteReport:
    """Compare one site. guide_draws (S, *shape), nuts_draws (chains, draws, *shape), ess_mean (*shape,)."""
    shape = nuts_draws.shape[2:]
    q = np.asarray(guide_draws, np.float64).reshape(guide_draws.shape[0], -1)
    p = np.asarray(nuts_draws, np.float64).reshape(nuts_draws.shape[:2] + (-1,))
    flat = p.reshape(-1, p.shape[-1])
    mean_p, sd_p = flat.mean(0), flat.std(0, ddof=1)
    if not np.all(sd_p > 0):
        raise ValueError("nuts: a coordinate has zero posterior spread in the NUTS draws; the chains are stuck")
    mean_q, sd_q = q.mean(0), q.std(0, ddof=1)
    err = np.abs(mean_q - mean_p) / sd_p
    mcse = np.sqrt(1.0 / np.ravel(ess_mean) + 1.0 / q.shape[0])

    def z(a):
        return (a - mean_p) / sd_p

    part_a, part_b = _halves(z(p))
    distance = energy_distance(z(q), part_a)
    floor = energy_distance(part_b, part_a)
    return SiteReport(err.reshape(shape), mcse.reshape(shape), (sd_q / sd_p).reshape(shape), distance, floor)


def _draws(guide: Any, key: jax.Array, data: tuple, num: int) -> dict:
    """{site: (num, *shape)} numpy draws of ``guide`` conditioned on ``data``."""
    draws = guide.sample_posterior(key, guide.fit(*data), sample_shape=(num,))
    return {k: np.asarray(v) for k, v in draws.items()}


def compare_checked(
    model: BanditModel,
    guide: Any,
    data: tuple,
    nuts: NutsResult,
    *,
    key: jax.Array,
    num_guide_samples: int = 2000,
    num_psis_samples: int = 2000,
    gates: ReferenceGates = DEFAULT_GATES,
) -> ValidationReport:
    """:func:`compare` on ``data`` that :func:`check_inputs` returned for this model and guide (no new trace).

    Args:
        model, guide: as :func:`compare`.
        data: (X, A, y) from ``check_inputs(model, guide, X, A, y)``.
        nuts, key, num_guide_samples, num_psis_samples, gates: as :func:`compare`.

    Returns:
        ValidationReport.
    """
    _checks.check_key(key)
    num_guide_samples = _checks.check_int("num_guide_samples", num_guide_samples, 2)
    num_psis_samples = _checks.check_int("num_psis_samples", num_psis_samples, 10)
    gates = check_gates(gates)
    if not isinstance(nuts, NutsResult):
        raise ValueError(f"nuts: expected a NutsResult (from run_nuts), got {type(nuts).__name__}")
    missing = set(model.latent_shapes) - set(nuts.samples)
    if missing:
        raise ValueError(f"nuts: no draws of sites {sorted(missing)}")
    k_guide, k_psis = jax.random.split(key)
    draws = _draws(guide, k_guide, data, num_guide_samples)
    sites = list(model.latent_shapes)
    ess = _arviz.chain_diagnostics({k: nuts.samples[k] for k in sites})
    reports = {k: compare_site(draws[k], nuts.samples[k], ess[k]["ess_mean"]) for k in sites}
    psis_model, psis_guide, where = model, guide, "centred"
    if nuts.raw_samples and callable(getattr(guide, "noncentred", None)):
        psis_model, psis_guide, where = model.noncentred(), guide.noncentred(), "noncentred"
        raw = _draws(psis_guide, k_guide, data, num_guide_samples)
        raw_ess = _arviz.chain_diagnostics(nuts.raw_samples)
        for k in RAW_SITES:
            reports[k] = compare_site(raw[k], nuts.raw_samples[k], raw_ess[k]["ess_mean"])
    khat = psis_khat(k_psis, psis_model, psis_guide, *data, num_psis_samples)
    return ValidationReport(reports, khat, nuts_diagnostics(nuts, sites), draws, nuts, gates, where)


def compare(
    model: BanditModel,
    guide: Any,
    X: ArrayLike,
    A: ArrayLike | None,
    y: ArrayLike,
    nuts: NutsResult,
    *,
    key: jax.Array,
    num_guide_samples: int = 2000,
    num_psis_samples: int = 2000,
    gates: ReferenceGates = DEFAULT_GATES,
) -> ValidationReport:
    """Compare ``guide`` with an existing NUTS run of ``model`` on the same data.

    When ``nuts`` ran on the non-centred model and the guide has ``noncentred()`` (DTSGuide),
    PSIS k-hat is measured on that model with the guide mapped to its raw sites, and the raw
    sites are compared too (``psi_raw``, ``theta_raw`` in the report).

    Args:
        model: BanditModel.
        guide: a guide with the model's latent sites, ``fit(X, A, y)`` and ``sample_posterior(rng_key,
            params, sample_shape=...)`` (DTSGuide), whose density NumPyro can evaluate (for PSIS).
        X, A, y: the data NUTS ran on, (n, d), (n,), (n,).
        nuts: the NutsResult of :func:`dts_ppl.ppl.nuts.run_nuts` on the same data.
        key: PRNG key.
        num_guide_samples: guide draws for the comparison.
        num_psis_samples: guide draws for PSIS k-hat.
        gates: ReferenceGates the NUTS run must pass to count as reliable.

    Returns:
        ValidationReport.
    """
    data = check_inputs(model, guide, X, A, y)
    return compare_checked(
        model,
        guide,
        data,
        nuts,
        key=key,
        num_guide_samples=num_guide_samples,
        num_psis_samples=num_psis_samples,
        gates=gates,
    )
