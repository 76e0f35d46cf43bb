"""core.prng against jax.random: the same bits for split, uniform and normal (eager, jitted, vmapped,
float32 and float64), and jax.random itself for keys and configurations it does not cover."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.core import prng

SHAPES = [(), (1,), (3,), (40, 2), (5, 3, 2)]


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_split_is_jax_random_split(seed):
    key = jax.random.PRNGKey(seed)
    for num in (1, 2, 3, 7):
        np.testing.assert_array_equal(prng.split(key, num), jax.random.split(key, num))
        np.testing.assert_array_equal(jax.jit(lambda k, n=num: prng.split(k, n))(key), jax.random.split(key, num))
    np.testing.assert_array_equal(prng.split(key), jax.random.split(key))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_draws_are_jax_random_draws(shape, dtype):
    for seed in (0, 3):
        key = jax.random.PRNGKey(seed)
        pairs = [
            (prng.normal(key, shape, dtype), jax.random.normal(key, shape, dtype)),
            (jax.jit(lambda k: prng.normal(k, shape, dtype))(key), jax.random.normal(key, shape, dtype)),
            (prng.uniform(key, shape, dtype, -1.0, 2.0), jax.random.uniform(key, shape, dtype, -1.0, 2.0)),
            (prng.uniform(key, shape, dtype), jax.random.uniform(key, shape, dtype)),
        ]
        for ours, theirs in pairs:
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)


def test_vmapped_and_scanned_draws_are_jax_random_draws():
    keys = jax.random.split(jax.random.PRNGKey(4), 6)

    def body(c, k):
        k1, k2 = prng.split(k)
        return c, (prng.normal(k1, (3,), jnp.float32), prng.uniform(k2, (2,), jnp.float32, -1.0, 1.0))

    def reference(c, k):
        k1, k2 = jax.random.split(k)
        return c, (jax.random.normal(k1, (3,), jnp.float32), jax.random.uniform(k2, (2,), jnp.float32, -1.0, 1.0))

    ours = jax.jit(jax.vmap(lambda k: jax.lax.scan(body, 0, prng.split(k, 4))[1]))(keys)
    theirs = jax.vmap(lambda k: jax.lax.scan(reference, 0, jax.random.split(k, 4))[1])(keys)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_hash_is_threefry_2x32():
    # the Threefry-2x32 (20 rounds) known-answer vector of Salmon et al. (Random123), as JAX tests it
    words = [jnp.asarray(w, jnp.uint32) for w in (0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3)]
    out = prng.threefry2x32(*words)
    assert (int(out[0]), int(out[1])) == (0xC4923A9C, 0x483DF7A0)


def test_other_keys_and_configurations_go_to_jax_random():
    typed = jax.random.key(5)
    assert not prng.fast_path(typed)
    np.testing.assert_array_equal(
        jax.random.key_data(prng.split(typed, 3)), jax.random.key_data(jax.random.split(typed, 3))
    )
    np.testing.assert_array_equal(prng.normal(typed, (4,)), jax.random.normal(typed, (4,)))
    key = jax.random.PRNGKey(5)
    assert prng.fast_path(key) and not prng.fast_path(key, jnp.float16)
    np.testing.assert_array_equal(prng.normal(key, (4,), jnp.float16), jax.random.normal(key, (4,), jnp.float16))
    assert not prng.fast_path(key, size=2**32)  # counters beyond one 32-bit word
    jax.config.update("jax_threefry_partitionable", False)
    try:
        assert not prng.fast_path(key)
        np.testing.assert_array_equal(prng.split(key, 3), jax.random.split(key, 3))
    finally:
        jax.config.update("jax_threefry_partitionable", True)
