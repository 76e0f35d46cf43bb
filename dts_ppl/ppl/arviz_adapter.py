"""The one place that calls ArviZ (written for arviz 0.2x; ArviZ 1.x can be added here).

Everything else in dts_ppl hands this module plain numpy arrays keyed by site name, with a
leading (chain, draw) shape, and gets numpy arrays, InferenceData or matplotlib figures back.
"""

from __future__ import annotations

import warnings

import numpy as np


def _az():
    import arviz as az

    return az


def psis(log_weights):
    """Pareto-smoothed importance sampling. log_weights (S,) -> (smoothed log weights (S,), k-hat).

    Weights that are equal to round-off (an exact guide) have no tail at all: ArviZ fits a
    Pareto tail to them anyway and returns inf, so they are reported here as k-hat = -inf.
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    lw = lw - lw.max()
    if np.ptp(lw) < 1e-8:
        return np.full_like(lw, -np.log(lw.size)), -np.inf
    with warnings.catch_warnings():
        # ArviZ warns when k-hat is high or the tail is short; the caller reports k-hat itself.
        warnings.simplefilter("ignore")
        smoothed, khat = _az().psislw(lw)
    return np.asarray(smoothed), float(np.asarray(khat))


def chain_diagnostics(samples: dict) -> dict:
    """Rank-normalised split R-hat, bulk ESS, tail ESS and ESS of the mean, per coordinate.

    Args:
        samples: {site: (chains, draws, *site_shape)}.
    Returns:
        {site: {"rhat", "ess_bulk", "ess_tail", "ess_mean"}}, each (*site_shape,).
    """
    az = _az()
    data = az.convert_to_inference_data({k: np.asarray(v) for k, v in samples.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains warn; the numbers are reported as they are
        rhat = az.rhat(data)
        bulk = az.ess(data, method="bulk")
        tail = az.ess(data, method="tail")
        mean = az.ess(data, method="mean")
    return {
        k: {"rhat": rhat[k].values, "ess_bulk": bulk[k].values, "ess_tail": tail[k].values, "ess_mean": mean[k].values}
        for k in samples
    }


def inference_data(
    posterior: dict,
    *,
    sample_stats: dict | None = None,
    posterior_predictive: dict | None = None,
    observed_data: dict | None = None,
    prior: dict | None = None,
    prior_predictive: dict | None = None,
    constant_data: dict | None = None,
    log_likelihood: dict | None = None,
    coords: dict | None = None,
    dims: dict | None = None,
    attrs: dict | None = None,
):
    """An ``arviz.InferenceData`` from numpy arrays.

    Args:
        posterior, sample_stats, posterior_predictive, prior, prior_predictive, log_likelihood:
            {name: (chains, draws, *shape)}.
        observed_data, constant_data: {name: array} with no chain or draw axes.
        coords, dims, attrs: as ``arviz.from_dict`` takes them.

    Returns:
        arviz.InferenceData with the groups that were given.
    """
    as_np = lambda d: None if d is None else {k: np.asarray(v) for k, v in d.items()}  # noqa: E731
    return _az().from_dict(
        posterior=as_np(posterior),
        sample_stats=as_np(sample_stats),
        posterior_predictive=as_np(posterior_predictive),
        observed_data=as_np(observed_data),
        prior=as_np(prior),
        prior_predictive=as_np(prior_predictive),
        constant_data=as_np(constant_data),
        log_likelihood=as_np(log_likelihood),
        coords=coords,
        dims=dims,
        attrs=attrs,
    )


def loo(idata):
    """PSIS leave-one-out cross-validation (``arviz.loo``) of an InferenceData with log_likelihood."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k warnings; the caller reads pareto_k itself
        return _az().loo(idata, pointwise=True)


def compare(datasets: dict):
    """``arviz.compare`` of {label: InferenceData with log_likelihood}: a DataFrame ranked by elpd_loo."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _az().compare(datasets)


def plot_forest(datasets: dict, var_names, ax):
    """Forest plot of several InferenceData ({label: idata}) on one axis, chains combined."""
    _az().plot_forest(
        list(datasets.values()),
        model_names=list(datasets),
        var_names=list(var_names),
        combined=True,
        hdi_prob=0.9,
        ax=ax,
    )


def plot_pair(datasets: dict, var_names, coords: dict, axes, colors):
    """Scatter of two coordinates with marginal densities, one colour per dataset, on a 2x2 axes grid."""
    az = _az()
    for (label, data), color in zip(datasets.items(), colors, strict=False):
        az.plot_pair(
            data,
            var_names=list(var_names),
            coords=coords,
            marginals=True,
            ax=axes,
            scatter_kwargs={"color": color, "alpha": 0.3, "s": 6, "label": label},
            marginal_kwargs={"color": color},
        )
