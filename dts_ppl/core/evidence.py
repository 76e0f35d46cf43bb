"""The marginal likelihood log p(y | hyper-parameters) of a diffusion chain (docs/open_model.md section 3).

The dTS upward pass integrates the chain out level by level: conditioning a Gaussian
N(x; m, Q^-1) on evidence exp(-x^T G x / 2 + b^T x) leaves a message on m (the one
:func:`dts_ppl.core.inference.condition` computes) times the scalar

    b^T P^-1 b / 2 - (log|P| - log|Q|) / 2,      P = Q + G,

and pulling a message on u = W psi + c back to psi leaves b^T c - c^T G c / 2. Summing these
scalars up the chain, plus each action's likelihood constant (what the quadratic form in theta
leaves out), gives log p(y). Exact for affine links with Gaussian rewards (tested against the
joint-Gaussian oracle, :func:`dts_ppl.core.oracle.log_marginal_likelihood`); for nonlinear links
it is the evidence of the chain linearised where the posterior's upward pass ended, and for
GLM rewards that of each action's Gaussianised likelihood (a Laplace-type approximation).

Everything is differentiable (``jax.grad``) in the noise scale, the prior's covariances and
links, and the offsets; nonlinear chains hold the expansion points fixed (stop_gradient).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dts_ppl.core import inference as _inf
from dts_ppl.core.likelihoods import ActionStats, Gaussian
from dts_ppl.core.linalg import psd_cholesky, psd_inv, psd_solve
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood


class GaussianSummary(NamedTuple):
    """Scale-free sufficient statistics of Gaussian rewards, per action.

    With noise scale sigma the evidence is ActionStats(G / sigma^2, b / sigma^2), and the
    likelihood's constant is -yy / (2 sigma^2) - count log(sigma sqrt(2 pi)).

    Attributes:
        G: (K, d, d) sum of x x^T.   b: (K, d) sum of x y.
        yy: (K,) sum of y^2.   count: (K,) observations.
    """

    G: Annotated[jax.Array, "K d d"]
    b: Annotated[jax.Array, "K d"]
    yy: Annotated[jax.Array, "K"]
    count: Annotated[jax.Array, "K"]


def gaussian_summary(
    X: ArrayLike, A: ArrayLike, y: ArrayLike, num_actions: int, offset: ArrayLike | None = None
) -> GaussianSummary:
    """The GaussianSummary of (X, A, y), with y - offset as the rewards when ``offset`` is given.

    Args:
        X: (n, d).   A: (n,) int in [0, K).   y: (n,).   offset: (n,) or None.
    Returns:
        GaussianSummary with (K, d, d), (K, d), (K,), (K,) fields.
    """
    r = y if offset is None else y - offset
    unit = Gaussian(1.0)._statistics(X, A, r, num_actions)  # the Gaussian evidence formula at sigma = 1
    yy = jax.ops.segment_sum(r**2, A, num_segments=num_actions)
    count = jax.ops.segment_sum(jnp.ones_like(r), A, num_segments=num_actions)
    return GaussianSummary(unit.G, unit.b, yy, count)


def gaussian_stats(summary: GaussianSummary, scale) -> ActionStats:
    """The evidence ActionStats(G / sigma^2, b / sigma^2) of Gaussian rewards with noise scale ``scale``."""
    prec = 1.0 / scale**2
    return ActionStats(prec * summary.G, prec * summary.b)


def _log_normaliser(prior_prec, G, b):
    """b^T P^-1 b / 2 - (log|P| - log|Q|) / 2: what conditioning leaves besides the message."""
    chol_p, chol_q = psd_cholesky(prior_prec + G), psd_cholesky(prior_prec)
    logdet = lambda c: 2.0 * jnp.sum(jnp.log(jnp.diagonal(c, axis1=-2, axis2=-1)), -1)  # noqa: E731
    return 0.5 * b @ psd_solve(prior_prec + G, b) - 0.5 * (logdet(chol_p) - logdet(chol_q))


def _pull_back_constant(message: _inf.Message, c):
    """b^T c - c^T G c / 2: the scalar a message on u = W psi + c leaves when pulled back to psi."""
    return message.b @ c - 0.5 * c @ message.G @ c


def differentiable_linearisation(
    prior: DiffusionPrior,
    stats: ActionStats,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
    tol: float = _inf.DEFAULT_TOL,
    max_passes: int = _inf.DEFAULT_MAX_PASSES,
) -> _inf.Linearisation:
    """The links' linearisation of the posterior's final upward pass, differentiable in ``prior``.

    Affine links: exact (the links themselves). Nonlinear links: the expansion points of
    :func:`dts_ppl.core.inference.fit_posterior` held fixed (stop_gradient; the iterated pass
    runs in a while loop, which reverse-mode differentiation cannot cross).
    """
    method = _inf.resolve_linearisation(prior, linearisation)
    if prior.is_linear or method != "iterated":
        return _inf.linearise(prior, "jacobian" if method == "iterated" else method)
    fixed = jax.lax.stop_gradient((prior, stats))
    return jax.lax.stop_gradient(_inf.fit_posterior(*fixed, method, tol, max_passes).linearisation)


def chain_log_evidence(prior: DiffusionPrior, stats: ActionStats, lin: _inf.Linearisation):
    """log of the integral over (psi, theta) of p(psi, theta) prod_a exp(-theta_a^T G_a theta_a / 2 + b_a^T theta_a).

    Args:
        prior: DiffusionPrior.
        stats: ActionStats with G (K, d, d), b (K, d).
        lin: the links' linearisation (exact for affine links; :func:`differentiable_linearisation`).
    Returns:
        () the log integral (add the likelihood's constant for log p(y)).
    """
    prec1 = psd_inv(prior.cov1)
    _, per_action = jax.vmap(_inf.condition, in_axes=(None, 0, 0))(prec1, stats.G, stats.b)
    total = jnp.sum(jax.vmap(_log_normaliser, in_axes=(None, 0, 0))(prec1, stats.G, stats.b))
    evidence = _inf.Message(per_action.G.sum(0), per_action.b.sum(0))  # on u = f_1(psi_1)
    return total + latent_log_evidence(prior, evidence, lin)


def latent_log_evidence(prior: DiffusionPrior, evidence: _inf.Message, lin: _inf.Linearisation):
    """log of the integral over psi of p(psi) exp(-u^T G u / 2 + b^T u), u = f_1(psi_1) linearised.

    The chain's part of :func:`chain_log_evidence`, given the actions' summed message.

    Args:
        prior: DiffusionPrior.
        evidence: Message on u = f_1(psi_1): G (d, d), b (d,).
        lin: the links' linearisation.
    Returns:
        () the log integral.
    """
    total = _pull_back_constant(evidence, lin.c1)
    msg = _inf.pull_back(evidence, lin.w1, lin.c1)
    precs = psd_inv(_inf.chain_rows(prior).cov)

    def step(carry, xs):  # bottom row (psi_1) first; the top row has w = 0, c = 0
        msg, acc = carry
        prec, w, c = xs
        _, up = _inf.condition(prec, msg.G, msg.b)
        acc = acc + _log_normaliser(prec, msg.G, msg.b) + _pull_back_constant(up, c)
        return (_inf.pull_back(up, w, c), acc), None

    (_, total), _ = jax.lax.scan(step, (msg, total), (precs, lin.w, lin.c), reverse=True)
    return total


def gaussian_log_evidence(
    prior: DiffusionPrior,
    summary: GaussianSummary,
    scale,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
    tol: float = _inf.DEFAULT_TOL,
    max_passes: int = _inf.DEFAULT_MAX_PASSES,
):
    """log p(y | sigma, prior) for Gaussian rewards from their scale-free statistics.

    Exact for affine links; differentiable in ``scale`` and the prior's arrays.

    Args:
        prior: DiffusionPrior.
        summary: GaussianSummary (:func:`gaussian_summary`).
        scale: () the noise scale sigma.
    Returns:
        () log p(y).
    """
    stats = gaussian_stats(summary, scale)
    n = jnp.sum(summary.count)
    const = -0.5 * jnp.sum(summary.yy) / scale**2 - n * (jnp.log(scale) + 0.5 * jnp.log(2.0 * jnp.pi))
    lin = differentiable_linearisation(prior, stats, linearisation, tol, max_passes)
    return const + chain_log_evidence(prior, stats, lin)


def glm_log_evidence(
    prior: DiffusionPrior,
    likelihood,
    X,
    A,
    y,
    num_actions: int,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
    tol: float = _inf.DEFAULT_TOL,
    max_passes: int = _inf.DEFAULT_MAX_PASSES,
):
    """The Laplace-type log p(y | prior) of GLM rewards: each action's likelihood Gaussianised.

    The likelihood must have its expansion point resolved (``likelihood.for_prior(...)`` or an
    explicit ``ridge``). Action a's log-likelihood is replaced by its second-order expansion at
    the fit B_a, log p(y_a | B_a) - (theta - B_a)^T G_a (theta - B_a) / 2 + g_a^T (theta - B_a).

    Returns:
        () the approximate log p(y).
    """
    G, b, B = likelihood._laplace_batch(X, A, y, num_actions)
    stats = ActionStats(G, b)
    eta = jnp.sum(X * B[A], axis=-1)
    quad = jnp.einsum("ki,kij,kj->", B, G, B)
    const = jnp.sum(likelihood.log_prob(y, eta)) + 0.5 * quad - jnp.sum(b * B)
    lin = differentiable_linearisation(prior, stats, linearisation, tol, max_passes)
    return const + chain_log_evidence(prior, stats, lin)


def log_marginal_likelihood(
    prior: DiffusionPrior,
    likelihood: Likelihood,
    X: ArrayLike,
    A: ArrayLike | None,
    y: ArrayLike,
    num_actions: int | None = None,
    offset: ArrayLike | None = None,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
    tol: float = _inf.DEFAULT_TOL,
    max_passes: int = _inf.DEFAULT_MAX_PASSES,
) -> jax.Array:
    """log p(y | X, A, prior, likelihood, offset): exact for affine links with Gaussian rewards.

    Args:
        prior: DiffusionPrior.
        likelihood: Gaussian(scale) (exact), Bernoulli() or Poisson() (Laplace-type; the default
            expansion point is resolved for the prior as the guide and agents do).
        X: (n, d) contexts (features with a shared theta).
        A: (n,) int actions in [0, K); None for a shared theta (all rows action 0).
        y: (n,) rewards.
        num_actions: K (default: 1 when A is None, else max(A) + 1).
        offset: (n,) other terms of the linear predictor (Gaussian rewards only), or None.
        linearisation, tol, max_passes: the upward pass for nonlinear links (as
            :func:`dts_ppl.core.inference.upward_pass`).
    Returns:
        () log p(y), differentiable in the scale, the prior's arrays and the offset.
    """
    X = jnp.asarray(X)
    y = jnp.asarray(y, X.dtype)
    if A is None:
        A, num_actions = jnp.zeros(X.shape[0], jnp.int32), 1
    elif num_actions is None:
        num_actions = int(jnp.max(A)) + 1
    if getattr(likelihood, "name", None) == "gaussian":
        summary = gaussian_summary(X, A, y, num_actions, offset)
        return gaussian_log_evidence(prior, summary, likelihood.scale, linearisation, tol, max_passes)
    if offset is not None:
        raise ValueError("offset: supported with Gaussian rewards only (the GLM expansion has no offset term)")
    if not likelihood.is_exact:
        likelihood = likelihood.for_prior(_inf.theta_prior_scale_cov(jax.lax.stop_gradient(prior)))
    return glm_log_evidence(prior, likelihood, X, A, y, num_actions, linearisation, tol, max_passes)
