"""The Swiss-roll prior: data, the trained DDPM prior, and its on-disk cache.

Action parameters theta in R^2 are points of scikit-learn's ``make_swiss_roll`` (coordinates
x and z, noise 0.5), standardised with fixed population constants (estimated once from 10^6
draws) so that training data and bandit environments share one scale.

:func:`swiss_roll_prior` trains the DDPM prior of the paper's Swiss-roll study (or loads it
from a cache file keyed by every training choice); ``studies/priors/swissroll.py`` retrains the
shipped ``dts_ppl/models/swissroll_L40.npz``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents import GaussianPrior, dts, lin_ts
from dts_ppl.bandits.envs import Environment, uniform_contexts
from dts_ppl.core import checks as _checks
from dts_ppl.core.checks import check_positive_int
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.ddpm import action_covariance, train_diffusion_prior
from dts_ppl.io.prior_files import load_prior, save_prior

ROLL_NOISE = 0.5
ROLL_MEAN = np.array([2.00, 0.21])  # of make_swiss_roll(10**6, noise=0.5)[:, [0, 2]]
ROLL_SCALE = np.array([6.64, 6.97])


class Training(NamedTuple):
    """Training choices of a Swiss-roll DDPM prior (:func:`dts_ppl.train_diffusion_prior` arguments)."""

    schedule: str = "cosine"
    hidden: int = 128
    steps: int = 6000
    variance: str = "beta"
    action_cov: float = 1.0


#: Training choices of the shipped prior (and of every prior of the Swiss-roll study).
TRAINING = Training()

#: The trained models shipped as package data (found after a non-editable install too).
MODELS_DIR = Path(str(resources.files("dts_ppl") / "models"))


def make_swiss_roll(num_samples: int, noise: float = 0.0, random_state: int = 0) -> np.ndarray:
    """scikit-learn's ``make_swiss_roll`` (3-d points (N, 3)), reproduced so scikit-learn is optional.

    Same algorithm and draws from ``np.random.RandomState(random_state)`` in the same order, so
    the points equal scikit-learn's (tested when scikit-learn is installed).
    """
    num_samples = _checks.check_int("num_samples", num_samples, 1)
    noise = _checks.check_scalar("noise", noise, positive=False)
    if noise < 0:
        raise ValueError(f"noise: expected a non-negative noise scale, got {noise!r}")
    rng = np.random.RandomState(_checks.check_int("random_state", random_state, 0))
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=num_samples))
    y = 21 * rng.uniform(size=num_samples)
    x = np.vstack((t * np.cos(t), y, t * np.sin(t)))
    x += noise * rng.standard_normal(size=(3, num_samples))
    return x.T


def swiss_roll(num_samples: int, seed: int = 0) -> np.ndarray:
    """``num_samples`` standardised Swiss-roll points (num_samples, 2) from ``make_swiss_roll``."""
    num_samples = check_positive_int("num_samples", num_samples)
    x = make_swiss_roll(int(num_samples), noise=ROLL_NOISE, random_state=int(seed))[:, [0, 2]]
    return (x - ROLL_MEAN) / ROLL_SCALE


def sample_swiss_roll(key, num_samples: int):
    """JAX twin of :func:`swiss_roll` (same distribution, jittable): (num_samples, 2) standardised points.

    t ~ 1.5 pi (1 + 2 U), (x, z) = (t cos t, t sin t) + N(0, 0.5^2 I), as ``make_swiss_roll``.
    """
    _checks.check_key(key)
    _checks.check_int("num_samples", num_samples, 1)
    k_t, k_noise = jax.random.split(key)
    dtype = jnp.result_type(float)
    t = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(k_t, (num_samples,), dtype))
    noise = ROLL_NOISE * jax.random.normal(k_noise, (num_samples, 2), dtype)
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1) + noise
    return (x - jnp.asarray(ROLL_MEAN, dtype)) / jnp.asarray(ROLL_SCALE, dtype)


def cache_dir() -> Path:
    """Where trained study priors are cached: $DTS_PPL_CACHE or ~/.cache/dts_ppl."""
    return Path(os.environ.get("DTS_PPL_CACHE", Path.home() / ".cache" / "dts_ppl"))


def _config(num_samples, num_levels, seed, overrides):
    cfg = dict(TRAINING._asdict(), num_samples=int(num_samples), num_levels=int(num_levels), seed=int(seed))
    cfg.update(overrides)
    return cfg


def swiss_roll_prior(
    num_samples: int = 10_000,
    num_levels: int = 40,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
    **overrides,
):
    """The DDPM prior trained on ``num_samples`` Swiss-roll points (data seed ``seed``).

    Looks first for the shipped ``dts_ppl/models/swissroll_L40.npz`` (when the configuration matches),
    then for a cache file under :func:`cache_dir`; otherwise trains (minutes for 10^4 samples
    and L = 40 on 2 CPU cores) and writes the cache.

    Args:
        num_samples: size of the pre-training set.
        num_levels: L.
        seed: seed of the training data and of the training key.
        cache: read and write the cache.
        overrides: any :func:`dts_ppl.train_diffusion_prior` argument replacing one of :data:`TRAINING`.
    Returns:
        (prior, metadata).
    """
    cfg = _config(num_samples, num_levels, seed, overrides)
    tag = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    candidates = [MODELS_DIR / "swissroll_L40.npz", cache_dir() / f"swissroll-{tag}.npz"]
    if cache:
        for path in candidates:
            if path.is_file():
                prior, meta = load_prior(path)
                if meta.get("study_config") == cfg:
                    return prior, meta
    train_args = {k: v for k, v in cfg.items() if k not in ("num_samples", "seed")}
    trained = train_diffusion_prior(
        swiss_roll(num_samples, seed), key=jax.random.PRNGKey(seed), progress=progress, **train_args
    )
    meta = dict(trained.metadata, study_config=cfg, data="swiss_roll", roll_noise=ROLL_NOISE)
    if cache:
        candidates[1].parent.mkdir(parents=True, exist_ok=True)
        save_prior(candidates[1], trained.prior, meta)
    return trained.prior, meta


# ------------------------------------------------------------------------- the regret study

PRETRAIN_SIZES = (10, 50, 100, 2500, 5000, 10_000, 50_000)
DEPTHS = (2, 10, 40, 70, 100)

#: The paper's Figure 3 ratios LinTS / dTS (read off its figure; the issue text).
PAPER_RATIOS = {
    **{
        f"swissroll-pretrain-{n}": r
        for n, r in zip(PRETRAIN_SIZES, (1.17, 1.45, 1.9, 2.05, 2.22, 2.08, 2.97), strict=True)
    },
    **{f"swissroll-depth-{L}": r for L, r in zip(DEPTHS, (1.9, 2.85, 3.02, 2.95, 2.77), strict=True)},
}


class RollPrior(NamedTuple):
    """The prior of one study preset: trained on ``num_samples`` roll points with ``num_levels`` levels."""

    num_samples: int
    num_levels: int


#: The prior of every study preset, by preset name.
STUDY_PRIORS: dict[str, RollPrior] = {
    **{f"swissroll-pretrain-{n}": RollPrior(n, 40) for n in PRETRAIN_SIZES},
    **{f"swissroll-depth-{L}": RollPrior(10_000, L) for L in DEPTHS},
}


class RollStudy(NamedTuple):
    """The bandit of the study (the paper does not state it): K actions with theta_a i.i.d. from the
    standardised roll, contexts U[-1, 1]^2, Gaussian rewards N(x^T theta_a, noise^2)."""

    num_actions: int = 100
    num_rounds: int = 1000
    num_runs: int = 20
    noise: float = 1.0


STUDY = RollStudy()


def swissroll_environment(
    num_actions: int = STUDY.num_actions, noise: float = STUDY.noise, shared_point_spread: float | None = None
):
    """Every run draws theta_a, a = 1..K, i.i.d. from the standardised Swiss roll (not from a diffusion).

    With ``shared_point_spread`` = s the run instead draws ONE roll point c and
    theta_a = c + s N(0, I) (the hierarchical structure the dTS prior assumes; a control).
    """

    def sample_theta(key):
        if shared_point_spread is None:
            return sample_swiss_roll(key, num_actions)
        k_point, k_spread = jax.random.split(key)
        centre = sample_swiss_roll(k_point, 1)
        return centre + shared_point_spread * jax.random.normal(k_spread, (num_actions, 2), centre.dtype)

    kind = "i.i.d. roll points" if shared_point_spread is None else f"one roll point + N(0, {shared_point_spread}^2 I)"
    name = f"Swiss roll ({kind}), K={num_actions}, Gaussian rewards (sd {noise})"
    return Environment(sample_theta, uniform_contexts(2), Gaussian(noise), int(num_actions), 2, False, name)


def swissroll_agents(
    name: str,
    num_actions: int = STUDY.num_actions,
    noise: float = STUDY.noise,
    linearisations=("identity",),
    action_cov=None,
    progress: bool = True,
) -> dict:
    """The agents of one preset: {"LinTS": ..., "dTS (lin)": ... for each linearisation}.

    dTS uses the DDPM prior trained on the preset's N samples with L levels (cached, see
    :func:`swiss_roll_prior`); LinTS gets the Gaussian fit (mean, covariance) of the same N
    samples. ``action_cov`` replaces the prior's S_1 choice (see :mod:`dts_ppl.ddpm`).
    """
    if name not in STUDY_PRIORS:
        raise ValueError(f"name: expected one of {sorted(STUDY_PRIORS)}, got {name!r}")
    num_samples, num_levels = STUDY_PRIORS[name]
    prior, meta = swiss_roll_prior(num_samples, num_levels, progress=progress)
    if action_cov is not None:
        scale = np.asarray(meta["standardisation"]["scale"])
        s1 = action_covariance(action_cov, np.asarray(meta["betas"]), scale, prior.dim)
        prior = prior._replace(cov1=jnp.asarray(s1, prior.cov1.dtype))
    data = swiss_roll(num_samples, seed=0)
    dtype = prior.cov1.dtype
    gauss = GaussianPrior(jnp.asarray(data.mean(0), dtype), jnp.asarray(np.cov(data.T) + 1e-9 * np.eye(2), dtype))
    lik = Gaussian(noise)
    agents = {"LinTS": lin_ts(gauss, lik, num_actions)}
    for lin in linearisations:
        agents[f"dTS ({lin})"] = dts(prior, lik, num_actions, linearisation=lin)
    return agents


def preset_builder(name: str):
    """Builder of the study preset ``name`` for ``dts-ppl bench regret`` (:data:`STUDY_PRIORS`)."""
    if name not in STUDY_PRIORS:
        raise ValueError(f"name: expected one of {sorted(STUDY_PRIORS)}, got {name!r}")

    def build(key, num_rounds):
        del key, num_rounds  # the prior is trained once (cached); theta is drawn per run by the environment
        return swissroll_environment(), swissroll_agents(name)

    return build


def presets() -> dict:
    """Deprecated: the study's presets, now declared in :mod:`dts_ppl.experiments.registry`."""
    registry = importlib.import_module("dts_ppl.experiments.registry")  # it imports this module
    warnings.warn("swissroll.presets() is deprecated; use dts_ppl.experiments.registry", DeprecationWarning, 2)
    return {p.name: p for p in registry.swissroll_presets()}


def __getattr__(name: str):
    """``PRESETS`` (the study's priors by preset name) is deprecated: :data:`STUDY_PRIORS`."""
    if name == "PRESETS":
        warnings.warn("swissroll.PRESETS is deprecated; use swissroll.STUDY_PRIORS", DeprecationWarning, 2)
        return STUDY_PRIORS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
