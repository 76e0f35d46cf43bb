"""``jax.random.split``, ``normal`` and ``uniform`` with the Threefry hash written out: the same bits.

JAX lowers its Threefry-2x32 hash on CPU as a rolled loop (5 iterations of 4 rounds) to keep
compile times short. Inside a compiled loop that runs a round per iteration (an agent's round,
``simulate``) every random draw then costs a small while loop of its own: loop overhead several
times the hash's arithmetic. Here the 20 rounds are plain elementwise operations, which XLA fuses
into one kernel with the draw's conversion to floats.

The functions return exactly the bits of their ``jax.random`` namesakes for raw ``uint32[2]`` keys
(``jax.random.PRNGKey``) under the default configuration (``jax_default_prng_impl`` =
"threefry2x32", ``jax_threefry_partitionable`` on); any other key or configuration, and floating
dtypes other than float32 and float64, go to ``jax.random`` itself. The hash and the conversions
follow ``jax._src.random`` (the Threefry-2x32 hash of Salmon et al. 2011, 20 rounds; the uniform
floats from the top mantissa bits; the normal as sqrt(2) erfinv(u)).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["fast_path", "normal", "split", "threefry2x32", "uniform"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k1, k2, x1, x2) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of the counter pairs (x1, x2) under the key (k1, k2), unrolled.

    Args:
        k1, k2: () uint32, the key's two words.   x1, x2: (...) uint32 counters of one shape.
    Returns:
        Two (...) uint32 arrays, the hash's two output words.
    """
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    a, b = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            a = a + b
            b = a ^ _rotate_left(b, r)
        a = a + ks[(i + 1) % 3]
        b = b + ks[(i + 2) % 3] + np.uint32(i + 1)
    return a, b


def fast_path(key, dtype=None, size: int = 1) -> bool:
    """Whether ``key`` (and a floating ``dtype``) take the unrolled path (else ``jax.random``'s).

    True for a raw uint32[2] key (``jax.random.PRNGKey``) under the default Threefry
    configuration, with ``dtype`` None, float32 or float64, and fewer than 2^32 draws (``size``).
    """
    if size >= 2**32:
        return False
    config = jax.config
    if config.jax_default_prng_impl != "threefry2x32" or not config.jax_threefry_partitionable:
        return False
    if not hasattr(key, "dtype") or key.dtype != jnp.uint32 or jnp.shape(key) != (2,):
        return False
    return dtype is None or np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))


def _hash_counts(key, shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """The hash of the 64-bit counters 0 .. prod(shape) - 1 (high and low words), in ``shape``."""
    n = math.prod(shape)
    hi = jnp.zeros(shape, jnp.uint32)
    lo = lax.iota(jnp.uint32, n).reshape(shape) if shape else jnp.zeros((), jnp.uint32)
    return threefry2x32(key[0], key[1], hi, lo)


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """``jax.random.split(key, num)``: (num, 2) new keys."""
    if not fast_path(key, size=int(num)):
        return jax.random.split(key, num)
    return _split(key, int(num))


@partial(jax.jit, static_argnums=1)
def _split(key, num):
    a, b = _hash_counts(key, (num,))
    return jnp.stack([a, b], axis=-1)


def uniform(key: jax.Array, shape: tuple[int, ...] = (), dtype=None, minval=0.0, maxval=1.0) -> jax.Array:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``: floats in [minval, maxval)."""
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    shape = tuple(int(s) for s in shape)
    if not fast_path(key, dtype, math.prod(shape)):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform(key, minval, maxval, shape, dtype)


@partial(jax.jit, static_argnums=(3, 4))
def _uniform(key, minval, maxval, shape, dtype):
    a, b = _hash_counts(key, shape)
    if dtype.itemsize == 8:
        bits, utype = (a.astype(jnp.uint64) << np.uint64(32)) | b.astype(jnp.uint64), np.uint64
    else:
        bits, utype = a ^ b, np.uint32
    finfo = jnp.finfo(dtype)
    mantissa = (bits >> utype(finfo.bits - finfo.nmant)) | np.array(1.0, dtype).view(utype)
    floats = lax.bitcast_convert_type(mantissa, dtype) - np.array(1.0, dtype)
    lo = lax.convert_element_type(minval, dtype)
    hi = lax.convert_element_type(maxval, dtype)
    return lax.max(lo, floats * (hi - lo) + lo)


def normal(key: jax.Array, shape: tuple[int, ...] = (), dtype=None) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``: standard normal draws."""
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    shape = tuple(int(s) for s in shape)
    if not fast_path(key, dtype, math.prod(shape)):
        return jax.random.normal(key, shape, dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform(key, shape, dtype, lo, np.array(1.0, dtype))
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))
