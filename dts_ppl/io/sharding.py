"""Split an agent's state along the action axis across devices (and hosts) with ``jax.sharding``.

Every per-action array of an agent state (leading axis K: the dTS conditionals Shat_a and shifts,
each action's statistics (G_a, b_a), LinTS's means and covariances) is placed on a
:class:`jax.sharding.NamedSharding` over a one-axis mesh named ``"actions"``, each device owning
K / num_devices actions; everything else (the latent chain, running sums, counters, the GLM
history buffer, exact TS's dense joint) is replicated. The agent's own jitted ``act`` and
``update`` then run unchanged: XLA partitions them (GSPMD), so acting computes every device's
scores locally and reduces the arg-max across devices, and an update writes only the owning
shard's row. Nothing here is a second implementation of an agent.

Several hosts: start every process with :func:`jax.distributed.initialize` (on CPU also
``jax.config.update("jax_cpu_collectives_implementation", "gloo")``), build the same agent and
state in every process, and call :func:`shard_state` with the global mesh; :func:`gather_state`
brings a sharded state back to every host as NumPy arrays. docs/performance.md shows a
several-GPU run.

Results equal the single-device run up to floating-point reassociation in cross-device reductions
(tested on 4 forced host devices and on two localhost processes: same actions, state within
1e-6 relative in float32).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "actions"


def action_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"actions"`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices: expected at least one device")
    return Mesh(np.array(devices), (AXIS,))


def _field_names(path) -> set:
    return {getattr(p, "name", None) for p in path}


def _is_action_leaf(path, leaf, num_actions: int) -> bool:
    return (
        hasattr(leaf, "shape")
        and np.ndim(leaf) >= 1
        and leaf.shape[0] == num_actions
        and "history" not in _field_names(path)  # the GLM ring buffer is indexed by time, not action
    )


def state_shardings(state, mesh: Mesh, num_actions: int):
    """The NamedSharding of every leaf of ``state``: split along ``"actions"`` or replicated."""
    if isinstance(num_actions, bool) or not isinstance(num_actions, int | np.integer) or num_actions < 1:
        raise ValueError(f"num_actions: expected a positive integer, got {num_actions!r}")
    size = mesh.shape[AXIS]
    split, replicated = NamedSharding(mesh, PartitionSpec(AXIS)), NamedSharding(mesh, PartitionSpec())

    def one(path, leaf):
        if _is_action_leaf(path, leaf, num_actions):
            if num_actions % size:
                raise ValueError(
                    f"num_actions: K = {num_actions} must be a multiple of the {size} devices of the mesh "
                    "(pad the catalogue with never-available actions, or use fewer devices)"
                )
            return split
        return replicated

    return jax.tree_util.tree_map_with_path(one, state)


def shard_state(state, mesh: Mesh, num_actions: int):
    """``state`` with its per-action arrays split across ``mesh`` (see the module docstring).

    Works with one process and with several (every process passes the same ``state``).
    """
    shardings = state_shardings(state, mesh, num_actions)

    def put(leaf, sharding):
        if leaf is None:
            return None
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, state, shardings)


def replicate(value, mesh: Mesh):
    """A host value (a context, a key, a reward) as an array replicated on every device of ``mesh``."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda v: jax.make_array_from_callback(np.shape(v), sharding, lambda i: np.asarray(v)[i]), value
    )


def gather_state(state):
    """Every leaf of a (possibly multi-host) sharded state as a NumPy array on this host."""
    return jax.tree.map(lambda leaf: np.asarray(multihost_utils.process_allgather(leaf, tiled=True)), state)
