"""The one safe-update protocol (dts_ppl.agents.guard), for every agent factory, in float32.

A rejected round writes nothing: a jitted 1000-round scan with 15 bad rounds (5 rewards of 1e38,
5 NaN, 5 inf) equals the scan without them, with ``rejected == 15``; the same through
``update_batch``. Rows that overflow only together reject their whole batch. Rewards outside the
likelihood's support and beyond ``reward_bound`` are rejected and counted. Eager loops compile once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compiles import count_compilations

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian, Poisson
from dts_ppl.agents import (
    bank_ts,
    dts,
    exact_ts,
    glm_ts,
    hier_ts,
    lin_ts,
    lin_ucb,
    random_policy,
    theta_marginal,
    ucb_glm,
)
from dts_ppl.agents.guard import largest_reward

K, D, N = 4, 3, 1000


@pytest.fixture
def float32():
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", True)


def _prior():
    return DiffusionPrior.linear(
        [jnp.array([[1.0, 0.5], [0.2, -0.7], [0.3, 0.1]]), jnp.array([[0.8, 0.1], [-0.2, 0.9]])], [0.5, 1.0, 1.0]
    )


def _agent(name):
    prior = _prior()
    m = theta_marginal(prior)
    bank = jax.random.normal(jax.random.PRNGKey(3), (256, D))
    return {
        "dts": lambda: dts(prior, Gaussian(1.0), K),
        "dts_bernoulli": lambda: dts(prior, Bernoulli(), K, history=64),
        "hier_ts": lambda: hier_ts(prior, Gaussian(1.0), K),
        "lin_ts": lambda: lin_ts(m, Gaussian(1.0), K),
        "lin_ucb": lambda: lin_ucb(m, Gaussian(1.0), K),
        "exact_ts": lambda: exact_ts(prior, Gaussian(1.0), K),
        "glm_ts": lambda: glm_ts(m, Bernoulli(), K, history=64),
        "ucb_glm": lambda: ucb_glm(m, Bernoulli(), K, history=64),
        "bank_ts": lambda: bank_ts(bank, Gaussian(1.0), K, warn_ess=0.0),
        "random": lambda: random_policy(K),
    }[name]()


AGENTS = ["dts", "dts_bernoulli", "hier_ts", "lin_ts", "lin_ucb", "exact_ts", "glm_ts", "ucb_glm", "bank_ts", "random"]
# every agent in the slow run; in the default run one per update family (conjugate dTS, GLM dTS,
# the linear baselines, exact, bank, random)
FAST = ("dts", "dts_bernoulli", "lin_ts", "exact_ts", "bank_ts", "random")
EVERY_AGENT = [a if a in FAST else pytest.param(a, marks=pytest.mark.slow) for a in AGENTS]
BINARY = ("dts_bernoulli", "glm_ts", "ucb_glm")


def _data(n, binary):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(1), 3)
    X = jax.random.uniform(kx, (n, D), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.bernoulli(ky, 0.5, (n,)).astype(X.dtype) if binary else jax.random.normal(ky, (n,)) + X[:, 0]
    return X, A, y


def _dirty(X, A, y, rng):
    """The clean rows with 15 bad rewards (5 of 1e38, 5 NaN, 5 inf) spliced in at random places."""
    X, A, y = np.array(X), np.array(A), np.array(y)
    bad = [1e38] * 5 + [np.nan] * 5 + [np.inf] * 5
    for r in bad:
        pos = int(rng.integers(0, len(y) + 1))
        X, A, y = np.insert(X, pos, X[0], 0), np.insert(A, pos, A[0]), np.insert(y, pos, r)
    return jnp.asarray(X), jnp.asarray(A), jnp.asarray(y, X.dtype)


def _scan(agent, X, A, y):
    def step(state, row):
        return agent.update(state, *row), None

    return jax.jit(lambda data: jax.lax.scan(step, agent.init(), data)[0])((X, A, y))


def _assert_same(a, b, exact=True):
    a, b = a._replace(rejected=0), b._replace(rejected=0)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if exact:
            np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_allclose(u, v, rtol=2e-4, atol=2e-5)


def _finite(state):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state))


@pytest.mark.parametrize("name", EVERY_AGENT)
def test_bad_rounds_write_nothing_in_a_jitted_scan(name, float32):
    agent = _agent(name)
    clean = _data(N - 15, name in BINARY)
    dirty = _dirty(*clean, np.random.default_rng(0))
    assert dirty[0].shape[0] == N and dirty[0].dtype == jnp.float32
    s_clean, s_dirty = _scan(agent, *clean), _scan(agent, *dirty)
    assert int(s_dirty.rejected) == 15 and int(s_clean.rejected) == 0
    assert int(s_dirty.step) == N - 15
    assert _finite(s_dirty)
    _assert_same(s_dirty, s_clean)


@pytest.mark.parametrize("name", EVERY_AGENT)
def test_bad_rows_are_dropped_from_a_batch(name, float32):
    agent = _agent(name)
    clean = _data(N - 15, name in BINARY)
    dirty = _dirty(*clean, np.random.default_rng(1))
    update_batch = jax.jit(agent.update_batch)
    s_clean, s_dirty = update_batch(agent.init(), *clean), update_batch(agent.init(), *dirty)
    assert int(s_dirty.rejected) == 15 and int(s_clean.rejected) == 0
    assert int(s_dirty.step) == N - 15
    assert _finite(s_dirty)
    _assert_same(s_dirty, s_clean, exact=False)


def test_repeated_huge_rewards_never_reach_the_evidence(float32):
    """The leak this protocol closes: x = 1, reward 1e38 on one action, over and over."""
    agent = _agent("dts")
    x = jnp.ones(D, jnp.float32)
    state = agent.init()
    step = jax.jit(agent.update)
    for _ in range(6):
        state = step(state, x, 1, 1e38)
    assert int(state.rejected) == 6 and int(state.step) == 0
    _assert_same(state, agent.init())


@pytest.mark.parametrize("name", ["dts", "lin_ts", "exact_ts", "bank_ts"])
def test_rows_that_overflow_only_together_reject_the_batch(name, float32):
    agent = _agent(name)
    x = jnp.full((4, D), 1e19, jnp.float32)  # each row's x x^T is finite (1e38), their sum is not
    A, y = jnp.zeros(4, jnp.int32), jnp.zeros(4, jnp.float32)
    if name != "bank_ts":  # bank TS keeps no sums of x x^T: its rows are independent
        state = jax.jit(agent.update_batch)(agent.init(), x, A, y)
        assert int(state.rejected) == 4 and int(state.step) == 0
        _assert_same(state, agent.init())
        with pytest.raises(ValueError, match="this batch overflows the state's precision"):
            agent.update_batch(agent.init(), x, A, y)
    else:
        assert _finite(jax.jit(agent.update_batch)(agent.init(), x, A, y))


@pytest.mark.parametrize(
    "likelihood, reward", [(Bernoulli(), 2.0), (Bernoulli(), 0.5), (Poisson(), -1.0), (Poisson(), 1.5)]
)
def test_rewards_outside_the_support_are_rejected_inside_jit(likelihood, reward):
    agent = dts(_prior(), likelihood, K, history=16)
    state = jax.jit(agent.update)(agent.init(), jnp.ones(D), 1, reward)
    assert int(state.rejected) == 1 and int(state.step) == 0
    with pytest.raises(ValueError, match="reward: .*rewards must be"):
        agent.update(agent.init(), jnp.ones(D), 1, reward)


def test_reward_bound_rejects_and_counts_eagerly_and_inside_jit():
    m = theta_marginal(_prior())
    agent = lin_ts(m, Gaussian(1.0), K, reward_bound=10.0)
    x = jnp.ones(D)
    for update in (agent.update, jax.jit(agent.update)):
        state = update(agent.init(), x, 1, 11.0)
        assert int(state.rejected) == 1 and int(state.step) == 0
        state = update(state, x, 1, -10.0)
        assert int(state.rejected) == 1 and int(state.step) == 1
    with pytest.raises(ValueError, match="reward_bound"):
        lin_ts(m, Gaussian(1.0), K, reward_bound=-1.0)


def test_largest_reward_is_the_square_root_of_the_dtype_maximum(float32):
    assert largest_reward(jnp.float32) == pytest.approx(1.8446743e19, rel=1e-6)
    state = jax.jit(_agent("lin_ts").update)(_agent("lin_ts").init(), jnp.ones(D), 0, 1e30)
    assert int(state.rejected) == 1


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("arg", ["X", "A", "y"])
@pytest.mark.parametrize("bad", ["text", None])
def test_update_batch_names_a_string_or_none_argument(name, arg, bad):
    agent = _agent(name)
    X, A, y = _data(5, name in BINARY)
    args = {"X": X, "A": A, "y": y} | {arg: bad}
    with pytest.raises(ValueError, match=f"^{arg}: "):
        agent.update_batch(agent.init(), args["X"], args["A"], args["y"])


def test_bank_ts_flags_a_nonfinite_context_and_rejects_bad_rewards_inside_jit():
    agent = _agent("bank_ts")
    state = agent.init()
    action, info = jax.jit(agent.act)(jax.random.PRNGKey(0), state, jnp.array([0.1, jnp.nan, 0.3]))
    assert int(action) == -1 and not bool(info.valid)
    for reward in (jnp.nan, jnp.inf):
        state = jax.jit(agent.update)(state, jnp.ones(D), 1, reward)
    state = jax.jit(agent.update)(state, jnp.array([jnp.nan, 0.0, 0.0]), 1, 0.5)
    assert int(state.rejected) == 3 and _finite(state)


@pytest.mark.parametrize("name", ["dts", "lin_ts", "bank_ts"])
def test_an_eager_loop_compiles_once(name):
    agent = _agent(name)
    X, A, y = _data(50, False)
    key = jax.random.PRNGKey(0)

    def loop(rounds):
        s = agent.init()
        for i in range(rounds):
            agent.act(jax.random.fold_in(key, i), s, X[i])
            s = agent.update(s, X[i], A[i], y[i])
        return s

    loop(2)  # the first rounds compile act and update, once per input shape
    assert count_compilations(lambda: loop(50)) == 0


# dts_bernoulli in the slow run: the eager paths are the same for every likelihood (dts, random here)
@pytest.mark.parametrize("name", ["dts", pytest.param("dts_bernoulli", marks=pytest.mark.slow), "random"])
def test_eager_value_errors_name_the_argument_whatever_the_input_type(name):
    """Arrays (JAX and NumPy) skip the Python value checks; their bad values still raise the named error."""
    agent = _agent(name)
    state = agent.init()
    good = jnp.asarray(np.array([0.1, 0.2, 0.3]))
    bad_x = (jnp.array([0.1, jnp.nan, 0.3]), np.array([0.1, np.inf, 0.3]))
    bad_a = (jnp.asarray(K), np.int64(-1), jnp.asarray(K, jnp.int64) if jax.config.jax_enable_x64 else jnp.asarray(-3))
    bad_r = (jnp.asarray(jnp.nan), np.float64(np.inf), np.array(np.nan))
    if name == "dts_bernoulli":
        bad_r += (jnp.asarray(0.5), 0.5, np.float32(2.0))
    for x in bad_x:
        with pytest.raises(ValueError, match="^x:"):
            agent.update(state, x, 1, 1.0)
        with pytest.raises(ValueError, match="^x:"):
            agent.act(jax.random.PRNGKey(0), state, x)
    for a in bad_a:
        with pytest.raises(ValueError, match="^action:"):
            agent.update(state, good, a, 1.0)
    for r in bad_r:
        with pytest.raises(ValueError, match="^reward:"):
            agent.update(state, good, 1, r)
    # the same valid round, whatever the types of its arguments
    states = [
        agent.update(state, x, a, r)
        for x in (good, np.asarray(good), [0.1, 0.2, 0.3])
        for a in (1, np.int32(1), jnp.asarray(1))
        for r in (1, 1.0, np.float64(1.0), jnp.asarray(1.0))
    ]
    for s in states[1:]:
        for u, v in zip(jax.tree.leaves(states[0]), jax.tree.leaves(s), strict=True):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6)


def test_eager_moderate_inputs_are_checked_on_the_host_and_huge_ones_read_the_status():
    """Moderate inputs: host checks only (a non-finite hand-made state is then rejected and counted,
    as inside jit); inputs beyond moderate_limit take the checked path, which raises on an overflow."""
    from dts_ppl.agents.base import fast_context, fast_reward, host_support, moderate_limit

    agent = _agent("lin_ts")
    state = agent.init()
    limit = moderate_limit(jax.tree.leaves(state)[0].dtype)
    assert moderate_limit(np.dtype(np.float32)) == pytest.approx(2.0**16)
    x = jnp.asarray(np.array([0.1, 0.2, 0.3]))
    assert fast_context(x, (D,), limit) is x
    assert fast_context(x.at[1].set(3 * limit), (D,), limit) is None
    assert fast_context(jnp.array([0.1, jnp.nan, 0.3]), (D,), limit) is None
    assert fast_context(np.array([1, -(2**31)], np.int64), (2,), 1e6) is None
    assert fast_reward(0.5, host_support(Bernoulli())) is None and fast_reward(1, host_support(Bernoulli())) == 1.0
    assert fast_reward(2.5, host_support(Poisson())) is None and fast_reward(np.float32(3), host_support(Poisson()))
    assert fast_reward(0.5, None) is None  # an unknown likelihood: the checked path decides
    # a hand-made non-finite state: moderate inputs are rejected and counted, never written
    stats = state.evidence.stats
    bad = state._replace(evidence=state.evidence._replace(stats=stats._replace(G=stats.G.at[1, 0, 0].set(jnp.nan))))
    new = agent.update(bad, x, 1, 1.0)
    assert int(new.rejected) == 1
    for u, v in zip(jax.tree.leaves(bad._replace(rejected=0)), jax.tree.leaves(new._replace(rejected=0)), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    action, info = agent.act(jax.random.PRNGKey(0), state._replace(mean=state.mean.at[1, 0].set(jnp.nan)), x)
    assert int(action) == -1 and not bool(info.valid)
    # a huge input takes the checked path: an overflow raises
    huge = 1e200 if jax.config.jax_enable_x64 else 1e30
    with pytest.raises(ValueError, match="overflows"):
        agent.update(state, jnp.full(D, huge, jax.tree.leaves(state)[0].dtype), 1, 1.0)
    with pytest.raises(ValueError, match="^state:"):
        agent.update("not a state", x, 1, 1.0)
