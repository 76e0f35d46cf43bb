"""Renamed arguments and functions: the old names still work for one version, warn, and agree with the new ones."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian, Poisson, core
from dts_ppl.bandits import envs


@pytest.fixture
def mlp_prior():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    layer = (jax.random.normal(k1, (4, 2)), jax.random.normal(k2, (4,)), jax.random.normal(k3, (2, 4)), jnp.zeros(2))
    layer1 = (layer[0], layer[1], jax.random.normal(k4, (2, 4)), jnp.zeros(2))
    return DiffusionPrior.mlp([layer1, layer], [1.0, 0.5, 1.0])


@pytest.mark.parametrize("cls", [Bernoulli, Poisson])
def test_num_iterations_is_newton_steps(cls):
    with pytest.warns(DeprecationWarning, match="num_iterations"):
        old = cls(num_iterations=7)
    assert old == cls(newton_steps=7) and old.newton_steps == 7
    with pytest.warns(DeprecationWarning, match="num_iterations"):
        assert old.num_iterations == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataclasses.replace(old, ridge=2.0).newton_steps == 7  # replace does not go through the old name
        assert dataclasses.replace(old, newton_steps=3).newton_steps == 3
        assert cls(0.5, 4).newton_steps == 4  # positional order unchanged: ridge, newton_steps, expansion
    with pytest.raises(ValueError, match="newton_steps"):
        cls(newton_steps=0)
    with pytest.raises(ValueError, match="given twice"), pytest.warns(DeprecationWarning):
        cls(newton_steps=5, num_iterations=7)


def test_laplace_num_steps_is_newton_steps():
    lik = Bernoulli(ridge=1.0)
    X = jax.random.normal(jax.random.PRNGKey(1), (20, 3))
    y = (X[:, 0] > 0).astype(X.dtype)
    ones, B0 = jnp.ones(20), jnp.zeros(3)
    new = lik.laplace(X, y, ones, B0, 4)
    with pytest.warns(DeprecationWarning, match="num_steps"):
        old = lik.laplace(X, y, ones, B0, num_steps=4)
    for a, b in zip(new, old, strict=True):
        np.testing.assert_array_equal(a, b)
    fewer = lik.laplace(X, y, ones, B0, 1)
    assert not np.allclose(fewer[2], new[2])  # the step count is used
    np.testing.assert_array_equal(lik.laplace(X, y, ones, B0)[2], lik.laplace(X, y, ones, B0, lik.newton_steps)[2])


def test_method_is_linearisation(mlp_prior):
    ev = core.Message(jnp.eye(2), jnp.ones(2))
    for lin in ("identity", "jacobian"):
        new = core.linearise(mlp_prior, lin)
        with pytest.warns(DeprecationWarning, match="method="):
            old = core.linearise(mlp_prior, method=lin)
        jax.tree.map(np.testing.assert_array_equal, new, old)
    assert not np.allclose(core.linearise(mlp_prior, "identity").w1, core.linearise(mlp_prior, "jacobian").w1)
    new = core.upward_pass(mlp_prior, ev, "jacobian")
    with pytest.warns(DeprecationWarning, match="method="):
        old = core.upward_pass(mlp_prior, ev, method="jacobian")
    jax.tree.map(np.testing.assert_array_equal, new, old)
    with pytest.warns(DeprecationWarning, match="method="):
        assert core.resolve_linearisation(mlp_prior, method="identity") == "identity"
    assert core.resolve_linearisation(mlp_prior) == core.default_linearisation(mlp_prior)
    link, point = mlp_prior.link1, jnp.ones(2)
    with pytest.warns(DeprecationWarning, match="method="):
        old = link.linearise(point, method="jacobian")
    jax.tree.map(np.testing.assert_array_equal, link.linearise(point, "jacobian"), old)
    with pytest.raises(ValueError, match="given twice"), pytest.warns(DeprecationWarning):
        core.linearise(mlp_prior, "iterated", method="identity")


def test_envs_linear_predictor_is_the_core_one():
    env = envs.Environment(None, None, Gaussian(), 3, 2, False, "test")
    theta, x = jax.random.normal(jax.random.PRNGKey(2), (3, 2)), jnp.array([0.5, -1.0])
    with pytest.warns(DeprecationWarning, match="core.linear_predictor"):
        old = envs.linear_predictor(env, theta, x)
    np.testing.assert_array_equal(old, core.linear_predictor(x, theta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(envs.mean_rewards(env, theta, x), theta @ x, atol=1e-12)
