"""The random walk's exact filter (core.walk_filter) against the joint Gaussian of the theta path, float64."""

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest
from drift_priors import two_level_affine_prior

from dts_ppl.bandits.envs import diffusion_environment, random_walk
from dts_ppl.core import oracle, walk_filter
from dts_ppl.core.likelihoods import empty_stats

K, D, T, SCALE, SIGMA = 3, 2, 7, 0.4, 0.8


def _prior():
    return two_level_affine_prior(3, D)


def _theta_prior(prior):
    """theta's joint prior (mean (K d,), cov (K d, K d)) from the dense joint-Gaussian oracle."""
    parts = oracle.split(prior, oracle.joint_posterior(prior, empty_stats(K, D)), K)
    cov = np.asarray(parts["theta_cross"]).transpose(0, 2, 1, 3).reshape(K * D, K * D)
    return np.asarray(parts["theta_mean"]).reshape(-1), cov


@pytest.mark.parametrize("shared_scale", [None, 0.0, 1.1])
def test_filter_is_the_joint_gaussian_of_the_path(shared_scale):
    prior = _prior()
    mean0, sigma = _theta_prior(prior)
    own = np.kron(np.eye(K), np.asarray(prior.cov1))  # I_K (x) S_1: the e_a part of sigma
    shared = sigma - own  # 1 1^T (x) C
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(0), 3)
    X = np.asarray(jax.random.uniform(kx, (T, D), minval=-1, maxval=1))
    A = np.asarray(jax.random.randint(ka, (T,), 0, K))
    y = np.asarray(jax.random.normal(ky, (T,)))

    # brute force: theta_t for rounds t = 0..T (round T is the prediction), theta_{-1} ~ prior,
    # one step before every round: Cov(theta_s, theta_t) = sigma + (min(s, t) + 1) (s_e^2 own + s_u^2 shared)
    rounds = np.arange(T + 1)
    steps = np.minimum.outer(rounds, rounds) + 1.0
    s_u = SCALE if shared_scale is None else shared_scale
    cov = np.kron(np.ones_like(steps), sigma) + np.kron(steps, SCALE**2 * own + s_u**2 * shared)
    mean = np.tile(mean0, T + 1)
    H = np.zeros((T, (T + 1) * K * D))
    for t in range(T):
        H[t, t * K * D + A[t] * D : t * K * D + (A[t] + 1) * D] = X[t]
    S = H @ cov @ H.T + SIGMA**2 * np.eye(T)
    gain = cov @ H.T @ np.linalg.inv(S)
    post_mean = mean + gain @ (y - H @ mean)
    post_cov = cov - gain @ H @ cov
    last = slice(T * K * D, (T + 1) * K * D)

    model = walk_filter.walk_model(prior, SCALE, SIGMA**2, shared_scale)
    state = walk_filter.walk_init(model, K)
    step = jax.jit(walk_filter.walk_observe)
    for t in range(T):
        state = step(model, state, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
    theta_mean, theta_cov = walk_filter.walk_theta(state)
    np.testing.assert_allclose(np.asarray(theta_mean).reshape(-1), post_mean[last], atol=1e-10)
    np.testing.assert_allclose(np.asarray(theta_cov), post_cov[last, last], atol=1e-10)

    x = np.asarray([0.3, -0.7])
    m, c = walk_filter.walk_scores(state, jnp.asarray(x))
    Hx = np.kron(np.eye(K), x[None, :])
    np.testing.assert_allclose(np.asarray(m), Hx @ post_mean[last], atol=1e-10)
    np.testing.assert_allclose(np.asarray(c), Hx @ post_cov[last, last] @ Hx.T, atol=1e-10)


def test_model_matches_the_environment_walk_steps():
    """random_walk's steps have covariance SCALE^2 Cov(theta): the filter's step model, by Monte Carlo."""
    prior = _prior()
    env = random_walk(diffusion_environment(prior, K), SCALE)
    theta0 = jnp.zeros((K, D))
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)
    steps = np.asarray(jax.vmap(lambda k: env.drift(k, theta0, 0))(keys)).reshape(len(keys), K * D)
    _, sigma = _theta_prior(prior)
    exact = SCALE**2 * sigma
    mc.assert_mean_within_mc(steps, np.zeros(K * D), np.diag(exact), "walk step mean")
    mc.assert_cov_within_mc(steps, steps, exact, np.diag(exact), np.diag(exact), "walk step covariance")


def test_bad_input():
    with pytest.raises(ValueError, match="num_actions"):
        walk_filter.walk_init(walk_filter.walk_model(_prior(), SCALE, 1.0), 0)
    with pytest.raises(ValueError, match="noise_var"):
        walk_filter.walk_model(_prior(), SCALE, 0.0)
    with pytest.raises(ValueError, match="scale"):
        walk_filter.walk_model(_prior(), -1.0, 1.0)
