"""Bandit (dts_ppl/online.py): every method answers bad input with the package's ValueError; one-row feedback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bandit, DiffusionPrior, Gaussian
from dts_ppl.agents import dts

K, D = 4, 2


@pytest.fixture(scope="module")
def agent():
    prior = DiffusionPrior.linear([jnp.eye(D), 0.5 * jnp.eye(D)], [0.5, 1.0, 1.0])
    return dts(prior, Gaussian(1.0), K)


@pytest.mark.parametrize("bad", ["abc", b"ab", None, ["a", "b"], {"x": 1}, np.array(["1", "2"]), object()])
def test_every_method_rejects_non_numbers_with_a_value_error(agent, bad):
    b = Bandit(agent, jax.random.PRNGKey(0))
    x, X = np.zeros(D), np.zeros((3, D))
    calls = {
        "choose x": lambda: b.choose(bad),
        "choose mask": lambda: b.choose(x, mask=bad),
        "choose_top_k x": lambda: b.choose_top_k(bad, 2),
        "choose_top_k mask": lambda: b.choose_top_k(x, 2, mask=bad),
        "propensities x": lambda: b.propensities(bad, 10),
        "propensities mask": lambda: b.propensities(x, 10, mask=bad),
        "partial_fit X": lambda: b.partial_fit(bad, [0, 1, 2], [1.0, 2.0, 3.0]),
        "partial_fit A": lambda: b.partial_fit(X, bad, [1.0, 2.0, 3.0]),
        "partial_fit y": lambda: b.partial_fit(X, [0, 1, 2], bad),
    }
    for what, call in calls.items():
        if bad is None and "mask" in what:
            continue  # None is the default mask
        with pytest.raises(ValueError, match=r"^(x|X|A|y|mask): ") as err:
            call()
        assert not isinstance(err.value, TypeError), what
    assert int(b.state.step) == 0


def test_one_row_partial_fit_equals_a_batch_of_one(agent):
    x, a, r = np.array([0.3, -0.7]), 2, 1.25
    one = Bandit(agent, jax.random.PRNGKey(0)).partial_fit(x, a, r)
    batch = Bandit(agent, jax.random.PRNGKey(0)).partial_fit(x[None], [a], [r])
    for u, v in zip(jax.tree.leaves(one.state), jax.tree.leaves(batch.state), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert int(one.state.step) == 1
    one.partial_fit(x, np.int64(a), np.float32(r))  # numpy scalars too
    assert int(one.state.step) == 2
    with pytest.raises(ValueError, match="A, y: with one row X"):
        one.partial_fit(x, [a], [r])
    with pytest.raises(ValueError, match="A"):
        one.partial_fit(x, 7, r)  # action out of range
    with pytest.raises(ValueError, match="y"):
        one.partial_fit(x, a, np.nan)
