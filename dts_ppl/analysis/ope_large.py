"""Off-policy evaluation for large action sets: marginalised weights (MIPS) and the dTS posterior as reward model.

With thousands of actions the importance weight w_i = pi(a_i | x_i) / p_i of :func:`ope.ips`
is as large as 1 / p_i, and the few logged rows that carry it decide the estimate
(:mod:`dts_ppl.analysis.ope`). This module adds the two answers of the large-K literature:

- **MIPS** (Saito & Joachims, "Off-Policy Evaluation for Large Action Spaces via Embeddings",
  ICML 2022). Each action a has an embedding category e(a) in {0, .., C - 1} (an item
  category, or a cluster of the actions' feature vectors: :func:`cluster_actions`). A policy's
  probability of a category is p(e | x) = sum_{a: e(a) = e} pi(a | x)
  (:func:`embedding_marginals`), and

      V_MIPS = mean_i w_i r_i,     w_i = p_target(e(a_i) | x_i) / p_log(e(a_i) | x_i).

  It is unbiased when the reward depends on the action only through its category given x
  ("no direct effect"), or, more generally, when the target and the logging policy choose
  alike among the actions of a category; otherwise it has a bias (the price of weights bounded
  by 1 / p_log(e | x) instead of 1 / p_log(a | x)). Its intervals are those of :func:`ope.ips`
  applied to the marginal weights: "normal" (value +- 1.96 se) or "el" (the empirical-likelihood
  interval :func:`ope.el_interval`; E[w] = 1 holds for marginal weights too, and w <= 1 /
  min_i p_log(e_i | x_i) is the default weight bound).

- **The direct method with the dTS posterior** (the structured Bayesian direct method of Aouali
  et al., arXiv 2402.14664, with the diffusion chain as the structure). The reward model is the
  dTS posterior fitted on the logged rows (Gaussian rewards; :func:`dts_ppl.core.fit_posterior`
  with the likelihood's statistics): q(x, a) = x^T m_a with m_a = E[theta_a | logs]
  (:func:`dts_ppl.core.moments`). With the target's loading U_a = (1/n) sum_i pi(a | x_i) x_i (K, d),

      V_DM = sum_a U_a^T m_a,

  and its interval is V_DM +- 1.96 sqrt(Var_post + Var_ctx): Var_post is the posterior variance of
  sum_a U_a^T theta_a over ``num_draws`` joint posterior draws of theta (:func:`dts_ppl.core.sample`:
  the shared latent correlates the actions), Var_ctx = Var_i(sum_a pi(a | x_i) x_i^T m_a) / n the
  sampling variance of the logged contexts. The interval is a posterior statement: it holds
  when the prior is right and the target policy carries no information on theta beyond the logs
  (a target learned from other data about the same actions does: the actions it prefers are
  better than their posterior mean says, and the DM then undercovers; docs/ope.md measures it).

- **Doubly robust with the dTS posterior**: :func:`ope.doubly_robust` with q_hat the cross-fitted
  posterior mean (:func:`posterior_reward_model`: the rows are split into folds and each fold's
  q comes from the posterior fitted on the other folds, so no row's residual is shrunk by its own
  fit); its interval is the influence-function one, terms
  sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)), value +- 1.96 sd / sqrt(n), or
  (``interval="el"``, :func:`doubly_robust_el`) the empirical-likelihood interval of the residual
  term plus the direct term's normal half-width, for heavy-tailed weights.

- **MIPS on posterior categories** (:func:`posterior_mips`): the categories are k-means of the
  posterior means of theta fitted on the other folds (the reward-relevant embedding of each
  action), so they are as reward-homogeneous as the logs can tell.

Where each 95% interval is claimed (checks a user runs on their own logs; outside, the estimators
warn with subclasses of :class:`ope.OutsideDomain`; the thresholds are fixed constants):

- normal intervals (IPS, SNIPS, DR, MIPS): the weights' relative effective sample size at least
  ``ope.ESS_WARN_FRACTION`` (10%): :func:`policy_ess` when the logging policy's probabilities are
  known (:class:`ope.LowEffectiveSampleSize` from :func:`mips` and :func:`posterior_mips`),
  else the logged weights' own ESS (the warning of :func:`ope.ips` and friends; optimistic: it is
  high exactly in the samples that missed the rare large weights).
- EL intervals (:func:`ope.el_interval`, :func:`doubly_robust_el`): below that ESS, where they are
  the recommended interval; pass :func:`policy_weight_range` as ``weight_range`` when the policies
  are known (the default 1 / min p is far looser at large K). They are conservative where a sample
  missed much of the target's mass (the atoms standing for the rows it missed take the worst reward
  allowed), so they can over-cover: docs/ope.md lists where their coverage is in the 95% band.
  The weights' known second moment E[w^2] = 1 / :func:`policy_ess` prices the unseen mass
  (:func:`el_moment_interval`; ``second_moment`` of :func:`doubly_robust_el`). Known bounds on
  the unseen rows' MEAN reward tighten them: a range of E[r | x, a]
  (``mean_reward_range``; :func:`el_dual_interval`) or the sd of E[r | x, a] under the target
  (``mean_reward_sd``; :func:`el_sd_interval`), and for DR the same of the model error
  (``mean_residual_range``, ``residual_sd``; :func:`posterior_error_sd` is the dTS posterior's value,
  valid only for a target built without information beyond the logs).
- the direct method: :func:`prior_share` at most ``PRIOR_SHARE_WARN`` (:class:`PriorDominated`).
- MIPS: the categories reward-homogeneous as far as the posterior can tell:
  :func:`prior_share` at most ``PRIOR_SHARE_WARN`` and :func:`direct_effect_bias` under the
  posterior-mean reward at most ``DIRECT_EFFECT_WARN`` se (:class:`DirectEffect`).

studies/ope/large_k.py measures coverage and RMSE of every estimator here and of IPS at
K = 10 .. 10,000, over all replicates and inside each domain (docs/ope.md).
"""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.analysis import ope
from dts_ppl.analysis.el_bounds import el_dual_interval, el_moment_interval, el_sd_interval
from dts_ppl.core import checks as _checks
from dts_ppl.core.inference import (
    DTSPosterior,
    Linearisation,
    fit_posterior,
    moments,
    resolve_linearisation,
    sample,
)
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior

__all__ = [
    "DIRECT_EFFECT_WARN",
    "PRIOR_SHARE_WARN",
    "DirectEffect",
    "PriorDominated",
    "cluster_actions",
    "direct_effect_bias",
    "doubly_robust_el",
    "el_dual_interval",
    "el_moment_interval",
    "el_sd_interval",
    "embedding_marginals",
    "marginal_weights",
    "mips",
    "policy_ess",
    "policy_weight_range",
    "posterior_mips",
    "prior_share",
    "posterior_direct_method",
    "posterior_doubly_robust",
    "posterior_error_sd",
    "posterior_fit",
    "posterior_reward_model",
    "value_draws",
]


#: the dTS-posterior checks warn (:class:`PriorDominated`) when the prior holds more than this share
#: of the posterior variance of the target's rewards (:func:`prior_share`)
PRIOR_SHARE_WARN = 0.1
#: MIPS warns (:class:`DirectEffect`) when its estimated direct-effect bias exceeds this many standard
#: errors: a normal interval whose centre is off by 0.5 se still covers 92%
DIRECT_EFFECT_WARN = 0.5


class PriorDominated(ope.OutsideDomain):
    """The prior, not the logs, decides the target's rewards (:func:`prior_share` above ``PRIOR_SHARE_WARN``)."""


class DirectEffect(ope.OutsideDomain):
    """MIPS's categories are not reward-homogeneous: its estimated bias exceeds ``DIRECT_EFFECT_WARN`` se."""


def doubly_robust_el(
    direct,
    w,
    residuals,
    weight_range=None,
    reward_range=None,
    mean_residual_range=None,
    residual_sd=None,
    second_moment=None,
) -> tuple[float, float]:
    """The doubly robust estimate's 95% interval with the residual term's empirical-likelihood interval.

    The DR estimate is mean_i D_i + mean_i w_i e_i with D_i = sum_a pi(a | x_i) q(x_i, a) and the
    residual e_i = r_i - q(x_i, a_i). E[w e] is a weighted mean with E[w] = 1, the form
    :func:`ope.el_interval` bounds (e in place of the reward, with the atoms at the weight
    bounds for the large weights a sample missed); the direct part, an average of bounded
    per-context terms, gets its normal half-width Z95 sd(D) / sqrt(n), added to both ends (the
    sum of the two half-widths is at least their quadrature sum).

    Args:
        direct: (n,) D_i.   w: (n,) importance weights.   residuals: (n,) e_i (q cross-fitted).
        weight_range: (w_min, w_max) bounds on every possible weight (:func:`policy_weight_range`
            when the policies are known; default (0, inf)).
        reward_range: bounds on every possible residual (default the observed range).
        mean_residual_range: optional (lo, hi) bounds on the residual's MEAN E[r - q(x, a) | x, a]
            (the reward model's error) at every context and action: the atoms' residual is
            limited to it (``mean_reward_range`` of :func:`ope.el_interval`).
        residual_sd: optional bound on the sd of E[r - q(x, a) | x, a] under the target's
            distribution of (x, a) (``mean_reward_sd`` of :func:`ope.el_interval`;
            :func:`posterior_error_sd` is the dTS posterior's value of it).
        second_moment: optional E[w^2] under the logging policy (1 / :func:`policy_ess`): the atoms
            for the unseen weights are limited by it (:func:`el_moment_interval`; needs a finite
            ``weight_range``, not with the two bounds above).

    Returns:
        (lower, upper) floats.
    """
    direct = np.asarray(direct, dtype=float)
    if direct.ndim != 1 or direct.shape != np.shape(w) or not np.all(np.isfinite(direct)):
        raise ValueError(f"direct: expected {np.shape(w)} finite direct-method terms, got shape {direct.shape}")
    if second_moment is not None:
        if mean_residual_range is not None or residual_sd is not None or weight_range is None:
            raise ValueError(
                "second_moment: expected a finite weight_range and neither mean_residual_range nor residual_sd"
            )
        lo, hi = el_moment_interval(w, residuals, *weight_range, second_moment, reward_range)
    else:
        lo, hi = ope.el_interval(
            w, residuals, weight_range, reward_range, mean_reward_range=mean_residual_range, mean_reward_sd=residual_sd
        )
    centre, half = float(direct.mean()), ope.Z95 * float(direct.std(ddof=1)) / np.sqrt(direct.shape[0])
    return float(centre + lo - half), float(centre + hi + half)


def embedding_marginals(probs: jax.Array, embeddings: jax.Array, num_embeddings: int) -> jax.Array:
    """p(e | x) = sum_{a: e(a) = e} pi(a | x): a policy's probabilities of each embedding category (jittable).

    Args:
        probs: (..., K) action probabilities.
        embeddings: (K,) integer category of each action, in [0, num_embeddings).
        num_embeddings: C (static).

    Returns:
        (..., C) category probabilities.
    """
    probs = jnp.asarray(probs)
    one_hot = jax.nn.one_hot(jnp.asarray(embeddings), num_embeddings, dtype=probs.dtype)
    return probs @ one_hot


def _check_embeddings(embeddings, num_actions: int, num_embeddings: int | None):
    if embeddings is None or isinstance(embeddings, str | bytes):
        raise ValueError(f"embeddings: expected ({num_actions},) integer categories, got {embeddings!r}")
    e = np.asarray(embeddings)
    if e.shape != (num_actions,):
        raise ValueError(f"embeddings: expected one category per action, shape ({num_actions},), got {e.shape}")
    if e.dtype.kind not in "iu":
        if e.dtype.kind != "f" or not np.all(np.isfinite(e)) or not np.all(e == np.round(e)):
            raise ValueError(f"embeddings: expected integer categories, got dtype {e.dtype}")
        e = e.astype(int)
    if e.min() < 0:
        raise ValueError(f"embeddings: expected categories >= 0, got {e.min()}")
    if num_embeddings is None:
        num_embeddings = int(e.max()) + 1
    num_embeddings = _checks.check_positive_int("num_embeddings", num_embeddings)
    if e.max() >= num_embeddings:
        raise ValueError(f"num_embeddings: {num_embeddings} is not above the largest category in embeddings, {e.max()}")
    return e.astype(np.int64), num_embeddings


def _check_policy(name: str, probs, shape):
    probs = np.asarray(probs, dtype=float)
    if probs.shape != shape:
        raise ValueError(f"{name}: expected (n, K) = {shape} action probabilities, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or np.abs(probs.sum(1) - 1).max() > 1e-6:
        raise ValueError(f"{name}: expected rows of non-negative probabilities summing to 1")
    return probs


def _marginal(actions, rewards, logging, target, embeddings, num_embeddings):
    """Checked inputs -> (weights w (n,), rewards (n,), marginal logging propensities (n,))."""
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    logging = _check_policy("logging", logging, target.shape)
    n, K = target.shape
    a = np.asarray(actions)
    if a.shape != (n,) or a.dtype.kind not in "iuf" or np.any(a != np.round(a)) or a.min() < 0 or a.max() >= K:
        raise ValueError(f"actions: expected ({n},) integer action indices in [0, {K}), got {a.shape} {a.dtype}")
    a = a.astype(int)
    p = logging[np.arange(n), a]
    if not np.all(p > 0):
        raise ValueError("logging: gives probability 0 to a logged action (a zero propensity cannot be reweighted)")
    a, r, p, target = ope._check_logs(a, rewards, p, target)
    e, C = _check_embeddings(embeddings, K, num_embeddings)
    rows = np.arange(n)
    p_log = np.asarray(embedding_marginals(logging, e, C))[rows, e[a]]
    p_target = np.asarray(embedding_marginals(target, e, C))[rows, e[a]]
    return p_target / p_log, r, p_log


def marginal_weights(actions, logging, target, embeddings, num_embeddings: int | None = None) -> np.ndarray:
    """MIPS weights w_i = p_target(e(a_i) | x_i) / p_log(e(a_i) | x_i).

    Args:
        actions: (n,) logged actions.   logging: (n, K) the logging policy's probabilities at
        each x_i.   target: (n, K) the target policy's.   embeddings: (K,) integer category of
        each action.   num_embeddings: C (default max(embeddings) + 1).

    Returns:
        (n,) weights; equal to :func:`ope.importance_weights` when every action is its own category.
    """
    n = np.shape(actions)[0] if np.ndim(actions) == 1 else 0
    w, _, _ = _marginal(actions, np.zeros(n), logging, target, embeddings, num_embeddings)
    return w


def _policy_pair(logging, target, embeddings, num_embeddings):
    """The checked (n, K) logging and target probabilities, or their (n, C) category marginals."""
    target = np.asarray(target, dtype=float)
    logging = _check_policy("logging", logging, target.shape)
    target = _check_policy("target", target, logging.shape)
    if embeddings is not None:
        e, C = _check_embeddings(embeddings, target.shape[1], num_embeddings)
        logging = np.asarray(embedding_marginals(logging, e, C))
        target = np.asarray(embedding_marginals(target, e, C))
    return logging, target


def policy_weight_range(logging, target, embeddings=None, num_embeddings: int | None = None) -> tuple[float, float]:
    """The range of the importance weights the two policies allow on the logged contexts.

    (min, max) over rows i and actions a of pi(a | x_i) / mu(a | x_i) (over categories e of
    p_target(e | x_i) / p_log(e | x_i) when ``embeddings`` are given, for MIPS), skipping
    actions (categories) the logging policy never takes. Pass it as ``weight_range`` of the EL
    intervals: it is the tightest range the policies imply on these contexts, far below the
    default 1 / min_i p_i when the target spreads its mass (uniform logging over K actions: K
    max_{i,a} pi(a | x_i) instead of K).

    Args:
        logging: (n, K) the logging policy's probabilities at each x_i.   target: (n, K) the target's.
        embeddings: optional (K,) integer category of each action.   num_embeddings: C.

    Returns:
        (w_min, w_max) floats, widened (if need be) to w_min < 1 < w_max as the EL interval requires.
    """
    logging, target = _policy_pair(logging, target, embeddings, num_embeddings)
    live = logging > 0
    ratio = target[live] / logging[live]
    return min(float(ratio.min()), 1.0 - 1e-9), max(float(ratio.max()), 1.0 + 1e-9)


def policy_ess(logging, target, embeddings=None, num_embeddings: int | None = None) -> float:
    """The importance weights' relative effective sample size that the two policies imply, in (0, 1].

    1 / mean_i E_mu[w^2 | x_i] = 1 / mean_i sum_a pi(a | x_i)^2 / mu(a | x_i) (over categories e,
    p_t(e | x_i)^2 / p_log(e | x_i), for MIPS's marginal weights): Kish's ESS / n in expectation
    over the logged actions, computed from the policies instead of the sampled weights. The
    logged weights' own ESS (:func:`ope.effective_sample_size`) is high precisely in the samples
    that missed the rare large weights, where the normal interval is low and narrow; this one
    does not depend on which actions were drawn. Normal intervals are claimed where it is at
    least ``ope.ESS_WARN_FRACTION``.

    Args:
        logging: (n, K) the logging policy's probabilities at each x_i.   target: (n, K) the target's.
        embeddings: optional (K,) integer category of each action.   num_embeddings: C.

    Returns:
        The relative ESS (float).
    """
    logging, target = _policy_pair(logging, target, embeddings, num_embeddings)
    if np.any((logging == 0) & (target > 0)):
        return 0.0  # the target takes what the logging policy never does: no weight can reach it
    second = np.sum(np.where(logging > 0, target**2 / np.where(logging > 0, logging, 1.0), 0.0), axis=1)
    return float(1.0 / np.mean(second))


def _check_policy_ess(ess: float, estimator: str) -> None:
    if ess < ope.ESS_WARN_FRACTION:
        warnings.warn(
            f"{estimator}: the policies' effective sample size is {ess:.1%} of the rows (below ESS_WARN_FRACTION = "
            f"{ope.ESS_WARN_FRACTION:.0%}); the normal interval can undercover here: use interval='el'",
            ope.LowEffectiveSampleSize,
            stacklevel=3,
        )


def direct_effect_bias(logging, target, embeddings, q_hat, num_embeddings: int | None = None) -> float:
    """MIPS's bias if the mean reward were q_hat: its direct-effect term, from the logs alone.

    The bias is mean_i sum_a [mu(a | x_i) p_t(e(a) | x_i) / p_log(e(a) | x_i) - pi(a | x_i)] q(x_i, a).

    MIPS's expectation is E_x sum_a mu(a | x) w(x, e(a)) f(x, a), so with the true mean reward f
    in place of q_hat this is its exact bias: zero when f is constant within each category
    (no direct effect) or when the target and the logging policy choose alike inside every
    category. With a reward model (:func:`posterior_reward_model`) it estimates how far the
    categories are from reward-homogeneous, on the logs alone.

    Args:
        logging: (n, K).   target: (n, K).   embeddings: (K,) categories.   q_hat: (n, K) rewards.
        num_embeddings: C (default max(embeddings) + 1).

    Returns:
        The estimated bias (float).
    """
    target = np.asarray(target, dtype=float)
    logging = _check_policy("logging", logging, target.shape)
    target = _check_policy("target", target, logging.shape)
    q = np.asarray(q_hat, dtype=float)
    if q.shape != target.shape or not np.all(np.isfinite(q)):
        raise ValueError(f"q_hat: expected finite reward predictions of shape {target.shape}, got {q.shape}")
    e, C = _check_embeddings(embeddings, target.shape[1], num_embeddings)
    pt, pl = np.asarray(embedding_marginals(target, e, C)), np.asarray(embedding_marginals(logging, e, C))
    ratio = np.where(pl > 0, pt / np.where(pl > 0, pl, 1.0), 0.0)
    return float(np.mean(np.sum((logging * ratio[:, e] - target) * q, axis=1)))


def _check_direct_effect(bias: float, se: float, estimator: str) -> None:
    if abs(bias) > DIRECT_EFFECT_WARN * se:
        warnings.warn(
            f"{estimator}: the categories are not reward-homogeneous: the direct-effect bias under the reward "
            f"model is {bias:+.3g}, above DIRECT_EFFECT_WARN = {DIRECT_EFFECT_WARN} x se ({se:.3g}); the interval "
            "can miss the value: use finer or reward-based categories (posterior_mips) or a doubly robust estimator",
            DirectEffect,
            stacklevel=3,
        )


def mips(
    actions,
    rewards,
    logging,
    target,
    embeddings,
    num_embeddings: int | None = None,
    interval: str = "el",
    weight_range=None,
    reward_range=None,
    q_hat=None,
) -> ope.Estimate:
    """Marginalised inverse propensity scoring over action embeddings (Saito & Joachims 2022).

    Args:
        actions: (n,) logged actions.   rewards: (n,).
        logging: (n, K) the logging policy's action probabilities at each x_i (the whole row is
            needed: p_log(e | x) sums it over a category).
        target: (n, K) the target policy's action probabilities.
        embeddings: (K,) integer category of each action (:func:`cluster_actions` makes them from
            feature vectors).   num_embeddings: C (default max(embeddings) + 1).
        interval: "el" (:func:`ope.el_interval` on the marginal weights) or "normal".
        weight_range, reward_range: known bounds for "el" (default (0, 1 / min_i p_log(e_i | x_i))
            and the observed reward range; :func:`policy_weight_range` with ``embeddings`` gives
            the policies' own, much tighter, range).
        q_hat: optional (n, K) reward model (fitted on other rows, e.g. :func:`posterior_reward_model`):
            the domain check. MIPS's interval is claimed only where the categories are
            reward-homogeneous; with q_hat the estimated direct-effect bias
            (:func:`direct_effect_bias`) is computed and a :class:`DirectEffect` warning is
            raised when it exceeds ``DIRECT_EFFECT_WARN`` se. Without it no such check is made.

    Returns:
        :class:`ope.Estimate` (ess: of the marginal weights, with the
        :class:`ope.LowEffectiveSampleSize` warning below ``ope.ESS_WARN_FRACTION`` of the rows,
        and for "normal" also when :func:`policy_ess` of the categories is below it).
    """
    ope._check_interval(interval)
    w, r, p_log = _marginal(actions, rewards, logging, target, embeddings, num_embeddings)
    ess = ope._check_ess(w, "mips")
    if interval == "normal" and ess >= ope.ESS_WARN_FRACTION * w.shape[0]:  # the logged weights look light
        _check_policy_ess(policy_ess(logging, target, embeddings, num_embeddings), "mips")
    est = ope._estimate(w * r)._replace(ess=ess)
    if q_hat is not None:
        _check_direct_effect(direct_effect_bias(logging, target, embeddings, q_hat, num_embeddings), est.se, "mips")
    return ope._with_interval(est, interval, w, r, p_log, weight_range, reward_range)


@partial(jax.jit, static_argnames=("num_clusters", "iterations"))
def _lloyd(key, features, num_clusters: int, iterations: int):
    def sq_dist(centres):  # (K, C)
        return jnp.sum(features**2, 1)[:, None] - 2 * features @ centres.T + jnp.sum(centres**2, 1)[None]

    def assign(centres):
        return jnp.argmin(sq_dist(centres), axis=1)

    # k-means++ seeding: each next centre is an action drawn with probability proportional to its
    # squared distance from the centres so far (so two centres rarely start in one group)
    first, rest = jax.random.split(key)
    start = features[jax.random.randint(first, (), 0, features.shape[0])]
    centres = jnp.broadcast_to(start, (num_clusters, features.shape[1]))

    def seed_step(centres, xs):
        c, k = xs
        d2 = jnp.maximum(jnp.min(sq_dist(centres), axis=1), 0.0)
        pick = jax.random.categorical(k, jnp.where(d2 > 0, jnp.log(jnp.where(d2 > 0, d2, 1.0)), -jnp.inf))
        return centres.at[c].set(features[pick]), None

    steps = jnp.arange(1, num_clusters)
    centres, _ = jax.lax.scan(seed_step, centres, (steps, jax.random.split(rest, num_clusters - 1)))

    def step(centres, _):
        one_hot = jax.nn.one_hot(assign(centres), num_clusters, dtype=features.dtype)
        counts = one_hot.sum(0)
        means = (one_hot.T @ features) / jnp.maximum(counts, 1)[:, None]
        return jnp.where(counts[:, None] > 0, means, centres), None  # an emptied cluster keeps its centre

    centres, _ = jax.lax.scan(step, centres, None, length=iterations)
    return assign(centres).astype(jnp.int32)


def cluster_actions(key, features, num_clusters: int, iterations: int = 25) -> jax.Array:
    """Embedding categories from action feature vectors: k-means (Lloyd, ``iterations`` steps; jittable).

    The centres start at ``num_clusters`` actions drawn with ``key`` by k-means++ seeding (each
    next one with probability proportional to its squared distance from those already drawn); a
    cluster that loses every action keeps its centre (so some categories may be empty).

    Args:
        key: PRNG key.   features: (K, p) one feature vector per action (item features, or the
            dTS posterior means of theta).   num_clusters: C in [1, K].   iterations: Lloyd steps.

    Returns:
        (K,) int32 categories in [0, C).
    """
    key = _checks.check_key(key)
    features = _checks.as_array("features", features, ndim=2)
    _checks.check_finite("features", features)
    K = features.shape[0]
    num_clusters = _checks.check_positive_int("num_clusters", num_clusters)
    if num_clusters > K:
        raise ValueError(f"num_clusters: expected at most K = {K} (one action per cluster), got {num_clusters}")
    iterations = _checks.check_int("iterations", iterations, 0)
    return _lloyd(key, features, num_clusters, iterations)


# ------------------------------------------------------------------- the dTS posterior as reward model


def _check_likelihood(likelihood):
    if not isinstance(likelihood, Gaussian):
        raise ValueError(
            f"likelihood: expected a dts_ppl Gaussian likelihood (the reward model is x^T E[theta_a]), "
            f"got {type(likelihood).__name__}"
        )
    return likelihood


@partial(jax.jit, static_argnames=("num_actions", "likelihood", "linearisation"))
def _fit(prior, X, actions, rewards, keep, num_actions: int, likelihood, linearisation: str):
    """The posterior given the rows with ``keep`` (a 0/1 row mask): (DTSPosterior, Linearisation, theta mean (K, d))."""
    # Gaussian statistics are sums of sigma^-2 x x^T and sigma^-2 y x: a row with x = 0 adds nothing
    stats = likelihood.statistics(X * keep[:, None], actions, rewards * keep, num_actions)
    fit = fit_posterior(prior, stats, linearisation)
    return fit.posterior, fit.linearisation, moments(prior, fit.posterior, fit.linearisation).theta_mean


def _check_rows(prior, X, actions, rewards, num_actions):
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    X = _checks.as_array("X", X, ndim=2)
    _checks.check_finite("X", X)
    n, d = X.shape
    if d != prior.dim:
        raise ValueError(f"X: expected contexts of the prior's dimension d = {prior.dim}, got shape {tuple(X.shape)}")
    if n < 2:
        raise ValueError(f"X: expected at least 2 logged rows, got {n}")
    num_actions = _checks.check_positive_int("num_actions", num_actions)
    a = _checks.check_actions("actions", actions, num_actions, n)
    y = _checks.as_array("rewards", rewards, shape=(n,))
    _checks.check_finite("rewards", y)
    return X.astype(prior.cov1.dtype), a, y.astype(prior.cov1.dtype), num_actions


def posterior_fit(
    prior: DiffusionPrior, X, actions, rewards, num_actions: int, likelihood: Gaussian, linearisation: str | None = None
) -> tuple[DTSPosterior, Linearisation, jax.Array]:
    """The dTS posterior of ``prior`` given logged rows (:func:`dts_ppl.core.fit_posterior`), and its theta mean.

    Args:
        prior: DiffusionPrior of dim d.   X: (n, d) contexts.   actions: (n,).   rewards: (n,).
        num_actions: K.   likelihood: a :class:`dts_ppl.Gaussian` (its scale is the reward noise sd).
        linearisation: as :func:`dts_ppl.core.posterior` (default: the prior's).

    Returns:
        (posterior, linearisation, theta_mean (K, d)); theta_mean from :func:`dts_ppl.core.moments`.
    """
    likelihood = _check_likelihood(likelihood)
    X, a, y, K = _check_rows(prior, X, actions, rewards, num_actions)
    lin = resolve_linearisation(prior, linearisation)
    return _fit(prior, X, a, y, jnp.ones(X.shape[0], X.dtype), K, likelihood, lin)


def posterior_reward_model(
    prior: DiffusionPrior,
    X,
    actions,
    rewards,
    num_actions: int,
    likelihood: Gaussian,
    folds: int = 2,
    seed: int = 0,
    linearisation: str | None = None,
) -> np.ndarray:
    """Cross-fitted dTS posterior-mean reward model: q_hat[i, a] = x_i^T E[theta_a | rows outside i's fold].

    Like :func:`ope.ridge_reward_model`: rows are split into ``folds`` random folds, and each
    fold's predictions come from the posterior fitted on the others (for :func:`ope.doubly_robust`).

    Args:
        prior, X (n, d), actions (n,), rewards (n,), num_actions K, likelihood, linearisation:
            as :func:`posterior_fit`.
        folds: an integer in [2, n].   seed: the fold assignment.

    Returns:
        (n, K) predictions.
    """
    likelihood = _check_likelihood(likelihood)
    X, a, y, K = _check_rows(prior, X, actions, rewards, num_actions)
    n = X.shape[0]
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or not 2 <= folds <= n:
        raise ValueError(f"folds: expected an integer in [2, n = {n}], got {folds!r}")
    lin = resolve_linearisation(prior, linearisation)
    fold = np.random.default_rng(seed).permutation(n) % folds
    q = np.zeros((n, K))
    for f in range(folds):
        test = fold == f
        _, _, mean = _fit(prior, X, a, y, jnp.asarray(~test, X.dtype), K, likelihood, lin)
        q[test] = np.asarray(X[test] @ mean.T, dtype=float)
    return q


@partial(jax.jit, static_argnames=("num_draws",))
def value_draws(key, prior: DiffusionPrior, post: DTSPosterior, loading: jax.Array, num_draws: int) -> jax.Array:
    """Posterior draws of the linear functional sum_a U_a^T theta_a (jittable).

    Args:
        key: PRNG key.   prior: the DiffusionPrior of ``post``.   post: a DTSPosterior.
        loading: (K, d) U; for a target policy's value, U_a = (1/n) sum_i pi(a | x_i) x_i.
        num_draws: S.

    Returns:
        (S,) draws (joint posterior draws of theta through :func:`dts_ppl.core.sample`).
    """
    _, theta = sample(key, prior, post, (num_draws,))
    return jnp.einsum("kd,skd->s", loading, theta)


def _target_posterior_variance(
    prior: DiffusionPrior, post: DTSPosterior, lin: Linearisation | None, X, target
) -> float:
    """(1/n) sum_i sum_a pi(a | x_i) x_i^T Cov(theta_a | logs) x_i: the posterior variance of the
    mean reward under the target's (x, a) (prior_share's numerator, posterior_error_sd's square)."""
    X = np.asarray(X, dtype=float)
    target = np.asarray(target, dtype=float)
    n, d = X.shape
    cov = np.asarray(moments(prior, post, lin).theta_cov, dtype=float)  # (K, d, d)
    if target.shape != (n, cov.shape[0]):
        raise ValueError(f"target: expected (n, K) = {(n, cov.shape[0])} probabilities, got shape {target.shape}")
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, d * d)
    second = (target.T @ outer).reshape(-1, d, d) / n  # (K, d, d): (1/n) sum_i pi(a | x_i) x_i x_i^T
    return float(np.einsum("kde,ked->", second, cov))


def prior_share(prior: DiffusionPrior, post: DTSPosterior, lin: Linearisation | None, X, target) -> float:
    """The share of the target's actions' own prior variance that the logs leave, rho (0: all resolved, 1: none).

    rho = sum_i sum_a pi(a | x_i) x_i^T Cov(theta_a | logs) x_i / sum_i x_i^T S_1 x_i, with S_1 the
    prior covariance of theta_a given the shared latent (what sets one action apart from the
    others; the shared part is learned from every action's rows). Near 0 the logs decide every
    reward the target relies on; near 1 the target's actions are known only through the prior
    (rarely or never logged), and a direct method's value rests on the prior's shrinkage: its
    posterior interval then holds only if the target policy carries no information on theta
    beyond these logs. The dTS estimators warn (:class:`PriorDominated`) above ``PRIOR_SHARE_WARN``.

    Args:
        prior: DiffusionPrior.   post, lin: the posterior and linearisation of :func:`posterior_fit`.
        X: (n, d) contexts.   target: (n, K) the target policy's probabilities.

    Returns:
        rho (float).
    """
    X = np.asarray(X, dtype=float)
    num = _target_posterior_variance(prior, post, lin, X, target)
    den = float(np.einsum("ie,ed,id->", X, np.asarray(prior.cov1, dtype=float), X)) / X.shape[0]
    return num / den


def posterior_error_sd(prior: DiffusionPrior, post: DTSPosterior, lin: Linearisation | None, X, target) -> float:
    """The dTS posterior's root-mean-square error of its mean reward under the target: sqrt((1/n) sum_i sum_a
    pi(a | x_i) x_i^T Cov(theta_a | logs) x_i).

    Under the posterior, E[(x^T theta_a - x^T m_a)^2] = x^T Cov(theta_a | logs) x, so this bounds (in
    posterior expectation) the sd of the reward model's error under the target's (x, a): a value
    for ``residual_sd`` of :func:`doubly_robust_el`. It holds when the prior is right and the
    target carries no information on theta beyond the logs (an informed target picks actions
    whose errors spread more: docs/ope.md measures it).

    Args:
        prior, post, lin: as :func:`prior_share`.   X: (n, d) contexts.   target: (n, K) probabilities.

    Returns:
        the sd (float).
    """
    return float(np.sqrt(max(_target_posterior_variance(prior, post, lin, X, target), 0.0)))


def _check_prior_share(rho: float, estimator: str) -> None:
    if rho > PRIOR_SHARE_WARN:
        warnings.warn(
            f"{estimator}: the prior holds {rho:.0%} of the posterior variance of the target's rewards (above "
            f"PRIOR_SHARE_WARN = {PRIOR_SHARE_WARN:.0%}): the target relies on actions the logs barely inform, and "
            "the estimate rests on the prior's shrinkage; its interval holds only if the target policy was built "
            "without information on theta beyond these logs (use posterior_doubly_robust(interval='el'))",
            PriorDominated,
            stacklevel=3,
        )


def posterior_direct_method(
    key,
    prior: DiffusionPrior,
    X,
    actions,
    rewards,
    target,
    likelihood: Gaussian,
    num_draws: int = 1000,
    linearisation: str | None = None,
) -> ope.Estimate:
    """The direct method with the dTS posterior mean as reward model, with a posterior interval.

    V = sum_a U_a^T m_a with U_a = (1/n) sum_i pi(a | x_i) x_i and m_a the posterior mean of
    theta_a given all logged rows; interval V +- 1.96 sqrt(Var_post + Var_ctx) (module docstring).

    Args:
        key: PRNG key of the posterior draws.   prior: DiffusionPrior (dim d).
        X: (n, d) logged contexts.   actions: (n,).   rewards: (n,).
        target: (n, K) the target policy's action probabilities at each x_i.
        likelihood: a :class:`dts_ppl.Gaussian` (the reward noise sd).
        num_draws: posterior draws for Var_post (>= 2).   linearisation: as :func:`posterior_fit`.

    Returns:
        :class:`ope.Estimate` (se = sqrt(Var_post + Var_ctx); ess = nan: no importance weights).
        Warns :class:`PriorDominated` when :func:`prior_share` exceeds ``PRIOR_SHARE_WARN``
        (outside the domain where the interval is claimed).
    """
    key = _checks.check_key(key)
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    n, K = target.shape
    ope._check_logs(actions, rewards, np.ones(n), target)
    if isinstance(num_draws, bool) or not isinstance(num_draws, int | np.integer) or num_draws < 2:
        raise ValueError(f"num_draws: expected an integer >= 2, got {num_draws!r}")
    post, lin, mean = posterior_fit(prior, X, actions, rewards, K, likelihood, linearisation)
    _check_prior_share(prior_share(prior, post, lin, X, target), "posterior_direct_method")
    X = np.asarray(X, dtype=float)
    mean = np.asarray(mean, dtype=float)
    loading = target.T @ X / n
    value = float(np.sum(loading * mean))
    draws = np.asarray(value_draws(key, prior, post, jnp.asarray(loading, prior.cov1.dtype), int(num_draws)))
    per_context = np.sum(target * (X @ mean.T), axis=1)
    se = float(np.sqrt(np.var(draws, ddof=1) + np.var(per_context, ddof=1) / n))
    return ope.Estimate(value, se, value - ope.Z95 * se, value + ope.Z95 * se, n)


def posterior_doubly_robust(
    prior: DiffusionPrior,
    X,
    actions,
    rewards,
    propensities,
    target,
    likelihood: Gaussian,
    folds: int = 2,
    seed: int = 0,
    linearisation: str | None = None,
    interval: str = "normal",
    weight_range=None,
    reward_range=None,
    logging=None,
) -> ope.Estimate:
    """:func:`ope.doubly_robust` with the cross-fitted dTS posterior mean (:func:`posterior_reward_model`) as q_hat.

    Args:
        prior: DiffusionPrior (dim d).   X: (n, d).   actions: (n,).   rewards: (n,).
        propensities: (n,) logging probabilities of the logged actions.
        target: (n, K) the target policy's probabilities.   likelihood: a :class:`dts_ppl.Gaussian`.
        folds, seed, linearisation: as :func:`posterior_reward_model`.
        interval: "normal" (the influence-function interval; claimed where the weights'
            effective sample size is at least ``ope.ESS_WARN_FRACTION`` of the rows, and it
            warns below) or "el" (:func:`doubly_robust_el`: the residual term's
            empirical-likelihood interval, for heavy-tailed weights; no ESS condition).
        weight_range, reward_range: for "el": bounds on every weight (default
            :func:`policy_weight_range` when ``logging`` is given, else
            :func:`ope.default_weight_range`) and on every residual (default the observed range).
        logging: optional (n, K) the logging policy's probabilities at each x_i: then the
            normal interval's domain is checked on :func:`policy_ess` (a
            :class:`ope.LowEffectiveSampleSize` warning below ``ope.ESS_WARN_FRACTION``) as well as
            on the logged weights' ESS, which alone is optimistic (docs/ope.md).

    Returns:
        :class:`ope.Estimate`.
    """
    ope._check_interval(interval)
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    a, r, p, target = ope._check_logs(actions, rewards, propensities, target)
    if logging is not None:
        logging = _check_policy("logging", logging, target.shape)
        if not np.allclose(logging[np.arange(a.shape[0]), a], p, rtol=1e-6, atol=1e-12):
            raise ValueError("logging: its probabilities of the logged actions differ from propensities")
    q = posterior_reward_model(prior, X, actions, rewards, target.shape[1], likelihood, folds, seed, linearisation)
    if interval == "normal":
        if weight_range is not None or reward_range is not None:
            raise ValueError("weight_range, reward_range: only used by interval='el'")
        est = ope.doubly_robust(actions, rewards, propensities, target, q)
        if logging is not None and est.ess >= ope.ESS_WARN_FRACTION * est.n:
            _check_policy_ess(policy_ess(logging, target), "posterior_doubly_robust")
        return est
    idx = np.arange(a.shape[0])
    w = target[idx, a] / p
    direct, resid = np.sum(target * q, axis=1), r - q[idx, a]
    est = ope._estimate(direct + w * resid)._replace(ess=ope.effective_sample_size(w))
    if weight_range is None:
        weight_range = ope.default_weight_range(p) if logging is None else policy_weight_range(logging, target)
    lower, upper = doubly_robust_el(direct, w, resid, weight_range, reward_range)
    return est._replace(lower=lower, upper=upper)


def posterior_mips(
    key,
    prior: DiffusionPrior,
    X,
    actions,
    rewards,
    logging,
    target,
    likelihood: Gaussian,
    num_embeddings: int | None = None,
    folds: int = 2,
    seed: int = 0,
    interval: str = "el",
    weight_range=None,
    reward_range=None,
    linearisation: str | None = None,
) -> ope.Estimate:
    """MIPS over categories of the dTS posterior's reward-relevant embedding, cross-fitted.

    The reward x^T theta_a depends on the action through theta_a, so actions whose posterior
    means E[theta_a | logs] are close have close rewards at every context: k-means of the
    posterior means (:func:`cluster_actions`, ``num_embeddings`` categories, default
    ceil(sqrt(K))) gives categories that are as reward-homogeneous as the logs can tell.
    The rows are split into ``folds`` folds; each fold's weights use the categories (and the
    direct-effect check the reward model) of the posterior fitted on the other folds, so no
    row's category is chosen with its own reward.

    Domain checks (warnings, :class:`ope.OutsideDomain` subclasses): the marginal weights' ESS
    (:class:`ope.LowEffectiveSampleSize`, relevant to "normal"), the prior's share of the target's
    reward variance (:class:`PriorDominated`: the posterior means of rarely logged actions are
    the prior's, and cannot tell how homogeneous their categories are), and the estimated
    direct-effect bias against the se (:class:`DirectEffect`).

    Args:
        key: PRNG key (the k-means seeding).
        prior: DiffusionPrior (dim d).   X: (n, d).   actions: (n,).   rewards: (n,).
        logging: (n, K) the logging policy's probabilities.   target: (n, K) the target's.
        likelihood: a :class:`dts_ppl.Gaussian`.   num_embeddings: C.
        folds: an integer in [2, n].   seed: the fold assignment.
        interval: "el" or "normal" (as :func:`mips`).
        weight_range: for "el" (default: :func:`policy_weight_range` over every fold's categories).
        reward_range: for "el" (default the observed range).   linearisation: as :func:`posterior_fit`.

    Returns:
        :class:`ope.Estimate` (ess of the marginal weights).
    """
    key = _checks.check_key(key)
    ope._check_interval(interval)
    likelihood = _check_likelihood(likelihood)
    X, a, y, K = _check_rows(prior, X, actions, rewards, np.shape(target)[-1] if np.ndim(target) == 2 else 1)
    target = np.asarray(target, dtype=float)
    n = X.shape[0]
    if target.shape != (n, K):
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    logging = _check_policy("logging", logging, target.shape)
    C = (
        int(np.ceil(np.sqrt(K)))
        if num_embeddings is None
        else _checks.check_positive_int("num_embeddings", num_embeddings)
    )
    if C > K:
        raise ValueError(f"num_embeddings: expected at most K = {K}, got {C}")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or not 2 <= folds <= n:
        raise ValueError(f"folds: expected an integer in [2, n = {n}], got {folds!r}")
    lin = resolve_linearisation(prior, linearisation)
    keys = jax.random.split(key, folds)
    post, lin_all, _ = _fit(prior, X, a, y, jnp.ones(n, X.dtype), K, likelihood, lin)
    rho = prior_share(prior, post, lin_all, np.asarray(X), target)
    fold = np.random.default_rng(seed).permutation(n) % folds
    w, p_log = np.zeros(n), np.zeros(n)
    bias, lo, hi, second = 0.0, np.inf, 0.0, 0.0
    for f in range(folds):
        test = fold == f
        _, _, mean = _fit(prior, X, a, y, jnp.asarray(~test, X.dtype), K, likelihood, lin)
        emb = np.asarray(cluster_actions(keys[f], mean, C))
        w[test], _, p_log[test] = _marginal(a[test], np.asarray(y)[test], logging[test], target[test], emb, C)
        q = np.asarray(X[test] @ mean.T, dtype=float)
        bias += direct_effect_bias(logging[test], target[test], emb, q, C) * test.sum() / n
        f_lo, f_hi = policy_weight_range(logging[test], target[test], emb, C)
        lo, hi = min(lo, f_lo), max(hi, f_hi)
        fold_ess = policy_ess(logging[test], target[test], emb, C)
        second += test.sum() / n / fold_ess if fold_ess > 0 else np.inf
    r = np.asarray(y, dtype=float)
    ess = ope._check_ess(w, "posterior_mips")
    if interval == "normal" and ess >= ope.ESS_WARN_FRACTION * n:
        _check_policy_ess(1.0 / second, "posterior_mips")
    est = ope._estimate(w * r)._replace(ess=ess)
    _check_prior_share(rho, "posterior_mips")
    _check_direct_effect(bias, est.se, "posterior_mips")
    if interval == "el" and weight_range is None:
        weight_range = (lo, hi)
    return ope._with_interval(est, interval, w, r, p_log, weight_range, reward_range)
