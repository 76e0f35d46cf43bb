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
  sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)), value +- 1.96 sd / sqrt(n).

studies/ope/large_k.py measures coverage and RMSE of every estimator here and of IPS at
K = 10 .. 10,000 (docs/ope.md).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.analysis import ope
from dts_ppl.core import checks as _checks
from dts_ppl.core.inference import DTSPosterior, Linearisation, fit_posterior, moments, resolve_linearisation, sample
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior

__all__ = [
    "cluster_actions",
    "embedding_marginals",
    "marginal_weights",
    "mips",
    "posterior_direct_method",
    "posterior_doubly_robust",
    "posterior_fit",
    "posterior_reward_model",
    "value_draws",
]


# ------------------------------------------------------------------------------------ MIPS


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
            and the observed reward range).

    Returns:
        :class:`ope.Estimate` (ess: of the marginal weights, with the
        :class:`ope.LowEffectiveSampleSize` warning below ``ope.ESS_WARN_FRACTION`` of the rows).
    """
    ope._check_interval(interval)
    w, r, p_log = _marginal(actions, rewards, logging, target, embeddings, num_embeddings)
    ess = ope._check_ess(w, "mips")
    est = ope._estimate(w * r)._replace(ess=ess)
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
    """
    key = _checks.check_key(key)
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    n, K = target.shape
    ope._check_logs(actions, rewards, np.ones(n), target)
    if isinstance(num_draws, bool) or not isinstance(num_draws, int | np.integer) or num_draws < 2:
        raise ValueError(f"num_draws: expected an integer >= 2, got {num_draws!r}")
    post, _, mean = posterior_fit(prior, X, actions, rewards, K, likelihood, linearisation)
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
) -> ope.Estimate:
    """:func:`ope.doubly_robust` with the cross-fitted dTS posterior mean (:func:`posterior_reward_model`) as q_hat.

    Args:
        prior: DiffusionPrior (dim d).   X: (n, d).   actions: (n,).   rewards: (n,).
        propensities: (n,) logging probabilities of the logged actions.
        target: (n, K) the target policy's probabilities.   likelihood: a :class:`dts_ppl.Gaussian`.
        folds, seed, linearisation: as :func:`posterior_reward_model`.

    Returns:
        :class:`ope.Estimate` with the normal (influence-function) interval.
    """
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    ope._check_logs(actions, rewards, propensities, target)
    q = posterior_reward_model(prior, X, actions, rewards, target.shape[1], likelihood, folds, seed, linearisation)
    return ope.doubly_robust(actions, rewards, propensities, target, q)
