"""Bayes-UCB and UCB on the dTS / HierTS / LinTS posteriors against independent references.

Affine chains: the float64 joint-Gaussian oracle (theta_a's exact marginal) and scipy's normal
quantile. LinTS: the conjugate posterior in numpy. Nonlinear chains: Monte-Carlo draws of
x^T theta_a from the dTS posterior chain (tolerances from the binomial / mean standard errors).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.agents import dts, dts_posterior, hier_ts, hierarchical_prior, lin_ts, propensities, theta_marginal
from dts_ppl.agents.posterior_policy import mixture_quantile, posterior_policy
from dts_ppl.core import inference as core
from dts_ppl.core import oracle
from dts_ppl.core import prng as _prng
from dts_ppl.experiments.synthetic import random_mlp_prior


def _linear_prior(key, d=3, dp=2):
    k1, k2, k3 = jax.random.split(key, 3)
    a = jax.random.normal(k3, (d, d))
    return DiffusionPrior.linear(
        [jax.random.normal(k1, (d, dp)), jax.random.normal(k2, (dp, dp))],
        [a @ a.T / d + 0.5 * jnp.eye(d), 0.7 * jnp.eye(dp), 2.0],
        offsets=[jnp.arange(d) / d, -jnp.ones(dp) / 2],
    )


def _data(key, n, d, K, shared=False):
    kx, ka, ky = jax.random.split(key, 3)
    X = jax.random.uniform(kx, (n, K, d) if shared else (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.normal(ky, (n,)) + 0.5
    return X, A, y


def _feed(agent, X, A, y):
    def step(state, row):
        return agent.update(state, *row), None

    return jax.jit(lambda data: jax.lax.scan(step, agent.init(), data)[0])((X, A, y))


def _played(X, A, shared):
    return X[jnp.arange(X.shape[0]), A] if shared else X


def _expected(policy, mean, var, t):
    t = max(t, 2)
    width = np.sqrt(2 * np.log(t)) if policy == "ucb" else stats.norm.ppf(1 - 1 / t)
    return mean + width * np.sqrt(var)


@pytest.mark.parametrize(("base", "shared"), [("dts", False), ("dts", True), ("hier_ts", False)])
def test_affine_scores_are_the_oracle_marginal_quantiles(key, base, shared):
    K, n = 4, 30
    prior = _linear_prior(key)
    X, A, y = _data(jax.random.PRNGKey(3), n, prior.dim, K, shared)
    agents = {p: posterior_policy(base, prior, Gaussian(1.0), K, policy=p, shared=shared) for p in ("bayes_ucb", "ucb")}
    state = _feed(agents["ucb"], X, A, y)  # one posterior: the policies share init and update
    chain = hierarchical_prior(prior) if base == "hier_ts" else prior
    M = 1 if shared else K
    stats_ = Gaussian(1.0).statistics(_played(X, A, shared), jnp.zeros_like(A) if shared else A, y, M)
    ref = oracle.split(chain, oracle.joint_posterior(chain, stats_), M)
    x = jax.random.uniform(jax.random.PRNGKey(9), (K, prior.dim) if shared else (prior.dim,), minval=-1, maxval=1)
    if shared:
        mean = np.asarray(x @ ref["theta_mean"][0])
        var = np.einsum("ki,ij,kj->k", x, ref["theta_cov"][0], x)
    else:
        mean = np.asarray(ref["theta_mean"] @ x)
        var = np.einsum("i,kij,j->k", x, ref["theta_cov"], x)
    for policy, agent in agents.items():
        assert agent.spec.deterministic and agent.spec.kind == f"{base}_{policy}"
        expected = _expected(policy, mean, var, n + 1)
        _, info = agent.act(key, state, x)
        np.testing.assert_allclose(info.scores, expected, rtol=1e-8, atol=1e-10)
        # deterministic: one-hot propensities on the argmax
        probs = propensities(agent, key, state, x).probs
        assert float(probs[int(np.argmax(expected))]) == 1.0


@pytest.mark.parametrize("policy", ["bayes_ucb", "ucb"])
def test_lin_ts_scores_are_the_conjugate_quantiles(key, policy):
    K, n = 3, 20
    prior = _linear_prior(key)
    gauss = theta_marginal(prior)
    X, A, y = _data(jax.random.PRNGKey(6), n, prior.dim, K)
    agent = posterior_policy("lin_ts", gauss, Gaussian(1.0), K, policy=policy)
    state = _feed(agent, X, A, y)
    x = jnp.array([0.4, -0.2, 0.9])
    P0 = np.linalg.inv(np.asarray(gauss.cov))
    mean, var = [], []
    for a in range(K):
        Xa, ya = np.asarray(X)[np.asarray(A) == a], np.asarray(y)[np.asarray(A) == a]
        cov = np.linalg.inv(P0 + Xa.T @ Xa)
        m = cov @ (P0 @ np.asarray(gauss.mean) + Xa.T @ ya)
        mean.append(x @ m)
        var.append(x @ cov @ x)
    _, info = agent.act(key, state, x)
    np.testing.assert_allclose(info.scores, _expected(policy, np.array(mean), np.array(var), n + 1), rtol=1e-8)


def test_mixture_quantile_matches_a_root_of_the_mixture_cdf():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, 5)) * np.array([0.1, 1.0, 3.0, 0.0, 10.0])
    sd = np.array([0.5, 0.2, 1.0, 0.3, 1e-3])
    for level in (0.5, 0.9, 0.999):
        got = np.asarray(mixture_quantile(jnp.asarray(means), jnp.asarray(sd), level))
        for k in range(5):
            cdf = lambda q, k=k, p=level: stats.norm.cdf((q - means[:, k]) / sd[k]).mean() - p  # noqa: E731
            ref = optimize.brentq(cdf, means[:, k].min() - 50, means[:, k].max() + 50, xtol=1e-13)
            assert abs(got[k] - ref) < 1e-9


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_nonlinear_bayes_ucb_is_the_posterior_quantile_by_monte_carlo(key, shared):
    """The mixture quantile q_a of eta_a: the fraction of exact posterior draws of eta_a below q_a is 1 - 1/t."""
    K, n, M, S = 3, 15, 20_000, 200_000
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    X, A, y = _data(jax.random.PRNGKey(4), n, prior.dim, K, shared)
    agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="bayes_ucb", num_draws=M, shared=shared)
    assert not agent.spec.deterministic
    state = _feed(agent, X, A, y)
    x = jax.random.uniform(jax.random.PRNGKey(8), (K, 3) if shared else (3,), minval=-1, maxval=1)
    q = agent.act(jax.random.PRNGKey(11), state, x)[1].scores
    _, theta = core.sample(jax.random.PRNGKey(12), prior, dts_posterior(prior, state), (S,))
    eta = theta[:, 0] @ x.T if shared else jnp.einsum("skd,d->sk", theta, x)
    level = 1 - 1 / (n + 1)
    frac = np.mean(np.asarray(eta) <= np.asarray(q)[None], 0)
    se = np.sqrt(level * (1 - level) * (1 / M + 1 / S))
    assert np.all(np.abs(frac - level) < 5 * se), (frac, level, se)


@pytest.mark.slow
def test_nonlinear_ucb_uses_the_posterior_mean_and_sd_by_monte_carlo(key):
    K, n, M, S = 3, 15, 20_000, 200_000
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    X, A, y = _data(jax.random.PRNGKey(4), n, prior.dim, K)
    agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="ucb", alpha=1.5, num_draws=M)
    state = _feed(agent, X, A, y)
    x = jnp.array([0.3, -0.8, 0.6])
    ucb = np.asarray(agent.act(jax.random.PRNGKey(11), state, x)[1].scores)
    _, theta = core.sample(jax.random.PRNGKey(12), prior, dts_posterior(prior, state), (S,))
    eta = np.asarray(jnp.einsum("skd,d->sk", theta, x))
    ref = eta.mean(0) + 1.5 * eta.std(0)
    # s.e. of mean + 1.5 sd: sd sqrt(1 + 1.5^2 (kurtosis - 1) / 4) / sqrt(n), with both estimates' noise
    kurt = stats.kurtosis(eta, 0, fisher=False)
    se = eta.std(0) * np.sqrt((1 + 2.25 * (kurt - 1) / 4) * (1 / M + 1 / S))
    assert np.all(np.abs(ucb - ref) < 5 * se), (ucb, ref, se)


def test_nonlinear_policy_is_jittable_and_has_monte_carlo_propensities(key):
    K = 4
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="ucb", num_draws=16)
    state = agent.init()
    x = jnp.array([0.3, -0.8, 0.6])
    action, info = jax.jit(agent.act)(key, state, x)
    assert info.scores.shape == (K,) and 0 <= int(action) < K
    p = propensities(agent, key, state, x, num_samples=50)
    assert abs(float(p.probs.sum()) - 1) < 1e-12


def test_bad_options_are_named(key):
    prior = _linear_prior(key)
    with pytest.raises(ValueError, match="base"):
        posterior_policy("exact_ts", prior, num_actions=3)
    with pytest.raises(ValueError, match="policy"):
        posterior_policy("dts", prior, num_actions=3, policy="ids")
    with pytest.raises(ValueError, match="num_draws"):
        posterior_policy("dts", prior, num_actions=3, num_draws=0)
    with pytest.raises(ValueError, match="alpha"):
        posterior_policy("dts", prior, num_actions=3, policy="ucb", alpha=-1.0)


def test_bayes_ucb_gaussian_equals_bayes_ucb_on_gaussian_posteriors(key):
    K, n = 4, 25
    prior = _linear_prior(key)
    X, A, y = _data(jax.random.PRNGKey(5), n, prior.dim, K)
    x = jnp.array([0.2, -0.7, 0.5])
    for base, p in (("dts", prior), ("lin_ts", theta_marginal(prior))):
        agents = {q: posterior_policy(base, p, Gaussian(1.0), K, policy=q) for q in ("bayes_ucb", "bayes_ucb_gaussian")}
        state = _feed(agents["bayes_ucb"], X, A, y)
        got = agents["bayes_ucb_gaussian"].act(key, state, x)[1].scores
        np.testing.assert_allclose(got, agents["bayes_ucb"].act(key, state, x)[1].scores, rtol=1e-10)


def test_nonlinear_bayes_ucb_gaussian_is_the_moment_matched_quantile_by_monte_carlo(key):
    """E[eta_a] + Phi^-1(1 - 1/t) sd(eta_a) against the mean and sd of exact posterior draws of eta_a."""
    K, n, M, S = 3, 15, 20_000, 200_000
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    X, A, y = _data(jax.random.PRNGKey(4), n, prior.dim, K)
    agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="bayes_ucb_gaussian", num_draws=M)
    assert not agent.spec.deterministic and agent.spec.kind == "dts_bayes_ucb_gaussian"
    state = _feed(agent, X, A, y)
    x = jnp.array([0.3, -0.8, 0.6])
    got = np.asarray(agent.act(jax.random.PRNGKey(11), state, x)[1].scores)
    _, theta = core.sample(jax.random.PRNGKey(12), prior, dts_posterior(prior, state), (S,))
    eta = np.asarray(jnp.einsum("skd,d->sk", theta, x))
    z = stats.norm.ppf(1 - 1 / (n + 1))
    ref = eta.mean(0) + z * eta.std(0)
    kurt = stats.kurtosis(eta, 0, fisher=False)
    se = eta.std(0) * np.sqrt((1 + z**2 * (kurt - 1) / 4) * (1 / M + 1 / S))
    assert np.all(np.abs(got - ref) < 5 * se), (got, ref, se)


# dts_mlp runs in the slow run: the MLP chain's scoring is also checked by Monte Carlo in
# test_nonlinear_bayes_ucb_gaussian_is_the_moment_matched_quantile_by_monte_carlo
@pytest.mark.parametrize("base", ["lin_ts", "dts_affine", pytest.param("dts_mlp", marks=pytest.mark.slow)])
def test_optimistic_ts_is_a_posterior_draw_raised_to_the_posterior_mean(key, base):
    """Over act keys: P(score = mean) = 1/2 and E[score] = mean + sd / sqrt(2 pi) (the draw's law)."""
    K, n, R, M = 3, 20, 2000, 1000
    if base == "dts_mlp":
        prior = random_mlp_prior(key, 3, 2, hidden=8)
        agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="optimistic_ts", num_draws=M)
    else:
        prior = _linear_prior(key)
        p, b = (theta_marginal(prior), "lin_ts") if base == "lin_ts" else (prior, "dts")
        agent = posterior_policy(b, p, Gaussian(1.0), K, policy="optimistic_ts")
    assert not agent.spec.deterministic and agent.spec.kind.endswith("_optimistic_ts")
    X, A, y = _data(jax.random.PRNGKey(2), n, prior.dim, K)
    state = _feed(agent, X, A, y)
    x = jnp.array([0.5, -0.4, 0.8])
    scores = np.asarray(jax.vmap(lambda k: agent.act(k, state, x)[1].scores)(jax.random.split(key, R)))
    # the reference law of eta_a: exact posterior draws (oracle chain draws, or the conjugate Gaussian)
    if base == "lin_ts":
        gauss = theta_marginal(prior)
        P0 = np.linalg.inv(np.asarray(gauss.cov))
        eta = []
        for a in range(K):
            Xa, ya = np.asarray(X)[np.asarray(A) == a], np.asarray(y)[np.asarray(A) == a]
            cov = np.linalg.inv(P0 + Xa.T @ Xa)
            m = cov @ (P0 @ np.asarray(gauss.mean) + Xa.T @ ya)
            eta.append(np.random.default_rng(a).multivariate_normal(m, cov, 200_000) @ np.asarray(x))
        eta = np.stack(eta, 1)
    else:
        _, theta = core.sample(jax.random.PRNGKey(12), prior, dts_posterior(prior, state), (200_000,))
        eta = np.asarray(jnp.einsum("skd,d->sk", theta, x))
    mean, sd = eta.mean(0), eta.std(0)
    # the score's floor is the posterior mean: exact for the Gaussian bases, a mean of M draws for the MLP
    tol = 5 * sd / np.sqrt(M) if base == "dts_mlp" else 1e-9 * (1 + np.abs(mean))
    assert np.all(scores >= mean - tol - 5 * sd / np.sqrt(200_000))
    at_mean = np.abs(scores - mean) <= tol + 5 * sd / np.sqrt(200_000)
    # a draw below the mean is raised to it; one within the tolerance above it counts too
    share = 0.5 + (stats.norm.cdf((tol + 5 * sd / np.sqrt(200_000)) / sd) - 0.5)
    assert np.all(np.abs(at_mean.mean(0) - share) < 5 * np.sqrt(0.25 / R)), (at_mean.mean(0), share)
    expected = mean + sd / np.sqrt(2 * np.pi)
    se = scores.std(0) / np.sqrt(R) + sd / np.sqrt(200_000)
    assert np.all(np.abs(scores.mean(0) - expected) < 5 * se + 0.01 * sd), (scores.mean(0), expected, se)


@pytest.mark.parametrize("policy", ["optimistic_ts", "bayes_ucb_gaussian"])
def test_new_policies_are_jittable_vmappable_and_guarded(key, policy):
    K = 4
    prior = random_mlp_prior(key, 3, 2, hidden=8)
    agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy=policy, num_draws=16)
    state = agent.init()
    x = jnp.array([0.3, -0.8, 0.6])
    action, info = jax.jit(agent.act)(key, state, x)
    assert info.scores.shape == (K,) and 0 <= int(action) < K and bool(info.valid)
    actions, _ = jax.vmap(agent.act, in_axes=(0, None, None))(jax.random.split(key, 5), state, x)
    assert actions.shape == (5,) and bool(jnp.all((actions >= 0) & (actions < K)))
    bad = jnp.array([0.1, jnp.nan, 0.3])
    with pytest.raises(ValueError, match="x: contains NaN"):
        agent.act(key, state, bad)
    action, info = jax.jit(agent.act)(key, state, bad)
    assert int(action) == -1 and not bool(info.valid)
    p = propensities(agent, key, state, x, num_samples=50)
    assert abs(float(p.probs.sum()) - 1) < 1e-12


# hier_ts (dTS on another affine prior) and dts_mlp in the slow run: the default run keeps lin_ts
# and dts_affine here, and test_new_policies_are_jittable_vmappable_and_guarded runs the MLP's
@pytest.mark.parametrize(
    "base",
    [
        "lin_ts",
        "dts_affine",
        pytest.param("hier_ts", marks=pytest.mark.slow),
        pytest.param("dts_mlp", marks=pytest.mark.slow),
    ],
)
def test_optimistic_ts_raises_the_base_agents_own_draw(key, base):
    """The score is max(draw, E[eta_a]) with ``draw`` the base agent's ``score`` (its Thompson draw) bit for bit.

    Per action, over keys: the score is the base's draw wherever it is not raised, and the raised
    scores (affine bases: E[eta_a], the same for every key) lie above the draw.
    """
    K, R = 3, 24
    if base == "dts_mlp":
        prior = random_mlp_prior(key, 3, 2, hidden=8)
        agent = posterior_policy("dts", prior, Gaussian(1.0), K, policy="optimistic_ts", num_draws=8)
        plain = dts(prior, Gaussian(1.0), K)
    else:
        prior = _linear_prior(key)
        name = "dts" if base == "dts_affine" else base
        p = theta_marginal(prior) if base == "lin_ts" else prior
        agent = posterior_policy(name, p, Gaussian(1.0), K, policy="optimistic_ts")
        plain = {"dts": dts, "hier_ts": hier_ts, "lin_ts": lin_ts}[name](p, Gaussian(1.0), K)
    X, A, y = _data(jax.random.PRNGKey(2), 20, prior.dim, K)
    state = _feed(agent, X, A, y)
    x = jnp.array([0.5, -0.4, 0.8])
    keys = jax.random.split(key, R)
    scores = np.stack([np.asarray(agent.act(k, state, x)[1].scores) for k in keys])
    # the nonlinear base's draw takes the first half of the split key (the second: the mean's draws)
    draw_keys = [_prng.split(k)[0] for k in keys] if base == "dts_mlp" else keys
    draws = np.stack([np.asarray(plain.score(k, state, x)) for k in draw_keys])
    kept = scores == draws
    assert np.all(kept | (scores > draws))
    assert np.all((kept.mean(0) > 0.1) & (kept.mean(0) < 0.9)), kept.mean(0)  # about half, either way
    if base != "dts_mlp":  # the floor is the exact posterior mean, one number per action
        floor = np.where(kept, np.inf, scores).min(0)
        np.testing.assert_array_equal(scores, np.maximum(draws, floor))
