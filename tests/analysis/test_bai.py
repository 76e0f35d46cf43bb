"""Top-two Thompson sampling for best-arm identification (dts_ppl.analysis.bai)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import agents as ag
from dts_ppl.agents.base import ActInfo, Agent
from dts_ppl.analysis import bai
from dts_ppl.bandits.envs import Environment
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.oracle import joint_posterior, split
from dts_ppl.experiments.synthetic import random_linear_prior


def _uniform_agent(K):
    def act(key, state, x):
        a = jax.random.randint(key, (), 0, K)
        return a, ActInfo(jnp.zeros(K))

    return Agent(lambda: (), act, lambda s, x, a, y: s)


def test_leader_probability_matches_the_closed_form():
    """A uniform posterior over K arms: P(play leader) = beta + (1 - beta) K^-R (no differing challenger)."""
    K, R, beta, n = 3, 2, 0.3, 40000
    agent = _uniform_agent(K)
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    action, leader = jax.vmap(lambda k: bai.top_two_action(k, agent, (), jnp.ones(1), beta, R))(keys)
    p = beta + (1 - beta) * K ** (-R)
    freq = float(jnp.mean(action == leader))
    assert abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n)
    # the challenger is uniform over the other arms: each arm is played 1/K of the time
    counts = np.bincount(np.asarray(action), minlength=K) / n
    assert np.abs(counts - 1 / K).max() < 5 * np.sqrt((1 / K) * (1 - 1 / K) / n)


def test_a_clear_best_arm_is_identified():
    theta = jnp.array([[3.0], [0.0], [0.5]])
    env = Environment(lambda k: theta, lambda k: jnp.ones(1), Gaussian(1.0), 3, 1)
    agent = ag.lin_ts(ag.GaussianPrior(jnp.zeros(1), 10.0 * jnp.eye(1)), Gaussian(1.0), 3)
    res = bai.identification_error(jax.random.PRNGKey(0), env, agent, bai.linear_mean_scores, [1, 60], 200)
    assert res.error[-1] <= 0.02
    assert res.error[0] > res.error[-1]
    np.testing.assert_allclose(res.error_se, np.sqrt(res.error * (1 - res.error) / 200))
    assert res.simple_regret[-1] <= res.simple_regret[0]


@pytest.mark.slow
def test_dts_mean_scores_are_the_posterior_means():
    """After updates, dts_mean_scores equals the exact (oracle) posterior mean of x^T theta_a."""
    prior = random_linear_prior(jax.random.PRNGKey(3), 3, (3, 2))
    K, n = 4, 25
    agent = ag.dts(prior, Gaussian(1.0), K)
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(4), 3)
    X = jax.random.uniform(kx, (n, 3), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.normal(ky, (n,))
    state = agent.init()
    for i in range(n):
        state = agent.update(state, X[i], A[i], y[i])
    x = jnp.array([0.3, -1.0, 0.5])
    exact = split(prior, joint_posterior(prior, Gaussian(1.0).statistics(X, A, y, K)), K)["theta_mean"] @ x
    np.testing.assert_allclose(bai.dts_mean_scores(prior)(state, x), exact, rtol=1e-8, atol=1e-10)


def test_bad_inputs_raise():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2,))
    env = bai.fixed_context_environment(prior, 3, jnp.ones(2))
    agent = ag.dts(prior, Gaussian(1.0), 3)
    with pytest.raises(ValueError, match="budgets"):
        bai.identification_error(jax.random.PRNGKey(0), env, agent, bai.dts_mean_scores(prior), [5, 5])
    with pytest.raises(ValueError, match="beta"):
        bai.top_two_action(jax.random.PRNGKey(0), agent, agent.init(), jnp.ones(2), beta=1.5)
    with pytest.raises(ValueError, match="context"):
        bai.fixed_context_environment(prior, 3, jnp.ones(3))
