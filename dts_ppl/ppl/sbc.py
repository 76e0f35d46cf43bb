"""Simulation-based calibration (SBC) of a guide of a :class:`BanditModel`, and of a bandit's posterior.

SBC (Talts et al. 2018): draw (psi, theta, y) from the model's prior predictive, fit the guide to
each y, and rank every true latent coordinate among ``num_draws`` guide draws. For a calibrated
guide the rank of each quantity is uniform on {0, ..., num_draws}, whatever the data; a guide
that is too narrow gives U-shaped ranks, one that is biased gives skewed ranks.

Uniformity is judged with the simultaneous ECDF band of Säilynoja, Bürkner and Vehtari (2022,
"Graphical test for discrete uniformity and its applications in goodness-of-fit evaluation and
multiple sample comparison"), computed here by **simulation** (their section 2.2): the count of
ranks <= j, j = 0..S-1, is Binomial(N, (j + 1) / (S + 1)) under uniformity; the band is the
pointwise central binomial interval whose per-point tail level is adjusted, from
``num_simulations`` multinomial draws of uniform ranks, so that a uniform sample leaves the band
anywhere with probability at most 1 - ``prob`` (up to the simulation's error; the ranks are
discrete, so the rate can fall a little below it). Each quantity also gets the p-value of this
test (the fraction of simulated uniform samples at least as extreme), and a family verdict with
a Bonferroni correction over the report's quantities.

Guides: anything with ``fit(X, A, y) -> params`` and NumPyro's AutoGuide
``sample_posterior(rng_key, params, *args, sample_shape=())`` that JAX can trace (:class:`DTSGuide`,
:class:`DistortedGuide`): all data sets are fitted in one ``vmap`` per chunk. Any NumPyro
``AutoGuide`` is fitted by SVI per data set (vmapped as well; slower, the same report).
:func:`bandit_sbc` ranks theta* among draws of the guide built on a dTS agent's own statistics
after it played ``num_rounds`` rounds; :func:`report_from_vsbc` builds the report from
``numpyro.infer.calibration.vsbc_diagnostic``'s output.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoGuide
from scipy import stats as _stats
from tqdm.auto import tqdm

from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.io.npz import atomic_write
from dts_ppl.plotting import pyplot
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel

DEFAULT_PROB = 0.95
DEFAULT_NUM_DRAWS = 99  # 100 rank values: the PIT grid 0.01 wide
DEFAULT_BAND_SIMULATIONS = 20_000
BAND_METHOD = "simulation"


# --------------------------------------------------------------------------------- the band


class ECDFBand(NamedTuple):
    """Simultaneous ECDF band for N uniform ranks on {0, ..., S} (Säilynoja et al. 2022, by simulation).

    Attributes:
        num_datasets: N.   num_draws: S.   prob: the simultaneous coverage (e.g. 0.95).
        z: (S,) the uniform CDF at the thresholds, (j + 1) / (S + 1), j = 0..S-1.
        lower, upper: (S,) int, the band on the counts #{rank <= j}: a sample is inside when
            lower <= count <= upper at every j.
        level: the per-point tail probability the band uses (adjusted for simultaneity).
        null_stat: (M,) sorted test statistic of the simulated uniform samples (for p-values).
        method: "simulation".
    """

    num_datasets: int
    num_draws: int
    prob: float
    z: Annotated[np.ndarray, "S"]
    lower: Annotated[np.ndarray, "S"]
    upper: Annotated[np.ndarray, "S"]
    level: float
    null_stat: Annotated[np.ndarray, "M"]
    method: str = BAND_METHOD

    def statistic(self, counts) -> np.ndarray:
        """The test statistic of cumulative counts (..., S): min over j of both binomial tail probabilities."""
        return _tail_statistic(np.asarray(counts), self.num_datasets, self.z)

    def inside(self, counts) -> np.ndarray:
        """Whether cumulative counts (..., S) lie inside the band at every threshold, (...) bool."""
        counts = np.asarray(counts)
        return np.all((counts >= self.lower) & (counts <= self.upper), axis=-1)

    def p_value(self, counts) -> np.ndarray:
        """The simulated p-value of the uniformity test for counts (..., S): (1 + #{null <= stat}) / (M + 1)."""
        stat = self.statistic(counts)
        below = np.searchsorted(self.null_stat, stat, side="right")
        return (1.0 + below) / (self.null_stat.size + 1.0)


def _tail_statistic(counts, n: int, z) -> np.ndarray:
    """min_j min(P(X <= c_j), P(X >= c_j)) with X ~ Binomial(n, z_j): small when some count is extreme."""
    lo = _stats.binom.cdf(counts, n, z)
    hi = _stats.binom.sf(counts - 1, n, z)
    return np.min(np.minimum(lo, hi), axis=-1)


@functools.lru_cache(maxsize=32)
def ecdf_band(
    num_datasets: int,
    num_draws: int,
    prob: float = DEFAULT_PROB,
    num_simulations: int = DEFAULT_BAND_SIMULATIONS,
    seed: int = 0,
) -> ECDFBand:
    """The simultaneous ``prob`` ECDF band of N uniform ranks on {0, ..., S}, by simulation.

    Args:
        num_datasets: N, the number of ranks per quantity.
        num_draws: S, guide draws per data set (ranks take S + 1 values).
        prob: simultaneous coverage in (0, 1).
        num_simulations: M uniform samples drawn to adjust the pointwise level.
        seed: of the simulation (numpy), so the band is reproducible.

    Returns:
        ECDFBand; a uniform sample falls outside it with probability at most 1 - prob (up to
        the Monte-Carlo error of M simulations).
    """
    n = _checks.check_int("num_datasets", num_datasets, 1)
    s = _checks.check_int("num_draws", num_draws, 1)
    m = _checks.check_int("num_simulations", num_simulations, 100)
    prob = float(prob)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob: expected a number in (0, 1), got {prob!r}")
    z = np.arange(1, s + 1) / (s + 1.0)
    rng = np.random.default_rng(seed)
    counts = np.cumsum(rng.multinomial(n, np.full(s + 1, 1.0 / (s + 1)), size=m), axis=1)[:, :-1]
    null = np.sort(_tail_statistic(counts, n, z))
    # the largest level whose band holds at least ``prob`` of the simulated uniform samples
    level = float(null[int(math.floor(m * (1.0 - prob)))])
    # from the same tail probabilities as the statistic, so "inside" and "statistic >= level" agree
    c = np.arange(n + 1)
    lower = np.argmax(_stats.binom.cdf(c, n, z[:, None]) >= level, axis=1)  # least c, P(X <= c) >= level
    upper = n - np.argmax(
        (_stats.binom.sf(c - 1, n, z[:, None]) >= level)[:, ::-1], axis=1
    )  # largest c, P(X >= c) >= level
    return ECDFBand(n, s, prob, z, lower, upper, level, null)


def rank_counts(ranks, num_draws: int) -> np.ndarray:
    """Cumulative counts #{rank <= j}, j = 0..S-1, of ranks (N, Q) in {0..S}: (Q, S) int."""
    r = np.asarray(ranks)
    q = r.shape[1]
    hist = np.zeros((q, num_draws + 1), np.int64)
    np.add.at(hist, (np.broadcast_to(np.arange(q), r.shape), r), 1)
    return np.cumsum(hist, axis=1)[:, :-1]


# -------------------------------------------------------------------------------- the report


@dataclass
class SBCReport:
    """Ranks of every quantity over N simulated data sets, with the uniformity verdicts.

    Attributes:
        names: (Q,) quantity names, e.g. "theta[2,0]", "eta[t1,a3]" (x_t^T theta_a at test
            context t), "best[t1]" (max_a x_t^T theta_a).
        ranks: (N, Q) int in {0, ..., S}: the number of guide draws below the true value.
        num_draws: S.
        band: the ECDFBand of (N, S).
        p_values: (Q,) simulated p-value of the simultaneous uniformity test.
        inside: (Q,) bool, the rank ECDF inside the ``prob`` band.
        family_inside: (Q,) bool, not rejected at level 1 - prob after Bonferroni over the Q quantities.
        mean_pit: (Q,) mean of the PIT values (rank + 1/2) / (S + 1); 1/2 when calibrated,
            above it when the guide sits below the truth.
        pit_var_ratio: (Q,) variance of the PIT values over its uniform value; 1 when calibrated,
            above 1 when the guide is too narrow, below 1 when too wide.
        max_ecdf_diff: (Q,) max_j |ECDF(z_j) - z_j|.
        seconds: wall time of the fits and ranks (excluding compilation, when measured so).
        meta: what was run (preset, guide, sizes ...).
    """

    names: tuple
    ranks: np.ndarray
    num_draws: int
    band: ECDFBand
    p_values: np.ndarray
    inside: np.ndarray
    family_inside: np.ndarray
    mean_pit: np.ndarray
    pit_var_ratio: np.ndarray
    max_ecdf_diff: np.ndarray
    seconds: float = float("nan")
    meta: dict = field(default_factory=dict)

    @property
    def num_datasets(self) -> int:
        return int(self.ranks.shape[0])

    @property
    def pit(self) -> np.ndarray:
        """(N, Q) PIT values (rank + 1/2) / (S + 1)."""
        return (self.ranks + 0.5) / (self.num_draws + 1.0)

    @property
    def outside(self) -> list:
        """Names of the quantities outside the band."""
        return [n for n, ok in zip(self.names, self.inside, strict=True) if not ok]

    @property
    def family_outside(self) -> list:
        """Names of the quantities rejected after the Bonferroni correction."""
        return [n for n, ok in zip(self.names, self.family_inside, strict=True) if not ok]

    def to_dict(self, ranks: bool = False) -> dict:
        """Plain-Python summary (per-quantity numbers; the ranks themselves when ``ranks``)."""
        b = self.band
        out = {
            "num_datasets": self.num_datasets,
            "num_draws": self.num_draws,
            "num_quantities": len(self.names),
            "band": {
                "prob": b.prob,
                "method": b.method,
                "num_simulations": int(b.null_stat.size),
                "pointwise_level": b.level,
            },
            "num_outside": int(np.sum(~self.inside)),
            "expected_outside_if_calibrated": (1.0 - b.prob) * len(self.names),
            "num_family_outside": int(np.sum(~self.family_inside)),
            "all_inside": bool(np.all(self.inside)),
            "family_all_inside": bool(np.all(self.family_inside)),
            "seconds": None if not math.isfinite(self.seconds) else float(self.seconds),
            "quantities": {
                name: {
                    "inside": bool(self.inside[i]),
                    "family_inside": bool(self.family_inside[i]),
                    "p_value": float(self.p_values[i]),
                    "mean_pit": float(self.mean_pit[i]),
                    "pit_var_ratio": float(self.pit_var_ratio[i]),
                    "max_ecdf_diff": float(self.max_ecdf_diff[i]),
                }
                for i, name in enumerate(self.names)
            },
            "meta": self.meta,
        }
        if ranks:
            out["ranks"] = self.ranks.tolist()
        return out

    def to_json(self, path: str | None = None, **extra: Any) -> str:
        """The summary as JSON (``extra`` keys first); written atomically to ``path`` if given."""
        text = json.dumps({**extra, **self.to_dict()}, indent=1)
        if path is not None:
            atomic_write(path, (text + "\n").encode())
        return text

    def __str__(self) -> str:
        head = f"{'quantity':<14}{'inside':>8}{'p-value':>10}{'mean PIT':>10}{'var ratio':>11}{'max|ECDF-z|':>13}"
        rows = [head, "-" * len(head)]
        order = np.argsort(self.p_values, kind="stable")
        shown = order[:12]
        for i in shown:
            rows.append(
                f"{self.names[i]:<14}{'yes' if self.inside[i] else 'NO':>8}{self.p_values[i]:>10.4f}"
                f"{self.mean_pit[i]:>10.3f}{self.pit_var_ratio[i]:>11.3f}{self.max_ecdf_diff[i]:>13.4f}"
            )
        if len(order) > len(shown):
            rows.append(f"... {len(order) - len(shown)} more (the 12 lowest p-values shown)")
        rows.append(
            f"{self.num_datasets} data sets, {self.num_draws} draws: {int(np.sum(~self.inside))} of {len(self.names)} "
            f"quantities outside the {self.band.prob:.0%} band (expected {(1 - self.band.prob) * len(self.names):.1f} "
            f"if calibrated), {int(np.sum(~self.family_inside))} after Bonferroni"
        )
        return "\n".join(rows)

    def plot(
        self, path: str | None = None, names: list[str] | None = None, max_quantities: int = 6, title: str = ""
    ) -> Any:
        """Rank histograms (top) and ECDF-difference plots with the band (bottom).

        Args:
            path: save the figure here (headless) if given.
            names: quantities to show (default: the ``max_quantities`` lowest p-values).
        Returns:
            the matplotlib Figure.
        """
        plt = pyplot(headless=path is not None)
        if names is None:
            idx = list(np.argsort(self.p_values, kind="stable")[:max_quantities])
        else:
            unknown = [n for n in names if n not in self.names]
            if unknown:
                raise ValueError(f"names: unknown quantities {unknown}; available e.g. {list(self.names[:5])}")
            idx = [self.names.index(n) for n in names]
        cols = len(idx)
        fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 4.6), squeeze=False)
        b, s, n = self.band, self.num_draws, self.num_datasets
        bins = min(20, s + 1)
        counts = rank_counts(self.ranks[:, idx], s)
        for c, i in enumerate(idx):
            ax = axes[0, c]
            ax.hist(self.ranks[:, i], bins=np.linspace(-0.5, s + 0.5, bins + 1), color="C0", alpha=0.8)
            ax.axhline(n / bins, color="k", lw=0.8, ls="--")
            ax.set_title(self.names[i] + ("" if self.inside[i] else " (outside)"), fontsize=8)
            ax.set_yticks([])
            ax = axes[1, c]
            ax.fill_between(b.z, b.lower / n - b.z, b.upper / n - b.z, color="0.85", step="mid", label="band")
            ax.plot(b.z, counts[c] / n - b.z, color="C3" if not self.inside[i] else "C0", lw=1.2)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.set_xlabel("PIT", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0, 0].set_ylabel("rank histogram", fontsize=8)
        axes[1, 0].set_ylabel("ECDF - uniform", fontsize=8)
        fig.suptitle(title or f"SBC: {n} data sets, {s} draws, {b.prob:.0%} simultaneous band", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
        return fig


def sbc_report(
    ranks,
    names,
    num_draws: int,
    prob: float = DEFAULT_PROB,
    num_simulations: int = DEFAULT_BAND_SIMULATIONS,
    seconds: float = float("nan"),
    meta: dict | None = None,
) -> SBCReport:
    """The report of ranks (N, Q) in {0..S} of quantities ``names`` (Q,).

    Args:
        ranks: (N, Q) ints, the number of the S guide draws below the true value.
        names: (Q,) strings.
        num_draws: S.
        prob: the band's simultaneous coverage.
        num_simulations: uniform samples that calibrate the band (:func:`ecdf_band`).
    Returns:
        SBCReport.
    """
    s = _checks.check_int("num_draws", num_draws, 1)
    r = np.asarray(ranks)
    if r.ndim != 2 or r.shape[0] < 1:
        raise ValueError(f"ranks: expected a (num_datasets, num_quantities) array, got shape {r.shape}")
    if not np.issubdtype(r.dtype, np.integer) or r.min() < 0 or r.max() > s:
        raise ValueError(f"ranks: expected integers in [0, num_draws={s}], got values in [{r.min()}, {r.max()}]")
    names = tuple(str(n) for n in names)
    if len(names) != r.shape[1]:
        raise ValueError(f"names: expected {r.shape[1]} names (one per column of ranks), got {len(names)}")
    band = ecdf_band(r.shape[0], s, prob, num_simulations)
    counts = rank_counts(r, s)
    p = band.p_value(counts)
    pit = (r + 0.5) / (s + 1.0)
    uniform_var = ((s + 1.0) ** 2 - 1.0) / (12.0 * (s + 1.0) ** 2)  # of (U + 1/2) / (S + 1), U uniform on 0..S
    return SBCReport(
        names=names,
        ranks=r.astype(np.int32),
        num_draws=s,
        band=band,
        p_values=p,
        inside=band.inside(counts),
        family_inside=p * len(names) > 1.0 - band.prob,
        mean_pit=pit.mean(0),
        pit_var_ratio=pit.var(0) / uniform_var,
        max_ecdf_diff=np.max(np.abs(counts / r.shape[0] - band.z), axis=1),
        seconds=float(seconds),
        meta=dict(meta or {}),
    )


# ------------------------------------------------------------------------------ quantities


def quantity_names(model: BanditModel, num_contexts: int, per_action: bool = True) -> tuple:
    """Names of the quantities :func:`sbc` ranks, in column order (see :class:`SBCReport`)."""
    L, dp = model.prior.num_levels, model.prior.latent_dim
    names = [f"psi[{i},{j}]" for i in range(L) for j in range(dp)]
    if model.shared:
        names += [f"theta[{j}]" for j in range(model.prior.dim)]
        names += [f"eta[t{t}]" for t in range(num_contexts)]
        return tuple(names)
    K, d = model.num_actions, model.prior.dim
    names += [f"theta[{a},{j}]" for a in range(K) for j in range(d)]
    if per_action:
        names += [f"eta[t{t},a{a}]" for t in range(num_contexts) for a in range(K)]
    names += [f"best[t{t}]" for t in range(num_contexts)]
    return tuple(names)


def _quantities(psi, theta, contexts, shared: bool, per_action: bool = True):
    """Every ranked quantity of draws psi (..., L, d_psi), theta (..., K, d) at contexts (T, d): (..., Q)."""
    batch = psi.shape[:-2]
    parts = [psi.reshape(batch + (-1,)), theta.reshape(batch + (-1,))]
    if shared:
        parts.append(jnp.einsum("...d,td->...t", theta, contexts))
        return jnp.concatenate(parts, -1)
    eta = jnp.einsum("...kd,td->...tk", theta, contexts)
    if per_action:
        parts.append(eta.reshape(batch + (-1,)))
    parts.append(jnp.max(eta, -1))
    return jnp.concatenate(parts, -1)


def _ranks(draws_q, truth_q):
    """The number of draws (S, Q) below the truth (Q,): (Q,) int32."""
    return jnp.sum(draws_q < truth_q, axis=0, dtype=jnp.int32)


# ------------------------------------------------------------------------------ the guides


class DistortedGuide:
    """A deliberately wrong guide, for checking that SBC flags miscalibration.

    Its draws are the base guide's, moved to ``mean + sqrt(cov_scale) (draw - mean) + mean_shift sd``
    per site coordinate, with the base guide's marginal posterior mean and sd
    (``guide.get_posterior``): for a Gaussian guide, every posterior covariance scaled by
    ``cov_scale`` and every mean shifted by ``mean_shift`` marginal sds.

    Args:
        guide: a guide with ``fit``, ``sample_posterior`` and ``get_posterior`` (e.g. DTSGuide).
        cov_scale: > 0 (1 keeps the covariance).
        mean_shift: in posterior sds (0 keeps the mean).
    """

    def __init__(self, guide, cov_scale: float = 0.5, mean_shift: float = 0.3):
        for name in ("fit", "sample_posterior", "get_posterior"):
            if not callable(getattr(guide, name, None)):
                raise ValueError(f"guide: expected a guide with fit, sample_posterior and get_posterior, got {guide!r}")
        self.guide = guide
        self.model = guide.model
        self.cov_scale = _checks.check_scalar("cov_scale", cov_scale)
        self.mean_shift = _checks.check_scalar("mean_shift", mean_shift, positive=False)

    def __repr__(self):
        return f"DistortedGuide({self.guide!r}, cov_scale={self.cov_scale}, mean_shift={self.mean_shift})"

    def fit(self, X=None, A=None, y=None):
        """The base guide's params on (X, A, y)."""
        return self.guide.fit(X, A, y)

    def sample_posterior(self, rng_key, params, *args, sample_shape=()) -> dict:
        """The base guide's draws, rescaled and shifted (see the class docstring)."""
        draws = self.guide.sample_posterior(rng_key, params, sample_shape=sample_shape)
        post = self.guide.get_posterior(params)
        out = {}
        for site, x in draws.items():
            mean, sd = post[site].mean, jnp.sqrt(post[site].variance)
            out[site] = mean + math.sqrt(self.cov_scale) * (x - mean) + self.mean_shift * sd
        return out


def _is_autoguide(guide) -> bool:
    return isinstance(guide, AutoGuide)


def _check_guide(guide):
    if _is_autoguide(guide):
        return "svi"
    if callable(getattr(guide, "fit", None)) and callable(getattr(guide, "sample_posterior", None)):
        return "closed_form"
    raise ValueError(
        "guide: expected a DTSGuide-like guide (fit(X, A, y) and sample_posterior(rng_key, params, "
        f"sample_shape=...)) or a NumPyro AutoGuide, got {type(guide).__name__}"
    )


def _default_chunk(num_quantities: int, num_draws: int, budget_bytes: float = 2.5e8) -> int:
    """Data sets per vmapped chunk so that about four (S, Q) float64 arrays per data set fit the budget."""
    return max(1, int(budget_bytes // (4 * 8 * (num_draws + 1) * max(num_quantities, 1))))


def sbc(
    model: BanditModel,
    guide: Any,
    key: jax.Array,
    num_datasets: int,
    num_draws: int = DEFAULT_NUM_DRAWS,
    X: jax.Array | None = None,
    A: jax.Array | None = None,
    contexts: jax.Array | None = None,
    num_contexts: int = 3,
    chunk_size: int | None = None,
    progress: bool = True,
    prob: float = DEFAULT_PROB,
    num_simulations: int = DEFAULT_BAND_SIMULATIONS,
    num_steps: int = 2000,
    optim: Any = None,
    loss: Any = None,
    meta: dict | None = None,
) -> SBCReport:
    """Simulation-based calibration of ``guide`` for ``model`` on the design (X, A).

    For each of ``num_datasets`` data sets: (psi, theta, y) from the model's prior predictive
    (``numpyro.infer.Predictive``), the guide fitted to y, ``num_draws`` guide draws, and the rank
    of every coordinate of psi and theta, of x_t^T theta_a at each test context x_t and of the
    best action's value max_a x_t^T theta_a, among the draws.

    Args:
        model: a centred BanditModel.
        guide: a DTSGuide-like guide (``fit(X, A, y) -> params``,
            ``sample_posterior(rng_key, params, sample_shape=...)``, traceable: fitted in one
            vmap per chunk), or a NumPyro AutoGuide of ``model`` (fitted by SVI per data set).
        key: PRNG key; data set i uses ``fold_in(key, i)`` (results do not depend on ``chunk_size``).
        num_datasets: N.
        num_draws: S guide draws per data set (ranks in {0..S}).
        X: (n, d) contexts (None: no data, the guide must return the prior).
        A: (n,) actions.
        contexts: (T, d) test contexts of the derived quantities (default ``num_contexts`` drawn
            U[-1, 1]^d from ``key``).
        chunk_size: data sets per vmapped batch (default: about 250 MB of draws).
        progress: a tqdm bar over chunks.
        prob, num_simulations: the band (:func:`ecdf_band`).
        num_steps, optim, loss: SVI for an AutoGuide (default Adam(0.01), Trace_ELBO()).
        meta: recorded in the report.

    Returns:
        SBCReport; ``seconds`` estimates the wall time without compilation (from the chunks
        after the first); ``meta`` has "compile_seconds" (the first chunk) and "total_seconds".

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from dts_ppl import BanditModel, DTSGuide, DiffusionPrior
        >>> model = BanditModel(DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0]), num_actions=2)
        >>> X, A = jnp.ones((4, 2)), jnp.array([0, 1, 0, 1])
        >>> report = sbc(model, DTSGuide(model), jax.random.PRNGKey(0), 200, 19, X, A, progress=False)
        >>> report.ranks.shape
        (200, 15)
    """
    if not isinstance(model, BanditModel):
        raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
    if model.parameterisation != "centred":
        raise ValueError("model: SBC ranks the sites psi and theta; pass the centred model")
    kind = _check_guide(guide)
    _checks.check_key(key)
    n_sets = _checks.check_int("num_datasets", num_datasets, 1)
    s = _checks.check_int("num_draws", num_draws, 1)
    X, A, _ = model.check_data(X, A, None)
    dtype = model.prior.cov1.dtype
    if contexts is None:
        shape = (_checks.check_int("num_contexts", num_contexts, 0), model.prior.dim)
        contexts = jax.random.uniform(jax.random.fold_in(key, -1 % 2**31), shape, dtype, -1.0, 1.0)
    contexts = jnp.asarray(_checks.as_array("contexts", contexts, shape=(None, model.prior.dim)), dtype)
    names = quantity_names(model, contexts.shape[0])
    chunk = min(n_sets, chunk_size or _default_chunk(len(names), s))
    chunk = _checks.check_int("chunk_size", chunk, 1)
    has_data = X.shape[0] > 0
    predictive = Predictive(model, num_samples=1)

    def simulate(k):
        sim = predictive(k, X, A)
        y = sim["y"][0] if has_data else jnp.zeros((0,), dtype)
        return y, _quantities(sim["psi"][0], sim["theta"][0], contexts, model.shared)

    if kind == "closed_form":
        # one concrete fit first: a guide may resolve and cache settings from concrete values
        # (DTSGuide sets a GLM's expansion ridge from the prior), which it cannot do under vmap
        y0 = simulate(jax.random.fold_in(key, n_sets))[0]
        guide.fit(X, A, y0) if has_data else guide.fit()

        def fit_and_draw(k, y):
            params = guide.fit(X, A, y) if has_data else guide.fit()
            return guide.sample_posterior(k, params, sample_shape=(s,))

    else:
        fit_and_draw = _svi_fitter(model, guide, X, A, s, num_steps, optim, loss)

    def one(k):
        k_sim, k_fit = jax.random.split(k)
        y, truth = simulate(k_sim)
        draws = fit_and_draw(k_fit, y)
        return _ranks(_quantities(draws["psi"], draws["theta"], contexts, model.shared), truth)

    run = jax.jit(jax.vmap(one))
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_sets))
    ranks, timing, seconds = _chunked(run, keys, chunk, progress, f"SBC ({type(guide).__name__})")
    info = {
        "guide": repr(guide) if kind == "closed_form" else type(guide).__name__,
        "fit": "vmap" if kind == "closed_form" else f"SVI, {num_steps} steps per data set",
        "num_obs": int(X.shape[0]),
        "contexts": np.asarray(contexts).tolist(),
        "chunk_size": chunk,
        **timing,
        **(meta or {}),
    }
    return sbc_report(ranks, names, s, prob, num_simulations, seconds, info)


def _chunked(run, keys, chunk: int, progress: bool, desc: str):
    """Apply ``run`` to ``keys`` in chunks (the last padded). Returns (ranks (N, Q), timing dict, run seconds)."""
    n = keys.shape[0]
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    keys = jnp.concatenate([keys, keys[:pad]]) if pad else keys
    out = []
    compile_s = 0.0
    start = time.perf_counter()
    with tqdm(total=n, desc=desc, unit="set", disable=not progress, leave=False) as bar:
        for c in range(num_chunks):
            t0 = time.perf_counter()
            out.append(np.asarray(run(keys[c * chunk : (c + 1) * chunk])))
            if c == 0:  # the first call compiles: time it apart, then estimate its run time from the others
                compile_s = time.perf_counter() - t0
                start = time.perf_counter()
            bar.update(min(chunk, n - c * chunk))
    rest = time.perf_counter() - start
    # without compilation: the later chunks' rate over all chunks (one chunk: compile included)
    seconds = compile_s if num_chunks == 1 else rest * num_chunks / (num_chunks - 1)
    return np.concatenate(out)[:n], {"compile_seconds": compile_s, "total_seconds": compile_s + rest}, seconds


def _svi_fitter(model, guide, X, A, num_draws: int, num_steps: int, optim, loss):
    """(key, y) -> draws of an AutoGuide fitted by SVI to y (traceable; vmapped by the caller)."""
    num_steps = _checks.check_int("num_steps", num_steps, 1)
    optim = numpyro.optim.Adam(0.01) if optim is None else optim
    loss = Trace_ELBO() if loss is None else loss
    svi = SVI(model, guide, optim, loss)
    # set up the AutoGuide's prototype once, outside the vmap (it runs a while_loop on concrete values)
    y0 = model.likelihood.sample(jax.random.PRNGKey(0), jnp.zeros(X.shape[0], X.dtype)).astype(X.dtype)
    svi.init(jax.random.PRNGKey(0), X, A, y0)

    def fit_and_draw(k, y):
        k_init, k_draw = jax.random.split(k)
        state = svi.init(k_init, X, A, y)
        state, _ = jax.lax.scan(lambda st, _: (svi.update(st, X, A, y)[0], None), state, None, length=num_steps)
        return guide.sample_posterior(k_draw, svi.get_params(state), sample_shape=(num_draws,))

    return fit_and_draw


# ------------------------------------------------------------------------------ interop


def report_from_vsbc(result, num_draws: int | None = None, prob: float = DEFAULT_PROB, meta: dict | None = None):
    """The SBCReport of ``numpyro.infer.calibration.vsbc_diagnostic``'s result (its ranks, our band).

    Args:
        result: a VSBCResult (fields ``ranks`` {site: (N, *site_shape)}, ``probabilities``, ``param_names``).
        num_draws: its ``num_samples`` (default: read from ranks / probabilities).
    Returns:
        SBCReport over every coordinate of its sites (names like "theta[2,0]").
    """
    names, cols = [], []
    inferred = None
    for site in result.param_names:
        r = np.asarray(result.ranks[site])
        p = np.asarray(result.probabilities[site])
        pos = p > 0
        if pos.any():
            inferred = int(round(float(np.median(r[pos] / p[pos]))))
        flat = r.reshape(r.shape[0], -1)
        for idx in np.ndindex(*r.shape[1:]):
            names.append(f"{site}[{','.join(str(i) for i in idx)}]" if idx else site)
        cols.append(flat)
    s = inferred if num_draws is None else num_draws
    if s is None:
        raise ValueError("num_draws: could not read num_samples from the result (every probability is 0); pass it")
    ranks = np.concatenate(cols, axis=1).astype(np.int64)
    return sbc_report(ranks, names, s, prob, meta={"source": "numpyro vsbc_diagnostic", **(meta or {})})


# ------------------------------------------------------------------------------ bandit SBC


class BanditRun(NamedTuple):
    """What :func:`bandit_sbc` keeps of one run: the ranks (Q,) and the pull counts (K,)."""

    ranks: jax.Array
    pulls: jax.Array


def bandit_sbc(
    key: jax.Array,
    prior: Any,
    likelihood: Any,
    num_actions: int,
    agent: Any,
    num_rounds: int,
    num_runs: int,
    num_draws: int = DEFAULT_NUM_DRAWS,
    linearisation: str | None = core.DEFAULT_LINEARISATION,
    contexts: jax.Array | None = None,
    num_contexts: int = 3,
    chunk_size: int | None = None,
    progress: bool = True,
    prob: float = DEFAULT_PROB,
    num_simulations: int = DEFAULT_BAND_SIMULATIONS,
    meta: dict | None = None,
) -> SBCReport:
    """SBC of the dTS posterior on data the agent collected itself.

    Each run draws (psi*, theta*) from ``prior``, lets ``agent`` play ``num_rounds`` rounds
    (contexts U[-1, 1]^d, rewards from ``likelihood`` at theta*; one jitted ``lax.scan``, runs
    vmapped), builds ``DTSGuide.from_statistics(model, agent statistics)`` and ranks every
    coordinate of psi* and theta*, the best action's value max_a x_t^T theta*_a at each test
    context, and x_t^T theta*_m of the most-played action m, among ``num_draws`` guide draws.
    Exact Bayes stays calibrated under the adaptive design; an approximation need not.

    Args:
        key: PRNG key; run r uses ``fold_in(key, r)``.
        prior: the DiffusionPrior theta* is drawn from (and the guide's).
        likelihood: the reward model (Gaussian, Bernoulli, Poisson).
        num_actions: K.
        agent: an Agent whose state's ``evidence.stats`` are ActionStats (G (K, d, d), b (K, d)),
            e.g. ``dts_ppl.agents.dts(prior, likelihood, K)``.
        num_rounds: n.   num_runs: N.
        linearisation: the guide's (default: the prior's default, as the agent's).
        contexts: (T, d) test contexts (default ``num_contexts`` drawn from ``key``).
    Returns:
        SBCReport with quantities psi, theta, "best[t]" and "played[t]"; ``meta`` records the
        mean pull count of the most-played action.
    """
    _checks.check_key(key)
    K = _checks.check_int("num_actions", num_actions, 1)
    n = _checks.check_int("num_rounds", num_rounds, 1)
    runs = _checks.check_int("num_runs", num_runs, 1)
    s = _checks.check_int("num_draws", num_draws, 1)
    model = BanditModel(prior, K, likelihood)
    d, dtype = prior.dim, prior.cov1.dtype
    if contexts is None:
        shape = (_checks.check_int("num_contexts", num_contexts, 0), d)
        contexts = jax.random.uniform(jax.random.fold_in(key, -1 % 2**31), shape, dtype, -1.0, 1.0)
    contexts = jnp.asarray(_checks.as_array("contexts", contexts, shape=(None, d)), dtype)
    conds = core.prior_conditionals(prior, K)
    names = quantity_names(model, contexts.shape[0], per_action=False)
    names = names + tuple(f"played[t{t}]" for t in range(contexts.shape[0]))

    def quantities(psi, theta, most):
        q = _quantities(psi, theta, contexts, False, per_action=False)
        played = jnp.einsum("...d,td->...t", theta[..., most, :], contexts)
        return jnp.concatenate([q, played], -1)

    def one(k):
        k_theta, k_ctx, k_act, k_rew, k_draw = jax.random.split(k, 5)
        psi_true, theta_true = core.sample(k_theta, prior, conds)
        keys = jnp.stack([jax.random.split(kk, n) for kk in (k_ctx, k_act, k_rew)], axis=1)

        def round_(carry, ks):
            state, pulls = carry
            x = jax.random.uniform(ks[0], (d,), dtype, -1.0, 1.0)
            action, _ = agent.act(ks[1], state, x)
            y = likelihood.sample(ks[2], x @ theta_true[action]).astype(dtype)
            return (agent.update(state, x, action, y), pulls.at[action].add(1)), None

        (state, pulls), _ = jax.lax.scan(round_, (agent.init(), jnp.zeros(K, jnp.int32)), keys)
        stats = state.evidence.stats
        guide = DTSGuide.from_statistics(model, stats, linearisation)
        draws = guide.sample_posterior(k_draw, stats, sample_shape=(s,))
        most = jnp.argmax(pulls)
        truth = quantities(psi_true, theta_true, most)
        return BanditRun(_ranks(quantities(draws["psi"], draws["theta"], most), truth), pulls)

    run_fn = jax.jit(jax.vmap(one))
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(runs))
    chunk = min(runs, chunk_size or runs)
    out = []

    def ranks_only(ks):
        res = run_fn(ks)
        out.append(np.asarray(jnp.max(res.pulls, axis=1)))
        return res.ranks

    ranks, timing, seconds = _chunked(ranks_only, keys, chunk, progress, "bandit SBC")
    most_pulls = np.concatenate(out)[:runs]
    info = {
        "num_rounds": n,
        "num_runs": runs,
        "num_actions": K,
        "linearisation": core.resolve_linearisation(prior, linearisation),
        "likelihood": repr(likelihood),
        "mean_pulls_of_most_played": float(most_pulls.mean()),
        "contexts": np.asarray(contexts).tolist(),
        "chunk_size": chunk,
        **timing,
        **(meta or {}),
    }
    return sbc_report(ranks, names, s, prob, num_simulations, seconds, info)
