"""fit_hyperparameters: its optimum is the oracle's, its bounds hold, unidentifiable fits raise."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_linear_prior

from dts_ppl import Bernoulli, Gaussian, fit_hyperparameters
from dts_ppl.core import oracle
from dts_ppl.core.sampling import sample_prior


@pytest.fixture(scope="module")
def problem():
    jax.config.update("jax_enable_x64", True)
    prior = random_linear_prior(jax.random.PRNGKey(1), 2, 2, 2)
    truth = prior._replace(cov1=0.25 * prior.cov1)
    K, n = 6, 60
    kt, kx, ka, ky = jax.random.split(jax.random.PRNGKey(2), 4)
    theta = sample_prior(kt, truth, 1, K)[1][0]
    X = jax.random.normal(kx, (n, 2))
    A = jax.random.randint(ka, (n,), 0, K)
    y = jnp.sum(X * theta[A], -1) + 0.4 * jax.random.normal(ky, (n,))
    return prior, X, A, y, K


def _oracle(prior, X, A, y, K, sigma, s1_factor):
    return float(oracle.log_marginal_likelihood(prior._replace(cov1=prior.cov1 * s1_factor), X, A, y, sigma, K))


def test_the_fit_is_the_maximum_of_the_oracle_evidence(problem):
    prior, X, A, y, K = problem
    out = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, num_actions=K, num_steps=60)
    sigma, s = out.values["noise_scale"], out.values["action_scale"]
    factor = (s / out.initial["action_scale"]) ** 2
    np.testing.assert_allclose(out.prior.cov1, prior.cov1 * factor, rtol=1e-12)
    assert out.likelihood == Gaussian(sigma) and out.at_bound == () and out.grad_norm < 1e-6
    best = _oracle(prior, X, A, y, K, sigma, factor)
    np.testing.assert_allclose(out.log_evidence[-1], best, rtol=1e-9)
    assert out.log_evidence[-1] > out.log_evidence[0]
    for ds, df in [(1.01, 1.0), (0.99, 1.0), (1.0, 1.02), (1.0, 0.98)]:  # every neighbour is lower
        assert _oracle(prior, X, A, y, K, sigma * ds, factor * df) < best


@pytest.mark.slow
def test_any_optax_transformation_finds_the_same_optimum(problem):
    prior, X, A, y, K = problem
    out = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, num_actions=K, num_steps=60)
    adam = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, num_actions=K, num_steps=400, optimizer=optax.adam(0.05))
    np.testing.assert_allclose(adam.values["noise_scale"], out.values["noise_scale"], rtol=1e-3)


def test_bounds_hold_and_are_reported(problem):
    prior, X, A, y, K = problem
    with pytest.warns(RuntimeWarning, match="noise_scale ended at a bound"):
        out = fit_hyperparameters(
            prior, Gaussian(1.0), X, A, y, fit=("noise_scale",), num_actions=K, bounds={"noise_scale": (0.8, 2.0)}
        )
    assert out.at_bound == ("noise_scale",) and 0.8 <= out.values["noise_scale"] < 0.801
    with pytest.raises(ValueError, match="bounds: noise_scale"):
        fit_hyperparameters(prior, Gaussian(1.0), X, A, y, num_actions=K, bounds={"noise_scale": (2.0, 3.0)})
    with pytest.raises(ValueError, match="bounds: names"):
        fit_hyperparameters(prior, Gaussian(1.0), X, A, y, fit=("noise_scale",), bounds={"latent_cov": (0.1, 9)})


def test_unidentifiable_parameters_raise(problem):
    prior, X, A, y, K = problem
    with pytest.raises(ValueError, match="'noise_scale' is the sd of Gaussian rewards"):
        fit_hyperparameters(prior, Bernoulli(), X, A, (y > 0).astype(float), fit=("noise_scale",))
    with pytest.raises(ValueError, match="'action_cov'.*at least 2 actions"):
        fit_hyperparameters(prior, Gaussian(1.0), X, None, y, fit=("action_cov",))
    with pytest.raises(ValueError, match="'action_cov'.*only 1 action"):
        fit_hyperparameters(prior, Gaussian(1.0), X, jnp.zeros_like(A), y, fit=("action_cov",), num_actions=K)
    # two observations per action in d = 2: every residual fits into theta
    few = jnp.repeat(jnp.arange(3), 2)
    with pytest.raises(ValueError, match="'noise_scale' cannot be identified"):
        fit_hyperparameters(prior, Gaussian(1.0), X[:6], few, y[:6], fit=("noise_scale",), num_actions=3)
    with pytest.raises(ValueError, match="fit: expected distinct names"):
        fit_hyperparameters(prior, Gaussian(1.0), X, A, y, fit=("sigma",))
    with pytest.raises(ValueError, match="X: no observations"):
        fit_hyperparameters(prior, Gaussian(1.0), X[:0], A[:0], y[:0], num_actions=K)
