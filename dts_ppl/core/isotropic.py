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
basis path's own rule, :func:`~dts_ppl.core.inference.condition_in_basis`).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import inference as _inf
from dts_ppl.core.linalg import eigh, psd_cholesky, symmetrise

__all__ = ["IsotropicPlan", "isotropic_latent_posteriors", "isotropic_plan"]


class IsotropicPlan(NamedTuple):
    """The scalars of an isotropic :class:`~dts_ppl.core.inference.UpwardPlan` (:func:`isotropic_plan`).

    Attributes:
        plan: the UpwardPlan itself (its basis path gives the derivatives).
        reach_scale: (L - 1,) r_i, the reach whitening R_i = r_i I.
        reach_gain: (L - 1,) g_i, the reach gain g_i I.
        level_scale: (L,) s_i, each row's whitening s_i I.
    """

    plan: _inf.UpwardPlan
    reach_scale: Annotated[jax.Array, "Lm1"]
    reach_gain: Annotated[jax.Array, "Lm1"]
    level_scale: Annotated[jax.Array, "L"]


def isotropic_plan(plan: _inf.UpwardPlan) -> IsotropicPlan | None:
    """The plan's scalars when it is concrete and isotropic (:func:`core.scalar_plan`), else None.

    Args:
        plan: an UpwardPlan (:func:`core.upward_plan`).
    Returns:
        IsotropicPlan, or None (a traced plan, or whitenings / gains that are not multiples of I).
    """
    if not _inf.scalar_plan(plan):
        return None
    dtype = plan.levels.chol.dtype

    def diag0(x):
        return jnp.asarray(np.asarray(x)[..., 0, 0], dtype)

    return IsotropicPlan(plan, diag0(plan.reach.chol), diag0(plan.reach_gain), diag0(plan.levels.chol))


def _rotate(V, x):
    """V diag(x_l) V^T for every row of x (L, d), as one elementwise product and sum."""
    return jnp.sum(V[..., None, :, None, :] * V[..., None, None, :, :] * x[..., :, None, None, :], axis=-1)


def _cutoff(lam):
    """Which of each row's eigenvalues (L, d) carry evidence (:func:`core.evidence_cutoff` row by row)."""
    return lam > 64.0 * jnp.finfo(lam.dtype).eps * jnp.maximum(jnp.max(lam, axis=-1, keepdims=True), 0.0)


def _posteriors(iplan: IsotropicPlan, G, b):
    plan = iplan.plan
    lin = plan.linearisation
    msg = _inf.pull_back(_inf.Message(G, b), lin.w1, lin.c1)  # on psi_1, the last row
    V = eigh(symmetrise(msg.G))[1]
    mu = jnp.sum(V[:, None, :] * msg.G[:, :, None] * V[None, :, :], axis=(0, 1))  # eigenvalues, read off in V
    beta = jnp.sum(msg.b[:, None] * V, 0)  # V^T b
    r2 = (iplan.reach_scale**2)[:, None]
    lam = mu / r2  # reach rows: the whitened evidence's eigenvalues
    keep = _cutoff(lam)
    lam = jnp.where(keep, lam, 0.0)
    inv = 1.0 / (1.0 + lam)
    up_g = r2 * lam * inv  # the message to row i, in V
    up_b = jnp.where(keep, beta, 0.0) * inv
    g = iplan.reach_gain[:, None]
    offset = jnp.sum(plan.reach_offset[:, :, None] * V, 1)  # V^T c_i
    rows_g = jnp.concatenate([g * g * up_g, mu[None]])  # (L, d): each row's evidence, in V
    rows_b = jnp.concatenate([g * (up_b - up_g * offset), beta[None]])
    s2 = (iplan.level_scale**2)[:, None]
    lam = rows_g / s2
    keep = _cutoff(lam)
    inv = 1.0 / (1.0 + jnp.where(keep, lam, 0.0))
    gain = _rotate(V, inv)
    cov = _rotate(V, inv / s2)
    shift = jnp.sum((jnp.where(keep, rows_b, 0.0) * inv / s2)[:, None, :] * V, -1)  # V (...)
    return gain, shift, psd_cholesky(cov)


@jax.custom_jvp
def _isotropic(iplan: IsotropicPlan, G, b):
    return _posteriors(iplan, G, b)


@_isotropic.defjvp
def _isotropic_jvp(primals, tangents):
    iplan, G, b = primals
    _, dG, db = tangents

    def basis_path(G, b):
        return tuple(_inf.planned_latent_posteriors(iplan.plan, _inf.Message(G, b), isotropic=False))

    return _isotropic(*primals), jax.jvp(basis_path, (G, b), (dG, db))[1]


def isotropic_latent_posteriors(iplan: IsotropicPlan, evidence: _inf.Message) -> _inf.Conditionals:
    """:func:`core.planned_latent_posteriors <dts_ppl.core.inference.planned_latent_posteriors>`
    of an isotropic plan: every row's conditional from one eigenbasis, elementwise.

    Args:
        iplan: from :func:`isotropic_plan`.
        evidence: Message on u = f_1(psi_1): G (d, d), b (d,).
    Returns:
        Conditionals with (L, d, d), (L, d), (L, d, d) fields, sampling order.
    """
    return _inf.Conditionals(*_isotropic(iplan, evidence.G, evidence.b))
