"""The agent interface and what every agent shares: input checks and online evidence.

An agent is a NamedTuple of pure functions (BlackJAX style), built by a factory that closes
over the prior and hyper-parameters:

    state = agent.init()
    action, info = agent.act(key, state, x)         # x (d,), or (K, d) action features (shared)
    state = agent.update(state, x, action, reward)

All three are jittable, and vmap over runs. Called eagerly they validate their inputs (shapes
always, values when concrete): wrong shapes, actions out of range and NaN rewards raise
ValueError instead of corrupting the state. Inside ``jit`` values cannot raise, so every update
is guarded (:func:`guard_update`): a round with a non-finite context or reward, or an action
outside [0, K), leaves the state unchanged and adds one to ``state.rejected``; ``act`` on a
non-finite context (or a state whose scores are not finite) returns action -1 with
``info.valid`` False (:func:`guarded_argmax`). The contract is in docs/reliability.md.

Online evidence (docs/math.md section 2). Every agent keeps per-group statistics (G_g, b_g), where a
group is an action (per-action parameters) or the single shared parameter, and updates them
with the likelihood's own method, ``likelihood.add_observation`` (:mod:`dts_ppl.core.likelihoods`).
Gaussian rewards update them exactly in O(d^2). GLM rewards need the played group's
Gaussianised statistics around its regularised fit B_g: a ring buffer holds the last ``history``
observations and ``newton_steps`` damped Newton steps run on the played group's rows,
warm-started at its previous B_g (``likelihood.laplace``, the routine the batch statistics use).
One step costs O(history d^2) whatever t is; the buffer holds the whole history when
``history`` >= the number of rounds (otherwise the oldest rows are forgotten). Agents that know
their prior on theta resolve the GLM expansion point with ``likelihood.for_prior(theta_cov)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Evidence, History, all_finite, guarded_row, set_row

__all__ = [
    "ActInfo",
    "Agent",
    "Evidence",
    "History",
    "all_finite",
    "guarded_row",
    "check_action",
    "check_context",
    "check_glm_options",
    "check_num_actions",
    "check_reward",
    "check_update",
    "set_row",
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
    pure and jittable. ``spec`` (an :class:`AgentSpec`) describes the agent."""

    init: Callable
    act: Callable
    update: Callable
    update_batch: Callable | None = None
    spec: AgentSpec | None = None


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
    shapes, so it also runs (at trace time) under ``jit``.
    """
    cache = {}

    def check(state):
        if "ref" not in cache:
            cache["ref"] = jax.eval_shape(init)
        ref = cache["ref"]
        if type(state) is not type(ref):
            want = type(ref).__name__
            raise ValueError(f"{name}: expected a {want} from this agent's init(), got {type(state).__name__}")
        got, want = jax.tree.leaves(state), jax.tree.leaves(ref)
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


def update_ok(x, action, reward, num_actions: int):
    """() bool, jittable: the context and reward are finite and the action is in [0, num_actions)."""
    action = jnp.asarray(action)
    in_range = (action >= 0) & (action < num_actions)
    if jnp.issubdtype(action.dtype, jnp.floating):
        in_range = in_range & (action == jnp.round(action))
    return jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(reward)) & in_range


def sanitise_update(phi, group, y, ok):
    """Finite stand-ins (0, group 0, 0) for a rejected round, so its (discarded) update stays finite."""
    return jnp.where(ok, phi, 0), jnp.where(ok, group, 0), jnp.where(ok, y, 0)


def increment_ok(likelihood, phi, y):
    """() bool: the Gaussian evidence increment (phi phi^T, y phi) / sigma^2 does not overflow."""
    if not likelihood.is_exact:  # GLM increments come from a refit, checked where it is written
        return jnp.ones((), bool)
    prec = 1.0 / likelihood.scale**2
    return jnp.all(jnp.isfinite(prec * jnp.outer(phi, phi))) & jnp.all(jnp.isfinite(prec * y * phi))


def check_overflow(inputs_ok, ok, dtype) -> None:
    """Eagerly (concrete values), raise when valid inputs made the update non-finite."""
    if _checks.is_concrete(ok) and _checks.is_concrete(inputs_ok) and bool(inputs_ok) and not bool(ok):
        raise ValueError(
            f"x: this update overflows the state's precision (a context or reward too large for {dtype}?); "
            "rescale the inputs"
        )


def guard_update(state, new_state, ok, guarded=()):
    """``new_state`` if ``ok`` and finite, else ``state``, counting a rejected round in ``rejected``.

    An update whose inputs passed :func:`update_ok` can still overflow (a context of 1e30 in
    float32): the new state is checked too, so no update ever leaves a NaN or inf in the state.
    Called eagerly, such an overflow raises instead (the inputs were valid).

    Fields named in ``guarded`` are taken from ``new_state`` as they are: the caller has already
    kept their old values for a rejected round row by row (:func:`guarded_row`, the ``ok``
    argument of :func:`update_evidence`) and folded their finiteness into ``ok``. A ``where`` over
    a whole (K, d, d) array costs a full copy per round inside a vmapped scan (measured 11x
    slower at K = 2000, d = 10: studies/performance/guard_overhead.py), a row costs O(d^2).

    Args:
        state, new_state: agent states (NamedTuples with a ``rejected`` () int32 field).
        ok: () bool from :func:`update_ok`.
        guarded: field names already guarded by the caller.
    Returns:
        The guarded state.
    """
    new_state = new_state._replace(rejected=0)
    small = {k: v for k, v in new_state._asdict().items() if k not in guarded and k != "rejected"}
    finite = all_finite(small)
    if _checks.is_concrete(ok) and _checks.is_concrete(finite) and bool(ok) and not bool(finite):
        raise ValueError(
            "x: this update overflows the state's precision (a context or reward too large for "
            f"{jax.tree.leaves(state)[0].dtype}?); rescale the inputs"
        )
    ok = ok & finite
    old = state._asdict()
    kept = {k: jax.tree.map(lambda n, o: jnp.where(ok, n, o), v, old[k]) for k, v in small.items()}
    return new_state._replace(**kept, rejected=jnp.asarray(state.rejected, jnp.int32) + (~ok).astype(jnp.int32))


def guarded_argmax(scores, x):
    """(action, ActInfo): argmax of finite scores; -1 and ``valid=False`` when x or the scores are not finite.

    Called eagerly (x already checked finite) non-finite scores raise: the context overflows
    the state's precision, or the state itself is not finite.
    """
    valid = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(scores))
    if _checks.is_concrete(valid) and not bool(valid):
        raise ValueError(
            f"x: the scores are not finite (a context too large for {scores.dtype}, or a non-finite state)"
        )
    action = jnp.where(valid, jnp.argmax(scores), -1)
    return action, ActInfo(scores, valid)


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
    return arr.astype(jnp.int32)


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


def check_update(x, action, reward, num_actions: int, dim: int, shared: bool, likelihood):
    x = check_context(x, num_actions, dim, shared)
    action = check_action(action, num_actions)
    reward = check_reward(reward, likelihood)
    phi = x[action] if shared else x
    group = jnp.zeros((), jnp.int32) if shared else action
    return phi, group, reward.astype(phi.dtype)


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
