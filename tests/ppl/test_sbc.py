"""Simulation-based calibration: the band's false-alarm rate, the exact guide passes, a wrong guide fails."""

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.calibration import VSBCResult
from scipy import stats

from dts_ppl import BanditModel, DiffusionPrior, DTSGuide
from dts_ppl.agents import dts
from dts_ppl.cli import main
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.experiments.synthetic import random_linear_prior
from dts_ppl.ppl.sbc import (
    DistortedGuide,
    bandit_sbc,
    ecdf_band,
    quantity_names,
    rank_counts,
    report_from_vsbc,
    sbc,
    sbc_report,
)


def _se(p, n):
    return np.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------ the band


@pytest.mark.parametrize("num_datasets, num_draws", [(200, 19), (1000, 99)])
def test_band_false_alarm_rate_on_uniform_ranks_is_five_percent(num_datasets, num_draws):
    band = ecdf_band(num_datasets, num_draws, 0.95, 20_000, seed=0)
    reps = 4000
    ranks = np.random.default_rng(123).integers(0, num_draws + 1, size=(num_datasets, reps))  # fresh uniform ranks
    outside = ~band.inside(rank_counts(ranks, num_draws))
    rate, se = outside.mean(), _se(0.05, reps)
    # within MC error of 5% (both the test's 4000 samples and the band's 20000 simulations)
    assert abs(rate - 0.05) < 4 * np.hypot(se, _se(0.05, 20_000)), rate
    # the p-value and the band agree: outside exactly when the statistic is below the level
    stat = band.statistic(rank_counts(ranks, num_draws))
    assert np.array_equal(outside, stat < band.level)


def test_band_with_two_rank_values_is_an_exact_binomial_interval():
    # with S = 1 there is one threshold: the band is a central interval of Binomial(N, 1/2),
    # whose coverage the binomial distribution gives exactly
    n = 500
    band = ecdf_band(n, 1, 0.95, 20_000, seed=1)
    lo, hi = int(band.lower[0]), int(band.upper[0])
    coverage = stats.binom.cdf(hi, n, 0.5) - stats.binom.cdf(lo - 1, n, 0.5)
    assert coverage >= 0.95 - 4 * _se(0.05, 20_000)
    # and it is the narrowest symmetric interval with that coverage: one step in leaves it below 95%
    assert stats.binom.cdf(hi - 1, n, 0.5) - stats.binom.cdf(lo, n, 0.5) < 0.95


def test_band_catches_a_shifted_rank_distribution():
    band = ecdf_band(500, 19)
    rng = np.random.default_rng(0)
    ranks = np.minimum(rng.integers(0, 20, size=(500, 200)) + rng.integers(0, 3, size=(500, 200)), 19)
    assert (~band.inside(rank_counts(ranks, 19))).mean() > 0.95


def test_rank_counts_counts():
    ranks = np.array([[0, 2], [1, 2], [1, 0]])
    np.testing.assert_array_equal(rank_counts(ranks, 2), [[1, 3], [1, 1]])


# ---------------------------------------------------------------------------------- sbc()


@pytest.fixture(scope="module")
def problem():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2, 1))
    model = BanditModel(prior, num_actions=3)
    X = jax.random.uniform(jax.random.PRNGKey(1), (12, 2), minval=-1.0, maxval=1.0)
    A = jnp.arange(12) % 3
    return model, X, A


def test_exact_guide_is_calibrated_and_the_wrong_guide_is_flagged_everywhere(problem):
    model, X, A = problem
    guide = DTSGuide(model)
    key = jax.random.PRNGKey(2)
    good = sbc(model, guide, key, 400, 19, X, A, num_contexts=2, progress=False)
    assert good.names == quantity_names(model, 2)
    assert good.ranks.shape == (400, len(good.names))
    # exact Bayes: no quantity rejected at family-wise level 0.1% (Bonferroni over the q
    # quantities), and at most a binomial tail's worth outside the per-quantity 95% band
    q = len(good.names)
    assert good.p_values.min() * q > 1e-3, good.names[int(np.argmin(good.p_values))]
    assert (~good.inside).sum() <= stats.binom.ppf(0.9999, q, 0.05)
    wrong = sbc(model, DistortedGuide(guide, 0.5, 0.3), key, 400, 19, X, A, num_contexts=2, progress=False)
    assert not wrong.inside.any(), [n for n, ok in zip(wrong.names, wrong.inside, strict=True) if ok]
    latent = [n.startswith(("psi", "theta")) for n in wrong.names]
    assert (wrong.mean_pit[latent] < 0.5).all()  # every latent's guide mean shifted up
    assert (wrong.pit_var_ratio > 1.0).all()  # too narrow everywhere
    # same data sets, same truths: only the guide's draws differ
    assert good.meta["contexts"] == wrong.meta["contexts"]


def test_ranks_do_not_depend_on_the_chunk_size(problem):
    model, X, A = problem
    guide, key = DTSGuide(model), jax.random.PRNGKey(3)
    a = sbc(model, guide, key, 10, 9, X, A, chunk_size=3, progress=False)
    b = sbc(model, guide, key, 10, 9, X, A, chunk_size=10, progress=False)
    np.testing.assert_array_equal(a.ranks, b.ranks)


def test_ranks_are_the_count_of_draws_below_the_truth(problem):
    # with no data the guide is the prior: draw it here and rank by hand
    model, _, _ = problem
    guide = DTSGuide(model)
    contexts = jnp.array([[0.5, -1.0]])
    rep = sbc(model, guide, jax.random.PRNGKey(4), 5, 7, contexts=contexts, progress=False)
    assert rep.meta["num_obs"] == 0
    assert rep.ranks.min() >= 0 and rep.ranks.max() <= 7
    assert rep.names[-1] == "best[t0]" and "eta[t0,a2]" in rep.names


def test_report_json_and_plot(problem, tmp_path):
    model, X, A = problem
    rep = sbc(model, DTSGuide(model), jax.random.PRNGKey(5), 30, 9, X, A, num_contexts=1, progress=False)
    path = tmp_path / "sbc.json"
    rep.to_json(path, preset="test")
    data = json.loads(path.read_text())
    assert data["preset"] == "test" and data["num_datasets"] == 30 and data["band"]["method"] == "simulation"
    assert set(data["quantities"]) == set(rep.names)
    rep.plot(tmp_path / "sbc.png")
    assert (tmp_path / "sbc.png").stat().st_size > 0
    assert "quantities outside the 95% band" in str(rep)


def test_report_from_vsbc_output():
    rng = np.random.default_rng(0)
    ranks = {"a": rng.integers(0, 50, (100,)), "b": rng.integers(0, 50, (100, 2, 3))}
    res = VSBCResult(
        probabilities={k: v / 49 for k, v in ranks.items()},
        ks_stats={},
        ks_pvalues={},
        ranks=ranks,
        param_names=("a", "b"),
    )
    rep = report_from_vsbc(res)
    assert rep.num_draws == 49 and rep.names[:3] == ("a", "b[0,0]", "b[0,1]") and len(rep.names) == 7
    direct = sbc_report(np.column_stack([ranks["a"], ranks["b"].reshape(100, -1)]), rep.names, 49)
    np.testing.assert_array_equal(rep.p_values, direct.p_values)


def test_bandit_sbc_of_the_exact_posterior_is_calibrated():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2, 1))
    agent = dts(prior, Gaussian(1.0), 3)
    rep = bandit_sbc(jax.random.PRNGKey(1), prior, Gaussian(1.0), 3, agent, 15, 300, 19, num_contexts=2, progress=False)
    assert rep.names[-4:] == ("best[t0]", "best[t1]", "played[t0]", "played[t1]")
    assert rep.p_values.min() * len(rep.names) > 1e-3, rep.names[int(np.argmin(rep.p_values))]
    assert 5 <= rep.meta["mean_pulls_of_most_played"] <= 15


def test_errors(problem):
    model, X, A = problem
    with pytest.raises(ValueError, match="ranks"):
        sbc_report(np.array([[0, 5]]), ["a", "b"], 4)
    with pytest.raises(ValueError, match="names"):
        sbc_report(np.array([[0, 1]]), ["a"], 4)
    with pytest.raises(ValueError, match="prob"):
        ecdf_band(10, 4, 1.5)
    with pytest.raises(ValueError, match="guide"):
        sbc(model, object(), jax.random.PRNGKey(0), 3, 3, X, A)
    with pytest.raises(ValueError, match="model"):
        sbc(model.noncentred(), DTSGuide(model), jax.random.PRNGKey(0), 3, 3, X, A)
    with pytest.raises(ValueError, match="cov_scale"):
        DistortedGuide(DTSGuide(model), 0.0)
    with pytest.raises(ValueError, match="num_datasets"):
        sbc(model, DTSGuide(model), jax.random.PRNGKey(0), 0, 3, X, A)


@pytest.mark.slow
def test_cli_sbc_linear_preset(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["sbc", "--preset", "linear", "--num-datasets", "40", "--num-draws", "9", "--num-obs", "10"]
    assert main([*args, "--json", str(out), "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert data["num_datasets"] == 40 and data["meta"]["preset"] == "linear"
    assert "quantities outside" in capsys.readouterr().out


@pytest.mark.slow
def test_autoguide_goes_through_svi():
    from numpyro.infer.autoguide import AutoNormal

    model = BanditModel(DiffusionPrior.linear([jnp.eye(1)], [1.0, 1.0]), num_actions=1)
    X, A = jnp.ones((3, 1)), jnp.zeros(3, int)
    rep = sbc(model, AutoNormal(model), jax.random.PRNGKey(0), 4, 9, X, A, num_steps=5, progress=False)
    assert rep.ranks.shape == (4, len(quantity_names(model, 3)))
    assert rep.meta["fit"].startswith("SVI")


def test_glm_guide_resolves_its_expansion_before_the_vmap(problem):
    # Bernoulli() sets its ridge from the prior on first use, from concrete values
    model, X, A = problem
    glm = BanditModel(model.prior, 3, Bernoulli())
    rep = sbc(glm, DTSGuide(glm), jax.random.PRNGKey(6), 8, 9, X, A, num_contexts=1, progress=False)
    assert rep.ranks.shape == (8, len(quantity_names(glm, 1)))


def test_calibration_page_is_current():
    """docs/make_calibration.py builds docs/calibration.md from the SBC study JSON, and it is current."""
    root = pathlib.Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("make_calibration", root / "docs" / "make_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.page() == (root / "docs" / "calibration.md").read_text()
