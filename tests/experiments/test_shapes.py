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
