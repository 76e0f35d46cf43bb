"""als at its edges: no training rating left, malformed arguments (clear ValueErrors naming them)."""

import numpy as np
import pytest

from dts_ppl.data import als
from dts_ppl.data.factorisation import train_test_split

U3 = np.array([0, 1, 2])
I3 = np.array([0, 1, 0])
R3 = np.array([4.0, 3.0, 5.0])


@pytest.mark.parametrize(("n", "fraction"), [(2, 0.75), (3, 0.9), (4, 0.95)])
def test_no_training_rating_is_a_value_error_naming_test_fraction(n, fraction):
    train, _ = train_test_split(n, fraction)
    assert train.size == 0  # the split these arguments give
    users, items = np.arange(n), np.zeros(n, dtype=int)
    with pytest.raises(ValueError, match=rf"^test_fraction: {fraction} holds out all {n} ratings"):
        als(users, items, np.ones(n), rank=1, num_iterations=1, test_fraction=fraction)


def test_one_training_rating_fits_it():
    # n = 3, test_fraction 0.5: 2 held out, 1 left; the fit is finite and its mean is that rating
    train, test = train_test_split(3, 0.5)
    assert (train.size, test.size) == (1, 2)
    fac = als(U3, I3, R3, rank=1, num_iterations=2, test_fraction=0.5)
    assert fac.mean == R3[train[0]]
    assert np.isfinite(fac.train_rmse) and np.isfinite(fac.test_rmse)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(rank=2.5), "rank"),
        (dict(rank="2"), "rank"),
        (dict(ridge="1"), "ridge"),
        (dict(ridge=float("nan")), "ridge"),
        (dict(num_iterations=None), "num_iterations"),
        (dict(num_users="3"), "num_users"),
        (dict(num_items=0), "num_items"),
        (dict(test_fraction=None), "test_fraction"),
        (dict(test_fraction=float("nan")), "test_fraction"),
        (dict(ratings=["a", "b", "c"]), "ratings"),
    ],
)
def test_malformed_arguments_are_named(kwargs, name):
    args = dict(users=U3, items=I3, ratings=R3, num_iterations=1, test_fraction=0.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}: "):
        als(**args)
