"""DTSGuide as a NumPyro guide: sites, Predictive, sampling, density, nonlinear and GLM cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_data, random_linear_prior
from mc import assert_cov_within_mc, assert_mean_within_mc
from numpyro import handlers
from numpyro.infer import Predictive
from numpyro.infer.util import log_density

from dts_ppl import BanditModel, Bernoulli, DTSGuide, Gaussian, Poisson, psis_khat
from dts_ppl.core import inference as core
from dts_ppl.core.oracle import joint_posterior, split
from dts_ppl.experiments.synthetic import random_mlp_prior


def latent_sites(fn, *args):
    tr = handlers.trace(handlers.seed(fn, 0)).get_trace(*args)
    return {k: v["value"].shape for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]}


@pytest.fixture(scope="module")
def linear_problem():
    d, K = 3, 4
    prior = random_linear_prior(jax.random.PRNGKey(10), d, 2, 3)
    model = BanditModel(prior, K, Gaussian(0.8))
    X, A, y = random_data(jax.random.PRNGKey(11), d, K, n=15)
    return prior, model, DTSGuide(model), (X, A, y)


@pytest.mark.parametrize("shared", [False, True])
def test_model_and_guide_have_the_same_latent_sites(shared):
    prior = random_linear_prior(jax.random.PRNGKey(12), 3, 2, 4)
    model = BanditModel(prior, None if shared else 5, shared=shared)
    X, A, y = random_data(jax.random.PRNGKey(13), 3, 5, n=9)
    A = None if shared else A
    sites = latent_sites(model, X, A, y)
    assert sites == latent_sites(DTSGuide(model), X, A, y)
    assert sites == model.latent_shapes
    assert list(sites) == ["psi", "theta"]


def test_predictive_returns_documented_shapes(linear_problem, key):
    prior, model, guide, (X, A, y) = linear_problem
    post = Predictive(model, guide=guide, num_samples=7, return_sites=["psi", "theta", "y"])(key, X, A, y)
    assert post["psi"].shape == (7, 3, 2)
    assert post["theta"].shape == (7, 4, 3)
    assert post["y"].shape == (7, 15)
    # posterior predictive at new inputs through a guide bound to the data
    pred = Predictive(model, guide=guide.condition(X, A, y), num_samples=7)(key, X[:5], A[:5])
    assert pred["y"].shape == (7, 5)
    assert not np.allclose(pred["y"][0], y[:5])  # fresh draws, not the observations
    draws = guide.sample_posterior(key, guide.fit(X, A, y), sample_shape=(2, 3))
    assert draws["psi"].shape == (2, 3, 3, 2) and draws["theta"].shape == (2, 3, 4, 3)


def test_guide_samples_match_oracle_within_mc_error(linear_problem, key):
    prior, model, guide, (X, A, y) = linear_problem
    N = 20000
    ref = split(prior, joint_posterior(prior, guide.statistics(X, A, y)), 4)
    draws = guide.sample_posterior(key, guide.fit(X, A, y), sample_shape=(N,))
    psi, theta = np.asarray(draws["psi"]), np.asarray(draws["theta"])
    psi_var = np.diagonal(ref["psi_cov"], axis1=-2, axis2=-1)
    theta_var = np.diagonal(ref["theta_cov"], axis1=-2, axis2=-1)
    assert_mean_within_mc(psi, ref["psi_mean"], psi_var, "psi")
    assert_mean_within_mc(theta, ref["theta_mean"], theta_var, "theta")
    for a in range(4):
        assert_cov_within_mc(
            theta[:, a], theta[:, a], ref["theta_cov"][a], theta_var[a], theta_var[a], f"Cov theta_{a}"
        )
    # the cross-covariance between two different actions comes only from the shared latents
    for a, b in [(0, 1), (1, 3)]:
        cross = np.asarray(ref["theta_cross"][a, b])
        assert np.abs(cross).max() > 0.05  # genuinely correlated, so the check has power
        assert_cov_within_mc(theta[:, a], theta[:, b], cross, theta_var[a], theta_var[b], f"Cov(theta_{a}, theta_{b})")
    # a guide that dropped the shared latent (independent actions) would fail the same check
    shuffled = theta[:, 1][np.random.default_rng(0).permutation(N)]
    with pytest.raises(AssertionError):
        assert_cov_within_mc(theta[:, 0], shuffled, ref["theta_cross"][0, 1], theta_var[0], theta_var[1], "x")


def test_psis_khat_linear_gaussian_and_density(linear_problem, key):
    prior, model, guide, (X, A, y) = linear_problem
    khat = psis_khat(key, model, guide, X, A, y, num_samples=2000)
    assert khat < 0.5
    # the guide's density is NumPyro's: log q(z) equals the sum of its conditionals' log densities
    z = guide.sample_posterior(key, guide.fit(X, A, y))
    log_q, _ = log_density(guide, (X, A, y), {}, z)
    ref = split(prior, joint_posterior(prior, guide.statistics(X, A, y)), 4)
    joint = joint_posterior(prior, guide.statistics(X, A, y))
    flat = jnp.concatenate([z["psi"][::-1].reshape(-1), z["theta"].reshape(-1)])  # oracle order: psi_1 first
    from jax.scipy.stats import multivariate_normal

    assert np.isclose(log_q, multivariate_normal.logpdf(flat, joint.mean, joint.cov), rtol=1e-8)
    assert ref is not None


def test_prior_draws_from_model_and_guide_agree(key):
    """With no data the guide is the prior; compared here with the NumPyro model's own draws."""
    prior = random_mlp_prior(jax.random.PRNGKey(14), 2, 2, hidden=8)
    model = BanditModel(prior, 3, Bernoulli())
    guide = DTSGuide(model)
    N = 20000
    k1, k2 = jax.random.split(key)
    from_model = Predictive(model, num_samples=N, return_sites=["psi", "theta"])(k1)
    from_guide = guide.sample_posterior(k2, None, sample_shape=(N,))  # no params, no data: the prior
    for site in ["psi", "theta"]:
        a, b = np.asarray(from_model[site]), np.asarray(from_guide[site])
        se = np.sqrt(a.var(0) / N + b.var(0) / N)
        assert (np.abs(a.mean(0) - b.mean(0)) / se).max() < 5.0, site
        # standard deviations: se of a sample sd is about sd * sqrt((kurtosis - 1) / (4 N)), use sd * 2 / sqrt(N)
        sd_a, sd_b = a.std(0), b.std(0)
        assert (np.abs(sd_a - sd_b) / (sd_a * 2 * np.sqrt(2.0 / N) * 2)).max() < 5.0, site


@pytest.mark.parametrize(
    "likelihood, linearisation",
    [
        (Gaussian(1.0), "identity"),
        pytest.param(Bernoulli(), "identity", marks=pytest.mark.slow),  # identity: Gaussian, Poisson rows
        (Bernoulli(), "jacobian"),
        (Bernoulli(), "iterated"),
        (Poisson(), "identity"),
    ],
)
def test_mlp_links_and_glm_rewards_run_with_finite_density(likelihood, linearisation, key):
    prior = random_mlp_prior(jax.random.PRNGKey(15), 2, 3, hidden=6)
    model = BanditModel(prior, 3, likelihood)
    X, A, _ = random_data(jax.random.PRNGKey(16), 2, 3, n=20)
    y = Predictive(model, num_samples=1)(key, X, A)["y"][0]
    guide = DTSGuide(model, linearisation=linearisation)
    z = guide.sample_posterior(key, guide.fit(X, A, y))
    log_q, log_p = jax.jit(
        lambda z: (log_density(guide, (X, A, y), {}, z)[0], log_density(model, (X, A, y), {}, z)[0])
    )(z)
    assert np.isfinite(log_q) and np.isfinite(log_p)
    mo = guide.moments(X, A, y)
    assert np.all(np.isfinite(mo.theta_mean)) and np.all(np.linalg.eigvalsh(mo.theta_cov) > 0)


def test_quantiles_and_median(linear_problem):
    prior, model, guide, (X, A, y) = linear_problem
    q = guide.quantiles(guide.fit(X, A, y), [0.05, 0.5, 0.95])
    med = guide.median(guide.fit(X, A, y))
    assert q["theta"].shape == (3, 4, 3) and q["psi"].shape == (3, 3, 2)
    np.testing.assert_allclose(q["theta"][1], med["theta"], rtol=1e-12)
    assert np.all(q["theta"][0] < q["theta"][2])
    with pytest.raises(ValueError, match="quantiles"):
        guide.quantiles(guide.fit(X, A, y), [0.5, 1.2])


def test_long_chain_compiles(key):
    """L = 100 through numpyro's scan: the model and guide trace and sample (no Python loop of sites)."""
    from dts_ppl.experiments.synthetic import random_linear_prior as paper_prior

    prior = paper_prior(jax.random.PRNGKey(17), 2, active_dims=[2] * 100)
    model = BanditModel(prior, 3)
    X, A, y = random_data(jax.random.PRNGKey(18), 2, 3, n=6)
    post = Predictive(model, guide=DTSGuide(model), num_samples=3, return_sites=["psi", "theta"])(key, X, A, y)
    assert post["psi"].shape == (3, 100, 2)
    draws = core.sample(key, prior, core.prior_conditionals(prior, 3), (4,))
    assert draws[0].shape == (4, 100, 2)
