"""The Swiss-roll data, its JAX twin and the cached trained prior."""

import jax
import numpy as np
import pytest

from dts_ppl.experiments.swissroll import make_swiss_roll, sample_swiss_roll, swiss_roll, swiss_roll_prior


def test_jax_roll_matches_scikit_learn_in_distribution():
    n = 20_000
    a = swiss_roll(n, seed=0)
    b = np.asarray(sample_swiss_roll(jax.random.PRNGKey(0), n))
    # standardised with population constants: mean ~ 0, sd ~ 1
    np.testing.assert_allclose(a.mean(0), 0.0, atol=4 / np.sqrt(n))
    np.testing.assert_allclose(a.std(0), 1.0, atol=0.03)
    # both samples agree on mean, sd and the radius distribution (5 s.e. of the difference)
    for fa, fb in [(a, b), (a**2, b**2), (np.hypot(*a.T)[:, None], np.hypot(*b.T)[:, None])]:
        se = np.sqrt(fa.var(0) / n + fb.var(0) / n)
        assert np.all(np.abs(fa.mean(0) - fb.mean(0)) < 5 * se)


def test_make_swiss_roll_equals_scikit_learn():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ours = make_swiss_roll(500, noise=0.5, random_state=3)
    theirs = sklearn_datasets.make_swiss_roll(500, noise=0.5, random_state=3)[0]
    np.testing.assert_array_equal(ours, theirs)


def test_prior_is_cached_and_reloaded_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("DTS_PPL_CACHE", str(tmp_path))
    p1, m1 = swiss_roll_prior(200, 3, seed=1, progress=False, steps=20, hidden=8)
    assert len(list(tmp_path.glob("swissroll-*.npz"))) == 1
    p2, m2 = swiss_roll_prior(200, 3, seed=1, progress=False, steps=20, hidden=8)
    assert m1 == m2 and m1["study_config"]["num_samples"] == 200
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_presets_are_in_the_bench_registry():
    import dts_ppl.experiments.registry as presets
    import dts_ppl.experiments.swissroll as sr

    names = presets.preset_names()
    for n in (10, 50, 100, 2500, 5000, 10000, 50000):
        assert f"swissroll-pretrain-{n}" in names
    for L in (2, 10, 40, 70, 100):
        assert f"swissroll-depth-{L}" in names
    p = presets.get_preset("swissroll-depth-70")
    assert (p.rounds, p.runs) == (sr.STUDY.num_rounds, sr.STUDY.num_runs) and "L=70" in p.description


def test_regret_ratio_delta_method():
    from dts_ppl.bandits.simulation import RegretResult, regret_ratio

    rng = np.random.default_rng(0)
    a = rng.normal(100, 10, 400)
    b = 2 * a + rng.normal(0, 5, 400)
    r, se = regret_ratio(RegretResult(b[:, None], 0.0), RegretResult(a[:, None], 0.0))
    assert abs(r - b.mean() / a.mean()) < 1e-12
    # bootstrap check of the delta-method s.e.
    idx = rng.integers(0, 400, (2000, 400))
    boot = b[idx].mean(1) / a[idx].mean(1)
    assert 0.8 < se / boot.std() < 1.25
