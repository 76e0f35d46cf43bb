"""Real data: MovieLens loaders on written files, ALS, the digits tasks, pool environments, the presets."""

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.agents import GaussianPrior
from dts_ppl.bandits.envs import pool_environment
from dts_ppl.bandits.simulation import simulate
from dts_ppl.cli import main
from dts_ppl.core import inference as core_inference
from dts_ppl.core.likelihoods import Bernoulli
from dts_ppl.core.sampling import sample_prior
from dts_ppl.data import als, digits_tasks, embed, fit_linear_models, load_movielens
from dts_ppl.data.factorisation import _half_step
from dts_ppl.experiments import realdata
from dts_ppl.experiments.registry import PRESETS

ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------- MovieLens files


def _low_rank_ratings(num_users=80, num_items=60, rank=2, density=0.6, noise=0.0, seed=0):
    rng = np.random.RandomState(seed)
    U, V = rng.randn(num_users, rank), rng.randn(num_items, rank)
    mask = rng.rand(num_users, num_items) < density
    u, i = np.nonzero(mask)
    r = 3.0 + np.sum(U[u] * V[i], -1) + noise * rng.randn(u.size)
    return u, i, r


def write_100k(path, u, i, r, user_offset=1, item_offset=1):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "u.data", "w") as f:
        for a, b, c in zip(u, i, r, strict=True):
            f.write(f"{a + user_offset}\t{b + item_offset}\t{c}\t881250949\n")
    with open(path / "u.item", "w", encoding="latin-1") as f:
        for b in range(int(i.max()) + 1):
            f.write(f"{b + item_offset}|Movie {b} (1995)|01-Jan-1995||http://x|0|1|0\n")
    return path


def write_latest(path, u, i, r):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for a, b, c in zip(u, i, r, strict=True):
            f.write(f"{a + 1},{10 * b + 7},{c},964982703\n")
    with open(path / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for b in range(int(i.max()) + 1):
            f.write(f'{10 * b + 7},"Movie, The {b} (1995)",Comedy|Drama\n')
    return path


def test_load_100k_and_latest_small_give_the_written_ratings(tmp_path):
    u, i, r = _low_rank_ratings()
    r = np.round(r, 1)
    a = load_movielens(write_100k(tmp_path / "ml-100k", u, i, r, user_offset=5))
    b = load_movielens(write_latest(tmp_path / "small", u, i, r))
    assert (a.format, b.format) == ("100k", "latest-small")
    for ds in (a, b):
        order = np.lexsort((ds.items, ds.users))
        np.testing.assert_array_equal(ds.users[order], u)  # ids re-indexed 0..U-1 in id order
        np.testing.assert_array_equal(ds.items[order], i)
        np.testing.assert_allclose(ds.ratings[order], r)
        assert ds.num_users == u.max() + 1 and ds.num_items == i.max() + 1
    assert a.user_ids[0] == 5 and a.titles[3] == "Movie 3 (1995)"
    assert b.item_ids[2] == 27 and b.titles[2] == "Movie, The 2 (1995)"  # quoted CSV with a comma


def test_movielens_directory_from_the_environment_variable(tmp_path, monkeypatch):
    u, i, r = _low_rank_ratings(20, 10)
    monkeypatch.setenv("DTS_MOVIELENS_DIR", str(write_100k(tmp_path / "d", u, i, r)))
    assert load_movielens().num_users == 20


def test_movielens_errors_name_the_missing_file_and_its_format(tmp_path, monkeypatch):
    monkeypatch.delenv("DTS_MOVIELENS_DIR", raising=False)
    with pytest.raises(ValueError, match="data_dir: expected a directory.*DTS_MOVIELENS_DIR"):
        load_movielens()
    monkeypatch.setenv("DTS_MOVIELENS_DIR", "")  # set but empty: not the current directory
    with pytest.raises(ValueError, match="data_dir: expected a directory"):
        load_movielens()
    with pytest.raises(ValueError, match="is not a directory"):
        load_movielens(tmp_path / "nowhere")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "u.data").write_text("1\t2\t3\t4\n")
    with pytest.raises(ValueError, match=r"has u.data but not u.item: expected '\|'-separated"):
        load_movielens(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(ValueError, match="not ratings.csv: expected CSV with header 'userId,movieId,rating"):
        load_movielens(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="holds neither u.data"):
        load_movielens(tmp_path / "c")
    d = write_100k(tmp_path / "d", *_low_rank_ratings(5, 5))
    with open(d / "u.data", "a") as f:
        f.write("7\tx\t3\t1\n")
    with pytest.raises(ValueError, match="u.data line .*non-numeric.*tab-separated"):
        load_movielens(d)
    e = write_latest(tmp_path / "e", *_low_rank_ratings(5, 5))
    (e / "ratings.csv").write_text("user,movie,rating\n1,2,3\n")
    with pytest.raises(ValueError, match="ratings.csv line 1: header"):
        load_movielens(e)


# ------------------------------------------------------------------------------------ ALS


def test_als_half_step_is_ridge_regression():
    """One ALS half-step against numpy's ridge solution, user by user."""
    rng = np.random.RandomState(1)
    V = rng.randn(7, 3)
    rows, cols = rng.randint(0, 4, 40), rng.randint(0, 7, 40)
    resid = rng.randn(40)
    out = np.asarray(_half_step(jnp.asarray(V), jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(resid), 4, 0.7))
    for u in range(4):
        X, y = V[cols[rows == u]], resid[rows == u]
        np.testing.assert_allclose(out[u], np.linalg.solve(X.T @ X + 0.7 * np.eye(3), X.T @ y), atol=1e-10)


def test_als_recovers_low_rank_ratings_and_reports_heldout_rmse():
    u, i, r = _low_rank_ratings(noise=0.0)
    # rank 2 around 3.0 is rank 3 around the observed mean (the centring leaves a constant)
    exact = als(u, i, r, rank=3, ridge=1e-3, num_iterations=100, test_fraction=0.1)
    assert exact.test_rmse < 0.02 and exact.train_rmse < 0.01
    u, i, r = _low_rank_ratings(noise=0.5, seed=2)
    noisy = als(u, i, r, rank=2, ridge=1.0, num_iterations=30, test_fraction=0.2)
    assert 0.4 < noisy.train_rmse < 0.55 and 0.45 < noisy.test_rmse < 0.8  # about the noise sd
    assert noisy.user_vectors.shape == (80, 2) and noisy.item_vectors.shape == (60, 2)
    np.testing.assert_allclose(
        noisy.predict(u[:3], i[:3]), noisy.mean + np.sum(noisy.user_vectors[u[:3]] * noisy.item_vectors[i[:3]], -1)
    )
    with pytest.raises(ValueError, match="rank"):
        als(u, i, r, rank=0)
    with pytest.raises(ValueError, match="test_fraction"):
        als(u, i, r, test_fraction=1.0)
    with pytest.raises(ValueError, match="users, items, ratings"):
        als(u, i[:-1], r)


# ---------------------------------------------------------------------------------- digits


def test_digits_fits_match_scikit_learn():
    sk_linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.RandomState(0)
    X = rng.randn(3, 30, 4)
    y = (rng.rand(3, 30) < 0.4).astype(float)
    lin = fit_linear_models(X, y, 2.0, "linear")
    log = fit_linear_models(X, y, 2.0, "logistic")
    for s in range(3):
        ridge = sk_linear.Ridge(alpha=2.0, fit_intercept=False).fit(X[s], y[s])
        np.testing.assert_allclose(lin[s], ridge.coef_, atol=1e-8)
        lr = sk_linear.LogisticRegression(C=0.5, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X[s], y[s])
        np.testing.assert_allclose(log[s], lr.coef_[0], atol=1e-5)


def test_digits_tasks_are_class_clusters():
    pytest.importorskip("sklearn")
    t = digits_tasks(pretrain_per_class=20, bandit_per_class=5)
    assert t.pretrain_thetas.shape == (200, 5) and t.bandit_thetas.shape == (50, 5)
    assert t.features.shape[1] == 5 and np.all(t.features[:, -1] == 1.0)
    # a class's fitted model scores its own images higher than the others
    gaps = []
    for theta, c in zip(t.bandit_thetas, t.bandit_classes, strict=True):
        s = t.features @ theta
        gaps.append(s[t.labels == c].mean() - s[t.labels != c].mean())
    assert min(gaps) > 0 and np.mean(gaps) > 0.2, gaps
    with pytest.raises(ValueError, match="dim"):
        embed(np.ones((10, 4)), 1)


# -------------------------------------------------------------------------- environments


def test_pool_environment_draws_rows_of_the_pools(key):
    thetas = jnp.arange(30.0).reshape(10, 3)
    contexts = -jnp.arange(12.0).reshape(4, 3)
    env = pool_environment(thetas, contexts, 5)
    th = np.asarray(env.sample_theta(key))
    rows = th[:, 0] / 3
    assert th.shape == (5, 3) and len(set(rows)) == 5 and np.all(np.isin(th, np.asarray(thetas)))
    x = np.asarray(env.sample_context(key))
    assert any(np.array_equal(x, c) for c in np.asarray(contexts))
    shared = pool_environment(thetas, contexts, 3, Bernoulli(), shared=True)
    assert shared.sample_theta(key).shape == (3,) and shared.shared
    feats = np.asarray(shared.sample_context(key))
    assert feats.shape == (3, 3) and len({tuple(f) for f in feats}) == 3
    res = simulate(key, shared, realdata.ag.random_policy(3), 10, 2, progress=False)
    assert res.cumulative.shape == (2, 10)
    with pytest.raises(ValueError, match="thetas: expected at least num_actions = 11 rows"):
        pool_environment(thetas, contexts, 11)
    with pytest.raises(ValueError, match="contexts: expected rows of dimension 3"):
        pool_environment(thetas, jnp.ones((4, 2)), 2)
    with pytest.raises(ValueError, match="thetas: contains NaN"):
        pool_environment(thetas.at[0, 0].set(jnp.nan), contexts, 2)
    with pytest.raises(ValueError, match="num_actions"):
        pool_environment(thetas, contexts, 0)


# -------------------------------------------------------------------------------- presets


@pytest.fixture
def fast_training(tmp_path, monkeypatch):
    monkeypatch.setenv("DTS_PPL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(realdata, "TRAINING", realdata.TRAINING._replace(steps=30, hidden=8, num_levels=4))


POLICY_AGENTS = ["dTS Bayes-UCB", "dTS UCB", "LinTS Bayes-UCB"]
HIER_POLICY_AGENTS = ["HierTS Bayes-UCB", "HierTS UCB"]


def test_presets_are_registered_with_the_issue_names():
    names = ("movielens", "digits-multitask", "digits-multitask-bernoulli", "ring-shared", "roll-shared")
    for name in (*names, "movielens-users", "movielens-users-generated"):
        assert name in PRESETS


def test_generated_ratings_are_clustered_low_rank_and_cover_every_user_and_item():
    cfg = realdata.GENERATED
    r = realdata.generated_ratings()
    assert r.num_users == cfg.num_users and r.num_items == cfg.num_items
    assert set(np.unique(r.users)) == set(range(cfg.num_users)) and set(np.unique(r.items)) == set(range(cfg.num_items))
    assert abs(r.users.size / (cfg.num_users * cfg.num_items) - cfg.density) < 0.03
    again = realdata.generated_ratings()
    np.testing.assert_array_equal(r.ratings, again.ratings)  # seeded


def test_movielens_users_twin_splits_users_and_runs(fast_training, key):
    """Cold start: theta is a held-out user's vector (never in the prior's sample), actions are K films."""
    s = realdata.movielens_users_setup(ratings=realdata.generated_ratings(), progress=False)
    cfg = realdata.MOVIELENS_USERS
    n_users = realdata.GENERATED.num_users
    assert s["pretrain"].shape[0] == round(cfg.pretrain_share * n_users)
    assert s["pretrain"].shape[0] + s["heldout"].shape[0] == n_users
    pre, held = {tuple(v) for v in s["pretrain"]}, {tuple(v) for v in s["heldout"]}
    assert not pre & held
    env = s["env"]
    assert env.shared and env.num_actions == cfg.num_actions and env.dim == realdata.MOVIELENS.rank
    theta = np.asarray(env.sample_theta(key))
    assert any(np.allclose(theta, h, atol=1e-6) for h in s["heldout"])
    _, agents = PRESETS["movielens-users-generated"].build(key, 10)
    assert list(agents) == ["dTS", "LinTS", "LinUCB", "bank TS", "random", *POLICY_AGENTS]
    for name in ("dTS UCB", "LinTS Bayes-UCB"):
        assert simulate(key, env, agents[name], 10, 2, progress=False).cumulative.shape == (2, 10)


def test_helpers_fit_and_hierarchy():
    x = np.random.RandomState(0).randn(500, 3) @ np.diag([1.0, 2.0, 0.5])
    g = GaussianPrior.fit(x)
    np.testing.assert_allclose(g.cov, np.cov(x.T), rtol=1e-6)
    own = 0.5 * np.asarray(g.cov)
    hier = realdata.gaussian_hierarchy(g, own)
    # theta_a = m + h + e_a: marginal covariance own + (C - own) = C
    np.testing.assert_allclose(hier.cov1 + hier.covs[0], g.cov, rtol=1e-6)


def test_the_library_replaces_the_former_copies_exactly():
    """GaussianPrior.fit, hierarchical_prior, sample_prior and ddpm.with_action_cov give what the
    module's own copies computed (their formulas written out here as the reference)."""
    x = np.random.RandomState(1).randn(400, 3) @ np.array([[1.0, 0.3, 0.0], [0.0, 2.0, 0.5], [0.0, 0.0, 0.5]])
    # the former fitted_gaussian: numpy mean, np.cov, jitter * mean variance on the diagonal
    cov = np.cov(x.T) + 1e-9 * np.trace(np.cov(x.T)) / 3 * np.eye(3)
    g = GaussianPrior.fit(x, 1e-9)
    np.testing.assert_allclose(g.mean, x.mean(0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g.cov, cov, rtol=1e-12)
    with pytest.warns(DeprecationWarning, match="GaussianPrior.fit"):
        old = realdata.fitted_gaussian(x)
    np.testing.assert_array_equal(old.cov, g.cov)
    # the former gaussian_hierarchy: S_1 = own, S_2 = C - own with eigenvalues floored, offset m
    C = np.asarray(g.cov)
    for own in (0.5 * C, 2.0 * C):  # C - own positive definite, then negative definite (floored)
        evals, evecs = np.linalg.eigh(C - own)
        top = (evecs * np.maximum(evals, 1e-6 * np.trace(C) / 3)) @ evecs.T
        hier = realdata.gaussian_hierarchy(g, own)
        assert hier.num_levels == 1 and hier.is_linear
        np.testing.assert_allclose(hier.cov1, own, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(hier.covs[0], top, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(hier.link1.weight, np.eye(3))
        mean, marginal = core_inference.theta_prior_moments(hier)
        np.testing.assert_allclose(mean, g.mean, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(marginal, own + top, rtol=1e-12, atol=1e-14)
    # the former prior_samples: the core sampler with one action, theta only
    prior = realdata.gaussian_hierarchy(g, 0.5 * C)
    key = jax.random.PRNGKey(3)
    want = core_inference.sample(key, prior, core_inference.prior_conditionals(prior, 1), (50,))[1][:, 0]
    np.testing.assert_array_equal(sample_prior(key, prior, 50)[1][:, 0], want)
    with pytest.warns(DeprecationWarning, match="sample_prior"):
        np.testing.assert_array_equal(realdata.prior_samples(key, prior, 50), want)


def test_roll_preset_resets_s1_with_the_library_rule():
    """roll-shared's S_1 is the former with_action_cov copy's: action_covariance("beta", betas, scale)."""
    from dts_ppl.ddpm import action_covariance
    from dts_ppl.experiments import swissroll

    shipped, meta = swissroll.swiss_roll_prior(10_000, 40, progress=False)
    s = realdata.roll_setup(progress=False)
    s1 = action_covariance("beta", np.asarray(meta["betas"]), np.asarray(meta["standardisation"]["scale"]), 2)
    np.testing.assert_array_equal(s["prior"].cov1, jnp.asarray(s1, shipped.cov1.dtype))
    np.testing.assert_array_equal(s["prior"].covs, shipped.covs)  # only S_1 changes
    assert s["meta"]["action_cov"] == "beta"


@pytest.mark.slow
def test_movielens_preset_runs_on_written_files_through_the_cli(tmp_path, fast_training, monkeypatch):
    monkeypatch.setattr(realdata, "MOVIELENS", realdata.MOVIELENS._replace(min_ratings=20, num_actions=10))
    u, i, r = _low_rank_ratings(80, 60, rank=3, density=0.5, noise=0.3)
    data = write_100k(tmp_path / "ml", u, i, np.clip(np.round(r), 1, 5))
    out = tmp_path / "ml.json"
    argv = ["bench", "regret", "--preset", "movielens", "--runs", "2", "--rounds", "15", "--quiet", "--x64"]
    assert main([*argv, "--data-dir", str(data), "--json", str(out)]) == 0
    names = list(json.loads(out.read_text())["algorithms"])
    assert names == ["dTS", "LinTS", "LinUCB", "HierTS", "bank TS", "random", *POLICY_AGENTS, *HIER_POLICY_AGENTS]
    monkeypatch.delenv("DTS_MOVIELENS_DIR", raising=False)
    assert main(argv) == 2  # no data directory: a clear error, no traceback


def test_digits_preset_builds_and_runs(fast_training, key):
    pytest.importorskip("sklearn")
    env, agents = PRESETS["digits-multitask"].build(key, 20)
    assert list(agents) == ["dTS", "LinTS", "LinUCB", "bank TS", "random", *POLICY_AGENTS] and env.shared
    for name in ("dTS", "bank TS"):  # the preset's own agents; the linear baselines run in test_simulate
        assert simulate(key, env, agents[name], 20, 2, progress=False).cumulative.shape == (2, 20)


def _studies_common():
    """studies/common.py (the lab's helpers; not installed with the package), loaded from its path."""
    spec = importlib.util.spec_from_file_location("studies_common", ROOT / "studies" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ring_preset_builds_and_its_prior_fit_is_measured(fast_training, key):
    s = realdata.ring_setup(progress=False)
    fit = _studies_common().prior_fit(key, s["prior"], s["gauss"], s["bank"], s["pretrain"], num_samples=300)
    # the pre-training sample and the bank are draws of one ring: far closer than the Gaussian fit
    assert fit["energy_pretrain_sample"] < 0.5 * fit["energy_gaussian_fit"]
    ring = np.asarray(realdata.sample_ring(key, 4000))
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1).mean(), 2.0, atol=0.02)
