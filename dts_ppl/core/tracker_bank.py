"""A bank of two-rate trackers whose drift rates are chosen by their predictive likelihood.

The drift's time scale is rarely known. The bank runs M trackers (:mod:`dts_ppl.core.tracker`),
one per drift model m = (q_m, gamma_m, r_m), side by side on the same rounds, and keeps the
posterior over the models (docs/math.md section 11):

    log w_m(t) = log w_m(0) + sum_{s < t} log p_m(y_s | x_s, a_s, rounds before s),

with p_m(y_s | ...) = N(y_s; h^T mu + x^T c_a, h^T Sigma h + x^T P_a x + sigma^2) the tracker's
one-step predictive of the played action's reward (h = x + A_a^T x): the empirical-Bayes
(type-II likelihood) evidence of each drift model, exact when the tracker is (q = 0 or K = 1,
:mod:`dts_ppl.core.tracker`); the played actions depend on the past only, so the evidence is the
likelihood of the rewards whatever policy chose them. The weights start uniform and never forget:
the drift's law is taken to be one of the M, fixed over the run.

Thompson sampling on the bank (:func:`bank_sample`): draw a model m from the weights, then every
action's score from model ``play[m]``'s tracker. ``play`` is a stated map over the bank (the
identity: Thompson sampling on the mixture posterior; :func:`drift_grid` states one that picks the
own part's model from the drift scale of m). Each round costs M trackers' updates, O(M K d^3),
and one tracker's draw.
"""

from __future__ import annotations

import math
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import tracker as _tracker
from dts_ppl.core.prior import DiffusionPrior

__all__ = [
    "BankState",
    "bank_init",
    "bank_model",
    "bank_observe",
    "bank_sample",
    "bank_weights",
    "drift_grid",
]


class BankState(NamedTuple):
    """M trackers' predictions and the log posterior over their models.

    Attributes:
        post: a :class:`dts_ppl.core.tracker.TrackerState` with a leading (M,) axis on every field.
        log_weights: (M,) log posterior of the models, normalised (logsumexp 0).
    """

    post: _tracker.TrackerState
    log_weights: Annotated[jax.Array, "M"]


def bank_model(prior: DiffusionPrior, noise_var, shared_steps, own_discounts, own_steps) -> _tracker.TrackerModel:
    """The M drift models of a bank: :func:`dts_ppl.core.tracker.tracker_model` for each, stacked.

    Args:
        prior: an affine DiffusionPrior.   noise_var: sigma^2 > 0.
        shared_steps, own_discounts, own_steps: (M,) sequences of q >= 0, gamma in (0, 1], r >= 0
            (each model's rates; ValueError on a bad one, naming it).

    Returns:
        TrackerModel whose fields carry a leading (M,) axis.
    """
    rates = [np.asarray(v, dtype=float) for v in (shared_steps, own_discounts, own_steps)]
    if any(r.ndim != 1 for r in rates) or len({r.shape[0] for r in rates}) != 1 or rates[0].shape[0] < 1:
        raise ValueError(
            "shared_steps, own_discounts, own_steps: expected three 1-d sequences of the same length M >= 1, "
            f"got shapes {[r.shape for r in rates]}"
        )
    models = [
        _tracker.tracker_model(prior, noise_var, float(q), float(g), float(r)) for q, g, r in zip(*rates, strict=True)
    ]
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *models)


def bank_init(models: _tracker.TrackerModel, num_actions: int) -> BankState:
    """Every model's prediction for round 0 (:func:`dts_ppl.core.tracker.tracker_init`), uniform weights.

    Args:
        models: :func:`bank_model`'s output (M models).   num_actions: K >= 1 (static).

    Returns:
        BankState: post fields (M, d), (M, d, d), (M, K, d, d), (M, K, d), (M, K, d, d); weights (M,).
    """
    post = jax.vmap(lambda m: _tracker.tracker_init(m, num_actions))(models)
    M = models.mean.shape[0]
    return BankState(post, jnp.full((M,), -math.log(M), models.mean.dtype))


def bank_observe(
    models: _tracker.TrackerModel, state: BankState, x: jax.Array, action: jax.Array, y: jax.Array
) -> BankState:
    """One round for every model: its predictive log density of y added to its weight, then its tracker's update.

    Args:
        models: M models.   state: the bank's prediction for this round.   x: (d,) context.
        action: () int in [0, K).   y: () reward.

    Returns:
        The bank's prediction for the next round (weights renormalised).
    """

    def one(model, post):
        mean, var = _tracker.tracker_predictive(model, post, x, action)
        logp = -0.5 * (jnp.log(2.0 * jnp.pi * var) + (y - mean) ** 2 / var)
        return logp, _tracker.tracker_observe(model, post, x, action, y)

    logp, post = jax.vmap(one)(models, state.post)
    logw = state.log_weights + logp
    return BankState(post, logw - jax.scipy.special.logsumexp(logw))


def bank_weights(state: BankState) -> jax.Array:
    """(M,) posterior probabilities of the models."""
    return jnp.exp(state.log_weights)


def bank_sample(key: jax.Array, state: BankState, x: jax.Array, play: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One Thompson draw: a model m from the weights, then every action's score from tracker ``play[m]``.

    Args:
        key: PRNG key.   state: the bank's prediction.   x: (d,) context.
        play: (M,) int, the tracker drawn from when model m is drawn (the identity: the mixture).

    Returns:
        (scores (K,), m ()): the scores and the drawn model.
    """
    km, ks = jax.random.split(key)
    m = jax.random.categorical(km, state.log_weights)
    chosen = jax.tree.map(lambda leaf: leaf[play[m]], state.post)
    return _tracker.tracker_sample(ks, chosen, x), m


def drift_grid(
    time_scales, own: str = "both", walk_below: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stated grid of drift models over time scales tau (rounds for u and e_a to move by their prior variance).

    For each finite tau: u's step q = 1 / tau and the own part either mean-reverting,
    gamma = 1 - 1 / tau (``tracking_rule(own="matched")``), or a random walk, gamma = 1, r = 1 / tau
    (the walk's own model); ``own`` keeps "ar", "walk" or "both". tau = inf is one model, no drift
    (q = 0, gamma = 1, r = 0). The play map: the identity, or with ``walk_below`` = T a drawn
    model of scale tau plays the walk's model of that tau when tau < T and the mean-reverting one
    otherwise (both must be in the grid).

    Args:
        time_scales: taus > 0 (math.inf allowed, at most once).   own: "ar", "walk" or "both".
        walk_below: None, or T > 0 (needs own="both").

    Returns:
        (shared_steps, own_discounts, own_steps, play), each (M,).
    """
    if own not in ("ar", "walk", "both"):
        raise ValueError(f"own: expected 'ar', 'walk' or 'both', got {own!r}")
    taus = [float(t) for t in time_scales]
    if not taus or any(not t > 0 for t in taus) or len(set(taus)) != len(taus):
        raise ValueError(f"time_scales: expected distinct numbers > 0, got {time_scales!r}")
    if walk_below is not None and (own != "both" or not walk_below > 0):
        raise ValueError(f"walk_below: expected None or a number > 0 with own='both', got {walk_below!r}")
    rows = []  # (q, gamma, r, tau, kind)
    for t in taus:
        if math.isinf(t):
            rows.append((0.0, 1.0, 0.0, t, "none"))
            continue
        if own in ("ar", "both"):
            rows.append((1.0 / t, 1.0 - 1.0 / max(t, 1.0), 0.0, t, "ar"))
        if own in ("walk", "both"):
            rows.append((1.0 / t, 1.0, 1.0 / t, t, "walk"))
    index = {(t, k): i for i, (_, _, _, t, k) in enumerate(rows)}
    play = np.arange(len(rows))
    if walk_below is not None:
        for i, (_, _, _, t, kind) in enumerate(rows):
            if kind != "none":
                play[i] = index[(t, "walk" if t < walk_below else "ar")]
    q, g, r = (np.asarray([row[j] for row in rows]) for j in range(3))
    return q, g, r, play
