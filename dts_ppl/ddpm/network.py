"""The epsilon-network eps(x, l) of a DDPM and its one forward pass."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core import checks as _checks

EMBED_DIM = 16


def step_embedding(levels, dim: int = EMBED_DIM):
    """Sinusoidal embedding of integer levels (...,) -> (..., dim)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half) / half)
    ang = jnp.asarray(levels, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], axis=-1)


class EpsNet(NamedTuple):
    """Parameters of eps(x, l) = w3 relu(w2 relu(w_x x + w_t e(l) + b1) + b2) + b3.

    Attributes:
        w_x: (hidden, d)   w_t: (hidden, 16)   b1: (hidden,)
        w2: (hidden, hidden)   b2: (hidden,)   w3: (d, hidden)   b3: (d,)
    """

    w_x: jax.Array
    w_t: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array
    w3: jax.Array
    b3: jax.Array


def init_eps_net(key, dim: int, hidden: int) -> EpsNet:
    key = _checks.check_key(key)
    k1, k2 = jax.random.split(key)
    fan_in = dim + EMBED_DIM
    w1 = jax.random.normal(k1, (hidden, fan_in), jnp.float32) * jnp.sqrt(2.0 / fan_in)
    w2 = jax.random.normal(k2, (hidden, hidden), jnp.float32) * jnp.sqrt(2.0 / hidden)
    zeros = lambda *s: jnp.zeros(s, jnp.float32)  # noqa: E731
    return EpsNet(w1[:, :dim], w1[:, dim:], zeros(hidden), w2, zeros(hidden), zeros(dim, hidden), zeros(dim))


def mlp_forward(w_x, b_in, w2, b2, w3, b3, x):
    """The epsilon-network's one forward pass w3 relu(w2 relu(w_x x + b_in) + b2) + b3.

    Training (:func:`eps_net`, with b_in = b1 + w_t e(l)) and the trained links
    (:class:`dts_ppl.ddpm.DDPMLink`, with the embedding folded into b_in) both call it.
    """
    # x as a row: vmapped over draws or runs, every product keeps the batch axis first (no
    # transposed copy of x or of a hidden layer between the products)
    return mlp_tail(x @ w_x.T, b_in, w2, b2, w3, b3)


def mlp_tail(pre, b_in, w2, b2, w3, b3):
    """The forward pass from the first layer's product ``pre`` = w_x x: w3 relu(w2 relu(pre + b_in) + b2) + b3."""
    h = jax.nn.relu(pre + b_in)
    h = jax.nn.relu(h @ w2.T + b2)
    return h @ w3.T + b3


def eps_net(params: EpsNet, x, emb):
    """eps(x, l) for one x (d,) with embedding emb (16,)."""
    return mlp_forward(params.w_x, params.w_t @ emb + params.b1, params.w2, params.b2, params.w3, params.b3, x)
