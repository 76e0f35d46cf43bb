"""Random diffusion priors of the paper's experiments (docs/math.md section 8)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dts_ppl.bandits.envs import diffusion_environment
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.core.prior import DiffusionPrior


def random_linear_prior(key, dim: int, active_dims: Sequence[int], scale: float = 1.0) -> DiffusionPrior:
    """Linear diffusion with W_l ~ U[-1, 1]^{d x d}, the last d - d_l columns zeroed, S_l = scale I.

    Args:
        dim: d (theta and latents share it, as in the paper).
        active_dims: (d_1, ..., d_L), the active columns of W_1..W_L; L = len(active_dims).
    """
    key = _checks.check_key(key)
    if any(not 1 <= a <= dim for a in active_dims) or not active_dims:
        raise ValueError(f"active_dims: expected 1..{dim} for each level, got {list(active_dims)}")
    keys = jax.random.split(key, len(active_dims))
    weights = []
    for k, active in zip(keys, active_dims, strict=True):
        w = jax.random.uniform(k, (dim, dim), minval=-1.0, maxval=1.0)
        weights.append(w * (jnp.arange(dim) < active))
    return DiffusionPrior.linear(weights, [scale] * (len(active_dims) + 1))


def random_mlp_prior(key, dim: int, num_levels: int, hidden: int, scale: float = 1.0) -> DiffusionPrior:
    """Nonlinear diffusion: each f_l a 2-layer ReLU MLP (d -> hidden -> d), weights and biases U[-1, 1]."""
    key = _checks.check_key(key)
    layers = []
    for k in jax.random.split(key, num_levels):
        k1, k2, k3, k4 = jax.random.split(k, 4)
        u = lambda kk, shape: jax.random.uniform(kk, shape, minval=-1.0, maxval=1.0)  # noqa: E731
        layers.append((u(k1, (hidden, dim)), u(k2, (hidden,)), u(k3, (dim, hidden)), u(k4, (dim,))))
    return DiffusionPrior.mlp(layers, [scale] * (num_levels + 1))


def paper_prior(key, diffusion: str, dim: int, active_dims: Sequence[int], hidden: int) -> DiffusionPrior:
    """The paper's random diffusion prior: "linear" (W_l ~ U[-1, 1], zeroed columns) or "mlp"."""
    key = _checks.check_key(key)
    if diffusion == "linear":
        return random_linear_prior(key, dim, active_dims)
    if diffusion == "mlp":
        return random_mlp_prior(key, dim, len(active_dims), hidden)
    raise ValueError(f"diffusion: expected 'linear' or 'mlp', got {diffusion!r}")


def paper_environment(key, diffusion: str, reward: str, num_actions: int, dim: int, active_dims, hidden: int):
    """A synthetic problem of the paper: returns (environment, true prior).

    Args:
        diffusion: "linear" or "mlp".   reward: "linear" (Gaussian, sd 1) or "logistic".
        active_dims: (d_1, ..., d_L) active columns (linear) and L.   hidden: MLP width.
    """
    key = _checks.check_key(key)
    if reward not in ("linear", "logistic"):
        raise ValueError(f"reward: expected 'linear' or 'logistic', got {reward!r}")
    prior = paper_prior(key, diffusion, dim, active_dims, hidden)
    likelihood = Gaussian(1.0) if reward == "linear" else Bernoulli()
    name = f"{diffusion} diffusion, {reward} reward, K={num_actions}, d={dim}, L={len(active_dims)}"
    return diffusion_environment(prior, num_actions, likelihood, name=name), prior
