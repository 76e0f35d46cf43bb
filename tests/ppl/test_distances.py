import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import cdist

from dts_ppl.ppl.distances import energy_distance


def test_energy_distance_matches_scipy_in_one_dimension():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.standard_t(3, size=211) + 0.3
    assert energy_distance(x, y) == pytest.approx(scipy.stats.energy_distance(x, y), rel=1e-10)


def test_energy_distance_matches_brute_force_in_several_dimensions():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(150, 4)), rng.normal(size=(90, 4)) * 1.5
    ref = np.sqrt(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())
    assert energy_distance(x, y) == pytest.approx(ref, rel=1e-10)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-7)


def test_energy_distance_closed_form_for_shifted_gaussians():
    # X ~ N(0, 1), Y ~ N(mu, 1): E|X - Y| = 2 phi(mu / sqrt 2) sqrt 2 + mu (2 Phi(mu / sqrt 2) - 1),
    # E|X - X'| = 2 / sqrt(pi). The V-statistic's bias is O(1/n); tolerance from 4 sd of a few repeats.
    mu, n = 1.0, 2000
    s = np.sqrt(2.0)
    exy = s * 2 * scipy.stats.norm.pdf(mu / s) + mu * (2 * scipy.stats.norm.cdf(mu / s) - 1)
    exact = np.sqrt(2 * exy - 2 * 2 / np.sqrt(np.pi))
    rng = np.random.default_rng(2)
    est = [energy_distance(rng.normal(size=n), rng.normal(size=n) + mu) for _ in range(5)]
    assert abs(np.mean(est) - exact) < 4 * np.std(est, ddof=1) / np.sqrt(5) + 2 / n


def test_energy_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="x, y"):
        energy_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x: contains NaN"):
        energy_distance(np.array([np.nan, 1.0]), np.zeros(2))
