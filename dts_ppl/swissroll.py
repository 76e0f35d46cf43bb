"""The Swiss-roll prior: data, the trained DDPM prior, and its on-disk cache.

Action parameters theta in R^2 are points of scikit-learn's ``make_swiss_roll`` (coordinates
x and z, noise 0.5), standardised with fixed population constants (estimated once from 10^6
draws) so that training data and bandit environments share one scale.

:func:`swiss_roll_prior` trains the DDPM prior of the paper's Swiss-roll study (or loads it
from a cache file keyed by every training choice); ``models/swissroll.py`` retrains the
shipped ``models/swissroll_L40.npz``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

ROLL_NOISE = 0.5
ROLL_MEAN = np.array([2.00, 0.21])  # of make_swiss_roll(10**6, noise=0.5)[:, [0, 2]]
ROLL_SCALE = np.array([6.64, 6.97])

#: Training choices of the shipped prior (and of every prior of the Swiss-roll study).
TRAINING = dict(schedule="cosine", hidden=128, steps=6000, variance="beta", action_cov=1.0)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def swiss_roll(num_samples: int, seed: int = 0) -> np.ndarray:
    """``num_samples`` standardised Swiss-roll points (num_samples, 2) from ``make_swiss_roll``."""
    from sklearn.datasets import make_swiss_roll

    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples: expected a positive integer, got {num_samples!r}")
    x = make_swiss_roll(int(num_samples), noise=ROLL_NOISE, random_state=int(seed))[0][:, [0, 2]]
    return (x - ROLL_MEAN) / ROLL_SCALE


def sample_swiss_roll(key, num_samples: int):
    """JAX twin of :func:`swiss_roll` (same distribution, jittable): (num_samples, 2) standardised points.

    t ~ 1.5 pi (1 + 2 U), (x, z) = (t cos t, t sin t) + N(0, 0.5^2 I), as ``make_swiss_roll``.
    """
    import jax
    import jax.numpy as jnp

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
    cfg = dict(TRAINING, num_samples=int(num_samples), num_levels=int(num_levels), seed=int(seed))
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

    Looks first for the shipped ``models/swissroll_L40.npz`` (when the configuration matches),
    then for a cache file under :func:`cache_dir`; otherwise trains (minutes for 10^4 samples
    and L = 40 on 2 CPU cores) and writes the cache.

    Args:
        num_samples: size of the pre-training set.
        num_levels: L.
        seed: seed of the training data and of the training key.
        cache: read and write the cache.
        overrides: any :func:`dts_ppl.train_diffusion_prior` argument replacing :data:`TRAINING`.
    Returns:
        (prior, metadata).
    """
    import jax

    from dts_ppl.ddpm import train_diffusion_prior
    from dts_ppl.serialization import load_prior, save_prior

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
