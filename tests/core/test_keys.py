"""One key check for every public key argument: raw uint32[2] and typed keys in, ints/None/others out."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior
from dts_ppl.bandits.envs import sample_reward
from dts_ppl.core import inference as core
from dts_ppl.core.checks import check_key, optional_key
from dts_ppl.core.sampling import sample_prior
from dts_ppl.experiments.synthetic import paper_environment, random_linear_prior

NOT_KEYS = [
    (0, "0"),
    (None, "None"),
    (1.5, "1.5"),
    ("key", "'key'"),
    (np.array([0, 1], dtype=np.int64), "int64 array of shape"),
    (np.zeros(3, dtype=np.uint32), r"uint32 array of shape \(3,\)"),
    (jnp.zeros((2, 2), jnp.uint32), r"uint32 array of shape \(2, 2\)"),
]


def test_check_key_accepts_raw_and_typed_keys():
    raw, typed = jax.random.PRNGKey(3), jax.random.key(3)
    assert check_key(raw) is raw and check_key(typed) is typed
    assert check_key(np.asarray(raw)).shape == (2,)
    assert jax.jit(check_key)(typed).dtype == typed.dtype  # shapes only: jit-safe
    np.testing.assert_array_equal(optional_key(None), jax.random.PRNGKey(0))
    assert optional_key(typed) is typed


@pytest.mark.parametrize(("bad", "shown"), NOT_KEYS)
def test_check_key_refuses_non_keys_naming_the_argument(bad, shown):
    with pytest.raises(ValueError, match=rf"^key: expected a PRNG key .*got {shown}"):
        check_key(bad)
    if bad is not None:
        with pytest.raises(ValueError, match=r"^seed_key: expected a PRNG key"):
            optional_key(bad, "seed_key")


def test_check_key_refuses_a_batch_of_typed_keys():
    with pytest.raises(ValueError, match=r"^key: expected a single PRNG key, got a key array of shape \(2,\)"):
        check_key(jax.random.split(jax.random.key(0)))


def _prior():
    return DiffusionPrior.linear([jnp.array([[1.0, 0.5], [0.2, -0.7]])], [0.5, 1.0])


def _mlp_prior():
    w = [jnp.array([[0.6, -0.4], [0.3, 0.8]])]
    return DiffusionPrior.mlp([(w[0], jnp.zeros(2), w[0], jnp.zeros(2))], [0.5, 1.0])


@pytest.mark.parametrize("seed", [0, 7])
def test_sample_prior_draws_the_same_with_a_typed_key(seed):
    raw = sample_prior(jax.random.PRNGKey(seed), _prior(), 4, num_actions=3)
    typed = sample_prior(jax.random.key(seed), _prior(), 4, num_actions=3)
    for a, b in zip(raw, typed, strict=True):
        np.testing.assert_array_equal(a, b)  # the same bits: a typed key wraps the raw key data


@pytest.mark.parametrize(("bad", "shown"), NOT_KEYS)
def test_sample_prior_refuses_non_keys(bad, shown):
    with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
        sample_prior(bad, _prior(), 2)


def test_theta_prior_moments_and_sample_reward_take_typed_keys():
    prior = _mlp_prior()
    m_raw, c_raw = core.theta_prior_moments(prior, jax.random.PRNGKey(1), 50)
    m_typed, c_typed = core.theta_prior_moments(prior, jax.random.key(1), 50)
    np.testing.assert_array_equal(m_raw, m_typed)
    np.testing.assert_array_equal(c_raw, c_typed)
    with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
        core.theta_prior_moments(prior, 0, 50)
    env, _ = paper_environment(jax.random.key(2), "linear", "linear", 3, 2, [1, 2], 4)
    theta = env.sample_theta(jax.random.key(3))
    x = env.sample_context(jax.random.key(4))
    y_raw = sample_reward(env, jax.random.PRNGKey(5), theta, x, 1)
    y_typed = sample_reward(env, jax.random.key(5), theta, x, 1)
    np.testing.assert_array_equal(y_raw, y_typed)
    with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
        sample_reward(env, None, theta, x, 1)
    with pytest.raises(ValueError, match=r"^key: expected a PRNG key"):
        random_linear_prior(0, 2, [0])
