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
from jax.scipy.linalg import cho_solve, solve_triangular
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
    return cholesky(a + jitter[..., None, None] * jnp.eye(n, dtype=a.dtype))


#: The package's default of :data:`SMALL_MAX_SIZE`. Unrolling larger matrices runs faster and
#: compiles slower: at d = 5, up to 8 x 8 makes a vmapped dTS or HierTS round faster but adds
#: seconds to every compilation, which costs more than it saves in a ``simulate`` call of fewer
#: than a few hundred thousand run-rounds (studies/performance/small_size.py, docs/performance.md).
#: Set ``SMALL_MAX_SIZE = 8`` before building a long-lived agent with d between 4 and 8.
DEFAULT_SMALL_MAX_SIZE = 3
#: Cholesky factors, triangular inverses and products of matrices up to this size are unrolled
#: into a few fused elementwise passes over the batch (:func:`cholesky`, :func:`tril_inv`,
#: :func:`small_matmul`) instead of one LAPACK or matrix-product call per matrix (a small
#: product's call costs more than its arithmetic on CPU). 0 turns the unrolled paths off. Read
#: when an agent is built and when its programs are traced.
SMALL_MAX_SIZE = DEFAULT_SMALL_MAX_SIZE


def small_matmul(a, b):
    """a @ b for matrices (..., n, k) @ (..., k, m) (leading axes broadcast).

    With n, k and m at most :data:`SMALL_MAX_SIZE`, written as k elementwise products summed
    (fused with the operations around it instead of one matrix-product call per product);
    ``a @ b`` otherwise.
    """
    n, k = a.shape[-2:]
    if max(n, k, b.shape[-1]) > SMALL_MAX_SIZE:
        return a @ b
    return sum(a[..., :, j, None] * b[..., None, j, :] for j in range(k))


def small_matvec(a, v):
    """a @ v for (..., n, k) matrices and (..., k) vectors, elementwise when n and k are at most
    :data:`SMALL_MAX_SIZE` (as :func:`small_matmul`)."""
    n, k = a.shape[-2:]
    if max(n, k) > SMALL_MAX_SIZE:
        return jnp.einsum("...ij,...j->...i", a, v)
    return sum(a[..., :, j] * v[..., j, None] for j in range(k))


def _stack_rows(rows, n: int, zero):
    """An (..., n, n) array from a nested list of (...) entries (None above the diagonal)."""
    return jnp.stack([jnp.stack([zero if v is None else v for v in row], -1) for row in rows], -2)


def cholesky(a):
    """Lower Cholesky factor of symmetric PD matrices (..., n, n) (the lower triangle is read).

    Unrolled Cholesky-Banachiewicz for n <= :data:`SMALL_MAX_SIZE`, ``jnp.linalg.cholesky``
    otherwise. Like it, a matrix that is not numerically PD gives NaN in the whole lower triangle.
    """
    n = a.shape[-1]
    if n > SMALL_MAX_SIZE:
        return jnp.linalg.cholesky(a)
    low = [[None] * n for _ in range(n)]
    ok = True
    for j in range(n):
        pivot = a[..., j, j] - sum((low[j][k] ** 2 for k in range(j)), jnp.zeros((), a.dtype))
        ok = ok & (pivot > 0)
        low[j][j] = jnp.sqrt(jnp.where(pivot > 0, pivot, 1.0))
        for i in range(j + 1, n):
            dot = sum((low[i][k] * low[j][k] for k in range(j)), jnp.zeros((), a.dtype))
            low[i][j] = (a[..., i, j] - dot) / low[j][j]
    chol = _stack_rows(low, n, jnp.zeros_like(a[..., 0, 0]))
    return jnp.where(ok[..., None, None] | ~np.tri(n, dtype=bool), chol, jnp.nan)


def tril_inv(chol):
    """Inverse of lower-triangular matrices (..., n, n) (forward substitution, unrolled for
    n <= :data:`SMALL_MAX_SIZE`; ``solve_triangular`` otherwise)."""
    n = chol.shape[-1]
    if n > SMALL_MAX_SIZE:
        eye = jnp.broadcast_to(jnp.eye(n, dtype=chol.dtype), chol.shape)
        return solve_triangular(chol, eye, lower=True)
    inv = [[None] * n for _ in range(n)]
    for i in range(n):
        inv[i][i] = 1.0 / chol[..., i, i]
        for j in range(i):
            acc = sum((chol[..., i, k] * inv[k][j] for k in range(j, i)), jnp.zeros((), chol.dtype))
            inv[i][j] = -acc * inv[i][i]
    return _stack_rows(inv, n, jnp.zeros_like(chol[..., 0, 0]))


#: Symmetric eigendecompositions of matrices up to this size go through :func:`jacobi_eigh`
#: (a few fused elementwise passes, vectorised over a batch) instead of one LAPACK call per matrix.
JACOBI_MAX_SIZE = 3
#: Cyclic Jacobi sweeps for 3 x 3 matrices (2 x 2: one rotation is exact); quadratic convergence
#: reaches float64 round-off in fewer.
JACOBI_SWEEPS = 6


def entries(a) -> list:
    """The entries of matrices (..., n, m) as a nested list [[a[..., i, j] for j] for i] of (...) arrays."""
    n, m = a.shape[-2:]
    return [[a[..., i, j] for j in range(m)] for i in range(n)]


def from_entries(rows) -> jax.Array:
    """The (..., n, m) array of a nested list of (...) entries (:func:`entries`' inverse)."""
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def _jacobi_angle(app, aqq, apq):
    """(cos, sin) of the Jacobi rotation in the (p, q) plane that zeroes a[p, q] (identity where it is 0)."""
    rotate = apq != 0
    tau = (aqq - app) / (2.0 * jnp.where(rotate, apq, 1.0))
    t = jnp.where(tau >= 0, 1.0, -1.0) / (jnp.abs(tau) + jnp.sqrt(1.0 + tau * tau))
    t = jnp.where(rotate, t, 0.0)  # tan of the angle
    c = 1.0 / jnp.sqrt(1.0 + t * t)
    return c, t * c


def _rotate_entries(a, V, p: int, q: int):
    """One Jacobi rotation in the (p, q) plane on entry lists: (J^T a J, V J), zeroing a[p][q]."""
    n = len(a)
    c, s = _jacobi_angle(a[p][p], a[q][q], a[p][q])

    def right(m):  # m J: columns p and q mix
        out = [list(row) for row in m]
        for row_in, row_out in zip(m, out, strict=True):
            row_out[p] = row_in[p] * c - row_in[q] * s
            row_out[q] = row_in[p] * s + row_in[q] * c
        return out

    aj = right(a)
    new = [list(row) for row in aj]  # J^T (a J): rows p and q mix
    for j in range(n):
        new[p][j] = c * aj[p][j] - s * aj[q][j]
        new[q][j] = s * aj[p][j] + c * aj[q][j]
    return new, right(V)


def jacobi_entries(a, dtype) -> tuple[list, list]:
    """:func:`jacobi_eigh` on a nested list of (...) entries (:func:`entries`): (lam [n], V [n][n]).

    The same rotations, written entry by entry: no stacked intermediate matrices, so XLA fuses
    the whole decomposition with the arithmetic around it.
    """
    n = len(a)
    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
    V = [[one if i == j else zero for j in range(n)] for i in range(n)]
    a = [list(row) for row in a]
    for _ in range(1 if n == 2 else JACOBI_SWEEPS):
        for p in range(n - 1):
            for q in range(p + 1, n):
                a, V = _rotate_entries(a, V, p, q)
    return [a[i][i] for i in range(n)], V


def cholesky_entries(a) -> tuple[list, jax.Array]:
    """:func:`cholesky` on a nested list of (...) entries (the lower triangle is read).

    Returns:
        (low, ok): low[i][j] for j <= i (None above the diagonal) and ok (...) bool, False where
        the matrix is not numerically PD (:func:`cholesky` then gives NaN).
    """
    n = len(a)
    low = [[None] * n for _ in range(n)]
    ok = True
    for j in range(n):  # the same sums as :func:`cholesky`
        pivot = a[j][j] - sum((low[j][k] ** 2 for k in range(j)), 0.0)
        ok = ok & (pivot > 0)
        low[j][j] = jnp.sqrt(jnp.where(pivot > 0, pivot, 1.0))
        for i in range(j + 1, n):
            low[i][j] = (a[i][j] - sum((low[i][k] * low[j][k] for k in range(j)), 0.0)) / low[j][j]
    return low, ok


def psd_cholesky_entries(a) -> jax.Array:
    """:func:`psd_cholesky` of a symmetric nested list of (...) entries: the (..., n, n) factor.

    The same jitter and unrolled factorisation, on entries (fused with the arithmetic that made them).
    """
    n = len(a)
    dtype = jnp.result_type(a[0][0])
    scale = sum((jnp.abs(a[i][i]) for i in range(n)), 0.0) / n
    jitter = 10.0 * jnp.finfo(dtype).eps * scale
    low, ok = cholesky_entries([[a[i][j] + jitter if i == j else a[i][j] for j in range(n)] for i in range(n)])
    nan = jnp.asarray(jnp.nan, dtype)
    zero = jnp.zeros_like(low[0][0])
    return from_entries([[jnp.where(ok, low[i][j], nan) if j <= i else zero for j in range(n)] for i in range(n)])


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
                c, s = _jacobi_angle(a[..., p, p], a[..., q, q], a[..., p, q])
                diag = np.zeros((n, n))
                diag[p, p] = diag[q, q] = 1.0
                skew = np.zeros((n, n))
                skew[p, q], skew[q, p] = 1.0, -1.0
                J = eye + (c - 1.0)[..., None, None] * diag.astype(a.dtype) + s[..., None, None] * skew.astype(a.dtype)
                a = small_matmul(small_matmul(jnp.swapaxes(J, -1, -2), a), J)
                V = small_matmul(V, J)
    return jnp.diagonal(a, axis1=-2, axis2=-1), V


def eigh(a):
    """Symmetric eigendecomposition (lam (..., n), V (..., n, n)): :func:`jacobi_eigh` for n <= 3,
    ``jnp.linalg.eigh`` (LAPACK / cuSOLVER) otherwise. Eigenvalue order is unspecified."""
    if a.shape[-1] <= JACOBI_MAX_SIZE:
        return jacobi_eigh(a)
    return jnp.linalg.eigh(a)


def chol_solve(chol, b):
    """Solve A x = b given the lower Cholesky factor of A; b is (..., n) or (..., n, m)."""
    if chol.shape[-1] <= SMALL_MAX_SIZE:  # x = L^-T (L^-1 b), unrolled
        inv = tril_inv(chol)
        vec = b.ndim == chol.ndim - 1
        rhs = b[..., None] if vec else b
        x = jnp.swapaxes(inv, -1, -2) @ (inv @ rhs)
        return x[..., 0] if vec else x
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
