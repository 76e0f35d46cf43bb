"""The closed-form posterior against the joint-Gaussian oracle (docs/math.md section 3), float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior

from dts_ppl import BanditModel, DTSGuide, Gaussian
from dts_ppl.core import inference as core
from dts_ppl.core.oracle import joint_posterior, split

RTOL = 1e-8


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(np.abs(expected).max(), 1e-12)
    err = np.abs(actual - expected).max() / scale
    assert err < RTOL, f"{what}: relative error {err:.2e}"


def check_against_oracle(prior, model, X, A, y, linearisation="identity"):
    guide = DTSGuide(model, linearisation=linearisation)
    stats = guide.statistics(X, A, y)
    mo = guide.moments(X, A, y)
    ref = split(prior, joint_posterior(prior, stats), model.num_actions)
    for name in ["psi_mean", "psi_cov", "theta_mean", "theta_cov"]:
        assert_close(getattr(mo, name), ref[name], name)
    K = model.num_actions
    for a, b in [(0, K - 1), (K // 2, 0)]:
        if a != b:
            assert_close(mo.theta_cross_cov(a, b), ref["theta_cross"][a, b], f"Cov(theta_{a}, theta_{b})")
    return mo, ref


@pytest.mark.parametrize(
    "d, d_psi, L, K",
    [
        (3, 2, 2, 4),  # d_psi < d
        (2, 4, 3, 3),  # d_psi > d
        (3, 3, 1, 5),  # L = 1
        (3, 2, 6, 4),  # L = 6
        (4, 3, 2, 1),  # K = 1
    ],
)
def test_moments_match_oracle(d, d_psi, L, K):
    k1, k2 = jax.random.split(jax.random.PRNGKey(d * 100 + d_psi * 10 + L + K))
    prior = random_linear_prior(k1, d, d_psi, L)
    model = BanditModel(prior, K, Gaussian(0.7))
    X, A, y = random_data(k2, d, K, n=6 * K)
    check_against_oracle(prior, model, X, A, y)


def test_no_data_gives_the_prior_marginals():
    prior = random_linear_prior(jax.random.PRNGKey(1), 3, 2, 3)
    model = BanditModel(prior, 4)
    mo, ref = check_against_oracle(prior, model, None, None, None)
    # and the oracle with no data is the prior: psi_L ~ N(0, S_{L+1})
    assert_close(mo.psi_cov[0], prior.covs[-1], "top latent prior covariance")
    assert_close(mo.psi_mean[0] + 1.0, jnp.ones(2), "top latent prior mean")


def test_actions_with_fewer_than_d_observations():
    d = 4
    prior = random_linear_prior(jax.random.PRNGKey(2), d, 3, 2)
    model = BanditModel(prior, 5)
    # action 0: 0 pulls, 1: 1 pull, 2: 2 pulls, 3: 3 pulls (all singular G_a), 4: 10 pulls
    X, A, y = random_data(jax.random.PRNGKey(3), d, 5, n=None, counts=[0, 1, 2, 3, 10])
    stats = DTSGuide(model).statistics(X, A, y)
    assert np.linalg.matrix_rank(np.asarray(stats.G[2])) == 2  # genuinely singular
    check_against_oracle(prior, model, X, A, y)


def test_shared_parameter_variant():
    d = 3
    prior = random_linear_prior(jax.random.PRNGKey(4), d, 2, 2)
    model = BanditModel(prior, likelihood=Gaussian(0.5), shared=True)
    X, _, y = random_data(jax.random.PRNGKey(5), d, 1, n=7)
    guide = DTSGuide(model)
    mo = guide.moments(X, None, y)
    ref = split(prior, joint_posterior(prior, guide.statistics(X, None, y)), 1)
    for name in ["psi_mean", "psi_cov", "theta_mean", "theta_cov"]:
        assert_close(getattr(mo, name), ref[name], name)
    assert guide.median(guide.fit(X, None, y))["theta"].shape == (d,)
    # the shared model is the K = 1 model with A = 0
    one = BanditModel(prior, 1, Gaussian(0.5))
    assert_close(DTSGuide(one).moments(X, jnp.zeros(7, int), y).theta_mean, mo.theta_mean, "shared vs K=1")


@pytest.mark.parametrize("linearisation", ["identity", "jacobian", "iterated"])
def test_linearisations_are_exact_for_affine_links(linearisation):
    prior = random_linear_prior(jax.random.PRNGKey(6), 3, 2, 3)
    model = BanditModel(prior, 3)
    X, A, y = random_data(jax.random.PRNGKey(7), 3, 3, n=12)
    check_against_oracle(prior, model, X, A, y, linearisation)


def test_incremental_sums_equal_batch_posterior():
    """Summing per-action messages (what the agents keep as running sums) is the batch posterior."""
    prior = random_linear_prior(jax.random.PRNGKey(8), 3, 3, 2)
    X, A, y = random_data(jax.random.PRNGKey(9), 3, 4, n=20)
    lik = Gaussian(1.0)
    full = core.posterior(prior, lik.statistics(X, A, y, 4))
    stats = lik.statistics(X[:10], A[:10], y[:10], 4)
    _, msgs = core.action_posteriors(prior, stats)
    total = core.Message(msgs.G.sum(0), msgs.b.sum(0))
    # add the second half one action at a time: subtract the old message, add the new one
    stats2 = lik.statistics(X, A, y, 4)
    for a in range(4):
        _, old = core.action_posteriors(prior, jax.tree.map(lambda s, a=a: s[a : a + 1], stats))
        _, new = core.action_posteriors(prior, jax.tree.map(lambda s, a=a: s[a : a + 1], stats2))
        total = core.Message(total.G - old.G[0] + new.G[0], total.b - old.b[0] + new.b[0])
    latents = core.latent_posteriors(prior, total, core.linearise(prior))
    assert_close(latents.shift, full.latents.shift, "latent shifts")
    assert_close(latents.cov, full.latents.cov, "latent covariances")
