"""Thompson sampling on the tracker bank (agents.tracker.adaptive_tracking_ts): members, reset, guard; float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compiles import count_compilations
from drift_priors import two_level_affine_prior

from dts_ppl import Gaussian
from dts_ppl.agents.tracker import adaptive_tracking_ts, tracking_ts
from dts_ppl.bandits.envs import diffusion_environment, drift_process
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core import tracker, tracker_bank

K, D, SIGMA = 4, 3, 0.7
RATES = ([0.0, 0.05, 0.05], [1.0, 0.95, 1.0], [0.0, 0.0, 0.05])


def _prior():
    return two_level_affine_prior(5, D)


def _data(rounds=25, seed=0):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(seed), 3)
    X = jax.random.uniform(kx, (rounds, D), minval=-1, maxval=1)
    A = jax.random.randint(ka, (rounds,), 0, K)
    y = jax.random.normal(ky, (rounds,))
    return X, A, y


def _feed(agent, state, X, A, y):
    def step(s, row):
        return agent.update(s, *row), None

    return jax.jit(lambda s, data: jax.lax.scan(step, s, data)[0])(state, (X, A, y))


def test_members_are_the_single_trackers():
    """Each tracker of the bank holds tracking_ts's law of theta with its rates, fed the same rounds.

    (theta's law, not the fields: C has rank 2 < d here, and A_a is fixed only on the range of Sigma.)
    """
    prior = _prior()
    agent = adaptive_tracking_ts(prior, SIGMA, K, *RATES)
    X, A, y = _data()
    state = _feed(agent, agent.init(), X, A, y)
    for i, (q, g, r) in enumerate(zip(*RATES, strict=True)):
        single = tracking_ts(prior, SIGMA, K, q, g, r)
        ref = _feed(single, single.init(), X, A, y)
        member = jax.tree.map(lambda leaf, i=i: leaf[i], state.bank.post)
        for got, want in zip(tracker.tracker_theta(member), tracker.tracker_theta(ref.post), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-10)
    assert int(state.rejected) == 0 and int(state.alarms) == 0
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(state.bank.log_weights))), 1.0, atol=1e-12)


def test_update_compiles_once():
    agent = adaptive_tracking_ts(_prior(), SIGMA, K, *RATES, false_alarm_rate=1e-4, ratio=3.0)
    update = jax.jit(agent.update)
    X, A, y = _data(5)
    state = agent.init()
    state = update(state, X[0], A[0], y[0])

    def rest():
        s = state
        for t in range(1, 5):
            s = update(s, X[t], A[t], y[t])
        jax.block_until_ready(s)

    assert count_compilations(rest) == 0


def test_alarm_resets_the_bank_then_learns_the_round():
    """A reward far outside the predictive fires the CUSUM: the bank is its initial state plus that round."""
    prior = _prior()
    agent = adaptive_tracking_ts(prior, SIGMA, K, *RATES, false_alarm_rate=1e-6, ratio=3.0)
    X, A, y = _data(20)
    state = _feed(agent, agent.init(), X, A, y)
    assert int(state.alarms) == 0  # rewards of sd 1 beside predictive sd > 0.7: no alarm at alpha = 1e-6
    x, a, big = X[0], A[0], jnp.asarray(60.0)
    new = jax.jit(agent.update)(state, x, a, big)
    assert int(new.alarms) == 1 and float(new.stat) == 0.0
    models = tracker_bank.bank_model(prior, SIGMA**2, *RATES)
    ref = tracker_bank.bank_observe(models, tracker_bank.bank_init(models, K), x, a, big)
    for leaf, ref_leaf in zip(jax.tree.leaves(new.bank), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(leaf), np.asarray(ref_leaf), atol=1e-12)
    without = adaptive_tracking_ts(prior, SIGMA, K, *RATES)
    kept = jax.jit(without.update)(_feed(without, without.init(), X, A, y), x, a, big)
    assert int(kept.alarms) == 0 and float(kept.bank.log_weights[0]) != float(ref.log_weights[0])


def test_guard_rejects_bad_rounds():
    agent = adaptive_tracking_ts(_prior(), SIGMA, K, *RATES, false_alarm_rate=1e-4, ratio=3.0)
    state = agent.init()
    x = jnp.asarray([0.1, 0.2, -0.3])
    for action, reward, xx in ((-1, 0.5, x), (K, 0.5, x), (1, jnp.nan, x), (1, 0.5, x.at[0].set(jnp.inf))):
        new = jax.jit(agent.update)(state, xx, action, reward)
        assert int(new.rejected) == 1 and int(new.alarms) == 0
        for n, o in zip(jax.tree.leaves(new.bank), jax.tree.leaves(state.bank), strict=True):
            np.testing.assert_array_equal(np.asarray(n), np.asarray(o))
    action, info = agent.act(jax.random.PRNGKey(0), state, x.at[1].set(jnp.nan))
    assert int(action) == -1 and not bool(info.valid)


def test_runs_in_a_drifting_simulation():
    prior = _prior()
    env = drift_process(diffusion_environment(prior, K, Gaussian(SIGMA)), 0.1, 0)
    q, g, r, play = tracker_bank.drift_grid([float("inf"), 50.0, 200.0], walk_below=100.0)
    agent = adaptive_tracking_ts(prior, SIGMA, K, q, g, r, play)
    state, regret, _ = jax.jit(lambda k: run_rounds(k, env, agent, 150))(jax.random.PRNGKey(1))
    assert np.all(np.isfinite(np.asarray(regret))) and int(state.rejected) == 0


def test_bad_input():
    prior = _prior()
    with pytest.raises(ValueError, match="noise_sd"):
        adaptive_tracking_ts(prior, 0.0, K, *RATES)
    with pytest.raises(ValueError, match="play"):
        adaptive_tracking_ts(prior, SIGMA, K, *RATES, play=[0, 1, 3])
    with pytest.raises(ValueError, match="false_alarm_rate, ratio"):
        adaptive_tracking_ts(prior, SIGMA, K, *RATES, false_alarm_rate=1e-3)
    with pytest.raises(ValueError, match="shared_steps"):
        adaptive_tracking_ts(prior, SIGMA, K, [0.0], [1.0, 1.0], [0.0])
