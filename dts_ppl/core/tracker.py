"""A two-rate drift tracker: the shared part u = f_1(psi_1) walks, each action's own part forgets.

For an affine diffusion prior theta_a = u + e_a, with u = f_1(psi_1) ~ N(m, C) shared by every
action (psi_1 marginalised over the chain above it) and e_a ~ N(0, S_1) independent
(:mod:`dts_ppl.core.walk_filter`). The tracker's model of drift (docs/math.md section 11):

    u_{t+1}   = u_t + N(0, q C)                                   (the shared step q >= 0)
    e_{a,t+1} = sqrt(gamma) e_{a,t} + N(0, (1 - gamma) S_1)        (the own discount gamma in (0, 1])

(and optionally a random-walk step N(0, r S_1) on each e_a, ``own_step`` r >= 0, the walk's own law).

The shared part moves every action's reward alike and is learnt from every round, so it can
follow a fast walk; each action's own part relaxes toward its conditional prior N(0, S_1) at the
rate gamma (an AR(1) process whose stationary law is the prior: a forgotten action returns to
N(u, S_1) under the current posterior of u, as with ``discount=``, and its uncertainty never
grows past the prior's).

The posterior is kept in dTS's factorised form q(u) prod_a q(e_a | u): q(u) = N(mu, Sigma) and
e_a | u ~ N(A_a u + c_a, P_a), O(K d^2) numbers.

- Conditioning on a round (x, a, y) is exact in this family: y depends on (u, e_a) only and the
  other e_b are independent of e_a given u, so q(u) takes the reward's likelihood
  N(y; (x + A_a^T x)^T u + x^T c_a, x^T P_a x + sigma^2) and e_a | u a Kalman step; O(d^2).
- The own step is exact in the family (each e_a moves on its own): A_a, c_a scale by
  sqrt(gamma), P_a -> gamma P_a + (1 - gamma + r) S_1.
- The shared step is not: after u' = u + N(0, q C) the e_a are dependent given u'. The tracker
  keeps q(u') = N(mu, Sigma + q C) and each e_a | u' at its exact conditional under the pair
  (u', e_a) (the projection that keeps every pair's joint law; KL(p || q) onto the family):
  with G = Sigma (Sigma + q C)^-1, A_a -> A_a G, c_a -> c_a + A_a (mu - G mu),
  P_a -> P_a + A_a (Sigma - G Sigma) A_a^T. O(K d^3).

Exact (equal to the Kalman filter of the model, tests/core/test_tracker.py) when q = 0 (any K:
the family is then closed under the model) or K = 1; with q > 0 and K > 1, every pair's law
is exact after each step, the dependence between actions' own parts given u is dropped.

Thompson sampling needs only the scores x^T theta_a: u ~ q(u), then x^T e_a | u independent
N(x^T (A_a u + c_a), x^T P_a x) (:func:`tracker_sample`), O(K d^2) a round.
"""

from __future__ import annotations

import math
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core import walk_filter
from dts_ppl.core.forgetting import discount_for_window, drift_window
from dts_ppl.core.prior import DiffusionPrior

__all__ = [
    "TrackerModel",
    "TrackerState",
    "tracker_condition",
    "tracker_init",
    "tracker_model",
    "tracker_observe",
    "tracker_predict",
    "tracker_predictive",
    "tracker_sample",
    "tracker_scores",
    "tracker_theta",
    "tracking_rule",
]


class TrackerModel(NamedTuple):
    """The prior and the two drift rates.

    Attributes:
        mean: (d,) m = E[u].   shared_cov: (d, d) C = Cov(u).   action_cov: (d, d) S_1.
        noise_var: () sigma^2.   shared_step: () q, u's step covariance per round in units of C.
        own_discount: () gamma, each e_a's AR(1) factor per round (its mean scales by sqrt(gamma)).
        own_step: () r, a random-walk step N(0, r S_1) added to each e_a per round (0: none).
    """

    mean: Annotated[jax.Array, "d"]
    shared_cov: Annotated[jax.Array, "d d"]
    action_cov: Annotated[jax.Array, "d d"]
    noise_var: Annotated[jax.Array, ""]
    shared_step: Annotated[jax.Array, ""]
    own_discount: Annotated[jax.Array, ""]
    own_step: Annotated[jax.Array, ""] | float = 0.0


class TrackerState(NamedTuple):
    """q(u) prod_a q(e_a | u), the prediction for the next round.

    Attributes:
        mean: (d,) mu.   cov: (d, d) Sigma.   gain: (K, d, d) A_a.   shift: (K, d) c_a.
        cond_cov: (K, d, d) P_a.
    """

    mean: Annotated[jax.Array, "d"]
    cov: Annotated[jax.Array, "d d"]
    gain: Annotated[jax.Array, "K d d"]
    shift: Annotated[jax.Array, "K d"]
    cond_cov: Annotated[jax.Array, "K d d"]


def _scalar(name: str, value, low: float, high: float | None, low_open: bool):
    """A Python float (or a traced array, passed through) in its range; ValueError otherwise."""
    if isinstance(value, jax.core.Tracer):
        return value
    ok_type = not isinstance(value, bool) and jnp.ndim(value) == 0
    v = float(value) if ok_type else math.nan
    bad = not math.isfinite(v) or (v <= low if low_open else v < low) or (high is not None and v > high)
    if bad:
        interval = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return v


def tracker_model(prior: DiffusionPrior, noise_var, shared_step, own_discount, own_step=0.0) -> TrackerModel:
    """The :class:`TrackerModel` of an affine ``prior`` (C = Cov(theta_a) - S_1).

    Args:
        prior: an affine DiffusionPrior (ValueError otherwise).   noise_var: sigma^2 > 0.
        shared_step: q >= 0 (0: u fixed).   own_discount: gamma in (0, 1] (1: no AR(1) decay).
        own_step: r >= 0, each e_a's random-walk step r S_1 a round (0: none; with gamma = 1 and
        q, r = 1 / tau the model is the environment's random walk, ``core.walk_filter``).
        Each may be a traced scalar (a vmapped sweep).

    Returns:
        TrackerModel with (d,), (d, d), (d, d) and () fields in the prior's dtype.
    """
    if not isinstance(prior, DiffusionPrior) or not prior.is_linear:
        raise ValueError("prior: expected an affine DiffusionPrior (theta is then Gaussian)")
    noise_var = _scalar("noise_var", noise_var, 0.0, None, True)
    shared_step = _scalar("shared_step", shared_step, 0.0, None, False)
    own_discount = _scalar("own_discount", own_discount, 0.0, 1.0, True)
    own_step = _scalar("own_step", own_step, 0.0, None, False)
    walk = walk_filter.walk_model(prior, 0.0, 1.0)
    dtype = prior.cov1.dtype
    return TrackerModel(
        walk.mean,
        walk.shared_cov,
        walk.action_cov,
        jnp.asarray(noise_var, dtype),
        jnp.asarray(shared_step, dtype),
        jnp.asarray(own_discount, dtype),
        jnp.asarray(own_step, dtype),
    )


def tracking_rule(
    noise_var: float,
    num_actions: int,
    context_second_moment: float,
    action_var: float,
    drift_rounds: float,
    own: str = "window",
) -> tuple[float, float]:
    """The stated rules for both rates from the drift's time scale (docs/math.md section 11).

    The shared step q = 1 / tau_v: u's step covariance per round C / tau_v, the walk's own when u
    moves by its prior variance C every tau_v rounds. The own discount, ``own="window"``:
    gamma = 1 - 1 / W with W :func:`dts_ppl.core.forgetting.drift_window` (the window that balances
    an action's estimation variance from its W / K pulls against the drift of its own part over W
    rounds); ``own="matched"``: gamma = 1 - 1 / tau_v, the own part's AR(1) step (1 - gamma) S_1
    equal to the walk's S_1 / tau_v.

    Args:
        noise_var: sigma^2 > 0.   num_actions: K >= 1.   context_second_moment: E[x_i^2] > 0.
        action_var: v_1 > 0, the mean diagonal of S_1.   drift_rounds: tau_v >= 1.
        own: "window" or "matched".

    Returns:
        (shared_step q, own_discount gamma).
    """
    if own not in ("window", "matched"):
        raise ValueError(f"own: expected 'window' or 'matched', got {own!r}")
    window = drift_window(noise_var, num_actions, context_second_moment, action_var, drift_rounds)
    if not drift_rounds >= 1.0:
        raise ValueError(f"drift_rounds: expected a number of rounds >= 1, got {drift_rounds!r}")
    if own == "matched":
        window = float(drift_rounds)
    return 1.0 / float(drift_rounds), discount_for_window(max(window, 1.0))


def _sym(m: jax.Array) -> jax.Array:
    return 0.5 * (m + jnp.swapaxes(m, -1, -2))


def tracker_predict(model: TrackerModel, state: TrackerState) -> TrackerState:
    """One round of drift: each e_a's AR(1) step (exact), then u's step (projected, see the module).

    Args:
        model: :class:`TrackerModel`.   state: a :class:`TrackerState` (K actions).

    Returns:
        The next round's prediction.
    """
    g = model.own_discount
    rho = jnp.sqrt(g)
    gain, shift = rho * state.gain, rho * state.shift
    cond_cov = g * state.cond_cov + (1.0 - g + model.own_step) * model.action_cov
    cov = state.cov + model.shared_step * model.shared_cov
    # G = Sigma (Sigma + Q)^-1 = (solve(Sigma + Q, Sigma))^T, both symmetric
    G = jnp.linalg.solve(cov, state.cov).T
    left = state.cov - G @ state.cov  # Cov(u_old | u_new)
    new_gain = jnp.einsum("aij,jk->aik", gain, G)
    new_shift = shift + jnp.einsum("aij,j->ai", gain, state.mean - G @ state.mean)
    new_cond = cond_cov + jnp.einsum("aij,jk,alk->ail", gain, _sym(left), gain)
    return TrackerState(state.mean, _sym(cov), new_gain, new_shift, _sym(new_cond))


def tracker_init(model: TrackerModel, num_actions: int) -> TrackerState:
    """The prediction for round 0: the prior (u ~ N(m, C), e_a ~ N(0, S_1)) plus one round's drift.

    Args:
        model: :class:`TrackerModel`.   num_actions: K >= 1 (static).

    Returns:
        TrackerState with (d,), (d, d), (K, d, d), (K, d), (K, d, d) fields.
    """
    if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 1:
        raise ValueError(f"num_actions: expected an integer >= 1, got {num_actions!r}")
    d = model.mean.shape[0]
    dtype = model.mean.dtype
    prior = TrackerState(
        model.mean,
        model.shared_cov,
        jnp.zeros((num_actions, d, d), dtype),
        jnp.zeros((num_actions, d), dtype),
        jnp.broadcast_to(model.action_cov, (num_actions, d, d)),
    )
    return tracker_predict(model, prior)


def _round_terms(model: TrackerModel, state: TrackerState, x: jax.Array, action: jax.Array):
    """The played action's A, c, P, P x, Var(y | u), h, Sigma h and Var(y): one round's shared terms."""
    A, c, P = state.gain[action], state.shift[action], state.cond_cov[action]
    px = P @ x
    s_e = x @ px + model.noise_var  # Var(y | u)
    h = x + A.T @ x  # y | u ~ N(h^T u + x^T c, s_e)
    sh = state.cov @ h
    return A, c, P, px, s_e, h, sh, h @ sh + s_e


def tracker_predictive(
    model: TrackerModel, state: TrackerState, x: jax.Array, action: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The tracker's one-step predictive N(mean, var) of the reward of ``action`` in context ``x``.

    Args:
        model: :class:`TrackerModel`.   state: the prediction for this round.
        x: (d,) context.   action: () int in [0, K).

    Returns:
        (mean (), var ()): h^T mu + x^T c_a and h^T Sigma h + x^T P_a x + sigma^2, h = x + A_a^T x.
    """
    _, c, _, _, _, h, _, var = _round_terms(model, state, x, action)
    return h @ state.mean + x @ c, var


def tracker_condition(model: TrackerModel, state: TrackerState, x: jax.Array, action: jax.Array, y: jax.Array):
    """Condition on one round's reward y ~ N(x^T (u + e_action), sigma^2) (exact in the family).

    Args:
        model: :class:`TrackerModel`.   state: the prediction for this round.   x: (d,) context.
        action: () int in [0, K).   y: () reward.

    Returns:
        The posterior after the round (before its drift), a :class:`TrackerState`.
    """
    A, c, P, px, s_e, h, sh, s = _round_terms(model, state, x, action)
    r0 = y - x @ c
    mean = state.mean + sh * (r0 - h @ state.mean) / s
    cov = _sym(state.cov - jnp.outer(sh, sh) / s)
    g = px / s_e
    new_A = A - jnp.outer(g, h)
    new_c = c + g * r0
    new_P = _sym(P - jnp.outer(px, px) / s_e)
    return TrackerState(
        mean,
        cov,
        state.gain.at[action].set(new_A),
        state.shift.at[action].set(new_c),
        state.cond_cov.at[action].set(new_P),
    )


def tracker_observe(model: TrackerModel, state: TrackerState, x: jax.Array, action: jax.Array, y: jax.Array):
    """:func:`tracker_condition` on the round, then :func:`tracker_predict`: the next round's prediction."""
    return tracker_predict(model, tracker_condition(model, state, x, action, y))


def tracker_scores(state: TrackerState, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The joint posterior of every action's mean reward x^T theta_a under q.

    Args:
        state: a prediction.   x: (d,) context.

    Returns:
        (mean (K,), cov (K, K)): x^T ((I + A_a) mu + c_a) and
        x^T (I + A_a) Sigma (I + A_b)^T x + [a = b] x^T P_a x.
    """
    w = x + jnp.einsum("aji,j->ai", state.gain, x)  # (K, d): (I + A_a)^T x
    mean = w @ state.mean + state.shift @ x
    own = jnp.einsum("i,aij,j->a", x, state.cond_cov, x)
    cov = w @ state.cov @ w.T + jnp.diag(own)
    return mean, _sym(cov)


def tracker_sample(key: jax.Array, state: TrackerState, x: jax.Array) -> jax.Array:
    """One Thompson draw of every action's score x^T theta_a: u ~ q(u), then each x^T e_a | u.

    Args:
        key: PRNG key.   state: a prediction.   x: (d,) context.

    Returns:
        (K,) scores.
    """
    d = state.mean.shape[0]
    K = state.shift.shape[0]
    ku, ke = jax.random.split(key)
    jitter = 1e-10 if state.cov.dtype == jnp.float64 else 1e-6
    scale = jnp.trace(state.cov) / d
    chol = jnp.linalg.cholesky(state.cov + jitter * scale * jnp.eye(d, dtype=state.cov.dtype))
    u = state.mean + chol @ jax.random.normal(ku, (d,), state.mean.dtype)
    mean = x @ u + jnp.einsum("i,aij,j->a", x, state.gain, u) + state.shift @ x
    var = jnp.maximum(jnp.einsum("i,aij,j->a", x, state.cond_cov, x), 0.0)
    return mean + jnp.sqrt(var) * jax.random.normal(ke, (K,), state.mean.dtype)


def tracker_theta(state: TrackerState) -> tuple[jax.Array, jax.Array]:
    """q's law of theta = u + e_a: mean (K, d) and covariance (K d, K d), action-major."""
    K, d = state.shift.shape
    B = jnp.eye(d, dtype=state.cov.dtype) + state.gain  # (K, d, d): theta_a = B_a u + c_a + eps_a
    mean = jnp.einsum("aij,j->ai", B, state.mean) + state.shift
    cross = jnp.einsum("aij,jk,blk->aibl", B, state.cov, B)
    own = jnp.einsum("ab,aij->aibj", jnp.eye(K, dtype=state.cov.dtype), state.cond_cov)
    return mean, (cross + own).reshape(K * d, K * d)
