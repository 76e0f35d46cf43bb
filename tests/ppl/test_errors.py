"""Bad input raises a ValueError naming the argument, before any NaN can appear."""

import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import BanditModel, Bernoulli, DiffusionPrior, DTSGuide
from dts_ppl.experiments.synthetic import random_mlp_prior


@pytest.fixture(scope="module")
def model():
    prior = DiffusionPrior.linear([jnp.ones((3, 2)), jnp.eye(2)], [1.0, 1.0, 1.0])
    return BanditModel(prior, 4)


def data(n=5):
    return jnp.ones((n, 3)), jnp.arange(n) % 4, jnp.zeros(n)


@pytest.mark.parametrize("call", ["model", "guide"])
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, A, y: (X[:, :2], A, y), r"X: expected shape \(\?, 3\)"),
        (lambda X, A, y: (X[0], A, y), r"X: expected shape"),
        (lambda X, A, y: (X, A.at[1].set(4), y), r"A: action index 4 is outside \[0, 4\)"),
        (lambda X, A, y: (X, A.at[1].set(-1), y), r"A: action index -1"),
        (lambda X, A, y: (X, A[:3], y), r"A: expected 5 actions"),
        (lambda X, A, y: (X, A + 0.5, y), r"A: expected integer action indices"),
        (lambda X, A, y: (X.at[2, 1].set(jnp.nan), A, y), r"X: contains NaN or inf"),
        (lambda X, A, y: (X, A, y.at[0].set(jnp.inf)), r"y: contains NaN or inf"),
        (lambda X, A, y: (X, A, y[:4]), r"y: expected shape \(5,\)"),
        (lambda X, A, y: (X, None, y), r"A: expected integer actions"),
    ],
)
def test_bad_data(model, call, mutate, match):
    fn = model if call == "model" else DTSGuide(model).posterior
    with pytest.raises(ValueError, match=match):
        fn(*mutate(*data()))


def test_bernoulli_labels_outside_support():
    prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
    model = BanditModel(prior, 2, Bernoulli())
    with pytest.raises(ValueError, match="y: Bernoulli rewards must be 0 or 1"):
        DTSGuide(model).posterior(jnp.ones((2, 2)), jnp.array([0, 1]), jnp.array([1.0, -1.0]))


def test_shared_model_rejects_actions():
    prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
    with pytest.raises(ValueError, match="A: the shared-parameter model"):
        BanditModel(prior, shared=True)(jnp.ones((2, 2)), jnp.array([0, 1]), jnp.zeros(2))
    with pytest.raises(ValueError, match="num_actions"):
        BanditModel(prior, 3, shared=True)


@pytest.mark.parametrize(
    "weights, covariances, match",
    [
        ([jnp.ones((3, 2)), jnp.eye(2)], [1.0, 1.0], r"covariances: expected L \+ 1 = 3"),
        ([jnp.ones((3, 2)), jnp.eye(3)], [1.0, 1.0, 1.0], r"weights\[1\] \(W_2\): expected shape \(2, 2\)"),
        ([jnp.ones((3, 2))], [jnp.eye(3), jnp.eye(3)], r"covariances\[1\] \(S_2\): expected a \(2, 2\) covariance"),
        ([jnp.ones((3, 2))], [jnp.eye(2), 1.0], r"covariances\[0\] \(S_1\): expected a \(3, 3\)"),
        (
            [jnp.ones((3, 2))],
            [jnp.array([[1.0, 0.5, 0], [0.0, 1, 0], [0, 0, 1]]), 1.0],
            r"S_1\): covariance is not symmetric",
        ),
        (
            [jnp.ones((3, 2))],
            [jnp.diag(jnp.array([1.0, -1.0, 1.0])), 1.0],
            r"S_1\): covariance is not positive definite",
        ),
        ([jnp.ones((3, 2))], [1.0, jnp.array([1.0, 2.0, 3.0])], r"S_2\): diagonal of length 3 given, expected 2"),
        ([jnp.ones((3, 2))], [1.0, jnp.array([[1.0, jnp.nan], [jnp.nan, 1.0]])], r"S_2\): contains NaN"),
        ([jnp.full((3, 2), jnp.inf)], [1.0, 1.0], r"weights\[0\] \(W_1\): contains NaN or inf"),
        ([], [1.0], r"weights: expected at least one"),
    ],
)
def test_bad_prior(weights, covariances, match):
    with pytest.raises(ValueError, match=match):
        DiffusionPrior.linear(weights, covariances)


def test_bad_mlp_prior_and_options():
    good = (np.ones((4, 2)), np.zeros(4), np.ones((2, 4)), np.zeros(2))
    wrong = (np.ones((4, 3)), np.zeros(4), np.ones((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"layers\[1\] \(f_2\): expected a map 2 -> 2"):
        DiffusionPrior.mlp([good, wrong], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"layers\[0\].b1 \(f_1\): expected shape \(4,\)"):
        DiffusionPrior.mlp([(good[0], np.zeros(3), good[2], good[3])], [1.0, 1.0])
    prior = DiffusionPrior.mlp([(np.ones((4, 2)), np.zeros(4), np.ones((3, 4)), np.zeros(3))], [1.0, 1.0])
    model = BanditModel(prior, 2)
    with pytest.raises(ValueError, match="linearisation='identity'.*equal input and output"):
        DTSGuide(model, linearisation="identity").posterior()  # the paper's rule (no longer the default)
    DTSGuide(model, linearisation="jacobian").posterior()  # fine
    DTSGuide(model).posterior()  # the default, iterated: fine
    with pytest.raises(ValueError, match="linearisation: expected one of"):
        DTSGuide(model, linearisation="laplace")
    with pytest.raises(ValueError, match="num_actions: expected a positive integer"):
        BanditModel(random_mlp_prior(np.array([0, 1], dtype=np.uint32), 2, 1, 3), 0)
    with pytest.raises(ValueError, match="prior: expected a DiffusionPrior"):
        BanditModel({"W": 1}, 3)
