"""Batched, delayed and logged feedback: ``agent.update_batch(state, X, A, y)`` and warm starts.

``update_batch`` equals applying ``update`` row by row, for a fraction of the cost:

- Gaussian rewards: all rows' statistics are added at once (``likelihood.statistics``, a
  segment_sum), then what depends on them is recomputed once: the touched groups' conditionals
  (:func:`dts_ppl.core.inference.condition`, the function ``update`` calls) and, for dTS, the
  latent chain. Equal to the row loop up to float rounding (the sums are taken in another
  order), and invariant to the order of the rows: feedback that arrives late, in any order,
  gives the same state (tests/agents/test_batch.py).
- GLM rewards: the rows enter the ring buffer in order (as the row loop puts them), then each
  touched group's Gaussianised statistics are refitted once by ``likelihood.laplace`` from its
  previous fit with ``likelihood.newton_steps`` Newton steps, where the row loop runs
  ``newton_steps`` steps after every row. The two agree to the Newton solver's convergence
  (measured in docs/practitioner.md); untouched groups are left as they are, as in the loop.

:func:`warm_start` builds a state from logged data in one call: ``update_batch`` from ``init()``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dts_ppl.agents.base import Agent, Evidence, History, check_overflow, increment_ok, sanitise_update, update_ok
from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats


def check_batch(X, A, y, num_actions: int, dim: int, shared: bool, likelihood):
    """Validate a batch of feedback and return the played rows.

    Args:
        X: (n, d) contexts, or (n, K, d) action features with ``shared``.
        A: (n,) integer actions in [0, K).   y: (n,) rewards.

    Returns:
        (phi (n, d) the played feature rows, group (n,) int32, y (n,)).
    """
    phi, group, y, _ = guarded_batch(X, A, y, num_actions, dim, shared, likelihood)
    return phi, group, y


def guarded_batch(X, A, y, num_actions: int, dim: int, shared: bool, likelihood):
    """:func:`check_batch` plus the jit guard of ``update``, row by row.

    Called eagerly, bad values raise (as ``update`` does). Inside ``jit`` they cannot, so each
    row gets ``ok`` = :func:`dts_ppl.agents.base.update_ok` (finite context and reward, action
    an integer in [0, K)) and a bad row is replaced by finite stand-ins (phi 0, group 0, y 0)
    that the caller gives zero weight: the batch then equals the batch of its good rows.

    Returns:
        (phi (n, d), group (n,) int32, y (n,), ok (n,) bool), bad rows sanitised.
    """
    shape = (num_actions, dim) if shared else (dim,)
    X = jnp.asarray(X)
    if X.ndim != 1 + len(shape) or tuple(X.shape[1:]) != shape:
        what = "(n, K, d) action features" if shared else "(n, d) contexts"
        raise ValueError(f"X: expected {what} with trailing shape {shape}, got {tuple(X.shape)}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    _checks.check_finite("X", X)
    n = X.shape[0]
    A = _checks.check_actions("A", A_in := A, num_actions, n)
    y = jnp.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y: expected {n} rewards of shape ({n},), got {tuple(y.shape)}")
    likelihood.check_rewards("y", y)
    ok = jax.vmap(update_ok, in_axes=(0, 0, 0, None))(X, jnp.asarray(A_in), y, num_actions)
    A = jnp.where(ok, A, 0)
    phi = X[jnp.arange(n), A] if shared else X
    group = jnp.zeros(n, jnp.int32) if shared else A
    phi, group, y = jax.vmap(sanitise_update)(phi, group, y.astype(phi.dtype), ok)
    inc_ok = jax.vmap(lambda p, v: increment_ok(likelihood, p, v))(phi, y)  # overflow, as in ``update``
    check_overflow(jnp.ones((), bool), jnp.all(inc_ok | ~ok), phi.dtype)
    ok = ok & inc_ok
    phi, group, y = jax.vmap(sanitise_update)(phi, group, y, ok)
    return phi, group, y, ok


def touched_groups(group, num_groups: int, ok=None):
    """The distinct groups of a batch's rows (those with ``ok``, default all), padded to a static size.

    Returns:
        (idx (S,), valid (S,) bool), S = min(n, M): the touched groups in increasing order, then
        copies of the first one (valid False) so that scatters of recomputed rows stay exact (or,
        when no row is ok, the out-of-range index num_groups: scatters drop it).
    """
    size = min(group.shape[0], num_groups)
    weight = jnp.ones(group.shape[0], jnp.int32) if ok is None else ok.astype(jnp.int32)
    touched = jax.ops.segment_sum(weight, group, num_segments=num_groups) > 0
    (idx,) = jnp.nonzero(touched, size=size, fill_value=num_groups)
    valid = idx < num_groups
    return jnp.where(valid, idx, idx[0]), valid


def batch_evidence(likelihood, ev: Evidence, phi, group, y, ok=None):
    """Add a batch of rows (those with ``ok``, default all) to an agent's evidence (all M groups).

    Args:
        ev: Evidence with (M, d, d), (M, d) statistics.   phi: (n, d).   group: (n,).   y: (n,).
        ok: (n,) bool or None; rows without it must be sanitised (phi 0, :func:`guarded_batch`).

    Returns:
        new Evidence, same shapes.
    """
    G, b = ev.stats
    M = G.shape[0]
    n = phi.shape[0]
    ok = jnp.ones(n, bool) if ok is None else ok
    if ev.history is None:  # Gaussian: exact sufficient statistics, one segment_sum (bad rows have phi 0)
        add = likelihood.statistics(phi, group, y, M)
        return ev._replace(stats=ActionStats(G + add.G, b + add.b))
    h = ev.history
    H = h.X.shape[0]
    # the good rows enter a ring buffer of H slots in order; only the last H of them are written
    rank = jnp.cumsum(ok.astype(jnp.int32)) - 1  # position among the good rows
    n_ok = rank[-1] + 1
    write = ok & (rank >= n_ok - H)
    slots = jnp.where(write, (h.count + rank) % H, H)  # H is out of range: the scatter drops it
    h = History(
        h.X.at[slots].set(phi, mode="drop"),
        h.group.at[slots].set(group, mode="drop"),
        h.y.at[slots].set(y, mode="drop"),
        h.count + n_ok,
        h.B,
    )
    weights = (h.group >= 0).astype(phi.dtype)
    G_fit, b_fit, B_fit = likelihood.laplace(
        h.X, h.y, weights, h.B, likelihood.newton_steps, group=jnp.maximum(h.group, 0), num_groups=M
    )
    touched = jax.ops.segment_sum(ok.astype(jnp.int32), group, num_segments=M) > 0
    G = jnp.where(touched[:, None, None], G_fit, G)
    b = jnp.where(touched[:, None], b_fit, b)
    B = jnp.where(touched[:, None], B_fit, h.B)
    return Evidence(ActionStats(G, b), h._replace(B=B))


def recondition(prior_prec, old: ActionStats, new: ActionStats, idx, valid):
    """Re-condition the touched groups and the change of their messages to the parent.

    Calls :func:`dts_ppl.core.inference.condition` (as ``update`` does) on each touched group's
    statistics before and after the batch.

    Args:
        prior_prec: (d, d).   old, new: (M, d, d), (M, d) statistics.   idx, valid: (S,) from
            :func:`touched_groups`.

    Returns:
        (Conditionals of the touched groups with (S, d, d), (S, d), (S, d, d) fields,
        Message (d, d), (d,): the sum over touched groups of new minus old messages).
    """
    condition = jax.vmap(core.condition, in_axes=(None, 0, 0))
    _, msg_old = condition(prior_prec, old.G[idx], old.b[idx])
    cond, msg_new = condition(prior_prec, new.G[idx], new.b[idx])
    w = valid.astype(prior_prec.dtype)
    delta = jax.tree.map(lambda o, n: jnp.tensordot(w, n - o, axes=1), msg_old, msg_new)
    return cond, delta


def add_rows(likelihood, prior_prec, evidence: Evidence, X, A, y, num_actions: int, dim: int, shared: bool, dtype):
    """The shared first half of every conjugate agent's ``update_batch``: check, add, re-condition.

    Rows that ``update`` would reject inside ``jit`` (:func:`guarded_batch`) are dropped: the
    result equals the batch of the good rows, and the caller adds ``dropped`` to ``rejected``.

    Returns:
        None when there are no rows; else (n () int32 rows added, dropped () int32 rows rejected,
        new Evidence, idx (S,) touched groups, their Conditionals, Message: the change of the
        touched groups' messages to the parent).
    """
    phi, g, y, ok = guarded_batch(X, A, y, num_actions, dim, shared, likelihood)
    if phi.shape[0] == 0:
        return None
    ev = batch_evidence(likelihood, evidence, phi.astype(dtype), g, y, ok)
    idx, valid = touched_groups(g, evidence.stats.G.shape[0], ok)
    cond, delta = recondition(prior_prec, evidence.stats, ev.stats, idx, valid)
    n_ok = jnp.sum(ok, dtype=jnp.int32)
    return n_ok, phi.shape[0] - n_ok, ev, idx, cond, delta


def warm_start(agent: Agent, X: ArrayLike, A: ArrayLike, y: ArrayLike) -> Any:
    """An agent state built from logged feedback: ``agent.update_batch(agent.init(), X, A, y)``.

    Args:
        agent: an Agent with ``update_batch``.   X: (n, d) contexts ((n, K, d) shared).
        A: (n,) actions.   y: (n,) rewards.

    Returns:
        the agent's state after the logs.
    """
    if getattr(agent, "update_batch", None) is None:
        raise ValueError("agent: expected an Agent with update_batch (every dts_ppl agent factory sets it)")
    return agent.update_batch(agent.init(), X, A, y)
