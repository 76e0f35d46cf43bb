"""One safe-update protocol for every agent: ``update = guarded(step)``.

An agent's mathematics is a pure ``step(state, phi, group, y) -> proposal`` (and, for batches,
``step_batch(state, phi, group, y, ok) -> proposal``): a pytree shaped like the state whose leaves
are new values or :class:`~dts_ppl.core.rows.Row` writes, nothing written yet. The combinators here
add everything else, once for all agents:

1. Eagerly, the inputs are checked (shapes, types, values) and bad ones raise a ValueError
   naming the argument; inside ``jit`` they cannot raise, so each round gets ``ok``: a finite
   context, an integer action in [0, K), a reward in the likelihood's support
   (``likelihood.in_support``: finite; 0/1 for Bernoulli; a non-negative integer for Poisson),
   a reward whose square the state's dtype can represent (|reward| <= sqrt(finfo.max):
   1.8e19 in float32, 1.3e154 in float64; the evidence and the log-likelihood hold reward
   squares) and, when the agent was given ``reward_bound``, |reward| <= reward_bound.
2. A rejected round's inputs are replaced by finite stand-ins (phi 0, group 0, y 0), so the
   proposal stays finite and cheap.
3. The proposal is checked whole (every new statistic, conditional and latent row finite)
   *before* anything is written, then written row by row only if the round is accepted
   (:func:`dts_ppl.core.rows.write`). A rejected round leaves every array bit-identical and adds
   one to ``state.rejected``. Eagerly, valid inputs whose proposal overflows raise instead.
4. The functions are compiled once per input shape (``jax.jit`` inside the factory), so an eager
   loop costs what a jitted one does; inside a user's ``jit``, ``vmap`` or ``scan`` they are
   inlined as usual. Eagerly, arguments of the expected types and shapes whose values pass the
   host checks (a finite context, an action in range, a reward in the likelihood's support, all
   within :func:`~dts_ppl.agents.base.moderate_limit` of the state's dtype) go to the compiled
   call, which is not waited for: the state's shapes are checked when a shape is first traced,
   and nothing is read back. Other arguments take the checked path: the Python checks raise the
   error naming a bad argument, and the compiled call returns one status code (its bits: a
   context, action or reward that fails its check, a reward beyond the bound, a proposal that is
   not finite), read back once, so an overflow raises. A proposal that is not finite although
   every input was moderate (a state already at the edge of its dtype, a hand-made non-finite
   state) is rejected and counted eagerly too, as inside ``jit``; ``act`` on such a state returns
   action -1 with ``info.valid`` False.

The stated rule for rewards (docs/reliability.md): a reward outside the likelihood's support is
an input error (raised eagerly, rejected and counted inside ``jit``); a finite reward beyond
sqrt(finfo.max) of the state's dtype, or beyond the agent's optional ``reward_bound``, is rejected
and counted in both modes (never raised: an outlier in a live stream should not stop it).

A batch is accepted row by row (the same ``ok`` per row, bad rows dropped and counted), then its
summed proposal is checked as a whole: rows that overflow only together reject the whole batch
(every row counted in ``rejected``; eagerly, a ValueError).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents import batch as _batch
from dts_ppl.agents.base import (
    ActInfo,
    Agent,
    AgentSpec,
    check_context,
    check_key,
    check_update,
    fast_action,
    fast_context,
    fast_reward,
    host_support,
    moderate_limit,
    state_checker,
)
from dts_ppl.core import checks as _checks
from dts_ppl.core.rows import all_finite, write

__all__ = [
    "check_reward_bound",
    "guarded",
    "guarded_act",
    "guarded_agent",
    "guarded_batch",
    "jitted_score",
    "largest_reward",
    "played_row",
    "round_flags",
    "round_ok",
    "sanitise",
    "state_limit",
]


def check_reward_bound(reward_bound) -> float | None:
    """None (no bound) or a positive finite float: the largest |reward| an agent accepts."""
    if reward_bound is None:
        return None
    return _checks.check_scalar("reward_bound", reward_bound)


def largest_reward(dtype) -> float:
    """The largest |reward| a state of ``dtype`` accepts whatever the bound: sqrt(finfo(dtype).max)."""
    return float(np.sqrt(np.float64(jnp.finfo(dtype).max)))


def round_flags(x, action, reward, num_actions: int, likelihood=None, reward_bound: float | None = None, dtype=None):
    """(context, action, support, bound) () bools, jittable: the four conditions of :func:`round_ok`.

    context: x finite.   action: an integer in [0, num_actions).   support: the reward in the
    likelihood's support (finite when there is no likelihood).   bound: |reward| <=
    sqrt(finfo.max) of ``dtype`` (default: the reward's floating dtype) and within ``reward_bound``.
    """
    action = jnp.asarray(action)
    reward = jnp.asarray(reward)
    if not jnp.issubdtype(reward.dtype, jnp.floating):
        reward = reward.astype(jnp.result_type(float))
    reward = reward.astype(dtype or reward.dtype)
    in_range = (action >= 0) & (action < num_actions)
    if jnp.issubdtype(action.dtype, jnp.floating):
        in_range = in_range & (action == jnp.round(action))
    supported = jnp.isfinite(reward) if likelihood is None else likelihood.in_support(reward) & jnp.isfinite(reward)
    bound = largest_reward(reward.dtype) if reward_bound is None else min(reward_bound, largest_reward(reward.dtype))
    return jnp.all(jnp.isfinite(x)), in_range, supported, jnp.abs(reward) <= bound


def round_ok(x, action, reward, num_actions: int, likelihood=None, reward_bound: float | None = None, dtype=None):
    """() bool, jittable: a round the agent accepts (before looking at what it would write).

    The context is finite, the action an integer in [0, num_actions), the reward in the
    likelihood's support (finite when there is no likelihood), |reward| <= sqrt(finfo.max) of
    ``dtype`` (default: the reward's floating dtype) and within ``reward_bound``.
    """
    context, in_range, supported, bounded = round_flags(x, action, reward, num_actions, likelihood, reward_bound, dtype)
    return context & in_range & supported & bounded


#: bits of the code an eager update reads back: inputs that raise (context, action, support), a
#: reward beyond the bound (rejected and counted, never raised), a proposal that is not finite
_BAD_CONTEXT, _BAD_ACTION, _BAD_REWARD, _BEYOND_BOUND, _OVERFLOW = 1, 2, 4, 8, 16
_RAISING_INPUTS = _BAD_CONTEXT | _BAD_ACTION | _BAD_REWARD


def _code(*bad):
    """One int32 of bits from () bools that are True when something is wrong (one host read)."""
    return sum(jnp.where(b, jnp.int32(1 << i), jnp.int32(0)) for i, b in enumerate(bad))


def sanitise(phi, group, y, ok):
    """Finite stand-ins (0, group 0, 0) for a rejected round, so its (discarded) proposal stays finite."""
    return jnp.where(ok, phi, 0), jnp.where(ok, group, 0), jnp.where(ok, y, 0)


def played_row(x, action, reward, num_actions: int, shared: bool):
    """(phi (d,), group () int32, y ()) of one round, jittable: the played action's features and group.

    ``phi`` is x (d,) for per-action parameters, row ``action`` of the features x (K, d) when
    ``shared`` (group 0). Integer contexts become floats; an out-of-range action is clipped here
    (the guard rejects its round).
    """
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    a = jnp.clip(jnp.asarray(action), 0, num_actions - 1).astype(jnp.int32)
    phi = x[a] if shared else x
    group = jnp.zeros((), jnp.int32) if shared else a
    return phi, group, jnp.asarray(reward).astype(phi.dtype)


def state_limit(init: Callable) -> Callable[[], float]:
    """``() -> float``: :func:`~dts_ppl.agents.base.moderate_limit` of the state's floating dtype (computed once)."""
    cache = []

    def limit() -> float:
        if not cache:
            leaves = jax.tree.leaves(jax.eval_shape(init))
            floats = [leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)]
            cache.append(moderate_limit(floats[0] if floats else jnp.result_type(float)))
        return cache[0]

    return limit


def _overflow_error(dtype) -> ValueError:
    return ValueError(
        f"x: this update overflows the state's precision (a context or reward too large for {dtype}?); "
        "rescale the inputs"
    )


def _commit(state, proposal, ok, rejected):
    """``proposal`` written over ``state`` if ``ok``, with ``rejected`` rounds added to its count."""
    new = write(state, proposal._replace(rejected=state.rejected), ok)
    return new._replace(rejected=jnp.asarray(state.rejected, jnp.int32) + jnp.asarray(rejected, jnp.int32))


def guarded(
    step: Callable,
    check_inputs: Callable,
    check_state: Callable,
    num_actions: int,
    likelihood=None,
    reward_bound: float | None = None,
    shared: bool = False,
    fast_inputs: Callable | None = None,
) -> Callable:
    """``update(state, x, action, reward) -> state`` from a pure step, under the guard.

    Args:
        step: ``step(state, phi, group, y) -> proposal`` (the state's structure; leaves are new
            values or Rows). It sees sanitised inputs when the round is rejected.
        check_inputs: ``check_inputs(x, action, reward) -> (x, action, reward)``, the checks
            (shapes always, values when concrete) returning arrays; the played row is taken
            inside the compiled update (:func:`played_row`).
        check_state: raises when a state is not this agent's (shapes only).
        num_actions: K.   likelihood: the agent's reward model (for its support), or None.
        reward_bound: None, or the largest |reward| accepted (larger ones are rejected and counted).
        shared: one parameter for all actions (``x`` holds (K, d) action features).
        fast_inputs: optional ``fast_inputs(x, action, reward) -> (x, action, reward) | None``:
            the arguments when their types, shapes and values were checked on the host and are
            of moderate size (nothing to raise, no overflow on their account), None otherwise.
            Accepted arguments go to the compiled update without waiting for it; the others
            go through ``check_inputs`` and one host read of the compiled update's status code.

    Returns:
        The update function (jitted per input shape).
    """

    def core(state, x, action, reward):
        check_state(state)  # shapes only: runs when this shape is traced, also for the eager fast path
        phi, group, y = played_row(x, action, reward, num_actions, shared)
        context, in_range, supported, bounded = round_flags(
            x, action, reward, num_actions, likelihood, reward_bound, phi.dtype
        )
        inputs_ok = context & in_range & supported & bounded
        proposal = step(state, *sanitise(phi, group, y, inputs_ok))
        finite = all_finite(proposal._replace(rejected=0))
        ok = inputs_ok & finite
        return _commit(state, proposal, ok, ~ok), _code(~context, ~in_range, ~supported, ~bounded, ~finite)

    compiled = jax.jit(core)

    def update(state, x, action, reward):
        args = None if fast_inputs is None else fast_inputs(x, action, reward)
        if args is not None:  # checked on the host: nothing to raise, the status is not read
            try:
                return compiled(state, *args)[0]
            except TypeError:  # a state that is not a pytree of arrays
                check_state(state)
                raise
        check_state(state)
        new, code = compiled(state, *check_inputs(x, action, reward))
        if not _checks.is_concrete(code):
            return new
        code = int(np.asarray(code))
        if code & _RAISING_INPUTS:
            check_inputs(x, action, reward)  # raises the error that names the bad argument
        elif code & _OVERFLOW and not code & _BEYOND_BOUND:
            raise _overflow_error(jax.tree.leaves(state)[0].dtype)
        return new

    return update


def guarded_batch(
    step_batch: Callable,
    check_rows: Callable,
    check_state: Callable,
    num_actions: int,
    likelihood=None,
    reward_bound: float | None = None,
) -> Callable:
    """``update_batch(state, X, A, y) -> state`` from a pure batch step, under the guard.

    Args:
        step_batch: ``step_batch(state, phi (n, d), group (n,), y (n,), ok (n,)) -> proposal``,
            adding the rows with ``ok`` (the others are sanitised stand-ins to be ignored).
        check_rows: ``check_rows(X, A, y) -> (X, A, y, phi, group)``: the checked arrays and the
            played rows (eager checks: shapes and types always, values when concrete).
        Others as :func:`guarded`.

    Returns:
        The batch update function (jitted per input shape). A batch of 0 rows returns the state.
    """

    def core(state, X, A, y, phi, group):
        ok = jax.vmap(lambda x, a, r: round_ok(x, a, r, num_actions, likelihood, reward_bound, phi.dtype))(X, A, y)
        phi, group, y = jax.vmap(sanitise)(phi, group, y.astype(phi.dtype), ok)
        proposal = step_batch(state, phi, group, y, ok)
        fine = all_finite(proposal._replace(rejected=0))
        n = X.shape[0]
        n_ok = jnp.sum(ok, dtype=jnp.int32)
        return _commit(state, proposal, fine, jnp.where(fine, n - n_ok, n)), fine

    compiled = jax.jit(core)

    def update_batch(state, X, A, y):
        check_state(state)
        X, A, y, phi, group = check_rows(X, A, y)
        if not jnp.issubdtype(phi.dtype, jnp.floating):
            phi = phi.astype(jnp.result_type(float))
        if X.shape[0] == 0:
            return state
        new, fine = compiled(state, X, A, y, phi, group)
        if _checks.is_concrete(fine) and not bool(fine):
            raise ValueError(
                f"X: this batch overflows the state's precision (a row too large for {phi.dtype}, or rows that "
                "overflow only together); rescale the inputs or send smaller batches"
            )
        return new

    return update_batch


def _argmax_finite(scores):
    """(jnp.argmax(scores), max(scores)) when every score is finite; the max is NaN otherwise.

    Two vectorised reductions (the max, then the first index holding it) instead of the argmax's
    variadic reduction, which XLA on CPU runs one element at a time; the same index (the first
    largest score).
    """
    marked = jnp.where(jnp.isfinite(scores), scores, jnp.nan)
    top = jnp.max(marked)
    best = jnp.min(jnp.where(marked == top, jnp.arange(marked.shape[0], dtype=jnp.int32), marked.shape[0]))
    return best, top


def choose(scores, x):
    """``(action, ActInfo)`` from the scores: the first largest one, or -1 and ``valid`` False when the
    context ``x`` or a score is not finite (pure; what every agent's ``act`` returns)."""
    best, top = _argmax_finite(scores)
    valid = jnp.all(jnp.isfinite(x)) & ~jnp.isnan(top)
    return jnp.where(valid, best, -1), ActInfo(scores, valid)


def guarded_act(
    score: Callable,
    check_key: Callable,
    check_state: Callable,
    check_context: Callable,
    fast_context: Callable | None = None,
) -> Callable:
    """``act(key, state, x) -> (action, ActInfo)`` from a pure ``score(key, state, x) -> scores (K,)``.

    The argmax of finite scores; action -1 and ``info.valid`` False when the context or the scores
    are not finite (eagerly: a ValueError, except for a context that ``fast_context`` accepted).
    Jitted per input shape. ``fast_context(x) -> x | None`` (optional) accepts a context whose type,
    shape and values were checked on the host (finite, of moderate size): the compiled call is
    then not waited for. Other contexts go through ``check_context`` and ``valid`` is read back.
    """

    def core(key, state, x):
        check_state(state)  # shapes only, when this shape is traced
        return choose(score(key, state, x), x)

    compiled = jax.jit(core)

    def act(key, state, x):
        check_key(key)
        checked = None if fast_context is None else fast_context(x)
        if checked is not None:  # a finite context of moderate size: the validity is not read back
            try:
                return compiled(key, state, checked)
            except TypeError:  # a state that is not a pytree of arrays
                check_state(state)
                raise
        check_state(state)
        action, info = compiled(key, state, check_context(x))
        if _checks.is_concrete(info.valid) and not np.asarray(info.valid):
            check_context(x)  # raises for a context that is not finite
            raise ValueError(
                f"x: the scores are not finite (a context too large for {info.scores.dtype}, or a non-finite state)"
            )
        return action, info

    return act


def jitted_score(score: Callable, check_state: Callable) -> Callable:
    """An Agent's ``score`` field: the pure ``score(key, state, x) -> (K,)`` that :func:`guarded_act` argmaxes.

    The same function, jitted, with the key checked (shapes only, so it runs under ``jit`` and
    ``vmap``) and the state's shapes checked when a shape is traced; ``x`` is converted with
    ``jnp.asarray`` and not checked further. Same key, same state, same context: the same
    scores as ``act``'s ``info.scores``, bit for bit.

    Args:
        score: ``score(key, state, x) -> scores (K,)``.   check_state: raises when a state is not the agent's.
    Returns:
        ``score(key, state, x) -> (K,)``.
    """

    def checked(key, state, x):
        check_state(state)  # shapes only, when this shape is traced
        return score(key, state, x)

    compiled = jax.jit(checked)

    def agent_score(key, state, x):
        check_key(key)
        return compiled(key, state, jnp.asarray(x))

    return agent_score


def guarded_agent(
    init: Callable,
    score: Callable,
    step: Callable,
    step_batch: Callable,
    spec: AgentSpec,
    likelihood=None,
    reward_bound: float | None = None,
) -> Agent:
    """An :class:`~dts_ppl.agents.base.Agent` from its pure mathematics, every function under the guard.

    Args:
        init: ``() -> state`` (a NamedTuple with a ``rejected`` field).
        score: ``score(key, state, x) -> (K,)`` scores (:func:`guarded_act`).
        step: ``step(state, phi, group, y) -> proposal`` (:func:`guarded`).
        step_batch: ``step_batch(state, phi, group, y, ok) -> proposal`` (:func:`guarded_batch`).
        spec: the agent's AgentSpec (K, d and ``shared`` set the input checks).
        likelihood: the reward model (its support and reward checks).   reward_bound: as :func:`guarded`.

    Returns:
        Agent(init, act, update, update_batch, spec, score=...), each function jitted per input
        shape; ``score`` is ``score`` itself (:func:`jitted_score`), the scores ``act`` argmaxes.
    """
    K, d, shared = spec.num_actions, spec.dim, spec.shared
    check_state = state_checker(init)
    shape = (K, d) if shared else (d,)
    support = host_support(likelihood)
    limit = state_limit(init)

    def fast_inputs(x, action, reward):
        lim = limit()
        x, action, reward = fast_context(x, shape, lim), fast_action(action, K), fast_reward(reward, support, lim)
        return None if x is None or action is None or reward is None else (x, action, reward)

    act = guarded_act(
        score,
        check_key,
        check_state,
        lambda x: check_context(x, K, d, shared),
        lambda x: fast_context(x, shape, limit()),
    )
    update = guarded(
        step,
        lambda x, a, r: check_update(x, a, r, K, d, shared, likelihood),
        check_state,
        K,
        likelihood,
        reward_bound,
        shared=shared,
        fast_inputs=fast_inputs,
    )
    update_batch = guarded_batch(
        step_batch,
        lambda X, A, y: _batch.check_rows(X, A, y, K, d, shared, likelihood),
        check_state,
        K,
        likelihood,
        reward_bound,
    )
    return Agent(jax.jit(init), act, update, update_batch, spec, score=jitted_score(score, check_state))
