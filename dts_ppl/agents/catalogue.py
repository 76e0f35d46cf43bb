"""A catalogue that changes: actions added and retired at run time, with stable ids.

:func:`catalogue` wraps any per-action agent (dTS, HierTS, LinTS, LinUCB, GLM-TS, UCB-GLM, bank
TS, random) built for a *capacity* of K slots:

    cat = catalogue(lambda K: dts(prior, num_actions=K), capacity=128, num_active=100)
    state = cat.init()                              # ids 0..99 active in slots 0..99
    action_id, info = cat.act(key, state, x)        # a stable id, never a retired one
    state = cat.update(state, x, action_id, reward)
    state, new_ids = cat.add_actions(state, 2)      # ids 100, 101 (fresh slots)
    state = cat.retire_actions(state, jnp.array([3]))
    cat, state = grow(cat, state, 256)              # beyond capacity: one recompilation

State (:class:`CatalogueState`): the wrapped agent's state over K slots, ``active`` (K,) bool,
``ids`` (K,) int32 (the stable id in each slot, -1 for a free slot) and ``next_id``. Every
function is pure and jittable; ``add_actions`` and ``retire_actions`` change array *values*
only, so a jitted loop that adds and retires within capacity compiles once.

The rules (docs/catalogue.md, docs/math.md "Catalogue changes"):

- **A fresh slot is the agent's prior for one action.** For dTS that is the conditional prior
  given the current latent posterior: a slot without evidence has Shat_a = S_1 and shift 0, so
  theta_a | psi_1 ~ N(f_1(psi_1), S_1) with psi_1 drawn from its posterior, which carries every
  other action's data (and every retired action's whose evidence was kept). For LinTS it is
  the marginal N(mu_0, Sigma_0); for bank TS uniform weights on the bank.
- **Side information** (``prior_mean``, optional ``prior_cov``): a Gaussian pseudo-observation
  m ~ N(theta_a, C) of the newcomer's parameter, multiplied into that prior. It is written as d
  pseudo-rows through the agent's own ``update_batch`` (rows x_i = sigma r_i, the columns of the
  Cholesky factor R of C^-1 = R R^T times the reward scale sigma, with rewards x_i^T m, so the rows
  add exactly C^-1 to G_a and C^-1 m to b_a). For dTS: theta_a | psi_1, m ~ N(P^-1 (S_1^-1 f_1(psi_1) + C^-1 m), P^-1),
  P = S_1^-1 + C^-1, and m also informs psi_1 as any evidence about theta_a does. Gaussian
  rewards only (a pseudo-row's reward must be real). The step counter is left as it was.
- **Retiring** never chooses the id again and frees its slot (statistics reset, GLM buffer rows
  released). By default (``forget=False``) a dTS / HierTS action's evidence *keeps informing the
  latents*: its message stays in the chain's evidence sum, as if the action still existed but
  was never played again, so retiring does not throw away what it taught about the catalogue.
  ``forget=True`` removes it: the message (recomputed from its statistics, as ``update`` does)
  leaves the sum and the chain is re-run (``agent.forget_groups``), the posterior of an agent
  that never saw that action's data. For agents without latents the two are the same.
- **Late feedback** for a retired id is rejected (eagerly: a ValueError; inside ``jit``: counted
  in the wrapped state's ``rejected``), as is feedback for an id never added.
- **Beyond capacity** :func:`grow` builds the agent for the larger capacity and pads every
  per-slot array with fresh rows (one recompilation of whatever runs on the new shapes);
  ``add_actions`` itself never grows (shapes must stay static inside ``jit``): eagerly it raises
  when too few slots are free, inside ``jit`` the ids that did not fit come back as -1.
- ``copy_from`` (mabwiser's ``warm_start``): a newcomer starts as a copy of an existing action's
  posterior. Only for agents without a latent chain and without a GLM buffer (LinTS, LinUCB with
  Gaussian rewards, bank TS): dTS cold-starts through its chain instead.

Acting reuses :func:`dts_ppl.agents.policy.masked_scores` with the active set as the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.agents import policy
from dts_ppl.agents.base import ActInfo, Agent, AgentSpec
from dts_ppl.agents.registry import register_state
from dts_ppl.core import checks as _checks
from dts_ppl.core.linalg import psd_cholesky, psd_inv

__all__ = ["Catalogue", "CatalogueState", "catalogue", "grow", "slots_of"]

#: Agent kinds whose per-slot arrays the catalogue can reset and pad (one row per action).
SUPPORTED_KINDS = ("dts", "hier_ts", "lin_ts", "lin_ucb", "glm_ts", "ucb_glm", "bank_ts", "random_policy")


class CatalogueState(NamedTuple):
    """State of a catalogue over K slots.

    Attributes:
        inner: the wrapped agent's state (K actions = K slots).
        active: (K,) bool, the slots that may be chosen.
        ids: (K,) int32, the stable id held by each slot (-1: free).
        next_id: () int32, the id the next added action gets.
    """

    inner: Any
    active: Annotated[jax.Array, "K"]
    ids: Annotated[jax.Array, "K"]
    next_id: Annotated[jax.Array, ""]


register_state(CatalogueState)


class Catalogue(NamedTuple):
    """A catalogue-aware agent (pure, jittable functions; see the module docstring).

    Attributes:
        init: ``() -> CatalogueState`` with ``num_active`` actions (ids 0..num_active-1).
        act: ``act(key, state, x) -> (id (), ActInfo)``; the scores (K,) are per slot, -inf where
            inactive; id -1 with ``valid`` False when nothing finite can be chosen.
        update: ``update(state, x, id, reward) -> state``.
        update_batch: ``update_batch(state, X (n, d), ids (n,), y (n,)) -> state``.
        add_actions: ``add_actions(state, n, prior_mean=None, prior_cov=None, copy_from=None)
            -> (state, new ids (n,))``.
        retire_actions: ``retire_actions(state, ids (m,), forget=False) -> state``.
        agent: the wrapped Agent built for ``capacity`` slots.
        make_agent: the factory ``num_actions -> Agent`` (used by :func:`grow`).
        spec: the wrapped agent's AgentSpec (``num_actions`` = capacity).
        num_active: actions active at ``init``.
    """

    init: Callable
    act: Callable
    update: Callable
    update_batch: Callable
    add_actions: Callable
    retire_actions: Callable
    agent: Agent
    make_agent: Callable
    spec: AgentSpec
    num_active: int


def _per_slot(make_agent: Callable, capacity: int, agent: Agent) -> list[bool]:
    """Which leaves of the agent's state hold one row per action (their leading axis grows with K)."""
    small = jax.tree.leaves(jax.eval_shape(agent.init))
    bigger = jax.tree.leaves(jax.eval_shape(make_agent(capacity + 1).init))
    if len(small) != len(bigger):
        raise ValueError("make_agent: agents of different sizes have differently structured states")
    out = []
    for a, b in zip(small, bigger, strict=True):
        if a.shape == b.shape:
            out.append(False)
        elif a.ndim >= 1 and a.shape[0] == capacity and b.shape == (capacity + 1,) + a.shape[1:]:
            out.append(True)
        else:
            raise ValueError(
                f"make_agent: a state leaf of shape {a.shape} does not have one row per action; the catalogue "
                f"supports agents of kinds {SUPPORTED_KINDS}"
            )
    return out


def _history(state):
    """The GLM ring buffer inside a wrapped state, or None."""
    ev = getattr(state, "evidence", None)
    return None if ev is None else ev.history


def slots_of(state: CatalogueState, ids: ArrayLike) -> jax.Array:
    """The slot of each id (..,) among the active ones; -1 where an id is not active. Jittable."""
    ids = jnp.asarray(ids)
    hit = (state.ids == ids[..., None]) & state.active
    return jnp.where(jnp.any(hit, -1), jnp.argmax(hit, -1), -1).astype(jnp.int32)


def _check_ids(name: str, ids, state: CatalogueState, ndim: int) -> jax.Array:
    if ids is None or isinstance(ids, bool | np.bool_ | str | bytes):
        raise ValueError(f"{name}: expected integer action id(s), got {ids!r}")
    try:
        arr = jnp.asarray(ids)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: expected integer action id(s) ({e})") from None
    if arr.ndim != ndim or arr.dtype.kind not in "iu":
        want = "a scalar integer id" if ndim == 0 else "a 1-D array of integer ids"
        raise ValueError(f"{name}: expected {want}, got shape {tuple(arr.shape)} dtype {arr.dtype}")
    if _checks.is_concrete(arr) and all(_checks.is_concrete(v) for v in (state.ids, state.active)):
        slots = np.asarray(slots_of(state, arr))
        if np.any(slots < 0):
            bad = np.asarray(arr).reshape(-1)[np.flatnonzero(slots.reshape(-1) < 0)[0]]
            active = np.asarray(state.ids)[np.asarray(state.active)]
            raise ValueError(
                f"{name}: id {int(bad)} is not an active action of the catalogue (retired or never added; "
                f"active ids: {active.tolist()[:20]}{' ...' if active.size > 20 else ''})"
            )
    return arr.astype(jnp.int32)


def catalogue(
    make_agent: Callable[[int], Agent], capacity: int, num_active: int | None = None, reward_scale: float | None = None
) -> Catalogue:
    """A catalogue of actions over ``capacity`` slots of the agent ``make_agent(capacity)``.

    Args:
        make_agent: ``num_actions -> Agent``, a per-action agent factory (``lambda K: dts(prior,
            num_actions=K)``); called with ``capacity`` (and once with ``capacity + 1`` to find the
            per-slot arrays, and by :func:`grow`).
        capacity: K, the number of slots (>= 1).
        num_active: actions active at ``init`` (ids 0..num_active-1 in slots 0..num_active-1);
            default ``capacity``.
        reward_scale: sigma of the agent's Gaussian reward model, for ``prior_mean`` side
            information; default: read from the agent's fingerprint (its ``Gaussian(scale)``).

    Returns:
        Catalogue (see :class:`Catalogue`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from dts_ppl import DiffusionPrior
        >>> from dts_ppl.agents import dts
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> cat = catalogue(lambda K: dts(prior, num_actions=K), capacity=4, num_active=2)
        >>> state, new = cat.add_actions(cat.init(), 1)
        >>> int(new[0]), int(state.active.sum())
        (2, 3)
    """
    if not callable(make_agent) or isinstance(make_agent, Agent):
        raise ValueError(
            "make_agent: expected a factory num_actions -> Agent (e.g. lambda K: dts(prior, num_actions=K))"
        )
    K = _checks.check_positive_int("capacity", capacity)
    n0 = K if num_active is None else num_active
    if isinstance(n0, bool) or not isinstance(n0, int | np.integer) or not 0 <= n0 <= K:
        raise ValueError(f"num_active: expected an integer in [0, {K}], got {num_active!r}")
    n0 = int(n0)
    agent = make_agent(K)
    spec = getattr(agent, "spec", None)
    if not isinstance(agent, Agent) or spec is None or agent.update_batch is None:
        raise ValueError(f"make_agent: expected it to return a dts_ppl Agent, got {type(agent).__name__}")
    if spec.kind not in SUPPORTED_KINDS:
        raise ValueError(f"make_agent: the catalogue supports agents of kinds {SUPPORTED_KINDS}, got {spec.kind!r}")
    if spec.num_actions != K:
        raise ValueError(f"make_agent: make_agent({K}) built an agent with num_actions={spec.num_actions}")
    if spec.shared:
        raise ValueError(
            "make_agent: a shared-parameter agent needs no catalogue (its actions are rows of x: pass the rows "
            "you have and a mask to agents.policy.act)"
        )
    per_slot = _per_slot(make_agent, K, agent)
    sigma = _reward_scale(spec, reward_scale)

    def init() -> CatalogueState:
        slots = jnp.arange(K, dtype=jnp.int32)
        return CatalogueState(agent.init(), slots < n0, jnp.where(slots < n0, slots, -1), jnp.asarray(n0, jnp.int32))

    def act(key, state: CatalogueState, x):
        scores = policy.masked_scores(agent, key, state.inner, x, state.active)
        live = jnp.where(state.active, scores, 0.0)
        valid = jnp.all(jnp.isfinite(jnp.asarray(x))) & jnp.all(jnp.isfinite(live)) & jnp.any(state.active)
        slot = jnp.argmax(scores)
        return jnp.where(valid, state.ids[slot], -1), ActInfo(scores, valid)

    def update(state: CatalogueState, x, action_id, reward) -> CatalogueState:
        action_id = _check_ids("action", action_id, state, 0)
        return state._replace(inner=agent.update(state.inner, x, slots_of(state, action_id), reward))

    def update_batch(state: CatalogueState, X, ids, y) -> CatalogueState:
        ids = _check_ids("A", ids, state, 1)
        return state._replace(inner=agent.update_batch(state.inner, X, slots_of(state, ids), y))

    def reset(inner, slots):
        """``inner`` with the per-slot rows of ``slots`` (m,) (out of range: skipped) set fresh."""
        fresh = agent.init()
        leaves, tree = jax.tree.flatten(inner)
        new = [
            leaf.at[slots].set(f[jnp.clip(slots, 0, K - 1)], mode="drop") if slotted else leaf
            for leaf, f, slotted in zip(leaves, jax.tree.leaves(fresh), per_slot, strict=True)
        ]
        inner = jax.tree.unflatten(tree, new)
        h = _history(inner)
        if h is not None:  # the slot's buffered GLM rows belong to no action any more
            released = jnp.any(h.group[:, None] == slots[None, :], -1)
            inner = inner._replace(
                evidence=inner.evidence._replace(history=h._replace(group=jnp.where(released, -1, h.group)))
            )
        return inner

    def add_actions(state: CatalogueState, n: int, prior_mean=None, prior_cov=None, copy_from=None):
        """Activate ``n`` (static) free slots under new ids; returns (state, ids (n,), -1 where none was free).

        ``prior_mean`` (n, d) with ``prior_cov`` (d, d) or (n, d, d): side information, a Gaussian
        pseudo-observation of each newcomer; ``copy_from`` (n,) ids: start as copies of them.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n: expected a positive integer (a static number of actions to add), got {n!r}")
        n = int(n)
        if n > K:
            raise ValueError(f"n: asked to add {n} actions to a catalogue of capacity {K} (use grow())")
        free = state.ids < 0
        if _checks.is_concrete(free) and int(np.asarray(free).sum()) < n:
            raise ValueError(
                f"n: only {int(np.asarray(free).sum())} of {K} slots are free, {n} requested; grow the catalogue "
                "first (dts_ppl.agents.catalogue.grow, or Bandit.add_action, which grows)"
            )
        slots = jnp.nonzero(free, size=n, fill_value=K)[0].astype(jnp.int32)
        fits = slots < K
        new_ids = jnp.where(fits, state.next_id + jnp.cumsum(fits) - 1, -1).astype(jnp.int32)
        inner = state.inner
        if copy_from is not None:
            inner = _copy(inner, slots, _check_ids("copy_from", copy_from, state, 1), state, n)
        if prior_mean is not None:
            inner = _side_information(inner, slots, fits, prior_mean, prior_cov, n)
        elif prior_cov is not None:
            raise ValueError("prior_cov: given without prior_mean")
        new = CatalogueState(
            inner,
            state.active.at[slots].set(True, mode="drop"),
            state.ids.at[slots].set(new_ids, mode="drop"),
            state.next_id + jnp.sum(fits, dtype=jnp.int32),
        )
        return new, new_ids

    def _copy(inner, slots, src_ids, state, n):
        if agent.forget_groups is not None or _history(inner) is not None:
            raise ValueError(
                "copy_from: copying a posterior needs an agent without a latent chain and with Gaussian rewards "
                "(LinTS, LinUCB, bank TS); dTS starts a newcomer from its chain's conditional prior"
            )
        if src_ids.shape != (n,):
            raise ValueError(f"copy_from: expected {n} source ids (one per new action), got shape {src_ids.shape}")
        src = slots_of(state, src_ids)
        leaves, tree = jax.tree.flatten(inner)
        new = [
            leaf.at[slots].set(leaf[jnp.maximum(src, 0)], mode="drop") if slotted else leaf
            for leaf, slotted in zip(leaves, per_slot, strict=True)
        ]
        return jax.tree.unflatten(tree, new)

    def _side_information(inner, slots, fits, prior_mean, prior_cov, n):
        if sigma is None:
            raise ValueError(
                f"prior_mean: side information is a Gaussian pseudo-observation written as rows with real rewards; "
                f"it needs Gaussian rewards (this agent's are {spec.likelihood!r})"
            )
        d = spec.dim
        mean = _checks.as_array("prior_mean", prior_mean)
        if mean.shape != (n, d):
            raise ValueError(f"prior_mean: expected shape ({n}, {d}) (one mean per new action), got {mean.shape}")
        _checks.check_finite("prior_mean", mean)
        if prior_cov is None:
            raise ValueError("prior_cov: expected the (d, d) or (n, d, d) covariance C of the side information")
        cov = _checks.as_array("prior_cov", prior_cov)
        if cov.shape == (d, d):
            cov = jnp.broadcast_to(cov, (n, d, d))
        if cov.shape != (n, d, d):
            raise ValueError(f"prior_cov: expected shape ({d}, {d}) or ({n}, {d}, {d}), got {cov.shape}")
        _checks.check_finite("prior_cov", cov)
        floats = [leaf.dtype for leaf in jax.tree.leaves(inner) if jnp.issubdtype(leaf.dtype, jnp.floating)]
        dtype = floats[0] if floats else mean.dtype
        mean, cov = mean.astype(dtype), cov.astype(dtype)
        chol = jax.vmap(psd_cholesky)(jax.vmap(psd_inv)(cov))  # C^-1 = R R^T: the rows are sigma R[:, i]
        X = sigma * jnp.swapaxes(chol, -1, -2)  # (n, d, d): row i of action j, sum_i x_i x_i^T = sigma^2 C^-1
        y = jnp.einsum("nid,nd->ni", X, mean)
        A = jnp.broadcast_to(jnp.where(fits, slots, K)[:, None], (n, d))
        keep = (inner.step, inner.rejected)
        out = agent.update_batch(inner, X.reshape(n * d, d), A.reshape(-1), y.reshape(-1))
        return out._replace(step=keep[0], rejected=keep[1])

    def retire_actions(state: CatalogueState, ids, forget: bool = False) -> CatalogueState:
        """Deactivate ``ids`` (m,) and free their slots; ``forget`` also takes their evidence out of the latents."""
        if not isinstance(forget, bool):
            raise ValueError(f"forget: expected True or False, got {forget!r}")
        ids = _check_ids("ids", ids, state, 1)
        slots = slots_of(state, ids)
        valid = slots >= 0
        inner = state.inner
        if forget and agent.forget_groups is not None:
            inner = agent.forget_groups(inner, jnp.maximum(slots, 0), valid)
        at = jnp.where(valid, slots, K)
        return CatalogueState(
            reset(inner, at),
            state.active.at[at].set(False, mode="drop"),
            state.ids.at[at].set(-1, mode="drop"),
            state.next_id,
        )

    return Catalogue(init, act, update, update_batch, add_actions, retire_actions, agent, make_agent, spec, n0)


def _reward_scale(spec: AgentSpec, reward_scale) -> float | None:
    if spec.likelihood != "gaussian":
        return None
    if reward_scale is not None:
        return _checks.check_scalar("reward_scale", reward_scale)
    lik = (spec.fingerprint or {}).get("likelihood") or {}
    if spec.likelihood == "gaussian" and isinstance(lik.get("scale"), int | float):
        return float(lik["scale"])
    return None


def grow(cat: Catalogue, state: CatalogueState, capacity: int) -> tuple[Catalogue, CatalogueState]:
    """The catalogue rebuilt for a larger ``capacity``, and ``state`` padded with fresh slots.

    Every per-slot array gets ``capacity - K`` rows of the new agent's ``init`` (fresh actions);
    everything else (the latent chain, counters, the GLM buffer) is kept, so the posterior of
    every action is unchanged. The new shapes compile once more.

    Args:
        cat: a Catalogue.   state: its state (K slots).   capacity: the new K' > K.
    Returns:
        (Catalogue over K' slots, CatalogueState over K' slots).
    """
    if not isinstance(cat, Catalogue):
        raise ValueError(f"cat: expected a Catalogue, got {type(cat).__name__}")
    K = cat.spec.num_actions
    new_k = _checks.check_positive_int("capacity", capacity)
    if new_k <= K:
        raise ValueError(f"capacity: expected more than the current {K} slots, got {capacity!r}")
    big = catalogue(cat.make_agent, new_k, num_active=0, reward_scale=_reward_scale(cat.spec, None))
    per_slot = _per_slot(cat.make_agent, K, cat.agent)
    fresh = big.agent.init()
    leaves, tree = jax.tree.flatten(state.inner)
    padded = [
        jnp.concatenate([leaf, f[K:]]) if slotted else leaf
        for leaf, f, slotted in zip(leaves, jax.tree.leaves(fresh), per_slot, strict=True)
    ]
    pad = new_k - K
    new = CatalogueState(
        jax.tree.unflatten(tree, padded),
        jnp.concatenate([state.active, jnp.zeros(pad, bool)]),
        jnp.concatenate([state.ids, jnp.full(pad, -1, jnp.int32)]),
        state.next_id,
    )
    return big._replace(num_active=cat.num_active), new
