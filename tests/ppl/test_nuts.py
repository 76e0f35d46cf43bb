"""NUTS on BanditModel agrees with the closed form within its Monte-Carlo error; NutsSettings is the one
source of the NUTS options that run_nuts and both commands use."""

import jax
import numpy as np
import pytest
from conftest import random_data, random_linear_prior
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS

from dts_ppl import BanditModel, DTSGuide, Gaussian
from dts_ppl.cli import main
from dts_ppl.experiments.validation import NUTS_SETTINGS
from dts_ppl.ppl import nuts as nuts_module
from dts_ppl.ppl.nuts import NutsSettings, default_chain_method, run_nuts

Z = 5.0


@pytest.mark.parametrize("parameterisation", ["centred", "noncentred"])
def test_nuts_matches_closed_form(parameterisation):
    prior = random_linear_prior(jax.random.PRNGKey(20), 2, 2, 2)
    model = BanditModel(prior, 3, Gaussian(0.7))
    X, A, y = random_data(jax.random.PRNGKey(21), 2, 3, n=24)
    target = model.noncentred() if parameterisation == "noncentred" else model
    mcmc = MCMC(NUTS(target), num_warmup=500, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(22), X, A, y)
    draws = mcmc.get_samples(group_by_chain=True)
    mo = DTSGuide(model).moments(X, A, y)
    for site, mean, cov in [("psi", mo.psi_mean, mo.psi_cov), ("theta", mo.theta_mean, mo.theta_cov)]:
        chain = np.asarray(draws[site])  # (1, S, ...)
        ess = np.asarray(effective_sample_size(chain))
        var = np.diagonal(np.asarray(cov), axis1=-2, axis2=-1)
        z_mean = np.abs(chain[0].mean(0) - np.asarray(mean)) / np.sqrt(var / ess)
        assert z_mean.max() < Z, f"{site}: NUTS mean off by {z_mean.max():.1f} MC standard errors"
        # sample variance of a Gaussian: relative se sqrt(2 / ESS)
        z_var = np.abs(chain[0].var(0) / var - 1.0) / np.sqrt(2.0 / ess)
        assert z_var.max() < Z, f"{site}: NUTS variance off by {z_var.max():.1f} MC standard errors"


class _FakeMCMC:
    """Stands in for numpyro's MCMC: records its options, returns zero draws of the right shapes."""

    def __init__(self, kernel, seen, **options):
        seen["mcmc"], self.options = options, options

    def run(self, key, *args, extra_fields=()):
        pass

    def get_samples(self, group_by_chain):
        c, n = self.options["num_chains"], self.options["num_samples"]
        return {"psi": np.zeros((c, n, 2, 2)), "theta": np.zeros((c, n, 3, 2))}

    def get_extra_fields(self, group_by_chain):
        return {"diverging": np.zeros((self.options["num_chains"], self.options["num_samples"]), bool)}


def test_run_nuts_defaults_are_nuts_settings_and_reach_numpyro(monkeypatch):
    """run_nuts without settings runs NutsSettings(): every field reaches NumPyro's NUTS kernel or MCMC."""
    seen = {}
    monkeypatch.setattr(nuts_module, "NUTS", lambda model, **kw: seen.update(model=model, kernel=kw))
    monkeypatch.setattr(nuts_module, "MCMC", lambda kernel, **kw: _FakeMCMC(kernel, seen, **kw))
    model = BanditModel(random_linear_prior(jax.random.PRNGKey(0), 2, 2, 2), 3)
    data = random_data(jax.random.PRNGKey(1), 2, 3, n=5)
    result = run_nuts(model, data, key=jax.random.PRNGKey(2), progress_bar=False)
    d = NutsSettings()
    assert seen["model"] is model and d.parameterisation == "centred"
    assert seen["kernel"] == dict(
        target_accept_prob=d.target_accept_prob, dense_mass=d.dense_mass, max_tree_depth=d.max_tree_depth
    )
    chains = default_chain_method(d.num_chains)
    assert seen["mcmc"] == dict(
        num_warmup=d.num_warmup,
        num_samples=d.num_samples,
        num_chains=d.num_chains,
        chain_method=chains,
        progress_bar=False,
    )
    assert result.settings == d._replace(chain_method=chains)
    with pytest.raises(ValueError, match="target_accept_prob"):
        run_nuts(model, data, d._replace(target_accept_prob=1.0), jax.random.PRNGKey(2))
    with pytest.raises(ValueError, match="settings: expected a NutsSettings"):
        run_nuts(model, data, d._asdict(), jax.random.PRNGKey(2))


# every NUTS flag of both commands with a value no preset uses, and the settings it must give
FLAGS = [
    *("--num-samples 7 --num-warmup 3 --num-chains 3 --chain-method vectorized --target-accept 0.7".split()),
    *("--max-tree-depth 4 --parameterisation noncentred --dense-mass".split()),
]
GIVEN = NutsSettings(7, 3, 3, "vectorized", 0.7, True, 4, "noncentred")


class _Stop(Exception):
    pass


def _validate_settings(monkeypatch, flags) -> NutsSettings:
    seen = []

    def fake_validate(*args, settings, **kw):
        seen.append(settings)
        raise _Stop

    monkeypatch.setattr("dts_ppl.commands.validate.validate", fake_validate)
    with pytest.raises(_Stop):
        main(["validate", "--preset", "linear", "--num-obs", "4", *flags])
    return seen[0]


def _study_settings(monkeypatch, flags) -> dict:
    seen = {}
    monkeypatch.setattr(
        "dts_ppl.commands.validation_study.approximation_study", lambda *a, settings, **kw: seen.update(settings) or []
    )
    assert main(["validation-study", "--presets", "linear,ddpm", *flags]) == 0
    return seen


def test_both_commands_use_the_presets_nuts_settings_and_take_every_field(monkeypatch, capsys):
    """Without NUTS flags both commands run each preset's NutsSettings (the simple presets are
    NutsSettings' defaults; ddpm changes five fields and keeps the other defaults); each flag of
    the shared helper sets its field, in both commands."""
    d = NutsSettings()
    assert NUTS_SETTINGS["linear"] == NUTS_SETTINGS["mlp"] == NUTS_SETTINGS["logistic"] == d
    ddpm = NUTS_SETTINGS["ddpm"]
    assert (ddpm.num_samples, ddpm.chain_method, ddpm.max_tree_depth) == (d.num_samples, None, d.max_tree_depth)
    assert _validate_settings(monkeypatch, []) == d
    assert _study_settings(monkeypatch, []) == {"linear": d, "ddpm": ddpm}
    assert _validate_settings(monkeypatch, FLAGS) == GIVEN
    assert _study_settings(monkeypatch, FLAGS) == {"linear": GIVEN, "ddpm": GIVEN}
    assert _validate_settings(monkeypatch, ["--diag-mass"]) == d._replace(dense_mass=False)
    assert _study_settings(monkeypatch, ["--diag-mass"])["ddpm"] == ddpm._replace(dense_mass=False)
    assert len(GIVEN) == len(NutsSettings._fields) and all(a != b for a, b in zip(GIVEN, d, strict=True))
    capsys.readouterr()
