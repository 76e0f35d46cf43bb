"""The random policy: every action with probability 1/K, whatever it has seen (a regret reference)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import (
    Agent,
    AgentSpec,
    check_action,
    check_key,
    check_num_actions,
    fast_action,
    fast_context,
    fast_reward,
    state_checker,
)
from dts_ppl.agents.guard import guarded, guarded_act, guarded_batch, jitted_score
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import checks as _checks


class RandomState(NamedTuple):
    """step: () number of accepted updates; rejected: () int32 updates the guard rejected."""

    step: jax.Array
    rejected: jax.Array | int = 0


def _check_x(x, name="x"):
    if x is None or isinstance(x, str | bytes):
        raise ValueError(f"{name}: expected a context (d,) or action features (K, d) per round, got {x!r}")
    arr = _checks.as_array(name, x)
    _checks.check_finite(name, arr)
    return arr


def _check_reward(reward):
    if reward is None or isinstance(reward, bool | str | bytes):
        raise ValueError(f"reward: expected a real scalar, got {reward!r}")
    arr = _checks.as_array("reward", reward, ndim=0)
    _checks.check_finite("reward", arr)
    return arr


register_state(RandomState)


def random_policy(num_actions: int) -> Agent:
    """Uniformly random actions.

    Args:
        num_actions: K.
    Returns:
        Agent whose ``act`` draws A ~ U{0..K-1} (scores: K uniform draws, argmax = A) and whose
        ``update`` only counts rounds (under the same guard as every agent: a round with a
        non-finite context or reward, or an action outside [0, K), is rejected and counted);
        ``x`` may be (d,) or (K, d).
    """
    K = check_num_actions(num_actions)

    def init() -> RandomState:
        zero = jnp.zeros((), jnp.int32)
        return RandomState(zero, zero)

    check_state = state_checker(init)

    def score(key, state: RandomState, x):
        del state, x
        return jax.random.uniform(key, (K,), jnp.result_type(float))

    def check_inputs(x, action, reward):
        return _check_x(x), check_action(action, K), _check_reward(reward)

    def check_rows(X, A, y):
        X = _check_x(X, "X")
        if X.ndim < 2:
            raise ValueError(f"X: expected one context row per round, (n, d) or (n, K, d), got {tuple(X.shape)}")
        n = X.shape[0]
        _checks.check_actions("A", A, K, n)
        if y is None or isinstance(y, str | bytes):
            raise ValueError(f"y: expected {n} real rewards of shape ({n},), got {y!r}")
        y = _checks.as_array("y", y, shape=(n,))
        _checks.check_finite("y", y)
        return X, jnp.asarray(A), y, jnp.zeros((n, 1)), jnp.zeros(n, jnp.int32)

    def fast_x(x):
        return x if fast_context(x, getattr(x, "shape", None)) is not None and x.size > 0 else None

    def fast_inputs(x, action, reward):
        args = (fast_x(x), fast_action(action, K), fast_reward(reward))
        return None if any(v is None for v in args) else args

    act = guarded_act(score, check_key, check_state, _check_x, fast_x)
    update = guarded(
        lambda state, phi, g, y: RandomState(state.step + 1), check_inputs, check_state, K, fast_inputs=fast_inputs
    )
    update_batch = guarded_batch(
        lambda state, phi, g, y, ok: RandomState(state.step + jnp.sum(ok, dtype=jnp.int32)), check_rows, check_state, K
    )
    spec = AgentSpec("random_policy", K, None, 0, None, None, fingerprint=model_fingerprint())  # any x, any reward
    return Agent(jax.jit(init), act, update, update_batch, spec, score=jitted_score(score, check_state))
