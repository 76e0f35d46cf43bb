"""Baselines with an independent Gaussian prior per action (MATH.md section 8).

LinTS / GLM-TS sample every action's score from its own Gaussian posterior; LinUCB / UCB-GLM
score the upper confidence bound x^T mu_a + alpha_t sqrt(x^T Sigma_a x). The GLM variants use
the Gaussianised statistics of :mod:`dts_ppl.agents.base` (ridge MLE and its Hessian), so a
GLM baseline is the linear one with a GLM likelihood. As in the paper, every baseline gets the
diffusion prior's marginal of theta_a (:func:`theta_marginal`) as its prior.

Per round: ``update`` O(d^3) for the played action, ``act`` one O(K d^2) pass (v_a = Sigma_a x).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import (
    Agent,
    Evidence,
    all_finite,
    check_context,
    check_glm_options,
    check_key,
    check_num_actions,
    check_overflow,
    check_update,
    guard_update,
    guarded_argmax,
    guarded_row,
    increment_ok,
    init_evidence,
    sanitise_update,
    state_checker,
    update_evidence,
    update_ok,
)
from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.core.linalg import psd_inv
from dts_ppl.core.prior import DiffusionPrior


class GaussianPrior(NamedTuple):
    """N(mean (d,), cov (d, d)) on each action's parameter."""

    mean: jax.Array
    cov: jax.Array


def theta_marginal(prior: DiffusionPrior, key=None, num_samples: int = 20000) -> GaussianPrior:
    """The diffusion prior's marginal of one theta_a.

    Exact for affine links (S_1 + sum_l B_l S_{l+1} B_l^T, through :func:`dts_ppl.core.inference.moments`);
    moment-matched from ``num_samples`` prior draws otherwise (``key`` required).
    """
    if prior.is_linear:
        mo = core.moments(prior, core.prior_conditionals(prior, 1))
        return GaussianPrior(mo.theta_mean[0], mo.theta_cov[0])
    if key is None:
        raise ValueError("key: a nonlinear prior's marginal is moment-matched from samples; pass a PRNG key")
    _, theta = core.sample(key, prior, core.prior_conditionals(prior, 1), (num_samples,))
    theta = theta[:, 0]
    mean = theta.mean(0)
    centred = theta - mean
    return GaussianPrior(mean, centred.T @ centred / (num_samples - 1))


class LinearState(NamedTuple):
    """Per-group Gaussian posteriors: mean (M, d), cov (M, d, d), evidence, step () accepted
    updates, rejected () int32 updates the guard rejected (see :func:`dts_ppl.agents.base.guard_update`)."""

    evidence: Evidence
    mean: jax.Array
    cov: jax.Array
    step: jax.Array
    rejected: jax.Array | int = 0


def _check_gaussian_prior(theta_prior, dim_hint=None) -> GaussianPrior:
    if isinstance(theta_prior, DiffusionPrior):
        raise ValueError(
            "theta_prior: expected a GaussianPrior(mean, cov); for a diffusion prior pass theta_marginal(prior)"
        )
    if not isinstance(theta_prior, tuple) or len(theta_prior) != 2:
        raise ValueError(f"theta_prior: expected a GaussianPrior(mean, cov), got {type(theta_prior).__name__}")
    mean, cov = theta_prior
    mean = _checks.as_array("theta_prior.mean", mean, ndim=1)
    _checks.check_finite("theta_prior.mean", mean)
    cov = _checks.covariance("theta_prior.cov", cov, mean.shape[0], mean.dtype)
    return GaussianPrior(mean, cov)


def _linear_agent(theta_prior, likelihood, num_actions, shared, history, newton_steps, score) -> Agent:
    theta_prior = _check_gaussian_prior(theta_prior)
    K = check_num_actions(num_actions)
    check_glm_options(likelihood, history, newton_steps)
    if not isinstance(shared, bool):
        raise ValueError(f"shared: expected True or False, got {shared!r}")
    d, dtype = theta_prior.mean.shape[0], theta_prior.mean.dtype
    M = 1 if shared else K
    prec0 = psd_inv(theta_prior.cov)

    def init() -> LinearState:
        return LinearState(
            evidence=init_evidence(likelihood, M, d, history, dtype),
            mean=jnp.broadcast_to(theta_prior.mean, (M, d)),
            cov=jnp.broadcast_to(theta_prior.cov, (M, d, d)),
            step=jnp.zeros((), jnp.int32),
            rejected=jnp.zeros((), jnp.int32),
        )

    check_state = state_checker(init)

    def act(key, state: LinearState, x):
        check_key(key)
        check_state(state)
        x = check_context(x, K, d, shared)
        if shared:  # one parameter: scores x_a^T theta with x (K, d)
            mean, v = x @ state.mean[0], x @ state.cov[0]
            var = jnp.sum(v * x, -1)
        else:
            v = jnp.einsum("kij,j->ki", state.cov, x)  # Sigma_a x, the one O(K d^2) pass
            mean, var = state.mean @ x, v @ x
        scores = score(key, state, mean, jnp.sqrt(jnp.maximum(var, 0.0)))
        return guarded_argmax(scores, x)

    def update(state: LinearState, x, action, reward) -> LinearState:
        check_state(state)
        phi, g, y = check_update(x, action, reward, K, d, shared, likelihood)
        ok = inputs_ok = update_ok(x, action, reward, K)
        phi, g, y = sanitise_update(phi, g, y, ok)
        ok = ok & increment_ok(likelihood, phi, y)
        phi, g, y = sanitise_update(phi, g, y, ok)
        ev, _, (G_g, b_g) = update_evidence(likelihood, state.evidence, phi.astype(dtype), g, y, newton_steps, ok)
        cond, _ = core.condition(prec0, G_g, b_g)  # conjugate Gaussian update
        mean = core.conditional_loc(cond, theta_prior.mean)
        ok = ok & all_finite((G_g, b_g, mean, cond.cov))
        new_state = LinearState(
            evidence=ev,
            mean=guarded_row(ok, state.mean, g, mean),
            cov=guarded_row(ok, state.cov, g, cond.cov),
            step=state.step + 1,
        )
        check_overflow(inputs_ok, ok, dtype)
        return guard_update(state, new_state, ok, guarded=("evidence", "mean", "cov"))

    return Agent(init, act, update)


def _thompson(key, state, mean, sd):
    return mean + sd * jax.random.normal(key, mean.shape, mean.dtype)


def _ucb(alpha):
    if alpha is not None:
        alpha = _checks.check_scalar("alpha", alpha, positive=False)
        if alpha < 0:
            raise ValueError(f"alpha: expected a non-negative confidence width, got {alpha!r}")

    def score(key, state, mean, sd):
        del key
        t = jnp.maximum(state.step + 1, 2).astype(mean.dtype)
        width = jnp.sqrt(2.0 * jnp.log(t)) if alpha is None else alpha
        return mean + width * sd

    return score


def lin_ts(theta_prior, likelihood=None, num_actions=None, shared=False, history=5000, newton_steps=3) -> Agent:
    """Linear Thompson sampling with an independent N(mean, cov) prior per action.

    Args:
        theta_prior: GaussianPrior (e.g. :func:`theta_marginal` of the diffusion prior).
        likelihood: default ``Gaussian(1.0)``; a GLM gives GLM-TS (:func:`glm_ts`).
        num_actions: K.   shared: one parameter, ``x`` (K, d) action features.
    """
    return _linear_agent(
        theta_prior, likelihood or Gaussian(1.0), num_actions, shared, history, newton_steps, _thompson
    )


def lin_ucb(theta_prior, likelihood=None, num_actions=None, alpha=None, shared=False, history=5000, newton_steps=3):
    """LinUCB: argmax x^T mu_a + alpha_t ||x||_{Sigma_a}; alpha_t = sqrt(2 log t) unless ``alpha`` is given."""
    lik = likelihood or Gaussian(1.0)
    return _linear_agent(theta_prior, lik, num_actions, shared, history, newton_steps, _ucb(alpha))


def glm_ts(theta_prior, likelihood=None, num_actions=None, shared=False, history=5000, newton_steps=3) -> Agent:
    """GLM-TS: Thompson sampling from the Laplace (Gaussianised) posterior; default logistic rewards."""
    return lin_ts(theta_prior, likelihood or Bernoulli(), num_actions, shared, history, newton_steps)


def ucb_glm(theta_prior, likelihood=None, num_actions=None, alpha=None, shared=False, history=5000, newton_steps=3):
    """UCB-GLM (Li et al. 2017): UCB on the linear predictor, monotone in the mean reward."""
    return lin_ucb(theta_prior, likelihood or Bernoulli(), num_actions, alpha, shared, history, newton_steps)
