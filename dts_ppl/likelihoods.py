"""Reward likelihoods and their per-action statistics (MATH.md section 2).

Each likelihood gives the reward distribution given the linear predictor eta = x^T theta,
its mean function g, and ``statistics(X, A, y, num_actions) -> ActionStats``: the precision
form (G_a, b_a) of each action's evidence about theta_a.

- Gaussian: exact, G_a = sigma^-2 sum x x^T, b_a = sigma^-2 sum x y.
- Bernoulli (logistic) and Poisson (log link): the likelihood of each action is replaced by
  N(theta; B_a, G_a^-1) around a ridge-regularised MLE B_a (approximation (i) of the paper):
  G_a = sum gdot(x^T B_a) x x^T, b_a = G_a B_a. B_a comes from damped Newton (IRLS) on
  NLL + ridge/2 |theta|^2; the ridge (default 1e-3) keeps B_a finite for actions with fewer
  than d pulls or separable labels, and contributes nothing to G_a. No data gives G_a = 0, b_a = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from dts_ppl import _checks


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
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale: expected a positive finite noise scale, got {self.scale}")

    def distribution(self, eta):
        return dist.Normal(eta, self.scale)

    def mean(self, eta):
        return eta

    def log_prob(self, y, eta):
        return self.distribution(eta).log_prob(y)

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


@dataclass(frozen=True)
class _GLM:
    """Shared Gaussianisation of a canonical-link GLM (MATH.md section 2)."""

    ridge: float = 1e-3
    num_iterations: int = 30
    is_exact = False

    def __post_init__(self):
        if not (np.isfinite(self.ridge) and self.ridge > 0):
            raise ValueError(f"ridge: expected a small positive number, got {self.ridge}")
        if self.num_iterations < 1:
            raise ValueError(f"num_iterations: expected >= 1, got {self.num_iterations}")

    # Subclasses define: distribution, mean, _nll(y, eta), _curvature(eta), check_rewards.
    def log_prob(self, y, eta):
        return self.distribution(eta).log_prob(y)

    def fit(self, X, A, y, num_actions: int):
        """Ridge-regularised MLE per action by damped Newton. Returns B (K, d)."""
        dim = X.shape[1]
        eye = jnp.eye(dim, dtype=X.dtype)
        steps = jnp.asarray([1.0, 0.5, 0.25, 0.1, 0.03, 0.0], X.dtype)

        def objective(B):  # (..., K, d) -> (..., K)
            eta = jnp.sum(X * B[..., A, :], axis=-1)
            nll = jax.ops.segment_sum(jnp.moveaxis(self._nll(y, eta), -1, 0), A, num_segments=num_actions)
            return jnp.moveaxis(nll, 0, -1) + 0.5 * self.ridge * jnp.sum(B**2, axis=-1)

        def newton(B, _):
            eta = jnp.sum(X * B[A], axis=-1)
            grad = jax.ops.segment_sum(X * (self.mean(eta) - y)[:, None], A, num_segments=num_actions)
            grad = grad + self.ridge * B
            hess = _outer_sums(X, A, self._curvature(eta), num_actions) + self.ridge * eye
            direction = -jax.vmap(jnp.linalg.solve)(hess, grad)
            candidates = B[None] + steps[:, None, None] * direction[None]  # (S, K, d)
            best = jnp.argmin(jnp.nan_to_num(objective(candidates), nan=jnp.inf), axis=0)  # (K,)
            return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0], None

        B0 = jnp.zeros((num_actions, dim), X.dtype)
        B, _ = jax.lax.scan(newton, B0, None, length=self.num_iterations)
        return B

    def statistics(self, X, A, y, num_actions: int) -> ActionStats:
        """Gaussianised evidence: G_a = sum gdot(x^T B_a) x x^T, b_a = G_a B_a."""
        return _jit_statistics(self, X, A, y, num_actions)

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        B = self.fit(X, A, y, num_actions)
        eta = jnp.sum(X * B[A], axis=-1)
        G = _outer_sums(X, A, self._curvature(eta), num_actions)
        return ActionStats(G, jnp.einsum("kij,kj->ki", G, B))


@dataclass(frozen=True)
class Bernoulli(_GLM):
    """Binary rewards y ~ Bernoulli(sigmoid(x^T theta)) (logistic bandit)."""

    name = "bernoulli"

    def distribution(self, eta):
        return dist.Bernoulli(logits=eta)

    def mean(self, eta):
        return jax.nn.sigmoid(eta)

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

    def distribution(self, eta):
        return dist.Poisson(jnp.exp(eta))

    def mean(self, eta):
        return jnp.exp(eta)

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
