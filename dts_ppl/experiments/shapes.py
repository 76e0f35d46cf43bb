"""Six 2-D shape priors after Kveton et al. (2024, arXiv 2410.03919, section 6 synthetic problems).

The paper evaluates its DiffTS / LaplaceDPS on linear bandits whose one shared parameter theta
(d = 2) is drawn from a 2-D "shape" distribution, with a DDPM pre-trained on samples of it. The
exact shapes and scales of the paper were not available to us beyond its description (2-D,
multimodal or non-Gaussian, learned by a DDPM); the six here are reconstructions of that
description, each with support of radius about :data:`SHAPES`.radius:

- ``cross``: uniform on two perpendicular bars (a plus sign), half-length r, width 0.1 r (no jitter).
- ``diamond``: uniform on the boundary of the L1 ball of radius r.
- ``triangle``: uniform on the boundary of an equilateral triangle inscribed in the circle of radius r.
- ``circle``: uniform on the circle of radius r.
- ``two-blobs``: two Gaussian clusters at (+-r / sqrt 2)(1, 1), sd 0.1 r.
- ``spiral``: an Archimedean spiral of 1.5 turns out to radius r.

Every boundary shape gets isotropic N(0, (0.02 r)^2) jitter, so the DDPM has a density to learn.

Bandit (as the shared-parameter presets of :mod:`dts_ppl.experiments.realdata`): K = 20 action
features U[-1, 1]^2 per round, rewards N(x_a^T theta, 1). Agents: dTS and LaplaceDPS on the same
pre-trained DDPM prior (:func:`dts_ppl.experiments.realdata.trained_prior`, cached; a smaller
training budget than the real-data presets, :data:`SHAPES`), LinTS given the Gaussian fitted to
the pre-training sample, and bank TS (the exact posterior of 20,000 true-shape draws: the ceiling
of prior knowledge).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.agents.laplace_dps import laplace_dps
from dts_ppl.bandits.envs import Environment, uniform_contexts
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments import realdata


class ShapesConfig(NamedTuple):
    """The shape benchmark's sizes: bandit, pre-training sample, bank, DDPM training budget."""

    radius: float = 2.0
    num_actions: int = 20
    noise: float = 1.0
    rounds: int = 200
    runs: int = 20
    pretrain: int = 5000
    bank: int = 20_000
    num_levels: int = 40
    hidden: int = 64
    steps: int = 3000


SHAPES = ShapesConfig()
NAMES = ("cross", "diamond", "triangle", "circle", "two-blobs", "spiral")


def _polygon(u, vertices):
    """Points at arc-length fraction u (n,) along the closed polygon ``vertices`` (m, 2)."""
    edges = jnp.roll(vertices, -1, axis=0) - vertices
    lengths = jnp.linalg.norm(edges, axis=1)
    cum = jnp.concatenate([jnp.zeros(1, lengths.dtype), jnp.cumsum(lengths)])
    s = u * cum[-1]
    i = jnp.clip(jnp.searchsorted(cum, s, side="right") - 1, 0, vertices.shape[0] - 1)
    frac = (s - cum[i]) / lengths[i]
    return vertices[i] + frac[:, None] * edges[i]


def sample_shape(key: jax.Array, name: str, num_samples: int) -> jax.Array:
    """(num_samples, 2) draws of the shape ``name`` (module docstring).

    Args:
        key: PRNG key.   name: one of :data:`NAMES`.   num_samples: N >= 1.
    Returns:
        (N, 2) array of the default float dtype.
    """
    key = _checks.check_key(key)
    if name not in NAMES:
        raise ValueError(f"name: expected one of {', '.join(NAMES)}, got {name!r}")
    num_samples = _checks.check_positive_int("num_samples", num_samples)
    dtype = jnp.result_type(float)
    r = SHAPES.radius
    k_u, k_v, k_j = jax.random.split(key, 3)
    u = jax.random.uniform(k_u, (num_samples,), dtype)
    v = jax.random.uniform(k_v, (num_samples,), dtype)
    jitter = 0.02 * r * jax.random.normal(k_j, (num_samples, 2), dtype)
    if name == "cross":
        along = r * (2 * u - 1)
        horizontal = v < 0.5
        across = 0.05 * r * (4 * jnp.where(horizontal, v, v - 0.5) - 1)  # U[-0.05 r, 0.05 r]
        return jnp.where(horizontal[:, None], jnp.stack([along, across], 1), jnp.stack([across, along], 1))
    if name == "diamond":
        verts = r * jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype)
        return _polygon(u, verts) + jitter
    if name == "triangle":
        angles = jnp.pi / 2 + 2 * jnp.pi * jnp.arange(3, dtype=dtype) / 3
        verts = r * jnp.stack([jnp.cos(angles), jnp.sin(angles)], 1)
        return _polygon(u, verts) + jitter
    if name == "circle":
        a = 2 * jnp.pi * u
        return r * jnp.stack([jnp.cos(a), jnp.sin(a)], 1) + jitter
    if name == "two-blobs":
        centre = (r / jnp.sqrt(2.0)) * jnp.where((v < 0.5)[:, None], 1.0, -1.0) * jnp.ones(2, dtype)
        return centre + 0.1 * r * jax.random.normal(k_j, (num_samples, 2), dtype)
    # spiral: radius grows linearly with the angle over 1.5 turns
    a = 3 * jnp.pi * u
    rad = r * (0.15 + 0.85 * u)
    return rad[:, None] * jnp.stack([jnp.cos(a), jnp.sin(a)], 1) + jitter


def shape_setup(name: str, progress: bool = True) -> dict:
    """Everything one shape preset uses: env, DDPM prior (+ meta), Gaussian fit, bank, pre-training sample."""
    seed = NAMES.index(name) if name in NAMES else -1
    pretrain = np.asarray(sample_shape(jax.random.PRNGKey(1000 + seed), name, SHAPES.pretrain), np.float64)
    bank = sample_shape(jax.random.PRNGKey(2000 + seed), name, SHAPES.bank)
    prior, meta = realdata.trained_prior(
        f"shape-{name}",
        pretrain,
        "beta",
        progress=progress,
        num_levels=SHAPES.num_levels,
        hidden=SHAPES.hidden,
        steps=SHAPES.steps,
    )
    K = SHAPES.num_actions
    env = Environment(
        lambda key: sample_shape(key, name, 1)[0],
        uniform_contexts(2, K),
        Gaussian(SHAPES.noise),
        K,
        2,
        True,
        f"{name} shape prior (shared theta), K={K} features U[-1,1]^2",
    )
    return dict(env=env, prior=prior, meta=meta, gauss=ag.GaussianPrior.fit(pretrain), bank=bank, pretrain=pretrain)


def shape_agents(setup: dict) -> dict:
    """The benchmark's agents on one shape: dTS, LaplaceDPS, LinTS (fitted Gaussian), bank TS."""
    lik, K = Gaussian(SHAPES.noise), SHAPES.num_actions
    return {
        "dTS": ag.dts(setup["prior"], lik, K, shared=True),
        "LaplaceDPS": laplace_dps(setup["prior"], lik, K),
        "LinTS": ag.lin_ts(setup["gauss"], lik, K, shared=True),
        "bank TS": ag.bank_ts(setup["bank"], lik, K, shared=True),
    }


def shape_builder(name: str):
    """Builder ``build(key, num_rounds) -> (Environment, agents)`` of the shape preset ``name``."""

    def build(key, num_rounds):
        del key, num_rounds
        s = shape_setup(name)
        return s["env"], shape_agents(s)

    return build


def presets() -> list[tuple]:
    """The six shape presets ``shape-<name>``: (name, build, description, rounds, runs) each.

    The registry makes them :class:`dts_ppl.experiments.registry.Preset` rows.
    """
    return [
        (f"shape-{n}", shape_builder(n), f"one theta from the 2-D {n} shape (Kveton et al. 2024), K=20",
         SHAPES.rounds, SHAPES.runs)
        for n in NAMES
    ]  # fmt: skip
