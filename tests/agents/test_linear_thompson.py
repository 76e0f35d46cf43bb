"""LinTS / GLM-TS Thompson draws: one joint theta when shared, independent scores per action.

Shared parameter: the scores of one ``act`` are x_a^T theta for ONE theta ~ N(mean, Sigma), so
over keys they are jointly Gaussian with mean X mean and covariance X Sigma X^T. Checked by Monte
Carlo (tolerances from the standard error, ``mc``) against the conjugate posterior computed here
in NumPy from the observed rows (Gaussian rewards), and against the agent's Laplace moments
(GLM-TS). Per-action parameters: the scores are the old independent draw mean_a + sd_a z_a, bit
for bit on fixed keys.
"""

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest

from dts_ppl import Bernoulli, Gaussian
from dts_ppl.agents import GaussianPrior, glm_ts, lin_ts

K, D, N_ROWS, N_DRAWS = 5, 3, 6, 40000


def _prior():
    a = np.array([[1.0, 0.4, -0.3], [0.0, 0.8, 0.5], [0.0, 0.0, 0.6]])
    return GaussianPrior(jnp.array([0.3, -0.2, 0.1]), jnp.asarray(a @ a.T))


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(K, D))  # shared: the K action features
    actions = rng.integers(0, K, N_ROWS)
    rewards = rng.normal(size=N_ROWS)
    return X, actions, rewards


def _learn(agent, X, actions, rewards, shared):
    state = agent.init()
    for a, r in zip(actions, rewards, strict=True):
        state = agent.update(state, X if shared else X[0], int(a), float(r))
    return state


def _draws(agent, state, x, n=N_DRAWS, seed=1):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return np.asarray(jax.vmap(lambda k: agent.score(k, state, x))(keys))


def _check_joint(draws, X, mean, cov, what):
    mu, S = X @ mean, X @ cov @ X.T
    var = np.diag(S)
    mc.assert_mean_within_mc(draws, mu, var, what)
    mc.assert_cov_within_mc(draws, draws, S, var, var, what)
    # the check can fail for the marginal draw: its off-diagonal covariances are 0, far from these
    off = S[~np.eye(K, dtype=bool)]
    se = np.sqrt((np.outer(var, var)[~np.eye(K, dtype=bool)] + off**2) / draws.shape[0])
    assert np.max(np.abs(off) / se) > 20 * mc.Z


def test_shared_lin_ts_scores_have_the_joint_law():
    prior, (X, actions, rewards), sigma = _prior(), _rows(), 0.7
    agent = lin_ts(prior, Gaussian(sigma), K, shared=True)
    state = _learn(agent, X, actions, rewards, True)
    # reference: the conjugate posterior of theta from the rows x_{A_i}, in NumPy
    rows = X[actions]
    prec = np.linalg.inv(np.asarray(prior.cov)) + rows.T @ rows / sigma**2
    cov = np.linalg.inv(prec)
    mean = cov @ (np.linalg.solve(np.asarray(prior.cov), np.asarray(prior.mean)) + rows.T @ rewards / sigma**2)
    np.testing.assert_allclose(np.asarray(state.cov[0]), cov, rtol=1e-10, atol=1e-12)
    _check_joint(_draws(agent, state, X), X, mean, cov, "shared LinTS scores")


def test_shared_glm_ts_scores_have_the_joint_law():
    X, actions, _ = _rows(2)
    y = (np.random.default_rng(3).random(N_ROWS) < 0.5).astype(float)
    agent = glm_ts(_prior(), Bernoulli(), K, shared=True, history=16)
    state = _learn(agent, X, actions, y, True)
    mean, cov = np.asarray(state.mean[0]), np.asarray(state.cov[0])
    assert not np.allclose(cov, np.asarray(_prior().cov))  # the rows moved the Laplace posterior
    _check_joint(_draws(agent, state, X), X, mean, cov, "shared GLM-TS scores")


def test_shared_thompson_act_is_the_argmax_of_one_draw_under_jit():
    prior, (X, actions, rewards) = _prior(), _rows(4)
    agent = lin_ts(prior, Gaussian(1.0), K, shared=True)
    state = _learn(agent, X, actions, rewards, True)
    key = jax.random.PRNGKey(9)
    action, info = agent.act(key, state, X)
    s = jax.jit(agent.score)(key, state, jnp.asarray(X))
    np.testing.assert_array_equal(np.asarray(info.scores), np.asarray(s))
    assert int(action) == int(np.argmax(np.asarray(s)))
    # one theta scores every action: the scores lie in the column space of X (rank d < K)
    theta, *_ = np.linalg.lstsq(X, np.asarray(s), rcond=None)
    np.testing.assert_allclose(X @ theta, np.asarray(s), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("factory,lik", [(lin_ts, Gaussian(1.0)), (glm_ts, Bernoulli())])
def test_per_action_thompson_scores_unchanged_bit_for_bit(factory, lik):
    X, actions, rewards = _rows(5)
    if isinstance(lik, Bernoulli):
        rewards = (rewards > 0).astype(float)
    agent = factory(_prior(), lik, K, history=16)
    state = _learn(agent, X, actions, rewards, False)
    x = jnp.asarray(X[0])

    @jax.jit
    def old(key, mean, cov):  # the independent per-action draw: mean_a + sd_a z_a
        m = jnp.sum(x * mean, axis=-1)
        var = jnp.einsum("kij,j->ki", cov, x) @ x
        sd = jnp.sqrt(jnp.maximum(var, 0.0))
        return m + sd * jax.random.normal(key, m.shape, m.dtype)

    for seed in range(5):
        key = jax.random.PRNGKey(seed)
        _, info = agent.act(key, state, x)
        np.testing.assert_array_equal(np.asarray(info.scores), np.asarray(old(key, state.mean, state.cov)))
