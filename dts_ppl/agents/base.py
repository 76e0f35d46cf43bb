"""The agent interface and what every agent shares: input checks and online evidence.

An agent is a NamedTuple of pure functions (BlackJAX style), built by a factory that closes
over the prior and hyper-parameters:

    state = agent.init()
    action, info = agent.act(key, state, x)         # x (d,), or (K, d) action features (shared)
    state = agent.update(state, x, action, reward)

All three are jittable, and vmap over runs. Called eagerly they validate their inputs (shapes
always, values when concrete): wrong shapes, actions out of range and NaN rewards raise
ValueError instead of corrupting the state. Inside ``jit`` values cannot raise, so every update
is guarded (:mod:`dts_ppl.agents.guard`): a round with a non-finite context, a reward outside the
likelihood's support or an action outside [0, K) leaves the state unchanged and adds one to
``state.rejected``, and so does a round whose new statistics would not be finite; ``act`` on a
non-finite context (or a state whose scores are not finite) returns action -1 with
``info.valid`` False. The contract is in docs/reliability.md.

Online evidence (docs/math.md section 2). Every agent keeps per-group statistics (G_g, b_g), where a
group is an action (per-action parameters) or the single shared parameter, and updates them
with the likelihood's own method, ``likelihood.propose_observation`` (:mod:`dts_ppl.core.likelihoods`).
Gaussian rewards update them exactly in O(d^2). GLM rewards need the played group's
Gaussianised statistics around its regularised fit B_g: a ring buffer holds the last ``history``
observations and ``newton_steps`` damped Newton steps run on the played group's rows,
warm-started at its previous B_g (``likelihood.laplace``, the routine the batch statistics use).
One step costs O(history d^2) whatever t is; the buffer holds the whole history when
``history`` >= the number of rounds (otherwise the oldest rows are forgotten). Agents that know
their prior on theta resolve the GLM expansion point with ``likelihood.for_prior(theta_cov)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Bernoulli, Gaussian, Poisson

__all__ = [
    "ActInfo",
    "Agent",
    "AgentSpec",
    "check_action",
    "check_context",
    "check_glm_options",
    "check_num_actions",
    "check_reward",
    "check_update",
    "fast_action",
    "fast_context",
    "fast_reward",
    "host_support",
    "moderate_limit",
    "state_checker",
]


class AgentSpec(NamedTuple):
    """What an agent is, for checkpoints and the practitioner API (plain Python values).

    Attributes:
        kind: the factory's name ("dts", "hier_ts", "lin_ts", "lin_ucb", "glm_ts", "ucb_glm", "exact_ts").
        num_actions: K.   dim: d.   num_levels: L of the diffusion prior (0 for the linear baselines).
        shared: one parameter for all actions (``x`` is then (K, d)).
        likelihood: the reward model's name ("gaussian", "bernoulli", "poisson").
        deterministic: ``act`` ignores its key (UCB agents).
        fingerprint: what a state's meaning depends on beyond its shapes (prior arrays,
            likelihood parameters, update options), as plain JSON values
            (:func:`dts_ppl.agents.registry.model_fingerprint`); checkpoints store and compare it.
    """

    kind: str
    num_actions: int
    dim: int
    num_levels: int
    shared: bool
    likelihood: str
    deterministic: bool = False
    fingerprint: dict | None = None


class Agent(NamedTuple):
    """A bandit agent: ``init() -> state``, ``act(key, state, x) -> (action, info)``,
    ``update(state, x, action, reward) -> state``, ``update_batch(state, X, A, y) -> state``
    (rows X (n, d) or (n, K, d) shared, A (n,), y (n,); see :mod:`dts_ppl.agents.batch`); all
    pure and jittable. ``spec`` (an :class:`AgentSpec`) describes the agent. ``forget_groups``
    (agents with a shared latent chain: dTS, HierTS) takes groups' evidence out of the latents
    (:mod:`dts_ppl.agents.catalogue`).

    ``score(key, state, x) -> (K,)`` (agents built by :func:`dts_ppl.agents.guard.guarded_agent`,
    the optimistic policies, the random policy; None otherwise): the scores ``act`` takes the
    argmax of, from the same function with the same use of the key, so
    ``agent.score(key, state, x)`` equals ``agent.act(key, state, x)[1].scores`` bit for bit. It
    is pure, jitted, vmappable and callable inside another agent's jitted code (unlike ``act``,
    whose eager call may read validity back): one Thompson draw of every action's score (or the
    UCB agents' upper bounds), with no input checks beyond the key's and the state's shapes (a
    non-finite context gives non-finite scores)."""

    init: Callable
    act: Callable
    update: Callable
    update_batch: Callable | None = None
    spec: AgentSpec | None = None
    forget_groups: Callable | None = None
    score: Callable | None = None


class ActInfo(NamedTuple):
    """What ``act`` saw.

    Attributes:
        scores: (K,) the score of every action (a Thompson sample or an upper bound).
        valid: () bool, False when the context or the scores were not finite; the action is
            then -1 (which a guarded ``update`` rejects).
    """

    scores: Annotated[jax.Array, "K"]
    valid: Annotated[jax.Array, ""] | bool = True


# ------------------------------------------------------------------------------------- checks


check_key = _checks.check_key


def state_checker(init: Callable, name: str = "state"):
    """A check that a state has the structure and shapes of ``init()`` (one agent's states only).

    The reference shapes come from ``jax.eval_shape(init)`` on first use; the check reads only
    shapes, so it also runs (at trace time) under ``jit``. A state whose tree structure and leaf
    shapes equal the reference's passes after one flatten and one tuple comparison.
    """
    cache = {}

    def reference():
        if "ref" not in cache:
            ref = jax.eval_shape(init)
            leaves, treedef = jax.tree.flatten(ref)
            cache["ref"] = (ref, treedef, tuple(w.shape for w in leaves))
        return cache["ref"]

    def check(state):
        ref, treedef, shapes = reference()
        leaves, got_def = jax.tree.flatten(state)
        if got_def == treedef and tuple(np.shape(g) for g in leaves) == shapes:
            return state
        if type(state) is not type(ref):
            want = type(ref).__name__
            raise ValueError(f"{name}: expected a {want} from this agent's init(), got {type(state).__name__}")
        got, want = leaves, jax.tree.leaves(ref)
        if len(got) != len(want):
            raise ValueError(f"{name}: does not match this agent's init() (another likelihood or history size?)")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if jnp.shape(g) != w.shape:
                raise ValueError(
                    f"{name}: leaf {i} has shape {tuple(jnp.shape(g))}, this agent's init() gives {w.shape} "
                    "(a state of an agent with another num_actions, dim or history?)"
                )
        return state

    return check


def check_num_actions(num_actions) -> int:
    return _checks.check_positive_int("num_actions", num_actions)


def check_context(x, num_actions: int, dim: int, shared: bool):
    """x (d,) for per-action parameters, (K, d) action features for the shared variant."""
    shape = (num_actions, dim) if shared else (dim,)
    what = "action features (K, d)" if shared else "a context (d,)"
    if x is None or isinstance(x, str | bytes):
        raise ValueError(f"x: expected {what} of shape {shape}, got {x!r}")
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"x: expected {what} of shape {shape} ({e})") from None
    if arr.shape != shape:
        raise ValueError(f"x: expected {what} of shape {shape}, got {tuple(arr.shape)}")
    if not _checks.is_real_dtype(arr.dtype):
        raise ValueError(f"x: expected a real array, got dtype {arr.dtype}")
    _checks.check_finite("x", arr)
    return arr


def check_action(action, num_actions: int):
    if action is None or isinstance(action, bool | np.bool_ | str | bytes):
        raise ValueError(f"action: expected an integer in [0, {num_actions}), got {action!r}")
    if isinstance(action, int | np.integer) and not 0 <= int(action) < num_actions:
        raise ValueError(f"action: expected an integer in [0, {num_actions}), got {action!r}")
    try:
        arr = jnp.asarray(action)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"action: expected an integer in [0, {num_actions}) ({e})") from None
    if arr.ndim != 0:
        raise ValueError(f"action: expected a scalar action index, got shape {tuple(arr.shape)}")
    if _checks.is_concrete(arr):
        v = np.asarray(arr)
        if v.dtype.kind not in "iu" or not 0 <= int(v) < num_actions:
            raise ValueError(f"action: expected an integer in [0, {num_actions}), got {v!r}")
    return arr


def check_reward(reward, likelihood):
    if reward is None or isinstance(reward, bool | np.bool_ | str | bytes):
        raise ValueError(f"reward: expected a real scalar, got {reward!r}")
    if isinstance(reward, int):
        reward = float(reward)  # a Python int beyond int32 would overflow in jnp.asarray
    try:
        arr = jnp.asarray(reward)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"reward: expected a real scalar, got {reward!r} ({e})") from None
    if not _checks.is_real_dtype(arr.dtype):
        raise ValueError(f"reward: expected a real scalar, got dtype {arr.dtype}")
    if arr.ndim != 0:
        raise ValueError(f"reward: expected a scalar reward, got shape {tuple(arr.shape)}")
    likelihood.check_rewards("reward", arr)
    return arr


# ------------------------------------------------------------------------- the eager fast path
# An eager call must not wait for the compiled computation to learn whether its inputs were
# valid: these accept, on the host and in a few microseconds, the arguments whose types, shapes
# and values need no conversion and no error (a finite context, an action in range, a reward in
# the likelihood's support), all of *moderate* size (:func:`moderate_limit`), so that the
# update cannot overflow on their account. Accepted arguments go to the compiled call, whose
# result is not read back. Anything else (lists, strings, bools, wrong shapes, bad or huge
# values) returns None: the full checks above then raise, or the compiled call's status is read.


@functools.lru_cache(maxsize=64)
def _real_dtype(dtype) -> bool:
    return _checks.is_real_dtype(dtype)


@functools.lru_cache(maxsize=64)
def _integer_dtype(dtype) -> bool:
    return dtype != jnp.bool_ and jnp.issubdtype(dtype, jnp.integer)


@functools.lru_cache(maxsize=16)
def moderate_limit(dtype) -> float:
    """finfo(dtype).max ** (1/8): the largest |input| an eager call accepts on a host check alone.

    About 2^16 = 65536 in float32 and 2^128 = 3.4e38 in float64.

    Statistics hold up to fourth powers of a context or reward times the state's own values,
    so inputs within this limit cannot overflow the state on their own account; larger ones take
    the path that reads the compiled call's status back (and raise on an overflow).
    """
    return float(np.float64(jnp.finfo(dtype).max) ** 0.125)


def _array(v) -> bool:
    """A concrete JAX or NumPy array (not a tracer)."""
    return isinstance(v, np.ndarray) or (isinstance(v, jax.Array) and not isinstance(v, jax.core.Tracer))


def _moderate(arr, limit: float) -> bool:
    """Every value of a concrete real array finite with |value| <= limit (NaN compares False)."""
    v = np.asarray(arr)
    if v.size <= 64:  # Python floats beat a NumPy reduction on the few values of one context
        return all(-limit <= t <= limit for t in v.ravel().tolist())
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    return float(np.abs(v).max()) <= limit


def fast_context(x, shape: tuple, limit: float = float(np.finfo(np.float64).max)):
    """``x`` when it is a concrete real array of ``shape`` whose values are finite and within +-limit, else None."""
    if _array(x) and x.shape == shape and _real_dtype(x.dtype) and _moderate(x, limit):
        return x
    return None


def fast_action(action, num_actions: int):
    """``action`` when it is an int, NumPy integer or concrete 0-d integer array in [0, num_actions), else None."""
    if type(action) is int or isinstance(action, np.integer):
        return action if 0 <= action < num_actions else None
    if _array(action) and action.ndim == 0 and _integer_dtype(action.dtype):
        return action if 0 <= int(np.asarray(action)) < num_actions else None
    return None


_BIG_INT = 2**53


def host_support(likelihood) -> Callable | None:
    """``in_support(value: float) -> bool`` on the host for the package's likelihoods (None: unknown).

    Finite for Gaussian rewards (and for agents without a likelihood), 0 or 1 for Bernoulli, a
    non-negative integer for Poisson; the same rule as ``likelihood.in_support``, read from which
    class's method the likelihood uses (a subclass that overrides it gets None).
    """
    if likelihood is None:
        return math.isfinite
    method = getattr(type(likelihood), "in_support", None)
    if method is Gaussian.in_support:
        return math.isfinite
    if method is Bernoulli.in_support:
        return lambda v: v == 0.0 or v == 1.0
    if method is Poisson.in_support:
        return lambda v: math.isfinite(v) and v >= 0.0 and v == math.floor(v)
    return None


def fast_reward(reward, support: Callable | None = math.isfinite, limit: float = float(np.finfo(np.float64).max)):
    """``reward`` (a Python int as a float) when it is a real scalar in ``support`` with |reward| <= limit, else None.

    ``support`` is a host test (:func:`host_support`); None accepts nothing (the full checks decide).
    """
    if support is None:
        return None
    kind = type(reward)
    if kind is float:
        value = reward
    elif kind is int:
        if not -_BIG_INT <= reward <= _BIG_INT:
            return None
        value = reward = float(reward)
    elif isinstance(reward, np.floating | np.integer) and not isinstance(reward, np.bool_):
        value = float(reward)
    elif _array(reward) and reward.ndim == 0 and _real_dtype(reward.dtype):
        value = float(np.asarray(reward))
    else:
        return None
    return reward if abs(value) <= limit and support(value) else None


def check_update(x, action, reward, num_actions: int, dim: int, shared: bool, likelihood):
    """The checked arrays (x, action, reward) of one round (shapes always, values when concrete).

    No computation runs on them here: the played row is taken inside the compiled update
    (:func:`dts_ppl.agents.guard.played_row`), so an eager call costs one dispatch.
    """
    return (
        check_context(x, num_actions, dim, shared),
        check_action(action, num_actions),
        check_reward(reward, likelihood),
    )


# ----------------------------------------------------------------------------- online evidence
# Evidence, History and the update formulas live with the likelihoods
# (``likelihood.init_evidence``, ``likelihood.add_observation``); re-exported here.


def check_glm_options(likelihood, history: int, newton_steps: int):
    """Check the likelihood and, for GLM (inexact) likelihoods, the buffer size and Newton steps."""
    if not all(hasattr(likelihood, m) for m in ("statistics", "check_rewards", "add_observation", "for_prior")):
        raise ValueError(
            f"likelihood: expected a dts_ppl likelihood (Gaussian, Bernoulli, Poisson), got {likelihood!r}"
        )
    if not likelihood.is_exact:
        _checks.check_positive_int("history", history, "a positive buffer size for GLM rewards")
        _checks.check_positive_int("newton_steps", newton_steps)
