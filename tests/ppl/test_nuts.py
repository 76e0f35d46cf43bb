"""NUTS on BanditModel agrees with the closed form within its Monte-Carlo error."""

import jax
import numpy as np
import pytest
from conftest import random_data, random_linear_prior
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS

from dts_ppl import BanditModel, DTSGuide, Gaussian

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
