"""The one module that calls ArviZ, for both of its APIs: 0.2x (``arviz``) and 1.x (``arviz_base``,
``arviz_stats``, ``arviz_plots``, re-exported by ``arviz``).

Everything else in dts_ppl hands this module plain numpy arrays keyed by site name, with a
leading (chain, draw) shape, and gets numpy arrays, the ArviZ container of the installed version
(``InferenceData`` on 0.2x, ``xarray.DataTree`` on 1.x; both answer ``idata.posterior["theta"]``),
:class:`LooResult`, a pandas DataFrame with the same columns on both, or matplotlib figures back.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np


def _az():
    # numpyro before arviz: when ArviZ 1.x comes first, its lazy numpyro handle never gets numpyro's
    # submodules as attributes and arviz.from_numpyro fails
    __import__("numpyro")
    import arviz as az

    return az


def arviz_version() -> tuple[int, int]:
    """(major, minor) of the installed ArviZ."""
    major, minor = _az().__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _v1() -> bool:
    """True on ArviZ 1.x (DataTree, arviz_stats), False on 0.2x (InferenceData)."""
    return arviz_version()[0] >= 1


def psis(log_weights):
    """Pareto-smoothed importance sampling. log_weights (S,) -> (smoothed log weights (S,), k-hat).

    Weights that are equal to round-off (an exact guide) have no tail at all: ArviZ fits a
    Pareto tail to them anyway and returns inf, so they are reported here as k-hat = -inf. A tail
    ArviZ cannot fit (inf on 0.2x, nan on 1.x: weights that overflow) is reported as k-hat = inf.
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    lw = lw - lw.max()
    if np.ptp(lw) < 1e-8:
        return np.full_like(lw, -np.log(lw.size)), -np.inf
    with warnings.catch_warnings():
        # ArviZ warns when k-hat is high or the tail is short; the caller reports k-hat itself.
        warnings.simplefilter("ignore")
        if _v1():
            from arviz_stats.base import array_stats

            smoothed, khat = array_stats.psislw(-lw)  # 1.x takes the negated log ratios, as loo does
        else:
            smoothed, khat = _az().psislw(lw)
    khat = float(np.asarray(khat))
    return np.asarray(smoothed), (np.inf if np.isnan(khat) else khat)


def chain_diagnostics(samples: dict) -> dict:
    """Rank-normalised split R-hat, bulk ESS, tail ESS and ESS of the mean, per coordinate.

    Args:
        samples: {site: (chains, draws, *site_shape)}.
    Returns:
        {site: {"rhat", "ess_bulk", "ess_tail", "ess_mean"}}, each (*site_shape,).
    """
    az = _az()
    arrays = {k: np.asarray(v) for k, v in samples.items()}
    data = az.convert_to_datatree(arrays) if _v1() else az.convert_to_inference_data(arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains warn; the numbers are reported as they are
        rhat = az.rhat(data)
        bulk = az.ess(data, method="bulk")
        tail = az.ess(data, method="tail")
        mean = az.ess(data, method="mean")
    return {
        k: {
            "rhat": np.asarray(rhat[k].values),
            "ess_bulk": np.asarray(bulk[k].values),
            "ess_tail": np.asarray(tail[k].values),
            "ess_mean": np.asarray(mean[k].values),
        }
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
    """ArviZ's container for numpy arrays: ``arviz.InferenceData`` (0.2x) or ``xarray.DataTree`` (1.x).

    Args:
        posterior, sample_stats, posterior_predictive, prior, prior_predictive, log_likelihood:
            {name: (chains, draws, *shape)}.
        observed_data, constant_data: {name: array} with no chain or draw axes.
        coords, dims: as ``arviz.from_dict`` takes them.
        attrs: attributes of the posterior group.

    Returns:
        The container with the groups that were given (:func:`group_names` lists them).
    """
    groups = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "posterior_predictive": posterior_predictive,
        "observed_data": observed_data,
        "prior": prior,
        "prior_predictive": prior_predictive,
        "constant_data": constant_data,
        "log_likelihood": log_likelihood,
    }
    groups = {g: {k: np.asarray(v) for k, v in d.items()} for g, d in groups.items() if d is not None}
    az = _az()
    if _v1():
        return az.from_dict(groups, coords=coords, dims=dims, attrs=None if attrs is None else {"posterior": attrs})
    return az.from_dict(**groups, coords=coords, dims=dims, attrs=attrs)


def group_names(idata) -> set[str]:
    """The names of the groups of an InferenceData (0.2x) or DataTree (1.x): {"posterior", ...}."""
    if _v1():
        return set(idata.children)
    return set(idata.groups())


@dataclasses.dataclass(frozen=True)
class LooResult:
    """PSIS-LOO of one dataset, the same fields on ArviZ 0.2x and 1.x.

    Attributes:
        elpd_loo: expected log pointwise predictive density (sum over observations).
        se: its standard error, sqrt(n var(loo_i)) with the n - 1 denominator on both ArviZ
            versions (0.2x's own divides by n).
        p_loo: effective number of parameters.
        loo_i: (n,) pointwise elpd.
        pareto_k: (n,) Pareto k-hat of each observation's importance weights.
        n_samples, n_data_points: posterior draws and observations used.
        native: ArviZ's own result (``ELPDData`` on 0.2x, ``ELPDDataLOO`` on 1.x).

    ``result["elpd_loo"]`` (any field by name) works as on ArviZ 0.2x's ``ELPDData``.
    """

    elpd_loo: float
    se: float
    p_loo: float
    loo_i: np.ndarray
    pareto_k: np.ndarray
    n_samples: int
    n_data_points: int
    native: Any = dataclasses.field(repr=False, compare=False)

    def __getitem__(self, name: str):
        if name not in LOO_FIELDS:
            raise KeyError(f"{name!r}: a LooResult has {LOO_FIELDS}")
        return getattr(self, name)


LOO_FIELDS = ("elpd_loo", "se", "p_loo", "loo_i", "pareto_k", "n_samples", "n_data_points")


def _se_of_sum(pointwise) -> float:
    """sqrt(n var(pointwise)) with the n - 1 denominator (ArviZ 1.x's; 0.2x divides by n)."""
    pointwise = np.asarray(pointwise, dtype=float).ravel()
    return float(np.sqrt(pointwise.size * np.var(pointwise, ddof=1)))


def loo(idata) -> LooResult:
    """PSIS leave-one-out cross-validation (``arviz.loo``, pointwise) of a container with log_likelihood."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k warnings; the caller reads pareto_k itself
        native = _az().loo(idata, pointwise=True)
    if _v1():
        elpd, p, pointwise = native.elpd, native.p, native.elpd_i
    else:
        elpd, p, pointwise = native["elpd_loo"], native["p_loo"], native["loo_i"]
    pointwise = np.asarray(pointwise)
    return LooResult(
        elpd_loo=float(elpd),
        se=_se_of_sum(pointwise),
        p_loo=float(p),
        loo_i=pointwise,
        pareto_k=np.asarray(native.pareto_k if _v1() else native["pareto_k"]),
        n_samples=int(native.n_samples if _v1() else native["n_samples"]),
        n_data_points=int(native.n_data_points if _v1() else native["n_data_points"]),
        native=native,
    )


# the columns of compare(), on either ArviZ (1.x names elpd_loo "elpd" and p_loo "p")
COMPARE_COLUMNS = ("rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse")


def compare(datasets: dict):
    """``arviz.compare`` (stacking weights) of {label: container with log_likelihood}.

    Returns:
        pandas DataFrame indexed by label, best first, with the columns :data:`COMPARE_COLUMNS`
        (unrounded; ArviZ 1.x rounds unless told not to); ``elpd_diff`` >= 0 is the best
        elpd_loo minus this one's, as ArviZ 0.2x reports it; ``se`` and ``dse`` (the se of the
        pointwise difference to the best) use the n - 1 denominator, as ArviZ 1.x does.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _v1():
            table = _az().compare(datasets, method="stacking", round_to="none")
            table = table.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
        else:
            table = _az().compare(datasets, method="stacking")
    table = table[list(COMPARE_COLUMNS)].copy()
    table["rank"] = table["rank"].astype(int)
    for column in COMPARE_COLUMNS[1:]:
        table[column] = table[column].astype(float)
    # 0.2x's sign on both: how far below the best (1.x reports the negated difference)
    table["elpd_diff"] = table["elpd_loo"].max() - table["elpd_loo"]
    # se and dse with the n - 1 denominator on both versions (0.2x divides by n)
    pointwise = {label: loo(data).loo_i for label, data in datasets.items()}
    best = table.index[0]
    table["se"] = [_se_of_sum(pointwise[label]) for label in table.index]
    table["dse"] = [0.0 if label == best else _se_of_sum(pointwise[best] - pointwise[label]) for label in table.index]
    return table


def _flat_coordinates(idata, var_names):
    """[(label, draws (chains * draws,))] of every coordinate of the sites, labelled site[coord values]."""
    out = []
    for site in var_names:
        var = idata.posterior[site]
        values = np.asarray(var.values)
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        coords = [np.asarray(var.coords[dim].values) for dim in var.dims[2:]]
        for j, index in enumerate(np.ndindex(*values.shape[2:])):
            labels = ", ".join(str(c[i]) for c, i in zip(coords, index, strict=True))
            out.append((f"{site}[{labels}]" if labels else site, flat[:, j]))
    return out


def plot_forest(datasets: dict, var_names, ax):
    """Forest plot of several containers ({label: idata}) on one axis, chains combined: 90% HDI and median."""
    if not _v1():
        _az().plot_forest(
            list(datasets.values()),
            model_names=list(datasets),
            var_names=list(var_names),
            combined=True,
            hdi_prob=0.9,
            ax=ax,
        )
        return
    import matplotlib
    from arviz_stats.base import array_stats

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    per = {label: _flat_coordinates(d, var_names) for label, d in datasets.items()}
    names = [name for name, _ in next(iter(per.values()))]
    height, step = len(names) * (len(datasets) + 1), len(datasets) + 1
    for m, (label, rows) in enumerate(per.items()):
        for r, (_, draws) in enumerate(rows):
            y = height - r * step - m
            lo, hi = np.asarray(array_stats.hdi(draws, 0.9))
            ax.plot([lo, hi], [y, y], color=cycle[m % len(cycle)], lw=1.5, label=label if r == 0 else None)
            ax.plot([np.median(draws)], [y], "o", color=cycle[m % len(cycle)], ms=3)
    ax.set_yticks([height - r * step - (len(datasets) - 1) / 2 for r in range(len(names))], names)
    ax.set_title("90% HDI")


def plot_pair(datasets: dict, var_names, coords: dict, axes, colors):
    """Scatter of two coordinates with marginal densities, one colour per dataset, on a 2x2 axes grid."""
    az = _az()
    if not _v1():
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
        return
    # ArviZ 1.x plots onto its own PlotCollection, not onto given axes: the same layout with matplotlib
    first, second = var_names
    for (label, data), color in zip(datasets.items(), colors, strict=False):
        u = np.asarray(data.posterior[first].values).ravel()
        v = np.asarray(data.posterior[second].values).ravel()
        axes[1, 0].scatter(u, v, color=color, alpha=0.3, s=6, label=label)
        axes[0, 0].hist(u, bins=30, density=True, histtype="step", color=color)
        axes[1, 1].hist(v, bins=30, density=True, histtype="step", color=color, orientation="horizontal")
    axes[1, 0].set_xlabel(first)
    axes[1, 0].set_ylabel(second)
