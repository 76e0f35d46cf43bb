"""Small numerical helpers shared by every posterior computation.

All solves against symmetric positive-definite matrices go through `psd_cholesky`, which
symmetrises and adds a jitter of a few machine epsilons (relative to the diagonal) so that
float32 round-off cannot make a PD matrix fail its Cholesky factorisation, while float64
results stay exact to round-off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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


#: Symmetric eigendecompositions of matrices up to this size go through :func:`jacobi_eigh`
#: (a few fused elementwise passes, vectorised over a batch) instead of one LAPACK call per matrix.
JACOBI_MAX_SIZE = 3
#: Cyclic Jacobi sweeps for 3 x 3 matrices (2 x 2: one rotation is exact); quadratic convergence
#: reaches float64 round-off in fewer.
JACOBI_SWEEPS = 6


def jacobi_eigh(a):
    """Eigenvalues (..., n) and orthonormal eigenvectors (..., n, n) of small symmetric matrices.

    Cyclic Jacobi rotations (Golub & Van Loan, Algorithm 8.5.2) applied to the whole batch at
    once: one rotation for n = 2 (exact), :data:`JACOBI_SWEEPS` sweeps otherwise. Eigenvalues come
    unsorted; ``a = V diag(lam) V^T`` to round-off. For n > :data:`JACOBI_MAX_SIZE` use
    :func:`eigh`.

    Args:
        a: (..., n, n) symmetric.
    Returns:
        (lam (..., n), V (..., n, n)).
    """
    n = a.shape[-1]
    eye = jnp.eye(n, dtype=a.dtype)
    V = jnp.broadcast_to(eye, a.shape)
    for _ in range(1 if n == 2 else JACOBI_SWEEPS):
        for p in range(n - 1):
            for q in range(p + 1, n):
                app, aqq, apq = a[..., p, p], a[..., q, q], a[..., p, q]
                rotate = apq != 0
                tau = (aqq - app) / (2.0 * jnp.where(rotate, apq, 1.0))
                t = jnp.where(tau >= 0, 1.0, -1.0) / (jnp.abs(tau) + jnp.sqrt(1.0 + tau * tau))
                t = jnp.where(rotate, t, 0.0)  # tan of the angle that zeroes a[p, q]
                c = 1.0 / jnp.sqrt(1.0 + t * t)
                s = t * c
                diag = np.zeros((n, n))
                diag[p, p] = diag[q, q] = 1.0
                skew = np.zeros((n, n))
                skew[p, q], skew[q, p] = 1.0, -1.0
                J = eye + (c - 1.0)[..., None, None] * diag.astype(a.dtype) + s[..., None, None] * skew.astype(a.dtype)
                a = jnp.swapaxes(J, -1, -2) @ a @ J
                V = V @ J
    return jnp.diagonal(a, axis1=-2, axis2=-1), V


def eigh(a):
    """Symmetric eigendecomposition (lam (..., n), V (..., n, n)): :func:`jacobi_eigh` for n <= 3,
    ``jnp.linalg.eigh`` (LAPACK / cuSOLVER) otherwise. Eigenvalue order is unspecified."""
    if a.shape[-1] <= JACOBI_MAX_SIZE:
        return jacobi_eigh(a)
    return jnp.linalg.eigh(a)


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
