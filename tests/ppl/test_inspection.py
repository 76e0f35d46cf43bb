"""ArviZ conversion and comparison plots (no NUTS: a NutsResult is built from guide draws)."""

import arviz as az
import jax
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS

from dts_ppl import DTSGuide, to_inference_data
from dts_ppl.experiments.validation import make_problem
from dts_ppl.ppl.arviz_adapter import COMPARE_COLUMNS, LOO_FIELDS, group_names, inference_data, psis
from dts_ppl.ppl.comparison import compare_site
from dts_ppl.ppl.inspection import compare, loo, plot_comparison
from dts_ppl.ppl.nuts import NUTS_EXTRA_FIELDS, NutsResult


@pytest.fixture(scope="module")
def problem():
    return make_problem("linear", jax.random.PRNGKey(3), num_obs=12, num_actions=3)


def _draws(model, X, A, y, num):
    guide = DTSGuide(model)
    return guide.sample_posterior(jax.random.PRNGKey(0), guide.fit(X, A, y), sample_shape=(num,))


def _fake_nuts(draws, chains=2):
    samples = {k: np.asarray(v).reshape((chains, -1) + v.shape[1:]) for k, v in draws.items()}
    c, n = samples["theta"].shape[:2]
    stats = {
        "diverging": np.zeros((c, n), bool),
        "accept_prob": np.full((c, n), 0.9),
        "num_steps": np.full((c, n), 7),
        "energy": np.ones((c, n)),
        "potential_energy": np.ones((c, n)),
    }
    return NutsResult(samples, stats)


def test_to_inference_data_groups_dims_and_coords(problem):
    model, (X, A, y) = problem.model, (problem.X, problem.A, problem.y)
    draws = _draws(model, X, A, y, 40)
    guide = to_inference_data(model, draws, X, A, y, key=jax.random.PRNGKey(1))
    assert group_names(guide) == {
        "posterior",
        "prior",
        "prior_predictive",
        "posterior_predictive",
        "observed_data",
        "constant_data",
        "log_likelihood",
    }
    assert guide.posterior["psi"].dims == ("chain", "draw", "level", "latent_feature")
    assert guide.posterior["theta"].dims == ("chain", "draw", "actions", "feature")
    assert guide.prior["theta"].dims == ("chain", "draw", "actions", "feature") and guide.prior["theta"].shape[1] == 40
    assert list(guide.posterior["level"].values) == [2, 1]  # psi[0] is the top latent psi_2
    assert guide.posterior_predictive["y"].shape == (1, 40, 12) and guide.prior_predictive["y"].shape == (1, 40, 12)
    assert guide.log_likelihood["y"].dims == ("chain", "draw", "obs")
    np.testing.assert_array_equal(guide.observed_data["y"].values, np.asarray(y))
    np.testing.assert_array_equal(guide.constant_data["A"].values, np.asarray(A))
    assert guide.constant_data["X"].dims == ("obs", "feature")
    np.testing.assert_allclose(guide.posterior["theta"].values[0], np.asarray(draws["theta"]))
    # log_likelihood is log N(y_i; x_i^T theta_{A_i}, sigma^2), checked for one draw and one observation
    theta, i = np.asarray(draws["theta"][3]), 5
    sigma = model.likelihood.scale
    want = -0.5 * ((y[i] - X[i] @ theta[A[i]]) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(guide.log_likelihood["y"].values[0, 3, i], want, rtol=1e-10)

    nuts = to_inference_data(model, _fake_nuts(draws), X, A, y)
    assert group_names(nuts) == {"posterior", "sample_stats", "observed_data", "constant_data", "log_likelihood"}
    assert nuts.posterior["theta"].shape == (2, 20, 3, 3)
    assert {"diverging", "acceptance_rate", "n_steps", "energy", "lp"} <= set(nuts.sample_stats.data_vars)
    with pytest.raises(ValueError, match="draws"):
        to_inference_data(model, {"theta": draws["theta"]})
    with pytest.raises(ValueError, match="X"):
        to_inference_data(model, draws, None, None, y)


def test_loo_and_compare_on_guide_and_nuts_and_dims_agree_with_from_numpyro(problem):
    """Real NUTS (short): az.loo and az.compare run on both InferenceData; dims as az.from_numpyro names them.

    The model is linear-Gaussian, so the guide is the exact posterior and both elpd_loo estimates
    target the same number: they agree within the standard error of their difference plus 1.
    """
    model, (X, A, y) = problem.model, (problem.X, problem.A, problem.y)
    mcmc = MCMC(NUTS(model), num_warmup=150, num_samples=150, num_chains=1, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(4), X, A, y, extra_fields=NUTS_EXTRA_FIELDS)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    nuts = to_inference_data(model, NutsResult(samples, extra), X, A, y, key=jax.random.PRNGKey(5))
    guide = to_inference_data(model, _draws(model, X, A, y, 300), X, A, y, key=jax.random.PRNGKey(5))
    for idata in (nuts, guide):
        result = loo(idata)
        assert np.isfinite(result["elpd_loo"]) and result["loo_i"].shape == (12,)
    table = compare({"dTS guide": guide, "NUTS": nuts})
    assert set(table.index) == {"dTS guide", "NUTS"}
    assert abs(table["elpd_diff"].max()) < table["dse"].max() + 1.0

    reference = az.from_numpyro(mcmc)
    groups = {"posterior", "log_likelihood", "observed_data"} & group_names(reference)
    assert "posterior" in groups  # ArviZ 1.x's from_numpyro leaves log_likelihood out unless asked
    for group in sorted(groups):
        for name, var in getattr(reference, group).data_vars.items():
            assert getattr(nuts, group)[name].dims == var.dims, (group, name)


def test_loo_and_compare_have_the_same_fields_on_either_arviz_and_match_plain_importance_sampling():
    """elpd_loo against the unsmoothed importance-sampling LOO (numpy): log 1 / mean_s(1 / p(y_i | theta_s)).

    Log-likelihoods of a well-specified normal model with 4,000 draws: every k-hat is small, so
    Pareto smoothing changes the sum by far less than 0.05.
    """
    rng = np.random.default_rng(1)
    n, draws = 20, 2000
    y = rng.normal(size=n)
    mu = y.mean() + rng.normal(size=(2, draws)) / np.sqrt(n)  # the posterior of a N(mu, 1) mean, flat prior
    log_lik = -0.5 * (y[None, None, :] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    make = inference_data
    a = make({"mu": mu}, log_likelihood={"y": log_lik}, observed_data={"y": y})
    b = make({"mu": mu}, log_likelihood={"y": log_lik - 0.05}, observed_data={"y": y})  # 1.0 worse in total
    result = loo(a)
    assert set(LOO_FIELDS) <= set(vars(result)) and result["loo_i"].shape == (n,) and result.n_data_points == n
    flat = log_lik.reshape(-1, n)
    plain = -np.log(np.mean(np.exp(-flat), axis=0))
    assert np.all(result.pareto_k < 0.5)
    np.testing.assert_allclose(result.loo_i, plain, atol=0.01)
    assert abs(result.elpd_loo - plain.sum()) < 0.05 and result.elpd_loo == result["elpd_loo"]
    assert result.se == pytest.approx(np.sqrt(n * np.var(result.loo_i, ddof=1)), rel=1e-12)
    lpd = np.log(np.mean(np.exp(flat), axis=0)).sum()
    assert abs(result.p_loo - (lpd - plain.sum())) < 0.05  # p_loo = lpd - elpd_loo
    table = compare({"a": a, "b": b})
    assert tuple(table.columns) == COMPARE_COLUMNS and list(table.index) == ["a", "b"]
    np.testing.assert_allclose(table.loc["b", "elpd_diff"], 1.0, atol=1e-6)
    np.testing.assert_allclose(table.loc["a", "elpd_loo"], result.elpd_loo, rtol=1e-12)
    np.testing.assert_allclose(table["se"], result.se, rtol=1e-12)  # b's pointwise values are a's - 0.05
    assert table.loc["b", "dse"] == pytest.approx(0.0, abs=1e-9)
    assert list(table["rank"]) == [0, 1] and abs(table["weight"].sum() - 1) < 1e-6


def test_plot_comparison_writes_a_file(problem, tmp_path):
    model, (X, A, y) = problem.model, (problem.X, problem.A, problem.y)
    g = _draws(model, X, A, y, 60)
    sets = {"guide": to_inference_data(model, g), "NUTS": to_inference_data(model, _fake_nuts(g))}
    path = tmp_path / "cmp.png"
    fig = plot_comparison(sets, path, pair=(("psi", (1, 0)), ("theta", (2, 1))))
    assert path.stat().st_size > 10_000 and len(fig.axes) >= 4
    with pytest.raises(ValueError, match="pair"):
        plot_comparison(sets, None, pair=(("psi", (1,)), ("theta", (0, 0))))


def test_compare_site_against_known_shift():
    # "NUTS" = iid N(0, 1) draws, guide = N(0.5, 1.2^2): the standardised error is 0.5 and the sd ratio 1.2,
    # within their Monte-Carlo error; the distance is far above the floor.
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 2000, 1))
    q = 0.5 + 1.2 * rng.normal(size=(4000, 1))
    s = compare_site(q, p, ess_mean=np.full(1, 4000.0))
    assert abs(s.max_std_mean_error - 0.5) < 4 * s.mcse * 1.2
    assert abs(float(s.sd_ratio[0]) - 1.2) < 0.05
    assert s.distance > 5 * s.distance_nuts_floor
    same = compare_site(rng.normal(size=(4000, 1)), p, ess_mean=np.full(1, 4000.0))
    assert same.max_std_mean_error < 4 * same.mcse and same.distance < 2 * same.distance_nuts_floor


def test_psis_of_constant_weights_is_minus_inf_and_heavy_tails_are_flagged():
    assert psis(np.full(500, 3.0))[1] == -np.inf
    rng = np.random.default_rng(0)
    assert psis(rng.standard_cauchy(4000) ** 2)[1] > 0.7  # weights with a very heavy tail


@pytest.mark.slow  # traces every preset's model and guide, the 40-level DDPM one included (248 s under load)
def test_presets_build_valid_problems():
    from dts_ppl.experiments.validation import PRESETS
    from dts_ppl.ppl.comparison import check_inputs

    for name in PRESETS:
        p = make_problem(name, jax.random.PRNGKey(0), num_obs=7)
        assert p.X.shape == (7, p.model.prior.dim) and p.y.shape == (7,)
        if name in ("mlp", "ddpm"):  # the others run through validate in test_validate / test_cli_validate
            check_inputs(p.model, DTSGuide(p.model, linearisation="jacobian"), p.X, p.A, p.y)
    ddpm = make_problem("ddpm", jax.random.PRNGKey(0), num_obs=3).model
    assert ddpm.prior.num_levels == 40 and ddpm.prior.dim == 2 and not ddpm.prior.is_linear
    with pytest.raises(ValueError, match="preset"):
        make_problem("nonsense", jax.random.PRNGKey(0))
