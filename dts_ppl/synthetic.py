"""Random diffusion priors of the paper's experiments (MATH.md section 8)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dts_ppl.prior import DiffusionPrior


def random_linear_prior(key, dim: int, active_dims: Sequence[int], scale: float = 1.0) -> DiffusionPrior:
    """Linear diffusion with W_l ~ U[-1, 1]^{d x d}, the last d - d_l columns zeroed, S_l = scale I.

    Args:
        dim: d (theta and latents share it, as in the paper).
        active_dims: (d_1, ..., d_L), the active columns of W_1..W_L; L = len(active_dims).
    """
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
    layers = []
    for k in jax.random.split(key, num_levels):
        k1, k2, k3, k4 = jax.random.split(k, 4)
        u = lambda kk, shape: jax.random.uniform(kk, shape, minval=-1.0, maxval=1.0)  # noqa: E731
        layers.append((u(k1, (hidden, dim)), u(k2, (hidden,)), u(k3, (dim, hidden)), u(k4, (dim,))))
    return DiffusionPrior.mlp(layers, [scale] * (num_levels + 1))
