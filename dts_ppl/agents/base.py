"""The agent interface and what every agent shares: input checks and online evidence.

An agent is a NamedTuple of pure functions (BlackJAX style), built by a factory that closes
over the prior and hyper-parameters:

    state = agent.init()
    action, info = agent.act(key, state, x)         # x (d,), or (K, d) action features (shared)
    state = agent.update(state, x, action, reward)

All three are jittable, and vmap over runs. Called eagerly they validate their inputs (shapes
always, values when concrete): wrong shapes, actions out of range and NaN rewards raise
ValueError instead of corrupting the state.

Online evidence (docs/math.md section 2). Every agent keeps per-group statistics (G_g, b_g), where a
group is an action (per-action parameters) or the single shared parameter. Gaussian rewards
update them exactly in O(d^2). GLM rewards need the played group's Gaussianised statistics
around its ridge-regularised fit B_g: we keep a ring buffer of the last ``history`` observations
and run ``newton_steps`` damped Newton steps on the played group's rows, warm-started at its
previous B_g (``likelihood.laplace``, the routine the batch statistics use). One step costs
O(history d^2) whatever t is; the buffer holds the whole history when
``history`` >= the number of rounds (otherwise the oldest rows are forgotten).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import ActionStats, Gaussian


class AgentSpec(NamedTuple):
    """What an agent is, for checkpoints and the practitioner API (plain Python values).

    Attributes:
        kind: the factory's name ("dts", "hier_ts", "lin_ts", "lin_ucb", "glm_ts", "ucb_glm", "exact_ts").
        num_actions: K.   dim: d.   num_levels: L of the diffusion prior (0 for the linear baselines).
        shared: one parameter for all actions (``x`` is then (K, d)).
        likelihood: the reward model's name ("gaussian", "bernoulli", "poisson").
        deterministic: ``act`` ignores its key (UCB agents).
    """

    kind: str
    num_actions: int
    dim: int
    num_levels: int
    shared: bool
    likelihood: str
    deterministic: bool = False


class Agent(NamedTuple):
    """A bandit agent: ``init() -> state``, ``act(key, state, x) -> (action, info)``,
    ``update(state, x, action, reward) -> state``, ``update_batch(state, X, A, y) -> state``
    (rows X (n, d) or (n, K, d) shared, A (n,), y (n,); see :mod:`dts_ppl.agents.batch`); all
    pure and jittable. ``spec`` (an :class:`AgentSpec`) describes the agent."""

    init: Callable
    act: Callable
    update: Callable
    update_batch: Callable | None = None
    spec: AgentSpec | None = None


class ActInfo(NamedTuple):
    """What ``act`` saw: the score of every action (a Thompson sample or an upper bound), (K,)."""

    scores: jax.Array


def set_row(array, index, value):
    """array with row ``index`` replaced by ``value``, as an in-place dynamic-update-slice.

    (``array.at[i].set`` lowers to a scatter, which XLA on CPU copies the whole (K, d, d) array
    for inside a scan; this keeps the per-round update O(d^2) instead of O(K d^2).)
    """
    return jax.lax.dynamic_update_index_in_dim(array, jnp.asarray(value, array.dtype), index, 0)


# ------------------------------------------------------------------------------------- checks


def check_num_actions(num_actions) -> int:
    if not isinstance(num_actions, int | np.integer) or num_actions < 1:
        raise ValueError(f"num_actions: expected a positive integer, got {num_actions!r}")
    return int(num_actions)


def check_context(x, num_actions: int, dim: int, shared: bool):
    """x (d,) for per-action parameters, (K, d) action features for the shared variant."""
    shape = (num_actions, dim) if shared else (dim,)
    what = "action features (K, d)" if shared else "a context (d,)"
    arr = jnp.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"x: expected {what} of shape {shape}, got {tuple(arr.shape)}")
    _checks.check_finite("x", arr)
    return arr


def check_action(action, num_actions: int):
    arr = jnp.asarray(action)
    if arr.ndim != 0:
        raise ValueError(f"action: expected a scalar action index, got shape {tuple(arr.shape)}")
    if _checks.is_concrete(arr):
        v = np.asarray(arr)
        if v.dtype.kind not in "iu" or not 0 <= int(v) < num_actions:
            raise ValueError(f"action: expected an integer in [0, {num_actions}), got {v!r}")
    return arr.astype(jnp.int32)


def check_reward(reward, likelihood):
    arr = jnp.asarray(reward)
    if arr.ndim != 0:
        raise ValueError(f"reward: expected a scalar reward, got shape {tuple(arr.shape)}")
    likelihood.check_rewards("reward", arr)
    return arr


def check_update(x, action, reward, num_actions: int, dim: int, shared: bool, likelihood):
    x = check_context(x, num_actions, dim, shared)
    action = check_action(action, num_actions)
    reward = check_reward(reward, likelihood)
    phi = x[action] if shared else x
    group = jnp.zeros((), jnp.int32) if shared else action
    return phi, group, reward.astype(phi.dtype)


# ----------------------------------------------------------------------------- online evidence


class History(NamedTuple):
    """Ring buffer of observations for GLM rewards: X (H, d), group (H,), y (H,), count (),
    and the warm start B (M, d) of each group's Newton fit."""

    X: jax.Array
    group: jax.Array
    y: jax.Array
    count: jax.Array
    B: jax.Array


class Evidence(NamedTuple):
    """Per-group statistics (G (M, d, d), b (M, d)) and, for GLM rewards, the history."""

    stats: ActionStats
    history: History | None


def init_evidence(likelihood, num_groups: int, dim: int, history: int, dtype) -> Evidence:
    stats = ActionStats(jnp.zeros((num_groups, dim, dim), dtype), jnp.zeros((num_groups, dim), dtype))
    if isinstance(likelihood, Gaussian):
        return Evidence(stats, None)
    buf = History(
        jnp.zeros((history, dim), dtype),
        jnp.full((history,), -1, jnp.int32),
        jnp.zeros((history,), dtype),
        jnp.zeros((), jnp.int32),
        jnp.zeros((num_groups, dim), dtype),
    )
    return Evidence(stats, buf)


def update_evidence(likelihood, ev: Evidence, phi, group, y, newton_steps: int):
    """Add one observation of ``group``.

    Returns:
        (new evidence, (G_old, b_old), (G_new, b_new)): the group's statistics before and after,
        (d, d) and (d,) each, so callers can swap the group's term in running sums.

    Performance note: XLA on CPU updates a (M, d, d) row in place inside a scan only if the old
    row is not also read for anything else; reading it costs a copy of the whole array every
    round (measured 15-25 ms at M = 10^4, d = 20 against under 1 ms). Gaussian statistics are
    therefore never read back (the old ones are the new ones minus the increment). GLM updates
    do read the old row: their O(history d^2) Newton fit costs as much as that copy anyway.
    """
    G, b = ev.stats
    if ev.history is None:  # Gaussian: exact, O(d^2)
        prec = 1.0 / likelihood.scale**2
        dG, db = prec * jnp.outer(phi, phi), prec * y * phi
        G, b = G.at[group].add(dG), b.at[group].add(db)  # write first, then read the new row
        new = (G[group], b[group])
        old = (new[0] - dG, new[1] - db)
        return ev._replace(stats=ActionStats(G, b)), old, new
    h = ev.history
    old = (G[group], b[group])
    B_old = h.B[group]
    slot = h.count % h.X.shape[0]
    h = History(set_row(h.X, slot, phi), set_row(h.group, slot, group), set_row(h.y, slot, y), h.count + 1, h.B)
    G_new, b_new, B_new = likelihood.laplace(h.X, h.y, (h.group == group).astype(h.X.dtype), B_old, newton_steps)
    new = (G_new, b_new)
    stats = ActionStats(set_row(G, group, G_new), set_row(b, group, b_new))
    return Evidence(stats, h._replace(B=set_row(h.B, group, B_new))), old, new


def check_glm_options(likelihood, history: int, newton_steps: int):
    if not hasattr(likelihood, "statistics") or not hasattr(likelihood, "check_rewards"):
        raise ValueError(
            f"likelihood: expected a dts_ppl likelihood (Gaussian, Bernoulli, Poisson), got {likelihood!r}"
        )
    if not isinstance(likelihood, Gaussian):
        if not isinstance(history, int | np.integer) or history < 1:
            raise ValueError(f"history: expected a positive buffer size for GLM rewards, got {history!r}")
        if not isinstance(newton_steps, int | np.integer) or newton_steps < 1:
            raise ValueError(f"newton_steps: expected a positive integer, got {newton_steps!r}")
