"""Kveton et al.'s six 2-D shape priors (2024, arXiv 2410.03919, section 6.2) and six of our own.

The paper evaluates its DiffTS / LaplaceDPS on linear bandits whose one shared parameter theta
(d = 2) is drawn from a 2-D "shape" distribution, with a DDPM pre-trained on samples of it. The
six shapes of :data:`NAMES` were reconstructed from a summary of the paper, before its text was
available here; they are not the paper's six (those are :data:`PAPER_NAMES`, below) and are kept
as a second benchmark, each with support of radius about :data:`SHAPES`.radius:

- ``cross``: uniform on two perpendicular bars (a plus sign), half-length r, width 0.1 r (no jitter).
- ``diamond``: uniform on the boundary of the L1 ball of radius r.
- ``triangle``: uniform on the boundary of an equilateral triangle inscribed in the circle of radius r.
- ``circle``: uniform on the circle of radius r.
- ``two-blobs``: two Gaussian clusters at (+-r / sqrt 2)(1, 1), sd 0.1 r.
- ``spiral``: an Archimedean spiral of 1.5 turns out to radius r.

Every boundary shape gets isotropic N(0, (0.02 r)^2) jitter, so the DDPM has a density to learn.

The paper's own six problems (:data:`PAPER_NAMES`, presets ``shape-paper-<name>``) are in
:func:`sample_paper_shape`: their names are the paper's (Figures 2 and 4: cross, rays, triangles,
swirl, H, corners); their definitions are those of the public re-implementation
WeixinWilliamWang/ECE661_project (``Synthetic_linear.py``, which builds on the authors'
supplementary ``Synthetic.py``), sampled here exactly by direct constructions instead of its
rejection loops. Their bandit follows the paper's section 6.2 (:data:`PAPER`): K = 100 action
features uniform in the unit disc, redrawn every round, rewards N(x_a^T theta, 1), 200 rounds, a
DDPM pre-trained on 10,000 draws; the baseline "TS N(0, I)" is the paper's uninformed TS.

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
#: Kveton et al.'s six problems (their Figure 2: cross, rays, triangles; Figure 4: swirl, H, corners)
PAPER_NAMES = ("cross", "rays", "triangles", "swirl", "H", "corners")
#: their bandit (section 6.2): K = 100, unit-disc features, noise sd 1, 200 rounds, 10,000 pre-training
#: draws; ``radius`` is the half-width of the square [-3, 3]^2 the shapes are cut from
PAPER = ShapesConfig(radius=3.0, num_actions=100, pretrain=10_000)
#: the two components of the paper's "cross": an equal mixture of N(0, C) for these C
_CROSS_COVS = ((1.0, 0.99), (1.0, -0.9))
#: half-width of a "rays" sector: the angle whose cosine is 0.95
_RAY_HALF_WIDTH = float(np.arccos(0.95))


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


def _pick(u, weights):
    """Index of the piece each uniform u (n,) falls in, for piece probabilities ``weights``."""
    w = np.asarray(weights, np.float64)
    edges = jnp.asarray(np.cumsum(w / w.sum())[:-1], u.dtype)
    return jnp.searchsorted(edges, u, side="right")


def _in_boxes(u, v, piece, boxes):
    """Uniform points in axis-aligned boxes ((x0, x1, y0, y1), ...), the box of each point by ``piece``."""
    b = jnp.asarray(boxes, u.dtype)[piece]
    return jnp.stack([b[:, 0] + (b[:, 1] - b[:, 0]) * u, b[:, 2] + (b[:, 3] - b[:, 2]) * v], 1)


def sample_paper_shape(key: jax.Array, name: str, num_samples: int) -> jax.Array:
    """(num_samples, 2) draws of Kveton et al.'s problem ``name`` (one of :data:`PAPER_NAMES`).

    - ``cross``: equal mixture of N(0, [[1, 0.99], [0.99, 1]]) and N(0, [[1, -0.9], [-0.9, 1]]).
    - ``rays``: uniform on the disc of radius 3 within the four sectors of half-angle arccos 0.95
      around the axes.
    - ``triangles``: uniform on {x > 0, |y| < x} and {x < 0, |y| < |x| / 3} within [-3, 3]^2.
    - ``swirl``: u ~ U(0, 1): (sin 2 pi u, cos 2 pi u) (3.5 u - u (v - 1/2)) + (1, -1), v ~ U(0, 1).
    - ``H``: uniform on {|x| > 2.5} and {|y| < 1/4} within [-3, 3]^2.
    - ``corners``: uniform on {|x| > 2.5, |y| > 1} and {|y| > 2.5, |x| > 1} within [-3, 3]^2.

    The uniform ones are the paper's rejection samplers (uniform on the square, kept inside the
    region), drawn directly: a piece chosen with probability proportional to its area, then a
    uniform point in it.

    Args:
        key: PRNG key.   name: one of :data:`PAPER_NAMES`.   num_samples: N >= 1.
    Returns:
        (N, 2) array of the default float dtype.
    """
    key = _checks.check_key(key)
    if name not in PAPER_NAMES:
        raise ValueError(f"name: expected one of {', '.join(PAPER_NAMES)}, got {name!r}")
    n = _checks.check_positive_int("num_samples", num_samples)
    dtype = jnp.result_type(float)
    k_p, k_u, k_v = jax.random.split(key, 3)
    p = jax.random.uniform(k_p, (n,), dtype)
    u = jax.random.uniform(k_u, (n,), dtype)
    v = jax.random.uniform(k_v, (n,), dtype)
    if name == "cross":
        chol = jnp.stack([jnp.linalg.cholesky(jnp.array([[a, c], [c, a]], dtype)) for a, c in _CROSS_COVS])
        z = jax.random.normal(k_u, (n, 2), dtype)
        return jnp.einsum("nij,nj->ni", chol[(p < 0.5).astype(int)], z)
    if name == "rays":
        angle = (jnp.pi / 2) * jnp.floor(4 * p) + _RAY_HALF_WIDTH * (2 * u - 1)
        return 3 * jnp.sqrt(v)[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], 1)
    if name == "triangles":
        right = p < 0.75  # areas 9 (right) and 3 (left)
        x = 3 * jnp.sqrt(u)  # density proportional to x on (0, 3): the triangle's height grows with x
        y = jnp.where(right, x, x / 3) * (2 * v - 1)
        return jnp.stack([jnp.where(right, x, -x), y], 1)
    if name == "swirl":
        angle = 2 * jnp.pi * u
        scale = 3.5 * u - u * (v - 0.5)
        return scale[:, None] * jnp.stack([jnp.sin(angle), jnp.cos(angle)], 1) + jnp.array([1.0, -1.0], dtype)
    if name == "H":  # left bar, right bar, the middle bar between them: areas 3, 3, 2.5
        boxes = ((-3.0, -2.5, -3.0, 3.0), (2.5, 3.0, -3.0, 3.0), (-2.5, 2.5, -0.25, 0.25))
        return _in_boxes(u, v, _pick(p, (3.0, 3.0, 2.5)), boxes)
    # corners: per quadrant {x in (2.5, 3), y in (1, 3)} (area 1) and {x in (1, 2.5), y in (2.5, 3)} (0.75)
    quadrant = jnp.floor(4 * p).astype(int)
    piece = _pick(4 * p - quadrant, (1.0, 0.75))
    xy = _in_boxes(u, v, piece, ((2.5, 3.0, 1.0, 3.0), (1.0, 2.5, 2.5, 3.0)))
    signs = jnp.asarray([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype)[quadrant]
    return xy * signs


def unit_disc_contexts(num_actions: int):
    """Sampler of (K, 2) action features uniform in the unit disc (the paper's "unit ball" for d = 2)."""
    dtype = jnp.result_type(float)

    def sample(key):
        k_a, k_r = jax.random.split(key)
        angle = 2 * jnp.pi * jax.random.uniform(k_a, (num_actions,), dtype)
        radius = jnp.sqrt(jax.random.uniform(k_r, (num_actions,), dtype))
        return radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], 1)

    return sample


def paper_setup(name: str, progress: bool = True) -> dict:
    """One of the paper's problems in its bandit (:data:`PAPER`): env, DDPM prior, fits, bank."""
    if name not in PAPER_NAMES:
        raise ValueError(f"name: expected one of {', '.join(PAPER_NAMES)}, got {name!r}")
    K = PAPER.num_actions
    setup = _setup(
        f"shape-paper-{name}",
        lambda key, n: sample_paper_shape(key, name, n),
        PAPER,
        PAPER_NAMES.index(name) + 3000,
        unit_disc_contexts(K),
        f"Kveton et al.'s {name} problem (shared theta), K={K} features uniform in the unit disc",
        progress,
    )
    return dict(setup, uninformed=ag.GaussianPrior(jnp.zeros(2), jnp.eye(2)), config=PAPER)


def shape_setup(name: str, progress: bool = True) -> dict:
    """Everything one shape preset uses: env, DDPM prior (+ meta), Gaussian fit, bank, pre-training sample."""
    K = SHAPES.num_actions
    return _setup(
        f"shape-{name}",
        lambda key, n: sample_shape(key, name, n),
        SHAPES,
        (NAMES.index(name) if name in NAMES else -1) + 1000,
        uniform_contexts(2, K),
        f"{name} shape prior (shared theta), K={K} features U[-1,1]^2",
        progress,
    )


def _setup(label: str, sample, cfg, seed: int, contexts, description: str, progress: bool) -> dict:
    """The pre-training sample (key ``seed``), the bank (key ``seed + 1000``), the DDPM prior trained
    on the sample, its Gaussian fit and the shared-theta environment with ``contexts``."""
    pretrain = np.asarray(sample(jax.random.PRNGKey(seed), cfg.pretrain), np.float64)
    bank = sample(jax.random.PRNGKey(seed + 1000), cfg.bank)
    prior, meta = realdata.trained_prior(
        label, pretrain, "beta", progress=progress, num_levels=cfg.num_levels, hidden=cfg.hidden, steps=cfg.steps
    )
    env = Environment(
        lambda key: sample(key, 1)[0], contexts, Gaussian(cfg.noise), cfg.num_actions, 2, True, description
    )
    return dict(env=env, prior=prior, meta=meta, gauss=ag.GaussianPrior.fit(pretrain), bank=bank, pretrain=pretrain)


def shape_agents(setup: dict) -> dict:
    """The benchmark's agents on one shape: dTS, LaplaceDPS, LinTS (fitted Gaussian), bank TS, and
    on the paper's problems (a setup with "uninformed") the paper's TS with the N(0, I) prior."""
    cfg = setup.get("config", SHAPES)
    lik, K = Gaussian(cfg.noise), cfg.num_actions
    agents = {
        "dTS": ag.dts(setup["prior"], lik, K, shared=True),
        "LaplaceDPS": laplace_dps(setup["prior"], lik, K),
        "LinTS": ag.lin_ts(setup["gauss"], lik, K, shared=True),
        "bank TS": ag.bank_ts(setup["bank"], lik, K, shared=True),
    }
    if "uninformed" in setup:
        agents["TS N(0, I)"] = ag.lin_ts(setup["uninformed"], lik, K, shared=True)
    return agents


def shape_builder(name: str):
    """Builder ``build(key, num_rounds) -> (Environment, agents)`` of the shape preset ``name``."""

    def build(key, num_rounds):
        del key, num_rounds
        s = shape_setup(name)
        return s["env"], shape_agents(s)

    return build


def paper_builder(name: str):
    """Builder ``build(key, num_rounds) -> (Environment, agents)`` of the paper's problem ``name``."""

    def build(key, num_rounds):
        del key, num_rounds
        s = paper_setup(name)
        return s["env"], shape_agents(s)

    return build


def presets() -> list[tuple]:
    """The shape presets ``shape-<name>`` and ``shape-paper-<name>``: (name, build, description,
    rounds, runs) each.

    The registry makes them :class:`dts_ppl.experiments.registry.Preset` rows.
    """
    ours = [
        (f"shape-{n}", shape_builder(n), f"one theta from the 2-D {n} shape (after Kveton et al. 2024), K=20",
         SHAPES.rounds, SHAPES.runs)
        for n in NAMES
    ]  # fmt: skip
    paper = [
        (f"shape-paper-{n}", paper_builder(n), f"one theta from Kveton et al.'s {n} problem, K=100 unit-disc features",
         PAPER.rounds, PAPER.runs)
        for n in PAPER_NAMES
    ]  # fmt: skip
    return ours + paper
