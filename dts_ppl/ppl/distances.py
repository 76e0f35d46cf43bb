"""Sample-based distances between two sets of draws (docs/math.md section 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dts_ppl.core import checks as _checks


def _mean_pairwise_distance(x, y):
    """E|x_i - y_j| over all pairs; one row of x at a time keeps memory at O(m p)."""

    def row(xi):
        return jnp.mean(jnp.sqrt(jnp.sum((xi - y) ** 2, axis=-1)))

    return jnp.mean(jax.lax.map(row, x, batch_size=64))


@jax.jit
def _energy_distance(x, y):
    d2 = 2.0 * _mean_pairwise_distance(x, y) - _mean_pairwise_distance(x, x) - _mean_pairwise_distance(y, y)
    return jnp.sqrt(jnp.maximum(d2, 0.0))


def energy_distance(x, y) -> float:
    """Energy distance between two empirical distributions (Szekely and Rizzo 2013).

        D(x, y) = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)

    with X, X' drawn from the draws ``x`` and Y, Y' from ``y`` (the V-statistic: every pair,
    the zero distance of a draw to itself included), so it is zero only for equal samples and,
    in one dimension, equals ``scipy.stats.energy_distance``. It is a metric on distributions
    and zero exactly when they are equal; on finite samples it is positive, with a floor set
    by the sample sizes and their autocorrelation, so compare it with the same distance
    between two samples of the reference (see :func:`dts_ppl.ppl.validate`).

    Args:
        x: (n,) or (n, p) draws.
        y: (m,) or (m, p) draws of the same dimension p.
    Returns:
        The distance (a float).

    Example:
        >>> import numpy as np
        >>> round(energy_distance(np.zeros(3), np.ones(2)), 6)  # sqrt(2 * 1 - 0 - 0)
        1.414214
    """
    x = _checks.as_array("x", x)
    y = _checks.as_array("y", y)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected draws of shape (n, p) and (m, p), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError("x, y: expected at least one draw in each")
    _checks.check_finite("x", x)
    _checks.check_finite("y", y)
    dtype = jnp.result_type(x.dtype, y.dtype)
    return float(_energy_distance(x.astype(dtype), y.astype(dtype)))
