"""Small numerical helpers shared by every posterior computation.

All solves against symmetric positive-definite matrices go through `psd_cholesky`, which
symmetrises and adds a jitter of a few machine epsilons (relative to the diagonal) so that
float32 round-off cannot make a PD matrix fail its Cholesky factorisation, while float64
results stay exact to round-off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks


def symmetrise(a):
    """(A + A^T) / 2 over the last two axes."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def psd_cholesky(a):
    """Lower Cholesky factor of a symmetric PD matrix (..., n, n), with a relative jitter."""
    a = symmetrise(a)
    n = a.shape[-1]
    scale = jnp.mean(jnp.abs(jnp.diagonal(a, axis1=-2, axis2=-1)), axis=-1)
    jitter = 10.0 * jnp.finfo(a.dtype).eps * scale
    return jnp.linalg.cholesky(a + jitter[..., None, None] * jnp.eye(n, dtype=a.dtype))


def chol_solve(chol, b):
    """Solve A x = b given the lower Cholesky factor of A; b is (..., n) or (..., n, m)."""
    if b.ndim == chol.ndim - 1:
        return cho_solve((chol, True), b[..., None])[..., 0]
    return cho_solve((chol, True), b)


def psd_solve(a, b):
    """Solve A x = b for symmetric PD A (..., n, n); b is (..., n) or (..., n, m)."""
    return chol_solve(psd_cholesky(a), b)


def psd_inv(a):
    """Inverse of a symmetric PD matrix, symmetrised."""
    eye = jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    return symmetrise(psd_solve(a, eye))


def sample_moments(samples: ArrayLike, name: str = "samples") -> tuple[jax.Array, jax.Array]:
    """Mean and unbiased (N - 1) covariance of samples, validated.

    Args:
        samples: (N, d) array, N >= 2, d >= 1, all finite (checked when concrete).
        name: the argument name used in error messages.
    Returns:
        mean (d,) and covariance (d, d) (exactly symmetric).
    """
    x = _checks.as_array(name, samples, ndim=2)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"{name}: expected at least 2 samples (rows of an (N, d) array), got N = {n}")
    if d < 1:
        raise ValueError(f"{name}: expected at least one coordinate (an (N, d) array with d >= 1), got d = 0")
    _checks.check_finite(name, x)
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / (n - 1)
    return mean, 0.5 * (cov + cov.T)
