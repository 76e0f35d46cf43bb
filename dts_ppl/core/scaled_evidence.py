"""The evidence of Gaussian rewards as a function of the noise scale and S_1's scale (docs/open_model.md).

With S_1 = t S_1^0 (t = (s / s_0)^2, the shape of S_1^0 kept) and noise scale sigma, factor
(S_1^0)^-1 = R_0 R_0^T once and each action's scale-free statistics (G_a, b_a) once,

    R_0^-1 G_a R_0^-T = V_a diag(mu_a) V_a^T,      c_a = V_a^T R_0^-1 b_a.

The prior-whitened evidence that :func:`dts_ppl.core.inference.condition` decomposes at (sigma, t)
is then V_a diag(rho mu_a) V_a^T with rho = t / sigma^2: the same eigenvectors for every (sigma, t).
Everything conditioning computes is diagonal in that basis,

    log normaliser_a = t / (2 sigma^4) sum_i c_ai^2 / (1 + rho mu_ai) - sum_i log(1 + rho mu_ai) / 2,
    Lambda_a = R_0 V_a diag(rho mu_a / (1 + rho mu_a)) V_a^T R_0^T / t,
    beta_a   = R_0 V_a (c_a / (sigma^2 (1 + rho mu_a))),

so after one O(K d^3) decomposition (:func:`action_eigen`) the log evidence and its derivatives
in (sigma, t) cost O(K d^2) for the actions plus the chain above psi_1 (O(L d_psi^3)), instead of
K Cholesky factorisations and eigendecompositions per evaluation; the actions' conditionals at
any (sigma, t) follow from the same factors by matrix products (:func:`scaled_posterior`).
Exact: the algebra of :func:`dts_ppl.core.evidence.gaussian_log_evidence` and of ``condition``
written in that basis (tests/core/test_scaled_evidence.py compares both).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from dts_ppl.core import evidence as _ev
from dts_ppl.core import inference as _inf
from dts_ppl.core.likelihoods import ActionStats
from dts_ppl.core.linalg import eigh, psd_cholesky, psd_inv, symmetrise
from dts_ppl.core.prior import DiffusionPrior

__all__ = [
    "ActionEigen",
    "LatentMarginal",
    "ScaledPosterior",
    "action_eigen",
    "fixed_linearisation",
    "latent_marginal",
    "marginal_log_evidence",
    "scaled_log_evidence",
    "scaled_posterior",
]


class ActionEigen(NamedTuple):
    """A GaussianSummary in the frame whitened by S_1^0 (M groups, d features).

    Attributes:
        vecs: (M, d, d) V_a, eigenvectors of R_0^-1 G_a R_0^-T.
        vals: (M, d) mu_a, its eigenvalues (those below round-off set to 0, as ``condition`` does).
        proj: (M, d) c_a = V_a^T R_0^-1 b_a (0 along the zeroed directions).
        chol: (d, d) R_0, the lower Cholesky factor of (S_1^0)^-1.
        chol_inv: (d, d) R_0^-1.
        yy: () the sum of squared rewards.
        count: () the number of rewards.
        summary: the GaussianSummary it was built from.
    """

    vecs: Annotated[jax.Array, "M d d"]
    vals: Annotated[jax.Array, "M d"]
    proj: Annotated[jax.Array, "M d"]
    chol: Annotated[jax.Array, "d d"]
    chol_inv: Annotated[jax.Array, "d d"]
    yy: Annotated[jax.Array, ""]
    count: Annotated[jax.Array, ""]
    summary: _ev.GaussianSummary


class ScaledPosterior(NamedTuple):
    """Every group's theta_a | u ~ N(gain_a u + shift_a, cov_a) at one (sigma, t), and their summed message.

    Attributes:
        stats: ActionStats(G / sigma^2, b / sigma^2) with (M, d, d), (M, d) fields.
        gain: (M, d, d) P_a^-1 Q.   shift: (M, d) P_a^-1 b_a / sigma^2.   cov: (M, d, d) P_a^-1.
        evidence: Message on u = f_1(psi_1): sum_a Lambda_a (d, d), sum_a beta_a (d,).
    """

    stats: ActionStats
    gain: Annotated[jax.Array, "M d d"]
    shift: Annotated[jax.Array, "M d"]
    cov: Annotated[jax.Array, "M d d"]
    evidence: _inf.Message


def action_eigen(cov1: jax.Array, summary: _ev.GaussianSummary) -> ActionEigen:
    """Whiten ``summary`` by S_1^0 = ``cov1`` and decompose every group's G once.

    Args:
        cov1: (d, d) S_1^0, the action covariance at t = 1.
        summary: GaussianSummary with G (M, d, d), b (M, d), yy (M,), count (M,).
    Returns:
        ActionEigen.
    """
    white = _inf.whiten(psd_inv(cov1))
    R, Rinv = white
    H = symmetrise(jnp.einsum("ij,ajk,lk->ail", Rinv, summary.G, Rinv))
    mu, V = eigh(H)
    keep = mu > jax.vmap(_inf.evidence_cutoff)(mu)[:, None]
    proj = jnp.where(keep, jnp.einsum("aji,jk,ak->ai", V, Rinv, summary.b), 0.0)
    return ActionEigen(V, jnp.where(keep, mu, 0.0), proj, R, Rinv, jnp.sum(summary.yy), jnp.sum(summary.count), summary)


def _action_terms(eig: ActionEigen, sigma, t):
    """(log-likelihood constant + sum of the actions' log normalisers, summed Message on u)."""
    var = sigma**2
    lam = (t / var) * eig.vals
    inv = 1.0 / (1.0 + lam)
    quad = (t / var**2) * jnp.sum(eig.proj**2 * inv)
    logdet = jnp.sum(jnp.log1p(lam))
    const = -0.5 * eig.yy / var - eig.count * (jnp.log(sigma) + 0.5 * jnp.log(2.0 * jnp.pi))
    W = jnp.einsum("aij,aj,akj->ik", eig.vecs, lam * inv, eig.vecs)
    G = symmetrise(eig.chol @ W @ eig.chol.T) / t
    b = eig.chol @ jnp.einsum("aij,aj->i", eig.vecs, eig.proj * inv) / var
    return const + 0.5 * quad - 0.5 * logdet, _inf.Message(G, b)


class LatentMarginal(NamedTuple):
    """The prior law of u = f_1(psi_1) under a fixed linearisation of the chain: N(mean, factor factor^T).

    Attributes:
        mean: (d,).   factor: (d, d_psi) W_1 chol(Cov psi_1).
    """

    mean: Annotated[jax.Array, "d"]
    factor: Annotated[jax.Array, "d d_psi"]


def fixed_linearisation(prior: DiffusionPrior, linearisation: str | None = _inf.DEFAULT_LINEARISATION) -> bool:
    """Whether the chain's linearisation in the evidence is data-free (affine links, "identity", "jacobian")."""
    return prior.is_linear or _inf.resolve_linearisation(prior, linearisation) != "iterated"


def latent_marginal(prior: DiffusionPrior, linearisation: str | None = _inf.DEFAULT_LINEARISATION) -> LatentMarginal:
    """u = f_1(psi_1)'s prior law through the chain's data-free linearisation (:func:`fixed_linearisation`).

    Args:
        prior: DiffusionPrior.
        linearisation: the rule (affine links: exact whatever it is).
    Returns:
        LatentMarginal.
    """
    if not fixed_linearisation(prior, linearisation):
        raise ValueError("linearisation: 'iterated' expands nonlinear links at the posterior; no fixed marginal")
    method = _inf.resolve_linearisation(prior, linearisation)
    lin = _inf.linearise(prior, "jacobian" if method == "iterated" else method)
    mean, cov = _inf._chain_moments(_inf.prior_conditionals(prior, 1).latents, lin)
    return LatentMarginal(lin.w1 @ mean[-1] + lin.c1, lin.w1 @ psd_cholesky(cov[-1]))


def marginal_log_evidence(marginal: LatentMarginal, evidence: _inf.Message) -> jax.Array:
    """log of the integral of N(u; m, F F^T) exp(-u^T G u / 2 + b^T u) du: one d_psi x d_psi Cholesky.

    With u = m + F z, z ~ N(0, I): b^T m - m^T G m / 2 - log|I + F^T G F| / 2 + s^T (I + F^T G F)^-1 s / 2,
    s = F^T (b - G m). Equals :func:`dts_ppl.core.evidence.latent_log_evidence` for the linearised chain.

    Args:
        marginal: LatentMarginal.   evidence: Message on u: G (d, d), b (d,).
    Returns:
        () the log integral.
    """
    m, F = marginal
    G, b = evidence
    r = b - G @ m
    s = F.T @ r
    chol = psd_cholesky(jnp.eye(F.shape[1], dtype=F.dtype) + F.T @ G @ F)
    z = solve_triangular(chol, s, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return b @ m - 0.5 * m @ G @ m - 0.5 * logdet + 0.5 * z @ z


def _latent_term(prior, evidence, linearisation, tol, max_passes, marginal):
    """The chain's log evidence given the actions' summed message (fixed linearisation: its marginal)."""
    if fixed_linearisation(prior, linearisation):
        marginal = latent_marginal(prior, linearisation) if marginal is None else marginal
        return marginal_log_evidence(marginal, evidence)
    fixed = jax.lax.stop_gradient((prior, evidence))  # as evidence.differentiable_linearisation
    lin = jax.lax.stop_gradient(_inf.upward_pass(*fixed, "iterated", tol, max_passes).linearisation)
    return _ev.latent_log_evidence(prior, evidence, lin)


def scaled_log_evidence(
    prior: DiffusionPrior,
    eig: ActionEigen,
    noise_scale,
    cov_ratio,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
    tol: float = _inf.DEFAULT_TOL,
    max_passes: int = _inf.DEFAULT_MAX_PASSES,
    marginal: LatentMarginal | None = None,
) -> jax.Array:
    """log p(y | sigma, S_1 = t S_1^0, the prior's chain above psi_1), from :func:`action_eigen`'s factors.

    Equals :func:`dts_ppl.core.evidence.gaussian_log_evidence` of ``prior`` with cov1 = t S_1^0
    (S_1^0 the matrix ``eig`` was built with; ``prior.cov1`` is not read) to round-off.

    Args:
        prior: DiffusionPrior (its levels and links; nonlinear "iterated" links are expanded
            where the posterior's pass ends, held fixed under differentiation).
        eig: ActionEigen.
        noise_scale: () sigma.
        cov_ratio: () t, S_1 / S_1^0.
        linearisation, tol, max_passes: the upward pass for nonlinear links.
        marginal: :func:`latent_marginal` of ``prior`` (computed here when None) where the
            linearisation is data-free: the chain then costs one d_psi x d_psi Cholesky.
    Returns:
        () log p(y), differentiable in ``noise_scale`` and ``cov_ratio`` (and the prior's latent
        arrays when ``marginal`` is None).
    """
    actions, evidence = _action_terms(eig, noise_scale, cov_ratio)
    return actions + _latent_term(prior, evidence, linearisation, tol, max_passes, marginal)


def scaled_posterior(eig: ActionEigen, noise_scale, cov_ratio) -> ScaledPosterior:
    """Every group's conditional theta_a | u and its message at (sigma, t), as ``condition`` gives them.

    Args:
        eig: ActionEigen.   noise_scale: () sigma.   cov_ratio: () t.
    Returns:
        ScaledPosterior.
    """
    var = noise_scale**2
    lam = (cov_ratio / var) * eig.vals
    inv = 1.0 / (1.0 + lam)
    root = jnp.sqrt(cov_ratio)
    A = root * jnp.einsum("ji,ajk->aik", eig.chol_inv, eig.vecs)  # R^-T V_a, R = R_0 / sqrt(t)
    Ainv = A * inv[:, None, :]
    cov = symmetrise(Ainv @ jnp.swapaxes(A, -1, -2))
    shift = jnp.einsum("aij,aj->ai", Ainv, (root / var) * eig.proj)
    gain = Ainv @ jnp.einsum("aji,kj->aik", eig.vecs, eig.chol) / root  # P^-1 Q = A diag(inv) V^T R^T
    _, evidence = _action_terms(eig, noise_scale, cov_ratio)
    stats = _ev.gaussian_stats(eig.summary, noise_scale)
    return ScaledPosterior(stats, gain, shift, cov, evidence)
