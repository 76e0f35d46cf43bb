"""The marginal likelihood (core.evidence) against the dense joint-Gaussian oracle, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian, Poisson
from dts_ppl.core import evidence, inference, oracle
from dts_ppl.core.likelihoods import ActionStats


def _scaled(prior, s1=1.0, latent=1.0):
    """The prior with S_1 times s1 and every latent covariance times ``latent``."""
    return prior._replace(cov1=prior.cov1 * s1, covs=prior.covs * latent)


SLOW = pytest.mark.slow


# The default run takes one diagonal of (shared, levels): per-action parameters on one level (the
# chain's base case), a shared one on three (its recursion). The other diagonal, [True-1] and
# [False-3], runs in the slow run; by default test_scaled_evidence.py checks the core evidence
# against the oracle on it (its kept siblings [True-1] and [False-3]). 2 and 4 levels (the same
# recursion, one level more) run in the slow run.
@pytest.mark.parametrize(
    ("shared", "num_levels"),
    [(False, 1), pytest.param(True, 1, marks=SLOW), pytest.param(False, 2, marks=SLOW)]
    + [pytest.param(True, 2, marks=SLOW), pytest.param(False, 3, marks=SLOW), (True, 3)]
    + [pytest.param(False, 4, marks=SLOW), pytest.param(True, 4, marks=SLOW)],
)
def test_gaussian_evidence_equals_the_oracle(num_levels, shared):
    # full covariances, offsets on the links, an action with no data and one with fewer than d pulls
    prior = random_linear_prior(jax.random.PRNGKey(num_levels), 3, 2, num_levels)
    K = 1 if shared else 4
    counts = [9] if shared else [5, 2, 6, 0]
    X, A, y = random_data(jax.random.PRNGKey(10 + num_levels), 3, K, None, counts=counts)
    offset = jax.random.normal(jax.random.PRNGKey(20 + num_levels), y.shape)
    for scale, off in [(0.7, None), (2.3, offset)]:
        got = evidence.log_marginal_likelihood(prior, Gaussian(scale), X, None if shared else A, y, K, offset=off)
        want = oracle.log_marginal_likelihood(prior, X, A, y, scale, K, offset=off)
        np.testing.assert_allclose(got, want, rtol=1e-8)


def test_gradients_match_finite_differences_of_the_oracle():
    prior = random_linear_prior(jax.random.PRNGKey(3), 3, 2, 2)
    X, A, y = random_data(jax.random.PRNGKey(4), 3, 3, None, counts=[4, 1, 7])

    def ours(p):
        return evidence.log_marginal_likelihood(_scaled(prior, p[1], p[2]), Gaussian(p[0]), X, A, y, 3)

    def reference(p):
        return oracle.log_marginal_likelihood(_scaled(prior, p[1], p[2]), X, A, y, p[0], 3)

    p = jnp.array([0.8, 1.3, 0.6])
    grad = jax.jit(jax.grad(ours))(p)
    h = 1e-5
    reference = jax.jit(reference)  # one compile for the six evaluations
    fd = jnp.array([(reference(p + h * e) - reference(p - h * e)) / (2 * h) for e in jnp.eye(3)])
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_chain_evidence_of_any_statistics_equals_the_dense_integral():
    # log of the integral of N(z; m, C) exp(-z^T G z / 2 + b^T z): the GLM path's chain part
    prior = random_linear_prior(jax.random.PRNGKey(7), 2, 3, 3)
    K, d = 3, 2
    g = jax.random.normal(jax.random.PRNGKey(8), (K, d, 4))
    stats = ActionStats(
        g @ jnp.swapaxes(g, -1, -2) * jnp.array([1.0, 0.0, 3.0])[:, None, None],
        jax.random.normal(jax.random.PRNGKey(9), (K, d)) * jnp.array([1.0, 0.0, 1.0])[:, None],
    )
    got = evidence.chain_log_evidence(prior, stats, inference.linearise(prior))
    joint = oracle.joint_posterior(prior, stats)  # J = C^-1 + G_blk, h = C^-1 m + b_blk
    prior_joint = oracle.joint_posterior(prior, ActionStats(jnp.zeros_like(stats.G), jnp.zeros_like(stats.b)))
    J0, h0 = prior_joint.precision, prior_joint.linear
    logdet = lambda a: jnp.linalg.slogdet(a)[1]  # noqa: E731
    want = (
        0.5 * joint.linear @ joint.mean - 0.5 * h0 @ prior_joint.mean + 0.5 * logdet(J0) - 0.5 * logdet(joint.precision)
    )
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.slow
def test_nonlinear_chain_evidence_is_that_of_its_linearisation():
    key = jax.random.PRNGKey(11)
    ks = jax.random.split(key, 6)
    d, dp, h = 2, 2, 4

    def layer(k, din, dout):
        return (
            jax.random.normal(k, (h, din)),
            jnp.zeros(h) + 0.1,
            jax.random.normal(jax.random.fold_in(k, 1), (dout, h)) / 2,
            jnp.zeros(dout),
        )

    prior = DiffusionPrior.mlp([layer(ks[0], dp, d), layer(ks[1], dp, dp)], [0.5, 1.0, 1.0])
    X, A, y = random_data(ks[2], d, 3, 30)
    got = evidence.log_marginal_likelihood(prior, Gaussian(0.5), X, A, y, 3)
    stats = Gaussian(0.5).statistics(X, A, y, 3)
    lin = inference.fit_posterior(prior, stats).linearisation
    # the same chain with affine links at the final expansion (rows: row i is f_{L-i+1}; row 0 unused)
    affine = DiffusionPrior.linear([lin.w1, lin.w[1]], [prior.cov1, *prior.covs], offsets=[lin.c1, lin.c[1]])
    want = oracle.log_marginal_likelihood(affine, X, A, y, 0.5, 3)
    np.testing.assert_allclose(got, want, rtol=1e-8)
    grad = jax.grad(lambda s: evidence.log_marginal_likelihood(prior, Gaussian(s), X, A, y, 3))(0.5)
    assert np.isfinite(grad)


@pytest.mark.parametrize("likelihood", [Bernoulli(), pytest.param(Poisson(), marks=pytest.mark.slow)])
def test_glm_evidence_is_close_to_importance_sampling(likelihood):
    # Laplace-type: with 80 rewards per action it is within a few hundredths of log p(y)
    prior = DiffusionPrior.linear([jnp.eye(2)], [0.3, 0.5])
    K, d, n = 2, 2, 160
    kx, ka, kt, ky, ks = jax.random.split(jax.random.PRNGKey(12), 5)
    X = jax.random.normal(kx, (n, d)) * 0.7
    A = jnp.arange(n) % K
    theta = jax.random.normal(kt, (K, d)) * 0.6
    y = likelihood.sample(ky, jnp.sum(X * theta[A], -1))
    got = evidence.log_marginal_likelihood(prior, likelihood, X, A, y, K)
    # importance sampling; the proposal (only a proposal: any one gives an unbiased estimate) is
    # the Gaussianised posterior of the joint, widened by 1.5 in sd
    S = 100_000
    zero = ActionStats(jnp.zeros((K, d, d)), jnp.zeros((K, d)))
    prior_joint = oracle.joint_posterior(prior, zero)
    stats = likelihood.for_prior(inference.theta_prior_scale_cov(prior)).statistics(X, A, y, K)
    post = oracle.joint_posterior(prior, stats)
    proposal = jax.scipy.stats.multivariate_normal
    cov = 2.25 * post.cov
    z = jax.random.multivariate_normal(ks, post.mean, cov, (S,))
    th = z[:, prior.latent_dim :].reshape(S, K, d)
    loglik = jnp.sum(likelihood.log_prob(y, jnp.sum(X * th[:, A], -1)), -1)
    logw = loglik + proposal.logpdf(z, prior_joint.mean, prior_joint.cov) - proposal.logpdf(z, post.mean, cov)
    want = jax.scipy.special.logsumexp(logw) - jnp.log(S)
    w = jnp.exp(logw - logw.max())
    se = float(jnp.std(w) / jnp.mean(w) / jnp.sqrt(S))  # sd of the log estimate (delta method)
    assert se < 0.02
    assert abs(float(got - want)) < 0.05 + 5 * se


def test_offset_needs_gaussian_rewards():
    prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
    X, A, y = jnp.ones((3, 2)), jnp.array([0, 1, 0]), jnp.array([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="offset"):
        evidence.log_marginal_likelihood(prior, Bernoulli(), X, A, y, 2, offset=jnp.zeros(3))
