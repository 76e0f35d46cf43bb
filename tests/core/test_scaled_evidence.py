"""The evidence in (noise scale, S_1 scale) from one eigendecomposition per action (core.scaled_evidence)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior

from dts_ppl import DiffusionPrior
from dts_ppl.core import empirical_bayes, evidence, inference, oracle, scaled_evidence
from dts_ppl.core.linalg import psd_inv


def _case(num_levels, shared, seed=0):
    # full covariances, offsets, an action with no data and one with fewer than d pulls
    prior = random_linear_prior(jax.random.PRNGKey(seed + num_levels), 3, 2, num_levels)
    K = 1 if shared else 4
    counts = [9] if shared else [5, 2, 6, 0]
    X, A, y = random_data(jax.random.PRNGKey(10 + seed + num_levels), 3, K, None, counts=counts)
    return prior, X, A, y, K, evidence.gaussian_summary(X, A, y, K)


@jax.jit
def _three_ways(prior, summary, sigma, t):
    """(scaled evidence, core evidence at cov1 t, the scaled action terms + the chain through its levels)."""
    eig = scaled_evidence.action_eigen(prior.cov1, summary)
    actions, message = scaled_evidence._action_terms(eig, sigma, t)
    return (
        scaled_evidence.scaled_log_evidence(prior, eig, sigma, t),
        evidence.gaussian_log_evidence(prior._replace(cov1=prior.cov1 * t), summary, sigma),
        actions + evidence.latent_log_evidence(prior, message, inference.linearise(prior)),
    )


# The default run takes one diagonal of (shared, levels), the other one of test_evidence.py's
# test_gaussian_evidence_equals_the_oracle (so that the core evidence meets the oracle on all four
# by default); [False-1] and [True-3] run in the slow run, their siblings [True-1] and [False-3] here.
@pytest.mark.parametrize(
    ("shared", "num_levels"),
    [
        pytest.param(False, 1, marks=pytest.mark.slow),
        (True, 1),
        (False, 3),
        pytest.param(True, 3, marks=pytest.mark.slow),
    ],
)
def test_scaled_evidence_equals_the_oracle_and_the_core_evidence(num_levels, shared):
    prior, X, A, y, K, summary = _case(num_levels, shared)
    for sigma, t in [(1.0, 1.0), (0.7, 2.5), (2.3, 0.3)]:
        got, core, through_levels = _three_ways(prior, summary, sigma, t)
        want = oracle.log_marginal_likelihood(prior._replace(cov1=prior.cov1 * t), X, A, y, sigma, K)
        np.testing.assert_allclose(got, want, rtol=1e-8)
        np.testing.assert_allclose(got, core, rtol=1e-11)
        np.testing.assert_allclose(got, through_levels, rtol=1e-11)


def _core(prior, summary):
    """log p(y) of core.evidence at (sigma, t) = p."""
    return lambda p: evidence.gaussian_log_evidence(prior._replace(cov1=prior.cov1 * p[1]), summary, p[0])


def test_scaled_evidence_gradient_equals_the_core_evidence():
    prior, X, A, y, K, summary = _case(2, False, seed=3)
    eig = scaled_evidence.action_eigen(prior.cov1, summary)
    marginal = scaled_evidence.latent_marginal(prior)

    def ours(p):
        return scaled_evidence.scaled_log_evidence(prior, eig, p[0], p[1], marginal=marginal)

    p = jnp.array([0.8, 1.7])
    np.testing.assert_allclose(jax.jit(jax.grad(ours))(p), jax.jit(jax.grad(_core(prior, summary)))(p), rtol=1e-9)


def test_scaled_posterior_is_condition_at_the_scaled_prior():
    prior, X, A, y, K, summary = _case(2, False, seed=5)
    eig = scaled_evidence.action_eigen(prior.cov1, summary)
    sigma, t = 0.6, 1.9
    post = scaled_evidence.scaled_posterior(eig, sigma, t)
    stats = evidence.gaussian_stats(summary, sigma)
    cond, msg = jax.vmap(inference.condition, in_axes=(None, 0, 0))(psd_inv(prior.cov1 * t), stats.G, stats.b)
    for got, want in [
        (post.gain, cond.gain),
        (post.shift, cond.shift),
        (post.cov, cond.cov),
        (post.evidence.G, msg.G.sum(0)),
        (post.evidence.b, msg.b.sum(0)),
        (post.stats.G, stats.G),
    ]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(want))))


def test_marginal_evidence_equals_the_dense_integral():
    # log of the integral of N(u; m, F F^T) exp(-u^T G u / 2 + b^T u), by the joint Gaussian's normaliser
    d, dp = 3, 2
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(2), 4)
    m = jax.random.normal(k1, (d,))
    F = jax.random.normal(k2, (d, dp))
    g = jax.random.normal(k3, (d, d))
    G, b = g @ g.T, jax.random.normal(k4, (d,))
    got = scaled_evidence.marginal_log_evidence(scaled_evidence.LatentMarginal(m, F), inference.Message(G, b))
    # z ~ N(0, I_dp), u = m + F z: integrate over z densely
    Gz, bz = F.T @ G @ F, F.T @ (b - G @ m)
    P = jnp.eye(dp) + Gz
    want = b @ m - 0.5 * m @ G @ m - 0.5 * jnp.linalg.slogdet(P)[1] + 0.5 * bz @ jnp.linalg.solve(P, bz)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="iterated"):
        mlp = DiffusionPrior.mlp([(jnp.ones((4, 2)), jnp.zeros(4), jnp.ones((3, 4)), jnp.zeros(3))], [1.0, 1.0])
        scaled_evidence.latent_marginal(mlp, "iterated")


# slow: the default run checks the agent's first re-fit against the evidence maximiser
# (tests/agents/test_refit.py::test_the_first_refit_is_the_evidence_maximiser_of_fit_hyperparameters)
@pytest.mark.slow
def test_newton_steps_reach_the_maximiser_of_the_core_evidence():
    prior, X, A, y, K, summary = _case(2, False, seed=7)
    eig = scaled_evidence.action_eigen(prior.cov1, summary)

    def loss(u):  # log sigma and log t
        return -scaled_evidence.scaled_log_evidence(prior, eig, jnp.exp(u[0]), jnp.exp(u[1])) / 15

    u, trace = jax.jit(lambda u0: empirical_bayes.newton_steps(loss, u0, 12))(jnp.zeros(2))
    assert bool(jnp.all(jnp.diff(trace) <= 1e-12))  # never goes up
    core = jax.jit(_core(prior, summary))
    p = jnp.exp(u)
    assert float(jnp.max(jnp.abs(jax.jit(jax.grad(core))(p) * p))) < 1e-7  # stationary in (log sigma, log t)
    for step in (jnp.array([0.01, 0.0]), jnp.array([0.0, 0.01]), jnp.array([0.01, -0.01])):
        assert float(core(p * jnp.exp(step))) < float(core(p)) > float(core(p * jnp.exp(-step)))  # a maximum
