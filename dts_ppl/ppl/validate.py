"""Validate a guide against NUTS on the same model and data (docs/math.md section 7, docs/validation.md).

:func:`validate` checks the inputs once, runs NUTS with :class:`NutsSettings`
(:mod:`dts_ppl.ppl.nuts`), and compares the guide with it per latent site
(:mod:`dts_ppl.ppl.comparison`); the :class:`ValidationReport` (:mod:`dts_ppl.ppl.report`) says
whether the NUTS run passes the :class:`ReferenceGates` (divergences 0, split R-hat <= 1.01, bulk
and tail ESS >= 400 by default). The pieces are reusable: :func:`run_nuts` once, then
:func:`compare` for several guides. The names below are re-exported from those three modules.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks
from dts_ppl.ppl.comparison import check_inputs, compare, compare_checked, compare_site
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.nuts import (
    DEFAULT_GATES,
    NUTS_EXTRA_FIELDS,
    NutsDiagnostics,
    NutsResult,
    NutsSettings,
    ReferenceGates,
    check_gates,
    default_chain_method,
    nuts_diagnostics,
    run_nuts,
)
from dts_ppl.ppl.report import SiteReport, ValidationReport

__all__ = [
    "DEFAULT_GATES",
    "NUTS_EXTRA_FIELDS",
    "NutsDiagnostics",
    "NutsResult",
    "NutsSettings",
    "ReferenceGates",
    "SiteReport",
    "ValidationReport",
    "check_inputs",
    "compare",
    "compare_checked",
    "compare_site",
    "default_chain_method",
    "nuts_diagnostics",
    "run_nuts",
    "validate",
]

# validate()'s NUTS keyword arguments before NutsSettings, and the field each one sets
_OLD_NUTS_KEYWORDS = {
    "num_samples": "num_samples",
    "num_warmup": "num_warmup",
    "num_chains": "num_chains",
    "chain_method": "chain_method",
    "target_accept_prob": "target_accept_prob",
    "dense_mass": "dense_mass",
    "max_tree_depth": "max_tree_depth",
    "nuts_parameterisation": "parameterisation",
}


def _settings_from_old_keywords(settings: NutsSettings, old: dict) -> NutsSettings:
    """``settings`` with the deprecated NUTS keyword arguments applied (DeprecationWarning)."""
    unknown = sorted(set(old) - set(_OLD_NUTS_KEYWORDS))
    if unknown:
        raise TypeError(f"validate() got unexpected keyword arguments {unknown}")
    if not old:
        return settings
    fields = {_OLD_NUTS_KEYWORDS[k]: v for k, v in old.items()}
    warnings.warn(
        f"validate: the NUTS keyword arguments {sorted(old)} are deprecated and will be removed in the next "
        f"version; pass settings=NutsSettings({', '.join(f'{k}=...' for k in fields)}) instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return settings._replace(**fields)


def validate(
    model: BanditModel,
    guide: Any,
    X: ArrayLike,
    A: ArrayLike | None,
    y: ArrayLike,
    *,
    key: jax.Array,
    settings: NutsSettings = NutsSettings(),  # noqa: B008 - an immutable NamedTuple
    nuts: NutsResult | None = None,
    num_guide_samples: int | None = None,
    num_psis_samples: int = 2000,
    gates: ReferenceGates = DEFAULT_GATES,
    progress_bar: bool = True,
    **deprecated: object,
) -> ValidationReport:
    """Validate ``guide`` against NUTS on ``model`` conditioned on (X, A, y).

    Checks the data and that the guide's latent sites match the model's (same names and
    shapes, from one traced run of each) before any sampling; then runs NUTS (unless ``nuts``
    gives a previous run on the same data), draws from the guide, and compares them per site.
    The report says whether the NUTS run passes ``gates`` (``report.reliable``); it does not
    raise when it fails, so callers decide (``dts-ppl validate`` exits with status 3).

    Args:
        model: BanditModel.
        guide: a guide with the model's latent sites, ``fit(X, A, y)`` and ``sample_posterior(rng_key,
            params, sample_shape=...)`` (DTSGuide), whose density NumPyro can evaluate (for PSIS).
        X, A, y: the data, (n, d), (n,), (n,).
        key: PRNG key.
        settings: NutsSettings of the NUTS run. With "noncentred" ``parameterisation`` the guide
            is compared on the raw sites too, and PSIS k-hat is measured on the non-centred model.
        nuts: reuse this NutsResult instead of running NUTS (``settings`` is then unused).
        num_guide_samples: guide draws (default: twice the NUTS draws; they are cheap and independent).
        num_psis_samples: guide draws for PSIS k-hat.
        gates: ReferenceGates the NUTS run must pass to count as reliable.
        progress_bar: show NUTS's progress bar.
        **deprecated: the NUTS keyword arguments of the previous version (``num_samples``,
            ``num_warmup``, ``num_chains``, ``chain_method``, ``target_accept_prob``,
            ``dense_mass``, ``max_tree_depth``, ``nuts_parameterisation``): they update
            ``settings`` with a DeprecationWarning.

    Returns:
        ValidationReport (prints as a table; ``to_dict()`` / ``to_json()``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> model = BanditModel(prior, num_actions=2)
        >>> X, A = jnp.ones((6, 2)), jnp.arange(6) % 2
        >>> report = validate(model, DTSGuide(model), X, A, jnp.ones(6), key=jax.random.PRNGKey(0),
        ...                   settings=NutsSettings(num_samples=200, num_warmup=200), progress_bar=False)
        >>> sorted(report.to_dict()["sites"])
        ['psi', 'theta']
    """
    if not isinstance(settings, NutsSettings):
        raise ValueError(f"settings: expected a NutsSettings, got {type(settings).__name__}")
    settings = _settings_from_old_keywords(settings, deprecated).check()
    data = check_inputs(model, guide, X, A, y)
    gates = check_gates(gates)
    _checks.check_key(key)
    k_nuts, k_cmp = jax.random.split(key)
    if nuts is None:
        nuts = run_nuts(model, data, settings, k_nuts, progress_bar=progress_bar)
    if num_guide_samples is None:
        first = next(iter(nuts.samples.values()))
        num_guide_samples = 2 * first.shape[0] * first.shape[1]
    return compare_checked(
        model,
        guide,
        data,
        nuts,
        key=k_cmp,
        num_guide_samples=num_guide_samples,
        num_psis_samples=num_psis_samples,
        gates=gates,
    )
