"""Validate a guide against NUTS on the same model and data (docs/math.md section 7).

:func:`validate` runs NUTS on the model conditioned on (X, A, y), draws from the guide, and
compares the two per latent site: the standardised error of the guide's posterior mean, the
ratio of its standard deviations to NUTS's, and the energy distance between the two sets of
draws, each next to the size Monte-Carlo error alone gives it (the NUTS estimates' standard
error from their ESS; the energy distance between two halves of the NUTS run). It adds the
guide's PSIS k-hat against the model NUTS ran (NUTS-free) and NUTS's own convergence diagnostics.

The reference is only as good as its convergence: :class:`ReferenceGates` (divergences 0,
split R-hat <= 1.01, bulk and tail ESS >= 400 by default) decide whether a NUTS run is
reliable, and every report says so (``ValidationReport.reliable``, the JSON's
``nuts.reliable`` and ``nuts.problems``, the printed table). docs/validation.md lists the
NUTS options that make hard references pass.

The pieces are reusable: :func:`run_nuts` once, then :func:`compare` for several guides.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import NamedTuple

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer import MCMC, NUTS

from dts_ppl.core import checks as _checks
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.diagnostics import psis_khat
from dts_ppl.ppl.distances import energy_distance
from dts_ppl.ppl.guide import RAW_SITES
from dts_ppl.ppl.model import LATENT_SITES, check_parameterisation

NUTS_EXTRA_FIELDS = ("diverging", "accept_prob", "num_steps", "energy", "potential_energy")


class NutsResult(NamedTuple):
    """Draws of a NUTS run, grouped by chain.

    Attributes:
        samples: {site: (chains, draws, *site_shape)} for the latent sites psi and theta.
        sample_stats: {field: (chains, draws)} for :data:`NUTS_EXTRA_FIELDS`.
        raw_samples: {"psi_raw": (chains, draws, L, d_psi), "theta_raw": (chains, draws, *theta_shape)}
            when NUTS ran on the non-centred model, else None.
        settings: the NUTS settings and the run's wall time in seconds ("wall_s"), or None.
    """

    samples: dict
    sample_stats: dict
    raw_samples: dict | None = None
    settings: dict | None = None

    @property
    def parameterisation(self) -> str:
        """The model NUTS sampled: "noncentred" when it recorded raw sites, else "centred"."""
        return "noncentred" if self.raw_samples else "centred"


class ReferenceGates(NamedTuple):
    """When a NUTS reference counts as converged (all must hold; see docs/validation.md).

    Attributes:
        max_divergences: most divergent transitions allowed (after warm-up, all chains).
        rhat_max: largest rank-normalised split R-hat allowed over every coordinate.
        ess_min: smallest bulk ESS and smallest tail ESS allowed over every coordinate.
    """

    max_divergences: int = 0
    rhat_max: float = 1.01
    ess_min: float = 400.0

    def check(self) -> ReferenceGates:
        """Return self if the thresholds are valid, else raise ValueError."""
        if int(self.max_divergences) != self.max_divergences or self.max_divergences < 0:
            raise ValueError(f"max_divergences: expected an integer >= 0, got {self.max_divergences!r}")
        if not (math.isfinite(self.rhat_max) and self.rhat_max >= 1.0):
            raise ValueError(f"rhat_max: expected a finite number >= 1, got {self.rhat_max!r}")
        if not (math.isfinite(self.ess_min) and self.ess_min >= 0):
            raise ValueError(f"ess_min: expected a finite number >= 0, got {self.ess_min!r}")
        return self


DEFAULT_GATES = ReferenceGates()


class NutsDiagnostics(NamedTuple):
    """Convergence of the NUTS reference: worst R-hat, bulk and tail ESS over all coordinates."""

    rhat_max: float
    ess_bulk_min: float
    divergences: int
    ess_tail_min: float = math.nan

    def problems(self, gates: ReferenceGates = DEFAULT_GATES) -> list:
        """The gates this run fails, as readable strings (empty when it passes them all)."""
        out = []
        if self.divergences > gates.max_divergences:
            out.append(f"{self.divergences} divergences (allowed {gates.max_divergences})")
        if not self.rhat_max <= gates.rhat_max:
            out.append(f"R-hat {self.rhat_max:.3f} > {gates.rhat_max}")
        if not self.ess_bulk_min >= gates.ess_min:
            out.append(f"bulk ESS {self.ess_bulk_min:.0f} < {gates.ess_min:.0f}")
        if not self.ess_tail_min >= gates.ess_min:
            out.append(f"tail ESS {self.ess_tail_min:.0f} < {gates.ess_min:.0f}")
        return out

    def reliable(self, gates: ReferenceGates = DEFAULT_GATES) -> bool:
        """True when the run passes every gate."""
        return not self.problems(gates)


class SiteReport(NamedTuple):
    """Guide vs NUTS for one latent site; per-coordinate arrays have the site's shape.

    Attributes:
        std_mean_error: |E_guide - E_nuts| / sd_nuts per coordinate.
        std_mean_error_mcse: its Monte-Carlo standard error when the guide is exact,
            sqrt(1 / ESS_nuts + 1 / num_guide_draws) per coordinate.
        sd_ratio: sd_guide / sd_nuts per coordinate.
        distance: energy distance between all guide draws and one half of the NUTS draws
            (the first half of the chains, or of the draws with one chain), every coordinate
            standardised by its NUTS mean and sd.
        distance_nuts_floor: the same distance between the other half of the NUTS draws and
            that half: the noise floor. The distance's finite-sample floor grows with
            1/n_eff of each sample, so an exact guide, whose draws are independent and (by
            default) twice as many as a half, scores at or a little below it; a ratio
            distance / floor well above 1 is approximation error.
    """

    std_mean_error: np.ndarray
    std_mean_error_mcse: np.ndarray
    sd_ratio: np.ndarray
    distance: float
    distance_nuts_floor: float

    @property
    def max_std_mean_error(self) -> float:
        return float(np.max(self.std_mean_error))

    @property
    def mean_std_mean_error(self) -> float:
        return float(np.mean(self.std_mean_error))

    @property
    def mcse(self) -> float:
        """Monte-Carlo standard error of the standardised mean errors (the largest over coordinates)."""
        return float(np.max(self.std_mean_error_mcse))

    @property
    def max_z(self) -> float:
        """Largest standardised mean error in units of its Monte-Carlo standard error."""
        return float(np.max(self.std_mean_error / self.std_mean_error_mcse))

    def to_dict(self) -> dict:
        return {
            "max_std_mean_error": self.max_std_mean_error,
            "mean_std_mean_error": self.mean_std_mean_error,
            "sd_ratio_min": float(np.min(self.sd_ratio)),
            "sd_ratio_max": float(np.max(self.sd_ratio)),
            "distance": float(self.distance),
            "distance_nuts_floor": float(self.distance_nuts_floor),
        }


def _json_float(x):
    x = float(x)
    return x if math.isfinite(x) else None


class ValidationReport(NamedTuple):
    """What :func:`validate` returns. ``print(report)`` shows a table; ``to_dict``/``to_json`` export it.

    Attributes:
        sites: {site: SiteReport}.
        psis_khat: Pareto k-hat of p(y, z) / q(z), z ~ guide (< 0.5 good, > 0.7 unreliable;
            -inf when the weights are constant, i.e. the guide is exact to round-off).
        nuts: NutsDiagnostics of the reference run.
        guide_samples: {site: (num_guide_draws, *site_shape)} numpy draws of the guide.
        nuts_result: the NutsResult the guide was compared with.
        gates: the ReferenceGates the reference is judged by.
        psis_parameterisation: the model k-hat was measured on ("centred" or "noncentred").
    """

    sites: dict
    psis_khat: float
    nuts: NutsDiagnostics
    guide_samples: dict
    nuts_result: NutsResult
    gates: ReferenceGates = DEFAULT_GATES
    psis_parameterisation: str = "centred"

    @property
    def reference_problems(self) -> list:
        """The quality gates the NUTS reference fails (empty: it is reliable)."""
        return self.nuts.problems(self.gates)

    @property
    def reliable(self) -> bool:
        """True when the NUTS reference passes every gate, so the comparison can be trusted."""
        return not self.reference_problems

    def to_dict(self) -> dict:
        """{"sites": {SITE: {...}}, "psis_khat", "psis_parameterisation", "nuts": {...}}.

        ``nuts`` holds "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "reliable",
        "problems" (the failed gates), "gates" (the thresholds) and "settings" (the NUTS
        settings and wall time, when known). Non-finite numbers (k-hat of an exact guide is
        -inf) become None so the JSON is strict.
        """
        settings = self.nuts_result.settings
        return {
            "sites": {k: {n: _json_float(v) for n, v in s.to_dict().items()} for k, s in self.sites.items()},
            "psis_khat": _json_float(self.psis_khat),
            "psis_parameterisation": self.psis_parameterisation,
            "nuts": {
                "rhat_max": _json_float(self.nuts.rhat_max),
                "ess_bulk_min": _json_float(self.nuts.ess_bulk_min),
                "ess_tail_min": _json_float(self.nuts.ess_tail_min),
                "divergences": int(self.nuts.divergences),
                "reliable": self.reliable,
                "problems": self.reference_problems,
                "gates": self.gates._asdict(),
                "settings": None if settings is None else dict(settings),
            },
        }

    def to_json(self, path=None, **extra) -> str:
        """The dict as JSON (``extra`` keys first, e.g. ``preset="linear"``); written to ``path`` if given."""
        text = json.dumps({**extra, **self.to_dict()}, indent=2)
        if path is not None:
            with open(os.fspath(path), "w") as f:
                f.write(text + "\n")
        return text

    def __str__(self) -> str:
        head = (
            f"{'site':<8}{'max|dmean|/sd':>15}{'mean|dmean|/sd':>16}{'MC se':>8}{'max z':>7}"
            f"{'sd ratio min':>14}{'max':>7}{'energy dist':>13}{'NUTS floor':>12}"
        )
        rows = [head, "-" * len(head)]
        for name, s in self.sites.items():
            d = s.to_dict()
            rows.append(
                f"{name:<8}{d['max_std_mean_error']:>15.3f}{d['mean_std_mean_error']:>16.3f}"
                f"{s.mcse:>8.3f}{s.max_z:>7.2f}{d['sd_ratio_min']:>14.3f}"
                f"{d['sd_ratio_max']:>7.3f}{d['distance']:>13.4f}{d['distance_nuts_floor']:>12.4f}"
            )
        rows.append(
            f"PSIS k-hat {self.psis_khat:.3f} ({self.psis_parameterisation} model)   NUTS: R-hat max "
            f"{self.nuts.rhat_max:.3f}, bulk ESS min {self.nuts.ess_bulk_min:.0f}, tail ESS min "
            f"{self.nuts.ess_tail_min:.0f}, divergences {self.nuts.divergences}"
        )
        g = self.gates
        if self.reliable:
            rows.append(
                f"NUTS reference: reliable (divergences <= {g.max_divergences}, R-hat <= {g.rhat_max}, "
                f"bulk and tail ESS >= {g.ess_min:.0f})"
            )
        else:
            rows.append(
                "NUTS reference: UNRELIABLE (" + "; ".join(self.reference_problems) + "): the errors above "
                "may be NUTS's own; rerun with more warm-up/draws/chains, dense mass or the non-centred model"
            )
        return "\n".join(rows)


# ------------------------------------------------------------------------------ input checks


def _latent_sites(fn, args) -> dict:
    """{name: shape} of the unobserved sample sites of one seeded run of ``fn(*args)``."""
    trace = handlers.trace(handlers.seed(fn, 0)).get_trace(*args)
    return {
        name: tuple(site["value"].shape)
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def check_inputs(model, guide, X, A, y):
    """Validate data and guide before any sampling. Returns the checked (X, A, y).

    Raises ValueError when the data do not fit the model, y is missing, the guide has no
    ``sample_posterior``, or the guide's latent sites (names and shapes) differ from the model's.
    """
    if not hasattr(model, "check_data"):
        raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
    if y is None:
        raise ValueError("y: validation compares posteriors and needs the observed rewards")
    X, A, y = model.check_data(X, A, y)
    if not (callable(getattr(guide, "sample_posterior", None)) and callable(getattr(guide, "fit", None))):
        raise ValueError(
            "guide: expected a guide with sample_posterior(key, params, sample_shape) and fit(X, A, y) "
            f"such as DTSGuide, "
            f"got {type(guide).__name__}"
        )
    args = (X, None if model.shared else A, y)
    want, got = _latent_sites(model, args), _latent_sites(guide, args)
    if want != got:
        raise ValueError(f"guide: its latent sites {got} differ from the model's {want} (names and shapes must match)")
    return args


def _check_count(name, value, minimum):
    return _checks.check_int(name, value, minimum)


# ---------------------------------------------------------------------------------- NUTS


def default_chain_method(num_chains: int) -> str:
    """ "parallel" when there is a device per chain, else "sequential" (never touches device count)."""
    return "parallel" if jax.local_device_count() >= num_chains > 1 else "sequential"


def run_nuts(
    model,
    X,
    A,
    y,
    *,
    key,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_chains: int = 2,
    chain_method: str | None = None,
    progress_bar: bool = True,
    target_accept_prob: float = 0.8,
    parameterisation: str = "centred",
    dense_mass: bool = False,
    max_tree_depth: int = 10,
) -> NutsResult:
    """NUTS on ``model`` conditioned on (X, A, y): the reference posterior.

    ``parameterisation="noncentred"`` runs NUTS on ``model.noncentred()`` (standard-normal
    sites, psi and theta recorded as deterministic sites): the same posterior, and far fewer
    leapfrog steps on deep DDPM chains whose conditionals are much narrower than their
    marginals. The latent sites ``psi`` and ``theta`` are returned either way; the non-centred
    run also returns its raw sites (``raw_samples``).

    Options for references that fail :class:`ReferenceGates`: ``dense_mass=True`` (adapt a
    full mass matrix: correlated posteriors), a higher ``target_accept_prob`` (smaller steps:
    divergences), a longer ``num_warmup``, more ``num_chains`` / ``num_samples`` (ESS, R-hat),
    the non-centred ``parameterisation`` (deep chains with narrow conditionals).

    Chains run ``chain_method`` ("sequential", "vectorized" or "parallel"; default parallel
    only when ``jax.local_device_count()`` covers the chains: call
    ``numpyro.set_host_device_count`` in your script, never in a library).

    Args:
        model: BanditModel (centred; ``parameterisation`` picks what NUTS samples).
        X, A, y: the data, (n, d), (n,), (n,).
        key: PRNG key.
        num_samples, num_warmup, num_chains: draws per chain, warm-up steps per chain, chains.
        target_accept_prob: in (0, 1); the step-size adaptation's target.
        dense_mass: adapt a dense (True) or diagonal (False) mass matrix.
        max_tree_depth: at most 2 ** max_tree_depth leapfrog steps per draw.

    Returns:
        NutsResult with samples {site: (num_chains, num_samples, *shape)} and ``settings``
        (every option above, and "wall_s": the run's wall time, compilation included).
    """
    num_samples = _check_count("num_samples", num_samples, 2)
    num_warmup = _check_count("num_warmup", num_warmup, 0)
    num_chains = _check_count("num_chains", num_chains, 1)
    max_tree_depth = _check_count("max_tree_depth", max_tree_depth, 1)
    if not 0.0 < float(target_accept_prob) < 1.0:
        raise ValueError(f"target_accept_prob: expected a number in (0, 1), got {target_accept_prob!r}")
    if not isinstance(dense_mass, bool):
        raise ValueError(f"dense_mass: expected True or False, got {dense_mass!r}")
    chain_method = chain_method or default_chain_method(num_chains)
    if chain_method not in ("sequential", "vectorized", "parallel"):
        raise ValueError(f"chain_method: expected 'sequential', 'vectorized' or 'parallel', got {chain_method!r}")
    noncentred = check_parameterisation(parameterisation) == "noncentred"
    target = model.noncentred() if noncentred else model
    mcmc = MCMC(
        NUTS(
            target, target_accept_prob=float(target_accept_prob), dense_mass=dense_mass, max_tree_depth=max_tree_depth
        ),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=progress_bar,
    )
    start = time.perf_counter()
    mcmc.run(key, X, A, y, extra_fields=NUTS_EXTRA_FIELDS)
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    wall = time.perf_counter() - start
    samples = {k: v for k, v in draws.items() if k in LATENT_SITES}
    raw = {k: v for k, v in draws.items() if k in RAW_SITES} if noncentred else None
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    settings = dict(
        num_samples=num_samples,
        num_warmup=num_warmup,
        num_chains=num_chains,
        chain_method=chain_method,
        target_accept_prob=float(target_accept_prob),
        dense_mass=dense_mass,
        max_tree_depth=max_tree_depth,
        parameterisation=parameterisation,
        wall_s=wall,
    )
    return NutsResult(samples, stats, raw, settings)


def nuts_diagnostics(nuts: NutsResult, sites=None) -> NutsDiagnostics:
    """Worst split R-hat, bulk and tail ESS over the coordinates of ``sites`` (all by default), and divergences."""
    sites = list(nuts.samples) if sites is None else list(sites)
    diag = _arviz.chain_diagnostics({k: nuts.samples[k] for k in sites})
    worst = lambda field, f: float(f(np.concatenate([np.ravel(diag[k][field]) for k in sites])))  # noqa: E731
    return NutsDiagnostics(
        worst("rhat", np.max),
        worst("ess_bulk", np.min),
        int(np.sum(nuts.sample_stats["diverging"])),
        worst("ess_tail", np.min),
    )


# --------------------------------------------------------------------------------- compare


def _halves(draws):
    """Two disjoint, equally sized parts of (chains, draws, p): chain groups, or the draws' two halves."""
    c, n = draws.shape[:2]
    if c >= 2:
        h = c // 2
        return draws[:h].reshape(-1, draws.shape[-1]), draws[h : 2 * h].reshape(-1, draws.shape[-1])
    h = n // 2
    return draws[0, :h], draws[0, h : 2 * h]


def compare_site(guide_draws, nuts_draws, ess_mean) -> SiteReport:
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
    z = lambda a: (a - mean_p) / sd_p  # noqa: E731
    part_a, part_b = _halves(z(p))
    distance = energy_distance(z(q), part_a)
    floor = energy_distance(part_b, part_a)
    return SiteReport(err.reshape(shape), mcse.reshape(shape), (sd_q / sd_p).reshape(shape), distance, floor)


def compare(
    model,
    guide,
    X,
    A,
    y,
    nuts: NutsResult,
    *,
    key,
    num_guide_samples: int = 2000,
    num_psis_samples=2000,
    gates: ReferenceGates = DEFAULT_GATES,
):
    """Compare ``guide`` with an existing NUTS run of ``model`` on the same data (see :func:`validate`).

    When ``nuts`` ran on the non-centred model and the guide has ``noncentred()`` (DTSGuide),
    PSIS k-hat is measured on that model with the guide mapped to its raw sites, and the raw
    sites are compared too (``psi_raw``, ``theta_raw`` in the report).
    """
    X, A, y = check_inputs(model, guide, X, A, y)
    num_guide_samples = _check_count("num_guide_samples", num_guide_samples, 2)
    num_psis_samples = _check_count("num_psis_samples", num_psis_samples, 10)
    if not isinstance(gates, ReferenceGates):
        raise ValueError(f"gates: expected a ReferenceGates, got {type(gates).__name__}")
    gates.check()
    missing = set(model.latent_shapes) - set(nuts.samples)
    if missing:
        raise ValueError(f"nuts: no draws of sites {sorted(missing)}")
    k_guide, k_psis = jax.random.split(key)
    draws = guide.sample_posterior(k_guide, guide.fit(X, A, y), sample_shape=(num_guide_samples,))
    draws = {k: np.asarray(v) for k, v in draws.items()}
    sites = list(model.latent_shapes)
    ess = _arviz.chain_diagnostics({k: nuts.samples[k] for k in sites})
    reports = {k: compare_site(draws[k], nuts.samples[k], ess[k]["ess_mean"]) for k in sites}
    psis_model, psis_guide, where = model, guide, "centred"
    if nuts.raw_samples and callable(getattr(guide, "noncentred", None)):
        psis_model, psis_guide, where = model.noncentred(), guide.noncentred(), "noncentred"
        raw = {k: np.asarray(v) for k, v in psis_guide.sample_posterior(k_guide, X, A, y, (num_guide_samples,)).items()}
        raw_ess = _arviz.chain_diagnostics(nuts.raw_samples)
        for k in RAW_SITES:
            reports[k] = compare_site(raw[k], nuts.raw_samples[k], raw_ess[k]["ess_mean"])
    khat = psis_khat(k_psis, psis_model, psis_guide, X, A, y, num_psis_samples)
    return ValidationReport(reports, khat, nuts_diagnostics(nuts, sites), draws, nuts, gates, where)


def validate(
    model,
    guide,
    X,
    A,
    y,
    *,
    key,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_chains: int = 2,
    chain_method: str | None = None,
    num_guide_samples: int | None = None,
    num_psis_samples: int = 2000,
    progress_bar: bool = True,
    nuts: NutsResult | None = None,
    nuts_parameterisation: str = "centred",
    target_accept_prob: float = 0.8,
    dense_mass: bool = False,
    max_tree_depth: int = 10,
    gates: ReferenceGates = DEFAULT_GATES,
) -> ValidationReport:
    """Validate ``guide`` against NUTS on ``model`` conditioned on (X, A, y).

    Checks the data and that the guide's latent sites match the model's (same names and
    shapes, from one traced run of each) before any sampling; then runs NUTS (unless ``nuts``
    gives a previous run on the same data), draws from the guide, and compares them per site.
    The report says whether the NUTS run passes ``gates`` (``report.reliable``); it does not
    raise when it fails, so callers decide (``dts-ppl validate`` exits with status 3).

    Args:
        model: BanditModel.
        guide: a guide with the model's latent sites, ``fit(X, A, y)`` and ``sample_posterior(key,
            params, sample_shape)`` (DTSGuide), whose density NumPyro can evaluate (for PSIS).
        X, A, y: the data, (n, d), (n,), (n,).
        key: PRNG key.
        num_samples, num_warmup, num_chains, chain_method, target_accept_prob, dense_mass,
            max_tree_depth: NUTS settings (see :func:`run_nuts`).
        num_guide_samples: guide draws (default: twice the NUTS draws; they are cheap and independent).
        num_psis_samples: guide draws for PSIS k-hat.
        nuts: reuse this NutsResult instead of running NUTS.
        nuts_parameterisation: "centred" or "noncentred" (see :func:`run_nuts`; the guide is
            always compared on the centred sites psi and theta, and with "noncentred" on the
            raw sites too, with PSIS k-hat measured on the non-centred model).
        gates: ReferenceGates the NUTS run must pass to count as reliable.

    Returns:
        ValidationReport (prints as a table; ``to_dict()`` / ``to_json()``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> model = BanditModel(prior, num_actions=2)
        >>> X, A = jnp.ones((6, 2)), jnp.arange(6) % 2
        >>> report = validate(model, DTSGuide(model), X, A, jnp.ones(6), key=jax.random.PRNGKey(0),
        ...                   num_samples=200, num_warmup=200, progress_bar=False)
        >>> sorted(report.to_dict()["sites"])
        ['psi', 'theta']
    """
    args = check_inputs(model, guide, X, A, y)
    if not isinstance(gates, ReferenceGates):
        raise ValueError(f"gates: expected a ReferenceGates, got {type(gates).__name__}")
    gates.check()
    _checks.check_key(key)
    k_nuts, k_cmp = jax.random.split(key)
    if nuts is None:
        num_samples = _check_count("num_samples", num_samples, 2)
        num_chains = _check_count("num_chains", num_chains, 1)
        nuts = run_nuts(
            model,
            *args,
            key=k_nuts,
            num_samples=num_samples,
            num_warmup=num_warmup,
            num_chains=num_chains,
            chain_method=chain_method,
            progress_bar=progress_bar,
            parameterisation=nuts_parameterisation,
            target_accept_prob=target_accept_prob,
            dense_mass=dense_mass,
            max_tree_depth=max_tree_depth,
        )
    if num_guide_samples is None:
        first = next(iter(nuts.samples.values()))
        num_guide_samples = 2 * first.shape[0] * first.shape[1]
    return compare(
        model,
        guide,
        *args,
        nuts,
        key=k_cmp,
        num_guide_samples=num_guide_samples,
        num_psis_samples=num_psis_samples,
        gates=gates,
    )
