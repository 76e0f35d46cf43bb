"""NUTS, validation and ArviZ for any NumPyro model (a user model with a diffusion chain).

The same pieces as :mod:`dts_ppl.ppl.validate` (its :class:`NutsResult`, :class:`ReferenceGates`,
per-site comparison and report), for a model that is not a :class:`dts_ppl.BanditModel`:
every latent sample site is compared, the model's arguments are passed through as they are,
and the guide is any guide with the AutoGuide surface (``sample_posterior(key, params, *args,
sample_shape=...)``), such as :class:`dts_ppl.AutoDTS`.

- :func:`run_nuts_model`: the NUTS reference, every latent site, chains kept.
- :func:`validate_model`: guide vs NUTS per site, PSIS k-hat, the reference's gates.
- :func:`model_inference_data`: draws as ArviZ InferenceData, dims named from the model's plates
  and ``infer={"event_dims": ...}`` (psi (level, latent_feature), theta (actions, feature), ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import log_density

from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import ActionStats
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.validate import (
    DEFAULT_GATES,
    NUTS_EXTRA_FIELDS,
    NutsResult,
    ReferenceGates,
    ValidationReport,
    compare_site,
    default_chain_method,
    nuts_diagnostics,
)


def _trace(model, args, kwargs):
    with handlers.block():
        return handlers.trace(handlers.seed(model, rng_seed=0)).get_trace(*args, **kwargs)


def latent_sites(model, *args, **kwargs) -> dict:
    """{name: shape} of the unobserved sample sites of one seeded run of ``model(*args, **kwargs)``."""
    tr = _trace(model, args, kwargs)
    return {k: tuple(s["value"].shape) for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}


def run_nuts_model(
    model: Callable[..., Any],
    *args: Any,
    key: jax.Array,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_chains: int = 2,
    chain_method: str | None = None,
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int = 10,
    progress_bar: bool = False,
    **kwargs: Any,
) -> NutsResult:
    """NUTS on ``model(*args, **kwargs)`` (observed sites conditioned): the reference posterior.

    Args:
        model: any NumPyro model.
        *args, **kwargs: its arguments (observed values included).
        key: PRNG key.
        num_samples, num_warmup, num_chains, chain_method, target_accept_prob, dense_mass,
            max_tree_depth: as :func:`dts_ppl.ppl.validate.run_nuts`.

    Returns:
        NutsResult with samples {site: (num_chains, num_samples, *shape)} of every latent sample
        site, the NUTS extra fields, and ``settings`` (with "wall_s").
    """
    _checks.check_key(key)
    num_samples = _checks.check_int("num_samples", num_samples, 2)
    num_warmup = _checks.check_int("num_warmup", num_warmup, 0)
    num_chains = _checks.check_int("num_chains", num_chains, 1)
    if not 0.0 < float(target_accept_prob) < 1.0:
        raise ValueError(f"target_accept_prob: expected a number in (0, 1), got {target_accept_prob!r}")
    chain_method = chain_method or default_chain_method(num_chains)
    sites = latent_sites(model, *args, **kwargs)
    mcmc = MCMC(
        NUTS(model, target_accept_prob=float(target_accept_prob), dense_mass=dense_mass, max_tree_depth=max_tree_depth),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
    )
    start = time.perf_counter()
    mcmc.run(key, *args, extra_fields=NUTS_EXTRA_FIELDS, **kwargs)
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items() if k in sites}
    wall = time.perf_counter() - start
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    settings = dict(
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        chain_method=chain_method,
        target_accept_prob=float(target_accept_prob),
        dense_mass=dense_mass,
        max_tree_depth=max_tree_depth,
        parameterisation="centred",
        wall_s=wall,
    )
    return NutsResult(draws, stats, None, settings)


def log_importance_weights_model(key, model, guide, params, *args, num_samples: int = 2000, **kwargs):
    """log p(data, z) - log q(z) for z ~ guide: (num_samples,), both densities NumPyro's own."""
    draws = guide.sample_posterior(key, params, *args, sample_shape=(num_samples,), **kwargs)
    draws = {k: v for k, v in draws.items() if k in latent_sites(model, *args, **kwargs)}
    q = handlers.substitute(guide, data=params)

    def one(z):
        return log_density(model, args, kwargs, z)[0] - log_density(q, args, kwargs, z)[0]

    return jax.jit(jax.vmap(one))(draws)


def validate_model(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: dict | ActionStats | None,
    *args: Any,
    key: jax.Array,
    nuts: NutsResult | None = None,
    num_guide_samples: int | None = None,
    num_psis_samples: int = 2000,
    gates: ReferenceGates = DEFAULT_GATES,
    nuts_options: dict | None = None,
    **kwargs: Any,
) -> ValidationReport:
    """Compare a fitted guide with NUTS on ``model(*args, **kwargs)``, every latent site.

    Args:
        model: any NumPyro model.
        guide: a guide with ``sample_posterior(key, params, *args, sample_shape=...)`` over the
            model's latent sites (AutoDTS, an AutoGuide), whose density NumPyro can evaluate.
        params: the guide's params (``svi_result.params``; {} for a guide without any).
        *args, **kwargs: the model's arguments (observed values included).
        key: PRNG key.
        nuts: reuse this NutsResult (from :func:`run_nuts_model`) instead of running NUTS.
        num_guide_samples: guide draws (default: twice the NUTS draws).
        num_psis_samples: guide draws for PSIS k-hat (0: skip it, k-hat reported as NaN).
        gates: ReferenceGates the NUTS run must pass to count as reliable.
        nuts_options: keyword arguments of :func:`run_nuts_model` when NUTS runs here.

    Returns:
        ValidationReport (per-site errors in NUTS posterior sd, sd ratios, energy distances;
        ``reliable`` says whether NUTS passed ``gates``).
    """
    if not isinstance(gates, ReferenceGates):
        raise ValueError(f"gates: expected a ReferenceGates, got {type(gates).__name__}")
    gates.check()
    _checks.check_key(key)
    if not callable(getattr(guide, "sample_posterior", None)):
        raise ValueError(f"guide: expected a guide with sample_posterior(key, params, ...), got {type(guide).__name__}")
    want = latent_sites(model, *args, **kwargs)
    k_nuts, k_guide, k_psis = jax.random.split(key, 3)
    if nuts is None:
        nuts = run_nuts_model(model, *args, key=k_nuts, **(nuts_options or {}), **kwargs)
    missing = set(want) - set(nuts.samples)
    if missing:
        raise ValueError(f"nuts: no draws of sites {sorted(missing)}")
    if num_guide_samples is None:
        first = next(iter(nuts.samples.values()))
        num_guide_samples = 2 * first.shape[0] * first.shape[1]
    draws = guide.sample_posterior(k_guide, params, *args, sample_shape=(int(num_guide_samples),), **kwargs)
    got = {k: tuple(np.shape(v)[1:]) for k, v in draws.items() if k in want}
    if got != want:
        raise ValueError(f"guide: its latent sites {got} differ from the model's {want} (names and shapes must match)")
    draws = {k: np.asarray(draws[k]) for k in want}
    ess = _arviz.chain_diagnostics({k: nuts.samples[k] for k in want})
    reports = {k: compare_site(draws[k], nuts.samples[k], ess[k]["ess_mean"]) for k in want}
    khat = float("nan")
    if num_psis_samples:
        lw = log_importance_weights_model(k_psis, model, guide, params, *args, num_samples=num_psis_samples, **kwargs)
        if not bool(np.all(np.isfinite(np.asarray(lw)))):
            raise ValueError("guide: log importance weights are not finite; the guide misses the model's support")
        khat = _arviz.psis(lw)[1]
    return ValidationReport(reports, khat, nuts_diagnostics(nuts, list(want)), draws, nuts, gates, "centred")


def site_dims(model, *args, **kwargs) -> tuple[dict, dict]:
    """ArviZ (dims, coords) of a model's sites: plate names, then the site's ``infer["event_dims"]``.

    Event axes without names get ``{site}_dim_{i}``; every coordinate is 0..size-1 (psi's
    ``level`` runs L..1, as :func:`dts_ppl.to_inference_data` labels it).
    """
    tr = _trace(model, args, kwargs)
    dims, coords = {}, {}
    for name, site in tr.items():
        if site["type"] not in ("sample", "deterministic"):
            continue
        shape = np.shape(site["value"])
        frames = sorted(site.get("cond_indep_stack") or [], key=lambda f: f.dim)
        names = [f.name for f in frames]
        event = list((site.get("infer") or {}).get("event_dims", []))
        rest = len(shape) - len(names)
        event = (event + [f"{name}_dim_{i}" for i in range(len(event), rest)])[:rest]
        dims[name] = names + event
        for dim, size in zip(dims[name], shape, strict=True):
            coords.setdefault(dim, np.arange(size, 0, -1) if dim == "level" else np.arange(size))
    return dims, coords


def model_inference_data(model: Callable[..., Any], draws: dict | NutsResult, *args: Any, **kwargs: Any) -> Any:
    """ArviZ InferenceData of posterior draws of a user model (guide draws or a NutsResult).

    Args:
        model: the NumPyro model.
        draws: {site: (num_draws, *shape)} (``guide.sample_posterior``; one chain) or a NutsResult.
        *args, **kwargs: the model's arguments (observed sites go to ``observed_data``).

    Returns:
        arviz.InferenceData with ``posterior`` (and ``sample_stats`` from NUTS, ``observed_data``).
    """
    if isinstance(draws, NutsResult):
        posterior = {k: np.asarray(v) for k, v in draws.samples.items()}
        stats = {k: np.asarray(v) for k, v in draws.sample_stats.items() if k in ("diverging", "accept_prob")}
        sample_stats = {("acceptance_rate" if k == "accept_prob" else k): v for k, v in stats.items()}
    elif isinstance(draws, dict):
        posterior, sample_stats = {k: np.asarray(v)[None] for k, v in draws.items()}, None
    else:
        raise ValueError(f"draws: expected a dict of guide draws or a NutsResult, got {type(draws).__name__}")
    dims, coords = site_dims(model, *args, **kwargs)
    tr = _trace(model, args, kwargs)
    observed = {k: np.asarray(s["value"]) for k, s in tr.items() if s["type"] == "sample" and s["is_observed"]}
    dims = {k: v for k, v in dims.items() if k in posterior or k in observed}
    return _arviz.inference_data(
        posterior, sample_stats=sample_stats, observed_data=observed or None, coords=coords, dims=dims
    )
