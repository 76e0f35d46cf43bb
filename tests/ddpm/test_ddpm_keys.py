"""train_diffusion_prior, calibrate_action_cov and init_eps_net take raw and typed keys alike; non-keys are named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior
from dts_ppl.ddpm import train_diffusion_prior
from dts_ppl.ddpm.calibrate import calibrate_action_cov
from dts_ppl.ddpm.network import init_eps_net

X = np.random.default_rng(0).normal(size=(64, 2)) * np.array([1.0, 2.0])
TINY = dict(num_levels=3, hidden=4, steps=3, progress=False, calibration_draws=40)


def test_train_diffusion_prior_is_the_same_with_a_typed_key_and_none_is_prngkey_0():
    raw = train_diffusion_prior(X, key=jax.random.PRNGKey(2), **TINY)
    typed = train_diffusion_prior(X, key=jax.random.key(2), **TINY)
    np.testing.assert_array_equal(raw.losses, typed.losses)
    np.testing.assert_array_equal(raw.prior.cov1, typed.prior.cov1)  # the calibration's fold_in(key, 1) too
    default = train_diffusion_prior(X, key=None, **TINY)
    zero = train_diffusion_prior(X, key=jax.random.PRNGKey(0), **TINY)
    np.testing.assert_array_equal(default.losses, zero.losses)


@pytest.mark.parametrize("bad", [0, 1.0, "0", np.zeros(2, np.int32), jax.random.split(jax.random.key(0))])
def test_train_diffusion_prior_refuses_non_keys_before_training(bad):
    with pytest.raises(ValueError, match=r"^key: expected a (single )?PRNG key"):
        train_diffusion_prior(X, key=bad, **TINY)


def test_calibrate_action_cov_takes_typed_keys():
    prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
    raw = calibrate_action_cov(prior, X, jax.random.PRNGKey(4), num_draws=100)
    typed = calibrate_action_cov(prior, X, jax.random.key(4), num_draws=100)
    np.testing.assert_array_equal(raw.cov1, typed.cov1)
    np.testing.assert_array_equal(
        calibrate_action_cov(prior, X, None, 100).cov1, calibrate_action_cov(prior, X, jax.random.PRNGKey(0), 100).cov1
    )
    for bad in (0, "key", np.zeros(3, np.uint32)):
        with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
            calibrate_action_cov(prior, X, bad, num_draws=100)


def test_init_eps_net_takes_typed_keys():
    a, b = init_eps_net(jax.random.PRNGKey(5), 2, 4), init_eps_net(jax.random.key(5), 2, 4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
        init_eps_net(None, 2, 4)
