"""Acting with masks and top-k, and action propensities, for every agent (from ``act``'s scores).

Every agent's ``act`` returns ``ActInfo(scores)``: one Thompson draw of all K actions' scores
(or the UCB agents' upper bounds). These functions use those scores, so they need no agent
internals and no second implementation:

- :func:`act_top_k`: the k best actions of ONE draw, best first, among the available ones.
- :func:`propensities`: P(A = a | x, state) for ``act`` with a mask, the fraction of
  ``num_samples`` independent draws (vmap over keys) whose argmax is a, with its Monte-Carlo
  standard error sqrt(p (1 - p) / n); exact for deterministic agents (``agent.spec.deterministic``:
  LinUCB, UCB-GLM), one-hot on the argmax with ties split equally, s.e. 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.agents.base import ActInfo, Agent
from dts_ppl.core import checks as _checks


class Propensities(NamedTuple):
    """P(A = a | x, state): probs (K,) summing to 1, and their Monte-Carlo s.e. (K,)."""

    probs: jax.Array
    se: jax.Array


def check_mask(mask, num_actions: int):
    """A boolean availability mask (K,) (None: all available); all False raises (when concrete).

    Returns:
        (K,) bool array.
    """
    if mask is None:
        return jnp.ones(num_actions, bool)
    arr = jnp.asarray(mask)
    if arr.shape != (num_actions,):
        raise ValueError(f"mask: expected a boolean mask of shape ({num_actions},), got {tuple(arr.shape)}")
    if arr.dtype != jnp.bool_:
        raise ValueError(f"mask: expected dtype bool (True = available), got {arr.dtype}")
    if _checks.is_concrete(arr) and not np.asarray(arr).any():
        raise ValueError("mask: every action is masked out; at least one must be available")
    return arr


def _num_actions(agent) -> int:
    if getattr(agent, "spec", None) is None:
        raise ValueError("agent: expected a dts_ppl Agent with a spec (every agent factory sets it)")
    return agent.spec.num_actions


def masked_scores(agent, key, state, x, mask=None):
    """``act``'s scores with masked-out actions at -inf. Returns (K,)."""
    key = _checks.check_key(key)
    mask = check_mask(mask, _num_actions(agent))
    _, info = agent.act(key, state, x)
    return jnp.where(mask, info.scores, -jnp.inf)


def act(agent, key, state, x, mask=None):
    """``agent.act`` restricted to the available actions: the argmax of one draw over ``mask``.

    Returns:
        (action (), ActInfo with the masked scores (K,), -inf where masked).
    """
    key = _checks.check_key(key)
    scores = masked_scores(agent, key, state, x, mask)
    return jnp.argmax(scores), ActInfo(scores)


def act_top_k(
    agent: Agent, key: jax.Array, state: Any, x: ArrayLike, k: int, mask: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
    """The ``k`` best available actions of ONE Thompson draw (or of the UCB scores), best first.

    Args:
        agent: any dts_ppl Agent.   key: PRNG key.   state: the agent's state.
        x: (d,) context, or (K, d) action features for shared agents.
        k: 1 <= k <= number of available actions (checked when the mask is concrete).
        mask: (K,) bool, True = available (default all).

    Returns:
        (actions (k,) int32, scores (k,)).
    """
    key = _checks.check_key(key)
    K = _num_actions(agent)
    if not isinstance(k, int | np.integer) or not 1 <= k <= K:
        raise ValueError(f"k: expected an integer in [1, {K}], got {k!r}")
    mask = check_mask(mask, K)
    if _checks.is_concrete(mask) and int(np.asarray(mask).sum()) < k:
        raise ValueError(f"k: asked for {k} actions but only {int(np.asarray(mask).sum())} are available (mask)")
    scores = masked_scores(agent, key, state, x, mask)
    top, idx = jax.lax.top_k(scores, k)
    return idx.astype(jnp.int32), top


def propensities(
    agent: Agent, key: jax.Array, state: Any, x: ArrayLike, num_samples: int = 1000, mask: ArrayLike | None = None
) -> Propensities:
    """P(A = a | x, state) of ``act`` (with ``mask``) and its Monte-Carlo standard error.

    Args:
        agent: any dts_ppl Agent.   key: PRNG key (split into ``num_samples`` draws).
        state: the agent's state.   x: (d,) context, or (K, d) action features (shared).
        num_samples: Thompson draws (ignored for deterministic agents).
        mask: (K,) bool, True = available.

    Returns:
        Propensities(probs (K,), se (K,)); masked actions have probability 0.
    """
    key = _checks.check_key(key)
    K = _num_actions(agent)
    mask = check_mask(mask, K)
    if agent.spec.deterministic:
        scores = masked_scores(agent, key, state, x, mask)
        best = scores == jnp.max(scores)
        probs = best / jnp.sum(best)
        return Propensities(probs, jnp.zeros_like(probs))
    if not isinstance(num_samples, int | np.integer) or num_samples < 2:
        raise ValueError(f"num_samples: expected an integer >= 2, got {num_samples!r}")
    keys = jax.random.split(key, num_samples)
    scores = jax.vmap(lambda k: masked_scores(agent, k, state, x, mask))(keys)
    counts = jnp.zeros(K, scores.dtype).at[jnp.argmax(scores, axis=1)].add(1.0)
    probs = counts / num_samples
    return Propensities(probs, jnp.sqrt(probs * (1.0 - probs) / num_samples))
