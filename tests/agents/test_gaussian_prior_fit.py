"""GaussianPrior.fit on N <= d samples: positive definite in float32 and float64, accepted by lin_ts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.agents import GaussianPrior, lin_ts
from dts_ppl.core.checks import covariance

CASES = [(d, n, seed) for d in (5, 32) for n in (2, 3, d // 2, d) for seed in range(3)]


def _samples(d, n, seed):
    """N draws with per-coordinate scales over 6 decades and offsets of 1e3 (rounding in the centring)."""
    rng = np.random.default_rng(seed)
    scales = 10 ** rng.uniform(-3, 3, size=d)
    return rng.normal(size=(n, d)) * scales + 1e3 * rng.normal(size=d)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fit_is_the_sample_covariance_plus_a_dtype_aware_jitter(dtype):
    eps = float(jnp.finfo(dtype).eps)
    for d, n, seed in CASES:
        x = _samples(d, n, seed)
        g = GaussianPrior.fit(x, dtype=dtype)
        assert g.cov.dtype == dtype and g.mean.dtype == dtype
        # positive definite in its own dtype: the covariance check lin_ts applies accepts it
        covariance("theta_prior.cov", g.cov, d, dtype)
        # the float64 oracle: np.cov of the rounded samples + max(1e-9, 10 d eps) x mean variance
        xr = np.asarray(x.astype(dtype), np.float64)
        ref = np.cov(xr, rowvar=False, ddof=1)
        jit = max(1e-9, 10 * d * eps) * np.mean(np.diag(ref))
        ref = ref + jit * np.eye(d)
        scale = np.abs(ref).max()
        np.testing.assert_allclose(np.asarray(g.cov, np.float64), ref, rtol=0, atol=1e3 * eps * scale)
        np.testing.assert_allclose(np.asarray(g.mean, np.float64), xr.mean(0), rtol=10 * eps)


def test_the_old_float32_jitter_was_not_enough_for_these_samples():
    # the inputs above do exercise the failure: a jitter of 1e-9 x mean variance leaves some float32
    # covariance with a non-positive eigenvalue, which the check refuses
    refused = 0
    for d, n, seed in CASES:
        g = GaussianPrior.fit(_samples(d, n, seed), jitter=0.0, dtype=jnp.float32)
        cov = g.cov + 1e-9 * jnp.mean(jnp.diag(g.cov)) * jnp.eye(d, dtype=jnp.float32)
        try:
            covariance("theta_prior.cov", cov, d, jnp.float32)
        except ValueError as e:
            assert "not positive definite" in str(e)
            refused += 1
    assert refused >= 3


def test_lin_ts_learns_from_a_float32_fit_of_two_samples():
    d = 32
    g = GaussianPrior.fit(_samples(d, 2, 0), dtype=jnp.float32)
    agent = lin_ts(g, num_actions=3)
    state = agent.init()
    x = jnp.asarray(np.random.default_rng(1).normal(size=d), jnp.float32)
    state = agent.update(state, x, 1, jnp.float32(0.5))
    action, _ = agent.act(jax.random.key(0), state, x)
    assert 0 <= int(action) < 3
    assert all(
        bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)
    )


def test_fit_refuses_constant_samples_and_keeps_zero_jitter():
    with pytest.raises(ValueError, match=r"^samples: every coordinate is constant"):
        GaussianPrior.fit(np.ones((4, 3)))
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(GaussianPrior.fit(x, jitter=0.0).cov, np.cov(x, rowvar=False), rtol=1e-12)
