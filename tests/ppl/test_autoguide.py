"""DTSGuide's NumPyro AutoGuide surface: params = fit(...), the AutoGuide methods with NumPyro's signatures."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_data, random_linear_prior
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoGuide, AutoNormal

from dts_ppl import ActionStats, BanditModel, DTSGuide


@pytest.fixture(scope="module")
def problem():
    jax.config.update("jax_enable_x64", True)
    prior = random_linear_prior(jax.random.PRNGKey(5), 2, 2, 2)
    model = BanditModel(prior, num_actions=3)
    X, A, y = random_data(jax.random.PRNGKey(6), 2, 3, 9)
    return model, X, A, y


def _sequence(guide, params, X, A, y):
    """The one AutoGuide call sequence both guides run: {call: {site: shape}}."""
    key = jax.random.PRNGKey(2)
    calls = {
        "sample_posterior": guide.sample_posterior(key, params, X, A, y, sample_shape=(7,)),
        "median": guide.median(params),
        "quantiles": guide.quantiles(params, [0.1, 0.5, 0.9]),
    }
    return {name: {site: jnp.shape(v) for site, v in out.items()} for name, out in calls.items()}


def test_same_structure_as_autonormal_fitted_by_svi(problem):
    model, X, A, y = problem
    auto = AutoNormal(model)
    # a few steps: only the structure of the answers is compared, not their values
    params = SVI(model, auto, optax.adam(0.05), Trace_ELBO()).run(jax.random.PRNGKey(1), 5, X, A, y, progress_bar=False)
    dts = DTSGuide(model)
    want = _sequence(auto, params.params, X, A, y)
    got = _sequence(dts, dts.fit(X, A, y), X, A, y)
    assert got == want
    assert want["sample_posterior"] == {"psi": (7, 2, 2), "theta": (7, 3, 2)}


def test_params_are_the_statistics_and_from_statistics_needs_no_data(problem):
    model, X, A, y = problem
    guide = DTSGuide(model)
    params = guide.fit(X, A, y)
    assert isinstance(params, ActionStats) and params.G.shape == (3, 2, 2) and params.b.shape == (3, 2)
    stored = ActionStats(*(np.asarray(leaf) for leaf in params))  # e.g. saved and loaded
    rebuilt = DTSGuide.from_statistics(model, stored)
    key = jax.random.PRNGKey(3)
    a = guide.sample_posterior(key, params, sample_shape=(5,))
    b = rebuilt.sample_posterior(key, None, sample_shape=(5,))
    for site in a:
        np.testing.assert_allclose(a[site], b[site], rtol=1e-12)
    # as a NumPyro guide it samples the same sites; the bound statistics replace the data
    np.testing.assert_allclose(rebuilt.median(None)["theta"], guide.median(params)["theta"], rtol=1e-12)
    with pytest.raises(ValueError, match="params"):
        DTSGuide.from_statistics(model, ActionStats(params.G[:2], params.b[:2]))
    with pytest.raises(ValueError, match="params"):
        guide.median({"G": params.G})


def test_get_posterior_matches_median_and_quantiles(problem):
    model, X, A, y = problem
    guide = DTSGuide(model)
    params = guide.fit(X, A, y)
    post = guide.get_posterior(params)
    assert post["psi"].batch_shape == (2,) and post["psi"].event_shape == (2,)
    assert post["theta"].batch_shape == (3,) and post["theta"].event_shape == (2,)
    med, q = guide.median(params), guide.quantiles(params, [0.2, 0.8])
    for site, d in post.items():
        np.testing.assert_allclose(d.mean, med[site], rtol=1e-10)
        sd = jnp.sqrt(jnp.diagonal(d.covariance_matrix, axis1=-2, axis2=-1))
        np.testing.assert_allclose(q[site][1] - q[site][0], 2 * 0.8416212335729143 * sd, rtol=1e-8)
    # the per-action theta marginals have the joint draws' moments (MC, 5 standard errors)
    draws = guide.sample_posterior(jax.random.PRNGKey(4), params, sample_shape=(20000,))["theta"]
    se = np.asarray(draws.std(0)) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(np.asarray(draws.mean(0) - post["theta"].mean)) < 5 * se)


def test_methods_have_numpyro_autoguide_signatures():
    for name in ("sample_posterior", "median", "quantiles"):
        ours = inspect.signature(getattr(DTSGuide, name)).parameters
        theirs = inspect.signature(getattr(AutoGuide, name)).parameters
        assert [(p.name, p.kind) for p in ours.values()] == [(p.name, p.kind) for p in theirs.values()], name
        assert [p.default for p in ours.values()] == [p.default for p in theirs.values()], name


def test_the_removed_data_forms_fail_clearly(problem):
    """The data forms of the previous version (deprecated there) are gone: a clear error, not a guess."""
    model, X, A, y = problem
    guide = DTSGuide(model)
    with pytest.raises(ValueError, match="params: expected ActionStats"):
        guide.sample_posterior(jax.random.PRNGKey(0), X, A, y, (4,))
    with pytest.raises(TypeError):
        guide.median(X, A, y)
    with pytest.raises(ValueError, match="params: expected ActionStats"):
        guide.quantiles(X, [0.1, 0.9])
    with pytest.raises(ValueError, match="quantiles"):
        guide.quantiles(guide.fit(X, A, y), None)
