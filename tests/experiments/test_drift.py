"""Drifting environments (random_walk, abrupt_changes) and their simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Gaussian, simulate
from dts_ppl.agents import Agent
from dts_ppl.bandits.envs import abrupt_changes, diffusion_environment, drift_process, mean_rewards, random_walk
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.experiments.synthetic import random_linear_prior

K = 4


def _env():
    prior = random_linear_prior(jax.random.PRNGKey(3), 2, (2, 1))
    return diffusion_environment(prior, K, Gaussian(1.0), name="tiny")


def _always(action):
    return Agent(lambda: jnp.zeros(()), lambda k, s, x: (jnp.asarray(action, jnp.int32), None), lambda s, x, a, y: s)


def _path(env, key, n):
    """theta of every round, as run_regret builds it (independent loop over the drift)."""
    theta = env.sample_theta(jax.random.split(key, 4)[0])
    keys = jax.random.split(jax.random.fold_in(key, 1), n)
    out = []
    for t in range(n):
        theta = env.drift(keys[t], theta, t)
        out.append(theta)
    return jnp.stack(out)


def test_abrupt_changes_redraw_theta_exactly_at_the_given_rounds(key):
    env = abrupt_changes(_env(), [3, 7])
    path = np.asarray(_path(env, key, 10))
    for t in range(1, 10):
        changed = not np.array_equal(path[t], path[t - 1])
        assert changed == (t in (3, 7)), t
    # the regret of each round is measured against that round's theta
    regret = np.asarray(jax.jit(lambda k: run_regret(k, env, _always(0), 10))(key))
    xs = jax.vmap(env.sample_context)(jax.random.split(jax.random.split(key, 4)[1], 10))
    expected = [
        float(jnp.max(mean_rewards(env, path[t], xs[t])) - mean_rewards(env, path[t], xs[t])[0]) for t in range(10)
    ]
    np.testing.assert_allclose(regret, expected, rtol=1e-10)


def test_random_walk_steps_have_the_priors_covariance_times_scale_squared(key):
    """Monte-Carlo: the steps are mean 0 with covariance scale^2 Cov(theta) (tolerance from the s.e.)."""
    base, scale, n = _env(), 0.3, 4000
    env = random_walk(base, scale)
    thetas = jnp.zeros((K, 2))
    steps = jax.vmap(lambda k: env.drift(k, thetas, 0))(jax.random.split(key, n)).reshape(n, -1)
    draws = jax.vmap(base.sample_theta)(jax.random.split(jax.random.PRNGKey(7), 20000)).reshape(20000, -1)
    var_steps, var_theta = np.var(np.asarray(steps), axis=0), np.var(np.asarray(draws), axis=0)
    ratio = var_steps / (scale**2 * var_theta)
    assert np.all(np.abs(ratio - 1.0) < 5 * np.sqrt(2.0 / n) + 0.05), ratio
    se_mean = np.sqrt(var_steps / n)
    assert np.all(np.abs(np.asarray(steps).mean(0)) < 5 * se_mean)


def test_a_drift_that_changes_nothing_is_the_stationary_run_and_simulate_runs_drift(key):
    base = _env()
    still = base._replace(drift=lambda k, theta, t: theta)
    a, b = run_regret(key, base, _always(1), 20), run_regret(key, still, _always(1), 20)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    res = simulate(key, abrupt_changes(base, [5, 10]), _always(0), 20, 3, progress=False)
    assert res.cumulative.shape == (3, 20) and np.all(np.isfinite(res.cumulative))
    res = simulate(key, random_walk(base, 0.1), _always(0), 20, 3, progress=False)
    assert np.all(np.diff(res.cumulative, axis=1) >= 0)


def test_bad_drift_arguments():
    base = _env()
    for bad in ([0, 3], [3, 3], [], "3", [2.5], [True]):
        with pytest.raises(ValueError, match="rounds"):
            abrupt_changes(base, bad)
    for bad in (0.0, -1.0, float("nan"), None):
        with pytest.raises(ValueError, match="scale"):
            random_walk(base, bad)
    with pytest.raises(ValueError, match="env"):
        random_walk("env", 0.1)


def test_drift_process_has_the_paths_of_random_walk_and_abrupt_changes_and_vmaps_over_sizes(key):
    base = _env()
    walk = np.asarray(_path(random_walk(base, 0.2), key, 12))
    np.testing.assert_array_equal(np.asarray(_path(drift_process(base, 0.2, 0), key, 12)), walk)
    jumps = np.asarray(_path(abrupt_changes(base, [4, 8]), key, 12))
    np.testing.assert_array_equal(np.asarray(_path(drift_process(base, 0.0, 4), key, 12)), jumps)
    # traced sizes: one vmapped run per (scale, every) equals the run with those numbers
    sizes = (jnp.asarray([0.2, 0.0, 0.0]), jnp.asarray([0, 4, 0]))
    runs = jax.jit(jax.vmap(lambda s, e: run_regret(key, drift_process(base, s, e), _always(0), 12)))(*sizes)
    for i, (s, e) in enumerate(((0.2, 0), (0.0, 4), (0.0, 0))):
        ref = run_regret(key, drift_process(base, s, e), _always(0), 12)
        np.testing.assert_allclose(np.asarray(runs[i]), np.asarray(ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(runs[2]), np.asarray(run_regret(key, base, _always(0), 12)))
    for bad in (-0.1, float("nan"), jnp.ones(2)):
        with pytest.raises(ValueError, match="walk_scale"):
            drift_process(base, bad, 0)
    with pytest.raises(ValueError, match="change_every"):
        drift_process(base, 0.1, -3)
