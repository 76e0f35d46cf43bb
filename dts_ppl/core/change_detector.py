"""A change detector for abrupt drift: a CUSUM test on the standardized predictive residuals.

For Gaussian rewards and an affine prior, the reward of round t has the posterior predictive
N(m_t, v_t) given the rounds before it (v_t = x^T Cov(theta_A | data) x + sigma^2), and when the
model holds (theta drawn from the prior, fixed) the standardized residuals z_t = (y_t - m_t) /
sqrt(v_t) are independent N(0, 1) (the innovations of a linear Gaussian model). After an abrupt
change the action's parameter no longer matches what the agent learnt and the residuals widen.
The CUSUM statistic of the variance alternative N(0, rho) against N(0, 1),

    S_t = max(0, S_{t-1} + g(z_t)),    g(z) = (1 - 1 / rho) z^2 / 2 - log(rho) / 2,

(g the log-likelihood ratio of one residual) raises an alarm when S_t > h, and restarts at 0.
Its false alarms on a stationary stream form a renewal process with rate 1 / ARL_0(h), the
average run length under N(0, 1) residuals, computed here by the Markov-chain method (Brook and
Evans 1972: the statistic on a fine grid of [0, h], the run length from (I - Q)^-1 1).

The stated rules (docs/math.md section 11):

- the threshold h: the one whose false-alarm rate per round on a stationary stream is a given
  alpha (:func:`cusum_threshold`), e.g. alpha = 1 / (20 n) for one false alarm in 20 runs of n
  rounds;
- the alternative rho: the residual variance ratio of a well-learnt action whose own part is
  redrawn from N(0, S_1), rho = 1 + 2 E[x_i^2] tr(S_1) / sigma^2 (:func:`variance_ratio_rule`);
  a larger change (the shared part too) widens the residuals more and is found sooner.

What an alarm does (reset the agent to its prior) is the agent's business:
:func:`dts_ppl.agents.detector.detect_changes`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

__all__ = ["cusum_arl", "cusum_increment", "cusum_step", "cusum_threshold", "variance_ratio_rule"]

GRID = 500  # cells of the Markov-chain approximation of the statistic on [0, h]


def _check_ratio(ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not (1.0 < ratio < math.inf):
        raise ValueError(f"ratio: expected a finite variance ratio rho > 1 (the alternative N(0, rho)), got {ratio!r}")
    return float(ratio)


def variance_ratio_rule(noise_var: float, context_second_moment: float, action_cov_trace: float) -> float:
    """rho = 1 + 2 E[x_i^2] tr(S_1) / sigma^2: a well-learnt action's residual variance after its own part is redrawn.

    Args:
        noise_var: sigma^2 > 0.   context_second_moment: E[x_i^2] > 0.   action_cov_trace: tr(S_1) > 0.

    Returns:
        rho > 1.
    """
    for name, value in (
        ("noise_var", noise_var),
        ("context_second_moment", context_second_moment),
        ("action_cov_trace", action_cov_trace),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return 1.0 + 2.0 * context_second_moment * action_cov_trace / noise_var


def cusum_increment(z: jax.Array, ratio: float) -> jax.Array:
    """g(z) = (1 - 1 / rho) z^2 / 2 - log(rho) / 2: log N(z; 0, rho) - log N(z; 0, 1), same shape as z."""
    return 0.5 * (1.0 - 1.0 / ratio) * z**2 - 0.5 * math.log(ratio)


def cusum_step(stat: jax.Array, z: jax.Array, ratio: float, threshold: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One round of the CUSUM: (the new statistic, whether it raised an alarm); it restarts at 0 after one.

    Args:
        stat: () (or any shape) S_{t-1} >= 0.   z: standardized residual, same shape.
        ratio: rho > 1 (static).   threshold: h (an alarm when S_t > h).

    Returns:
        (S_t, alarm (bool)), both shaped like ``stat``.
    """
    s = jnp.maximum(0.0, stat + cusum_increment(z, ratio))
    alarm = s > threshold
    return jnp.where(alarm, jnp.zeros_like(s), s), alarm


def _chi2_1_cdf(w: np.ndarray) -> np.ndarray:
    return erf(np.sqrt(np.maximum(w, 0.0) / 2.0))


def cusum_arl(threshold: float, ratio: float, grid: int = GRID) -> float:
    """ARL_0: the mean number of rounds from S = 0 to an alarm on N(0, 1) residuals (Markov-chain method).

    Args:
        threshold: h >= 0.   ratio: rho > 1.   grid: cells on (0, h].

    Returns:
        ARL_0 in rounds (its inverse is the false-alarm rate per round of the restarted test).
    """
    ratio = _check_ratio(ratio)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not (0.0 <= threshold < math.inf):
        raise ValueError(f"threshold: expected a finite number >= 0, got {threshold!r}")
    a, b = 0.5 * (1.0 - 1.0 / ratio), 0.5 * math.log(ratio)
    w = threshold / grid
    # state 0: S = 0 exactly; state j >= 1: S in ((j - 1) w, j w], represented by its midpoint
    s = np.concatenate([[0.0], (np.arange(1, grid + 1) - 0.5) * w])
    edges = np.arange(0, grid + 1) * w  # S' <= 0 -> state 0; (edges[j-1], edges[j]] -> state j

    def cdf(t):  # P(g <= t)
        return _chi2_1_cdf((t + b) / a)

    upper = cdf(edges[None, :] - s[:, None])  # P(s + g <= edges[j])
    Q = np.concatenate([upper[:, :1], np.diff(upper, axis=1)], axis=1)
    arl = np.linalg.solve(np.eye(grid + 1) - Q, np.ones(grid + 1))
    return float(arl[0])


def cusum_threshold(false_alarm_rate: float, ratio: float, grid: int = GRID) -> float:
    """The threshold h whose false-alarm rate per round on N(0, 1) residuals is ``false_alarm_rate``.

    Args:
        false_alarm_rate: alpha in (0, 1): 1 / ARL_0(h).   ratio: rho > 1.   grid: as :func:`cusum_arl`.

    Returns:
        h (bisection on :func:`cusum_arl`, to 1e-6 relative in h).
    """
    ratio = _check_ratio(ratio)
    if isinstance(false_alarm_rate, bool) or not isinstance(false_alarm_rate, int | float):
        raise ValueError(f"false_alarm_rate: expected a number in (0, 1), got {false_alarm_rate!r}")
    if not (0.0 < false_alarm_rate < 1.0):
        raise ValueError(f"false_alarm_rate: expected a number in (0, 1), got {false_alarm_rate!r}")
    target = 1.0 / false_alarm_rate
    lo, hi = 0.0, 1.0
    while cusum_arl(hi, ratio, grid) < target:
        lo, hi = hi, 2.0 * hi
        if hi > 1e4:
            raise ValueError(f"false_alarm_rate: {false_alarm_rate!r} is too small to reach")
    while hi - lo > 1e-6 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cusum_arl(mid, ratio, grid) < target else (lo, mid)
    return 0.5 * (lo + hi)
