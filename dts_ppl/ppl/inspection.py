"""Posterior draws as ArviZ InferenceData, and guide-vs-NUTS comparison plots.

All ArviZ calls go through :mod:`dts_ppl.ppl.arviz_adapter`; this module only arranges arrays, dims and
coords. Dims: ``psi`` (level, latent_feature) with level = L, ..., 1 (the site's rows are in
sampling order, top latent psi_L first), ``theta`` (action, feature) (or (feature,) for a
shared model), ``y`` (obs,).
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from dts_ppl.plotting import pyplot
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.validate import NutsResult

# names ArviZ expects in sample_stats, from NumPyro's extra fields
_SAMPLE_STATS = {
    "diverging": "diverging",
    "accept_prob": "acceptance_rate",
    "num_steps": "n_steps",
    "energy": "energy",
}


def dims_and_coords(model, num_obs: int | None = None):
    """ArviZ ``dims`` and ``coords`` of a BanditModel's sites."""
    prior = model.prior
    dims = {
        "psi": ["level", "latent_feature"],
        "theta": ["feature"] if model.shared else ["action", "feature"],
        "y": ["obs"],
    }
    coords = {
        "level": np.arange(prior.num_levels, 0, -1),  # psi[0] is psi_L
        "latent_feature": np.arange(prior.latent_dim),
        "feature": np.arange(prior.dim),
    }
    if not model.shared:
        coords["action"] = np.arange(model.num_actions)
    if num_obs is not None:
        coords["obs"] = np.arange(num_obs)
    return dims, coords


def _predictive(key, model, theta, X, A):
    """Rewards at (X, A) for every draw of theta (chains, draws, K, d) -> (chains, draws, n)."""
    if model.shared:
        eta = jnp.einsum("nd,...d->...n", X, theta)
    else:
        eta = jnp.sum(X * theta[..., A, :], axis=-1)
    return np.asarray(model.likelihood.sample(key, eta))


def to_inference_data(model, draws, X=None, A=None, y=None, *, key=None):
    """InferenceData of posterior draws of ``model``: from a guide or from NUTS.

    Args:
        model: BanditModel.
        draws: {site: (num_draws, *site_shape)} guide draws (e.g. ``guide.sample_posterior``;
            stored as one chain) or a :class:`dts_ppl.ppl.validate.NutsResult` (chains kept, and
            its extra fields become ``sample_stats``: diverging, acceptance_rate, n_steps,
            energy, lp).
        X, A, y: the data; with them the result has ``observed_data`` (y) and, when ``key``
            is given, ``posterior_predictive`` (y at X, A for every draw).
        key: PRNG key for the posterior predictive draws.

    Returns:
        arviz.InferenceData with dims/coords level, latent_feature, action, feature, obs.
    """
    sample_stats = None
    if isinstance(draws, NutsResult):
        posterior = {k: np.asarray(v) for k, v in draws.samples.items()}
        stats = draws.sample_stats
        sample_stats = {new: np.asarray(stats[old]) for old, new in _SAMPLE_STATS.items() if old in stats}
        if "potential_energy" in stats:
            sample_stats["lp"] = -np.asarray(stats["potential_energy"])
    elif isinstance(draws, dict):
        posterior = {k: np.asarray(v)[None] for k, v in draws.items()}
    else:
        raise ValueError(f"draws: expected a dict of guide draws or a NutsResult, got {type(draws).__name__}")
    missing = set(model.latent_shapes) - set(posterior)
    if missing:
        raise ValueError(f"draws: no draws of sites {sorted(missing)}")
    observed, predictive, n = None, None, None
    if y is not None:
        X, A, y = model.check_data(X, None if model.shared else A, y)
        n = X.shape[0]
        observed = {"y": np.asarray(y)}
        if key is not None:
            predictive = {"y": _predictive(key, model, jnp.asarray(posterior["theta"]), X, A)}
    dims, coords = dims_and_coords(model, n)
    return _arviz.inference_data(
        posterior,
        sample_stats=sample_stats,
        posterior_predictive=predictive,
        observed_data=observed,
        coords=coords,
        dims=dims,
    )


def _coordinate(idata, site: str, index) -> np.ndarray:
    """Draws (chains, draws) of one coordinate site[index] of an InferenceData's posterior."""
    values = np.asarray(idata.posterior[site].values)
    index = tuple(np.atleast_1d(index))
    if len(index) != values.ndim - 2:
        raise ValueError(f"pair: {site} has {values.ndim - 2} indices, got {index}")
    return values[(slice(None), slice(None)) + index]


def _label(idata, site: str, index) -> str:
    """site[coord values] as ArviZ labels it in the forest plot (psi's level axis runs L..1)."""
    var = idata.posterior[site]
    index = tuple(np.atleast_1d(index))
    if len(index) != var.ndim - 2:
        raise ValueError(f"pair: {site} has {var.ndim - 2} indices, got {index}")
    values = [str(var.coords[dim].values[i]) for dim, i in zip(var.dims[2:], index, strict=True)]
    return f"{site}[{', '.join(values)}]"


def plot_comparison(datasets: dict, path=None, *, pair=None, sites=("psi", "theta"), title: str | None = None):
    """Forest plot of every site per dataset, and a pair plot of two coordinates.

    Args:
        datasets: {label: InferenceData}, e.g. {"dTS guide": ..., "NUTS": ...}.
        path: where to save the figure (any matplotlib format); None to only return it.
        pair: ((site, index), (site, index)) of the two coordinates, e.g.
            (("psi", (0, 0)), ("theta", (0, 0))) (indices into the sites' arrays; psi[0] is
            the top latent psi_L); default those two.
        sites: the sites in the forest plot.

    Returns:
        The matplotlib Figure.
    """
    plt = pyplot(headless=path is not None)

    first = next(iter(datasets.values()))
    if pair is None:
        theta0 = (0,) * (first.posterior["theta"].ndim - 2)
        pair = (("psi", (0, 0)), ("theta", theta0))  # psi[0] is the top latent psi_L
    names = [_label(first, s, ix) for s, ix in pair]
    pairs = {
        label: _arviz.inference_data({n: _coordinate(d, s, ix) for n, (s, ix) in zip(names, pair, strict=True)})
        for label, d in datasets.items()
    }
    rows = sum(int(np.prod(first.posterior[s].shape[2:])) for s in sites)
    fig = plt.figure(figsize=(12, max(5.0, 0.18 * rows * len(datasets) + 1.5)))
    grid = fig.add_gridspec(2, 3, width_ratios=[1.3, 1, 0.35], height_ratios=[0.35, 1])
    forest_ax = fig.add_subplot(grid[:, 0])
    _arviz.plot_forest(datasets, sites, forest_ax)
    pair_axes = np.array(
        [
            [fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2])],
            [fig.add_subplot(grid[1, 1]), fig.add_subplot(grid[1, 2])],
        ]
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    _arviz.plot_pair(pairs, names, None, pair_axes, colors)
    pair_axes[0, 1].axis("off")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="") for c in colors[: len(datasets)]]
    pair_axes[0, 1].legend(handles, list(datasets), loc="center")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110, bbox_inches="tight")
    return fig
