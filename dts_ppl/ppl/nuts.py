"""The NUTS reference: its settings, the run, its convergence diagnostics and quality gates.

:class:`NutsSettings` is the one place a NUTS default is written; presets
(:data:`dts_ppl.experiments.validation.NUTS_SETTINGS`), retries (``settings._replace(...)``) and
the command-line flags all start from it. :func:`run_nuts` samples ``model`` conditioned on the
data with those settings; :func:`nuts_diagnostics` summarises the run and :class:`ReferenceGates`
decide whether it is converged enough to serve as a reference (docs/validation.md).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from dts_ppl.core import checks as _checks
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.guide import RAW_SITES
from dts_ppl.ppl.model import LATENT_SITES, BanditModel, check_parameterisation

NUTS_EXTRA_FIELDS = ("diverging", "accept_prob", "num_steps", "energy", "potential_energy")
CHAIN_METHODS = ("sequential", "vectorized", "parallel")


def default_chain_method(num_chains: int) -> str:
    """ "parallel" when there is a device per chain, else "sequential" (never changes the device count)."""
    return "parallel" if jax.local_device_count() >= num_chains > 1 else "sequential"


class NutsSettings(NamedTuple):
    """The options of a NUTS reference run, with their defaults (the only place they are written).

    Options for references that fail :class:`ReferenceGates`: ``dense_mass=True`` (correlated
    posteriors), a higher ``target_accept_prob`` (divergences), a longer ``num_warmup``, more
    ``num_chains`` / ``num_samples`` (ESS, R-hat), the non-centred ``parameterisation`` (deep
    chains with narrow conditionals). Change one field with ``settings._replace(field=value)``.

    Attributes:
        num_samples: draws per chain after warm-up (>= 2).
        num_warmup: warm-up (adaptation) steps per chain (>= 0).
        num_chains: chains (>= 1).
        chain_method: "sequential", "vectorized" or "parallel"; None picks
            :func:`default_chain_method` (parallel only when ``jax.local_device_count()`` covers
            the chains: call ``numpyro.set_host_device_count`` in your script, never in a library).
        target_accept_prob: the step-size adaptation's target, in (0, 1).
        dense_mass: adapt a dense (True) or diagonal (False) mass matrix.
        max_tree_depth: at most 2 ** max_tree_depth leapfrog steps per draw (>= 1).
        parameterisation: "centred" (the model's sites) or "noncentred" (``model.noncentred()``:
            standard-normal sites, far fewer leapfrog steps on deep chains whose conditionals are
            much narrower than their marginals).
    """

    num_samples: int = 1000
    num_warmup: int = 500
    num_chains: int = 2
    chain_method: str | None = None
    target_accept_prob: float = 0.8
    dense_mass: bool = False
    max_tree_depth: int = 10
    parameterisation: str = "centred"

    def check(self) -> NutsSettings:
        """The settings with counts as int and the target as float; ValueError naming the field if one is invalid."""
        target = self.target_accept_prob
        if isinstance(target, bool | np.bool_) or not isinstance(target, int | float | np.number):
            raise ValueError(f"target_accept_prob: expected a number in (0, 1), got {target!r}")
        if not 0.0 < float(target) < 1.0:
            raise ValueError(f"target_accept_prob: expected a number in (0, 1), got {target!r}")
        if not isinstance(self.dense_mass, bool):
            raise ValueError(f"dense_mass: expected True or False, got {self.dense_mass!r}")
        if self.chain_method is not None and self.chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method: expected one of {CHAIN_METHODS} or None, got {self.chain_method!r}")
        return self._replace(
            num_samples=_checks.check_int("num_samples", self.num_samples, 2),
            num_warmup=_checks.check_int("num_warmup", self.num_warmup, 0),
            num_chains=_checks.check_int("num_chains", self.num_chains, 1),
            target_accept_prob=float(target),
            max_tree_depth=_checks.check_int("max_tree_depth", self.max_tree_depth, 1),
            parameterisation=check_parameterisation(self.parameterisation),
        )

    def resolved(self) -> NutsSettings:
        """The checked settings with ``chain_method`` chosen (:func:`default_chain_method` when None)."""
        s = self.check()
        return s if s.chain_method is not None else s._replace(chain_method=default_chain_method(s.num_chains))


class NutsResult(NamedTuple):
    """Draws of a NUTS run, grouped by chain.

    Attributes:
        samples: {site: (chains, draws, *site_shape)} for the latent sites psi and theta.
        sample_stats: {field: (chains, draws)} for :data:`NUTS_EXTRA_FIELDS`.
        raw_samples: {"psi_raw": (chains, draws, L, d_psi), "theta_raw": (chains, draws, *theta_shape)}
            when NUTS ran on the non-centred model, else None.
        settings: the NutsSettings of the run (``chain_method`` resolved), or None when unknown.
        wall_s: the run's wall time in seconds, compilation included (nan when unknown).
    """

    samples: dict
    sample_stats: dict
    raw_samples: dict | None = None
    settings: NutsSettings | None = None
    wall_s: float = math.nan

    @property
    def parameterisation(self) -> str:
        """The model NUTS sampled: "noncentred" when it recorded raw sites, else "centred"."""
        return "noncentred" if self.raw_samples else "centred"


def run_nuts(
    model: BanditModel,
    data: tuple,
    settings: NutsSettings = NutsSettings(),  # noqa: B008 - an immutable NamedTuple
    key: jax.Array | None = None,
    *,
    progress_bar: bool = True,
) -> NutsResult:
    """NUTS on ``model`` conditioned on ``data``: the reference posterior.

    The latent sites ``psi`` and ``theta`` are returned for either ``settings.parameterisation``;
    the non-centred run also returns its raw sites (``raw_samples``).

    Args:
        model: BanditModel (centred; ``settings.parameterisation`` picks what NUTS samples).
        data: (X, A, y): (n, d), (n,) or None for a shared model, (n,), as ``model`` takes them
            (checked ones from :func:`dts_ppl.ppl.comparison.check_inputs`).
        settings: NutsSettings (checked here).
        key: PRNG key.
        progress_bar: show NumPyro's progress bar.

    Returns:
        NutsResult with samples {site: (num_chains, num_samples, *shape)}, the settings it ran
        with and its wall time.
    """
    if not isinstance(settings, NutsSettings):
        raise ValueError(f"settings: expected a NutsSettings, got {type(settings).__name__}")
    if not (isinstance(data, tuple | list) and len(data) == 3):
        raise ValueError(f"data: expected a tuple (X, A, y), got {type(data).__name__}")
    _checks.check_key(key)
    s = settings.resolved()
    noncentred = s.parameterisation == "noncentred"
    target = model.noncentred() if noncentred else model
    kernel = NUTS(
        target, target_accept_prob=s.target_accept_prob, dense_mass=s.dense_mass, max_tree_depth=s.max_tree_depth
    )
    mcmc = MCMC(
        kernel,
        num_warmup=s.num_warmup,
        num_samples=s.num_samples,
        num_chains=s.num_chains,
        chain_method=s.chain_method,
        progress_bar=progress_bar,
    )
    start = time.perf_counter()
    mcmc.run(key, *data, extra_fields=NUTS_EXTRA_FIELDS)
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    wall = time.perf_counter() - start
    samples = {k: v for k, v in draws.items() if k in LATENT_SITES}
    raw = {k: v for k, v in draws.items() if k in RAW_SITES} if noncentred else None
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return NutsResult(samples, stats, raw, s, wall)


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


def check_gates(gates: ReferenceGates) -> ReferenceGates:
    """``gates`` if it is a valid ReferenceGates, else ValueError naming the argument."""
    if not isinstance(gates, ReferenceGates):
        raise ValueError(f"gates: expected a ReferenceGates, got {type(gates).__name__}")
    return gates.check()


class NutsDiagnostics(NamedTuple):
    """Convergence of the NUTS reference: worst R-hat, bulk and tail ESS over all coordinates."""

    rhat_max: float
    ess_bulk_min: float
    divergences: int
    ess_tail_min: float = math.nan

    def problems(self, gates: ReferenceGates = DEFAULT_GATES) -> list[str]:
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


def nuts_diagnostics(nuts: NutsResult, sites: list[str] | None = None) -> NutsDiagnostics:
    """Worst split R-hat, bulk and tail ESS over the coordinates of ``sites`` (all by default), and divergences."""
    sites = list(nuts.samples) if sites is None else list(sites)
    diag = _arviz.chain_diagnostics({k: nuts.samples[k] for k in sites})

    def worst(field, reduce):
        return float(reduce(np.concatenate([np.ravel(diag[k][field]) for k in sites])))

    return NutsDiagnostics(
        worst("rhat", np.max),
        worst("ess_bulk", np.min),
        int(np.sum(nuts.sample_stats["diverging"])),
        worst("ess_tail", np.min),
    )
