"""Bad input to agents and the simulator raises ValueError naming the argument."""

import jax
import jax.numpy as jnp
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian, simulate
from dts_ppl.agents import dts, exact_ts, glm_ts, lin_ts, theta_marginal
from dts_ppl.bandits.envs import diffusion_environment


@pytest.fixture(scope="module")
def prior():
    return DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])


@pytest.fixture(scope="module")
def agent(prior):
    return dts(prior, Gaussian(1.0), 3)


@pytest.mark.parametrize(
    "x, message",
    [
        (jnp.ones(3), "x: expected a context"),
        (jnp.ones((3, 2)), "x: expected"),
        (jnp.array([0.1, jnp.nan]), "x: contains NaN"),
    ],
)
def test_act_rejects_bad_contexts(agent, key, x, message):
    with pytest.raises(ValueError, match=message):
        agent.act(key, agent.init(), x)


@pytest.mark.parametrize(
    "action, reward, message",
    [
        (3, 1.0, r"action: expected an integer in \[0, 3\)"),
        (-1, 1.0, "action"),
        (jnp.array([0, 1]), 1.0, "action: expected a scalar"),
        (1.5, 1.0, "action"),
        (0, jnp.nan, "reward: contains NaN"),
        (0, jnp.inf, "reward: contains NaN or inf"),
    ],
)
def test_update_rejects_bad_input(agent, action, reward, message):
    with pytest.raises(ValueError, match=message):
        agent.update(agent.init(), jnp.ones(2) / 2, action, reward)


def test_update_rejects_wrong_context_and_labels(prior, agent):
    with pytest.raises(ValueError, match="x: expected"):
        agent.update(agent.init(), jnp.ones(5), 0, 1.0)
    logistic = glm_ts(theta_marginal(prior), Bernoulli(), 3, history=10)
    with pytest.raises(ValueError, match="reward: Bernoulli rewards must be 0 or 1"):
        logistic.update(logistic.init(), jnp.ones(2) / 2, 0, 0.5)


def test_shared_agent_wants_action_features(prior):
    shared = dts(prior, Gaussian(1.0), 4, shared=True)
    with pytest.raises(ValueError, match=r"x: expected action features \(K, d\) of shape \(4, 2\)"):
        shared.act(jax.random.PRNGKey(0), shared.init(), jnp.ones(2))


def test_factories_reject_bad_configuration(prior):
    with pytest.raises(ValueError, match="num_actions"):
        dts(prior, Gaussian(1.0), 0)
    with pytest.raises(ValueError, match="linearisation"):
        dts(prior, Gaussian(1.0), 3, linearisation="newton")
    with pytest.raises(ValueError, match="history"):
        dts(prior, Bernoulli(), 3, history=0)
    with pytest.raises(ValueError, match="theta_prior"):
        lin_ts(prior, Gaussian(1.0), 3)
    with pytest.raises(ValueError, match="likelihood: exact_ts needs Gaussian"):
        exact_ts(prior, Bernoulli(), 3)


def test_simulate_rejects_bad_arguments(prior, agent, key):
    env = diffusion_environment(prior, 3)
    for rounds in (0, -5, 2.5):
        with pytest.raises(ValueError, match="num_rounds: expected a positive integer"):
            simulate(key, env, agent, rounds, 2)
    with pytest.raises(ValueError, match="num_runs"):
        simulate(key, env, agent, 10, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        simulate(key, env, agent, 10, 2, chunk_size=0)
    with pytest.raises(ValueError, match="env: expected"):
        simulate(key, prior, agent, 10, 2)
    with pytest.raises(ValueError, match="agent: expected"):
        simulate(key, env, lambda: None, 10, 2)
