"""The issue-18 presets (dts_ppl.experiments.paper_extra): names, constructions, shared problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.experiments import paper_extra as pe
from dts_ppl.experiments.registry import PRESETS, get_preset, preset_names
from dts_ppl.experiments.synthetic import random_linear_prior


def test_new_presets_are_listed():
    names = set(preset_names())
    want = {f"fig2b-d{d}" for d in (5, 10, 15, 20)} | {f"fig2b-L{L}" for L in (2, 4, 5, 6)}
    want |= {f"fig2c-paper-v{v}" for v in ("0.5", "1", "1.5")} | {"fig2c-v0.5", "fig2c-v1", "fig2c-v1.5"}
    want |= {"table2-mcmc", "fig6-k10000", "lints-prior-fig1-lindiff-lin-k10000", "lints-prior-fig2a-k100"}
    assert want <= names


def test_fig2b_active_dims():
    assert pe.fig2b_active_dims(5, 2) == (5, 2)
    assert pe.fig2b_active_dims(20, 2) == (20, 2)
    assert pe.fig2b_active_dims(5, 6) == (5, 2, 2, 2, 2, 2)


def _thetas(name, n=3):
    k_build = jax.random.split(jax.random.PRNGKey(0))[0]
    env, _ = get_preset(name).build(k_build, 10)
    return np.stack([np.asarray(env.sample_theta(jax.random.PRNGKey(i))) for i in range(n)])


def test_presets_that_reuse_a_problem_draw_the_same_theta():
    np.testing.assert_array_equal(_thetas("fig2b-d5"), _thetas("fig1-lindiff-lin-k100"))
    np.testing.assert_array_equal(_thetas("lints-prior-fig2a-k100"), _thetas("fig2a-k100"))
    np.testing.assert_array_equal(_thetas("fig2c-paper-v1"), _thetas("fig2c-v1"))


def test_repair_covariance_clips_eigenvalues_and_keeps_pd_matrices():
    a = jax.random.normal(jax.random.PRNGKey(0), (4, 4))
    fixed = pe.repair_covariance(a, floor=0.1)
    np.testing.assert_allclose(fixed, fixed.T, atol=1e-12)
    assert np.linalg.eigvalsh(np.asarray(fixed)).min() >= 0.1 - 1e-12
    pd = a @ a.T + jnp.eye(4)
    np.testing.assert_allclose(pe.repair_covariance(pd, floor=0.1), pd, rtol=1e-10, atol=1e-12)


def test_paper_perturbation_adds_uniform_v_to_every_entry():
    prior = random_linear_prior(jax.random.PRNGKey(1), 5, (5, 2))
    v = 1.0
    wrong = pe.paper_perturbation(jax.random.PRNGKey(2), prior, v)
    for level in (1, 2):
        diff = np.asarray(wrong.link(level).weight - prior.link(level).weight)
        assert diff.min() >= v and diff.max() <= v + 0.5  # zeroed columns perturbed too
    for s, s_true in zip([wrong.cov1, *wrong.covs], [prior.cov1, *prior.covs], strict=True):
        s = np.asarray(s)
        np.testing.assert_allclose(s, s.T, atol=1e-12)
        assert np.linalg.eigvalsh(s).min() >= pe.EIG_FLOOR - 1e-12
        # symmetrised perturbation of I by U[v, v + 0.5]: off-diagonal entries within [v, v + 0.5]
        off = s - np.asarray(s_true)
        assert off.min() >= v - 1e-9 and off.max() <= v + 0.5 + 1e-9


def test_fig6_problem_meets_the_bounds_assumptions():
    env, prior = pe.fig6_environment(jax.random.PRNGKey(0))
    for level in range(1, prior.num_levels + 1):
        w = np.asarray(prior.link(level).weight)
        assert abs(np.linalg.eigvalsh(w.T @ w).max() - 1) < 1e-9
    xs = jax.vmap(env.sample_context)(jax.random.split(jax.random.PRNGKey(1), 50))
    np.testing.assert_allclose(jnp.linalg.norm(xs, axis=-1), 1.0, rtol=1e-12)
    assert env.num_actions == 10000 and prior.num_levels == 5


def test_the_registry_is_one_table_and_the_old_names_warn():
    from dts_ppl.experiments import realdata, registry, regret, shapes, swissroll

    groups = [registry.paper_presets(), registry.paper_extra_presets()]
    groups += [registry.swissroll_presets(), registry.realdata_presets()]
    extra = [registry.classification_presets(), [registry.Preset._make(p) for p in shapes.presets()]]
    names = [p.name for g in [*groups, *extra] for p in g]
    assert len(names) == len(set(names)) == len(PRESETS) == 76
    assert all(isinstance(p, registry.Preset) and p.name == n for n, p in PRESETS.items())
    with pytest.warns(DeprecationWarning, match="registry"):
        assert regret.PRESETS is registry.PRESETS
    with pytest.warns(DeprecationWarning, match="registry"):
        assert regret.get_preset("fig2b-d10") is registry.get_preset("fig2b-d10")
    for module, group in ((pe, 1), (swissroll, 2), (realdata, 3)):
        with pytest.warns(DeprecationWarning, match="registry"):
            assert list(module.presets()) == [p.name for p in groups[group]]
    with pytest.warns(DeprecationWarning, match="STUDY_PRIORS"):
        assert swissroll.PRESETS["swissroll-depth-70"] == (10_000, 70)
    with pytest.warns(DeprecationWarning, match="SIZES"):
        assert regret._SIZES[100] == dict(dim=5, active_dims=(5, 2), hidden=20)
    # typed configs: the cache keys are the former dicts' (so cached and shipped priors still match)
    assert swissroll.TRAINING._asdict() == dict(
        schedule="cosine", hidden=128, steps=6000, variance="beta", action_cov=1.0
    )
    assert realdata.TRAINING._asdict() == dict(
        num_levels=40, schedule="cosine", hidden=128, steps=6000, variance="beta"
    )
