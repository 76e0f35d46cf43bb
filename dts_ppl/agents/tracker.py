"""Thompson sampling on the two-rate drift tracker (docs/math.md section 11, :mod:`dts_ppl.core.tracker`).

``tracking_ts(prior, noise_sd, num_actions, shared_step, own_discount)``: for an affine diffusion
prior and Gaussian rewards, the shared part u = f_1(psi_1) follows a random walk of q C a round
and each action's own part relaxes toward its conditional prior at the rate gamma; each round
draws u from its posterior, then every action's score x^T (u + e_a) given u, and plays the
argmax. With q = 0 and gamma = 1 the posterior is dTS's exact one (no drift).
:func:`dts_ppl.core.tracker.tracking_rule` states both rates from the drift's time scale.

The state is a :class:`TrackerAgentState`; init, act and update are pure and jittable, and the
rates may be traced scalars (a vmapped sweep). A round with a non-finite context or reward, an
action outside [0, K), or whose new state would not be finite leaves the state unchanged and adds
one to ``rejected``.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import ActInfo, Agent, AgentSpec, check_num_actions
from dts_ppl.core import tracker as _tracker
from dts_ppl.core.prior import DiffusionPrior

__all__ = ["TrackerAgentState", "tracking_ts"]


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
        Agent(init, act, update, None, spec) with state :class:`TrackerAgentState`; ``act``
        returns (action, ActInfo(scores (K,), valid)).
    """
    K = check_num_actions(num_actions)
    if isinstance(noise_sd, bool) or not isinstance(noise_sd, int | float) or not noise_sd > 0:
        raise ValueError(f"noise_sd: expected a number > 0, got {noise_sd!r}")
    model = _tracker.tracker_model(prior, float(noise_sd) ** 2, shared_step, own_discount, own_step)
    dtype = model.mean.dtype
    spec = AgentSpec("tracking_ts", K, prior.dim, prior.num_levels, False, "gaussian")

    def init() -> TrackerAgentState:
        return TrackerAgentState(_tracker.tracker_init(model, K), jnp.zeros((), jnp.int32))

    def act(key, state: TrackerAgentState, x):
        x = jnp.asarray(x, dtype)
        scores = _tracker.tracker_sample(key, state.post, x)
        valid = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(scores))
        return jnp.where(valid, jnp.argmax(scores), -1), ActInfo(scores, valid)

    def update(state: TrackerAgentState, x, action, reward) -> TrackerAgentState:
        x = jnp.asarray(x, dtype)
        y = jnp.asarray(reward, dtype)
        action = jnp.asarray(action)
        ok = (action >= 0) & (action < K) & jnp.isfinite(y) & jnp.all(jnp.isfinite(x))
        a = jnp.clip(action, 0, K - 1)
        new = _tracker.tracker_observe(model, state.post, jnp.where(ok, x, 0.0), a, jnp.where(ok, y, 0.0))
        ok = ok & jnp.all(jnp.asarray([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(new)]))
        post = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state.post)
        return TrackerAgentState(post, state.rejected + (~ok).astype(jnp.int32))

    return Agent(init, act, update, None, spec)
