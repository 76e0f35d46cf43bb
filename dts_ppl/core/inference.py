"""The closed-form dTS posterior (docs/math.md sections 3-4): pure functions over NamedTuples.

Every Gaussian conditional of the chain, prior and posterior alike, is stored as

    x | parent ~ N(gain @ u + shift, scale_tril scale_tril^T),   u = f(parent)

with u = 0 for the top latent. The prior is gain = I, shift = 0; conditioning on data changes
only these three arrays. The NumPyro model and guide (`dts_ppl.ppl.model`, `dts_ppl.ppl.guide`) and
the agents all sample through :func:`conditional_loc`, so there is one formula for each step.

Row order. Every (L, ...) latent array here -- the latent conditionals, the linearisation,
expansion points, draws and moments -- is in SAMPLING order: row 0 = psi_L (the top),
row L - 1 = psi_1, like the model's ``psi`` site. The prior stores its covariances and links
f_2..f_L in level order; :func:`chain_rows` is the one place that converts them.

Upward pass (data -> top, :func:`upward_pass`): each level combines its prior precision Q with
the evidence (G, b) arriving from below (:func:`condition`), and passes up a message in the
parent's mean space, pulled back through the link's linearisation (:func:`pull_back`). No G^-1
is ever formed, so actions with fewer than d pulls (singular G_a) and actions with no data are
exact. For nonlinear links "iterated" (the default for MLP links; DDPM links default to the
paper's "identity", :func:`default_linearisation`) repeats the pass, re-linearising each link
at the previous pass's posterior mean trajectory (Gauss-Newton on :func:`chain_objective`, with
a backtracking line search on it), until the expansion points stop moving (docs/defaults.md);
affine links are exact in one pass.
"""

from __future__ import annotations

import math
import weakref
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core import isotropic as _isotropic
from dts_ppl.core import linalg as _linalg
from dts_ppl.core import prng as _prng
from dts_ppl.core.deprecation import renamed_argument
from dts_ppl.core.likelihoods import ActionStats
from dts_ppl.core.linalg import (
    eigh,
    psd_cholesky,
    psd_inv,
    psd_solve,
    sample_moments,
    small_matmul,
    small_matvec,
    symmetrise,
    tril_inv,
)
from dts_ppl.core.links import check_linearisation
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Link

#: Defaults of the iterated upward pass: stop when no expansion point moves by more than
#: ``tol * max(1, max |point|)`` between passes, when the line search finds no step that lowers
#: :func:`chain_objective`, or after ``max_passes`` passes (chosen by measurement, docs/defaults.md).
DEFAULT_TOL = 1e-5
DEFAULT_MAX_PASSES = 20
#: ``linearisation=None`` (the default everywhere) picks each link family's measured best,
#: :func:`default_linearisation`: "iterated" for MLP links, the paper's "identity" for DDPM links.
DEFAULT_LINEARISATION = None


def default_linearisation(prior: DiffusionPrior) -> str:
    """The linearisation a prior's links do best with (their class attribute ``default_linearisation``).

    Measured (docs/defaults.md): on random ReLU MLP links "iterated" (fig1-nonlindiff-lin-k100:
    3,288 vs 8,720 for "identity"); on trained DDPM links the paper's "identity" (ring-shared,
    20 runs: 12.7 vs 99.0 for "iterated"), whose near-identity steps it was designed for. Affine
    links are exact with any rule.
    """
    return getattr(type(prior.link1), "default_linearisation", "iterated")


def resolve_linearisation(
    prior: DiffusionPrior, linearisation: str | None = DEFAULT_LINEARISATION, *, method: str | None = None
) -> str:
    """``linearisation``, or the prior's :func:`default_linearisation` when it is None; validated.

    ``method=`` is the deprecated name of ``linearisation=``.
    """
    linearisation = renamed_argument("method", method, "linearisation", linearisation, DEFAULT_LINEARISATION)
    return check_linearisation(default_linearisation(prior) if linearisation is None else linearisation)


class Conditionals(NamedTuple):
    """A stack of Gaussian conditionals x_i | u_i ~ N(gain_i u_i + shift_i, scale_tril_i scale_tril_i^T).

    Attributes:
        gain: (..., n, n)
        shift: (..., n)
        scale_tril: (..., n, n) lower Cholesky factor of the conditional covariance.
    """

    gain: Annotated[jax.Array, "... n n"]
    shift: Annotated[jax.Array, "... n"]
    scale_tril: Annotated[jax.Array, "... n n"]

    @property
    def cov(self) -> jax.Array:
        return small_matmul(self.scale_tril, jnp.swapaxes(self.scale_tril, -1, -2))


class DTSPosterior(NamedTuple):
    """The dTS posterior of a diffusion prior, as conditionals along the chain.

    Attributes:
        latents: psi_l | psi_{l+1} in sampling order (row 0 = psi_L with u = 0, row L - l =
            psi_l with u = f_{l+1}(psi_{l+1})); shapes (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi).
        theta: theta_a | psi_1 with u = f_1(psi_1); shapes (K, d, d), (K, d), (K, d, d).
    """

    latents: Conditionals
    theta: Conditionals


class Linearisation(NamedTuple):
    """Affine stand-ins u ~ W psi + c for the links in the upward messages, in sampling order.

    Attributes:
        w1: (d, d_psi), c1: (d,): f_1 at psi_1.
        w: (L, d_psi, d_psi), c: (L, d_psi): row i stands for the link from row i - 1 to row i
            (f_{L-i+1}, expanded at psi_{L-i+1}); row 0, the top, has no parent and is zero.
    """

    w1: Annotated[jax.Array, "d d_psi"]
    c1: Annotated[jax.Array, "d"]
    w: Annotated[jax.Array, "L d_psi d_psi"]
    c: Annotated[jax.Array, "L d_psi"]


class Message(NamedTuple):
    """Upward message exp(-1/2 x^T G x + x^T b) on one variable.

    Attributes:
        G: (n, n).   b: (n,).
    """

    G: Annotated[jax.Array, "n n"]
    b: Annotated[jax.Array, "n"]


class UpwardPass(NamedTuple):
    """Result of :func:`upward_pass`.

    Attributes:
        latents: Conditionals (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi), sampling order.
        linearisation: the Linearisation the final pass used (moments must use it too).
        passes: () int32, upward passes run (1 for affine links, "identity" and "jacobian").
        converged: () bool, whether the expansion points met the tolerance (True whenever one
            pass is all the method does).
    """

    latents: Conditionals
    linearisation: Linearisation
    passes: Annotated[jax.Array, ""]
    converged: Annotated[jax.Array, ""]


class PosteriorFit(NamedTuple):
    """Result of :func:`fit_posterior`: the posterior and how its upward pass ended.

    Attributes:
        posterior: DTSPosterior.
        linearisation: Linearisation of the final upward pass.
        passes: () int32.   converged: () bool (see :class:`UpwardPass`).
    """

    posterior: DTSPosterior
    linearisation: Linearisation
    passes: Annotated[jax.Array, ""]
    converged: Annotated[jax.Array, ""]


# ----------------------------------------------------------------------------------- one step


class Whitening(NamedTuple):
    """The prior-only factors of :func:`condition`: Q = R R^T.

    Attributes:
        chol: (..., n, n) R, the lower Cholesky factor of the prior precision Q.
        chol_inv: (..., n, n) R^-1.
    """

    chol: Annotated[jax.Array, "... n n"]
    chol_inv: Annotated[jax.Array, "... n n"]


def whiten(prior_prec) -> Whitening:
    """R = chol(Q) and R^-1 for :func:`condition_whitened` (batched over leading axes).

    Args:
        prior_prec: (..., n, n) prior precision Q.
    Returns:
        Whitening with (..., n, n) fields.
    """
    R = psd_cholesky(prior_prec)
    return Whitening(R, tril_inv(R))


@jax.custom_jvp
def condition(prior_prec: jax.Array, G: jax.Array, b: jax.Array) -> tuple[Conditionals, Message]:
    """Condition x ~ N(gain-free mean m, Q^-1) on evidence exp(-1/2 x^T G x + x^T b).

    Returns the conditional x | m ~ N(P^-1 Q m + P^-1 b, P^-1) with P = Q + G, and the
    message this evidence sends to m (the mean space of the parent):
        G_up = Q - Q P^-1 Q,   b_up = Q P^-1 b.

    P is never formed. In the prior-whitened frame (Q = R R^T, Gt = R^-1 G R^-T = V diag(lam) V^T)
    P^-1 = R^-T V diag(1 / (1 + lam)) V^T R^-1 and G_up = R V diag(lam / (1 + lam)) V^T R^T, so the
    covariance and the message are PSD by construction and bounded by Q^-1 and Q, whatever the
    scale of G. Eigen-directions with lam below ``rel_cutoff * max(lam)`` (see
    :func:`evidence_cutoff`) carry less information than the round-off of G itself (a tiny reward
    noise makes G ~ 1e12 in float32, whose entries then have errors ~ 1e5 in every direction):
    they are treated as no evidence, and b (which lies in the range of G) is projected off them.
    In float64 the cutoff is ~1e-14 relative, below round-off, so results are exact.

    Derivatives (``jax.grad`` with respect to Q, G or b: the noise scale, S_1, the level
    covariances) come from the same formulas written with a Cholesky factor of P
    (:func:`_condition_dense`): the eigendecomposition's own derivative is 0 * inf = NaN
    wherever eigenvalues repeat, i.e. for every action with fewer than d pulls.

    Args:
        prior_prec: (n, n) Q.   G: (n, n).   b: (n,).
    Returns:
        (Conditionals with (n, n), (n,), (n, n) fields, Message on m).
    """
    return condition_whitened(whiten(prior_prec), G, b)


#: Conditions of evidence up to this size are written entry by entry (:func:`_condition_entries`).
#: At 2 x 2 one Jacobi rotation is exact; at 3 x 3 the entry-by-entry sweeps compiled to slower code
#: than the stacked rotations of :func:`~dts_ppl.core.linalg.eigh`, so larger matrices take the
#: stacked path.
CONDITION_ENTRIES_MAX_SIZE = 2


@jax.custom_jvp
def condition_whitened(white: Whitening, G, b):
    """:func:`condition` given the prior's :func:`whiten` factors (computed once when Q is fixed).

    Derivatives come from :func:`_condition_dense` at Q = R R^T, as for :func:`condition`.

    Args:
        white: Whitening with (n, n) fields.   G: (n, n).   b: (n,).
    Returns:
        (Conditionals with (n, n), (n,), (n, n) fields, Message on m), as :func:`condition`.
    """
    if G.shape[-1] <= min(_linalg.SMALL_MAX_SIZE, _linalg.JACOBI_MAX_SIZE, CONDITION_ENTRIES_MAX_SIZE):
        return _condition_entries(white, G, b)
    R, Rinv = white
    lam, V = eigh(symmetrise(small_matmul(small_matmul(Rinv, G), Rinv.T)))  # order unused
    return _condition_from_eig(white, b, lam, V)


def _condition_entries(white: Whitening, G, b):
    """:func:`condition_whitened` for small n, entry by entry (:func:`dts_ppl.core.linalg.entries`).

    The same formulas as :func:`_condition_from_eig` after :func:`~dts_ppl.core.linalg.jacobi_eigh`,
    on nested lists of (...) arrays: no intermediate matrix is stacked, so XLA fuses the whole
    condition (decomposition, conditional, message, the covariance's Cholesky factor) into a few
    elementwise kernels instead of a few dozen.
    """
    R, Rinv = (_linalg.entries(x) for x in white)
    Gm = _linalg.entries(G)
    n, dtype = len(Gm), G.dtype
    bv = [b[..., i] for i in range(n)]
    ix = range(n)

    def dot(terms):
        return sum(terms, 0.0)

    rg = [[dot(Rinv[i][k] * Gm[k][j] for k in ix) for j in ix] for i in ix]
    gt = [[dot(rg[i][m] * Rinv[j][m] for m in ix) for j in ix] for i in ix]
    gt = [[0.5 * (gt[i][j] + gt[j][i]) for j in ix] for i in ix]
    lam, V = _linalg.jacobi_entries(gt, dtype)
    top = lam[0]
    for x in lam[1:]:
        top = jnp.maximum(top, x)
    cutoff = 64.0 * jnp.finfo(dtype).eps * jnp.maximum(top, 0.0)  # evidence_cutoff
    keep = [x > cutoff for x in lam]
    lam = [jnp.where(k, x, 0.0) for k, x in zip(keep, lam, strict=True)]
    inv = [1.0 / (1.0 + x) for x in lam]
    A = [[dot(Rinv[k][i] * V[k][j] for k in ix) for j in ix] for i in ix]  # R^-T V
    rb = [dot(Rinv[k][j] * bv[j] for j in ix) for k in ix]
    coef = [jnp.where(keep[i], dot(V[k][i] * rb[k] for k in ix), 0.0) for i in ix]
    ainv = [[A[i][k] * inv[k] for k in ix] for i in ix]
    cov = [[dot(ainv[i][k] * A[j][k] for k in ix) for j in ix] for i in ix]
    cov = [[0.5 * (cov[i][j] + cov[j][i]) for j in ix] for i in ix]
    shift = [dot(ainv[i][k] * coef[k] for k in ix) for i in ix]
    vtrt = [[dot(V[m][k] * R[j][m] for m in ix) for j in ix] for k in ix]  # V^T R^T
    gain = [[dot(ainv[i][k] * vtrt[k][j] for k in ix) for j in ix] for i in ix]
    rv = [[dot(R[i][m] * V[m][k] for m in ix) for k in ix] for i in ix]
    rvl = [[rv[i][k] * (lam[k] * inv[k]) for k in ix] for i in ix]
    up_g = [[dot(rvl[i][k] * rv[j][k] for k in ix) for j in ix] for i in ix]
    up_g = [[0.5 * (up_g[i][j] + up_g[j][i]) for j in ix] for i in ix]
    up_b = [dot(rv[i][k] * (inv[k] * coef[k]) for k in ix) for i in ix]
    stack = _linalg.from_entries
    cond = Conditionals(stack(gain), jnp.stack(shift, -1), _linalg.psd_cholesky_entries(cov))
    return cond, Message(stack(up_g), jnp.stack(up_b, -1))


@jax.custom_jvp
def condition_in_basis(white: Whitening, G, b, basis):
    """:func:`condition_whitened` given an orthonormal basis V in which the whitened evidence
    R^-1 G R^-T is diagonal (its eigenvalues are read off as diag(V^T R^-1 G R^-T V)).

    For a pass whose whitenings and gains are all multiples of the identity every level's
    whitened evidence is diagonal in the eigenbasis of one matrix: one eigendecomposition serves
    them all (:func:`planned_latent_posteriors`). Derivatives come from :func:`_condition_dense`
    (the basis is a constant).

    Args:
        white: Whitening with (n, n) fields.   G: (n, n).   b: (n,).   basis: (n, n) V.
    Returns:
        (Conditionals, Message) as :func:`condition_whitened`.
    """
    R, Rinv = white
    V = jax.lax.stop_gradient(basis)
    lam = jnp.einsum("ji,jk,ki->i", V, Rinv @ G @ Rinv.T, V)
    return _condition_from_eig(white, b, lam, V)


def _condition_from_eig(white: Whitening, b, lam, V):
    """The formulas of :func:`condition_whitened` given the whitened evidence's eigenpairs (lam, V)."""
    R, Rinv = white
    mm, mv = small_matmul, small_matvec  # elementwise for small matrices
    keep = lam > evidence_cutoff(lam)
    lam = jnp.where(keep, lam, 0.0)
    inv = 1.0 / (1.0 + lam)  # eigenvalues of the whitened P^-1, in (0, 1]
    A = mm(Rinv.T, V)  # P^-1 = A diag(inv) A^T
    coef = jnp.where(keep, mv(V.T, mv(Rinv, b)), 0.0)  # b in the whitened eigenbasis, off-range part dropped
    cov = symmetrise(mm(A * inv, A.T))
    shift = mv(A, inv * coef)
    gain = mm(A * inv, mm(V.T, R.T))  # P^-1 Q
    RV = mm(R, V)
    up = Message(symmetrise(mm(RV * (lam * inv), RV.T)), mv(RV, inv * coef))
    return Conditionals(gain, shift, psd_cholesky(cov)), up


def _condition_dense(prior_prec, G, b):
    """:func:`condition` through a Cholesky factor of P = Q + G: its derivative rule only."""
    P = symmetrise(prior_prec + G)
    eye = jnp.eye(P.shape[-1], dtype=P.dtype)
    p_inv = symmetrise(psd_solve(P, eye))
    gain = p_inv @ prior_prec
    shift = p_inv @ b
    up = Message(symmetrise(prior_prec - prior_prec @ gain), prior_prec @ shift)
    return Conditionals(gain, shift, psd_cholesky(p_inv)), up


@condition.defjvp
def _condition_jvp(primals, tangents):
    return condition(*primals), jax.jvp(_condition_dense, primals, tangents)[1]


@condition_whitened.defjvp
def _condition_whitened_jvp(primals, tangents):
    (white, G, b), (d_white, dG, db) = primals, tangents

    def dense(R, G, b):  # R^-1's tangent follows from R's: only R enters
        return _condition_dense(R @ R.T, G, b)

    return condition_whitened(*primals), jax.jvp(dense, (white.chol, G, b), (d_white.chol, dG, db))[1]


@condition_in_basis.defjvp
def _condition_in_basis_jvp(primals, tangents):
    (white, G, b, _), (d_white, dG, db, _) = primals, tangents

    def dense(R, G, b):
        return _condition_dense(R @ R.T, G, b)

    return condition_in_basis(*primals), jax.jvp(dense, (white.chol, G, b), (d_white.chol, dG, db))[1]


def evidence_cutoff(lam):
    """Eigenvalues of the whitened evidence below this are numerically zero: 64 eps max(lam)."""
    return 64.0 * jnp.finfo(lam.dtype).eps * jnp.maximum(jnp.max(lam), 0.0)


def pull_back(message: Message, w, c) -> Message:
    """Message on u = W psi + c -> message on psi: (W^T G W, W^T (b - G c))."""
    wt = jnp.swapaxes(w, -1, -2)
    G = symmetrise(small_matmul(small_matmul(wt, message.G), w))
    return Message(G, small_matvec(wt, message.b - small_matvec(message.G, c)))


def conditional_loc(cond: Conditionals, u):
    """Mean gain @ u + shift of a conditional (any leading batch axes on cond broadcast)."""
    return jnp.einsum("...ij,...j->...i", cond.gain, u) + cond.shift


# ------------------------------------------------------------------------- the chain's rows


class ChainRows(NamedTuple):
    """The prior's per-level quantities in sampling order (row i = psi_{L-i}).

    Attributes:
        cov: (L, d_psi, d_psi) covariance of row i given its parent (row 0: S_{L+1}).
        is_top: (L,) bool, True at row 0.
        parent_link: the link from row i - 1 to row i (f_{L-i+1}) stacked on a leading axis of
            length L; row 0 holds a zero placeholder, never used (masked by ``is_top``). None
            when L = 1.
        prior_mean: (L, d_psi) the prior mean trajectory psi*_L = 0, psi*_{l-1} = f_l(psi*_l).
    """

    cov: Annotated[jax.Array, "L d_psi d_psi"]
    is_top: Annotated[jax.Array, "L"]
    parent_link: Link | None
    prior_mean: Annotated[jax.Array, "L d_psi"]


def chain_rows(prior: DiffusionPrior) -> ChainRows:
    """The one conversion from the prior's level-ordered storage to the sampling order.

    ``prior.covs[l - 1]`` (psi_l | psi_{l+1}), ``prior.links[l - 2]`` (f_l) and
    ``prior.prior_mean_trajectory()[l - 1]`` are indexed by level; every latent array of the
    package is indexed by row L - l. Nothing else in the package reverses a latent axis.
    """

    def flip(x):
        return jnp.flip(x, axis=0)

    links = None
    if prior.links is not None:
        links = jax.tree.map(lambda x: jnp.concatenate([jnp.zeros_like(x[:1]), flip(x)]), prior.links)
    is_top = jnp.arange(prior.num_levels) == 0
    return ChainRows(flip(prior.covs), is_top, links, flip(prior.prior_mean_trajectory()))


def parent_means(prior: DiffusionPrior, psi_parent, is_top, parent_link):
    """u = f_{l+1}(psi_{l+1}) for one level of the chain, 0 at the top (used inside scans)."""
    zero = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    if parent_link is None:
        return zero
    return jnp.where(is_top, zero, parent_link(psi_parent))


def chain_scan_inputs(prior: DiffusionPrior, latents: Conditionals):
    """xs for a forward scan down the chain, top row first: (conditional, is_top, parent link).

    The scan is forward over sampling-ordered inputs rather than ``reverse=True`` because
    ``numpyro.contrib.control_flow.scan`` (0.22) substitutes ``value[i]`` with a forward counter
    even when ``reverse=True``, which would score the wrong rows under ``substitute`` /
    ``log_density`` / NUTS. Stacked draws come out in sampling order: row 0 is psi_L.
    """
    rows = chain_rows(prior)
    return latents, rows.is_top, rows.parent_link


# ------------------------------------------------------------------------------ linearisation


def linearise(
    prior: DiffusionPrior,
    linearisation: str = "jacobian",
    points: jax.Array | None = None,
    *,
    method: str | None = None,
) -> Linearisation:
    """Affine stand-ins for the links. Exact (W_l, c_l) for affine links, whatever the linearisation.

    Args:
        prior: the diffusion prior.
        linearisation: "identity" (the paper), "jacobian" or "iterated" (both: the Jacobian at
            ``points``).
        points: (L, d_psi) latent trajectory to expand at, in sampling order (row 0 = psi_L, as
            draws and moments); defaults to the prior mean trajectory.
        method: deprecated name of ``linearisation``.
    Returns:
        Linearisation.
    """
    linearisation = renamed_argument("method", method, "linearisation", linearisation, "jacobian")
    check_linearisation(linearisation)
    rows = chain_rows(prior)
    points = rows.prior_mean if points is None else points
    w1, c1 = prior.link1.linearise(points[-1], linearisation)
    dp, dtype = prior.latent_dim, prior.cov1.dtype
    w0, c0 = jnp.zeros((1, dp, dp), dtype), jnp.zeros((1, dp), dtype)
    if rows.parent_link is None:
        return Linearisation(w1, c1, w0, c0)
    links = jax.tree.map(lambda x: x[1:], rows.parent_link)
    w, c = jax.vmap(lambda link, p: link.linearise(p, linearisation))(links, points[:-1])
    return Linearisation(w1, c1, jnp.concatenate([w0, w.astype(dtype)]), jnp.concatenate([c0, c.astype(dtype)]))


# ------------------------------------------------------------------------------- upward pass


def action_posteriors(prior: DiffusionPrior, stats: ActionStats):
    """theta_a | psi_1 for every action and the messages they send to u = f_1(psi_1).

    Returns:
        (Conditionals with (K, d, d), (K, d), (K, d, d) fields,
         Message with per-action G (K, d, d), b (K, d): Lambda_a and beta_a of docs/math.md).
    The agents keep sum_a Lambda_a and sum_a beta_a as running sums.
    """
    prec1 = psd_inv(prior.cov1)
    return jax.vmap(condition, in_axes=(None, 0, 0))(prec1, stats.G, stats.b)


def latent_posteriors(prior: DiffusionPrior, evidence: Message, lin: Linearisation) -> Conditionals:
    """One upward pass: psi_l | psi_{l+1} for every level given the summed action messages.

    Args:
        evidence: sum over actions of the messages from :func:`action_posteriors` on
            u = f_1(psi_1): G (d, d), b (d,) (Ghat_1 and bhat_1 of docs/math.md).
        lin: linearisation of the links (:func:`linearise`).
    Returns:
        Conditionals with (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi) fields, sampling order.
    """
    msg = pull_back(evidence, lin.w1, lin.c1)  # on psi_1, the last row
    precs = psd_inv(chain_rows(prior).cov)

    def step(msg, xs):  # bottom row first (reverse scan); row 0's pull-back (W = 0) is unused
        prec, w, c = xs
        cond, up = condition(prec, msg.G, msg.b)
        return pull_back(up, w, c), cond

    _, conds = jax.lax.scan(step, msg, (precs, lin.w, lin.c), reverse=True)
    return conds


class UpwardPlan(NamedTuple):
    """The evidence-free half of the "identity" upward pass, computed once per prior (:func:`upward_plan`).

    With the identity rule the linearised chain does not depend on the data, so the law of psi_1
    given any row i is a fixed Gaussian, psi_1 | row i ~ N(reach_gain_i row_i + reach_offset_i,
    C_i) (C_i: the covariances of the rows between, propagated through the linearisation). The
    message the evidence on psi_1 sends to row i is then one :func:`condition` of a variable with
    precision C_i^-1, and every row's conditional another: two conditions batched over the
    levels instead of L sequential ones (the same Gaussian algebra as :func:`latent_posteriors`).

    Attributes:
        linearisation: the Linearisation of the pass (sampling order).
        reach_gain: (L - 1, d_psi, d_psi) the product of the rows' W from row i down to psi_1,
            for rows 0..L-2.
        reach_offset: (L - 1, d_psi) the matching offsets.
        reach: Whitening of C_i^-1, (L - 1, d_psi, d_psi) fields.
        levels: Whitening of each row's prior precision, (L, d_psi, d_psi) fields.
    """

    linearisation: Linearisation
    reach_gain: Annotated[jax.Array, "Lm1 d_psi d_psi"]
    reach_offset: Annotated[jax.Array, "Lm1 d_psi"]
    reach: Whitening
    levels: Whitening


def plans_upward(prior: DiffusionPrior, method: str | None = DEFAULT_LINEARISATION) -> bool:
    """Whether :func:`upward_pass` runs ``method`` on ``prior`` through an :class:`UpwardPlan`.

    True for the "identity" rule on nonlinear links f_2..f_L: their identity stand-ins (W = I for
    levels >= 2) keep the products in :attr:`UpwardPlan.reach_gain` bounded. Affine links (exact
    W, whose products can grow like ||W||^L) and the path-dependent "jacobian"/"iterated" rules
    keep the sequential recursion.
    """
    method = resolve_linearisation(prior, method)
    return method == "identity" and prior.links is not None and not prior.links.is_linear


def upward_plan(prior: DiffusionPrior, method: str | None = DEFAULT_LINEARISATION) -> UpwardPlan | None:
    """The :class:`UpwardPlan` of ``prior`` under ``method``, or None where none applies (:func:`plans_upward`).

    Agents build it once and pass it to every :func:`upward_pass`; without it the pass builds
    it itself (the same numbers, recomputed).
    """
    if not plans_upward(prior, method):
        return None
    return _upward_plan(prior)


@jax.jit
def _upward_plan(prior: DiffusionPrior) -> UpwardPlan:
    lin = linearise(prior, "identity")
    covs = chain_rows(prior).cov
    dp, dtype = prior.latent_dim, covs.dtype

    def step(carry, xs):  # from psi_1 up: psi_1 | row i from psi_1 | row i + 1 and row i + 1 | row i
        gain, offset, cov = carry
        w, c, row_cov = xs  # the link into row i + 1 from row i and row i + 1's covariance
        carry = (gain @ w, gain @ c + offset, symmetrise(cov + gain @ row_cov @ gain.T))
        return carry, carry

    init = (jnp.eye(dp, dtype=dtype), jnp.zeros(dp, dtype), jnp.zeros((dp, dp), dtype))
    _, (gain, offset, cov) = jax.lax.scan(step, init, (lin.w[1:], lin.c[1:], covs[1:]), reverse=True)
    return UpwardPlan(lin, gain, offset, whiten(psd_inv(cov)), whiten(psd_inv(covs)))


def planned_latent_posteriors(plan: UpwardPlan, evidence: Message, isotropic: bool = True) -> Conditionals:
    """:func:`latent_posteriors` through an :class:`UpwardPlan`: every level at once.

    Args:
        plan: from :func:`upward_plan`.
        evidence: Message on u = f_1(psi_1): G (d, d), b (d,).
        isotropic: a concrete plan of multiples of the identity (:func:`scalar_plan`) runs
            elementwise in one eigenbasis (:mod:`dts_ppl.core.isotropic`); False: by the matrices.
    Returns:
        Conditionals with (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi) fields, sampling order.
    """
    if isotropic and scalar_plan(plan):
        basis_path = partial(_basis_path, plan)
        rows = _isotropic.isotropic_latent_posteriors(_isotropic.isotropic_plan(plan), *evidence, basis_path)
        return Conditionals(*rows)
    lin = plan.linearisation
    msg = pull_back(evidence, lin.w1, lin.c1)  # on psi_1, the last row
    scalar = scalar_plan(plan)
    if scalar:  # every whitened evidence is diagonal in the eigenbasis of msg.G
        basis = eigh(symmetrise(msg.G))[1]
        _, reach = jax.vmap(condition_in_basis, in_axes=(0, None, None, None))(plan.reach, msg.G, msg.b, basis)
    else:
        _, reach = jax.vmap(condition_whitened, in_axes=(0, None, None))(plan.reach, msg.G, msg.b)
    above = jax.vmap(pull_back)(reach, plan.reach_gain, plan.reach_offset)  # on rows 0..L-2
    G = jnp.concatenate([above.G, msg.G[None]])
    b = jnp.concatenate([above.b, msg.b[None]])
    if scalar:
        return jax.vmap(condition_in_basis, in_axes=(0, 0, 0, None))(plan.levels, G, b, basis)[0]
    return jax.vmap(condition_whitened)(plan.levels, G, b)[0]


def _basis_path(plan: UpwardPlan, G, b) -> Conditionals:
    """:func:`planned_latent_posteriors` by the matrices (the isotropic path's derivative rule)."""
    return planned_latent_posteriors(plan, Message(G, b), isotropic=False)


def _multiples_of_identity(x) -> bool:
    """Whether a concrete stack of matrices (..., n, n) holds multiples of the identity (to 8 eps)."""
    if not _checks.is_concrete(x):
        return False
    a = np.asarray(x, np.float64)
    n = a.shape[-1]
    diag = np.diagonal(a, axis1=-2, axis2=-1)
    scale = np.abs(diag).max(-1, keepdims=True)
    eps = 8.0 * np.finfo(np.asarray(x).dtype).eps
    off = np.abs(a - diag[..., :, None] * np.eye(n)).max(axis=(-2, -1))
    return bool(
        np.all(np.abs(diag - diag.mean(-1, keepdims=True)) <= eps * scale) and np.all(off <= eps * scale[..., 0])
    )


def scalar_plan(plan: UpwardPlan) -> bool:
    """Whether a concrete plan's whitenings and reach gains are all multiples of the identity.

    Then (a DDPM's isotropic levels under the identity rule) every level's whitened evidence in
    :func:`planned_latent_posteriors` is diagonal in the eigenbasis of the evidence on psi_1, and
    one eigendecomposition serves all 2L - 1 conditions (:func:`condition_in_basis`). A traced
    plan gives False (the general path).
    """
    return all(_multiples_of_identity(x) for x in (plan.reach.chol, plan.levels.chol, plan.reach_gain))


def _point_change(new, old):
    """max |new - old| relative to max(1, max |new|): the convergence measure of the passes."""
    return jnp.max(jnp.abs(new - old)) / jnp.maximum(1.0, jnp.max(jnp.abs(new)))


#: Step rules of the iterated pass (:func:`upward_pass`): "line-search" (the default) and the
#: earlier "halving" rule, kept for comparison (docs/defaults.md).
STEP_RULES = ("line-search", "halving")
DEFAULT_STEP_RULE = "line-search"


def check_step_rule(step_rule: str | None) -> str:
    """``step_rule`` validated (None: :data:`DEFAULT_STEP_RULE`)."""
    if step_rule is None:
        return DEFAULT_STEP_RULE
    if not isinstance(step_rule, str) or step_rule not in STEP_RULES:
        raise ValueError(f"step_rule: expected one of {STEP_RULES}, got {step_rule!r}")
    return step_rule


def check_pass_options(tol, max_passes) -> tuple[float, int]:
    """Validate the iterated pass's tolerance (finite, >= 0) and maximum passes (positive int)."""
    max_passes = _checks.check_positive_int("max_passes", max_passes)
    if isinstance(tol, bool) or not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol: expected a finite number >= 0, got {tol!r}")
    return float(tol), max_passes


def upward_pass(
    prior: DiffusionPrior,
    evidence: Message,
    linearisation: str | None = DEFAULT_LINEARISATION,
    tol: float = DEFAULT_TOL,
    max_passes: int = DEFAULT_MAX_PASSES,
    plan: UpwardPlan | None = None,
    *,
    step_rule: str | None = None,
    start: jax.Array | None = None,
    method: str | None = None,
) -> UpwardPass:
    """The latent posterior given the summed action evidence, iterated to convergence.

    "identity" (the paper) and "jacobian" (at the prior mean trajectory) run one pass, as do
    affine links (exact). "iterated" starts from the Jacobian at the prior mean trajectory and,
    under ``lax.while_loop``, moves the expansion points towards the posterior mean trajectory of
    the last pass (propagated through that pass's linearisation, as :func:`moments`):

        points <- points + s (mean(points) - points).

    Each pass is a Gauss-Newton step on the negative log posterior of the trajectory,
    :func:`chain_objective`. ``step_rule="line-search"`` (the default) takes the largest s in
    {1, 1/2, 1/4, ...} that lowers that objective by the Armijo amount, and stops when the gap
    |mean(points) - points| meets ``tol * max(1, max |point|)``, when no step above that size
    lowers the objective (a stationary point at a ReLU kink), or after ``max_passes`` passes.
    ``step_rule="halving"`` is the earlier rule: s = 1 while the gap shrinks, then halved at every
    pass whatever the objective does (its end point can be far from any mode: docs/defaults.md).
    ``converged`` says whether the gap itself met the tolerance: then the posterior is the exact
    posterior of the prior linearised at its own mean trajectory.

    Args:
        prior: DiffusionPrior with L levels.
        evidence: Message on u = f_1(psi_1): G (d, d), b (d,).
        linearisation: "identity", "jacobian" or "iterated" (None: the prior's default).
        tol: tolerance on the change of the expansion points (relative to their scale).
        max_passes: upward passes at most (each O(L d_psi^3)).
        plan: the prior's :func:`upward_plan` for ``linearisation`` (built here when None and one
            applies): the "identity" rule on nonlinear links then conditions every level at once.
        step_rule: "line-search" or "halving" (None: :data:`DEFAULT_STEP_RULE`); "iterated" only.
        start: None, or an (L, d_psi) trajectory (sampling order; e.g. :func:`plug_in_mean` of
            the previous posterior's latents): the line search then also runs from it and keeps
            whichever end point has the lower :func:`chain_objective` ("iterated" only).
        method: deprecated name of ``linearisation``.
    Returns:
        UpwardPass(latents, linearisation, passes, converged).
    """
    linearisation = renamed_argument("method", method, "linearisation", linearisation, DEFAULT_LINEARISATION)
    linearisation = resolve_linearisation(prior, linearisation)
    tol, max_passes = check_pass_options(tol, max_passes)
    step_rule = check_step_rule(step_rule)
    one = jnp.ones((), jnp.int32)
    if plans_upward(prior, linearisation):
        plan = _upward_plan(prior) if plan is None else plan
        return UpwardPass(planned_latent_posteriors(plan, evidence), plan.linearisation, one, jnp.ones((), bool))
    if plan is not None:
        raise ValueError(
            f"plan: an UpwardPlan serves the 'identity' rule on nonlinear links, not {linearisation!r} here"
        )
    if linearisation != "iterated" or prior.is_linear:
        lin = linearise(prior, "jacobian" if linearisation == "iterated" else linearisation)
        return UpwardPass(latent_posteriors(prior, evidence, lin), lin, one, jnp.ones((), bool))

    if step_rule == "halving":
        return _iterate_halving(prior, evidence, tol, max_passes)
    prior_mean = chain_rows(prior).prior_mean
    cold, cold_points = _iterate_line_search(prior, evidence, tol, max_passes, prior_mean)
    if start is None:
        return cold
    start = jnp.asarray(start, prior_mean.dtype)
    if start.shape != prior_mean.shape:
        raise ValueError(f"start: expected a trajectory of shape {prior_mean.shape}, got {start.shape}")
    warm, warm_points = _iterate_line_search(prior, evidence, tol, max_passes, start)
    better = chain_objective(prior, evidence, warm_points) < chain_objective(prior, evidence, cold_points)
    return jax.tree.map(lambda w, c: jnp.where(better, w, c), warm, cold)


def plug_in_mean(prior: DiffusionPrior, latents: Conditionals) -> jax.Array:
    """The trajectory m_L = shift_L, m_l = gain_l f_{l+1}(m_{l+1}) + shift_l through the true links.

    For the latents of a converged iterated pass this is its expansion points (a Jacobian
    linearisation is exact at its own point): the ``start`` that resumes the pass where it ended.

    Args:
        prior: DiffusionPrior with L levels.
        latents: Conditionals (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi), sampling order.
    Returns:
        (L, d_psi) trajectory in sampling order.
    """
    top = latents.shift[0]
    if prior.links is None:
        return top[None]
    links = jax.tree.map(lambda x: jnp.flip(x, axis=0), prior.links)  # row i's link is f_{L-i+1}

    def step(parent, xs):
        gain, shift, link = xs
        m = gain @ link(parent).astype(parent.dtype) + shift
        return m, m

    _, below = jax.lax.scan(step, top, (latents.gain[1:], latents.shift[1:], links))
    return jnp.concatenate([top[None], below])


def _pass_at(prior, evidence, points):
    """One pass expanded at ``points``: (latents, linearisation, its mean trajectory, their gap)."""
    lin = linearise(prior, "iterated", points)
    latents = latent_posteriors(prior, evidence, lin)
    mean = _chain_moments(latents, lin)[0]
    return latents, lin, mean, _point_change(mean, points)


def _iterate_halving(prior, evidence, tol, max_passes):
    """The step-halving rule (``step_rule="halving"``): step 1 while the gap shrinks, then halved every pass."""
    one = jnp.ones((), jnp.int32)
    points = chain_rows(prior).prior_mean
    latents, lin, mean, gap = _pass_at(prior, evidence, points)
    dtype = points.dtype
    # carry: latents, lin, points, mean, gap, previous gap, step, passes
    init = (latents, lin, points, mean, gap, jnp.asarray(jnp.inf, dtype), jnp.ones((), dtype), one)

    def next_step(gap, prev, step):  # 1 while the gap shrinks; once it has not, halved every pass
        return jnp.where((gap < prev) & (step == 1.0), step, 0.5 * step)

    def cond(carry):
        *_, gap, prev, step, passes = carry
        return (next_step(gap, prev, step) * gap > tol) & (gap > tol) & (passes < max_passes)

    def body(carry):
        _, _, points, mean, gap, prev, step, passes = carry
        step = next_step(gap, prev, step)
        new_points = points + step * (mean - points)
        latents, lin, new_mean, new_gap = _pass_at(prior, evidence, new_points)
        return latents, lin, new_points, new_mean, new_gap, gap, step, passes + 1

    latents, lin, _, _, gap, _, _, passes = jax.lax.while_loop(cond, body, init)
    return UpwardPass(latents, lin, passes, gap <= tol)


#: Sufficient-decrease constant of the line search (Armijo): a step s along d is taken when the
#: objective falls by at least ``ARMIJO * s * (-slope)``.
ARMIJO = 1e-4


def chain_objective(prior: DiffusionPrior, evidence: Message, points: jax.Array) -> jax.Array:
    """Negative log posterior density of a latent trajectory, up to a constant (the iterated pass's objective).

    J(psi) = sum_rows 1/2 r_i^T Q_i r_i + 1/2 u^T G u - b^T u, with r_i = psi_i - f(psi_{i-1})
    (r_0 = psi_L), Q_i the rows' prior precisions and u = f_1(psi_1): the prior chain and the
    Gaussian evidence message on u. Each re-linearised pass is a Gauss-Newton step on J.

    Args:
        prior: DiffusionPrior with L levels.
        evidence: Message on u = f_1(psi_1): G (d, d), b (d,).
        points: (L, d_psi) trajectory in sampling order (row 0 = psi_L).
    Returns:
        () the objective.
    """
    precs = psd_inv(chain_rows(prior).cov)
    r, u = _residuals(prior, points)
    return 0.5 * jnp.einsum("li,lij,lj->", r, precs, r) + 0.5 * u @ evidence.G @ u - evidence.b @ u


def _residuals(prior, points):
    """(r (L, d_psi), u (d,)): each row minus its parent's link, and f_1(psi_1)."""
    rows = chain_rows(prior)
    if rows.parent_link is None:
        parent = jnp.zeros_like(points)
    else:
        links = jax.tree.map(lambda x: x[1:], rows.parent_link)
        below = jax.vmap(lambda link, p: link(p))(links, points[:-1]).astype(points.dtype)
        parent = jnp.concatenate([jnp.zeros_like(points[:1]), below])
    return points - parent, prior.link1(points[-1]).astype(points.dtype)


def _iterate_line_search(prior, evidence, tol, max_passes, points):
    """Gauss-Newton on :func:`chain_objective` with a backtracking (Armijo) line search.

    Each pass expanded at ``points`` gives the mean trajectory ``mean`` of the linearised
    posterior, the Gauss-Newton minimiser of the objective's local model. The step
    ``points + s (mean - points)`` takes the largest s in {1, 1/2, 1/4, ...} that lowers the true
    objective by the Armijo amount; the change of the objective is computed from differences of
    residuals, so float32 resolves it where the objective itself is large. Stops when the gap
    ``|mean - points|`` meets ``tol`` (converged: a self-consistent linearisation), when no step
    of size above ``tol`` lowers the objective (a stationary point at a ReLU kink, or round-off),
    or after ``max_passes`` passes.
    """
    precs = psd_inv(chain_rows(prior).cov)
    G, b = evidence

    def change(r0, u0, new_points):  # J(new) - J(old) from differences (old given by its residuals)
        r1, u1 = _residuals(prior, new_points)
        dr, du = r1 - r0, u1 - u0
        return 0.5 * jnp.einsum("li,lij,lj->", dr, precs, r1 + r0) + du @ (0.5 * G @ (u1 + u0) - b)

    def slope(points, direction):  # directional derivative of J at points along direction
        return jax.jvp(lambda p: chain_objective(prior, evidence, p), (points,), (direction,))[1]

    one = jnp.ones((), jnp.int32)
    latents, lin, mean, gap = _pass_at(prior, evidence, points)
    # carry: latents, lin, points, mean, gap, passes, stalled (no acceptable step)
    init = (latents, lin, points, mean, gap, one, jnp.zeros((), bool))

    def cond(carry):
        *_, gap, passes, stalled = carry
        return (gap > tol) & (passes < max_passes) & ~stalled

    def body(carry):
        latents, lin, points, mean, gap, passes, _ = carry
        direction = mean - points
        r0, u0 = _residuals(prior, points)
        descent = jnp.minimum(slope(points, direction), 0.0)

        def too_high(s):
            return change(r0, u0, points + s * direction) > ARMIJO * s * descent

        def shrink(s):  # halve while the step is still above tol and does not lower J enough
            return (s * gap > tol) & too_high(s)

        s = jax.lax.while_loop(shrink, lambda s: 0.5 * s, jnp.ones((), points.dtype))
        accepted = ~too_high(s) & (s * gap > tol)
        new_points = points + s * direction

        def advance():
            latents, lin, mean, gap = _pass_at(prior, evidence, new_points)
            return latents, lin, new_points, mean, gap

        def stay():
            return latents, lin, points, mean, gap

        latents, lin, points, mean, gap = jax.lax.cond(accepted, advance, stay)
        return latents, lin, points, mean, gap, passes + accepted.astype(jnp.int32), ~accepted

    latents, lin, points, _, gap, passes, _ = jax.lax.while_loop(cond, body, init)
    return UpwardPass(latents, lin, passes, gap <= tol), points


@partial(jax.jit, static_argnames=("linearisation", "tol", "max_passes"))
def fit_posterior(
    prior: DiffusionPrior,
    stats: ActionStats,
    linearisation: str | None = DEFAULT_LINEARISATION,
    tol: float = DEFAULT_TOL,
    max_passes: int = DEFAULT_MAX_PASSES,
) -> PosteriorFit:
    """The dTS posterior of ``prior`` given per-action statistics, with its final linearisation.

    Args:
        prior: DiffusionPrior with dim d, latent_dim d_psi, L levels.
        stats: ActionStats with G (K, d, d), b (K, d).
        linearisation, tol, max_passes: as :func:`upward_pass` (default: iterated to convergence).
    Returns:
        PosteriorFit(posterior, linearisation, passes, converged).
    """
    linearisation = resolve_linearisation(prior, linearisation)
    theta, per_action = action_posteriors(prior, stats)
    evidence = Message(per_action.G.sum(0), per_action.b.sum(0))
    up = upward_pass(prior, evidence, linearisation, tol, max_passes)
    return PosteriorFit(DTSPosterior(up.latents, theta), up.linearisation, up.passes, up.converged)


def posterior(
    prior: DiffusionPrior,
    stats: ActionStats,
    linearisation: str | None = DEFAULT_LINEARISATION,
    tol: float = DEFAULT_TOL,
    max_passes: int = DEFAULT_MAX_PASSES,
) -> DTSPosterior:
    """The dTS posterior of ``prior`` given per-action statistics (:func:`fit_posterior`'s posterior).

    Exact for affine links (any ``linearisation``) with Gaussian rewards. For nonlinear links
    ``linearisation`` picks the upward approximation: "iterated" (re-linearised to convergence,
    :func:`upward_pass`), "identity" (the paper) or "jacobian" (at the prior mean); None
    (default): :func:`default_linearisation`, "iterated" for MLP links and "identity" for DDPM links.

    Args:
        prior: DiffusionPrior with dim d, latent_dim d_psi, L levels.
        stats: ActionStats with G (K, d, d), b (K, d).
    Returns:
        DTSPosterior.
    """
    linearisation = resolve_linearisation(prior, linearisation)
    tol, max_passes = check_pass_options(tol, max_passes)
    return fit_posterior(prior, stats, linearisation, tol, max_passes).posterior


def prior_conditionals(prior: DiffusionPrior, num_actions: int = 1) -> DTSPosterior:
    """The prior written as a DTSPosterior (gain = I, shift = 0), for ``num_actions`` actions."""
    L, dp, d, K = prior.num_levels, prior.latent_dim, prior.dim, num_actions
    dtype = prior.cov1.dtype
    latents = Conditionals(
        jnp.broadcast_to(jnp.eye(dp, dtype=dtype), (L, dp, dp)),
        jnp.zeros((L, dp), dtype),
        psd_cholesky(chain_rows(prior).cov),
    )
    theta = Conditionals(
        jnp.broadcast_to(jnp.eye(d, dtype=dtype), (K, d, d)),
        jnp.zeros((K, d), dtype),
        jnp.broadcast_to(psd_cholesky(prior.cov1), (K, d, d)),
    )
    return DTSPosterior(latents, theta)


# ------------------------------------------------------------------------------ downward pass


def sample(
    key: jax.Array, prior: DiffusionPrior, post: DTSPosterior, sample_shape: tuple[int, ...] = ()
) -> tuple[jax.Array, jax.Array]:
    """Draw (psi, theta) from the chain of conditionals ``post`` (top latent first).

    Link parameters that are the same at every level (a DDPM's one network: all but the step
    embedding and the schedule's coefficients) are read from one copy when ``prior`` holds
    concrete arrays (:func:`shared_link_leaves`), the same numbers as the stacked copies.

    Args:
        key: PRNG key.
        post: DTSPosterior (from :func:`posterior`, or :func:`prior_conditionals` for the prior).
        sample_shape: leading shape of the draws.
    Returns:
        psi (*sample_shape, L, d_psi) in sampling order (psi[..., 0, :] = psi_L is the top,
        psi[..., -1, :] = psi_1), and theta (*sample_shape, K, d).
    """
    unroll = prior.num_levels <= UNROLL_MAX_LEVELS
    return _sample(key, prior, post, tuple(sample_shape), shared_link_leaves(prior), unroll)


@partial(jax.jit, static_argnames=("sample_shape", "shared", "unroll"))
def _sample(key, prior, post, sample_shape, shared, unroll):
    num = math.prod(sample_shape)
    keys = _prng.split(key, num)
    psi, theta = jax.vmap(lambda k: _sample_one(k, prior, post, shared, unroll))(keys)
    return psi.reshape(sample_shape + psi.shape[1:]), theta.reshape(sample_shape + theta.shape[1:])


#: Chains with at most this many levels are sampled by a fully unrolled loop (static slices of the
#: stacked links, no per-level loop overhead); deeper ones by a rolled ``lax.scan`` (compile time).
UNROLL_MAX_LEVELS = 128

#: (id, weak reference, result) of the stacked link leaves :func:`shared_link_leaves` has compared.
_SHARED_LEAVES: dict[int, tuple[weakref.ref, bool]] = {}


def _same_rows(x) -> bool:
    """Whether a concrete stacked leaf holds one value in every row (cached per array)."""
    if not _checks.is_concrete(x) or np.ndim(x) == 0 or np.shape(x)[0] < 2:
        return False
    key = id(x)
    hit = _SHARED_LEAVES.get(key)
    if hit is not None and hit[0]() is x:
        return hit[1]
    a = np.asarray(x)
    same = bool(np.array_equal(a, np.broadcast_to(a[:1], a.shape)))
    try:
        _SHARED_LEAVES[key] = (weakref.ref(x, lambda _, k=key: _SHARED_LEAVES.pop(k, None)), same)
    except TypeError:  # not weakly referable: compared again next time
        pass
    return same


def shared_link_leaves(prior: DiffusionPrior) -> tuple[bool, ...]:
    """For each leaf of ``prior.links``, whether every level holds the same value (static flags).

    A DDPM's links f_2..f_L are one network with a per-level step embedding: its weights are
    stacked L - 1 times. :func:`sample` reads a shared leaf from one copy (the stacked copies
    of a deep chain do not fit in a core's cache). Only concrete leaves are compared (a traced
    prior gives all False); equal bits count as the same.

    Args:
        prior: DiffusionPrior.
    Returns:
        One bool per leaf of ``prior.links`` (empty when L = 1).
    """
    if prior.links is None:
        return ()
    return tuple(_same_rows(x) for x in jax.tree.leaves(prior.links))


def row_links(prior: DiffusionPrior, shared: tuple[bool, ...] = ()):
    """(stacked, one_row) for a loop down rows 1..L-1: row i's link f_{L-i+1} is ``one_row(stacked[i - 1])``.

    ``stacked`` holds the links' per-level leaves in sampling order; the leaves flagged in
    ``shared`` (:func:`shared_link_leaves`) are left out of it and taken from their first level.
    """
    leaves, treedef = jax.tree.flatten(prior.links)
    shared = tuple(shared) or (False,) * len(leaves)
    stacked = [jnp.flip(x, axis=0) for x, s in zip(leaves, shared, strict=True) if not s]
    common = [x[0] for x, s in zip(leaves, shared, strict=True) if s]

    def one_row(row_leaves):
        rows, ones = iter(row_leaves), iter(common)
        return treedef.unflatten([next(ones) if s else next(rows) for s in shared])

    return stacked, one_row


def _sample_one(key, prior, post, shared=(), unroll=True):
    k_lat, k_theta = _prng.split(key)
    noise = _prng.normal(k_lat, (prior.num_levels, prior.latent_dim), prior.cov1.dtype)
    lat = post.latents
    z = jnp.einsum("lij,lj->li", lat.scale_tril, noise)
    top = lat.shift[0] + z[0]  # the top row's parent mean is 0
    if prior.links is None:
        psi = top[None]
    else:
        stacked, one_row = row_links(prior, shared)

        def step(psi_parent, xs):
            gain, shift, z_row, row = xs
            psi = small_matvec(gain, one_row(row)(psi_parent)) + shift + z_row
            return psi, psi

        if unroll:  # a Python loop: static slices of the rows, no scan (whose batching rule copies them)
            rows = [top]
            for i in range(1, prior.num_levels):
                rows.append(step(rows[-1], (lat.gain[i], lat.shift[i], z[i], [x[i - 1] for x in stacked]))[0])
            psi = jnp.stack(rows)
        else:
            _, below = jax.lax.scan(step, top, (lat.gain[1:], lat.shift[1:], z[1:], stacked))
            psi = jnp.concatenate([top[None], below])
    loc = conditional_loc(post.theta, prior.link1(psi[-1]))
    z = _prng.normal(k_theta, loc.shape, loc.dtype)
    theta = loc + jnp.einsum("kij,kj->ki", jnp.broadcast_to(post.theta.scale_tril, loc.shape + loc.shape[-1:]), z)
    return psi, theta


# -------------------------------------------------------------------------------- moments


class PosteriorMoments(NamedTuple):
    """Marginal posterior moments (exact for affine links; linearised otherwise).

    Attributes:
        psi_mean: (L, d_psi), psi_cov: (L, d_psi, d_psi), in sampling order like the ``psi``
            site: row 0 is the top latent psi_L, row L - 1 is psi_1.
        theta_mean: (K, d), theta_cov: (K, d, d).
        theta_loading: (K, d, d_psi), d E[theta_a | psi_1] / d psi_1 (gain_a W_1): the shared
            latent is the only source of correlation between actions.
    """

    psi_mean: Annotated[jax.Array, "L d_psi"]
    psi_cov: Annotated[jax.Array, "L d_psi d_psi"]
    theta_mean: Annotated[jax.Array, "K d"]
    theta_cov: Annotated[jax.Array, "K d d"]
    theta_loading: Annotated[jax.Array, "K d d_psi"]

    def theta_cross_cov(self, a: int, b: int) -> jax.Array:
        """Cov(theta_a, theta_b) for a != b: loading_a Cov(psi_1) loading_b^T, (d, d)."""
        return self.theta_loading[a] @ self.psi_cov[-1] @ self.theta_loading[b].T


def _chain_moments(latents: Conditionals, lin: Linearisation):
    """Means (L, d_psi) and covariances (L, d_psi, d_psi) of the latents, top row first."""

    def step(carry, xs):
        m_parent, c_parent = carry
        cond, w, c = xs  # row 0: w = 0, c = 0, so u = 0 at the top
        a = cond.gain @ w
        mean = conditional_loc(cond, w @ m_parent + c)
        cov = symmetrise(a @ c_parent @ a.T + cond.cov)
        return (mean, cov), (mean, cov)

    dp, dtype = latents.shift.shape[-1], latents.shift.dtype
    zero = (jnp.zeros(dp, dtype), jnp.zeros((dp, dp), dtype))
    _, (psi_mean, psi_cov) = jax.lax.scan(step, zero, (latents, lin.w, lin.c))
    return psi_mean, psi_cov


@jax.jit
def moments(prior: DiffusionPrior, post: DTSPosterior, lin: Linearisation | None = None) -> PosteriorMoments:
    """Propagate means and covariances down the chain through the links' linearisation.

    Exact for affine links. For nonlinear links pass the linearisation the posterior used
    (:attr:`PosteriorFit.linearisation`; default: the prior-mean Jacobian), and treat the result
    as an approximation; Monte Carlo with :func:`sample` uses the true links.
    """
    if lin is None:
        lin = linearise(prior, "jacobian")
    psi_mean, psi_cov = _chain_moments(post.latents, lin)
    loading = post.theta.gain @ lin.w1  # (K, d, d_psi)
    theta_mean = conditional_loc(post.theta, lin.w1 @ psi_mean[-1] + lin.c1)
    theta_cov = symmetrise(loading @ psi_cov[-1] @ jnp.swapaxes(loading, -1, -2) + post.theta.cov)
    return PosteriorMoments(psi_mean, psi_cov, theta_mean, theta_cov, loading)


def theta_prior_moments(
    prior: DiffusionPrior, key: jax.Array | None = None, num_samples: int = 20000
) -> tuple[jax.Array, jax.Array]:
    """Mean (d,) and covariance (d, d) of one theta_a under the prior.

    Exact for affine links (S_1 + sum_l B_l S_{l+1} B_l^T, through :func:`moments`);
    moment-matched from ``num_samples`` prior draws otherwise (``key`` required).
    """
    if prior.is_linear:
        mo = moments(prior, prior_conditionals(prior, 1))
        return mo.theta_mean[0], mo.theta_cov[0]
    if key is None:
        raise ValueError("key: a nonlinear prior's marginal is moment-matched from samples; pass a PRNG key")
    key = _checks.check_key(key)
    num_samples = _checks.check_positive_int("num_samples", num_samples)
    _, theta = sample(key, prior, prior_conditionals(prior, 1), (num_samples,))
    return sample_moments(theta[:, 0])


def collapse_linear(prior: DiffusionPrior) -> DiffusionPrior:
    """The one-level prior of (psi_1, theta) that an affine chain implies: exact, O(d^3) per update.

    With affine links, psi_1 is marginally N(m_1, C_1) (:func:`moments` of the prior), so

        psi_1' ~ N(0, C_1),   theta_a | psi_1' ~ N(W_1 psi_1' + (W_1 m_1 + c_1), S_1)

    with psi_1 = psi_1' + m_1 is the same joint law of (psi_1, theta_1..theta_K) as the L-level
    chain. Conditioning on data touches theta only through u = f_1(psi_1), which both priors
    share, so every theta posterior (and psi_1's) is the same; the levels above psi_1 are then
    only needed to report them (:func:`upward_pass` on the full prior with the same evidence).
    The dTS agent uses this for affine chains by default (``collapse=None``): a round costs the
    same at L = 40 as at L = 1 (docs/performance.md).

    Raises:
        ValueError: when a link is not affine (psi_1's marginal is then not Gaussian).
    """
    if not prior.is_linear:
        raise ValueError("prior: only an affine chain (DiffusionPrior.linear) collapses exactly to one level")
    psi_mean, psi_cov = _chain_moments(prior_conditionals(prior, 1).latents, linearise(prior, "jacobian"))
    m1, c1_cov = psi_mean[-1], symmetrise(psi_cov[-1])
    w1, c1 = prior.link1.weight, prior.link1.offset
    return DiffusionPrior.linear([w1], [prior.cov1, c1_cov], offsets=[w1 @ m1 + c1], dtype=prior.cov1.dtype)


#: The fixed key with which agents and guides moment-match a nonlinear prior's theta covariance
#: for the default GLM expansion point (:func:`theta_prior_scale_cov`); fixed so that an agent and
#: a guide on the same prior use the same ridge.
PRIOR_SCALE_KEY = 0


def theta_prior_scale_cov(prior: DiffusionPrior):
    """theta_a's prior covariance (d, d) for the GLM default (``likelihood.for_prior``).

    Exact for affine links, from 20000 draws with the fixed key :data:`PRIOR_SCALE_KEY` otherwise.
    """
    return theta_prior_moments(prior, jax.random.PRNGKey(PRIOR_SCALE_KEY))[1]
