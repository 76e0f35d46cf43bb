"""Thompson sampling on the two-rate drift tracker (docs/math.md section 11, :mod:`dts_ppl.core.tracker`).

``tracking_ts(prior, noise_sd, num_actions, shared_step, own_discount)``: for an affine diffusion
prior and Gaussian rewards, the shared part u = f_1(psi_1) follows a random walk of q C a round
and each action's own part relaxes toward its conditional prior at the rate gamma; each round
draws u from its posterior, then every action's score x^T (u + e_a) given u, and plays the
argmax. With q = 0 and gamma = 1 the posterior is dTS's exact one (no drift).
:func:`dts_ppl.core.tracker.tracking_rule` states both rates from the drift's time scale.

``adaptive_tracking_ts(prior, noise_sd, num_actions, shared_steps, own_discounts, own_steps, play)``:
the drift's time scale chosen from the data (:mod:`dts_ppl.core.tracker_bank`): M trackers run
side by side, weighted by their predictive likelihood; each round draws a model from the weights
and plays Thompson sampling on tracker ``play[m]``.

The state is a :class:`TrackerAgentState`; init, act and update are pure and jittable, and the
rates may be traced scalars (a vmapped sweep). A round with a non-finite context or reward, an
action outside [0, K), or whose new state would not be finite leaves the state unchanged and adds
one to ``rejected``.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.base import Agent, AgentSpec, check_num_actions
from dts_ppl.agents.guard import choose, round_ok
from dts_ppl.core import change_detector
from dts_ppl.core import tracker as _tracker
from dts_ppl.core import tracker_bank as _bank
from dts_ppl.core.prior import DiffusionPrior

__all__ = ["BankAgentState", "TrackerAgentState", "adaptive_tracking_ts", "tracking_ts"]


class TrackerAgentState(NamedTuple):
    """The tracking agent's state.

    Attributes:
        post: the :class:`dts_ppl.core.tracker.TrackerState` (the next round's prediction).
        rejected: () int32 rounds rejected by the guard.
    """

    post: _tracker.TrackerState
    rejected: Annotated[jax.Array, ""]


def tracking_ts(prior: DiffusionPrior, noise_sd, num_actions: int, shared_step, own_discount, own_step=0.0) -> Agent:
    """Thompson sampling on :mod:`dts_ppl.core.tracker` (per-action parameters, Gaussian rewards).

    Args:
        prior: an affine DiffusionPrior.   noise_sd: sigma > 0, the rewards' noise s.d.
        num_actions: K >= 1.   shared_step: q >= 0, u's step covariance per round in units of C
            (0: u fixed).   own_discount: gamma in (0, 1] (1: no AR(1) decay of the own parts).
        own_step: r >= 0, a random-walk step r S_1 a round on each own part (0: none).

    Returns:
        Agent(init, act, update, None, spec, score=...) with state :class:`TrackerAgentState`;
        ``act`` returns (action, ActInfo(scores (K,), valid)), the scores ``score`` draws.
    """
    K = check_num_actions(num_actions)
    if isinstance(noise_sd, bool) or not isinstance(noise_sd, int | float) or not noise_sd > 0:
        raise ValueError(f"noise_sd: expected a number > 0, got {noise_sd!r}")
    model = _tracker.tracker_model(prior, float(noise_sd) ** 2, shared_step, own_discount, own_step)
    dtype = model.mean.dtype
    spec = AgentSpec("tracking_ts", K, prior.dim, prior.num_levels, False, "gaussian")

    def init() -> TrackerAgentState:
        return TrackerAgentState(_tracker.tracker_init(model, K), jnp.zeros((), jnp.int32))

    def score(key, state: TrackerAgentState, x):
        return _tracker.tracker_sample(key, state.post, jnp.asarray(x, dtype))

    def act(key, state: TrackerAgentState, x):
        x = jnp.asarray(x, dtype)
        return choose(score(key, state, x), x)

    def update(state: TrackerAgentState, x, action, reward) -> TrackerAgentState:
        x = jnp.asarray(x, dtype)
        y = jnp.asarray(reward, dtype)
        action = jnp.asarray(action)
        ok = round_ok(x, action, y, K, dtype=dtype)
        a = jnp.clip(action, 0, K - 1)
        new = _tracker.tracker_observe(model, state.post, jnp.where(ok, x, 0.0), a, jnp.where(ok, y, 0.0))
        ok = ok & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(new)]))
        post = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state.post)
        return TrackerAgentState(post, state.rejected + (~ok).astype(jnp.int32))

    return Agent(init, act, update, None, spec, score=score)


class BankAgentState(NamedTuple):
    """The adaptive tracking agent's state.

    Attributes:
        bank: the :class:`dts_ppl.core.tracker_bank.BankState`.
        rejected: () int32 rounds rejected by the guard.
        stat: () the change detector's CUSUM statistic (0 without one).
        alarms: () int32 alarms so far (each reset the bank to its initial state).
    """

    bank: _bank.BankState
    rejected: Annotated[jax.Array, ""]
    stat: Annotated[jax.Array, ""]
    alarms: Annotated[jax.Array, ""]


def adaptive_tracking_ts(
    prior: DiffusionPrior,
    noise_sd,
    num_actions: int,
    shared_steps,
    own_discounts,
    own_steps,
    play=None,
    false_alarm_rate: float | None = None,
    ratio: float | None = None,
) -> Agent:
    """Thompson sampling on a bank of trackers weighted by their predictive likelihood (``core.tracker_bank``).

    Args:
        prior: an affine DiffusionPrior.   noise_sd: sigma > 0.   num_actions: K >= 1.
        shared_steps, own_discounts, own_steps: (M,) each model's q, gamma, r
            (:func:`dts_ppl.core.tracker_bank.drift_grid` states a grid).
        play: None (the identity: Thompson sampling on the mixture) or (M,) ints in [0, M), the
            tracker drawn from when model m is drawn.
        false_alarm_rate, ratio: None (no change detector, the default) or the CUSUM's alpha in
            (0, 1) and rho > 1 (:mod:`dts_ppl.core.change_detector`) on the standardized
            predictive residual of the model of largest weight; an alarm returns the whole bank
            (every tracker and the weights) to its initial state, then the round is learnt.

    Returns:
        Agent(init, act, update, None, spec, score=...) with state :class:`BankAgentState`; ``act``
        returns (action, ActInfo(scores (K,), valid)), the scores ``score`` draws.
    """
    K = check_num_actions(num_actions)
    if isinstance(noise_sd, bool) or not isinstance(noise_sd, int | float) or not noise_sd > 0:
        raise ValueError(f"noise_sd: expected a number > 0, got {noise_sd!r}")
    models = _bank.bank_model(prior, float(noise_sd) ** 2, shared_steps, own_discounts, own_steps)
    M = models.mean.shape[0]
    if play is None:
        play = np.arange(M)
    play = np.asarray(play)
    if play.shape != (M,) or not np.issubdtype(play.dtype, np.integer) or play.min() < 0 or play.max() >= M:
        raise ValueError(f"play: expected {M} integers in [0, {M}), got {play!r}")
    play = jnp.asarray(play, jnp.int32)
    dtype = models.mean.dtype
    if (false_alarm_rate is None) != (ratio is None):
        raise ValueError("false_alarm_rate, ratio: expected both None (no detector) or both numbers")
    detect = false_alarm_rate is not None
    threshold = change_detector.cusum_threshold(false_alarm_rate, ratio) if detect else 0.0
    spec = AgentSpec("adaptive_tracking_ts", K, prior.dim, prior.num_levels, False, "gaussian")

    def init() -> BankAgentState:
        zero = jnp.zeros((), jnp.int32)
        return BankAgentState(_bank.bank_init(models, K), zero, jnp.zeros((), dtype), zero)

    def score(key, state: BankAgentState, x):
        return _bank.bank_sample(key, state.bank, jnp.asarray(x, dtype), play)[0]

    def act(key, state: BankAgentState, x):
        x = jnp.asarray(x, dtype)
        return choose(score(key, state, x), x)

    def update(state: BankAgentState, x, action, reward) -> BankAgentState:
        x = jnp.asarray(x, dtype)
        y = jnp.asarray(reward, dtype)
        action = jnp.asarray(action)
        ok = round_ok(x, action, y, K, dtype=dtype)
        a = jnp.clip(action, 0, K - 1)
        x0, y0 = jnp.where(ok, x, 0.0), jnp.where(ok, y, 0.0)
        stat, alarm, before = state.stat, jnp.zeros((), bool), state.bank
        if detect:
            best = jnp.argmax(before.log_weights)
            model = jax.tree.map(lambda leaf: leaf[best], models)
            mean, var = _tracker.tracker_predictive(model, jax.tree.map(lambda leaf: leaf[best], before.post), x0, a)
            stat, alarm = change_detector.cusum_step(state.stat, (y0 - mean) / jnp.sqrt(var), ratio, threshold)
            fresh = _bank.bank_init(models, K)
            before = jax.tree.map(lambda f, s: jnp.where(alarm & ok, f, s), fresh, before)
        new = _bank.bank_observe(models, before, x0, a, y0)
        ok = ok & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(new)]))
        ok = ok & jnp.isfinite(stat)
        bank = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state.bank)
        return BankAgentState(
            bank,
            state.rejected + (~ok).astype(jnp.int32),
            jnp.where(ok, stat, state.stat),
            state.alarms + (alarm & ok).astype(jnp.int32),
        )

    return Agent(init, act, update, None, spec, score=score)
