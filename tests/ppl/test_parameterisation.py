"""The non-centred BanditModel is the same distribution as the centred one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density

from dts_ppl import BanditModel, DTSGuide, Gaussian
from dts_ppl.experiments.synthetic import random_mlp_prior


def _sites(model, *args):
    tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args)
    return {
        k: v["type"] for k, v in tr.items() if v["type"] in ("sample", "deterministic") and not v.get("is_observed")
    }


@pytest.mark.parametrize(
    "kind", ["linear", pytest.param("mlp", marks=pytest.mark.slow), pytest.param("shared", marks=pytest.mark.slow)]
)
def test_noncentred_log_density_differs_by_a_constant(kind):
    """log p_centred(psi, theta, y) - log p_noncentred(psi_raw, theta_raw, y) is the log-Jacobian
    of psi = loc + L psi_raw, which does not depend on the point: equal across random points."""
    d = 3
    if kind == "mlp":
        prior = random_mlp_prior(jax.random.PRNGKey(0), d, num_levels=3, hidden=8)
    else:
        prior = random_linear_prior(jax.random.PRNGKey(0), d, 2, 3)
    shared = kind == "shared"
    model = BanditModel(prior, None if shared else 4, Gaussian(0.5), shared=shared)
    X, A, y = random_data(jax.random.PRNGKey(1), d, 4, n=12)
    A = None if shared else A
    nc = model.noncentred()
    assert _sites(nc, X, A, y) == {
        "psi_raw": "sample",
        "theta_raw": "sample",
        "psi": "deterministic",
        "theta": "deterministic",
    }
    draws = Predictive(nc, num_samples=6)(jax.random.PRNGKey(2), X, A)
    data = (X, A, y)
    lp_c = jax.vmap(lambda p, t: log_density(model, data, {}, {"psi": p, "theta": t})[0])
    lp_nc = jax.vmap(lambda p, t: log_density(nc, data, {}, {"psi_raw": p, "theta_raw": t})[0])
    centred = np.asarray(lp_c(draws["psi"], draws["theta"]))
    diffs = centred - np.asarray(lp_nc(draws["psi_raw"], draws["theta_raw"]))
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-9)
    assert np.ptp(centred) > 1.0  # not trivially constant: the density itself varies


def test_noncentred_prior_draws_match_centred_moments():
    prior = random_linear_prior(jax.random.PRNGKey(3), 2, 2, 2)
    model = BanditModel(prior, 3)
    N = 20000
    a = Predictive(model, num_samples=N)(jax.random.PRNGKey(4))
    b = Predictive(model.noncentred(), num_samples=N)(jax.random.PRNGKey(5))
    for site in ("psi", "theta"):
        x, z = np.asarray(a[site]), np.asarray(b[site])
        se = np.sqrt(x.var(0) / N + z.var(0) / N)
        assert np.max(np.abs(x.mean(0) - z.mean(0)) / se) < 5
        se_var = np.sqrt(2 * x.var(0) ** 2 / N + 2 * z.var(0) ** 2 / N)
        assert np.max(np.abs(x.var(0) - z.var(0)) / se_var) < 5


def test_parameterisation_errors():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, 2, 2)
    with pytest.raises(ValueError, match="parameterisation"):
        BanditModel(prior, 3, parameterisation="reparam")
    # DTSGuide now supports the non-centred model (its raw sites; tests/ppl/test_reference_gates.py)
    assert DTSGuide(BanditModel(prior, 3).noncentred()).model.parameterisation == "noncentred"
    assert "noncentred" in repr(BanditModel(prior, 3).noncentred())
    assert jnp.shape(handlers.seed(BanditModel(prior, 3).noncentred(), 0)(None)) == (3, 2)


def test_run_nuts_noncentred_returns_the_latent_sites():
    """run_nuts on the non-centred model reports psi and theta (not the raw sites), and rejects an
    unknown parameterisation before sampling."""
    from dts_ppl.ppl.nuts import NutsSettings, run_nuts

    prior = random_linear_prior(jax.random.PRNGKey(6), 2, 2, 2)
    model = BanditModel(prior, 3, Gaussian(0.7))
    data = random_data(jax.random.PRNGKey(7), 2, 3, n=9)
    settings = NutsSettings(num_samples=20, num_warmup=20, num_chains=1, parameterisation="noncentred")
    res = run_nuts(model, data, settings, jax.random.PRNGKey(8), progress_bar=False)
    assert set(res.samples) == {"psi", "theta"} and set(res.raw_samples) == {"psi_raw", "theta_raw"}
    assert res.samples["psi"].shape == (1, 20, 2, 2) and res.samples["theta"].shape == (1, 20, 3, 2)
    with pytest.raises(ValueError, match="parameterisation"):
        run_nuts(model, data, settings._replace(parameterisation="nc"), jax.random.PRNGKey(8))
