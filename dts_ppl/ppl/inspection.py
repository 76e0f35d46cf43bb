"""Posterior draws as ArviZ InferenceData, and guide-vs-NUTS comparison plots.

All ArviZ calls go through :mod:`dts_ppl.ppl.arviz_adapter`; this module only arranges arrays, dims and
coords. Dims: ``psi`` (level, latent_feature) with level = L, ..., 1 (the site's rows are in
sampling order, top latent psi_L first), ``theta`` (actions, feature) (or (feature,) for a
shared model), ``y`` (obs,), ``X`` (obs, feature), ``A`` (obs,).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from numpyro.infer import Predictive

from dts_ppl.core.likelihoods import linear_predictor
from dts_ppl.plotting import pyplot
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.model import SITE_DIMS, BanditModel, reward_distribution
from dts_ppl.ppl.nuts import NutsResult

# names ArviZ expects in sample_stats, from NumPyro's extra fields
_SAMPLE_STATS = {
    "diverging": "diverging",
    "accept_prob": "acceptance_rate",
    "num_steps": "n_steps",
    "energy": "energy",
}


def dims_and_coords(model, num_obs: int | None = None):
    """ArviZ ``dims`` and ``coords`` of a BanditModel's sites and data.

    The names are the model's own (:data:`dts_ppl.ppl.model.SITE_DIMS`: its plates and event
    dims), so ``arviz.from_numpyro`` on the same model names the dimensions alike.

    Args:
        model: BanditModel.
        num_obs: n, for the ``obs`` coordinate (None: no data).

    Returns:
        (dims {name: [dim, ...]}, coords {dim: values}).
    """
    prior = model.prior
    theta = list(SITE_DIMS["theta"][1:]) if model.shared else list(SITE_DIMS["theta"])
    dims = {"psi": list(SITE_DIMS["psi"]), "theta": theta, "y": list(SITE_DIMS["y"])}
    dims.update({"psi_raw": dims["psi"], "theta_raw": theta, "X": ["obs", "feature"], "A": ["obs"]})
    coords = {
        "level": np.arange(prior.num_levels, 0, -1),  # psi[0] is psi_L
        "latent_feature": np.arange(prior.latent_dim),
        "feature": np.arange(prior.dim),
    }
    if not model.shared:
        coords["actions"] = np.arange(model.num_actions)
    if num_obs is not None:
        coords["obs"] = np.arange(num_obs)
    return dims, coords


def _posterior(draws):
    """{site: (chains, draws, *shape)} and sample_stats (or None) from guide draws or a NutsResult."""
    if isinstance(draws, NutsResult):
        posterior = {k: np.asarray(v) for k, v in draws.samples.items()}
        stats = draws.sample_stats
        sample_stats = {new: np.asarray(stats[old]) for old, new in _SAMPLE_STATS.items() if old in stats}
        if "potential_energy" in stats:
            sample_stats["lp"] = -np.asarray(stats["potential_energy"])
        return posterior, sample_stats
    if isinstance(draws, dict):
        return {k: np.asarray(v)[None] for k, v in draws.items()}, None
    raise ValueError(f"draws: expected a dict of guide draws or a NutsResult, got {type(draws).__name__}")


def to_inference_data(
    model: BanditModel,
    draws: dict | NutsResult,
    X: ArrayLike | None = None,
    A: ArrayLike | None = None,
    y: ArrayLike | None = None,
    *,
    key: jax.Array | None = None,
    num_prior_draws: int | None = None,
) -> Any:
    """InferenceData of posterior draws of ``model``, from a guide or from NUTS.

    Groups: ``posterior`` always; with X: ``constant_data`` (X, and A unless shared); with y:
    ``observed_data`` (y) and ``log_likelihood`` (log p(y_i | theta) per draw and observation,
    for ``arviz.loo`` and ``arviz.compare``); with ``key``: ``prior`` (psi, theta), and with X
    also ``prior_predictive`` and ``posterior_predictive`` (y at X, A). NUTS adds
    ``sample_stats`` (diverging, acceptance_rate, n_steps, energy, lp).

    Args:
        model: BanditModel.
        draws: {site: (num_draws, *site_shape)} guide draws (``guide.sample_posterior``; stored
            as one chain) or a :class:`dts_ppl.ppl.nuts.NutsResult` (chains kept).
        X: (n, d) contexts, A: (n,) actions, y: (n,) rewards.
        key: PRNG key of the prior and predictive draws (None: those groups are left out).
        num_prior_draws: prior draws (default: as many as posterior draws per chain).

    Returns:
        ``arviz.InferenceData`` on ArviZ 0.2x, ``xarray.DataTree`` on ArviZ 1.x (both answer
        ``idata.posterior["theta"]``; :func:`group_names` lists the groups); dims level,
        latent_feature, actions, feature, obs (the names ``arviz.from_numpyro`` infers from the
        model's plates and event dims).
    """
    posterior, sample_stats = _posterior(draws)
    missing = set(model.latent_shapes) - set(posterior)
    if missing:
        raise ValueError(f"draws: no draws of sites {sorted(missing)}")
    if X is None and y is not None:
        raise ValueError("X: contexts are required with rewards y")
    groups, n = {}, None
    if X is not None:
        X, A, y = model.check_data(X, None if model.shared else A, y)
        n = X.shape[0]
        groups["constant_data"] = {"X": np.asarray(X)} if model.shared else {"X": np.asarray(X), "A": np.asarray(A)}
        theta = jnp.asarray(posterior["theta"])
        eta = linear_predictor(X, theta[..., None, :], None) if model.shared else linear_predictor(X, theta, A)
        if y is not None:
            groups["observed_data"] = {"y": np.asarray(y)}
            groups["log_likelihood"] = {"y": np.asarray(reward_distribution(model.likelihood, eta).log_prob(y))}
    if key is not None:
        k_prior, k_pred = jax.random.split(key)
        num = num_prior_draws or next(iter(posterior.values())).shape[1]
        args = () if X is None else (X, None if model.shared else A)
        prior = Predictive(model, num_samples=int(num))(k_prior, *args)
        groups["prior"] = {k: np.asarray(v)[None] for k, v in prior.items() if k != "y"}
        if X is not None:
            groups["prior_predictive"] = {"y": np.asarray(prior["y"])[None]}
            groups["posterior_predictive"] = {"y": np.asarray(model.likelihood.sample(k_pred, eta))}
    dims, coords = dims_and_coords(model, n)
    return _arviz.inference_data(posterior, sample_stats=sample_stats, coords=coords, dims=dims, **groups)


def loo(idata) -> _arviz.LooResult:
    """PSIS-LOO (``arviz.loo``, pointwise) of an InferenceData from :func:`to_inference_data` with y.

    Returns:
        :class:`~dts_ppl.ppl.arviz_adapter.LooResult`: elpd_loo, se, p_loo, loo_i (n,), pareto_k
        (n,), the same on ArviZ 0.2x and 1.x; ``result["elpd_loo"]`` also works.
    """
    return _arviz.loo(idata)


def compare(datasets: dict):
    """Rank {label: InferenceData with y} by expected log predictive density (``arviz.compare``).

    Returns:
        pandas DataFrame, best first: rank, elpd_loo, p_loo, elpd_diff (best minus this, >= 0),
        weight (stacking), se, dse, on ArviZ 0.2x and 1.x alike.
    """
    return _arviz.compare(datasets)


def group_names(idata) -> set[str]:
    """The groups of an InferenceData (ArviZ 0.2x) or DataTree (1.x): {"posterior", ...}."""
    return _arviz.group_names(idata)


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
