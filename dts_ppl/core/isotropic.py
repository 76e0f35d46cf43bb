"""The "identity" upward pass of a chain with isotropic levels, written in one eigenbasis.

When an :class:`~dts_ppl.core.inference.UpwardPlan`'s whitenings and reach gains are all
multiples of the identity (a DDPM's levels under the identity rule, :func:`core.scalar_plan
<dts_ppl.core.inference.scalar_plan>`), every matrix of the planned pass is diagonal in the
eigenbasis V of the evidence on psi_1, M = V diag(mu) V^T (docs/math.md section 6). Row i's
whitened evidence then has eigenvalues in V, and the pass reduces to elementwise arithmetic on
(L, d) arrays of eigenvalues, with three rotations back at the end:

    reach (rows 0..L-2, precision r_i^2 I):   lam = mu / r_i^2,   up.G = r_i^2 lam / (1 + lam),
                                              up.b = (V^T b) / (1 + lam)   (in V),
    pull-back (gain g_i I, offset c_i):       G_i = g_i^2 up.G,   b_i = g_i (up.b - up.G (V^T c_i)),
    row i (precision s_i^2 I):                lam_i = G_i / s_i^2,
        gain_i = V diag(1 / (1 + lam_i)) V^T,   cov_i = V diag(1 / (s_i^2 (1 + lam_i))) V^T,
        shift_i = V (b_i / (s_i^2 (1 + lam_i))),

with the eigen-directions below :func:`~dts_ppl.core.inference.evidence_cutoff` dropped as in
:func:`~dts_ppl.core.inference.condition`. The same numbers as
:func:`~dts_ppl.core.inference.planned_latent_posteriors`' basis path to round-off, in a handful
of fused passes instead of a few matrix products per level. Derivatives come from that path (the
basis path's own rule, :func:`~dts_ppl.core.inference.condition_in_basis`), which the caller
passes in. This module reads the plan's fields only; :mod:`dts_ppl.core.inference` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core.linalg import eigh, psd_cholesky, small_matmul, small_matvec, symmetrise

__all__ = ["IsotropicPlan", "isotropic_latent_posteriors", "isotropic_plan"]


class IsotropicPlan(NamedTuple):
    """The scalars of an isotropic :class:`~dts_ppl.core.inference.UpwardPlan` (:func:`isotropic_plan`).

    Attributes:
        w1: (d, d_psi) the linearised link into u = f_1(psi_1).   c1: (d,) its offset.
        reach_offset: (L - 1, d_psi) the plan's reach offsets.
        reach_scale: (L - 1,) r_i, the reach whitening R_i = r_i I.
        reach_gain: (L - 1,) g_i, the reach gain g_i I.
        level_scale: (L,) s_i, each row's whitening s_i I.
    """

    w1: Annotated[jax.Array, "d d_psi"]
    c1: Annotated[jax.Array, "d"]
    reach_offset: Annotated[jax.Array, "Lm1 d_psi"]
    reach_scale: Annotated[jax.Array, "Lm1"]
    reach_gain: Annotated[jax.Array, "Lm1"]
    level_scale: Annotated[jax.Array, "L"]


def isotropic_plan(plan: Any) -> IsotropicPlan:
    """The scalars of a concrete UpwardPlan whose whitenings and reach gains are multiples of the
    identity (the caller checks this: :func:`core.scalar_plan <dts_ppl.core.inference.scalar_plan>`).

    Args:
        plan: an :class:`~dts_ppl.core.inference.UpwardPlan` with concrete fields.
    Returns:
        IsotropicPlan.
    """
    dtype = plan.levels.chol.dtype

    def diag0(x):
        return jnp.asarray(np.asarray(x)[..., 0, 0], dtype)

    lin = plan.linearisation
    return IsotropicPlan(
        lin.w1, lin.c1, plan.reach_offset, diag0(plan.reach.chol), diag0(plan.reach_gain), diag0(plan.levels.chol)
    )


def _rotate(V, x):
    """V diag(x_l) V^T for every row of x (L, d), as d elementwise products summed (one loop kernel)."""
    return _terms(x[..., :, k, None, None] * (V[:, k, None] * V[None, :, k]) for k in range(V.shape[-1]))


def _terms(terms):
    """The sum of an iterable of arrays, written out (XLA fuses it; a reduction would be its own kernel)."""
    terms = iter(terms)
    total = next(terms)
    for t in terms:
        total = total + t
    return total


def _cutoff(lam):
    """Which of each row's eigenvalues (L, d) carry evidence (:func:`core.evidence_cutoff` row by row)."""
    top = lam[..., 0]
    for k in range(1, lam.shape[-1]):  # the row maxima written out (fused, no reduction kernel)
        top = jnp.maximum(top, lam[..., k])
    return lam > 64.0 * jnp.finfo(lam.dtype).eps * jnp.maximum(top, 0.0)[..., None]


def _posteriors(iplan: IsotropicPlan, G, b):
    w1t = jnp.swapaxes(iplan.w1, -1, -2)  # the evidence pulled back onto psi_1, the last row
    msg_g = symmetrise(small_matmul(small_matmul(w1t, G), iplan.w1))
    msg_b = small_matvec(w1t, b - small_matvec(G, iplan.c1))
    V = eigh(symmetrise(msg_g))[1]
    d = V.shape[-1]
    gv = small_matmul(msg_g, V)
    mu = _terms(V[i] * gv[i] for i in range(d))  # eigenvalues, read off in V
    beta = _terms(msg_b[i] * V[i] for i in range(d))  # V^T b
    r2 = (iplan.reach_scale**2)[:, None]
    lam = mu / r2  # reach rows: the whitened evidence's eigenvalues
    keep = _cutoff(lam)
    lam = jnp.where(keep, lam, 0.0)
    inv = 1.0 / (1.0 + lam)
    up_g = r2 * lam * inv  # the message to row i, in V
    up_b = jnp.where(keep, beta, 0.0) * inv
    g = iplan.reach_gain[:, None]
    offset = _terms(iplan.reach_offset[:, j, None] * V[j] for j in range(d))  # V^T c_i
    rows_g = jnp.concatenate([g * g * up_g, mu[None]])  # (L, d): each row's evidence, in V
    rows_b = jnp.concatenate([g * (up_b - up_g * offset), beta[None]])
    s2 = (iplan.level_scale**2)[:, None]
    lam = rows_g / s2
    keep = _cutoff(lam)
    inv = 1.0 / (1.0 + jnp.where(keep, lam, 0.0))
    gain = _rotate(V, inv)
    cov = _rotate(V, inv / s2)
    w = jnp.where(keep, rows_b, 0.0) * inv / s2
    shift = _terms(w[:, k, None] * V[:, k] for k in range(d))  # V (...)
    return gain, shift, psd_cholesky(cov)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _isotropic(basis_path: Callable, iplan: IsotropicPlan, G, b):
    return _posteriors(iplan, G, b)


@_isotropic.defjvp
def _isotropic_jvp(basis_path, primals, tangents):
    iplan, G, b = primals
    _, dG, db = tangents
    return _isotropic(basis_path, *primals), jax.jvp(lambda G, b: tuple(basis_path(G, b)), (G, b), (dG, db))[1]


def isotropic_latent_posteriors(iplan: IsotropicPlan, G, b, basis_path: Callable) -> tuple:
    """Every row's conditional from one eigenbasis, elementwise (the planned "identity" pass).

    Args:
        iplan: from :func:`isotropic_plan`.
        G: (d, d), b: (d,): the evidence on u = f_1(psi_1).
        basis_path: ``basis_path(G, b) -> (gain, shift, scale_tril)``, the same pass by the
            matrices (its derivatives are this function's).
    Returns:
        (gain (L, d, d), shift (L, d), scale_tril (L, d, d)), sampling order.
    """
    return _isotropic(basis_path, iplan, G, b)
