"""Thompson sampling on the two-rate tracker (agents.tracker): the joint Gaussian without drift, the guard; float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from drift_priors import two_level_affine_prior

from dts_ppl import Gaussian
from dts_ppl.agents.tracker import tracking_ts
from dts_ppl.bandits.envs import diffusion_environment, drift_process
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core import inference as core
from dts_ppl.core import oracle, tracker

K, D, SIGMA = 4, 3, 0.7


def _prior():
    return two_level_affine_prior(5, D)


def _feed(agent, state, X, A, y):
    def step(s, row):
        return agent.update(s, *row), None

    return jax.jit(lambda s, data: jax.lax.scan(step, s, data)[0])(state, (X, A, y))


def test_without_drift_it_is_the_joint_gaussian():
    """q = 0, gamma = 1: every action's posterior is the joint-Gaussian oracle's (dTS's exact posterior)."""
    prior = _prior()
    agent = tracking_ts(prior, SIGMA, K, 0.0, 1.0)
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(0), 3)
    X = jax.random.uniform(kx, (30, D), minval=-1, maxval=1)
    A = jax.random.randint(ka, (30,), 0, K)
    y = jax.random.normal(ky, (30,))
    state = _feed(agent, agent.init(), X, A, y)
    G = jnp.zeros((K, D, D)).at[A].add(jnp.einsum("ni,nj->nij", X, X) / SIGMA**2)
    b = jnp.zeros((K, D)).at[A].add(X * y[:, None] / SIGMA**2)
    parts = oracle.split(prior, oracle.joint_posterior(prior, core.ActionStats(G, b)), K)
    mean, cov = tracker.tracker_theta(state.post)
    cov = np.asarray(cov).reshape(K, D, K, D)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(parts["theta_mean"]), atol=1e-10)
    for a in range(K):
        np.testing.assert_allclose(cov[a, :, a], np.asarray(parts["theta_cov"][a]), atol=1e-10)
    assert int(state.rejected) == 0


def test_guard_rejects_bad_rounds():
    agent = tracking_ts(_prior(), SIGMA, K, 0.01, 0.99)
    state = agent.init()
    x = jnp.asarray([0.1, 0.2, -0.3])
    for action, reward, xx in (
        (-1, 0.5, x),
        (K, 0.5, x),
        (1, jnp.nan, x),
        (1, 0.5, x.at[0].set(jnp.inf)),
        (1, 1e200, x),
    ):
        new = jax.jit(agent.update)(state, xx, action, reward)
        assert int(new.rejected) == 1
        for n, o in zip(jax.tree.leaves(new.post), jax.tree.leaves(state.post), strict=True):
            np.testing.assert_array_equal(np.asarray(n), np.asarray(o))
    action, info = agent.act(jax.random.PRNGKey(0), state, x.at[1].set(jnp.nan))
    assert int(action) == -1 and not bool(info.valid)


def test_runs_in_a_drifting_simulation():
    """A jitted run on a walk with traced rates: finite regret, no rejected round."""
    prior = _prior()
    env = drift_process(diffusion_environment(prior, K, Gaussian(SIGMA)), 0.1, 0)

    def run(q, g):
        state, regret, _ = run_rounds(jax.random.PRNGKey(1), env, tracking_ts(prior, SIGMA, K, q, g), 200)
        return regret, state.rejected

    regret, rejected = jax.jit(run)(jnp.asarray(0.01), jnp.asarray(0.99))
    assert np.all(np.isfinite(np.asarray(regret))) and int(rejected) == 0


def test_bad_input():
    with pytest.raises(ValueError, match="noise_sd"):
        tracking_ts(_prior(), 0.0, K, 0.0, 1.0)
    with pytest.raises(ValueError, match="num_actions"):
        tracking_ts(_prior(), SIGMA, 0, 0.0, 1.0)
    with pytest.raises(ValueError, match="own_discount"):
        tracking_ts(_prior(), SIGMA, K, 0.0, 1.2)
