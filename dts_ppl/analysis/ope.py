"""Off-policy evaluation: a target policy's value from logged (x, a, r, propensity) data.

With logged rows i = 1..n (action a_i drawn by the logging policy with probability p_i, reward
r_i) and the target policy's action probabilities pi(a | x_i), the importance weight is
w_i = pi(a_i | x_i) / p_i and

- IPS:   V = mean_i w_i r_i                                   (unbiased)
- SNIPS: V = sum_i w_i r_i / sum_i w_i                        (self-normalised; bias O(1/n))
- DR:    V = mean_i [ sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]
         with a reward model q (:func:`ridge_reward_model` cross-fits one, so q never saw row i)

Each returns an :class:`Estimate` with a 95% interval named by ``interval=``:

- ``"normal"``: value +- 1.96 se from the per-row terms' standard error (the delta method's
  influence terms w_i (r_i - V) / mean(w) for SNIPS). Under heavy-tailed weights it is too
  narrow: a sample that missed the rare large weights has mean(w) < 1, a low estimate and a
  small se together.
- ``"el"`` (IPS and SNIPS; their default): the empirical-likelihood interval of Karampatziakis,
  Langford & Mineiro ("Empirical Likelihood for Contextual Bandits", NeurIPS 2020), in the
  form derived in :func:`el_interval`. It uses what is known about importance weights: E[w] = 1
  and w in [w_min, w_max] (default [0, 1 / min_i p_i], :func:`default_weight_range`), with
  rewards in a range (default the observed one). It is one interval for V, shared by IPS and
  SNIPS (only the point estimate differs); it need not contain the IPS or SNIPS point (it is
  centred on the EL estimate, which also uses E[w] = 1), except when mean(w) = 1.

Every estimate reports ``ess``, the effective sample size of its importance weights,
(sum_i w_i)^2 / sum_i w_i^2 (Kish): n when all weights are equal, about n / max(w) when a few
rows carry the estimate. Below ``ESS_WARN_FRACTION`` (10%) of the rows each estimator warns once
(:class:`LowEffectiveSampleSize`, naming the number).

Which interval to trust (docs/practitioner.md has the measurements):

- ess above 10% of the rows: the "normal" intervals (IPS, SNIPS, DR) and "el" all hold. The
  ess of the logged weights is an optimistic check (it is high in exactly the samples that
  missed the rare large weights); when the logging policy's probabilities of every action are
  known, check the policies' own ESS instead, :func:`dts_ppl.analysis.ope_large.policy_ess`
  (docs/ope.md measures both).
- ess below 10% (a target far from the logging policy; a catalogue of hundreds of actions
  logged uniformly): the "normal" intervals of IPS and SNIPS undercover (a sample that missed
  the rare large weights is both low and narrow; measured in docs/practitioner.md). Use
  ``interval="el"`` for IPS and SNIPS, with the true ``weight_range`` and ``reward_range`` when
  known; it is wide, which is the honest answer.
  DR's normal interval held in that simulation, but it rests on the reward model.
- a LEARNING agent (its policy changes as it sees data) has no fixed target probabilities:
  :func:`replay` (Li et al. 2011) on logs from a uniform logging policy.

Coverage, bias and RMSE are measured by simulation in studies/ope/ope_coverage.py and
the other scripts in studies/ope/ (docs/practitioner.md). The target policy of a dts_ppl agent: :func:`agent_policy`.
Large action sets (MIPS over action embeddings, the dTS posterior as reward model): :mod:`dts_ppl.analysis.ope_large`.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal
from scipy import optimize

from dts_ppl.agents import policy as _policy
from dts_ppl.analysis.el_bounds import CHI2_95, Z95, _check_mean_range, check_ranges, el_dual_interval, el_sd_interval
from dts_ppl.core import checks as _checks

try:  # an optional dependency (it ships with scikit-learn), imported with the module
    _threadpool_limits = importlib.import_module("threadpoolctl").threadpool_limits
except ImportError:  # pragma: no cover
    _threadpool_limits = None

INTERVALS = ("normal", "el")


#: an estimator warns when the weights' effective sample size is below this fraction of the rows
ESS_WARN_FRACTION = 0.1


class OutsideDomain(UserWarning):
    """An estimator was called outside the domain where its 95% interval is claimed (docs/ope.md)."""


class LowEffectiveSampleSize(OutsideDomain):
    """The importance weights' effective sample size is below ``ESS_WARN_FRACTION`` of the rows."""


class Estimate(NamedTuple):
    """A policy-value estimate: value, se, lower, upper (the 95% interval), n (rows), ess; floats.

    ``ess``: the effective sample size of the importance weights, (sum w)^2 / sum w^2 (for
    :func:`replay`, the number of accepted rows); ``ess_fraction`` = ess / n.
    """

    value: float
    se: float
    lower: float
    upper: float
    n: int
    ess: float = math.nan

    @property
    def ess_fraction(self) -> float:
        return self.ess / self.n


def effective_sample_size(w) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of weights w (n,) >= 0; 0 when all are 0."""
    w = np.asarray(w, dtype=float)
    total = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / total) if total > 0 else 0.0


def _check_ess(w, estimator: str) -> float:
    """The weights' ess; warns once (LowEffectiveSampleSize) when it is below ESS_WARN_FRACTION of the rows."""
    ess, n = effective_sample_size(w), w.shape[0]
    if ess < ESS_WARN_FRACTION * n:
        warnings.warn(
            f"{estimator}: the importance weights' effective sample size is {ess:.1f} of {n} rows "
            f"({100 * ess / n:.2g}%, below ESS_WARN_FRACTION = {ESS_WARN_FRACTION:.0%}); normal-approximation "
            "intervals can undercover here: use interval='el' (IPS, SNIPS) with known weight and reward ranges",
            LowEffectiveSampleSize,
            stacklevel=3,
        )
    return ess


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


def _check_interval(interval, allowed=INTERVALS):
    if interval not in allowed:
        raise ValueError(f"interval: expected one of {allowed}, got {interval!r}")
    return interval


def _one_blas_thread():
    """A context with BLAS limited to one thread: scipy's L-BFGS-B on two variables runs ~100x
    slower when its BLAS threads compete for busy cores (a no-op without threadpoolctl)."""
    if _threadpool_limits is None:  # pragma: no cover - threadpoolctl ships with scikit-learn, not required
        return contextlib.nullcontext()
    return _threadpool_limits(1, user_api="blas")


def _max_concave(f_grad, x0):
    """(max, argmax) over x >= 0 (2,) of a smooth concave f, never below f(x0).

    L-BFGS-B on -f with bounds, and L-BFGS-B in x = exp(t) (which keeps every D_i > 0, so it
    does not stall at a corner where some D_i = 0); the better of the two.
    """
    with _one_blas_thread():
        return _max_concave_lbfgsb(f_grad, x0)


def _max_concave_lbfgsb(f_grad, x0):
    opts = dict(ftol=1e-15, gtol=1e-12, maxiter=500)
    box = optimize.minimize(
        lambda x: tuple(-v for v in f_grad(x)), x0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * 2, options=opts
    )

    def in_logs(t):
        x = np.exp(np.minimum(t, 700.0))
        f, grad = f_grad(x)
        return -f, -grad * x

    logs = optimize.minimize(in_logs, np.log(x0), jac=True, method="L-BFGS-B", options=opts)
    value, x = max(
        (-box.fun, box.x), (-logs.fun, np.exp(np.minimum(logs.x, 700.0))), (f_grad(x0)[0], x0), key=lambda c: c[0]
    )
    return (value, x) if np.isfinite(value) else (-np.inf, x0)


def el_interval(
    w, r, weight_range=None, reward_range=None, chi2: float = CHI2_95, mean_reward_range=None, mean_reward_sd=None
):
    """The empirical-likelihood interval for V = E[w r] (Karampatziakis, Langford & Mineiro 2020).

    Distributions Q put mass q_i on the n logged points (w_i, r_i) and the rest on two atoms,
    w = w_min and w = w_max, whose rewards may be anything in [r_lo, r_hi] (large weights the
    sample missed). Q must satisfy E_Q[1] = 1 and E_Q[w] = 1 (true of every importance weight);
    the interval is {E_Q[w r] : log-likelihood sum_i log q_i >= its maximum - chi2 / 2}, the
    profile-likelihood interval whose level is chi-square(1) (Wilks). The atoms' existence
    reduces to two linear constraints on q (u^T q <= 1, v^T q <= 1 with u_i = (w_i - w_min) /
    (1 - w_min), v_i = (w_max - w_i) / (w_max - 1)), and at the lower end the atoms' reward is
    r_lo, so V = r_lo + a^T q with a_i = w_i (r_i - r_lo). Minimising a^T q over
    {q >= 0, u^T q <= 1, v^T q <= 1, sum log q >= c} has the Lagrange dual (q_i = eta / D_i,
    eta eliminated in closed form)

        max_{lam, mu >= 0}  n exp(mean_i log D_i + c / n) - lam - mu,   D_i = a_i + lam u_i + mu v_i,

    and c itself comes from max sum log q (dual: min_{l, m >= 0} -sum log(l u_i + m v_i) - n + l + m).
    The upper end is the same with a_i = w_i (r_hi - r_i) and V = r_hi - a^T q: three
    two-variable concave problems in all (tests/analysis/test_ope.py checks them against a primal solver).
    Any (lam, mu) gives a dual value below the primal minimum, and c is the log-likelihood of a
    feasible q built from the likelihood dual's solution (at most the maximum), so an optimiser
    that stops short widens the interval, never narrows it; the ends are clipped to [r_lo, r_hi].

    Args:
        w: (n,) importance weights.   r: (n,) rewards.
        weight_range: (w_min, w_max) bounds on every possible weight, 0 <= w_min < 1 < w_max
            (w_max may be inf); default (0, inf) (:func:`ips` and :func:`snips` default to
        :func:`default_weight_range` instead).
        reward_range: (r_lo, r_hi) bounds on every possible reward; default the observed range.
        chi2: the calibration (default the chi-square(1) 95% quantile).
        mean_reward_range: optional (m_lo, m_hi) bounds on the MEAN reward E[r | x, a] at every
            context and action (noisy rewards may fall outside): the atoms stand for rows the
            sample missed, and their contribution to V is a mean reward, so their reward is
            limited to this range (intersected with ``reward_range`` when that is given) and the
            ends to it (V is an average of mean rewards); solved by
            :func:`dts_ppl.analysis.ope_large.el_dual_interval` (docs/ope.md derives it).
        mean_reward_sd: optional bound on the sd of the mean reward E[r | x, a] under the target
            policy's distribution of (x, a): the atoms' reward is then within
            sigma sqrt((1 - delta) / delta) of V, delta their share of the target's mass
            (:func:`dts_ppl.analysis.ope_large.el_sd_interval`; atoms at w = 0 and w_max). Not with
            ``mean_reward_range``.

    Returns:
        (lower, upper) floats.
    """
    w, r = np.asarray(w, float), np.asarray(r, float)
    w_min, w_max, r_lo, r_hi = check_ranges(w, r, weight_range, reward_range)
    if mean_reward_sd is not None:
        if mean_reward_range is not None:
            raise ValueError("mean_reward_sd: expected either mean_reward_sd or mean_reward_range, not both")
        return el_sd_interval(w, r, w_max, mean_reward_sd, (r_lo, r_hi), chi2)
    if mean_reward_range is not None:
        m_lo, m_hi = _check_mean_range("mean_reward_range", mean_reward_range)
        if reward_range is not None:
            m_lo, m_hi = max(m_lo, r_lo), min(m_hi, r_hi)
            if m_lo > m_hi:
                raise ValueError(f"mean_reward_range: {mean_reward_range!r} is outside reward_range {reward_range!r}")
        lower, upper = el_dual_interval(w, r, w_min, w_max, (m_lo, m_hi), chi2=chi2)
        lower = min(max(lower, m_lo), m_hi)
        return float(lower), float(max(min(upper, m_hi), lower))
    n = w.shape[0]
    u = (w - w_min) / (1 - w_min)
    v = np.ones(n) if np.isinf(w_max) else (w_max - w) / (w_max - 1)

    def loglik_dual(x):  # -(1/n) * (dual of max sum log q), up to -log n - 1: minimised, so negated
        den = np.maximum(x[0] * u + x[1] * v, 1e-300)
        f = np.mean(np.log(den)) - x[0] - x[1]
        return f, np.array([np.mean(u / den) - 1, np.mean(v / den) - 1])

    # the likelihood's maximiser from the dual, q_i = 1 / (n (lam u_i + mu v_i)), scaled by kappa into
    # the feasible set: its log-likelihood (a lower bound of the maximum, equal at the optimum,
    # where kappa = 1) sets c, so an inexact solve can only widen the interval.
    # c / n + log n = -mean log(lam u + mu v) - log kappa - chi2 / (2 n) =: s  (lam, mu scaled by 1/n)
    _, (lam, mu) = _max_concave(loglik_dual, np.array([0.5, 0.5]))
    den = np.maximum(lam * u + mu * v, 1e-300)
    kappa = max(np.mean(u / den), np.mean(v / den))
    s = -np.mean(np.log(den)) - np.log(kappa) - chi2 / (2 * n)

    def end(a):
        scale = max(float(np.std(a)) * np.sqrt(n / chi2), float(np.mean(a)), 1e-300)

        def g(x):  # the dual above, divided by scale: x = (lam, mu) / scale
            den = np.maximum(a / scale + x[0] * u + x[1] * v, 1e-300)
            e = np.exp(np.mean(np.log(den)) + s)
            return e - x[0] - x[1], np.array([e * np.mean(u / den) - 1, e * np.mean(v / den) - 1])

        return scale * _max_concave(g, np.array([1.0, 1.0]))[0]

    # any dual value bounds the primal (weak duality): a solver that stops short only widens the
    # interval; V lies in [r_lo, r_hi] whatever Q is
    lower = min(max(r_lo + end(w * (r - r_lo)), r_lo), r_hi)
    upper = max(min(r_hi - end(w * (r_hi - r)), r_hi), lower)
    return float(lower), float(upper)


def default_weight_range(propensities):
    """The default weight bounds of the EL interval: (0, 1 / min_i p_i).

    No weight pi(a_i | x_i) / p_i exceeds 1 / p_i, and the smallest logged propensity stands in
    for the logging policy's smallest one (a data-derived bound, not a guaranteed one: pass the
    true one when it is known).

    Args:
        propensities: (n,) logging probabilities of the logged actions, in (0, 1].

    Returns:
        (w_min, w_max) floats; w_max is inf when every p_i is 1.
    """
    w_max = 1.0 / float(np.min(propensities))
    return (0.0, w_max if w_max > 1 + 1e-9 else np.inf)


def _with_interval(est: Estimate, interval, w, r, p, weight_range, reward_range) -> Estimate:
    if interval == "normal":
        if weight_range is not None or reward_range is not None:
            raise ValueError("weight_range, reward_range: only used by interval='el'")
        return est
    weight_range = default_weight_range(p) if weight_range is None else weight_range
    lower, upper = el_interval(w, r, weight_range, reward_range)
    return est._replace(lower=lower, upper=upper)


def importance_weights(actions, propensities, target):
    """w_i = pi(a_i | x_i) / p_i. Args: actions (n,), propensities (n,), target (n, K). Returns (n,)."""
    a, _, p, target = _check_logs(actions, np.zeros(len(propensities)), propensities, target)
    return target[np.arange(a.shape[0]), a] / p


def ips(actions, rewards, propensities, target, interval="el", weight_range=None, reward_range=None) -> Estimate:
    """Inverse propensity scoring.

    Args:
        actions: (n,) logged actions.   rewards: (n,).   propensities: (n,) logging probabilities
        of the logged actions.   target: (n, K) the target policy's probabilities at each x_i.
        interval: "el" (empirical likelihood, :func:`el_interval`) or "normal" (value +- 1.96 se).
        weight_range, reward_range: known bounds on every possible weight and reward for "el"
            (default :func:`default_weight_range` and the observed reward range); pass them
            when known (e.g. rewards in [0, 1]).

    Returns:
        Estimate of the target policy's value (se: the normal-approximation standard error; ess:
        the weights' effective sample size, with a :class:`LowEffectiveSampleSize` warning below
        ``ESS_WARN_FRACTION`` of the rows).
    """
    _check_interval(interval)
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    w = target[np.arange(a.shape[0]), a] / p
    ess = _check_ess(w, "ips")
    return _with_interval(_estimate(w * r)._replace(ess=ess), interval, w, r, p, weight_range, reward_range)


def snips(actions, rewards, propensities, target, interval="el", weight_range=None, reward_range=None) -> Estimate:
    """Self-normalised IPS (arguments as :func:`ips`); the "normal" interval by the delta method."""
    _check_interval(interval)
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    w = target[np.arange(a.shape[0]), a] / p
    if w.sum() <= 0:
        raise ValueError("target: puts no probability on any logged action; SNIPS is undefined")
    ess = _check_ess(w, "snips")
    value = np.sum(w * r) / np.sum(w)
    est = _estimate(w * (r - value) / np.mean(w) + value, value)._replace(ess=ess)
    return _with_interval(est, interval, w, r, p, weight_range, reward_range)


def doubly_robust(actions, rewards, propensities, target, q_hat, interval="normal") -> Estimate:
    """Doubly robust estimate (arguments as :func:`ips`) with a reward model q_hat (n, K).

    q_hat[i, a] predicts the reward of action a at x_i; fit it on other rows than i (e.g.
    :func:`ridge_reward_model`), or the interval is optimistic. ``interval``: "normal" only (the
    DR terms are not a weighted mean with E[w] = 1, so the EL interval does not apply).
    """
    _check_interval(interval, ("normal",))
    a, r, p, target = _check_logs(actions, rewards, propensities, target)
    q = np.asarray(q_hat, dtype=float)
    if q.shape != target.shape or not np.all(np.isfinite(q)):
        raise ValueError(f"q_hat: expected finite reward predictions of shape {target.shape}, got {q.shape}")
    idx = np.arange(a.shape[0])
    w = target[idx, a] / p
    ess = _check_ess(w, "doubly_robust")
    return _estimate(np.sum(target * q, axis=1) + w * (r - q[idx, a]))._replace(ess=ess)


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
    if X is None or isinstance(X, str | bytes):
        raise ValueError(f"X: expected (n, p) contexts, got {X!r}")
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X: expected an (n, p) array of numbers ({e})") from None
    if X.ndim != 2:
        raise ValueError(f"X: expected (n, p) contexts, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise ValueError(f"X: contains NaN or inf (first at index {bad})")
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


#: rows sharing one set of draws in agent_policy (default of ``rows_per_block``)
ROWS_PER_BLOCK = 256
#: most (row, draw, action) scores agent_policy holds at once (a chunk of a block's rows)
CHUNK_BUDGET = 2**19


def agent_policy(
    agent,
    key,
    state,
    X,
    num_samples: int = 1000,
    mask=None,
    rows_per_block: int | None = None,
    precision: str = "single",
):
    """The target probabilities pi(a | x_i) (n, K) of a dts_ppl agent acting on ``state``.

    pi(a | x_i) is the fraction of ``num_samples`` Thompson draws (``agent.act``'s scores) whose
    argmax is a, as :func:`dts_ppl.agents.propensities` computes it; exact for UCB agents.
    The draws are vectorised: the rows are split into blocks of ``rows_per_block`` and every
    row of a block uses the same ``num_samples`` keys, so what a draw does not owe to the
    context (the latent chain, the standard normals) is computed once per block and draw,
    stored, and read by every row's scores (``act`` traced once and split by what each of its
    values depends on); the scores are computed a tile of rows x draws at a time, so no
    rows x draws x K array beyond ``CHUNK_BUDGET`` values is held. With the same key and
    ``rows_per_block`` the result equals scoring every (row, draw) through ``act`` (with
    ``precision="agent"``; float32 scores may change the winner of a (row, draw) whose best
    scores are within float32 rounding of each other).
    Each row's probabilities are unbiased with Monte-Carlo s.e. sqrt(pi (1 - pi) /
    num_samples), as with one key per row; errors of rows in one block are correlated (blocks
    use independent keys), so the Monte-Carlo error of a value estimate shrinks with the number
    of blocks and num_samples rather than with n.

    Args:
        agent: a dts_ppl Agent.   key: PRNG key.   state: the agent's state.
        X: (n, d) contexts ((n, K, d) action features for a shared agent).
        num_samples: Thompson draws per row (>= 2; ignored for deterministic agents).
        mask: (K,) bool, True = available (masked actions get probability 0).
        rows_per_block: rows sharing one set of draws (default ``ROWS_PER_BLOCK``, or n if fewer).
        precision: "single" computes the (row, draw) scores in float32 (the draws themselves in
            the agent's dtype) and repeats the call in the agent's dtype if in some row more than
            max(1, num_samples // 1000) draws have a shared best score (float32 rounding, or a
            tie in any dtype): so rounding moves at most that many draws of a row to the first
            of tied actions; "agent" computes the scores in the agent's dtype.

    Returns:
        (n, K) numpy array of probabilities, rows summing to 1.
    """
    X = jnp.asarray(X)
    if X.ndim < 2 or X.shape[0] < 1:
        raise ValueError(f"X: expected a batch of contexts (n, d) or (n, K, d), got shape {tuple(X.shape)}")
    key = _checks.check_key(key)
    K = agent.spec.num_actions
    mask = _policy.check_mask(mask, K)
    if precision not in ("single", "agent"):
        raise ValueError(f"precision: expected 'single' or 'agent', got {precision!r}")
    deterministic = bool(agent.spec.deterministic)
    if not deterministic and (not isinstance(num_samples, int | np.integer) or num_samples < 2):
        raise ValueError(f"num_samples: expected an integer >= 2, got {num_samples!r}")
    if not _checks.is_real_dtype(X.dtype):
        raise ValueError(f"X: expected real contexts, got dtype {X.dtype}")
    _checks.check_finite("X", X)
    agent.act(key, state, X[0])  # the state and the context shape, checked eagerly on one row
    block_fn = _policy_fn(agent)
    n = X.shape[0]
    if deterministic:
        return np.asarray(block_fn(key, X[None], state, mask, 2, True, False), dtype=float)[0]
    if rows_per_block is None:
        rows_per_block = min(n, ROWS_PER_BLOCK)
    if not isinstance(rows_per_block, int | np.integer) or rows_per_block < 1:
        raise ValueError(f"rows_per_block: expected a positive integer, got {rows_per_block!r}")
    rows_per_block = int(rows_per_block)
    blocks = -(-n // rows_per_block)
    padded = jnp.concatenate([X, jnp.repeat(X[-1:], blocks * rows_per_block - n, axis=0)])
    padded = padded.reshape((blocks, rows_per_block) + X.shape[1:])
    wide = any(getattr(v, "dtype", None) == np.float64 for v in [X, *jax.tree.leaves(state)])
    single = precision == "single" and wide  # a float32 agent is scored in float32 either way
    probs, tied = block_fn(key, padded, state, mask, int(num_samples), False, single)
    if single and np.max(np.asarray(tied).reshape(-1)[:n]) > max(1, num_samples // 1000):
        probs, _ = block_fn(key, padded, state, mask, int(num_samples), False, False)  # float32 tied the best scores
    return np.asarray(probs, dtype=float).reshape(blocks * rows_per_block, K)[:n]


#: one compiled policy function per agent (keyed weakly by its ``act``), so repeated calls of
#: :func:`agent_policy` compile once per input shape instead of once per call
_POLICY_FNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _policy_fn(agent):
    """``f(key, blocks (B, R, ...), state, mask, num_samples, deterministic, single)``, jitted per agent.

    Returns (B, R, K) probabilities if deterministic, else ((B, R, K) probabilities, (B, R) number
    of each row's draws whose best score is shared, counted with ``single`` only).
    """
    try:
        fn = _POLICY_FNS.get(agent.act)
    except TypeError:  # an act that cannot be weakly referenced: compiled per call
        fn = None
    if fn is not None:
        return fn
    act_ref = weakref.ref(agent.act) if _weakrefable(agent.act) else (lambda act=agent.act: act)
    K = agent.spec.num_actions

    def scores(key, state, x, mask):
        _, info = act_ref()(key, state, x)
        return jnp.where(mask, info.scores, -jnp.inf)

    def run(key, padded, state, mask, num_samples, deterministic, single):
        if deterministic:  # exact: ties share the probability
            s = jax.vmap(lambda x: scores(key, state, x, mask))(padded[0])
            best = s == jnp.max(s, axis=1, keepdims=True)
            return (best / jnp.sum(best, axis=1, keepdims=True))[None]
        rows = padded.shape[1]
        chunk = max(1, min(rows, CHUNK_BUDGET // (num_samples * K)))
        while rows % chunk:
            chunk -= 1
        per = max(1, min(num_samples, CHUNK_BUDGET // (chunk * K)))  # draws per tile
        while num_samples % per:
            per -= 1
        # levels: 0 the state and the mask, 1 the key (one posterior draw), 2 the context
        program = _staged(scores, (key, state, padded[0, 0], mask), (1, 0, 2, 0))
        key_id, state_ids, x_id, mask_id = (
            program.inputs[0],
            program.inputs[1:-2],
            program.inputs[-2],
            program.inputs[-1],
        )
        fixed = _run_level(
            program, 0, {**program.consts, **dict(zip(state_ids, jax.tree.leaves(state), strict=True)), mask_id: mask}
        )
        fixed = {i: fixed[i] for i in program.exports[0]}

        stored = [i for i in program.exports[1] if i != key_id] + [key_id]

        def draw(k):  # level 1: what one draw computes whatever the context
            env = _run_level(program, 1, {**fixed, key_id: k})
            return [env[i] for i in stored]

        read = {i: _single(v) for i, v in fixed.items()} if single else fixed  # what level 2 reads of level 0

        def score(x, drawn):  # level 2: the scores of one (row, draw)
            env = _run_level(program, 2, {**read, **dict(zip(stored, drawn, strict=True)), x_id: x}, single)
            return [r[1] if r[0] == "lit" else env[r[1]] for r in program.outputs][0]

        def block(args):
            k, xs = args
            drawn = jax.vmap(draw)(jax.random.split(k, num_samples))  # stored: read by every row chunk
            if single:
                drawn, xs = [_single(v) for v in drawn], _single(xs)

            def tile(xc, dr):  # the winners of a chunk of rows x a chunk of draws, and each row's ties
                won, tied = _first_argmax(jax.vmap(lambda x: jax.vmap(lambda d: score(x, d))(dr))(xc), True)
                return won, jnp.sum(tied, axis=1, dtype=jnp.int32) if single else jnp.zeros(len(xc), jnp.int32)

            def rows_chunk(xc):  # the scores of a chunk of rows, never the block's rows x draws x K
                if per == num_samples:
                    return tile(xc, drawn)
                parts = [v.reshape((num_samples // per, per) + v.shape[1:]) for v in drawn]
                won, tied = jax.lax.map(lambda dr: tile(xc, dr), parts)
                return jnp.swapaxes(won, 0, 1).reshape(chunk, num_samples), jnp.sum(tied, axis=0)

            won, tied = jax.lax.map(rows_chunk, xs.reshape((rows // chunk, chunk) + xs.shape[1:]))
            won = won.reshape(rows, num_samples)
            count = jax.vmap(lambda w: jnp.zeros(K, jnp.result_type(float)).at[w].add(1.0) / num_samples)(won)
            return count, tied.reshape(rows)

        return jax.lax.map(block, (jax.random.split(key, padded.shape[0]), padded))

    fn = jax.jit(run, static_argnames=("num_samples", "deterministic", "single"))
    if _weakrefable(agent.act):
        _POLICY_FNS[agent.act] = fn
    return fn


#: largest K for which :func:`_first_argmax` packs (count, index) into one int32 sum
_PACKED_MAX_K = 30000


def _first_argmax(s, ties: bool = False):
    """``jnp.argmax(s, axis=-1)`` (the first maximum; the first NaN if any) without XLA's argmax.

    XLA's CPU argmax is one variadic (value, index) reduction that is not vectorised. Here: the
    maximum, then one int32 sum over the actions a that attain it (or are NaN) of K + a, which
    is K + a for a single winner a and at least 2K when the maximum is shared; only a set of
    scores with a shared maximum takes the smallest such index in another pass. Both sums
    vectorise and fuse with the scores: several times faster on the (rows, draws, K) scores of
    :func:`agent_policy`. With ``ties``, also whether the maximum is shared: ``(index, tied)``.
    """
    K = s.shape[-1]
    top = jnp.max(s, axis=-1, keepdims=True)
    hit = (s == top) | jnp.isnan(s)
    index = jax.lax.broadcasted_iota(jnp.int32, s.shape, s.ndim - 1)

    def smallest():
        return jnp.min(jnp.where(hit, index, K), axis=-1)

    if K > _PACKED_MAX_K:  # K + a summed over a shared maximum could overflow int32
        first, tied = smallest(), jnp.sum(hit, axis=-1, dtype=jnp.int32) > 1
    else:
        packed = jnp.sum(jnp.where(hit, K + index, 0), axis=-1, dtype=jnp.int32)
        tied = packed >= 2 * K
        first = jax.lax.cond(jnp.any(tied), smallest, lambda: packed - K)
    return (first, tied) if ties else first


_INLINED = ("pjit", "jit", "closed_call", "core_call")


class _Staged(NamedTuple):
    """A traced program split by what each value depends on (see :func:`_staged`)."""

    eqns: list  # (primitive, params, input refs, output ids, level, input dtypes)
    consts: dict  # id -> value of the program's constants
    inputs: list  # ids of the flat arguments
    outputs: list  # refs of the flat outputs
    exports: tuple  # exports[s]: ids computed at level s that a later level reads
    out_tree: object


def _staged(fn, example: tuple, levels: tuple) -> _Staged:
    """``fn`` traced on ``example`` and flattened, each value given the level of what it depends on.

    The level of an argument is given (here: 0 the state and the mask, 1 the key, 2 the context);
    a value's level is the highest of its inputs' (constants: 0). Nested ``jit`` calls are
    inlined, so the levels are found inside them; other primitives (loops, conditionals, custom
    derivatives) are kept whole. Evaluated level by level (:func:`_run_level`), the values of
    level 1 are computed once per key and stored, and the context's level reads them, so XLA
    cannot fuse a draw's work (the inverse-erf of every normal, the latent chain) into each
    (row, draw) score it feeds.
    """
    flat, tree = jax.tree.flatten(example)
    arg_levels = [lv for arg, lv in zip(example, levels, strict=True) for _ in jax.tree.leaves(arg)]
    closed, shape = jax.make_jaxpr(lambda *leaves: fn(*jax.tree.unflatten(tree, leaves)), return_shape=True)(*flat)
    ids = iter(range(1 << 62))
    eqns, consts, level = [], {}, {}

    def walk(jaxpr, values, refs):
        env = {}
        for v, c in zip(jaxpr.constvars, values, strict=True):
            i = next(ids)
            consts[i], level[i], env[v] = c, 0, ("id", i)
        for v, r in zip(jaxpr.invars, refs, strict=True):
            env[v] = r

        def ref(v):
            return ("lit", v.val) if isinstance(v, Literal) else env[v]

        for eqn in jaxpr.eqns:
            ins = [ref(v) for v in eqn.invars]
            inner = eqn.params.get("jaxpr")
            if eqn.primitive.name in _INLINED and isinstance(inner, ClosedJaxpr):
                outs = walk(inner.jaxpr, inner.consts, ins)
            else:
                lv = max((level[r[1]] for r in ins if r[0] == "id"), default=0)
                outs = [("id", next(ids)) for _ in eqn.outvars]
                for r in outs:
                    level[r[1]] = lv
                dtypes = [getattr(v.aval, "dtype", None) for v in eqn.invars]
                eqns.append((eqn.primitive, eqn.params, ins, [r[1] for r in outs], lv, dtypes))
            for v, r in zip(eqn.outvars, outs, strict=True):
                env[v] = r
        return [ref(v) for v in jaxpr.outvars]

    inputs = [next(ids) for _ in flat]
    for i, lv in zip(inputs, arg_levels, strict=True):
        level[i] = lv
    outputs = walk(closed.jaxpr, closed.consts, [("id", i) for i in inputs])
    top = max(arg_levels)
    exports = [set() for _ in range(top + 1)]
    for _, _, ins, _, lv, _ in eqns:
        for r in ins:
            if r[0] == "id" and level[r[1]] < lv:
                exports[level[r[1]]].add(r[1])
    for r in outputs:
        if r[0] == "id" and level[r[1]] < top:
            exports[level[r[1]]].add(r[1])
    return _Staged(eqns, consts, inputs, outputs, tuple(sorted(e) for e in exports), jax.tree.structure(shape))


def _run_level(program: _Staged, lv: int, known: dict, single: bool = False) -> dict:
    """The values of level ``lv`` of ``program``, from ``known`` (id -> value of every lower-level value it reads).

    With ``single``, float64 values are computed in float32 (:func:`_bind_single`).
    """
    env = dict(known)
    for primitive, params, ins, outs, eqn_level, dtypes in program.eqns:
        if eqn_level != lv:
            continue
        args = [r[1] if r[0] == "lit" else env[r[1]] for r in ins]
        ans = _bind_single(primitive, params, args, dtypes) if single else _bind(primitive, params, args)
        for i, value in zip(outs, ans if primitive.multiple_results else [ans], strict=True):
            env[i] = value
    return env


def _bind(primitive, params, args):
    bind = primitive.get_bind_params(params)
    subfuns, bind = bind if isinstance(bind, tuple) else ((), bind)
    return primitive.bind(*subfuns, *args, **bind)


def _single(value, dtype=None):
    """``value`` in float32 if it is (or, a literal, was traced as) float64; other dtypes unchanged."""
    dtype = getattr(value, "dtype", dtype)
    if dtype is None or dtype != np.float64:
        return value
    if isinstance(value, jax.Array):
        return value.astype(jnp.float32)
    return np.asarray(value, np.float32)


def _bind_single(primitive, params, args, dtypes):
    """One equation computed in float32 where it ran in float64: its float64 inputs, literals and
    dtype parameters demoted. An equation that holds a sub-program (a loop, a conditional, a
    custom derivative) or does not accept the demoted types runs in its own dtypes, its float64
    results demoted after."""
    nested = any(
        (callable(v) and not isinstance(v, type)) or hasattr(v, "eqns") or hasattr(v, "jaxpr") for v in params.values()
    )
    if not nested:
        f32 = np.dtype(np.float32)
        demoted = {k: f32 if isinstance(v, np.dtype) and v == np.float64 else v for k, v in params.items()}
        try:
            return _bind(primitive, demoted, [_single(a, dt) for a, dt in zip(args, dtypes, strict=True)])
        except (TypeError, ValueError):
            pass
    restored = [
        a.astype(dt) if dt is not None and getattr(a, "dtype", dt) != dt else a
        for a, dt in zip(args, dtypes, strict=True)
    ]
    ans = _bind(primitive, params, restored)
    return [_single(a) for a in ans] if primitive.multiple_results else _single(ans)


def _weakrefable(obj) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


class Replay(NamedTuple):
    """What :func:`replay` returns.

    Attributes:
        estimate: Estimate of the agent's mean reward per round over its first ``estimate.n``
            online rounds (n = ess = the number of accepted rows), with a normal 95% interval.
        accepted: (n_logged,) bool, the rows the agent chose as the log did.
        state: the agent's state after learning from the accepted rows.
    """

    estimate: Estimate
    accepted: np.ndarray
    state: object


def replay(agent, key, X, actions, rewards, propensities, state=None) -> Replay:
    """Rejection-sampling replay of a LEARNING agent on logs of a uniform logging policy (Li et al. 2011).

    Rows are read in order; at each the agent acts on its current state, and when it picks the
    logged action the row is accepted: its reward counts and the agent learns from it
    (``agent.update``); otherwise the row is discarded and the agent does not see it. With
    uniform logging the accepted rows are distributed as T rounds of the agent interacting online
    (T = accepted, about n / K), so the mean accepted reward estimates the agent's expected mean
    reward over its first T rounds, learning included ("Unbiased offline evaluation of
    contextual-bandit-based news article recommendation algorithms", WSDM 2011).

    The interval is value +- 1.96 sd(r) / sqrt(T) over the accepted rewards (rewards of a
    learning agent are not identically distributed; studies/ope/replay_coverage.py measures its
    coverage).

    Args:
        agent: a dts_ppl Agent.   key: PRNG key.
        X: (n, d) contexts ((n, K, d) for a shared agent), in logging order.
        actions: (n,) logged actions.   rewards: (n,) logged rewards.
        propensities: (n,) logging probabilities of the logged actions: must all be 1 / K.
        state: the agent's starting state (default ``agent.init()``).

    Returns:
        Replay(estimate, accepted (n,), state).
    """
    K = agent.spec.num_actions
    X = jnp.asarray(X)
    n = X.shape[0] if X.ndim >= 2 else 0
    a, r, p, _ = _check_logs(actions, rewards, propensities, np.full((max(n, 2), K), 1.0 / K)[:n])
    if not np.allclose(p, 1.0 / K, rtol=1e-6, atol=0):
        raise ValueError(
            f"propensities: replay needs logs of a uniform logging policy (every propensity 1/K = {1 / K:.4g}), "
            f"got values in [{p.min():.4g}, {p.max():.4g}]"
        )
    state = agent.init() if state is None else state
    _policy.propensities(agent, key, state, X[0], 2)  # eager checks of the key, state and a context

    def step(carry, row):
        state, k = carry
        k, sub = jax.random.split(k)
        x, a_log, y = row
        chosen, _ = agent.act(sub, state, x)
        accept = chosen == a_log
        learned = agent.update(state, x, a_log, y)
        state = jax.tree.map(lambda new, old: jnp.where(accept, new, old), learned, state)
        return (state, k), accept

    rows = (X, jnp.asarray(a), jnp.asarray(r, dtype=X.dtype if jnp.issubdtype(X.dtype, jnp.floating) else float))
    (state, _), accepted = jax.jit(lambda s, k, rows: jax.lax.scan(step, (s, k), rows))(state, key, rows)
    accepted = np.asarray(accepted, dtype=bool)
    T = int(accepted.sum())
    if T < 2:
        raise ValueError(f"rewards: only {T} of {n} rows were accepted; replay needs more logged rows (about 2 K)")
    est = _estimate(r[accepted])
    return Replay(est._replace(ess=float(T)), accepted, state)
