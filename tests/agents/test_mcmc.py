"""MCMC Thompson sampling (dts_ppl.agents.mcmc): NUTS draws against the exact posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mc import Z
from numpyro.diagnostics import effective_sample_size

from dts_ppl.agents.mcmc import mcmc_ts, posterior_potential
from dts_ppl.bandits.envs import diffusion_environment
from dts_ppl.bandits.simulation import simulate
from dts_ppl.core.likelihoods import Bernoulli, Evidence, Gaussian
from dts_ppl.core.oracle import joint_posterior, split
from dts_ppl.experiments.synthetic import random_linear_prior


def _data(K, d, n, key):
    kx, ka, ky = jax.random.split(key, 3)
    X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = 2.0 + jax.random.normal(ky, (n,))
    return X, A, y


def test_potential_is_minus_the_exact_log_posterior_up_to_a_constant():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2, 1))
    K = 3
    X, A, y = _data(K, 2, 10, jax.random.PRNGKey(1))
    stats = Gaussian(1.0).statistics(X, A, y, K)
    post = split(prior, joint_posterior(prior, stats), K)
    pot = posterior_potential(prior, K)(stats)
    # along a line through the exact posterior mean, potential differences = Gaussian quadratic form
    joint = joint_posterior(prior, stats)
    prec = jnp.linalg.inv(joint.cov)
    direction = jax.random.normal(jax.random.PRNGKey(2), joint.mean.shape)

    def z_of(v):
        L, dp = prior.num_levels, prior.latent_dim
        return {"psi": v[: L * dp].reshape(L, dp)[::-1], "theta": v[L * dp :].reshape(K, 2)}

    assert jnp.allclose(z_of(joint.mean)["theta"], post["theta_mean"])
    for t in (0.3, 1.0):
        v = joint.mean + t * direction
        diff = pot(z_of(v)) - pot(z_of(joint.mean))
        assert float(diff) == pytest.approx(float(0.5 * t**2 * direction @ prec @ direction), rel=1e-8)


def test_refresh_draws_match_the_exact_posterior_within_mc_error():
    prior = random_linear_prior(jax.random.PRNGKey(3), 2, (2, 1))
    K, m = 3, 400
    X, A, y = _data(K, 2, 30, jax.random.PRNGKey(4))
    agent = mcmc_ts(prior, Gaussian(1.0), K, refresh_every=m, num_warmup=200, thinning=2, seed=5)
    state = agent.init()
    # preload 29 observations, then one update: the refresh after round 1 sees all 30
    stats = Gaussian(1.0).statistics(X[:-1], A[:-1], y[:-1], K)
    state = state._replace(evidence=Evidence(stats, None))
    state = jax.jit(agent.update)(state, X[-1], A[-1], y[-1])
    post = split(prior, joint_posterior(prior, Gaussian(1.0).statistics(X, A, y, K)), K)
    draws = np.asarray(state.draws)  # (m, K, d)
    ess = np.asarray(effective_sample_size(draws[None]))
    assert ess.min() > 50
    var = np.asarray(jnp.diagonal(post["theta_cov"], axis1=-2, axis2=-1))
    z = np.abs(draws.mean(0) - np.asarray(post["theta_mean"])) / np.sqrt(var / ess)
    assert z.max() < Z, f"NUTS mean off by {z.max():.1f} s.e."
    # sample variance: relative s.e. about sqrt(2 / ess)
    rel = np.abs(draws.var(0) / var - 1) / np.sqrt(2 / ess)
    assert rel.max() < Z, f"NUTS variance off by {rel.max():.1f} s.e."


@pytest.mark.slow  # a learning smoke test of a baseline (72 s under load); its draws are checked above
def test_agent_runs_under_vmap_and_learns():
    prior = random_linear_prior(jax.random.PRNGKey(6), 3, (3, 2))
    K = 5
    env = diffusion_environment(prior, K, Gaussian(1.0))
    agent = mcmc_ts(prior, Gaussian(1.0), K, refresh_every=5, num_warmup=10)
    res = simulate(jax.random.PRNGKey(7), env, agent, 60, 4, progress=False)
    per_round = np.diff(res.cumulative, axis=1, prepend=0.0)
    assert np.all(per_round >= -1e-12) and np.all(np.isfinite(per_round))
    # random play on this problem has a per-round regret far above what the agent reaches late on
    assert per_round[:, 40:].mean() < per_round[:, :5].mean()


def test_bad_inputs_raise():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2,))
    with pytest.raises(ValueError, match="likelihood"):
        mcmc_ts(prior, Bernoulli(), 3)
    with pytest.raises(ValueError, match="refresh_every"):
        mcmc_ts(prior, Gaussian(1.0), 3, refresh_every=0)
    with pytest.raises(ValueError, match="num_actions"):
        mcmc_ts(prior, Gaussian(1.0), 0)
    with pytest.raises(ValueError, match="target_accept_prob"):
        mcmc_ts(prior, Gaussian(1.0), 3, target_accept_prob=1.0)
