"""The exact posterior of a random-walking catalogue: a Kalman filter over (u, e_1, ..., e_K).

An affine diffusion prior makes theta Gaussian: theta_a = u + e_a with u = f_1(psi_1) ~ N(m, C)
shared by all actions (psi_1 marginalised over the chain above it) and e_a ~ N(0, S_1)
independent, so Cov(theta_a, theta_b) = C + [a = b] S_1. A random walk whose steps are shaped
like the prior's spread (:func:`dts_ppl.bandits.envs.random_walk`: theta_t = theta_{t-1} +
scale (theta' - theta'') / sqrt(2) with two fresh prior draws) has steps N(0, scale^2 Cov(theta)),
which is the law of u_t = u_{t-1} + N(0, scale^2 C), e_{a,t} = e_{a,t-1} + N(0, scale^2 S_1),
all independent (``shared_scale`` lets the filter assume another step size for u than for the
e_a, e.g. 0 for a filter that believes the shared part fixed). The state z = (u, e_1, ..., e_K),
(K + 1) d coordinates, is then a linear Gaussian chain observed through
y_t = x_t^T (u_t + e_{A_t,t}) + N(0, sigma^2), and the Kalman filter (predict: add the step
covariance Q = scale^2 blockdiag(C, S_1, ..., S_1); update: condition on the round's reward) is
its exact posterior: the oracle that knows the walk.

The state holds the prediction for the next round: :func:`walk_init` is the prior of round 0
(the run's draw plus round 0's step), :func:`walk_observe` conditions on a round and predicts the
next. A round costs O(K^2 d^2) (the dense covariance of z); :func:`walk_scores` gives the joint
posterior (K,), (K, K) of every action's mean reward x^T theta_a, enough for Thompson sampling.
tests/core/test_walk_filter.py checks it against the joint Gaussian of the whole theta path.
"""

from __future__ import annotations

import math
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core import inference as _inference
from dts_ppl.core.prior import DiffusionPrior

__all__ = ["WalkModel", "WalkState", "walk_init", "walk_model", "walk_observe", "walk_scores", "walk_theta"]


class WalkModel(NamedTuple):
    """The walk's prior and steps.

    Attributes:
        mean: (d,) E[u] = E[theta_a].   shared_cov: (d, d) C = Cov(u).   action_cov: (d, d) S_1.
        scale: () the walk's step size (steps N(0, scale^2 Cov(theta))).   noise_var: () sigma^2.
        shared_scale: () the step size of u (None: ``scale``; the e_a step with ``scale``).
    """

    mean: Annotated[jax.Array, "d"]
    shared_cov: Annotated[jax.Array, "d d"]
    action_cov: Annotated[jax.Array, "d d"]
    scale: Annotated[jax.Array, ""]
    noise_var: Annotated[jax.Array, ""]
    shared_scale: Annotated[jax.Array, ""] | None = None


class WalkState(NamedTuple):
    """The filter's prediction of z = (u, e_1, ..., e_K) for the next round.

    Attributes:
        mean: (K + 1, d) row 0 = u, row 1 + a = e_a.   cov: ((K + 1) d, (K + 1) d).
    """

    mean: Annotated[jax.Array, "K1 d"]
    cov: Annotated[jax.Array, "N N"]


def walk_model(prior: DiffusionPrior, scale, noise_var, shared_scale=None) -> WalkModel:
    """The :class:`WalkModel` of an affine ``prior`` (C = Cov(theta_a) - S_1).

    Args:
        prior: an affine DiffusionPrior (ValueError otherwise).   scale: >= 0 the walk's step size.
        noise_var: sigma^2 > 0.   shared_scale: None (``scale``) or >= 0, the step size of u.

    Returns:
        WalkModel with (d,), (d, d), (d, d) and () fields.
    """
    if not isinstance(prior, DiffusionPrior) or not prior.is_linear:
        raise ValueError("prior: expected an affine DiffusionPrior (theta is then Gaussian)")
    for name, value, low in (
        ("scale", scale, 0.0),
        ("noise_var", noise_var, None),
        ("shared_scale", shared_scale, 0.0),
    ):
        if value is None and name == "shared_scale" or isinstance(value, jax.core.Tracer):
            continue
        v = float(value) if jnp.ndim(value) == 0 and not isinstance(value, bool) else math.nan
        if not math.isfinite(v) or (v < low if low is not None else v <= 0.0):
            raise ValueError(f"{name}: expected a finite number {'>= 0' if low is not None else '> 0'}, got {value!r}")
    mean, cov = _inference.theta_prior_moments(prior)
    shared = cov - prior.cov1
    dtype = prior.cov1.dtype
    return WalkModel(
        mean,
        0.5 * (shared + shared.T),
        prior.cov1,
        jnp.asarray(scale, dtype),
        jnp.asarray(noise_var, dtype),
        None if shared_scale is None else jnp.asarray(shared_scale, dtype),
    )


def _blocks(model: WalkModel, num_actions: int, step: bool) -> jax.Array:
    """(K + 1, d, d): the diagonal blocks of z's prior covariance (C, S_1, ..., S_1), or of the step's Q."""
    shared, own = model.shared_cov, model.action_cov
    if step:
        shared_scale = model.scale if model.shared_scale is None else model.shared_scale
        shared, own = shared_scale**2 * shared, model.scale**2 * own
    return jnp.concatenate([shared[None], jnp.broadcast_to(own, (num_actions,) + own.shape)])


def _block_diag(blocks: jax.Array) -> jax.Array:
    """(n, d, d) blocks -> (n d, n d) block-diagonal matrix."""
    n, d, _ = blocks.shape
    eye = jnp.eye(n, dtype=blocks.dtype)
    return jnp.einsum("ab,aij->aibj", eye, blocks).reshape(n * d, n * d)


def walk_init(model: WalkModel, num_actions: int) -> WalkState:
    """The prediction for round 0: the prior of z plus one step.

    Args:
        model: :class:`WalkModel`.   num_actions: K >= 1 (static).

    Returns:
        WalkState with mean (K + 1, d) and cov ((K + 1) d, (K + 1) d).
    """
    if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 1:
        raise ValueError(f"num_actions: expected an integer >= 1, got {num_actions!r}")
    d = model.mean.shape[0]
    mean = jnp.zeros((num_actions + 1, d), model.mean.dtype).at[0].set(model.mean)
    blocks = _blocks(model, num_actions, False) + _blocks(model, num_actions, True)
    return WalkState(mean, _block_diag(blocks))


def walk_observe(model: WalkModel, state: WalkState, x: jax.Array, action: jax.Array, y: jax.Array) -> WalkState:
    """Condition on one round (x, action, y), then predict the next round (add the step covariance).

    Args:
        model: :class:`WalkModel`.   state: the prediction for this round.   x: (d,) context.
        action: () int in [0, K).   y: () reward.

    Returns:
        The prediction for the next round.
    """
    K1, d = state.mean.shape
    cov4 = state.cov.reshape(K1, d, K1, d)
    # P h with h = x on rows u and e_action
    ph = jnp.einsum("aij,j->ai", cov4[:, :, 0] + jnp.take(cov4, action + 1, axis=2), x)
    hph = x @ ph[0] + x @ ph[action + 1]
    s = hph + model.noise_var
    resid = y - x @ (state.mean[0] + state.mean[action + 1])
    gain = ph / s
    mean = state.mean + gain * resid
    flat = ph.reshape(-1)
    cov = state.cov - jnp.outer(flat, flat) / s
    cov = (0.5 * (cov + cov.T)).reshape(K1, d, K1, d)
    idx = jnp.arange(K1)
    step = _blocks(model, K1 - 1, True)  # Q is block-diagonal
    return WalkState(mean, cov.at[idx, :, idx, :].add(step).reshape(K1 * d, K1 * d))


def walk_scores(state: WalkState, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The joint posterior of every action's mean reward x^T theta_a = x^T (u + e_a).

    Args:
        state: a prediction.   x: (d,) context.

    Returns:
        (mean (K,), cov (K, K)).
    """
    K1, d = state.mean.shape
    r = jnp.einsum("i,aibj,j->ab", x, state.cov.reshape(K1, d, K1, d), x)  # (K + 1, K + 1)
    cov = r[0, 0] + r[0, 1:][None, :] + r[1:, 0][:, None] + r[1:, 1:]
    mean = state.mean[1:] @ x + state.mean[0] @ x
    return mean, 0.5 * (cov + cov.T)


def walk_theta(state: WalkState) -> tuple[jax.Array, jax.Array]:
    """The prediction of theta = u + e_a: mean (K, d) and covariance (K d, K d), action-major."""
    K1, d = state.mean.shape
    K = K1 - 1
    # theta = T z with T = [1_K (x) I_d, I_{K d}]
    T = jnp.concatenate([jnp.tile(jnp.eye(d, dtype=state.cov.dtype), (K, 1)), jnp.eye(K * d, dtype=state.cov.dtype)], 1)
    return state.mean[1:] + state.mean[0], T @ state.cov @ T.T
