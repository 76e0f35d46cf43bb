"""Top-k and masks, and propensities (they sum to 1 and match act's action frequencies)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.agents import act_top_k, dts, lin_ts, lin_ucb, policy, propensities, theta_marginal

K, D = 5, 2


@pytest.fixture
def setup():
    prior = DiffusionPrior.linear([jnp.eye(D)], [0.5, 1.0])
    agent = dts(prior, Gaussian(1.0), K)
    X = jax.random.normal(jax.random.PRNGKey(1), (20, D))
    A = jnp.arange(20) % K
    y = X[:, 0] * (A - 2.0) / 2
    return prior, agent, agent.update_batch(agent.init(), X, A, y)


def test_top_k_is_the_order_of_one_draw(setup):
    _, agent, state = setup
    x = jnp.array([0.3, -1.0])
    key = jax.random.PRNGKey(2)
    _, info = agent.act(key, state, x)
    idx, top = act_top_k(agent, key, state, x, 3)
    np.testing.assert_array_equal(idx, np.argsort(-np.asarray(info.scores))[:3])
    np.testing.assert_array_equal(top, np.asarray(info.scores)[np.asarray(idx)])
    assert int(idx[0]) == int(agent.act(key, state, x)[0])


def test_masked_actions_are_never_chosen(setup):
    _, agent, state = setup
    x = jnp.array([1.0, 0.5])
    mask = jnp.array([False, True, False, True, True])
    for i in range(30):
        key = jax.random.PRNGKey(i)
        a, info = policy.act(agent, key, state, x, mask)
        assert bool(mask[a])
        assert np.all(np.isneginf(np.asarray(info.scores)[~np.asarray(mask)]))
        idx, _ = act_top_k(agent, key, state, x, 3, mask)
        assert set(np.asarray(idx).tolist()) == {1, 3, 4}
    p = propensities(agent, jax.random.PRNGKey(0), state, x, 200, mask)
    assert np.all(np.asarray(p.probs)[~np.asarray(mask)] == 0)


def test_mask_and_k_errors(setup):
    _, agent, state = setup
    x = jnp.zeros(D)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="mask: every action is masked out"):
        policy.act(agent, key, state, x, jnp.zeros(K, bool))
    with pytest.raises(ValueError, match="mask: every action is masked out"):
        propensities(agent, key, state, x, 10, jnp.zeros(K, bool))
    with pytest.raises(ValueError, match=r"mask: expected a boolean mask of shape \(5,\)"):
        policy.act(agent, key, state, x, jnp.ones(K - 1, bool))
    with pytest.raises(ValueError, match="mask: expected dtype bool"):
        policy.act(agent, key, state, x, jnp.ones(K))
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 5\]"):
        act_top_k(agent, key, state, x, 0)
    with pytest.raises(ValueError, match="k: asked for 3 actions but only 2"):
        act_top_k(agent, key, state, x, 3, jnp.array([True, True, False, False, False]))


def test_propensities_match_act_frequencies(setup):
    """p_hat from one set of keys vs the frequencies of n separate act calls: |diff| < 4 se."""
    prior, agent, state = setup
    x = jnp.array([0.8, -0.4])
    p = propensities(agent, jax.random.PRNGKey(10), state, x, 4000)
    np.testing.assert_allclose(float(p.probs.sum()), 1.0, atol=1e-12)
    n = 2000
    act = jax.jit(lambda k: agent.act(k, state, x)[0])
    actions = np.array([int(act(k)) for k in jax.random.split(jax.random.PRNGKey(11), n)])
    freq = np.bincount(actions, minlength=K) / n
    se = np.sqrt(np.asarray(p.se) ** 2 + freq * (1 - freq) / n)
    assert np.all(np.abs(freq - np.asarray(p.probs)) <= 4 * se + 1e-12), (freq, p.probs)
    assert np.asarray(p.probs).max() < 0.99  # a genuinely random policy here


def test_propensities_lin_ts_and_exact_for_ucb(setup):
    prior, _, _ = setup
    marg = theta_marginal(prior)
    ts = lin_ts(marg, Gaussian(1.0), K)
    p = propensities(ts, jax.random.PRNGKey(0), ts.init(), jnp.ones(D), 500)
    np.testing.assert_allclose(float(p.probs.sum()), 1.0, atol=1e-12)
    ucb = lin_ucb(marg, Gaussian(1.0), K)
    s = ucb.init()  # all actions share the prior: K-way tie, split equally
    p = propensities(ucb, jax.random.PRNGKey(0), s, jnp.ones(D))
    np.testing.assert_allclose(p.probs, np.full(K, 1 / K))
    np.testing.assert_array_equal(p.se, np.zeros(K))
    s = ucb.update_batch(s, jnp.ones((3, D)), jnp.array([2, 2, 2]), jnp.array([5.0, 5.0, 5.0]))
    p = propensities(ucb, jax.random.PRNGKey(0), s, jnp.ones(D), mask=jnp.array([True, True, True, False, True]))
    a = int(ucb.act(jax.random.PRNGKey(0), s, jnp.ones(D))[0])
    np.testing.assert_array_equal(p.probs, np.eye(K)[a])
