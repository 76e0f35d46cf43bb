"""Per-action statistics (docs/math.md section 2) against direct references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from dts_ppl import Bernoulli, Gaussian, Poisson
from dts_ppl.ppl.model import reward_distribution


def test_gaussian_statistics_are_the_exact_sums():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(30), 3)
    X = jax.random.normal(k1, (40, 3))
    A = jax.random.randint(k2, (40,), 0, 5)
    y = jax.random.normal(k3, (40,))
    G, b = Gaussian(0.5).statistics(X, A, y, 6)
    for a in range(6):
        m = np.asarray(A) == a
        Xa, ya = np.asarray(X)[m], np.asarray(y)[m]
        np.testing.assert_allclose(G[a], Xa.T @ Xa / 0.25, atol=1e-12)
        np.testing.assert_allclose(b[a], Xa.T @ ya / 0.25, atol=1e-12)
    assert np.all(G[5] == 0) and np.all(b[5] == 0)  # no data


def glm_problem():
    rng = np.random.default_rng(31)
    X = rng.normal(size=(60, 3))
    # action 0: 40 pulls; 1: one pull; 2: two pulls with separable labels; 3: no data
    A = np.array([0] * 40 + [1] + [2, 2] + [0] * 17)
    return X, A


@pytest.mark.parametrize("likelihood", [Bernoulli(), Poisson(), Bernoulli(ridge=0.5), Poisson(ridge=2.0)])
def test_glm_fit_is_the_ridge_mle_and_statistics_follow(likelihood):
    X, A = glm_problem()
    rng = np.random.default_rng(32)
    eta = X @ np.array([0.5, -1.0, 0.3])
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))) if isinstance(likelihood, Bernoulli) else rng.poisson(np.exp(eta))
    y = y.astype(float)
    y[41:43] = [1.0, 1.0] if isinstance(likelihood, Bernoulli) else [0.0, 0.0]  # separable / all-zero counts
    X, A, y = jnp.asarray(X), jnp.asarray(A), jnp.asarray(y)
    B = np.asarray(likelihood.fit(X, A, y, 4))
    G, b = likelihood.statistics(X, A, y, 4)
    for a in range(4):
        m = np.asarray(A) == a
        Xa, ya = np.asarray(X)[m], np.asarray(y)[m]

        def objective(t, Xa=Xa, ya=ya):
            e = Xa @ t
            nll = np.logaddexp(0, e) - ya * e if isinstance(likelihood, Bernoulli) else np.exp(e) - ya * e
            return nll.sum() + 0.5 * likelihood.effective_ridge * t @ t

        ref = minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose(B[a], ref, atol=1e-4 * max(1, np.abs(ref).max()))
        curv = likelihood._curvature(Xa @ B[a])
        np.testing.assert_allclose(G[a], (Xa * np.asarray(curv)[:, None]).T @ Xa, rtol=1e-10, atol=1e-14)
        # b = G B - grad NLL(B); at a ridge optimum grad NLL(B) = -ridge B (independently derived)
        np.testing.assert_allclose(b[a], G[a] @ B[a] + likelihood.effective_ridge * B[a], rtol=1e-6, atol=1e-8)
    assert np.all(G[3] == 0) and np.all(b[3] == 0)
    assert np.all(np.isfinite(B))


def test_reward_support_is_checked():
    with pytest.raises(ValueError, match="y: Bernoulli rewards must be 0 or 1"):
        Bernoulli().check_rewards("y", jnp.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="y: Poisson rewards must be non-negative integers"):
        Poisson().check_rewards("y", jnp.array([1.0, 0.5]))
    with pytest.raises(ValueError, match="scale"):
        Gaussian(-1.0)
    with pytest.raises(ValueError, match="ridge"):
        Bernoulli(ridge=0.0)


def random_glm_data(likelihood, seed, mean):
    """glm_problem's rows with rewards of the given mean (Bernoulli p or Poisson rate)."""
    X, A = glm_problem()
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, mean, size=len(A)) if isinstance(likelihood, Bernoulli) else rng.poisson(mean, size=len(A))
    return jnp.asarray(X), jnp.asarray(A), jnp.asarray(y, float)


@pytest.mark.parametrize("likelihood", [Bernoulli(ridge=0.3), Poisson(ridge=0.3)])
def test_statistics_are_the_second_order_taylor_expansion_at_the_fit(likelihood):
    """The quadratic -theta^T G theta / 2 + b^T theta has the log-likelihood's gradient and
    Hessian at the fit B, both computed here by autodiff of the NumPyro distribution's log_prob
    (an independent path; float64 from conftest)."""
    X, A, y = random_glm_data(likelihood, seed=33, mean=0.5 if isinstance(likelihood, Bernoulli) else 1.0)
    G, b = likelihood.statistics(X, A, y, 4)
    B = likelihood.fit(X, A, y, 4)
    for a in range(3):
        m = A == a

        def loglik(t, m=m):
            return jnp.sum(jnp.where(m, reward_distribution(likelihood, X @ t).log_prob(y), 0.0))

        grad, hess = jax.grad(loglik)(B[a]), jax.hessian(loglik)(B[a])
        np.testing.assert_allclose(-G[a], hess, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b[a] - G[a] @ B[a], grad, rtol=1e-6, atol=1e-8)
        assert np.abs(grad).max() > 1e-2  # the ridge moved B off the MLE: the gradient term matters


@pytest.mark.parametrize("likelihood", [Bernoulli(ridge=0.3), Poisson(ridge=1e-3)])
def test_one_group_laplace_equals_the_batch_statistics(likelihood):
    """The agents' masked one-group call and the batch call are the same routine and agree."""
    X, A, y = random_glm_data(likelihood, seed=34, mean=0.4 if isinstance(likelihood, Bernoulli) else 1.5)
    G, b = likelihood.statistics(X, A, y, 4)
    for a in range(4):
        Ga, ba, _ = likelihood.laplace(X, y, (A == a).astype(X.dtype), jnp.zeros(3), likelihood.newton_steps)
        # same iterates up to summation order (segment_sum vs matmul): float64 round-off only
        np.testing.assert_allclose(Ga, G[a], rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(ba, b[a], rtol=1e-7, atol=1e-8)


def test_regularised_for_sets_the_ridge_from_the_prior_scale():
    lik = Bernoulli().regularised_for(jnp.diag(jnp.array([2.0, 4.0, 6.0])))
    assert lik.ridge == pytest.approx(0.25) and lik.newton_steps == Bernoulli().newton_steps
    with pytest.raises(ValueError, match="theta_cov"):
        Bernoulli().regularised_for(jnp.ones(3))
    with pytest.raises(ValueError, match="theta_cov"):
        Bernoulli().regularised_for(jnp.zeros((2, 2)))
