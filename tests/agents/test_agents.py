"""Agents: incremental posteriors against the batch closed form and the joint-Gaussian oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import BanditModel, Bernoulli, DiffusionPrior, DTSGuide, Gaussian
from dts_ppl.agents import dts, dts_posterior, exact_ts, hier_ts, hierarchical_prior, lin_ts, lin_ucb, theta_marginal
from dts_ppl.core import inference as core
from dts_ppl.core import oracle
from dts_ppl.experiments.synthetic import random_mlp_prior


def _linear_prior(key, d=3, dp=2):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    a = jax.random.normal(k3, (d, d))
    c = jax.random.normal(k4, (dp, dp))
    return DiffusionPrior.linear(
        [jax.random.normal(k1, (d, dp)), jax.random.normal(k2, (dp, dp))],
        [a @ a.T / d + 0.5 * jnp.eye(d), c @ c.T / dp + 0.3 * jnp.eye(dp), 2.0],
        offsets=[jnp.arange(d) / d, -jnp.ones(dp) / 2],
    )


def _data(key, n, d, K, likelihood=None):
    kx, ka, ky = jax.random.split(key, 3)
    X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    if isinstance(likelihood, Bernoulli):
        y = jax.random.bernoulli(ky, 0.5, (n,)).astype(X.dtype)
    else:
        y = jax.random.normal(ky, (n,)) + X[:, 0]
    return X, A, y


def _feed(agent, X, A, y):
    """Run ``agent.update`` over the rows of (X, A, y) in one compiled scan."""

    def step(state, row):
        return agent.update(state, *row), None

    return jax.jit(lambda data: jax.lax.scan(step, agent.init(), data)[0])((X, A, y))


def test_dts_incremental_equals_guide_and_oracle(key):
    K, n = 4, 25  # action 3 gets fewer than d pulls on some seeds; keep it general
    prior = _linear_prior(key)
    X, A, y = _data(jax.random.PRNGKey(1), n, prior.dim, K)
    state = _feed(dts(prior, Gaussian(1.0), K), X, A, y)
    guide = DTSGuide(BanditModel(prior, K, Gaussian(1.0)))
    batch = guide.posterior(X, A, y)
    ours = dts_posterior(prior, state)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(batch), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)
    ref = oracle.split(prior, oracle.joint_posterior(prior, guide.statistics(X, A, y)), K)
    mo = core.moments(prior, ours)
    np.testing.assert_allclose(mo.theta_mean, ref["theta_mean"], atol=1e-10)
    np.testing.assert_allclose(mo.theta_cov, ref["theta_cov"], atol=1e-10)
    np.testing.assert_allclose(mo.psi_mean, ref["psi_mean"], atol=1e-10)
    # the running sums are the sums of the per-action messages
    _, messages = core.action_posteriors(prior, guide.statistics(X, A, y))
    np.testing.assert_allclose(state.evidence_sum.G, messages.G.sum(0), atol=1e-10)
    np.testing.assert_allclose(state.evidence_sum.b, messages.b.sum(0), atol=1e-10)


# jacobian in the slow run (identity: the DDPM default; iterated: the MLP default)
@pytest.mark.parametrize("linearisation", ["identity", pytest.param("jacobian", marks=pytest.mark.slow), "iterated"])
def test_dts_nonlinear_equals_guide(key, linearisation):
    K, n = 4, 10
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    X, A, y = _data(jax.random.PRNGKey(2), n, 3, K)
    state = _feed(dts(prior, Gaussian(1.0), K, linearisation=linearisation), X, A, y)
    batch = DTSGuide(BanditModel(prior, K, Gaussian(1.0)), linearisation=linearisation).posterior(X, A, y)
    for a, b in zip(jax.tree.leaves(dts_posterior(prior, state)), jax.tree.leaves(batch), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_dts_logistic_statistics_match_batch_fit(key):
    K, n = 3, 40
    prior = _linear_prior(key)
    lik = Bernoulli()
    X, A, y = _data(jax.random.PRNGKey(3), n, prior.dim, K, lik)
    state = _feed(dts(prior, lik, K, history=n, newton_steps=8), X, A, y)
    # the agent knows the prior: Bernoulli() expands at the prior-regularised fit by default
    ref = lik.for_prior(theta_marginal(prior).cov).statistics(X, A, y, K)
    np.testing.assert_allclose(state.evidence.stats.G, ref.G, atol=1e-8)
    np.testing.assert_allclose(state.evidence.stats.b, ref.b, atol=1e-6)
    batch = DTSGuide(BanditModel(prior, K, lik)).posterior(X, A, y)
    np.testing.assert_allclose(dts_posterior(prior, state).theta.shift, batch.theta.shift, atol=1e-6)


def test_dts_shared_equals_guide(key):
    K, n = 6, 15
    prior = _linear_prior(key)
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(4), 3)
    feats = jax.random.uniform(kx, (n, K, prior.dim), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.normal(ky, (n,))
    agent = dts(prior, Gaussian(0.5), K, shared=True)
    state = _feed(agent, feats, A, y)
    phi = feats[jnp.arange(n), A]
    batch = DTSGuide(BanditModel(prior, likelihood=Gaussian(0.5), shared=True)).posterior(phi, None, y)
    for a, b in zip(jax.tree.leaves(dts_posterior(prior, state)), jax.tree.leaves(batch), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)
    action, info = jax.jit(agent.act)(key, state, feats[0])
    assert info.scores.shape == (K,) and 0 <= int(action) < K


def test_dts_scores_have_posterior_marginals(key):
    """act's one-pass scores x^T theta_a: Monte-Carlo mean/var match the exact posterior moments."""
    K, n, S = 4, 30, 4000
    prior = _linear_prior(key)
    X, A, y = _data(jax.random.PRNGKey(5), n, prior.dim, K)
    agent = dts(prior, Gaussian(1.0), K)
    state = _feed(agent, X, A, y)
    x = jnp.array([0.3, -0.7, 0.5])
    scores = jax.vmap(lambda k: agent.act(k, state, x)[1].scores)(jax.random.split(key, S))
    mo = core.moments(prior, dts_posterior(prior, state))
    mean = mo.theta_mean @ x
    var = jnp.einsum("i,kij,j->k", x, mo.theta_cov, x)
    se_mean = np.sqrt(var / S)
    assert np.all(np.abs(scores.mean(0) - mean) < 5 * se_mean)
    se_var = var * np.sqrt(2.0 / (S - 1))  # Gaussian scores
    assert np.all(np.abs(scores.var(0) - var) < 5 * se_var)
    # scores of different actions are correlated through psi_1, as in the joint posterior
    cross = np.cov(np.asarray(scores).T)[0, 1]
    ref = x @ mo.theta_cross_cov(0, 1) @ x
    assert abs(cross - ref) < 5 * np.sqrt((var[0] * var[1] + ref**2) / S)


def test_lin_ts_is_the_conjugate_posterior(key):
    K, n = 3, 20
    prior = _linear_prior(key)
    m = theta_marginal(prior)
    X, A, y = _data(jax.random.PRNGKey(6), n, prior.dim, K)
    state = _feed(lin_ts(m, Gaussian(2.0), K), X, A, y)
    stats = Gaussian(2.0).statistics(X, A, y, K)
    for a in range(K):
        prec = np.linalg.inv(np.asarray(m.cov)) + np.asarray(stats.G[a])
        cov = np.linalg.inv(prec)
        np.testing.assert_allclose(state.cov[a], cov, atol=1e-10)
        np.testing.assert_allclose(state.mean[a], cov @ (np.linalg.solve(m.cov, m.mean) + stats.b[a]), atol=1e-10)


def test_theta_marginal_linear_and_sampled(key):
    prior = _linear_prior(key)
    m = theta_marginal(prior)
    W1, W2 = prior.link1.weight, prior.link(2).weight
    B2 = W1 @ W2
    cov = prior.cov1 + W1 @ prior.covs[0] @ W1.T + B2 @ prior.covs[1] @ B2.T
    mean = W1 @ prior.link(2).offset + prior.link1.offset
    np.testing.assert_allclose(m.cov, cov, atol=1e-12)
    np.testing.assert_allclose(m.mean, mean, atol=1e-12)
    mlp = random_mlp_prior(key, 3, 2, hidden=6)
    S = 20000
    mm = theta_marginal(mlp, jax.random.PRNGKey(7), num_samples=S)
    _, theta = core.sample(jax.random.PRNGKey(8), mlp, core.prior_conditionals(mlp, 1), (S,))
    sd = np.sqrt(np.diag(mm.cov))
    assert np.all(np.abs(theta[:, 0].mean(0) - mm.mean) < 5 * np.sqrt(2) * sd / np.sqrt(S))


def test_hierarchical_prior_matches_paper_construction(key):
    prior = _linear_prior(key)
    hp = hierarchical_prior(prior, jitter=0.0 + 1e-12)
    W1, W2 = prior.link1.weight, prior.link(2).weight
    own = prior.cov1 + W1 @ prior.covs[0] @ W1.T
    top = (W1 @ W2) @ prior.covs[1] @ (W1 @ W2).T
    np.testing.assert_allclose(hp.cov1, own, atol=1e-10)
    np.testing.assert_allclose(hp.covs[0], top, atol=1e-8)
    # same theta marginal as the diffusion prior, but a different cross-action covariance
    np.testing.assert_allclose(theta_marginal(hp).cov, theta_marginal(prior).cov, atol=1e-8)
    agent = hier_ts(prior, Gaussian(1.0), 3)
    assert agent.act(key, agent.init(), jnp.ones(3))[1].scores.shape == (3,)


def test_exact_ts_kalman_equals_oracle(key):
    K, n = 4, 25
    prior = _linear_prior(key)
    X, A, y = _data(jax.random.PRNGKey(9), n, prior.dim, K)
    state = _feed(exact_ts(prior, Gaussian(1.0), K), X, A, y)
    ref = oracle.joint_posterior(prior, Gaussian(1.0).statistics(X, A, y, K))
    np.testing.assert_allclose(state.mean, ref.mean, atol=1e-9)
    np.testing.assert_allclose(state.cov, ref.cov, atol=1e-9)


def test_lin_ucb_scores_are_upper_bounds(key):
    prior = _linear_prior(key)
    m = theta_marginal(prior)
    agent = lin_ucb(m, Gaussian(1.0), 3, alpha=2.0)
    state = agent.init()
    x = jnp.array([0.2, 0.1, -0.4])
    _, info = agent.act(key, state, x)
    np.testing.assert_allclose(info.scores, m.mean @ x + 2.0 * jnp.sqrt(x @ m.cov @ x), atol=1e-12)


# per-action chains: slow (the shared case runs the same collapse)
@pytest.mark.parametrize("shared", [pytest.param(False, marks=pytest.mark.slow), True])
def test_collapsed_chain_is_the_full_chain(key, shared):
    """dTS on an affine chain runs on core.collapse_linear by default (L = 1 in its state): the
    psi_1 and theta posteriors it carries equal the full L-level chain's and the oracle's."""
    K, n, d = 4, 30, 3
    prior = DiffusionPrior.linear(
        [jax.random.normal(jax.random.PRNGKey(i), (d, d)) / 2 for i in range(5)],
        [0.5, 0.4, 0.3, 0.3, 0.2, 1.0],
        offsets=[jnp.full(d, 0.1 * i) for i in range(5)],
    )
    X, A, y = _data(jax.random.PRNGKey(1), n, d, K)
    if shared:
        X = jnp.broadcast_to(X[:, None, :], (n, K, d)) * (1.0 + jnp.arange(K))[None, :, None] / K
    col = dts(prior, Gaussian(1.0), K, shared=shared)
    full = dts(prior, Gaussian(1.0), K, shared=shared, collapse=False)
    s_col, s_full = _feed(col, X, A, y), _feed(full, X, A, y)
    assert s_col.latents.shift.shape[0] == 1 and s_full.latents.shift.shape[0] == 5
    assert col.spec.num_levels == full.spec.num_levels == 5
    cp = core.collapse_linear(prior)
    m1 = core.moments(prior, core.prior_conditionals(prior, 1)).psi_mean[-1]
    mc, mf = core.moments(cp, dts_posterior(cp, s_col)), core.moments(prior, dts_posterior(prior, s_full))
    np.testing.assert_allclose(mc.theta_mean, mf.theta_mean, atol=1e-10)
    np.testing.assert_allclose(mc.theta_cov, mf.theta_cov, atol=1e-10)
    np.testing.assert_allclose(mc.psi_mean[-1] + m1, mf.psi_mean[-1], atol=1e-10)
    np.testing.assert_allclose(mc.psi_cov[-1], mf.psi_cov[-1], atol=1e-10)
    # the full chain rebuilt from the collapsed state, against the joint-Gaussian oracle
    guide = DTSGuide(BanditModel(prior, 1 if shared else K, Gaussian(1.0)))
    if shared:
        stats = s_full.evidence.stats
    else:
        stats = guide.statistics(X, A, y)
    ref = oracle.split(prior, oracle.joint_posterior(prior, stats), 1 if shared else K)
    mo = core.moments(prior, dts_posterior(prior, s_col))
    np.testing.assert_allclose(mo.psi_mean, ref["psi_mean"], atol=1e-10)
    np.testing.assert_allclose(mo.theta_cov, ref["theta_cov"], atol=1e-10)


def test_collapse_options():
    mlp = random_mlp_prior(jax.random.PRNGKey(0), 3, 2, hidden=6)
    with pytest.raises(ValueError, match="collapse"):
        dts(mlp, Gaussian(1.0), 4, collapse=True)
    with pytest.raises(ValueError, match="collapse"):
        dts(_linear_prior(jax.random.PRNGKey(0)), Gaussian(1.0), 4, collapse="yes")
    with pytest.raises(ValueError, match="prior"):
        core.collapse_linear(mlp)
    assert dts(mlp, Gaussian(1.0), 4).init().latents.shift.shape[0] == 2
