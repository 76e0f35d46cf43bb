"""The closed-form dTS posterior (MATH.md sections 3-4): pure functions over NamedTuples.

Every Gaussian conditional of the chain, prior and posterior alike, is stored as

    x | parent ~ N(gain @ u + shift, scale_tril scale_tril^T),   u = f(parent)

with u = 0 for the top latent. The prior is gain = I, shift = 0; conditioning on data changes
only these three arrays. The NumPyro model and guide (`dts_ppl.ppl.model`, `dts_ppl.ppl.guide`) and
the agents all sample through :func:`conditional_loc`, so there is one formula for each step.

Upward pass (data -> top): each level combines its prior precision Q with the evidence (G, b)
arriving from below (:func:`condition`), and passes up a message in the parent's mean space,
pulled back through the link's linearisation (:func:`pull_back`). No G^-1 is ever formed, so
actions with fewer than d pulls (singular G_a) and actions with no data are exact.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from dts_ppl.core.likelihoods import ActionStats
from dts_ppl.core.linalg import psd_cholesky, psd_inv, symmetrise
from dts_ppl.core.links import check_linearisation
from dts_ppl.core.prior import DiffusionPrior


class Conditionals(NamedTuple):
    """A stack of Gaussian conditionals x_i | u_i ~ N(gain_i u_i + shift_i, scale_tril_i scale_tril_i^T).

    Attributes:
        gain: (..., n, n)
        shift: (..., n)
        scale_tril: (..., n, n) lower Cholesky factor of the conditional covariance.
    """

    gain: jax.Array
    shift: jax.Array
    scale_tril: jax.Array

    @property
    def cov(self):
        return self.scale_tril @ jnp.swapaxes(self.scale_tril, -1, -2)


class DTSPosterior(NamedTuple):
    """The dTS posterior of a diffusion prior, as conditionals along the chain.

    Attributes:
        latents: level l at index l - 1, psi_l | psi_{l+1} with u = f_{l+1}(psi_{l+1}) (u = 0
            at the top); shapes (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi).
        theta: theta_a | psi_1 with u = f_1(psi_1); shapes (K, d, d), (K, d), (K, d, d).
    """

    latents: Conditionals
    theta: Conditionals


class Linearisation(NamedTuple):
    """Affine stand-ins (W_l, c_l) for the links in the upward messages.

    Attributes:
        w1: (d, d_psi), c1: (d,) for f_1.
        w: (L - 1, d_psi, d_psi), c: (L - 1, d_psi) for f_2..f_L (None when L = 1).
    """

    w1: jax.Array
    c1: jax.Array
    w: jax.Array | None
    c: jax.Array | None


class Message(NamedTuple):
    """Upward message exp(-1/2 x^T G x + x^T b) on one variable: G (n, n), b (n,)."""

    G: jax.Array
    b: jax.Array


# ----------------------------------------------------------------------------------- one step


def condition(prior_prec, G, b):
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

    Args:
        prior_prec: (n, n) Q.   G: (n, n).   b: (n,).
    Returns:
        (Conditionals with (n, n), (n,), (n, n) fields, Message on m).
    """
    R = psd_cholesky(prior_prec)
    Rinv = solve_triangular(R, jnp.eye(R.shape[-1], dtype=R.dtype), lower=True)
    lam, V = jnp.linalg.eigh(symmetrise(Rinv @ G @ Rinv.T))
    keep = lam > evidence_cutoff(lam)
    lam = jnp.where(keep, lam, 0.0)
    inv = 1.0 / (1.0 + lam)  # eigenvalues of the whitened P^-1, in (0, 1]
    A = Rinv.T @ V  # P^-1 = A diag(inv) A^T
    coef = jnp.where(keep, V.T @ (Rinv @ b), 0.0)  # b in the whitened eigenbasis, off-range part dropped
    cov = symmetrise((A * inv) @ A.T)
    shift = A @ (inv * coef)
    gain = (A * inv) @ (V.T @ R.T)  # P^-1 Q
    RV = R @ V
    up = Message(symmetrise((RV * (lam * inv)) @ RV.T), RV @ (inv * coef))
    return Conditionals(gain, shift, psd_cholesky(cov)), up


def evidence_cutoff(lam):
    """Eigenvalues of the whitened evidence below this are numerically zero: 64 eps max(lam)."""
    return 64.0 * jnp.finfo(lam.dtype).eps * jnp.maximum(jnp.max(lam), 0.0)


def pull_back(message: Message, w, c) -> Message:
    """Message on u = W psi + c -> message on psi: (W^T G W, W^T (b - G c))."""
    return Message(symmetrise(w.T @ message.G @ w), w.T @ (message.b - message.G @ c))


def conditional_loc(cond: Conditionals, u):
    """Mean gain @ u + shift of a conditional (any leading batch axes on cond broadcast)."""
    return jnp.einsum("...ij,...j->...i", cond.gain, u) + cond.shift


# ------------------------------------------------------------------------------ linearisation


def linearise(prior: DiffusionPrior, method: str = "identity", points=None) -> Linearisation:
    """Affine stand-ins for the links. Exact (W_l, c_l) for affine links, whatever the method.

    Args:
        prior: the diffusion prior.
        method: "identity" (the paper), "jacobian" or "iterated" (MATH.md section 4).
        points: (L, d_psi) latent trajectory to linearise at, in LEVEL order (row l - 1 =
            psi_l, the reverse of the sampling order of draws and moments); defaults to the
            prior mean trajectory.
    """
    check_linearisation(method)
    if points is None:
        points = prior.prior_mean_trajectory()
    w1, c1 = prior.link1.linearise(points[0], method)
    if prior.links is None:
        return Linearisation(w1, c1, None, None)
    w, c = jax.vmap(lambda link, p: link.linearise(p, method))(prior.links, points[1:])
    return Linearisation(w1, c1, w, c)


def _pad_top(tree, num_levels):
    """Stacked per-link arrays for f_2..f_L, padded to length L (the top slot is unused)."""
    if tree is None:
        return None
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.zeros_like(x[:1])]), tree)


def _is_top(num_levels):
    return jnp.arange(num_levels) == num_levels - 1


# ------------------------------------------------------------------------------- upward pass


def action_posteriors(prior: DiffusionPrior, stats: ActionStats):
    """theta_a | psi_1 for every action and the messages they send to u = f_1(psi_1).

    Returns:
        (Conditionals with (K, d, d), (K, d), (K, d, d) fields,
         Message with per-action G (K, d, d), b (K, d): Lambda_a and beta_a of MATH.md).
    The agents keep sum_a Lambda_a and sum_a beta_a as running sums.
    """
    prec1 = psd_inv(prior.cov1)
    return jax.vmap(condition, in_axes=(None, 0, 0))(prec1, stats.G, stats.b)


def latent_posteriors(prior: DiffusionPrior, evidence: Message, lin: Linearisation) -> Conditionals:
    """psi_l | psi_{l+1} for l = 1..L given the summed action messages on u = f_1(psi_1).

    Args:
        evidence: sum over actions of the messages from :func:`action_posteriors`:
            G (d, d), b (d,) (Ghat_1 and bhat_1 of MATH.md).
        lin: linearisation of the links (:func:`linearise`).
    Returns:
        Conditionals with (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi) fields.
    """
    msg = pull_back(evidence, lin.w1, lin.c1)
    precs = psd_inv(prior.covs)  # Q_l = S_{l+1}^-1 for psi_l
    wc = _pad_top(None if lin.w is None else (lin.w, lin.c), prior.num_levels)

    def step(msg, xs):
        prec, parent_lin = xs
        cond, up = condition(prec, msg.G, msg.b)
        if parent_lin is not None:
            up = pull_back(up, *parent_lin)
        return up, cond

    _, conds = jax.lax.scan(step, msg, (precs, wc))
    return conds


@partial(jax.jit, static_argnames=("linearisation", "num_iterations"))
def posterior(
    prior: DiffusionPrior,
    stats: ActionStats,
    linearisation: str = "identity",
    num_iterations: int = 3,
) -> DTSPosterior:
    """The dTS posterior of ``prior`` given per-action statistics.

    Exact for affine links (any ``linearisation``) with Gaussian rewards. For nonlinear links
    ``linearisation`` picks the upward approximation: "identity" (the paper), "jacobian" (at
    the prior mean trajectory) or "iterated" (``num_iterations`` passes, each re-linearising
    at the previous pass's posterior mean trajectory).

    Args:
        prior: DiffusionPrior with dim d, latent_dim d_psi, L levels.
        stats: ActionStats with G (K, d, d), b (K, d).
    Returns:
        DTSPosterior.
    """
    check_linearisation(linearisation)
    theta, per_action = action_posteriors(prior, stats)
    evidence = Message(per_action.G.sum(0), per_action.b.sum(0))
    lin = linearise(prior, "jacobian" if linearisation == "iterated" else linearisation)
    latents = latent_posteriors(prior, evidence, lin)
    if linearisation == "iterated" and not prior.is_linear:
        for _ in range(num_iterations - 1):
            points = moments(prior, DTSPosterior(latents, theta), lin).psi_mean[::-1]  # level order
            lin = linearise(prior, "iterated", points)
            latents = latent_posteriors(prior, evidence, lin)
    return DTSPosterior(latents, theta)


def prior_conditionals(prior: DiffusionPrior, num_actions: int = 1) -> DTSPosterior:
    """The prior written as a DTSPosterior (gain = I, shift = 0), for ``num_actions`` actions."""
    L, dp, d, K = prior.num_levels, prior.latent_dim, prior.dim, num_actions
    dtype = prior.cov1.dtype
    latents = Conditionals(
        jnp.broadcast_to(jnp.eye(dp, dtype=dtype), (L, dp, dp)),
        jnp.zeros((L, dp), dtype),
        psd_cholesky(prior.covs),
    )
    theta = Conditionals(
        jnp.broadcast_to(jnp.eye(d, dtype=dtype), (K, d, d)),
        jnp.zeros((K, d), dtype),
        jnp.broadcast_to(psd_cholesky(prior.cov1), (K, d, d)),
    )
    return DTSPosterior(latents, theta)


# ------------------------------------------------------------------------------ downward pass


def parent_means(prior: DiffusionPrior, psi_parent, is_top, parent_link):
    """u = f_{l+1}(psi_{l+1}) for one level of the chain, 0 at the top (used inside scans)."""
    zero = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    if parent_link is None:
        return zero
    return jnp.where(is_top, zero, parent_link(psi_parent))


def chain_scan_inputs(prior: DiffusionPrior, latents: Conditionals):
    """xs for a forward scan down the chain, top level first: (conditional, is_top, parent link).

    The scan is forward over top-down inputs rather than ``reverse=True`` over level-ordered
    ones because ``numpyro.contrib.control_flow.scan`` (0.22) substitutes ``value[i]`` with a
    forward counter even when ``reverse=True``, which would score the wrong rows under
    ``substitute`` / ``log_density`` / NUTS. Stacked draws therefore come out in sampling
    order: row 0 is psi_L, row L - 1 is psi_1.
    """
    xs = (latents, _is_top(prior.num_levels), _pad_top(prior.links, prior.num_levels))
    return jax.tree.map(lambda x: x[::-1], xs)


@partial(jax.jit, static_argnames=("sample_shape",))
def sample(key, prior: DiffusionPrior, post: DTSPosterior, sample_shape=()):
    """Draw (psi, theta) from the chain of conditionals ``post`` (top latent first).

    Args:
        key: PRNG key.
        post: DTSPosterior (from :func:`posterior`, or :func:`prior_conditionals` for the prior).
        sample_shape: leading shape of the draws.
    Returns:
        psi (*sample_shape, L, d_psi) in sampling order (psi[..., 0, :] = psi_L is the top,
        psi[..., -1, :] = psi_1), and theta (*sample_shape, K, d).
    """
    num = math.prod(sample_shape)
    keys = jax.random.split(key, num)
    psi, theta = jax.vmap(lambda k: _sample_one(k, prior, post))(keys)
    shape = tuple(sample_shape)
    return psi.reshape(shape + psi.shape[1:]), theta.reshape(shape + theta.shape[1:])


def _sample_one(key, prior, post):
    k_lat, k_theta = jax.random.split(key)
    noise = jax.random.normal(k_lat, (prior.num_levels, prior.latent_dim), prior.cov1.dtype)

    def step(psi_parent, xs):
        (cond, is_top, link), z = xs
        loc = conditional_loc(cond, parent_means(prior, psi_parent, is_top, link))
        psi = loc + cond.scale_tril @ z
        return psi, psi

    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    _, psi = jax.lax.scan(step, top, (chain_scan_inputs(prior, post.latents), noise))
    loc = conditional_loc(post.theta, prior.link1(psi[-1]))
    z = jax.random.normal(k_theta, loc.shape, loc.dtype)
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

    psi_mean: jax.Array
    psi_cov: jax.Array
    theta_mean: jax.Array
    theta_cov: jax.Array
    theta_loading: jax.Array

    def theta_cross_cov(self, a: int, b: int):
        """Cov(theta_a, theta_b) for a != b: loading_a Cov(psi_1) loading_b^T, (d, d)."""
        return self.theta_loading[a] @ self.psi_cov[-1] @ self.theta_loading[b].T


@jax.jit
def moments(prior: DiffusionPrior, post: DTSPosterior, lin: Linearisation | None = None) -> PosteriorMoments:
    """Propagate means and covariances down the chain through the links' linearisation.

    Exact for affine links. For nonlinear links pass the linearisation the posterior used
    (default: the prior-mean Jacobian), and treat the result as an approximation; Monte Carlo
    with :func:`sample` uses the true links.
    """
    if lin is None:
        lin = linearise(prior, "jacobian")
    wc = _pad_top(None if lin.w is None else (lin.w, lin.c), prior.num_levels)
    dp = prior.latent_dim

    def step(carry, xs):
        m_parent, c_parent = carry
        cond, is_top, parent_lin = xs
        if parent_lin is None:
            a, u = jnp.zeros((dp, dp), m_parent.dtype), jnp.zeros(dp, m_parent.dtype)
        else:
            w, c = parent_lin
            a = jnp.where(is_top, 0.0, cond.gain @ w)
            u = jnp.where(is_top, 0.0, w @ m_parent + c)
        mean = conditional_loc(cond, u)
        cov = symmetrise(a @ c_parent @ a.T + cond.cov)
        return (mean, cov), (mean, cov)

    zero = (jnp.zeros(dp, prior.cov1.dtype), jnp.zeros((dp, dp), prior.cov1.dtype))
    xs = jax.tree.map(lambda x: x[::-1], (post.latents, _is_top(prior.num_levels), wc))  # top first
    _, (psi_mean, psi_cov) = jax.lax.scan(step, zero, xs)
    loading = post.theta.gain @ lin.w1  # (K, d, d_psi)
    theta_mean = conditional_loc(post.theta, lin.w1 @ psi_mean[-1] + lin.c1)
    theta_cov = symmetrise(loading @ psi_cov[-1] @ jnp.swapaxes(loading, -1, -2) + post.theta.cov)
    return PosteriorMoments(psi_mean, psi_cov, theta_mean, theta_cov, loading)
