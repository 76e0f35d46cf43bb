"""The shape-prior presets: samplers on their shapes, registration, agents built on a setup."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.agents import GaussianPrior
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.experiments import registry, shapes


@pytest.mark.parametrize("name", shapes.NAMES)
def test_samples_lie_on_their_shape(name):
    x = np.asarray(shapes.sample_shape(jax.random.PRNGKey(0), name, 4000))
    r = shapes.SHAPES.radius
    assert x.shape == (4000, 2) and np.isfinite(x).all()
    jit = 0.02 * r * 6  # six jitter sds
    if name == "circle":
        assert np.abs(np.linalg.norm(x, axis=1) - r).max() < jit
    elif name == "diamond":
        assert np.abs(np.abs(x).sum(1) - r).max() < 2 * jit
    elif name == "cross":
        assert (np.minimum(np.abs(x[:, 0]), np.abs(x[:, 1])) <= 0.05 * r + 1e-12).all()
        assert np.abs(x).max() <= r + 1e-12
    elif name == "two-blobs":
        assert (np.sign(x[:, 0]) == np.sign(x[:, 1])).mean() > 0.99
    else:  # triangle, spiral: inside the radius, not Gaussian-looking around the origin
        assert np.linalg.norm(x, axis=1).max() < r + 2 * jit
        assert np.linalg.norm(x, axis=1).min() > 0.1 * r - 2 * jit


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="name"):
        shapes.sample_shape(jax.random.PRNGKey(0), "square", 3)
    with pytest.raises(ValueError, match="num_samples"):
        shapes.sample_shape(jax.random.PRNGKey(0), "circle", 0)


def test_presets_are_registered():
    names = registry.preset_names()
    for n in shapes.NAMES:
        assert f"shape-{n}" in names
        assert registry.get_preset(f"shape-{n}").runs >= 20


def test_agents_build_and_act_on_a_setup():
    prior = DiffusionPrior.linear([jnp.eye(2), jnp.eye(2)], [0.1, 0.5, 1.0])
    bank = shapes.sample_shape(jax.random.PRNGKey(1), "circle", 200)
    setup = dict(prior=prior, gauss=GaussianPrior.fit(np.asarray(bank)), bank=bank)
    agents = shapes.shape_agents(setup)
    assert set(agents) == {"dTS", "LaplaceDPS", "LinTS", "bank TS"}
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (shapes.SHAPES.num_actions, 2)))
    for agent in agents.values():
        state = agent.update(agent.init(), x, 3, 0.5)
        a, info = agent.act(jax.random.PRNGKey(2), state, x)
        assert 0 <= int(a) < shapes.SHAPES.num_actions and bool(info.valid)


# --------------------------------------------------------------- Kveton et al.'s own six problems


def _paper_region(name, x):
    """The paper's acceptance rules (uniform on [-3, 3]^2, kept where this is true), in numpy."""
    a, b = x[..., 0], x[..., 1]
    if name == "rays":
        norm = np.hypot(a, b)
        cos = np.max(np.abs(np.stack([a, b])), axis=0) / np.maximum(norm, 1e-300)
        return (norm < 3) & (cos > 0.95)
    if name == "triangles":
        return ((a > 0) & (np.abs(b) < np.abs(a))) | ((a < 0) & (np.abs(b) < np.abs(a) / 3))
    if name == "H":
        return (a < -2.5) | (a > 2.5) | ((b > -0.25) & (b < 0.25))
    return ((np.abs(a) > 2.5) & (np.abs(b) > 1)) | ((np.abs(b) > 2.5) & (np.abs(a) > 1))  # corners


@pytest.mark.parametrize("name", ["rays", "triangles", "H", "corners"])
def test_paper_uniform_problems_have_the_rejection_samplers_cell_masses(name):
    """Direct draws against the paper's rejection sampler: every draw is inside the region, and the mass
    of each cell of a 6 x 6 grid is the area of (cell and region) over the region's area (a 600^2-point
    midpoint rule), within 5 binomial s.e. plus the rule's discretisation."""
    n = 40_000
    x = np.asarray(shapes.sample_paper_shape(jax.random.PRNGKey(0), name, n))
    assert x.shape == (n, 2) and (np.abs(x) <= 3).all() and _paper_region(name, x).all()
    mid = np.linspace(-3, 3, 601)[:-1] + 0.005
    inside = _paper_region(name, np.stack(np.meshgrid(mid, mid, indexing="ij"), -1))
    expected = inside.reshape(6, 100, 6, 100).sum((1, 3)) / inside.sum()
    observed = np.histogram2d(x[:, 0], x[:, 1], bins=6, range=[[-3, 3], [-3, 3]])[0] / n
    tol = 5 * np.sqrt(expected * (1 - expected) / n) + 2e-3
    assert (np.abs(observed - expected) <= tol).all(), np.abs(observed - expected).max()


def test_paper_cross_is_the_two_gaussian_mixture_and_swirl_its_spiral():
    n = 100_000
    x = np.asarray(shapes.sample_paper_shape(jax.random.PRNGKey(1), "cross", n))
    cov = 0.5 * (np.array([[1, 0.99], [0.99, 1]]) + np.array([[1, -0.9], [-0.9, 1]]))
    assert np.abs(np.cov(x.T) - cov).max() < 0.03  # entries' s.e. about 0.005
    same_sign = 0.5 * (0.5 + np.arcsin(0.99) / np.pi) + 0.5 * (0.5 + np.arcsin(-0.9) / np.pi)
    assert abs((x[:, 0] * x[:, 1] > 0).mean() - same_sign) < 5 * np.sqrt(0.25 / n)
    s = np.asarray(shapes.sample_paper_shape(jax.random.PRNGKey(2), "swirl", n)) - np.array([1.0, -1.0])
    u = np.mod(np.arctan2(s[:, 0], s[:, 1]), 2 * np.pi) / (2 * np.pi)  # the angle 2 pi u of (sin, cos)
    ratio = np.hypot(s[:, 0], s[:, 1]) / u  # 3.5 - (v - 1/2) with v ~ U(0, 1)
    assert ratio.min() > 3 - 1e-6 and ratio.max() < 4 + 1e-6
    assert abs(ratio.mean() - 3.5) < 5 * np.sqrt(1 / 12 / n)
    assert np.abs(s.mean(0) - np.array([-3.5 / (2 * np.pi), 0.0])).max() < 0.02  # E[3.5 u (sin, cos)(2 pi u)]


def test_paper_presets_setup_and_contexts():
    names = registry.preset_names()
    for n in shapes.PAPER_NAMES:
        assert registry.get_preset(f"shape-paper-{n}").runs >= 20
    with pytest.raises(ValueError, match="name"):
        shapes.sample_paper_shape(jax.random.PRNGKey(0), "circle", 3)
    with pytest.raises(ValueError, match="name"):
        shapes.paper_setup("spiral", progress=False)
    assert "shape-paper-rays" in names
    x = np.asarray(shapes.unit_disc_contexts(5000)(jax.random.PRNGKey(3)))
    assert x.shape == (5000, 2) and np.linalg.norm(x, axis=1).max() <= 1
    assert abs((x**2).sum(1).mean() - 0.5) < 5 * np.sqrt(1 / 12 / 5000)  # |x|^2 ~ U(0, 1)


def test_paper_agents_include_the_uninformed_ts():
    prior = DiffusionPrior.linear([jnp.eye(2), jnp.eye(2)], [0.1, 0.5, 1.0])
    bank = shapes.sample_paper_shape(jax.random.PRNGKey(1), "rays", 200)
    setup = dict(
        prior=prior,
        gauss=GaussianPrior.fit(np.asarray(bank)),
        bank=bank,
        uninformed=GaussianPrior(jnp.zeros(2), jnp.eye(2)),
        config=shapes.PAPER,
    )
    agents = shapes.shape_agents(setup)
    assert set(agents) == {"dTS", "LaplaceDPS", "LinTS", "bank TS", "TS N(0, I)"}
    x = shapes.unit_disc_contexts(shapes.PAPER.num_actions)(jax.random.PRNGKey(4))
    for agent in agents.values():
        state = agent.update(agent.init(), x, 3, 0.5)
        a, info = agent.act(jax.random.PRNGKey(2), state, x)
        assert 0 <= int(a) < shapes.PAPER.num_actions and bool(info.valid)
