"""AutoDTS: equals DTSGuide without other sites; its ELBO is the collapsed evidence; AutoGuideList; NUTS."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from conftest import random_data, random_linear_prior
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta, AutoGuideList, AutoNormal
from numpyro.infer.util import log_density

from dts_ppl import AutoDTS, BanditModel, DTSGuide, Gaussian
from dts_ppl.core.evidence import log_marginal_likelihood
from dts_ppl.ppl import bandit_rewards, diffusion_chain, model_inference_data, validate_model
from dts_ppl.ppl.validate import ReferenceGates

K, D, USERS = 3, 2, 3


@pytest.fixture(scope="module")
def problem():
    jax.config.update("jax_enable_x64", True)
    prior = random_linear_prior(jax.random.PRNGKey(5), D, 2, 2)
    X, A, y = random_data(jax.random.PRNGKey(6), D, K, None, counts=[6, 1, 5])
    user = jnp.arange(y.shape[0]) % USERS
    return prior, X, A, y, user


def user_model(prior):
    def model(X, A, user, y=None):
        psi, theta = diffusion_chain(prior, num_actions=K)
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        with numpyro.plate("users", USERS):
            u = numpyro.sample("u", dist.Normal(0.0, 1.0))
        return bandit_rewards("y", X, A, theta, Gaussian(sigma), offset=u[user], obs=y)

    return model


def test_without_other_sites_it_is_dtsguide(problem):
    prior, X, A, y, _ = problem
    model = BanditModel(prior, num_actions=K)
    auto, dts = AutoDTS(model), DTSGuide(model)
    params = dts.fit(X, A, y)
    key = jax.random.PRNGKey(1)
    a = auto.sample_posterior(key, {}, X, A, y, sample_shape=(6,))
    b = dts.sample_posterior(key, params, sample_shape=(6,))
    for site in ("psi", "theta"):
        np.testing.assert_allclose(a[site], b[site], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(auto.median({})[site], dts.median(params)[site], rtol=1e-10)
        np.testing.assert_allclose(auto.quantiles({}, [0.2, 0.7])[site], dts.quantiles(params, [0.2, 0.7])[site])
    # the same density on the same draws, as NumPyro evaluates it
    z = {k: v[0] for k, v in a.items()}
    np.testing.assert_allclose(
        log_density(auto, (X, A, y), {}, z)[0], log_density(dts, (X, A, y), {}, z)[0], rtol=1e-10
    )


@pytest.mark.slow
def test_elbo_is_the_collapsed_evidence_and_so_is_its_gradient(problem):
    prior, X, A, y, user = problem
    model = user_model(prior)
    guide = AutoDTS(model, AutoDelta)
    handlers.seed(guide, 0)(X, A, user, y)  # set up
    elbo = Trace_ELBO()

    def loss(sigma, u):  # one particle: the chain's draws do not change the value
        params = {"sigma_auto_loc": sigma, "u_auto_loc": u}
        return elbo.loss(jax.random.PRNGKey(0), params, model, guide, X, A, user, y)

    def collapsed(sigma, u):
        log_prior = dist.HalfNormal(1.0).log_prob(sigma) + dist.Normal(0.0, 1.0).log_prob(u).sum()
        return -(log_marginal_likelihood(prior, Gaussian(sigma), X, A, y, K, offset=u[user]) + log_prior)

    sigma, u = jnp.asarray(0.7), jnp.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(loss(sigma, u), collapsed(sigma, u), rtol=1e-10)
    for key in (1, 2):
        np.testing.assert_allclose(
            elbo.loss(jax.random.PRNGKey(key), {"sigma_auto_loc": sigma, "u_auto_loc": u}, model, guide, X, A, user, y),
            collapsed(sigma, u),
            rtol=1e-10,
        )
    grads = jax.grad(loss, argnums=(0, 1))(sigma, u)
    want = jax.grad(collapsed, argnums=(0, 1))(sigma, u)
    for g, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-7)


@pytest.mark.slow
def test_autoguide_surface_with_other_sites(problem):
    prior, X, A, y, user = problem
    model = user_model(prior)
    guide = AutoDTS(model, num_quantile_samples=500)  # AutoNormal for sigma and u
    svi = SVI(model, guide, optax.adam(0.05), Trace_ELBO())
    params = svi.get_params(svi.init(jax.random.PRNGKey(2), X, A, user, y))
    draws = guide.sample_posterior(jax.random.PRNGKey(3), params, X, A, user, y, sample_shape=(4, 5))
    assert {k: v.shape for k, v in draws.items()} == {
        "psi": (4, 5, 2, 2),
        "theta": (4, 5, K, D),
        "sigma": (4, 5),
        "u": (4, 5, USERS),
    }
    med = guide.median(params)  # the model's arguments of the first call are kept
    assert med["theta"].shape == (K, D) and med["u"].shape == (USERS,)
    # the chain's conditional mean at the other sites' medians is the conditional posterior's
    _, post, _, lin = guide.conditional(med, X, A, user, y)
    from dts_ppl.core import inference

    np.testing.assert_allclose(med["theta"], inference.moments(prior, post, lin).theta_mean, rtol=1e-12)
    q = guide.quantiles(params, [0.1, 0.5, 0.9])
    assert q["theta"].shape == (3, K, D) and q["sigma"].shape == (3,)
    assert bool(jnp.all(q["theta"][0] < q["theta"][2]))
    idata = model_inference_data(model, draws["theta"].shape and {k: v[0] for k, v in draws.items()}, X, A, user, y)
    assert idata.posterior["theta"].dims == ("chain", "draw", "actions", "feature")
    assert idata.posterior["psi"].dims == ("chain", "draw", "level", "latent_feature")
    assert idata.posterior["u"].dims == ("chain", "draw", "users")


@pytest.mark.slow
def test_inside_an_autoguide_list(problem):
    prior, X, A, y, user = problem

    def model(X, A, user, y=None):
        psi, theta = diffusion_chain(prior, num_actions=K)
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))  # a separate part of the model
        numpyro.sample("w", dist.Normal(z, 0.5), obs=1.0)
        with numpyro.plate("users", USERS):
            u = numpyro.sample("u", dist.Normal(0.0, 1.0))
        return bandit_rewards("y", X, A, theta, Gaussian(sigma), offset=u[user], obs=y)

    guide = AutoGuideList(model)
    guide.append(AutoDTS(handlers.block(model, hide=["z"])))
    guide.append(AutoDelta(handlers.block(model, expose=["z"])))
    svi = SVI(model, guide, optax.adam(0.05), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(2), X, A, user, y)
    assert np.isfinite(float(svi.evaluate(state, X, A, user, y)))
    params = svi.get_params(state)
    draws = guide.sample_posterior(jax.random.PRNGKey(3), params, X, A, user, y, sample_shape=(3,))
    assert sorted(draws) == ["psi", "sigma", "theta", "u", "z"]
    assert set(guide.median(params)) == {"psi", "sigma", "theta", "u", "z"}
    # a member cannot condition on a site another member samples when that site enters the rewards
    bad = AutoGuideList(model)
    bad.append(AutoDTS(handlers.block(model, hide=["u"])))
    bad.append(AutoNormal(handlers.block(model, hide=["psi", "theta", "sigma", "z"])))
    with pytest.raises(ValueError, match=r"sites \['u'\], handled by another guide"):
        SVI(model, bad, optax.adam(0.05), Trace_ELBO()).init(jax.random.PRNGKey(0), X, A, user, y)
    # what replaces it: an AutoGuideList for the other sites, inside AutoDTS
    others = AutoGuideList(handlers.block(model, hide=["psi", "theta"]))
    others.append(AutoNormal(handlers.block(model, hide=["psi", "theta", "z"])))  # hide: plates stay visible
    others.append(AutoDelta(handlers.block(model, expose=["z"])))
    nested = AutoDTS(model, others)
    SVI(model, nested, optax.adam(0.05), Trace_ELBO()).init(jax.random.PRNGKey(2), X, A, user, y)
    assert nested.other_sites == ("sigma", "z", "u")


def test_shared_chain_and_clear_errors(problem):
    prior, X, A, y, _ = problem

    def shared(X, y=None):
        psi, theta = diffusion_chain(prior, shared=True)
        return bandit_rewards("y", X, None, theta, Gaussian(0.5), obs=y)

    guide = AutoDTS(shared)
    draws = guide.sample_posterior(jax.random.PRNGKey(0), {}, X, y, sample_shape=(4,))
    assert draws["theta"].shape == (4, D)
    want = DTSGuide(BanditModel(prior, shared=True, likelihood=Gaussian(0.5)))
    np.testing.assert_allclose(guide.median({})["theta"], want.median(want.fit(X, None, y))["theta"], rtol=1e-10)

    def no_chain(X, y=None):
        numpyro.sample("y", dist.Normal(0.0, 1.0).expand([X.shape[0]]), obs=y)

    with pytest.raises(ValueError, match="expected one centred diffusion_chain"):
        AutoDTS(no_chain)(X, y)

    def noncentred(X, A, y=None):
        psi, theta = diffusion_chain(prior, num_actions=K, parameterisation="noncentred")
        return bandit_rewards("y", X, A, theta, obs=y)

    with pytest.raises(ValueError, match="expected one centred diffusion_chain"):
        AutoDTS(noncentred)(X, A, y)
    with pytest.raises(ValueError, match="args: pass the model's arguments"):
        AutoDTS(BanditModel(prior, num_actions=K)).median({})
    with pytest.raises(ValueError, match="offset: expected shape"):
        handlers.seed(lambda: bandit_rewards("y", X, A, jnp.zeros((K, D)), offset=jnp.zeros(2)), 0)()


@pytest.mark.slow
def test_matches_nuts_on_a_user_model():
    # the README example at a smaller size: AutoDTS within 0.15 NUTS sd of NUTS, which passes the gates
    from numpyro.infer import Predictive

    from dts_ppl import DiffusionPrior

    prior = DiffusionPrior.linear([jnp.eye(D), 0.8 * jnp.eye(D)], [0.3, 1.0, 1.0])
    model = user_model(prior)
    n = 200
    kx, ka, ku, ky = jax.random.split(jax.random.PRNGKey(0), 4)
    X = jax.random.normal(kx, (n, D))
    A = jax.random.randint(ka, (n,), 0, K)
    user = jax.random.randint(ku, (n,), 0, USERS)
    y = Predictive(model, num_samples=1)(ky, X, A, user)["y"][0]
    guide = AutoDTS(model)
    svi = SVI(model, guide, optax.adam(optax.exponential_decay(0.05, 3000, 1e-3)), Trace_ELBO())
    fit = svi.run(jax.random.PRNGKey(1), 3000, X, A, user, y, progress_bar=False)
    report = validate_model(
        model,
        guide,
        fit.params,
        X,
        A,
        user,
        y,
        key=jax.random.PRNGKey(3),
        nuts_options=dict(num_samples=1000, num_warmup=500, num_chains=2),
        gates=ReferenceGates(),
    )
    assert report.reliable, report.reference_problems
    for site in ("theta", "sigma", "u", "psi"):
        assert report.sites[site].max_std_mean_error < 0.15, (site, report.sites[site].to_dict())
