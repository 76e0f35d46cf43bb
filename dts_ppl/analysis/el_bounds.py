"""Empirical-likelihood interval solvers shared by :mod:`dts_ppl.analysis.ope` and :mod:`.ope_large`.

The EL program of :func:`dts_ppl.analysis.ope.el_interval` with bounds on the unseen mass's mean
reward: a range (:func:`el_dual_interval`, the general dual) or a spread (:func:`el_sd_interval`).
Pure NumPy / SciPy; docs/ope.md derives them.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["CHI2_95", "Z95", "check_ranges", "el_dual_interval", "el_moment_interval", "el_sd_interval"]

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
CHI2_95 = Z95**2  # the chi-square(1) 95% quantile


def check_ranges(w, r, weight_range, reward_range):
    """The EL program's weight and reward ranges, checked against the data: (w_min, w_max, r_lo, r_hi)."""
    w_min, w_max = (0.0, np.inf) if weight_range is None else (float(weight_range[0]), float(weight_range[1]))
    if not (0 <= w_min < 1 < w_max):
        raise ValueError(f"weight_range: expected (w_min, w_max) with 0 <= w_min < 1 < w_max, got {weight_range!r}")
    if w.min() < w_min * (1 - 1e-12) or w.max() > w_max * (1 + 1e-12):
        raise ValueError(
            f"weight_range: the importance weights span [{w.min():.4g}, {w.max():.4g}], outside {weight_range!r}"
        )
    r_lo, r_hi = (float(r.min()), float(r.max())) if reward_range is None else map(float, reward_range)
    if not (np.isfinite(r_lo) and np.isfinite(r_hi) and r_lo <= r_hi):
        raise ValueError(f"reward_range: expected finite (r_min, r_max) with r_min <= r_max, got {reward_range!r}")
    if r.min() < r_lo or r.max() > r_hi:
        raise ValueError(f"reward_range: the rewards span [{r.min():.4g}, {r.max():.4g}], outside {reward_range!r}")
    return w_min, w_max, r_lo, r_hi


def _check_mean_range(name: str, mean_range) -> tuple[float, float]:
    """A checked (lo, hi) bound on mean rewards (or mean residuals): finite floats with lo <= hi."""
    try:
        lo, hi = (float(v) for v in mean_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (lo, hi) of finite floats, got {mean_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name}: expected finite (lo, hi) with lo <= hi, got {mean_range!r}")
    return lo, hi


def _newton_max(fgh, x, free, iters: int = 200, cap: float = np.inf):
    """(max, argmax) of a smooth concave f over the ``free`` coordinates of x (2,) (the others fixed),
    from a point where f is finite: damped Newton steps, halved until f rises and stays finite.
    Stops with inf once f exceeds ``cap`` (a dual above every primal value: the primal is infeasible)."""
    f, g, H = fgh(x)
    idx = np.flatnonzero(free)
    for _ in range(iters):
        gf, Hf = g[idx], H[np.ix_(idx, idx)]
        try:
            step = -np.linalg.solve(Hf - 1e-14 * np.eye(idx.size), gf)
        except np.linalg.LinAlgError:
            step = gf
        if gf @ step <= 0:  # not an ascent direction (H not negative definite to rounding): a gradient step
            step = gf
        t, moved = 1.0, False
        while t > 1e-20:
            trial = x.copy()
            trial[idx] += t * step
            ft, gt, Ht = fgh(trial)
            if np.isfinite(ft) and ft >= f + 1e-4 * t * float(gf @ step):
                moved = True
                break
            t *= 0.5
        if not moved:
            break
        done = abs(ft - f) <= 1e-15 * max(1.0, abs(f))
        x, f, g, H = trial, ft, gt, Ht
        if f > cap:
            return np.inf, x
        if done or np.max(np.abs(g[idx])) < 1e-13:
            break
    return f, x


def _dual_max(fgh, start, signed, cap: float = np.inf):
    """max of a concave f (2,) -> R over the x with x_k >= 0 where not ``signed``[k] (a bool, or
    one per coordinate): the best of its interior maximum and its maxima on the faces x_k = 0
    (one of them is the maximum). (inf, x) when f exceeds ``cap``."""
    signed = np.broadcast_to(np.asarray(signed, dtype=bool), (2,))
    best = (-np.inf, np.zeros(2))
    for free in (np.array([True, True]), np.array([False, True]), np.array([True, False]), np.array([False, False])):
        if np.any(~free & signed):  # only sign-constrained coordinates are fixed at 0
            continue
        x0 = start(free)
        if x0 is None:
            continue
        f, x = _newton_max(fgh, x0, free, cap=cap) if free.any() else (fgh(x0)[0], x0)
        if f == np.inf:
            return f, x
        if np.all((x >= 0) | signed) and np.isfinite(f) and f > best[0]:
            best = (f, x)
    return best


def el_dual_interval(w, r, w_min: float, w_max: float, atom_range, atoms: bool = True, chi2: float = CHI2_95):
    """The empirical-likelihood interval for V = E[w r] with the unseen atoms' rewards in ``atom_range``.

    The program of :func:`dts_ppl.analysis.ope.el_interval` (mass q_i on the logged points, the rest on two atoms
    at w = w_min and w = w_max; E_Q[1] = E_Q[w] = 1; log-likelihood within chi2 / 2 of its
    maximum), with the atoms' reward in [rho_lo, rho_hi] = ``atom_range`` instead of the reward
    range. At the lower end V = rho_lo + a^T q with a_i = w_i (r_i - rho_lo), which is negative
    where r_i < rho_lo; the dual n exp(mean_i log D_i + c / n) - lam - mu, D_i = a_i + lam u_i + mu v_i,
    is then maximised over the (lam, mu) >= 0 where every D_i > 0 (the inner minimum over q is
    -inf elsewhere) by Newton's method on the interior and on each face. ``atoms=False`` drops the
    atoms (Owen's profile EL with E_Q[w] = 1 on the logged points only: the constraints become
    equalities and lam, mu free in sign). Every dual value is at most the primal optimum and the
    likelihood's level is that of a feasible q, so an inexact solve widens the interval.

    Args:
        w: (n,) importance weights in [w_min, w_max].   r: (n,) rewards.
        w_min, w_max: the weight bounds, 0 <= w_min < 1 < w_max (w_max may be inf).
        atom_range: (rho_lo, rho_hi), the range of the atoms' rewards.
        atoms: False for the profile EL without atoms.   chi2: the calibration.

    Returns:
        (lower, upper) floats (not clipped).
    """
    w, r = np.asarray(w, dtype=float), np.asarray(r, dtype=float)
    rho_lo, rho_hi = atom_range
    n = w.shape[0]
    u = (w - w_min) / (1 - w_min)
    v = np.ones(n) if np.isinf(w_max) else (w_max - w) / (w_max - 1)
    B = np.stack([u, v], axis=1)

    def loglik_dual(x):  # the likelihood's dual min_x -mean log(B x) + sum x, negated: maximised (concave)
        den = B @ x
        if den.min() <= 0:
            return -np.inf, None, None
        Q = B / den[:, None]
        return np.mean(np.log(den)) - x.sum(), Q.mean(axis=0) - 1, -(Q.T @ Q) / n

    # its maximiser gives q_i = 1 / (n (B x)_i), scaled by kappa into the feasible set (ope.el_interval)
    _, x = _dual_max(loglik_dual, _feasible_start(B, np.zeros(n)), not atoms)
    den = B @ x
    kappa = max(float(np.mean(u / den)), float(np.mean(v / den))) if atoms else 1.0
    if not atoms and not np.allclose([np.mean(u / den), np.mean(v / den)], 1.0, atol=1e-8):
        raise ValueError("w: the profile EL without atoms needs min(w) < 1 < max(w) (E_Q[w] = 1 is infeasible)")
    s = -np.mean(np.log(den)) - np.log(kappa) - chi2 / (2 * n)

    def end(a):
        scale = max(float(np.std(a)) * np.sqrt(n / chi2), float(np.abs(np.mean(a))), 1e-300)
        b = a / scale

        def g(x):
            D = b + B @ x
            if D.min() <= 0:
                return -np.inf, None, None
            Q = B / D[:, None]
            gh = Q.mean(axis=0)
            e = np.exp(np.mean(np.log(D)) + s)
            return e - x.sum(), e * gh - 1, e * (np.outer(gh, gh) - (Q.T @ Q) / n)

        return scale * _dual_max(g, _feasible_start(B, b), not atoms)[0]

    return float(rho_lo + end(w * (r - rho_lo))), float(rho_hi - end(w * (rho_hi - r)))


def _feasible_start(B, b):
    """start(free): a point with b + B x > 0 whose free coordinates are equal and the others 0, or None."""

    def start(free):
        s = B[:, free].sum(axis=1)
        if np.any((s <= 0) & (b <= 0)):
            return None
        need = float(np.max(-b[s > 0] / s[s > 0])) if np.any(s > 0) else 0.0
        return np.where(free, max(1.0, 2.0 * need + 1.0), 0.0)

    return start


def el_sd_interval(
    w, r, w_max: float, mean_reward_sd: float, reward_range=None, chi2: float = CHI2_95, grid: int = 48
) -> tuple[float, float]:
    """The empirical-likelihood interval for V = E[w r] with the unseen atoms' reward tied to V by a spread bound.

    The program of :func:`dts_ppl.analysis.ope.el_interval` (atoms at w = 0 and w = w_max; E_Q[1] = E_Q[w] = 1;
    log-likelihood within chi2 / 2 of its maximum), plus what a bound sigma = ``mean_sd`` on the sd
    of the mean reward m(x, a) = E[r | x, a] under the target's distribution of (x, a) implies: the
    atoms stand for a part R of that distribution with mass delta = 1 - W (W = sum_i q_i w_i), and
    by Cauchy-Schwarz |E[m | R] - V| <= sigma sqrt((1 - delta) / delta). With A = sum_i q_i w_i r_i,
    V = A + delta rho, rho the atoms' reward, the lowest V a q allows is

        max(A + delta r_lo, (A - sigma sqrt(W (1 - W))) / W)

    (the reward range and the spread bound together), increasing in A; so the lower end is
    min_W of it at A = F(W) = min {A : q in the EL set, sum_i q_i w_i = W}, whose dual is
    n exp(mean_i log(a_i + lam w_i + mu) + c / n) - lam W - mu s(W) over lam free, mu >= 0
    (s(W) = 1 - (1 - W) / w_max bounds sum_i q_i so that the atoms' masses are non-negative). W is
    searched on a log grid on [1e-3, 1] refined by Brent's method; the upper end likewise. Atoms
    at w = 0 (not at the weight range's lower bound) make the set of Q larger: conservative.

    Args:
        w: (n,) importance weights in [0, w_max].   r: (n,) rewards (or DR residuals).
        w_max: the largest possible weight (> 1; may be inf).
        mean_reward_sd: sigma >= 0, a bound on the sd of E[r | x, a] under the target's (x, a).
        reward_range: (r_lo, r_hi) bounds on the atoms' reward (default the observed range).
        chi2: the calibration.   grid: points of the search over W.

    Returns:
        (lower, upper) floats, clipped to the reward range.
    """
    w, r = np.asarray(w, dtype=float), np.asarray(r, dtype=float)
    w_min, w_max, r_lo, r_hi = check_ranges(w, r, (0.0, w_max), reward_range)
    try:
        sigma = float(mean_reward_sd)
    except (TypeError, ValueError):
        sigma = np.nan
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"mean_reward_sd: expected a finite sd >= 0, got {mean_reward_sd!r}")
    n = w.shape[0]
    v = np.ones(n) if np.isinf(w_max) else (w_max - w) / (w_max - 1)
    B = np.stack([w, v], axis=1)

    def loglik_dual(x):
        den = B @ x
        if den.min() <= 0:
            return -np.inf, None, None
        Q = B / den[:, None]
        return np.mean(np.log(den)) - x.sum(), Q.mean(axis=0) - 1, -(Q.T @ Q) / n

    _, x = _dual_max(loglik_dual, _feasible_start(B, np.zeros(n)), False)
    den = B @ x
    kappa = max(float(np.mean(w / den)), float(np.mean(v / den)))
    s = -np.mean(np.log(den)) - np.log(kappa) - chi2 / (2 * n)
    C = np.stack([w, np.ones(n)], axis=1)

    def least(a, W):  # F(W) = min a^T q over the EL set with w^T q = W (a dual value: at most the minimum)
        s_max = 1.0 if np.isinf(w_max) else 1.0 - (1.0 - W) / w_max
        scale = max(float(np.std(a)) * np.sqrt(n / chi2), float(np.abs(np.mean(a))), 1e-300)
        b = a / scale

        def g(y):  # y = (lam, mu)
            D = b + C @ y
            if D.min() <= 0:
                return -np.inf, None, None
            Q = C / D[:, None]
            gh = Q.mean(axis=0)
            e = np.exp(np.mean(np.log(D)) + s)
            target = np.array([W, s_max])
            return e - y @ target, e * gh - target, e * (np.outer(gh, gh) - (Q.T @ Q) / n)

        cap = 2.0 * float(np.max(np.abs(b))) + 10.0  # above every a^T q / scale: the set is empty at this W
        return scale * _dual_max(g, _feasible_start(C, b), np.array([True, False]), cap)[0]

    def lowest(W):
        A = least(w * r, W)
        return max(A + (1 - W) * r_lo, (A - sigma * np.sqrt(W * (1 - W))) / W)

    def highest(W):
        A = -least(-w * r, W)
        return min(A + (1 - W) * r_hi, (A + sigma * np.sqrt(W * (1 - W))) / W)

    Ws = np.geomspace(1e-3, 1.0, grid)
    ends = []
    for fn, sign in ((lowest, 1.0), (highest, -1.0)):
        vals = np.array([sign * fn(W) for W in Ws])  # inf where no q of the EL set has sum q_i w_i = W
        k = int(np.argmin(vals))
        res = optimize.minimize_scalar(
            lambda W, fn=fn, sign=sign: min(sign * fn(W), 1e300),
            bounds=(Ws[max(k - 1, 0)], Ws[min(k + 1, grid - 1)]),
            method="bounded",
            options=dict(xatol=1e-7),
        )
        ends.append(sign * min(vals[k], res.fun))
    lower = min(max(ends[0], r_lo), r_hi)
    return float(lower), float(max(min(ends[1], r_hi), lower))


# ------------------------------------------------------------- the weights' second moment


def _in_moment_cone(m0: float, m1: float, m2: float, w_min: float, w_max: float) -> bool:
    """Whether (m0, m1, m2) are the mass, first and second moments of a measure on [w_min, w_max]:
    the Hankel matrix [[m0, m1], [m1, m2]] positive semi-definite and (w_min + w_max) m1 - w_min w_max m0 - m2 >= 0
    (the truncated Hausdorff moment conditions of degree 2)."""
    tol = 1e-12 * max(1.0, abs(m2))
    return (
        m0 >= -tol
        and m2 >= -tol
        and m0 * m2 - m1 * m1 >= -tol * max(1.0, abs(m0))
        and (w_min + w_max) * m1 - w_min * w_max * m0 - m2 >= -tol
    )


def _quadratic_min(x, w_min: float, w_max: float, scale: float) -> float:
    """The minimum over [w_min, w_max] of p(w) = x_0 + x_1 w + x_2 w^2 / scale."""
    ends = [x[0] + x[1] * t + x[2] * t * t / scale for t in (w_min, w_max)]
    if x[2] > 0:
        t = -x[1] * scale / (2 * x[2])
        if w_min < t < w_max:
            ends.append(x[0] + x[1] * t + x[2] * t * t / scale)
    return float(min(ends))


def el_moment_interval(
    w, r, w_min: float, w_max: float, second_moment: float, reward_range=None, chi2: float = CHI2_95
) -> tuple[float, float]:
    """The empirical-likelihood interval for V = E[w r] with the weights' known second moment bounding the unseen mass.

    The program of :func:`dts_ppl.analysis.ope.el_interval` (mass q_i on the logged points, the rest
    on atoms the sample did not show, whose rewards may be anything in [r_lo, r_hi]; E_Q[1] =
    E_Q[w] = 1; log-likelihood within chi2 / 2 of its maximum) with E_Q[w^2] = m2 added: the
    logging policy's E[w^2] = E_x sum_a pi(a | x)^2 / mu(a | x), known from the two policies (the
    inverse of :func:`dts_ppl.analysis.ope_large.policy_ess`). The atoms may sit at any weights in
    [w_min, w_max]: they exist iff (m0, delta, T) = (1 - sum q_i, 1 - sum q_i w_i, m2 - sum q_i w_i^2)
    are the moments of a measure there, i.e. (m0, delta, T) lies in the moment cone M (Hankel
    matrix PSD and (w_min + w_max) delta - w_min w_max m0 - T >= 0). The unseen target mass delta then
    costs likelihood: delta^2 <= m0 T, so the atoms' mass m0 >= delta^2 / T. At the lower end the
    atoms' reward is r_lo and V = r_lo + a^T q, a_i = w_i (r_i - r_lo) >= 0; the Lagrange dual of
    min a^T q over that set is, with the dual cone of M (the quadratics p(w) = x_0 + x_1 w + x_2 w^2
    non-negative on [w_min, w_max]),

        max_{p >= 0 on [w_min, w_max]}  n exp(mean_i log(a_i + p(w_i)) + c / n) - (x_0 + x_1 + x_2 m2),

    the weight-range program's dual with a quadratic in place of the line. Solved by Newton's method
    with a log barrier on p at a grid of weights; the solution is then shifted up by p's exact
    minimum on [w_min, w_max] where that is negative, so it is dual feasible: every value is at most
    the primal optimum. The level c is the log-likelihood of a feasible q (the likelihood dual's
    solution scaled into the set), so an inexact solve widens the interval, never narrows it.

    Args:
        w: (n,) importance weights in [w_min, w_max].   r: (n,) rewards (or DR residuals).
        w_min, w_max: the weight bounds, 0 <= w_min < 1 < w_max < inf.
        second_moment: m2 = E[w^2] under the logging policy, with 1 <= m2 <= w_min + w_max - w_min w_max.
        reward_range: (r_lo, r_hi) bounds on every reward (default the observed range).
        chi2: the calibration.

    Returns:
        (lower, upper) floats, clipped to the reward range.
    """
    w, r = np.asarray(w, dtype=float), np.asarray(r, dtype=float)
    w_min, w_max, r_lo, r_hi = check_ranges(w, r, (w_min, w_max), reward_range)
    if not np.isfinite(w_max):
        raise ValueError(f"w_max: expected a finite weight bound, got {w_max!r}")
    try:
        m2 = float(second_moment)
    except (TypeError, ValueError):
        m2 = np.nan
    if not (np.isfinite(m2) and 1.0 <= m2 <= w_min + w_max - w_min * w_max):
        raise ValueError(
            f"second_moment: expected E[w^2] in [1, {w_min + w_max - w_min * w_max:.6g}] (weights in "
            f"[{w_min:.6g}, {w_max:.6g}] with mean 1), got {second_moment!r}"
        )
    n = w.shape[0]
    # the basis (1, w, w^2 / m2): every column has mean 1 under the logging policy
    Phi = np.stack([np.ones(n), w, w * w / m2], axis=1)
    grid = np.unique(np.concatenate([np.linspace(w_min, w_max, 64), np.geomspace(max(w_min, 1e-6), w_max, 192)]))
    G = np.stack([np.ones_like(grid), grid, grid * grid / m2], axis=1)

    def solve(fgh, x):
        """Newton with a log barrier on p at the grid, the barrier's weight lowered ten-fold per round."""
        for tau in 10.0 ** -np.arange(2, 12, dtype=float):

            def barrier(y, tau=tau):
                f, g, H = fgh(y)
                pg = G @ y
                if not np.isfinite(f) or pg.min() <= 0:
                    return -np.inf, None, None
                Q = G / pg[:, None]
                return f + tau * np.mean(np.log(pg)), g + tau * Q.mean(axis=0), H - tau * (Q.T @ Q) / grid.size

            x = _newton_max(barrier, x, np.ones(3, dtype=bool), iters=100)[1]
        low = _quadratic_min(x, w_min, w_max, m2)
        return x if low >= 0 else x + np.array([-low * (1 + 1e-12) + 1e-300, 0.0, 0.0])

    def loglik_dual(x):  # max sum log q: dual min_x x . mu - sum log (Phi x) - n (mu = 1), negated and / n
        den = Phi @ x
        if den.min() <= 0:
            return -np.inf, None, None
        Q = Phi / den[:, None]
        return np.mean(np.log(den)) - x.sum(), Q.mean(axis=0) - 1, -(Q.T @ Q) / n

    x = solve(loglik_dual, np.array([1.0, 0.0, 0.0]))
    q = 1.0 / (n * (Phi @ x))  # the likelihood's maximiser, scaled by kappa into the feasible set
    s = Phi.T @ q

    def feasible(kappa):
        return _in_moment_cone(1 - kappa * s[0], 1 - kappa * s[1], m2 * (1 - kappa * s[2]), w_min, w_max)

    kappa = 1.0
    if not feasible(1.0):
        lo_k, hi_k = 0.0, 1.0  # mu is in the cone (kappa = 0), so the feasible kappa form an interval
        for _ in range(60):
            mid = 0.5 * (lo_k + hi_k)
            lo_k, hi_k = (mid, hi_k) if feasible(mid) else (lo_k, mid)
        kappa = lo_k
    level = -np.mean(np.log(Phi @ x)) + np.log(kappa) - chi2 / (2 * n)  # c / n + log n, c = sum log(kappa q)

    def end(a):
        scale = max(float(np.std(a)) * np.sqrt(n / chi2), float(np.abs(np.mean(a))), 1e-300)
        b = a / scale

        def g(x):
            D = b + Phi @ x
            if D.min() <= 0:
                return -np.inf, None, None
            Q = Phi / D[:, None]
            gh = Q.mean(axis=0)
            e = np.exp(np.mean(np.log(D)) + level)
            return e - x.sum(), e * gh - 1, e * (np.outer(gh, gh) - (Q.T @ Q) / n)

        x = solve(g, np.array([1.0, 0.0, 0.0]))
        return scale * g(x)[0]

    lower = min(max(r_lo + end(w * (r - r_lo)), r_lo), r_hi)
    return float(lower), float(max(min(r_hi - end(w * (r_hi - r)), r_hi), lower))
