"""Every agent factory in dts_ppl.agents: its state after a few updates saves and loads bit-identically."""

import collections
import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian, Poisson, agents, load_state, save_state
from dts_ppl.agents import Agent
from dts_ppl.agents.registry import register_state, registered_states

K, D = 3, 2


def _prior():
    return DiffusionPrior.linear([jnp.array([[1.0, 0.5], [0.2, -0.7]]), 0.5 * jnp.eye(D)], [0.5, 1.0, 1.0])


def _bank():
    return jax.random.normal(jax.random.PRNGKey(5), (64, D))


# How to build a small agent of each factory; every exported function is either here or below.
BUILDERS = {
    "dts": lambda p: agents.dts(p, Gaussian(1.0), K),
    "hier_ts": lambda p: agents.hier_ts(p, Gaussian(0.5), K),
    "lin_ts": lambda p: agents.lin_ts(agents.theta_marginal(p), Gaussian(1.0), K, shared=True),
    "lin_ucb": lambda p: agents.lin_ucb(agents.theta_marginal(p), Gaussian(1.0), K),
    "glm_ts": lambda p: agents.glm_ts(agents.theta_marginal(p), Bernoulli(), K, history=8),
    "ucb_glm": lambda p: agents.ucb_glm(agents.theta_marginal(p), Poisson(), K, history=8),
    "exact_ts": lambda p: agents.exact_ts(p, Gaussian(1.0), K),
    "bank_ts": lambda p: agents.bank_ts(_bank(), Bernoulli(), K),
    "mcmc_ts": lambda p: agents.mcmc_ts(p, Gaussian(1.0), K, refresh_every=2, num_warmup=3, max_tree_depth=3),
    "random_policy": lambda p: agents.random_policy(K),
    "laplace_dps": lambda p: agents.laplace_dps(p, Gaussian(1.0), K),
    "posterior_policy": lambda p: agents.posterior_policy("dts", p, Gaussian(1.0), K, policy="bayes_ucb"),
}
NOT_FACTORIES = {
    "act_top_k",
    "bank_moments",
    "dts_posterior",
    "effective_sample_size",
    "hierarchical_prior",
    "propensities",
    "theta_marginal",
    "warm_start",
}


def test_every_exported_factory_is_enumerated():
    """A new public function of dts_ppl.agents must be classified here, so no factory is missed."""
    public = {name for name in agents.__all__ if inspect.isfunction(getattr(agents, name))}
    assert public == set(BUILDERS) | NOT_FACTORIES, (public - set(BUILDERS) - NOT_FACTORIES, set(BUILDERS) - public)
    for name in public:
        returns = inspect.signature(getattr(agents, name)).return_annotation
        assert returns not in (Agent, "Agent") or name in BUILDERS, name
    for name, build in BUILDERS.items():
        agent = build(_prior())
        assert isinstance(agent, Agent) and agent.spec is not None, name
        assert agent.spec.kind == name or agent.spec.kind.startswith(("dts_", "hier_ts_", "lin_ts_")), name


def _rounds(agent, n=4):
    """n update rounds on fixed contexts, actions and rewards that suit every likelihood."""
    shared = bool(agent.spec.shared)
    xs = jax.random.uniform(jax.random.PRNGKey(1), (n, K, D) if shared else (n, D), minval=-1.0, maxval=1.0)
    return [(xs[t], t % K, float(t % 2)) for t in range(n)]


def _bits(leaf):
    a = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf)
    return str(leaf.dtype), a.shape, a.tobytes()


def assert_bit_identical(loaded, state):
    assert jax.tree.structure(loaded) == jax.tree.structure(state)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    for name, a, b in zip(paths, jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
        assert _bits(a) == _bits(b), name


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_state_of_every_factory_round_trips_bit_identically(name, tmp_path):
    agent = BUILDERS[name](_prior())
    update = jax.jit(agent.update)
    rounds = _rounds(agent)
    state = agent.init()
    for x, a, r in rounds[:-1]:
        state = update(state, x, a, r)
    path = tmp_path / f"{name}.npz"
    save_state(path, state, {"factory": name}, agent=agent)
    loaded, meta = load_state(path, expect=agent)
    assert meta == {"factory": name}
    assert type(loaded) is type(state) and type(loaded).__name__ in registered_states()
    assert_bit_identical(loaded, state)
    # the loaded state is usable: the next update gives the same bits as on the original
    x, a, r = rounds[-1]
    assert_bit_identical(update(loaded, x, a, r), update(state, x, a, r))


class _UserState(NamedTuple):
    """A state of a user's own agent: a typed PRNG key, a dict, a tuple with a None."""

    key: jax.Array
    params: dict
    extra: tuple


register_state(_UserState)


def test_a_registered_state_with_keys_dicts_and_tuples_round_trips(tmp_path):
    state = _UserState(jax.random.key(3), {"w": jnp.arange(3.0), "b": jnp.zeros((), jnp.int8)}, (jnp.ones(2), None))
    save_state(tmp_path / "u.npz", state)
    loaded, _ = load_state(tmp_path / "u.npz")
    assert list(loaded.params) == ["w", "b"] and loaded.extra[1] is None
    assert_bit_identical(loaded, state)


def test_unregistered_classes_are_refused(tmp_path):
    class Other(NamedTuple):
        a: jax.Array

    with pytest.raises(ValueError, match="state: expected an agent state .*got Other"):
        save_state(tmp_path / "o.npz", Other(jnp.ones(2)))
    with pytest.raises(ValueError, match="state: cannot save a Other at 'extra/0': not a registered state class"):
        save_state(tmp_path / "o.npz", _UserState(jax.random.key(0), {}, (Other(jnp.ones(2)),)))
    with pytest.raises(ValueError, match="classes: a state class named '_UserState' is already registered"):
        register_state(collections.namedtuple("_UserState", ["a"], module="elsewhere"))
    with pytest.raises(ValueError, match="classes: expected NamedTuple classes"):
        register_state(dict)
    assert not (tmp_path / "o.npz").exists()
