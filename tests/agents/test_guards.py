"""Guards inside jit: bad rounds leave the state unchanged and are counted; act flags bad contexts;
tiny reward noise keeps dTS finite in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian
from dts_ppl.agents import dts, exact_ts, glm_ts, hier_ts, lin_ts, lin_ucb, theta_marginal, ucb_glm
from dts_ppl.experiments.synthetic import random_linear_prior


def _prior():
    return DiffusionPrior.linear(
        [jnp.array([[1.0, 0.5], [0.2, -0.7], [0.3, 0.1]]), jnp.array([[0.8, 0.1], [-0.2, 0.9]])],
        [0.5, 1.0, 1.0],
    )


K = 4


def _agents(prior):
    m = theta_marginal(prior)
    return {
        "dts": dts(prior, Gaussian(1.0), K),
        "hier_ts": hier_ts(prior, Gaussian(1.0), K),
        "lin_ts": lin_ts(m, Gaussian(1.0), K),
        "lin_ucb": lin_ucb(m, Gaussian(1.0), K),
        "exact_ts": exact_ts(prior, Gaussian(1.0), K),
        "glm_ts": glm_ts(m, Bernoulli(), K, history=64),
        "ucb_glm": ucb_glm(m, Bernoulli(), K, history=64),
    }


def _data(n, d, binary):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(1), 3)
    X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.bernoulli(ky, 0.5, (n,)).astype(X.dtype) if binary else jax.random.normal(ky, (n,)) + X[:, 0]
    return X, A, y


def _feed(agent, X, A, y):
    def step(state, row):
        return agent.update(state, *row), None

    return jax.jit(lambda data: jax.lax.scan(step, agent.init(), data)[0])((X, A, y))


BAD = ("nan_reward", "nan_context", "action_K", "action_-1", "inf_reward")


def _with_bad_rounds(X, A, y, positions):
    """The clean data with the 5 bad rounds of BAD spliced in at ``positions`` (of the result)."""
    X, A, y = np.array(X), np.array(A), np.array(y)
    for pos, what in zip(positions, BAD, strict=True):
        x, a, r = X[0].copy(), A[0], y[0]
        if what == "nan_reward":
            r = np.nan
        elif what == "nan_context":
            x[1] = np.nan
        elif what == "action_K":
            a = K
        elif what == "action_-1":
            a = -1
        else:
            r = np.inf
        X, A, y = np.insert(X, pos, x, 0), np.insert(A, pos, a), np.insert(y, pos, r)
    return jnp.asarray(X), jnp.asarray(A), jnp.asarray(y)


def _assert_same_state(a, b):
    a, b = a._replace(rejected=0), b._replace(rejected=0)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_dts_1000_round_scan_with_5_bad_rounds_equals_clean_scan():
    prior = _prior()
    agent = dts(prior, Gaussian(1.0), K)
    clean = _data(995, prior.dim, False)
    dirty = _with_bad_rounds(*clean, positions=(100, 300, 500, 700, 900))
    assert dirty[0].shape[0] == 1000
    s_clean, s_dirty = _feed(agent, *clean), _feed(agent, *dirty)
    assert int(s_dirty.rejected) == 5 and int(s_clean.rejected) == 0
    assert int(s_dirty.step) == int(s_clean.step) == 995
    _assert_same_state(s_dirty, s_clean)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(s_dirty))


@pytest.mark.parametrize("name", ["hier_ts", "lin_ts", "lin_ucb", "exact_ts", "glm_ts", "ucb_glm"])
def test_every_agent_rejects_bad_rounds_inside_jit(name):
    prior = _prior()
    agent = _agents(prior)[name]
    clean = _data(195, prior.dim, name in ("glm_ts", "ucb_glm"))
    dirty = _with_bad_rounds(*clean, positions=(20, 60, 100, 140, 180))
    s_dirty = _feed(agent, *dirty)
    assert int(s_dirty.rejected) == 5 and int(s_dirty.step) == 195
    _assert_same_state(s_dirty, _feed(agent, *clean))


@pytest.mark.parametrize("name", ["dts", "hier_ts", "lin_ts", "lin_ucb", "exact_ts", "glm_ts", "ucb_glm"])
def test_act_flags_nonfinite_context(name, key):
    prior = _prior()
    agent = _agents(prior)[name]
    state = agent.init()
    x = jnp.array([0.1, jnp.nan, 0.3])
    with pytest.raises(ValueError, match="x: contains NaN"):
        agent.act(key, state, x)
    action, info = jax.jit(agent.act)(key, state, x)
    assert int(action) == -1 and not bool(info.valid)
    action, info = jax.jit(agent.act)(key, state, jnp.array([0.1, 0.2, 0.3]))
    assert 0 <= int(action) < K and bool(info.valid)
    # the flagged round fed back into update is rejected, not applied to action K - 1
    new = jax.jit(agent.update)(state, x, action, 1.0)
    assert int(new.rejected) == 1 and int(new.step) == 0


def test_state_of_another_agent_is_rejected(key):
    prior = _prior()
    small, big = dts(prior, Gaussian(1.0), 3), dts(prior, Gaussian(1.0), 7)
    with pytest.raises(ValueError, match="state: leaf"):
        small.update(big.init(), jnp.ones(3) / 2, 0, 1.0)
    with pytest.raises(ValueError, match="state: leaf"):
        small.act(key, big.init(), jnp.ones(3) / 2)
    ex3, ex7 = exact_ts(prior, None, 3), exact_ts(prior, None, 7)
    with pytest.raises(ValueError, match="state"):
        ex3.update(ex7.init(), jnp.ones(3) / 2, 0, 1.0)
    with pytest.raises(ValueError, match="state: expected a DTSState"):
        small.update(ex3.init(), jnp.ones(3) / 2, 0, 1.0)


def test_bad_keys_and_scalars_are_named(key):
    agent = dts(_prior(), Gaussian(1.0), 3)
    s = agent.init()
    with pytest.raises(ValueError, match="key: expected a PRNG key"):
        agent.act(0, s, jnp.ones(3))
    with pytest.raises(ValueError, match="action: expected an integer"):
        agent.update(s, jnp.ones(3), True, 1.0)
    with pytest.raises(ValueError, match="action: expected an integer"):
        agent.update(s, jnp.ones(3), 10**12, 1.0)
    agent.update(s, jnp.ones(3), 0, 10**12)  # a large integer reward is a valid real number
    with pytest.raises(ValueError, match="reward: expected a real scalar"):
        agent.update(s, jnp.ones(3), 0, "1.0")
    with pytest.raises(ValueError, match="x: expected a context"):
        agent.update(s, None, 0, 1.0)


def _tiny_noise_run(make_agent):
    """2000 jitted float32 rounds with reward noise scale 1e-6; returns (finite-score rounds, state)."""
    with jax.enable_x64(False):
        prior = random_linear_prior(jax.random.PRNGKey(0), 5, (5, 2))
        lik = Gaussian(1e-6)
        agent = make_agent(prior, lik)
        theta = jax.random.normal(jax.random.PRNGKey(3), (10, 5))

        def round_(state, k):
            k1, k2, k3 = jax.random.split(k, 3)
            x = jax.random.uniform(k1, (5,), minval=-1, maxval=1)
            a, info = agent.act(k2, state, x)
            y = lik.sample(k3, theta[a] @ x)
            return agent.update(state, x, a, y), jnp.all(jnp.isfinite(info.scores)) & info.valid

        run = jax.jit(lambda: jax.lax.scan(round_, agent.init(), jax.random.split(jax.random.PRNGKey(1), 2000)))
        state, ok = run()
        assert state.theta_cov.dtype == jnp.float32
        return int(ok.sum()), state


@pytest.mark.parametrize("name", ["dts", "hier_ts"])
def test_tiny_reward_noise_stays_finite_in_float32(name):
    make = (lambda p, lik: dts(p, lik, 10)) if name == "dts" else (lambda p, lik: hier_ts(p, lik, 10))
    finite, state = _tiny_noise_run(make)
    assert finite == 2000
    assert int(state.rejected) == 0 and int(state.step) == 2000
    for leaf in jax.tree.leaves(state):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    # the posterior covariances stay PSD and bounded by the prior's marginal scale
    eig = np.linalg.eigvalsh(np.asarray(state.theta_cov, np.float64))
    assert eig.min() > -1e-5 and eig.max() < 10.0
