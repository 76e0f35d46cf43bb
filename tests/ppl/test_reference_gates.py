"""Quality gates on the NUTS reference, and DTSGuide on the non-centred model's raw sites."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior
from numpyro.infer import Predictive

from dts_ppl import BanditModel, DTSGuide, Gaussian
from dts_ppl.cli import main
from dts_ppl.experiments.synthetic import random_mlp_prior
from dts_ppl.experiments.validation import NUTS_SETTINGS, make_problem
from dts_ppl.ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.ppl.guide import to_raw_sites
from dts_ppl.ppl.nuts import NutsDiagnostics, NutsSettings, ReferenceGates, nuts_diagnostics, run_nuts
from dts_ppl.ppl.validate import validate


def test_each_gate_fails_on_its_own():
    good = NutsDiagnostics(rhat_max=1.005, ess_bulk_min=800.0, divergences=0, ess_tail_min=600.0)
    assert good.reliable() and good.problems() == []
    cases = {
        "divergences": good._replace(divergences=1),
        "R-hat": good._replace(rhat_max=1.02),
        "bulk ESS": good._replace(ess_bulk_min=399.0),
        "tail ESS": good._replace(ess_tail_min=120.0),
    }
    for word, diag in cases.items():
        (problem,) = diag.problems()
        assert word in problem and not diag.reliable()
    assert not good._replace(rhat_max=math.nan).reliable()  # a NaN R-hat is no evidence of convergence
    assert good._replace(ess_tail_min=120.0).reliable(ReferenceGates(ess_min=100))
    for bad in (dict(max_divergences=-1), dict(rhat_max=0.9), dict(ess_min=-5.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ReferenceGates(**bad).check()


SHORT = ["--preset", "linear", "--num-obs", "10", "--num-samples", "30", "--num-warmup", "30", "--num-chains", "1"]


@pytest.mark.slow
def test_short_nuts_run_is_unreliable_and_the_cli_exits_nonzero(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["validate", *SHORT, "--json", str(out), "--no-progress"]) == 3
    printed = capsys.readouterr()
    assert "UNRELIABLE" in printed.out and "--accept-unreliable-reference" in printed.err
    nuts = json.loads(out.read_text())["nuts"]
    assert nuts["reliable"] is False and nuts["ess_bulk_min"] < 400
    assert any("ESS" in p for p in nuts["problems"])
    assert nuts["gates"] == {"max_divergences": 0, "rhat_max": 1.01, "ess_min": 400.0}
    assert nuts["settings"]["num_samples"] == 30 and nuts["settings"]["wall_s"] > 0

    assert main(["validate", *SHORT, "--json", str(out), "--no-progress", "--accept-unreliable-reference"]) == 0
    assert json.loads(out.read_text())["nuts"]["reliable"] is False  # accepted, still marked


def _linear_problem():
    prior = random_linear_prior(jax.random.PRNGKey(6), 2, 2, 2)
    model = BanditModel(prior, 3, Gaussian(0.7))
    return model, random_data(jax.random.PRNGKey(7), 2, 3, n=9)


@pytest.mark.parametrize("shared", [False, True])
def test_raw_sites_invert_the_noncentred_model(shared):
    """to_raw_sites(psi, theta) recovers the raw draws the non-centred model turned into (psi, theta)."""
    prior = random_mlp_prior(jax.random.PRNGKey(0), 2, num_levels=3, hidden=6)
    model = BanditModel(prior, shared=True) if shared else BanditModel(prior, 4)
    draws = Predictive(model.noncentred(), num_samples=5)(jax.random.PRNGKey(1))
    raw = to_raw_sites(prior, draws["psi"], draws["theta"], model.num_actions, shared)
    for site in ("psi_raw", "theta_raw"):
        np.testing.assert_allclose(raw[site], draws[site], atol=1e-9)


def test_noncentred_guide_weights_equal_the_centred_ones():
    """On the raw sites guide and model densities gain the same log-Jacobian, so the importance
    weights (hence k-hat) are the centred ones; with a nonlinear link they are far from constant."""
    model = BanditModel(random_mlp_prior(jax.random.PRNGKey(0), 2, num_levels=2, hidden=10), 3)
    X, A, y = random_data(jax.random.PRNGKey(2), 2, 3, n=12)
    guide = DTSGuide(model, "iterated")
    lw = log_importance_weights(jax.random.PRNGKey(3), model, guide, X, A, y, 300)
    lw_nc = log_importance_weights(jax.random.PRNGKey(3), model.noncentred(), guide.noncentred(), X, A, y, 300)
    assert float(jnp.ptp(lw)) > 1.0
    np.testing.assert_allclose(lw_nc, lw, atol=1e-8)
    assert DTSGuide(model.noncentred()).noncentred().model.parameterisation == "noncentred"


@pytest.mark.slow
def test_exact_guide_on_the_noncentred_model_matches_nuts_raw_sites():
    """Linear-Gaussian (the guide is exact): k-hat on the non-centred model is small, and the guide's
    raw-site draws match the raw-site posterior of the NUTS run on that model (mean within 4.5 MC
    standard errors, the largest of 10 coordinates; sd within 15%)."""
    model, (X, A, y) = _linear_problem()
    nc_guide = DTSGuide(model).noncentred()
    assert psis_khat(jax.random.PRNGKey(4), model.noncentred(), nc_guide, X, A, y, 1000) < 0.5
    report = validate(
        model,
        DTSGuide(model),
        X,
        A,
        y,
        key=jax.random.PRNGKey(5),
        settings=NutsSettings(num_warmup=400, chain_method="vectorized", parameterisation="noncentred"),
        progress_bar=False,
    )
    assert report.psis_parameterisation == "noncentred" and report.psis_khat < 0.5
    assert set(report.nuts_result.raw_samples) == {"psi_raw", "theta_raw"}
    for site in ("psi_raw", "theta_raw"):
        s = report.sites[site]
        assert s.max_z < 4.5, site
        assert 0.85 < np.min(s.sd_ratio) and np.max(s.sd_ratio) < 1.15, site
    assert report.to_dict()["psis_parameterisation"] == "noncentred"


@pytest.mark.slow
@pytest.mark.parametrize("num_obs", [10, 50, 200])
def test_ddpm_preset_reference_passes_the_gates_with_its_settings(num_obs):
    """The ddpm preset's NUTS_SETTINGS (non-centred, dense mass, 0.95, 1000 + 1000, 4 chains) give a
    reference with no divergences, R-hat <= 1.01 and bulk/tail ESS >= 400 (minutes per n on 2 cores)."""
    problem = make_problem("ddpm", jax.random.PRNGKey(0), num_obs=num_obs)
    settings = NUTS_SETTINGS["ddpm"]._replace(chain_method="vectorized")
    data = (problem.X, problem.A, problem.y)
    nuts = run_nuts(problem.model, data, settings, jax.random.PRNGKey(1), progress_bar=False)
    diag = nuts_diagnostics(nuts)
    assert diag.reliable(), diag.problems()


def test_study_retries_divergences_with_smaller_steps_and_low_ess_with_longer_chains(monkeypatch):
    """reference(): a run with divergences is retried at a higher target acceptance, one with low ESS
    with twice the warm-up and draws; a passing run is not retried."""
    from dts_ppl.experiments import study

    base = NutsSettings(num_samples=100, num_warmup=50, target_accept_prob=0.9)
    good = NutsDiagnostics(rhat_max=1.005, ess_bulk_min=800.0, divergences=0, ess_tail_min=600.0)
    cases = {
        "divergent": (good._replace(divergences=3), dict(target_accept_prob=0.95)),
        "short": (good._replace(ess_tail_min=120.0), dict(num_samples=200, num_warmup=100)),
        "both": (
            good._replace(divergences=1, rhat_max=1.05),
            dict(target_accept_prob=0.95, num_samples=200, num_warmup=100),
        ),
    }
    for name, (diag, expected) in cases.items():
        assert study.retry_settings(base, diag) == base._replace(**expected), name
        calls = []
        monkeypatch.setattr(study, "run_nuts", lambda model, data, s, key, c=calls, **kw: c.append(s) or len(c))
        monkeypatch.setattr(study, "nuts_diagnostics", lambda n, d=diag: d if n == 1 else good)
        nuts, attempts = study.reference(None, None, key=jax.random.PRNGKey(0), settings=base)
        assert (nuts, attempts) == (2, 2), name
        assert calls == [base, base._replace(**expected)], name
        assert study.reference(None, None, key=jax.random.PRNGKey(0), settings=base, max_attempts=1)[1] == 1
    monkeypatch.setattr(study, "nuts_diagnostics", lambda n: good)  # passes at once: no second run
    assert study.reference(None, None, key=jax.random.PRNGKey(0), settings=base)[1] == 1
    # from NutsSettings' default target the retry moves halfway to 1 (0.8 -> 0.9)
    monkeypatch.undo()
    plain = NutsSettings(num_samples=100, num_warmup=50)
    assert study.retry_settings(plain, good._replace(divergences=2)) == plain._replace(target_accept_prob=0.9)
