"""Off-policy evaluation: a target policy's value from logged (x, a, r, propensity) data.

With logged rows i = 1..n (action a_i drawn by the logging policy with probability p_i, reward
r_i) and the target policy's action probabilities pi(a | x_i), the importance weight is
w_i = pi(a_i | x_i) / p_i and

- IPS:   V = mean_i w_i r_i                                   (unbiased)
- SNIPS: V = sum_i w_i r_i / sum_i w_i                        (self-normalised; bias O(1/n))
- DR:    V = mean_i [ sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]
         with a reward model q (:func:`ridge_reward_model` cross-fits one, so q never saw row i)

Each returns an :class:`Estimate` with a 95% normal-approximation interval from the
per-row terms' standard error (the delta method's influence terms w_i (r_i - V) / mean(w) for
SNIPS). Coverage, bias and RMSE are measured by simulation in benchmarks/ope_coverage.py
(docs/practitioner.md). The target policy of a dts_ppl agent: :func:`agent_policy`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from dts_ppl.agents import policy as _policy

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


class Estimate(NamedTuple):
    """A policy-value estimate: value, se, lower, upper (the 95% interval), n (rows); floats."""

    value: float
    se: float
    lower: float
    upper: float
    n: int


def _check_logs(actions, rewards, propensities, target):
    target = np.asarray(target, dtype=float)
    if target.ndim != 2:
        raise ValueError(f"target: expected (n, K) action probabilities of the target policy, got shape {target.shape}")
    n, K = target.shape
    if n < 2:
        raise ValueError(f"target: expected at least 2 logged rows, got {n}")
    a = np.asarray(actions)
    if a.shape != (n,):
        raise ValueError(f"actions: expected shape ({n},), got {a.shape}")
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(a == np.round(a)):
            raise ValueError(f"actions: expected integer action indices, got dtype {a.dtype}")
        a = a.astype(int)
    if a.min() < 0 or a.max() >= K:
        raise ValueError(f"actions: expected indices in [0, {K}), got range [{a.min()}, {a.max()}]")
    r = np.asarray(rewards, dtype=float)
    if r.shape != (n,) or not np.all(np.isfinite(r)):
        raise ValueError(f"rewards: expected {n} finite rewards of shape ({n},), got shape {r.shape}")
    p = np.asarray(propensities, dtype=float)
    if p.shape != (n,):
        raise ValueError(f"propensities: expected shape ({n},), got {p.shape}")
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError(
            "propensities: expected logging probabilities in (0, 1] (a zero propensity cannot be reweighted)"
        )
    if not np.all(np.isfinite(target)) or target.min() < 0 or np.abs(target.sum(1) - 1).max() > 1e-6:
        raise ValueError("target: expected rows of non-negative probabilities summing to 1")
    return a.astype(int), r, p, target


def _estimate(terms, value=None) -> Estimate:
    n = terms.shape[0]
    value = float(np.mean(terms)) if value is None else float(value)
    se = float(np.std(terms, ddof=1) / np.sqrt(n))
    return Estimate(value, se, value - Z95 * se, value + Z95 * se, n)


def importance_weights(actions, propensities, target):
    """w_i = pi(a_i | x_i) / p_i. Args: actions (n,), propensities (n,), target (n, K). Returns (n,)."""
    a, _, p, target = _check_logs(actions, np.zeros(len(propensities)), propensities, target)
    return target[np.arange(a.shape[0]), a] / p


def ips(actions, rewards, propensities, target) -> Estimate:
    """Inverse propensity scoring.

    Args:
        actions: (n,) logged actions.   rewards: (n,).   propensities: (n,) logging probabilities
        of the logged actions.   target: (n, K) the target policy's probabilities at each x_i.

    Returns:
        Estimate of the target policy's value.
    """
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    w = target[np.arange(a.shape[0]), a] / p
    return _estimate(w * r)


def snips(actions, rewards, propensities, target) -> Estimate:
    """Self-normalised IPS (arguments as :func:`ips`); interval by the delta method."""
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    w = target[np.arange(a.shape[0]), a] / p
    if w.sum() <= 0:
        raise ValueError("target: puts no probability on any logged action; SNIPS is undefined")
    value = np.sum(w * r) / np.sum(w)
    return _estimate(w * (r - value) / np.mean(w) + value, value)


def doubly_robust(actions, rewards, propensities, target, q_hat) -> Estimate:
    """Doubly robust estimate (arguments as :func:`ips`) with a reward model q_hat (n, K).

    q_hat[i, a] predicts the reward of action a at x_i; fit it on other rows than i (e.g.
    :func:`ridge_reward_model`), or the interval is optimistic.
    """
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    q = np.asarray(q_hat, dtype=float)
    if q.shape != target.shape or not np.all(np.isfinite(q)):
        raise ValueError(f"q_hat: expected finite reward predictions of shape {target.shape}, got {q.shape}")
    idx = np.arange(a.shape[0])
    w = target[idx, a] / p
    return _estimate(np.sum(target * q, axis=1) + w * (r - q[idx, a]))


def ridge_reward_model(X, actions, rewards, num_actions: int, folds: int = 2, ridge: float = 1.0, seed: int = 0):
    """Cross-fitted per-action ridge regression of the reward on (1, x): q_hat (n, K).

    Rows are split into ``folds`` random folds; each fold's predictions come from the model fit
    on the others (so the DR interval stays honest).

    Args:
        X: (n, p) contexts.   actions: (n,).   rewards: (n,).   num_actions: K.
        folds: >= 2.   ridge: > 0 penalty (not on the intercept).   seed: fold assignment.

    Returns:
        (n, K) predictions.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X: expected (n, p) contexts, got shape {X.shape}")
    n = X.shape[0]
    a, r, _, _ = _check_logs(actions, rewards, np.ones(n), np.full((n, num_actions), 1.0 / num_actions))
    if not isinstance(folds, int) or not 2 <= folds <= n:
        raise ValueError(f"folds: expected an integer in [2, n], got {folds!r}")
    if not ridge > 0:
        raise ValueError(f"ridge: expected > 0, got {ridge}")
    Z = np.hstack([np.ones((n, 1)), X])
    penalty = ridge * np.eye(Z.shape[1])
    penalty[0, 0] = 1e-8
    fold = np.random.default_rng(seed).permutation(n) % folds
    q = np.zeros((n, num_actions))
    for f in range(folds):
        train, test = fold != f, fold == f
        for k in range(num_actions):
            rows = train & (a == k)
            coef = np.linalg.solve(Z[rows].T @ Z[rows] + penalty, Z[rows].T @ r[rows])
            q[test, k] = Z[test] @ coef
    return q


def agent_policy(agent, key, state, X, num_samples: int = 1000, mask=None):
    """The target probabilities pi(a | x_i) (n, K) of a dts_ppl agent acting on ``state``.

    Each row is :func:`dts_ppl.agents.propensities` at x_i (``num_samples`` Thompson draws,
    exact for UCB agents), with one key per row. X: (n, d) ((n, K, d) shared).
    """
    X = jax.numpy.asarray(X)
    if X.ndim < 2 or X.shape[0] < 1:
        raise ValueError(f"X: expected a batch of contexts (n, d) or (n, K, d), got shape {tuple(X.shape)}")
    _policy.propensities(agent, key, state, X[0], num_samples, mask)  # eager checks on one row
    keys = jax.random.split(key, X.shape[0])
    rows = jax.jit(jax.vmap(lambda k, x: _policy.propensities(agent, k, state, x, num_samples, mask).probs))
    return np.asarray(rows(keys, X), dtype=float)
