"""The online empirical-Bayes re-fit option (dts_ppl.agents.refit): dts, hier_ts and lin_ts."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dts_ppl import agents as ag
from dts_ppl.agents.refit import Refit
from dts_ppl.core.empirical_bayes import fit_hyperparameters
from dts_ppl.core.evidence import gaussian_log_evidence, gaussian_summary
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.core.linalg import psd_inv
from dts_ppl.experiments.synthetic import random_linear_prior

K, D, N = 6, 3, 60


def _prior():
    return random_linear_prior(jax.random.PRNGKey(0), D, (D, 2))


def _data(seed=1, n=N, sigma=0.4):
    kx, ka, ky, kt = jax.random.split(jax.random.PRNGKey(seed), 4)
    X = jax.random.uniform(kx, (n, D), minval=-1.0, maxval=1.0)
    A = jax.random.randint(ka, (n,), 0, K)
    theta = jax.random.normal(kt, (K, D))
    return X, A, jnp.sum(X * theta[A], -1) + sigma * jax.random.normal(ky, (n,))


def _scan(agent):
    if id(agent) in _COMPILED:
        return _COMPILED[id(agent)]

    def run(X, A, y):
        def body(s, xs):
            return agent.update(s, *xs), None

        return jax.lax.scan(body, agent.init(), (X, A, y))[0]

    _COMPILED[id(agent)] = jax.jit(run)
    return _COMPILED[id(agent)]


_COMPILED = {}  # id(agent) -> its jitted scan (the agents live in _AGENTS or the test that made them)
_AGENTS = {}


def _refit_agent(kind="dts", every=N // 2, steps=3, **kw):
    """One agent per configuration for the whole module (each compiles its re-fit once)."""
    key = (kind, every, steps, tuple(sorted(kw.items())))
    if key not in _AGENTS:
        factory = {"dts": ag.dts, "hier_ts": ag.hier_ts}[kind]
        _AGENTS[key] = factory(_prior(), Gaussian(1.0), K, refit=Refit(every=every, fit=FIT, steps=steps), **kw)
    return _AGENTS[key]


BAD = (  # a non-finite context, an action outside [0, K), a NaN reward, a reward beyond reward_bound
    jnp.full((4, D), 0.5).at[1, 1].set(jnp.inf),
    jnp.asarray([0, 1, K, 2]),
    jnp.asarray([jnp.nan, 1.0, 1.0, 1e6]),
)


def _with_bad_rows(X, A, y, at):
    """The data with the four BAD rows inserted before row ``at`` (at = len: appended)."""
    return tuple(jnp.concatenate([v[:at], b, v[at:]]) for v, b in zip((X, A, y), BAD, strict=True))


def _scaled(prior, hyper, initial_scale):
    return prior._replace(cov1=prior.cov1 * (hyper.action_scale / initial_scale) ** 2)


FIT = ("noise_scale", "action_cov")


# slow: the default run re-fits through the option in
# test_after_a_refit_the_state_is_an_agent_built_with_the_fitted_values[dts]
@pytest.mark.slow
def test_refit_option_without_a_refit_is_the_plain_agent_bit_for_bit():
    prior, (X, A, y) = _prior(), _data()
    plain = _scan(ag.dts(prior, Gaussian(1.0), K))(X, A, y)
    never_agent = ag.dts(prior, Gaussian(1.0), K, refit=Refit(every=10 * N))
    never = _scan(never_agent)(X, A, y)
    assert never.hyper.refits == 0
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(never)[: len(jax.tree.leaves(plain))], strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = X[0]
    for seed in range(3):
        k = jax.random.PRNGKey(seed)
        np.testing.assert_array_equal(
            ag.dts(prior, Gaussian(1.0), K).act(k, plain, x)[1].scores,
            never_agent.act(k, never, x)[1].scores,
        )


def _assert_close(a, b, tol=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "kind",
    [
        "dts",
        pytest.param("dts-shared", marks=SLOW),
        pytest.param("hier_ts", marks=SLOW),
        pytest.param("lin_ts", marks=SLOW),
    ],
)
def test_after_a_refit_the_state_is_an_agent_built_with_the_fitted_values(kind):
    prior, (X, A, y) = _prior(), _data()
    s1 = float(jnp.sqrt(jnp.mean(jnp.diag(prior.cov1))))
    refit = Refit(every=N // 2, fit=FIT, steps=3)
    if kind == "dts":  # the module's shared agent, run with the four BAD rows appended (all rejected)
        agent = _refit_agent(reward_bound=50.0)
        state = _scan(agent)(*_with_bad_rows(X, A, y, N))
        assert int(state.rejected) == 4
    if kind == "lin_ts":
        gauss = ag.theta_marginal(prior)
        s1 = float(jnp.sqrt(jnp.mean(jnp.diag(gauss.cov))))

        def make(lik, scale=1.0, **kw):
            return ag.lin_ts(gauss._replace(cov=gauss.cov * scale**2), lik, K, **kw)
    else:
        factory = ag.hier_ts if kind == "hier_ts" else ag.dts
        shared = kind == "dts-shared"
        if kind == "hier_ts":
            s1 = float(jnp.sqrt(jnp.mean(jnp.diag(ag.hierarchical_prior(prior).cov1))))

        def make(lik, scale=1.0, **kw):
            if kind == "hier_ts" and "refit" in kw:
                return ag.hier_ts(prior, lik, K, **kw)
            if kind == "hier_ts":  # HierTS-1's S_1 is its hierarchical prior's own covariance
                hp = ag.hierarchical_prior(prior)
                return ag.dts(hp._replace(cov1=hp.cov1 * scale**2), lik, K, **kw)
            return factory(prior._replace(cov1=prior.cov1 * scale**2), lik, K, shared=shared, **kw)

    if kind == "dts-shared":
        feats = jax.random.uniform(jax.random.PRNGKey(5), (N, K, D), minval=-1.0, maxval=1.0)
        X = feats
    if kind != "dts":
        agent = make(Gaussian(1.0), refit=refit)
        state = _scan(agent)(X, A, y)
    assert int(state.hyper.refits) == 2
    h = state.hyper
    fresh_agent = make(Gaussian(float(h.noise_scale)), float(h.action_scale) / s1)
    fresh = _scan(fresh_agent)(X, A, y)
    for field in fresh._fields:
        if field == "rejected":
            continue
        for a, b in zip(jax.tree.leaves(getattr(state, field)), jax.tree.leaves(getattr(fresh, field)), strict=True):
            if jnp.issubdtype(jnp.asarray(b).dtype, jnp.floating):
                _assert_close(a, b)
            else:
                np.testing.assert_array_equal(a, b)
    if kind.startswith("dts"):
        scaled = prior._replace(cov1=prior.cov1 * (float(h.action_scale) / s1) ** 2)
        _assert_close(h.prec1, psd_inv(scaled.cov1))
        post, want = ag.dts_posterior(prior, state), ag.dts_posterior(scaled, fresh)
        for a, b in zip(jax.tree.leaves(post), jax.tree.leaves(want), strict=True):
            _assert_close(a, b)
    # the same draws for the same key
    k = jax.random.PRNGKey(3)
    _assert_close(agent.act(k, state, X[0])[1].scores, fresh_agent.act(k, fresh, X[0])[1].scores)


@SLOW
def test_the_first_refit_is_the_evidence_maximiser_of_fit_hyperparameters():
    # the default re-fit (Newton steps on the evidence from one eigendecomposition per action) ends
    # at the maximiser core's fit_hyperparameters finds with 100 L-BFGS steps, where the core's own
    # evidence (evaluated independently, through K conditionings) has zero gradient
    prior, (X, A, y) = _prior(), _data(n=N)
    state = _scan(ag.dts(prior, Gaussian(1.0), K, refit=Refit(every=N, fit=FIT, steps=8)))(X, A, y)
    want = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, FIT, num_actions=K, num_steps=100)
    h = state.hyper
    np.testing.assert_allclose(float(h.noise_scale), want.values["noise_scale"], rtol=1e-6)
    np.testing.assert_allclose(float(h.action_scale), want.values["action_scale"], rtol=1e-6)
    s1 = float(jnp.sqrt(jnp.mean(jnp.diag(prior.cov1))))
    summary = gaussian_summary(X, A, y, K)

    def log_ev(log_values):
        sigma, scale = jnp.exp(log_values)
        return gaussian_log_evidence(prior._replace(cov1=prior.cov1 * (scale / s1) ** 2), summary, sigma)

    at = jnp.log(jnp.asarray([h.noise_scale, h.action_scale]))
    np.testing.assert_allclose(float(h.log_evidence), float(log_ev(at)), rtol=1e-10)
    assert float(jnp.max(jnp.abs(jax.grad(log_ev)(at)))) < 1e-6 * N
    assert float(h.log_evidence) >= float(want.log_evidence[-1]) - 1e-9 * N


@SLOW
def test_a_refit_with_an_optax_optimizer_is_fit_hyperparameters_with_it():
    prior, (X, A, y) = _prior(), _data(n=N)
    refit = Refit(every=N, fit=FIT, steps=4, optimizer=optax.lbfgs())
    state = _scan(ag.dts(prior, Gaussian(1.0), K, refit=refit))(X, A, y)
    want = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, FIT, num_actions=K, num_steps=4)
    np.testing.assert_allclose(float(state.hyper.noise_scale), want.values["noise_scale"], rtol=1e-9)
    np.testing.assert_allclose(float(state.hyper.action_scale), want.values["action_scale"], rtol=1e-9)
    np.testing.assert_allclose(float(state.hyper.log_evidence), float(want.log_evidence[-1]), rtol=1e-9)


@SLOW
def test_a_jitted_scan_compiles_once_and_vmapped_runs_refit_as_single_runs():
    prior = _prior()
    agent = ag.dts(prior, Gaussian(1.0), K, refit=Refit(every=20, fit=FIT, steps=2))
    run = _scan(agent)
    (X1, A1, y1), (X2, A2, y2) = _data(1), _data(2, sigma=1.5)
    s1, s2 = run(X1, A1, y1), run(X2, A2, y2)
    assert run._cache_size() == 1
    assert int(s1.hyper.refits) == int(s2.hyper.refits) == 3
    both = jax.jit(jax.vmap(run))(jnp.stack([X1, X2]), jnp.stack([A1, A2]), jnp.stack([y1, y2]))
    for a, b1, b2 in zip(jax.tree.leaves(both), jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        _assert_close(a[0], b1, 1e-9)
        _assert_close(a[1], b2, 1e-9)


def test_rejected_observations_never_enter_the_statistics_or_move_the_refit():
    X, A, y = _data()
    agent = _refit_agent(reward_bound=50.0)  # the same compiled scan as the test above
    clean = _scan(agent)(*_with_bad_rows(X, A, y, N))  # the bad rows after the last round
    dirty = _scan(agent)(*_with_bad_rows(X, A, y, N // 2 - 3))  # ... and just before the first re-fit
    assert int(dirty.rejected) == int(clean.rejected) == 4
    assert int(dirty.hyper.refits) == int(clean.hyper.refits) == 2
    assert _scan(agent)._cache_size() == 1  # one compilation for every call, re-fits included
    for a, b in zip(jax.tree.leaves(dirty), jax.tree.leaves(clean), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@SLOW
def test_update_batch_refits_when_it_crosses_a_multiple():
    prior, (X, A, y) = _prior(), _data()
    agent = ag.dts(prior, Gaussian(1.0), K, refit=Refit(every=25, fit=FIT, steps=2))
    state = agent.update_batch(agent.init(), X[:30], A[:30], y[:30])
    assert int(state.hyper.refits) == 1 and int(state.step) == 30
    state = agent.update_batch(state, X[30:45], A[30:45], y[30:45])
    assert int(state.hyper.refits) == 1
    state = agent.update_batch(state, X[45:], A[45:], y[45:])
    assert int(state.hyper.refits) == 2
    np.testing.assert_allclose(np.asarray(state.hyper.summary.count).sum(), N)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(refit=Refit(fit=("latent_cov",))), "refit.fit"),
        (dict(refit=Refit(every=0)), "refit.every"),
        (dict(refit=Refit(steps=-1)), "refit.steps"),
        (dict(refit=Refit(bounds={"noise_scale": (2.0, 3.0)})), "refit.bounds"),
        (dict(refit=Refit(optimizer="adam")), "refit.optimizer"),
        (dict(refit="every 100"), "refit: expected"),
    ],
)
def test_bad_refit_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ag.dts(_prior(), Gaussian(1.0), K, **kwargs)


def test_refit_needs_gaussian_rewards():
    with pytest.raises(ValueError, match="Gaussian rewards"):
        ag.dts(_prior(), Bernoulli(), K, refit=Refit())
    with pytest.raises(ValueError, match="Gaussian rewards"):
        ag.lin_ts(ag.theta_marginal(_prior()), Bernoulli(), K, refit=Refit())


@SLOW
def test_a_refit_state_saves_and_loads(tmp_path):
    from dts_ppl.io.state_files import load_state, save_state

    prior, (X, A, y) = _prior(), _data()
    agent = ag.dts(prior, Gaussian(1.0), K, refit=Refit(every=20, fit=FIT, steps=2))
    state = _scan(agent)(X, A, y)
    save_state(tmp_path / "s.npz", state, agent=agent)
    loaded, _ = load_state(tmp_path / "s.npz", agent)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
