"""Batched, delayed and logged feedback: ``agent.update_batch(state, X, A, y)`` and warm starts.

``update_batch`` equals applying ``update`` row by row, for a fraction of the cost:

- Gaussian rewards: all rows' statistics are added at once (``likelihood.propose_observations``,
  a segment_sum), then what depends on them is recomputed once: the touched groups' conditionals
  (:func:`dts_ppl.core.inference.condition`, the function ``update`` calls) and, for dTS, the
  latent chain. Equal to the row loop up to float rounding (the sums are taken in another
  order), and invariant to the order of the rows: feedback that arrives late, in any order,
  gives the same state (tests/agents/test_batch.py).
- GLM rewards: the rows enter the ring buffer in order (as the row loop puts them), then each
  touched group's Gaussianised statistics are refitted once by ``likelihood.laplace`` from its
  previous fit with ``likelihood.newton_steps`` Newton steps, where the row loop runs
  ``newton_steps`` steps after every row. The two agree to the Newton solver's convergence
  (measured in docs/practitioner.md); untouched groups are left as they are, as in the loop.

Rows the guard rejects (:mod:`dts_ppl.agents.guard`) are dropped and counted; a batch whose rows
overflow only together is rejected whole. :func:`warm_start` builds a state from logged data in one
call: ``update_batch`` from ``init()``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, Evidence


def check_rows(X, A, y, num_actions: int, dim: int, shared: bool, likelihood):
    """Validate a batch of feedback; return the checked arrays and the played rows.

    Called eagerly, bad values raise a ValueError naming the argument (as ``update`` does); inside
    ``jit`` only shapes and types can be checked, and the guard rejects bad rows.

    Args:
        X: (n, d) contexts, or (n, K, d) action features with ``shared``.
        A: (n,) integer actions in [0, K).   y: (n,) rewards.

    Returns:
        (X, A (n,) as given (integer or float), y (n,), phi (n, d) the played rows, group (n,) int32).
    """
    shape = (num_actions, dim) if shared else (dim,)
    what = "(n, K, d) action features" if shared else "(n, d) contexts"
    if X is None or isinstance(X, str | bytes):
        raise ValueError(f"X: expected {what} with trailing shape {shape}, got {X!r}")
    X = _checks.as_array("X", X, shape=(None, *shape))
    _checks.check_finite("X", X)
    n = X.shape[0]
    A_checked = _checks.check_actions("A", A, num_actions, n)
    A = jnp.asarray(A)
    if y is None or isinstance(y, str | bytes):
        raise ValueError(f"y: expected {n} real rewards of shape ({n},), got {y!r}")
    y = _checks.as_array("y", y, shape=(None,))
    if y.shape != (n,):
        raise ValueError(f"y: expected {n} rewards of shape ({n},), got {tuple(y.shape)}")
    likelihood.check_rewards("y", y)
    safe = jnp.clip(A_checked, 0, num_actions - 1)  # out-of-range rows are rejected by the guard
    phi = X[jnp.arange(n), safe] if shared else X
    group = jnp.zeros(n, jnp.int32) if shared else safe
    return X, A, y.astype(X.dtype), phi, group


def check_batch(X, A, y, num_actions: int, dim: int, shared: bool, likelihood):
    """:func:`check_rows`'s played rows only: (phi (n, d), group (n,) int32, y (n,))."""
    _, _, y, phi, group = check_rows(X, A, y, num_actions, dim, shared, likelihood)
    return phi, group, y


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


def conjugate_rows(likelihood, prior_prec, evidence: Evidence, phi, group, y, ok):
    """The shared mathematics of every conjugate agent's batch step: new evidence, re-conditioned groups.

    Args:
        phi (n, d), group (n,), y (n,): the rows, sanitised where not ``ok`` (n,) bool.

    Returns:
        (n_ok () int32 rows added, new Evidence (a proposal: nothing written), idx (S,) touched groups,
        their Conditionals, Message: the change of the touched groups' messages to the parent).
    """
    ev = likelihood.propose_observations(evidence, phi.astype(evidence.stats.G.dtype), group, y, ok)
    idx, valid = touched_groups(group, evidence.stats.G.shape[0], ok)
    cond, delta = recondition(prior_prec, evidence.stats, ev.stats, idx, valid)
    return jnp.sum(ok, dtype=jnp.int32), ev, idx, cond, delta


def warm_start(agent: Any, X: ArrayLike, A: ArrayLike, y: ArrayLike) -> Any:
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
