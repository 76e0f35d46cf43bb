"""The joint-Gaussian oracle (docs/math.md section 3): dense and independent of the message passing.

For affine links, z = (psi_1, ..., psi_L, theta_1, ..., theta_K) is jointly Gaussian with a
tree-structured prior precision. Adding G_a to the theta_a block and b_a to the linear term
gives the posterior N(J^-1 h, J^-1). O((L d_psi + K d)^3): small problems only (tests and
the `exact_ts` agent).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core.likelihoods import ActionStats, empty_stats
from dts_ppl.core.linalg import psd_inv, psd_solve
from dts_ppl.core.prior import DiffusionPrior


class JointGaussian(NamedTuple):
    """N(mean, cov) over z = (psi_1..psi_L, theta_1..theta_K), flattened in that order.

    Attributes:
        mean: (L d_psi + K d,)   cov: (L d_psi + K d, L d_psi + K d)
        precision, linear: the natural parameters J, h.
    """

    mean: jax.Array
    cov: jax.Array
    precision: jax.Array
    linear: jax.Array


def _add_factor(J, h, child, parent, w, c, cov):
    """Add log N(x_child; W x_parent + c, cov) to (J, h); parent None means a root."""
    p = psd_inv(cov)
    J = J.at[child, child].add(p)
    h = h.at[child].add(p @ c)
    if parent is not None:
        J = J.at[child, parent].add(-p @ w)
        J = J.at[parent, child].add(-w.T @ p)
        J = J.at[parent, parent].add(w.T @ p @ w)
        h = h.at[parent].add(-w.T @ p @ c)
    return J, h


def joint_posterior(prior: DiffusionPrior, stats: ActionStats) -> JointGaussian:
    """Exact joint posterior of latents and action parameters for an affine-link prior."""
    if not prior.is_linear:
        raise ValueError("prior: the joint-Gaussian oracle needs affine links (DiffusionPrior.linear)")
    return _joint_posterior(prior, stats)


@jax.jit
def _joint_posterior(prior: DiffusionPrior, stats: ActionStats) -> JointGaussian:
    L, dp, d = prior.num_levels, prior.latent_dim, prior.dim
    K = stats.G.shape[0]
    n = L * dp + K * d
    dtype = prior.cov1.dtype
    J = jnp.zeros((n, n), dtype)
    h = jnp.zeros(n, dtype)

    def psi(level):
        return slice((level - 1) * dp, level * dp)

    def theta(a):
        return slice(L * dp + a * d, L * dp + (a + 1) * d)

    J, h = _add_factor(J, h, psi(L), None, None, jnp.zeros(dp, dtype), prior.covs[L - 1])
    for level in range(L, 1, -1):
        link = prior.link(level)
        J, h = _add_factor(J, h, psi(level - 1), psi(level), link.weight, link.offset, prior.covs[level - 2])
    for a in range(K):
        J, h = _add_factor(J, h, theta(a), psi(1), prior.link1.weight, prior.link1.offset, prior.cov1)
        J = J.at[theta(a), theta(a)].add(stats.G[a])
        h = h.at[theta(a)].add(stats.b[a])
    cov = psd_inv(J)
    return JointGaussian(psd_solve(J, h), cov, J, h)


@partial(jax.jit, static_argnames=("num_actions",))
def split(prior: DiffusionPrior, joint: JointGaussian, num_actions: int):
    """Marginal moments from a JointGaussian, shaped like PosteriorMoments' fields.

    Returns:
        dict with psi_mean (L, d_psi), psi_cov (L, d_psi, d_psi) (sampling order: row 0 is
        psi_L), theta_mean (K, d),
        theta_cov (K, d, d), and theta_cross (K, K, d, d) with theta_cross[a, b] = Cov(theta_a, theta_b).
    """
    L, dp, d = prior.num_levels, prior.latent_dim, prior.dim
    m, c = joint.mean, joint.cov
    # psi in sampling order, like the model's site: row 0 = psi_L
    psi_mean = m[: L * dp].reshape(L, dp)[::-1]
    psi_cov = jnp.stack([c[i * dp : (i + 1) * dp, i * dp : (i + 1) * dp] for i in range(L)])[::-1]
    off = L * dp
    theta_mean = m[off:].reshape(num_actions, d)
    tc = c[off:, off:].reshape(num_actions, d, num_actions, d).transpose(0, 2, 1, 3)
    theta_cov = tc[jnp.arange(num_actions), jnp.arange(num_actions)]
    return dict(psi_mean=psi_mean, psi_cov=psi_cov, theta_mean=theta_mean, theta_cov=theta_cov, theta_cross=tc)


def log_marginal_likelihood(prior: DiffusionPrior, X, A, y, scale, num_actions: int, offset=None):
    """Dense log p(y) for Gaussian rewards: y ~ N(H m + offset, H C H^T + scale^2 I).

    (m, C) is the prior joint of z = (psi_1..psi_L, theta_1..theta_K) (the oracle with no data)
    and row i of H picks x_i^T theta_{A_i}. O(n^3 + (L d_psi + K d)^3): the test reference for
    :func:`dts_ppl.core.evidence.log_marginal_likelihood`.

    Args:
        prior: affine-link DiffusionPrior.
        X: (n, d).   A: (n,) int in [0, K).   y: (n,).   scale: () noise sd.
        num_actions: K.   offset: (n,) or None.
    Returns:
        () log p(y).
    """
    if not prior.is_linear:
        raise ValueError("prior: the joint-Gaussian oracle needs affine links (DiffusionPrior.linear)")
    dtype = prior.cov1.dtype
    joint = _joint_posterior(prior, empty_stats(num_actions, prior.dim, dtype))
    n, d, off = X.shape[0], prior.dim, prior.num_levels * prior.latent_dim
    H = jnp.zeros((n, joint.mean.shape[0]), dtype)
    cols = off + A[:, None] * d + jnp.arange(d)[None, :]
    H = H.at[jnp.arange(n)[:, None], cols].set(X)
    mean = H @ joint.mean + (0.0 if offset is None else offset)
    cov = H @ joint.cov @ H.T + scale**2 * jnp.eye(n, dtype=dtype)
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, y - mean, lower=True)
    return -0.5 * z @ z - jnp.sum(jnp.log(jnp.diagonal(chol))) - 0.5 * n * jnp.log(2.0 * jnp.pi)
