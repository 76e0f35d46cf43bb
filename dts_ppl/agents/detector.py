"""dTS that resets itself when a change detector fires (abrupt drift; docs/math.md section 11).

:func:`detect_changes` wraps a dTS agent (Gaussian rewards, affine prior, per-action parameters)
with the CUSUM test of :mod:`dts_ppl.core.change_detector` on the standardized residuals of its
posterior predictive. Each accepted round, before learning from it, the wrapper computes the
played action's predictive N(m, v) from the agent's state (exact: v = x^T Cov(theta_A | data) x +
sigma^2, with psi_1's posterior uncertainty), z = (y - m) / sqrt(v), and the CUSUM step. On an
alarm the whole state returns to the agent's initial state (the prior: every action's statistics
and the latents' evidence dropped, each action's parameter again N(f_1(psi_1), S_1) under psi_1's
prior), and the alarm's round is then learnt by the fresh state. Off by default: ``dts`` itself
never resets.

The state is a :class:`DetectorState` (the agent's state, the statistic, the alarm count); act,
update and the alarm are pure and jittable (the reset is a select, no recompilation).
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import Agent
from dts_ppl.agents.dts import dts_posterior
from dts_ppl.agents.linear import predictor_moments
from dts_ppl.core import change_detector
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior

__all__ = ["DetectorState", "detect_changes", "dts_predictive"]


class DetectorState(NamedTuple):
    """A detecting agent's state.

    Attributes:
        inner: the wrapped agent's state.   stat: () the CUSUM statistic.
        alarms: () int32 alarms so far.   last_z: () the last accepted round's standardized residual.
    """

    inner: Any
    stat: Annotated[jax.Array, ""]
    alarms: Annotated[jax.Array, ""]
    last_z: Annotated[jax.Array, ""]


def dts_predictive(prior: DiffusionPrior, noise_var: float):
    """``predictive(state, x, action) -> (mean, variance)`` of the reward under a dTS state's posterior.

    For a dTS agent on an affine ``prior`` (run collapsed to psi_1, the default): the played
    action's marginal moments of theta_a (:func:`dts_ppl.core.inference.moments` on
    :func:`dts_ppl.agents.dts.dts_posterior`, psi_1's posterior uncertainty included), then those
    of x^T theta_a (:func:`dts_ppl.agents.linear.predictor_moments`); sigma^2 is added
    for the reward.

    Args:
        prior: the affine DiffusionPrior the agent was built on.   noise_var: sigma^2 > 0.

    Returns:
        The function; its outputs are () arrays.
    """
    if not isinstance(prior, DiffusionPrior) or not prior.is_linear:
        raise ValueError("prior: expected an affine DiffusionPrior (the predictive is then exact)")
    collapsed = core.collapse_linear(prior) if prior.num_levels > 1 else prior

    def predictive(state, x, action):
        if state.latents.shift.shape[0] != 1:
            raise ValueError("state: expected a dTS state run collapsed to psi_1 (one latent row)")
        played = state._replace(theta_cov=state.theta_cov[action][None], theta_shift=state.theta_shift[action][None])
        mo = core.moments(collapsed, dts_posterior(collapsed, played))
        mean, var = predictor_moments(x, mo.theta_mean, mo.theta_cov, shared=False)
        return mean[0], var[0] + noise_var

    return predictive


def detect_changes(
    agent: Agent, prior: DiffusionPrior, false_alarm_rate: float, ratio: float, noise_var: float
) -> Agent:
    """``agent`` (dTS, Gaussian rewards) reset to its initial state whenever the CUSUM test fires.

    Args:
        agent: a dTS agent built on ``prior`` with per-action parameters and Gaussian rewards.
        prior: its affine DiffusionPrior.
        false_alarm_rate: alpha in (0, 1), the alarms per round on a stationary stream
            (the threshold is :func:`dts_ppl.core.change_detector.cusum_threshold`).
        ratio: rho > 1, the alternative residual variance
            (:func:`dts_ppl.core.change_detector.variance_ratio_rule` states the rule).
        noise_var: sigma^2 > 0, the agent's (its Gaussian scale squared).

    Returns:
        An Agent whose state is a :class:`DetectorState`.
    """
    if not isinstance(agent, Agent) or agent.spec is None or agent.spec.kind != "dts":
        raise ValueError("agent: expected a dts(...) agent")
    if agent.spec.shared:
        raise ValueError("agent: per-action parameters needed (shared=False)")
    if agent.spec.likelihood != Gaussian.name:
        raise ValueError(f"agent: expected Gaussian rewards, got {agent.spec.likelihood!r}")
    if isinstance(noise_var, bool) or not isinstance(noise_var, int | float) or not noise_var > 0:
        raise ValueError(f"noise_var: expected a number > 0, got {noise_var!r}")
    threshold = change_detector.cusum_threshold(false_alarm_rate, ratio)
    predictive = dts_predictive(prior, float(noise_var))
    K = agent.spec.num_actions
    predictive(agent.init(), jnp.zeros(prior.dim, prior.cov1.dtype), 0)  # a state it can read, or ValueError

    def init() -> DetectorState:
        inner = agent.init()
        dtype = prior.cov1.dtype
        return DetectorState(inner, jnp.zeros((), dtype), jnp.zeros((), jnp.int32), jnp.zeros((), dtype))

    def act(key, state: DetectorState, x):
        return agent.act(key, state.inner, x)

    def update(state: DetectorState, x, action, reward) -> DetectorState:
        x = jnp.asarray(x)
        y = jnp.asarray(reward, state.stat.dtype)
        ok = (action >= 0) & (action < K) & jnp.isfinite(y) & jnp.all(jnp.isfinite(x))
        a = jnp.clip(action, 0, K - 1)
        mean, var = predictive(state.inner, x.astype(state.stat.dtype), a)
        z = jnp.where(ok, (y - mean) / jnp.sqrt(var), 0.0)
        stat, alarm = change_detector.cusum_step(state.stat, z, ratio, threshold)
        alarm = alarm & ok
        stat = jnp.where(ok, stat, state.stat)
        fresh = agent.init()
        inner = jax.tree.map(lambda f, s: jnp.where(alarm, f, s), fresh, state.inner)
        inner = agent.update(inner, x, action, reward)
        return DetectorState(inner, stat, state.alarms + alarm.astype(jnp.int32), jnp.where(ok, z, state.last_z))

    def score(key, state: DetectorState, x):
        return agent.score(key, state.inner, x)

    return Agent(init, act, update, None, agent.spec, score=None if agent.score is None else score)
