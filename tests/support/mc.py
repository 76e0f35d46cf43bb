"""Monte-Carlo tolerances derived from the standard error (not guessed).

With m independent checks each at z standard errors, the chance of any false alarm is below
m * 2 * (1 - Phi(z)); Z = 5 keeps it under 1e-6 per check even for a few hundred coordinates.
"""

import numpy as np

Z = 5.0


def assert_mean_within_mc(draws, mean, cov_diag, what, ess=None):
    """Sample mean of draws (N, ...) vs exact mean within Z standard errors, per coordinate."""
    draws = np.asarray(draws)
    n = draws.shape[0] if ess is None else np.asarray(ess)
    se = np.sqrt(np.asarray(cov_diag) / n)
    z = np.abs(draws.mean(0) - np.asarray(mean)) / se
    assert z.max() < Z, f"{what}: sample mean off by {z.max():.1f} standard errors"


def assert_cov_within_mc(x, y, cov_xy, var_x, var_y, what):
    """Sample Cov(x, y) of (N, p), (N, q) draws vs exact (p, q) within Z standard errors.

    For jointly Gaussian x, y: Var(sample cov_ij) = (var_x_i var_y_j + cov_ij^2) / N.
    """
    x, y = np.asarray(x), np.asarray(y)
    n = x.shape[0]
    xc, yc = x - x.mean(0), y - y.mean(0)
    sample = xc.T @ yc / (n - 1)
    se = np.sqrt((np.outer(var_x, var_y) + np.asarray(cov_xy) ** 2) / n)
    z = np.abs(sample - cov_xy) / se
    assert z.max() < Z, f"{what}: sample covariance off by {z.max():.1f} standard errors"
