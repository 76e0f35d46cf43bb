"""Proposed writes and the one place they are written: the core of every guarded update.

An update is computed as a *proposal*: a pytree shaped like the state it updates, whose leaves are
either whole new values or :class:`Row` writes (``array[index] = value``, one row or a batch of
rows). :func:`write` applies a proposal to the old state only if a () bool ``ok`` holds, so a
check can run on everything the update would produce (the new statistics, the conditionals, the
latent chain) *before* anything is written. A rejected proposal leaves every array bit-identical.

Rows are written with an in-place dynamic-update-slice (one index) or a scatter (several), never
with a ``where`` over the whole array: inside a scan on CPU a whole-array select costs a copy of
the (K, d, d) statistics per round, a row costs O(d^2).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp


class Row(NamedTuple):
    """A proposed write ``array[index] = value`` into the state leaf at this position.

    Attributes:
        index: () int for one row, or (S,) ints for S rows (repeated indices must carry equal values).
        value: the row, (...) for one index or (S, ...) for S.
    """

    index: Annotated[jax.Array, "[S]"]
    value: jax.Array


def is_row(node) -> bool:
    return isinstance(node, Row)


def set_row(array, index, value):
    """array with row ``index`` replaced by ``value``, as an in-place dynamic-update-slice.

    (``array.at[i].set`` lowers to a scatter, which XLA on CPU copies the whole (K, d, d) array
    for inside a scan; this keeps the per-round update O(d^2) instead of O(K d^2).)
    """
    return jax.lax.dynamic_update_index_in_dim(array, jnp.asarray(value, array.dtype), index, 0)


def get_row(array, index):
    """Row ``index`` of ``array`` (one index: a dynamic slice; several: a gather)."""
    index = jnp.asarray(index)
    if index.ndim == 0:
        return jax.lax.dynamic_index_in_dim(array, index, 0, keepdims=False)
    return array[index]


def guarded_row(ok, array, index, new_row):
    """``array`` with row ``index`` set to ``new_row`` if ``ok``, else unchanged (reads one row only)."""
    return write(array, Row(index, new_row), ok)


def all_finite(tree) -> jax.Array:
    """() bool: every leaf of ``tree`` is finite (:class:`Row` values included)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    if not leaves:
        return jnp.ones((), bool)
    # x * 0 is 0 for finite x and NaN for inf or NaN, so the sum is finite iff every entry is
    # (it cannot overflow): one reduction per leaf instead of a test and a reduction
    return jnp.isfinite(sum(jnp.sum(jnp.asarray(leaf) * 0) for leaf in leaves))


def write(old, proposal, ok=True):
    """Apply ``proposal`` to ``old`` if ``ok``; else return ``old`` unchanged, leaf for leaf.

    Args:
        old: a pytree (a state or part of one).
        proposal: a pytree of the same structure whose leaves are new values or :class:`Row`.
        ok: () bool.

    Returns:
        The new pytree: rows written in place, other leaves ``where(ok, new, old)``.
    """
    ok = jnp.asarray(ok, bool)

    def one(new, prev, ok):
        if isinstance(new, Row):
            index = jnp.asarray(new.index)
            kept = jnp.where(ok, jnp.asarray(new.value, prev.dtype), get_row(prev, index))
            return set_row(prev, index, kept) if index.ndim == 0 else prev.at[index].set(kept)
        return jnp.where(ok, jnp.asarray(new, jnp.asarray(prev).dtype), prev)

    # The leaves are written one after another: each write's ``ok`` is the same value made to
    # depend on the previous write (:func:`_after`). Left independent, the dozen writes become ready
    # at once and XLA's CPU runtime hands some of them to another thread, a hand-off that costs more
    # than all the writes (they are tiny); in sequence they run on the thread that computed ``ok``.
    leaves, treedef = jax.tree.flatten(proposal, is_leaf=is_row)
    written = []
    for new, prev in zip(leaves, treedef.flatten_up_to(old), strict=True):
        written.append(one(new, prev, ok))
        ok = _after(ok, written[-1])
    return treedef.unflatten(written)


def _after(ok, written):
    """``ok`` unchanged, computed from an entry of ``written`` so that it comes after it.

    ``(x == x) | (x != x)`` is True for every x, NaN included: the value is ``ok`` whatever was
    written, and XLA keeps the dependency.
    """
    written = jnp.asarray(written)
    if written.size == 0 or not jnp.issubdtype(written.dtype, jnp.floating):
        return ok
    x = jnp.ravel(written)[0]
    return ok & ((x == x) | (x != x))
