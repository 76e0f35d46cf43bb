"""LaplaceDPS (Kveton et al. 2024): exact on an affine chain with the propagated evidence map, MC
check of its draws, the paper's diffused map's gap and consistency, GLM stages, guard behaviour."""

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian
from dts_ppl.agents.laplace_dps import diffused_maps, laplace_dps, stage_posteriors
from dts_ppl.core import inference as core
from dts_ppl.core import oracle

K, D = 4, 3


def _prior():
    return DiffusionPrior.linear(
        [
            jnp.array([[1.0, 0.5], [0.2, -0.7], [0.3, 0.1]]),
            jnp.array([[0.8, 0.1], [-0.2, 0.9]]),
            jnp.array([[1.1, 0.0], [0.3, 0.7]]),
        ],
        [0.5, 0.3, 0.4, 1.0],
        offsets=[jnp.array([0.1, -0.2, 0.3]), jnp.array([0.5, 0.0]), jnp.array([0.0, -0.4])],
    )


def _rounds(agent, n, seed=0):
    key = jax.random.PRNGKey(seed)
    state = agent.init()
    X, A, y = [], [], []
    theta = jnp.array([0.7, -0.3, 0.4])
    for _ in range(n):
        key, kx, ka, ky = jax.random.split(key, 4)
        x = jax.random.uniform(kx, (K, D), minval=-1.0, maxval=1.0)
        a, _ = agent.act(ka, state, x)
        r = x[a] @ theta + jax.random.normal(ky)
        state = agent.update(state, x, a, r)
        X.append(x[a]), A.append(0), y.append(r)
    return state, jnp.stack(X), jnp.array(A), jnp.array(y)


def test_propagated_equals_exact_posterior_on_affine_chain():
    prior = _prior()
    agent = laplace_dps(prior, Gaussian(0.8), K, evidence="propagated")
    state, X, A, y = _rounds(agent, 12)
    stats = Gaussian(0.8).statistics(X, A, y, 1)
    exact = oracle.split(prior, oracle.joint_posterior(prior, stats), 1)
    mo = core.moments(prior, core.DTSPosterior(state.latents, state.theta), core.linearise(prior, "jacobian"))
    for name in ("psi_mean", "psi_cov", "theta_mean", "theta_cov"):
        np.testing.assert_allclose(getattr(mo, name), exact[name], rtol=0, atol=1e-8, err_msg=name)


def test_draws_match_their_stage_posteriors():
    prior = _prior()
    agent = laplace_dps(prior, Gaussian(0.8), K)
    state, *_ = _rounds(agent, 10)
    post = core.DTSPosterior(state.latents, state.theta)
    mo = core.moments(prior, post, core.linearise(prior, "jacobian"))
    psi, theta = core.sample(jax.random.PRNGKey(3), prior, post, (20000,))
    theta = theta[:, 0]
    mc.assert_mean_within_mc(theta, mo.theta_mean[0], jnp.diag(mo.theta_cov[0]), "theta mean")
    v = jnp.diag(mo.theta_cov[0])
    mc.assert_cov_within_mc(theta, theta, mo.theta_cov[0], v, v, "theta cov")
    mc.assert_mean_within_mc(psi[:, 0], mo.psi_mean[0], jnp.diag(mo.psi_cov[0]), "top latent mean")
    # the agent's scores are x^T theta for such draws: their mean over keys is x^T E[theta]
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (K, D)))
    keys = jax.random.split(jax.random.PRNGKey(4), 400)
    scores = jnp.stack([agent.act(k, state, x)[1].scores for k in keys])
    mc.assert_mean_within_mc(scores, x @ mo.theta_mean[0], jnp.diag(x @ mo.theta_cov[0] @ x.T), "scores")


def test_diffused_map_is_the_composed_mean_map_and_not_exact_but_consistent():
    prior = _prior()
    A, c = diffused_maps(prior)
    # row 0 = psi_3: theta = W1 (W2 (W3 psi + c3) + c2) + c1
    W = [prior.link(i).weight for i in (1, 2, 3)]
    cs = [prior.link(i).offset for i in (1, 2, 3)]
    np.testing.assert_allclose(A[0], W[0] @ W[1] @ W[2], atol=1e-12)
    np.testing.assert_allclose(c[0], W[0] @ (W[1] @ cs[2] + cs[1]) + cs[0], atol=1e-12)
    np.testing.assert_allclose(A[2], W[0], atol=1e-12)

    rng = np.random.default_rng(0)
    theta = jnp.array([0.7, -0.3, 0.4])
    gaps = []
    for n in (5, 5000):
        X = jnp.asarray(rng.uniform(-1, 1, (n, D)))
        y = X @ theta + jnp.asarray(rng.normal(size=n))
        stats = Gaussian(1.0).statistics(X, jnp.zeros(n, int), y, 1)
        exact = oracle.split(prior, oracle.joint_posterior(prior, stats), 1)
        post = stage_posteriors(prior, stats.G[0], stats.b[0], "diffused")
        mo = core.moments(prior, post, core.linearise(prior, "jacobian"))
        sd = jnp.sqrt(jnp.diag(exact["theta_cov"][0]))
        gaps.append(float(jnp.max(jnp.abs(mo.theta_mean[0] - exact["theta_mean"][0]) / sd)))
    assert gaps[0] > 1e-3  # the dropped noise moves the posterior with little data
    assert gaps[1] < 0.5 * gaps[0] or gaps[1] < 0.1  # and matters less as evidence accumulates


def test_ddpm_diffused_map_uses_abar():
    from dts_ppl.ddpm.network import init_eps_net
    from dts_ppl.ddpm.prior import build_prior
    from dts_ppl.ddpm.schedule import noise_schedule

    betas = noise_schedule("cosine", 5)
    params = init_eps_net(jax.random.PRNGKey(0), 2, 8)
    scale, mean = np.array([2.0, 0.5]), np.array([1.0, -1.0])
    prior = build_prior(params, betas, mean, scale)
    A, c = diffused_maps(prior)
    abar = np.cumprod(1 - np.asarray(betas))
    np.testing.assert_allclose(A[0], np.diag(scale) / np.sqrt(abar[-1]), rtol=1e-10)
    np.testing.assert_allclose(A[-1], np.diag(scale) / np.sqrt(abar[0]), rtol=1e-10)
    np.testing.assert_allclose(c[0], mean, rtol=1e-12)


def test_glm_stages_run_and_learn():
    prior = _prior()
    agent = laplace_dps(prior, Bernoulli(), K, history=64)
    key = jax.random.PRNGKey(1)
    state = agent.init()
    x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (K, D)))
    for t in range(40):
        key, k = jax.random.split(key)
        state = agent.update(state, x, t % K, float(t % K == 0))
    draws = jnp.stack([agent.act(k, state, x)[1].scores for k in jax.random.split(key, 200)])
    assert bool(jnp.all(jnp.isfinite(draws)))
    assert int(jnp.argmax(draws.mean(0))) == 0


def test_guard_rejects_bad_rows_and_raises_on_bad_inputs():
    prior = _prior()
    agent = laplace_dps(prior, Gaussian(1.0), K)
    state, *_ = _rounds(agent, 3)
    x = jnp.ones((K, D))
    upd = jax.jit(agent.update)
    for bad in ((x.at[0, 0].set(jnp.nan), 0, 1.0), (x, K + 2, 1.0), (x, 0, jnp.inf)):
        new = upd(state, *bad)
        assert int(new.rejected) == 1 and int(new.step) == int(state.step)
        leaves = jax.tree.leaves(new._replace(rejected=0)), jax.tree.leaves(state._replace(rejected=0))
        for a, b in zip(*leaves, strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="action"):
        agent.update(state, x, K, 1.0)
    with pytest.raises(ValueError, match="x"):
        agent.act(jax.random.PRNGKey(0), state, jnp.ones(D))
    batch = jax.jit(agent.update_batch)(
        state, jnp.stack([x, x.at[1, 1].set(jnp.nan)]), jnp.array([1, 2]), jnp.array([0.5, 1.0])
    )
    assert int(batch.rejected) == 1 and int(batch.step) == int(state.step) + 1


def test_factory_rejects_bad_options():
    prior = _prior()
    with pytest.raises(ValueError, match="evidence"):
        laplace_dps(prior, Gaussian(1.0), K, evidence="exact")
    with pytest.raises(ValueError, match="shared"):
        laplace_dps(prior, Gaussian(1.0), K, shared=False)
    with pytest.raises(ValueError, match="evidence"):
        laplace_dps(prior, Bernoulli(), K, evidence="propagated")
    with pytest.raises(ValueError, match="prior"):
        laplace_dps("prior", Gaussian(1.0), K)
