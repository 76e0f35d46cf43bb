"""The random policy: every action with probability 1/K, whatever it has seen (a regret reference)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import ActInfo, Agent, AgentSpec, check_action, check_num_actions
from dts_ppl.agents.registry import model_fingerprint, register_state


class RandomState(NamedTuple):
    """step: () number of updates (the policy keeps nothing else)."""

    step: jax.Array


register_state(RandomState)


def random_policy(num_actions: int) -> Agent:
    """Uniformly random actions.

    Args:
        num_actions: K.
    Returns:
        Agent whose ``act`` draws A ~ U{0..K-1} (scores: K uniform draws, argmax = A) and whose
        ``update`` only counts rounds; ``x`` may be (d,) or (K, d).
    """
    K = check_num_actions(num_actions)

    def init() -> RandomState:
        return RandomState(jnp.zeros((), jnp.int32))

    def act(key, state: RandomState, x):
        del state, x
        scores = jax.random.uniform(key, (K,), jnp.result_type(float))
        return jnp.argmax(scores), ActInfo(scores)

    def update(state: RandomState, x, action, reward) -> RandomState:
        del x, reward
        check_action(action, K)
        return RandomState(state.step + 1)

    spec = AgentSpec("random_policy", K, None, 0, None, None, fingerprint=model_fingerprint())  # any x, any reward
    return Agent(init, act, update, spec=spec)
