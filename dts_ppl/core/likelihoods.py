"""Reward likelihoods and their per-action statistics (MATH.md section 2).

Each likelihood gives the reward distribution given the linear predictor eta = x^T theta,
its mean function g, and ``statistics(X, A, y, num_actions) -> ActionStats``: the precision
form (G_a, b_a) of each action's evidence about theta_a.

- Gaussian: exact, G_a = sigma^-2 sum x x^T, b_a = sigma^-2 sum x y.
- Bernoulli (logistic) and Poisson (log link): the likelihood of each action is replaced by
  its second-order expansion at a ridge-regularised fit B_a (approximation (i) of the paper),
  G_a = sum gdot(x^T B_a) x x^T and b_a = G_a B_a - grad NLL(B_a). B_a comes from damped Newton
  (IRLS) on NLL + ridge/2 |theta|^2. The ridge keeps B_a finite for actions with fewer than d
  pulls or separable labels; the gradient term keeps the expansion exact to second order at
  B_a (at the plain MLE it is zero and b_a = G_a B_a, the paper's form). The default ridge 1e-3
  is close to the paper's MLE; ``likelihood.regularised_for(theta_cov)`` sets it to the prior's
  precision scale, which expands around a MAP estimate and measured far lower regret on the
  paper's logistic bandits (README). No data gives G_a = 0, b_a = 0. The batch statistics and
  the agents' incremental updates call the same routine, :meth:`_GLM.laplace`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks


class ActionStats(NamedTuple):
    """Precision-form evidence of each action's data about its parameter.

    Attributes:
        G: (K, d, d) precisions (Hessians of the negative log-likelihood).
        b: (K, d) linear terms, b_a = G_a B_a.
    """

    G: jax.Array
    b: jax.Array


def _outer_sums(X, A, weights, num_actions):
    outer = weights[:, None, None] * X[:, :, None] * X[:, None, :]
    return jax.ops.segment_sum(outer, A, num_segments=num_actions)


@partial(jax.jit, static_argnums=(0, 4))
def _jit_statistics(likelihood, X, A, y, num_actions):
    return likelihood._statistics(X, A, y, num_actions)


def empty_stats(num_actions: int, dim: int, dtype=None) -> ActionStats:
    dtype = dtype or jnp.result_type(float)
    return ActionStats(jnp.zeros((num_actions, dim, dim), dtype), jnp.zeros((num_actions, dim), dtype))


@dataclass(frozen=True)
class Gaussian:
    """Gaussian rewards y ~ N(x^T theta, scale^2); the dTS posterior is exact."""

    scale: float = 1.0
    name = "gaussian"
    is_exact = True

    def __post_init__(self):
        object.__setattr__(self, "scale", _checks.check_scalar("scale", self.scale))

    def mean(self, eta):
        return eta

    def log_prob(self, y, eta):
        z = (y - eta) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi)

    def sample(self, key, eta):
        """y ~ N(eta, scale^2), same shape as eta."""
        return eta + self.scale * jax.random.normal(key, jnp.shape(eta), jnp.result_type(eta))

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)

    def statistics(self, X, A, y, num_actions: int) -> ActionStats:
        """Exact sufficient statistics. X (n, d), A (n,) int, y (n,)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        prec = 1.0 / self.scale**2
        G = prec * _outer_sums(X, A, jnp.ones(X.shape[0], X.dtype), num_actions)
        b = prec * jax.ops.segment_sum(X * y[:, None], A, num_segments=num_actions)
        return ActionStats(G, b)


_STEPS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.0)  # damped-Newton line search: the best of these step sizes


def _group_sum(values, group, num_groups):
    """Sum rows (n, ...) per group -> (M, ...); with ``num_groups=None`` one group -> (...)."""
    if num_groups is None:
        return jnp.sum(values, axis=0)
    return jax.ops.segment_sum(values, group, num_segments=num_groups)


def _weighted_outer(X, w, group, num_groups):
    """sum_i w_i x_i x_i^T per group: (M, d, d), or (d, d) for one group (a matmul)."""
    if num_groups is None:
        return (X * w[:, None]).T @ X
    return _outer_sums(X, group, w, num_groups)


def _predictor(X, B, group, num_groups):
    """eta_i = x_i^T B_{group_i} for B (..., M, d) -> (..., n); one group: B (..., d)."""
    if num_groups is None:
        return jnp.einsum("nd,...d->...n", X, B)
    return jnp.sum(X * B[..., group, :], axis=-1)


@dataclass(frozen=True)
class _GLM:
    """Shared Gaussianisation of a canonical-link GLM (MATH.md section 2)."""

    ridge: float = 1e-3
    num_iterations: int = 30
    is_exact = False

    def __post_init__(self):
        object.__setattr__(self, "ridge", _checks.check_scalar("ridge", self.ridge))
        object.__setattr__(self, "num_iterations", _checks.check_int("num_iterations", self.num_iterations))

    def regularised_for(self, theta_cov):
        """This likelihood with ridge = 1 / (mean prior variance of theta).

        The statistics then expand the log-likelihood around the MAP under an isotropic Gaussian
        prior of the same scale as theta's, instead of around the (near-)MLE: far better early on,
        when an action's few observations are separable and its MLE runs off to infinity
        (measured in README, "Logistic rewards"). theta_cov: (d, d) prior covariance of theta_a.
        """
        cov = np.asarray(theta_cov, dtype=float)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise ValueError(f"theta_cov: expected a square (d, d) covariance, got shape {cov.shape}")
        var = float(np.mean(np.diag(cov)))
        if not (np.all(np.isfinite(cov)) and var > 0):
            raise ValueError("theta_cov: expected a finite covariance with a positive diagonal")
        return replace(self, ridge=1.0 / var)

    # Subclasses define: mean, sample, _nll(y, eta), _log_normaliser(y), _curvature(eta), check_rewards.
    def log_prob(self, y, eta):
        return -self._nll(y, eta) - self._log_normaliser(y)

    def _log_normaliser(self, y):
        return jnp.zeros_like(y)

    def laplace(self, X, y, weights, B, num_steps: int, group=None, num_groups=None):
        """The one Gaussianisation routine, for the batch statistics and the agents' updates.

        Runs ``num_steps`` damped-Newton steps from B on
        sum_i w_i nll(y_i, x_i^T B_{g_i}) + ridge/2 |B_g|^2, then expands the log-likelihood
        to second order at the result B:

            G = sum_i w_i gdot(x_i^T B) x_i x_i^T,   b = G B - sum_i w_i (g(x_i^T B) - y_i) x_i,

        so that log p(y | theta) ~ const - theta^T G theta / 2 + b^T theta. The gradient term makes
        the expansion a correct Taylor expansion wherever B is (at an unregularised MLE it
        vanishes and b = G B, the paper's form). Groups without rows get G = 0, b = 0.

        Args:
            X: (n, d) rows, y: (n,) rewards, weights: (n,) row weights (0 masks a row out).
            B: start point, (M, d) with ``group`` (n,) ints and ``num_groups`` = M, or (d,) for
                a single group (``group=None``; mask other rows with ``weights``).
            num_steps: Newton steps (each O(n d^2 + M d^3)).

        Returns:
            (G, b, B): (M, d, d), (M, d), (M, d); or (d, d), (d,), (d,) for one group.
        """
        dim = X.shape[1]
        eye = jnp.eye(dim, dtype=X.dtype)
        steps = jnp.asarray(_STEPS, X.dtype)

        def gradient(B):  # of the unpenalised NLL, and the linear predictor
            eta = _predictor(X, B, group, num_groups)
            return _group_sum(X * (weights * (self.mean(eta) - y))[:, None], group, num_groups), eta

        def objective(cands):  # (S, [M,] d) -> (S, [M])
            terms = weights * self._nll(y, _predictor(X, cands, group, num_groups))  # (S, n)
            nll = jnp.moveaxis(_group_sum(jnp.moveaxis(terms, -1, 0), group, num_groups), 0, -1)
            return nll + 0.5 * self.ridge * jnp.sum(cands**2, axis=-1)

        def newton(B, _):
            grad, eta = gradient(B)
            hess = _weighted_outer(X, weights * self._curvature(eta), group, num_groups) + self.ridge * eye
            direction = jnp.linalg.solve(hess, (grad + self.ridge * B)[..., None])[..., 0]
            # safeguard: an overflowing solve (huge x in float32) must not poison the step-0
            # candidate (0 * NaN = NaN); the line search then keeps B where no step is finite
            direction = jnp.where(jnp.all(jnp.isfinite(direction), axis=-1, keepdims=True), direction, 0.0)
            cands = B[None] - steps.reshape((-1,) + (1,) * B.ndim) * direction[None]
            best = jnp.argmin(jnp.nan_to_num(objective(cands), nan=jnp.inf), axis=0)
            return jnp.take_along_axis(cands, best[None, ..., None], axis=0)[0], None

        B, _ = jax.lax.scan(newton, B, None, length=num_steps)
        grad, eta = gradient(B)
        G = _weighted_outer(X, weights * self._curvature(eta), group, num_groups)
        G = 0.5 * (G + jnp.swapaxes(G, -1, -2))
        return G, jnp.einsum("...ij,...j->...i", G, B) - grad, B

    def fit(self, X, A, y, num_actions: int):
        """Ridge-regularised MLE per action (the expansion point). Returns B (K, d)."""
        return self._laplace_batch(X, A, y, num_actions)[2]

    def statistics(self, X, A, y, num_actions: int) -> ActionStats:
        """Gaussianised evidence of each action's data (see :meth:`laplace`)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        G, b, _ = self._laplace_batch(X, A, y, num_actions)
        return ActionStats(G, b)

    def _laplace_batch(self, X, A, y, num_actions):
        B0 = jnp.zeros((num_actions, X.shape[1]), X.dtype)
        ones = jnp.ones(X.shape[0], X.dtype)
        return self.laplace(X, y, ones, B0, self.num_iterations, group=A, num_groups=num_actions)


@dataclass(frozen=True)
class Bernoulli(_GLM):
    """Binary rewards y ~ Bernoulli(sigmoid(x^T theta)) (logistic bandit)."""

    name = "bernoulli"

    def mean(self, eta):
        return jax.nn.sigmoid(eta)

    def sample(self, key, eta):
        """y ~ Bernoulli(sigmoid(eta)) as 0.0 / 1.0, same shape as eta."""
        return jax.random.bernoulli(key, jax.nn.sigmoid(eta)).astype(jnp.result_type(eta))

    def _nll(self, y, eta):
        return jax.nn.softplus(eta) - y * eta

    def _curvature(self, eta):
        p = jax.nn.sigmoid(eta)
        return p * (1.0 - p)

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = (v != 0) & (v != 1)
            if bad.any():
                raise ValueError(f"{name}: Bernoulli rewards must be 0 or 1, got {v[bad][0]!r}")


@dataclass(frozen=True)
class Poisson(_GLM):
    """Count rewards y ~ Poisson(exp(x^T theta))."""

    name = "poisson"

    def mean(self, eta):
        return jnp.exp(eta)

    def sample(self, key, eta):
        """y ~ Poisson(exp(eta)), same shape as eta."""
        return jax.random.poisson(key, jnp.exp(eta), jnp.shape(eta)).astype(jnp.result_type(eta))

    def _log_normaliser(self, y):
        return jax.scipy.special.gammaln(y + 1.0)

    def _nll(self, y, eta):
        return jnp.exp(eta) - y * eta

    def _curvature(self, eta):
        return jnp.exp(eta)

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = (v < 0) | (v != np.round(v))
            if bad.any():
                raise ValueError(f"{name}: Poisson rewards must be non-negative integers, got {v[bad][0]!r}")
