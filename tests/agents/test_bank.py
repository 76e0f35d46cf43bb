"""Bank TS against closed-form and quadrature posteriors, within Monte-Carlo error; the random policy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mc import Z

from dts_ppl import agents as ag
from dts_ppl.core.likelihoods import Bernoulli, Gaussian


def _observe(agent, state, xs, actions, ys):
    update = jax.jit(agent.update)  # (eager calls validate; the error tests below cover that)
    for x, a, y in zip(xs, actions, ys, strict=True):
        state = update(state, jnp.asarray(x), jnp.asarray(a), jnp.asarray(y))
    return state


def _gaussian_posterior(m, S, X, y, sigma):
    """Conjugate N(m, S) prior, y = X theta + N(0, sigma^2): (mean, cov), by the textbook formula."""
    prec = np.linalg.inv(S) + X.T @ X / sigma**2
    cov = np.linalg.inv(prec)
    return cov @ (np.linalg.solve(S, m) + X.T @ y / sigma**2), cov


def _se_of_weighted_variance(bank, w, mean):
    """Delta-method s.e. (d,) of the self-normalised estimate of each coordinate's variance."""
    c2 = (bank - mean) ** 2
    var = w @ c2
    return var, np.sqrt(w**2 @ (c2 - var) ** 2)


@pytest.mark.parametrize("shared", [False, True])
def test_bank_of_gaussian_draws_matches_the_closed_form_posterior(key, shared):
    d, N, sigma = 2, 200_000, 0.7
    m, S = np.array([0.5, -1.0]), np.array([[1.0, 0.4], [0.4, 0.6]])
    k_bank, k_x, k_y = jax.random.split(key, 3)
    bank = np.asarray(m + jax.random.normal(k_bank, (N, d)) @ np.linalg.cholesky(S).T)
    K, n = 3, 6
    agent = ag.bank_ts(bank, Gaussian(sigma), K, shared=shared, warn_ess=0)
    theta_true = np.array([1.0, 0.0])
    if shared:
        xs = np.asarray(jax.random.uniform(k_x, (n, K, d), minval=-1, maxval=1))
        actions = np.arange(n) % K
        phis = xs[np.arange(n), actions]
    else:
        xs = np.asarray(jax.random.uniform(k_x, (n, d), minval=-1, maxval=1))
        actions = np.ones(n, int)  # every observation about action 1; actions 0, 2 keep the prior
        phis = xs
    ys = phis @ theta_true + sigma * np.asarray(jax.random.normal(k_y, (n,)))
    state = _observe(agent, agent.init(), xs, actions, ys)
    group = 0 if shared else 1
    exact_mean, exact_cov = _gaussian_posterior(m, S, phis, ys, sigma)
    mean, cov = (np.asarray(a)[group] for a in ag.bank_moments(jnp.asarray(bank), state.log_weights))
    se = np.asarray(ag.bank.bank_mean_se(jnp.asarray(bank), state.log_weights))[group]
    assert np.all(np.abs(mean - exact_mean) < Z * se), (mean, exact_mean, se)
    w = np.asarray(jax.nn.softmax(state.log_weights[group]))
    var, var_se = _se_of_weighted_variance(bank, w, mean)
    assert np.all(np.abs(var - np.diag(exact_cov)) < Z * var_se), (var, np.diag(exact_cov), var_se)
    # the ESS is reported and well below N once the data are informative
    ess = float(state.ess[group])
    assert ess == pytest.approx(1.0 / np.sum(w**2), rel=1e-6) and ess < 0.9 * N
    if not shared:  # untouched actions keep the prior (the bank's own moments)
        assert float(state.ess[0]) == pytest.approx(N)
        np.testing.assert_allclose(
            np.asarray(ag.bank_moments(jnp.asarray(bank), state.log_weights)[0][0]), bank.mean(0)
        )


def test_bank_bernoulli_posterior_matches_grid_quadrature(key):
    """Logistic rewards: the bank's posterior mean vs the posterior mean by quadrature on a grid."""
    d, N = 2, 200_000
    k_bank, k_x, k_y = jax.random.split(key, 3)
    bank = np.asarray(jax.random.normal(k_bank, (N, d)))  # prior N(0, I)
    n = 12
    xs = np.asarray(jax.random.uniform(k_x, (n, d), minval=-2, maxval=2))
    ys = np.asarray(jax.random.bernoulli(k_y, jax.nn.sigmoid(xs @ np.array([1.5, -1.0])))).astype(float)
    agent = ag.bank_ts(bank, Bernoulli(), 1, warn_ess=0)
    state = _observe(agent, agent.init(), xs, np.zeros(n, int), ys)
    g = np.linspace(-7, 7, 701)
    t1, t2 = np.meshgrid(g, g, indexing="ij")
    grid = np.stack([t1.ravel(), t2.ravel()], -1)
    eta = grid @ xs.T
    logp = -0.5 * np.sum(grid**2, -1) + np.sum(ys * eta - np.logaddexp(0, eta), -1)
    p = np.exp(logp - logp.max())
    exact = p @ grid / p.sum()
    mean = np.asarray(ag.bank_moments(jnp.asarray(bank), state.log_weights)[0][0])
    se = np.asarray(ag.bank.bank_mean_se(jnp.asarray(bank), state.log_weights))[0]
    assert np.all(np.abs(mean - exact) < Z * se), (mean, exact, se)


def test_bank_thompson_draws_follow_the_weights(key):
    """act's scores x^T theta_a average to x^T E[theta_a | H] (MC error of the draws)."""
    N, K, d = 500, 2, 2
    bank = np.asarray(jax.random.normal(key, (N, d)))
    agent = ag.bank_ts(bank, Gaussian(1.0), K, warn_ess=0)
    x0 = np.array([0.8, -0.3])
    state = _observe(agent, agent.init(), [x0] * 4, [0] * 4, [1.0, 0.7, 1.2, 0.9])
    x = np.array([0.6, 0.5])
    draws = 20_000
    _, info = jax.vmap(lambda k: agent.act(k, state, x))(jax.random.split(jax.random.PRNGKey(3), draws))
    scores = np.asarray(info.scores)
    mean, cov = (np.asarray(a) for a in ag.bank_moments(jnp.asarray(bank), state.log_weights))
    sd = np.sqrt(np.einsum("i,kij,j->k", x, cov, x))
    assert np.all(np.abs(scores.mean(0) - mean @ x) < Z * sd / np.sqrt(draws))
    assert np.all(np.abs(scores.std(0) - sd) < 0.05 * sd)


def test_bank_warns_when_the_ess_collapses(key):
    bank = np.asarray(jax.random.normal(key, (50, 2)))
    agent = ag.bank_ts(bank, Gaussian(0.1), 1, warn_ess=10.0)
    state = agent.init()
    with pytest.warns(RuntimeWarning, match="effective sample size fell to"):
        for _ in range(5):
            state = jax.jit(agent.update)(state, jnp.array([1.0, 1.0]), 0, 2.0)
            jax.effects_barrier()
    assert float(state.min_ess) < 10.0


def test_bank_input_errors():
    with pytest.raises(ValueError, match="bank"):
        ag.bank_ts(np.zeros(5), num_actions=2)
    with pytest.raises(ValueError, match="bank: contains NaN"):
        ag.bank_ts(np.array([[0.0, np.nan]]), num_actions=2)
    with pytest.raises(ValueError, match="warn_ess"):
        ag.bank_ts(np.zeros((5, 2)), num_actions=2, warn_ess=-1)
    agent = ag.bank_ts(np.zeros((5, 2)), num_actions=2)
    with pytest.raises(ValueError, match="x: expected"):
        agent.act(jax.random.PRNGKey(0), agent.init(), np.zeros(3))
    with pytest.raises(ValueError, match="action"):
        agent.update(agent.init(), np.zeros(2), 5, 0.0)


def test_random_policy_is_uniform_and_validates(key):
    K = 4
    agent = ag.random_policy(K)
    draws = 8000
    actions, _ = jax.vmap(lambda k: agent.act(k, agent.init(), jnp.zeros(3)))(jax.random.split(key, draws))
    freq = np.bincount(np.asarray(actions), minlength=K) / draws
    assert np.all(np.abs(freq - 1 / K) < Z * np.sqrt((1 / K) * (1 - 1 / K) / draws))
    assert int(agent.update(agent.init(), jnp.zeros(3), 1, 0.0).step) == 1
    with pytest.raises(ValueError, match="action"):
        agent.update(agent.init(), jnp.zeros(3), K, 0.0)
    with pytest.raises(ValueError, match="num_actions"):
        ag.random_policy(0)
