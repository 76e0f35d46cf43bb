"""``Agent.score``: the scores ``act`` takes the argmax of, from the same function and key.

For every agent that has it, ``agent.score(key, state, x)`` equals ``agent.act(key, state, x)``'s
``info.scores`` bit for bit (eagerly and under ``jit``), its argmax is ``act``'s action, and it
runs under ``jit`` and ``vmap`` (over keys: the same numbers as one call per key) and inside
another jitted function. The optimistic policies' use of it is checked in test_posterior_policy.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from drift_priors import fixed_affine_prior, two_level_affine_prior

from dts_ppl import Bernoulli, Gaussian
from dts_ppl.agents import (
    Agent,
    Refit,
    bank_ts,
    dts,
    exact_ts,
    glm_ts,
    hier_ts,
    laplace_dps,
    lin_ts,
    lin_ucb,
    posterior_policy,
    random_policy,
    theta_marginal,
    ucb_glm,
)
from dts_ppl.agents.detector import detect_changes
from dts_ppl.agents.tracker import adaptive_tracking_ts, tracking_ts
from dts_ppl.experiments.synthetic import random_mlp_prior

K, D, N = 4, 3, 12


_prior = fixed_affine_prior


def _builders():
    prior = _prior()
    m = theta_marginal(prior)
    mlp = random_mlp_prior(jax.random.PRNGKey(4), D, 2, hidden=8)
    bank = jax.random.normal(jax.random.PRNGKey(3), (128, D))
    drift = two_level_affine_prior(5, D)
    rates = ([0.0, 0.05], [1.0, 0.95], [0.0, 0.0])
    return {
        "dts": lambda: dts(prior, Gaussian(1.0), K),
        "dts_shared": lambda: dts(prior, Gaussian(1.0), K, shared=True),
        "dts_full_chain": lambda: dts(prior, Gaussian(1.0), K, collapse=False),
        "dts_mlp": lambda: dts(mlp, Gaussian(1.0), K),
        "dts_bernoulli": lambda: dts(prior, Bernoulli(), K, history=32),
        "dts_refit": lambda: dts(prior, Gaussian(1.0), K, refit=Refit(every=5)),
        "hier_ts": lambda: hier_ts(prior, Gaussian(1.0), K),
        "lin_ts": lambda: lin_ts(m, Gaussian(1.0), K),
        "lin_ts_shared": lambda: lin_ts(m, Gaussian(1.0), K, shared=True),
        "lin_ucb": lambda: lin_ucb(m, Gaussian(1.0), K),
        "glm_ts": lambda: glm_ts(m, Bernoulli(), K, history=32),
        "ucb_glm": lambda: ucb_glm(m, Bernoulli(), K, history=32),
        "exact_ts": lambda: exact_ts(prior, Gaussian(1.0), K),
        "bank_ts": lambda: bank_ts(bank, Gaussian(1.0), K, warn_ess=0.0),
        "laplace_dps": lambda: laplace_dps(prior, Gaussian(1.0), K),
        "random": lambda: random_policy(K),
        "tracking_ts": lambda: tracking_ts(drift, 0.7, K, 0.05, 0.95),
        "adaptive_tracking_ts": lambda: adaptive_tracking_ts(drift, 0.7, K, *rates),
        "detect_changes": lambda: detect_changes(dts(drift, Gaussian(0.7), K), drift, 1e-3, 3.0, 0.49),
        "dts_optimistic_ts": lambda: posterior_policy("dts", prior, Gaussian(1.0), K, policy="optimistic_ts"),
        "lin_ts_optimistic_ts": lambda: posterior_policy("lin_ts", m, Gaussian(1.0), K, policy="optimistic_ts"),
        "hier_ts_bayes_ucb": lambda: posterior_policy("hier_ts", prior, Gaussian(1.0), K, policy="bayes_ucb"),
        "dts_mlp_ucb": lambda: posterior_policy("dts", mlp, Gaussian(1.0), K, policy="ucb", num_draws=8),
    }


# every agent in the slow run; in the default run one per score family (the dTS chain draw per
# action and shared, LinTS per action and shared, UCB, exact, bank, random, the tracker, the
# optimistic policy on dTS and on LinTS)
FAST = (
    "dts",
    "dts_shared",
    "lin_ts",
    "lin_ts_shared",
    "lin_ucb",
    "exact_ts",
    "bank_ts",
    "random",
    "tracking_ts",
    "dts_optimistic_ts",
    "lin_ts_optimistic_ts",
)
AGENTS = [a if a in FAST else pytest.param(a, marks=pytest.mark.slow) for a in _builders()]
SHARED = ("dts_shared", "lin_ts_shared", "laplace_dps")
BINARY = ("dts_bernoulli", "glm_ts", "ucb_glm")


def _state(name, agent):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(1), 3)
    X = jax.random.uniform(kx, (N, K, D) if name in SHARED else (N, D), minval=-1, maxval=1)
    A = jax.random.randint(ka, (N,), 0, K)
    y = jax.random.bernoulli(ky, 0.5, (N,)).astype(X.dtype) if name in BINARY else jax.random.normal(ky, (N,))
    state = agent.init()
    if agent.update_batch is not None:
        return agent.update_batch(state, X, A, y)
    for t in range(N):
        state = agent.update(state, X[t], A[t], y[t])
    return state


def _context(name):
    x = jnp.array([0.5, -0.4, 0.8])
    return jnp.stack([x, -x, 0.5 * x, x[::-1]]) if name in SHARED else x


@pytest.mark.parametrize("name", AGENTS)
def test_score_is_the_scores_act_argmaxes_bit_for_bit(name):
    agent = _builders()[name]()
    assert callable(agent.score)
    state, x = _state(name, agent), _context(name)
    for seed in range(3):
        key = jax.random.PRNGKey(seed)
        action, info = agent.act(key, state, x)
        scores = np.asarray(agent.score(key, state, x))
        assert scores.shape == (K,) and np.all(np.isfinite(scores))
        np.testing.assert_array_equal(scores, np.asarray(info.scores))  # bit for bit
        assert int(action) == int(np.argmax(scores))
    if agent.spec.deterministic:  # UCB: the key is not used
        np.testing.assert_array_equal(agent.score(jax.random.PRNGKey(7), state, x), scores)
    else:  # a Thompson draw: another key, other scores
        assert not np.array_equal(np.asarray(agent.score(jax.random.PRNGKey(7), state, x)), scores)


# dts and lin_ts in the default run (the two draws' families); the others in the slow run
SLOW_JITTED = ("dts_shared", "dts_mlp", "dts_optimistic_ts")
JITTED = ["dts", "lin_ts"] + [pytest.param(a, marks=pytest.mark.slow) for a in SLOW_JITTED]


@pytest.mark.parametrize("name", JITTED)
def test_score_is_jittable_vmaps_over_keys_and_runs_inside_another_jitted_function(name):
    agent = _builders()[name]()
    state, x = _state(name, agent), _context(name)
    key = jax.random.PRNGKey(0)  # under jit too, bit for bit
    np.testing.assert_array_equal(jax.jit(agent.score)(key, state, x), jax.jit(agent.act)(key, state, x)[1].scores)
    keys = jax.random.split(jax.random.PRNGKey(5), 6)
    batched = np.asarray(jax.vmap(agent.score, in_axes=(0, None, None))(keys, state, x))
    looped = np.stack([np.asarray(agent.act(k, state, x)[1].scores) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-12)

    @jax.jit
    def best_of_two(key, state, x):  # the use ``act`` cannot serve: scores inside other traced code
        k1, k2 = jax.random.split(key)
        return jnp.maximum(agent.score(k1, state, x), agent.score(k2, state, x))

    k1, k2 = jax.random.split(keys[0])
    want = np.maximum(agent.act(k1, state, x)[1].scores, agent.act(k2, state, x)[1].scores)
    np.testing.assert_allclose(best_of_two(keys[0], state, x), want, rtol=1e-12, atol=1e-12)


def test_score_checks_the_key_and_the_state():
    agent = dts(_prior(), Gaussian(1.0), K)
    state, x = agent.init(), _context("dts")
    with pytest.raises(ValueError, match="key"):
        agent.score(jnp.zeros(3, jnp.uint32), state, x)
    other = dts(_prior(), Gaussian(1.0), K + 1).init()
    with pytest.raises(ValueError, match="state"):
        agent.score(jax.random.PRNGKey(0), other, x)


def test_agent_positional_fields_are_unchanged_and_score_defaults_to_none():
    def f(*args):
        return None

    agent = Agent(f, f, f, None, None, None)
    assert agent.score is None and agent[:6] == (f, f, f, None, None, None)
    assert Agent._fields[-1] == "score" and Agent._fields[:6] == (
        "init",
        "act",
        "update",
        "update_batch",
        "spec",
        "forget_groups",
    )
