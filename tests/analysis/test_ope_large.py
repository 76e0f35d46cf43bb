"""MIPS and the dTS-posterior direct method / doubly robust estimator against exact values, the
joint-Gaussian oracle and Monte-Carlo checks (tolerances from the MC standard error)."""

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.analysis import ope, ope_large
from dts_ppl.core import oracle


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logs(rng, n, K):
    """Contexts-free logs with a skewed logging policy and a random target: actions, logging, target."""
    logging = softmax(rng.normal(size=(n, K)))
    target = softmax(2 * rng.normal(size=(n, K)))
    a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    return a, logging, target


def test_mips_equals_ips_when_every_action_is_its_own_embedding():
    rng = np.random.default_rng(0)
    n, K = 200, 7
    a, logging, target = logs(rng, n, K)
    r = rng.normal(size=n)
    p = logging[np.arange(n), a]
    for interval in ("normal", "el"):
        got = ope_large.mips(a, r, logging, target, np.arange(K), interval=interval)
        want = ope.ips(a, r, p, target, interval=interval)
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12)
    # a relabelling of the categories changes nothing
    perm = rng.permutation(K)
    np.testing.assert_allclose(
        ope_large.marginal_weights(a, logging, target, perm), ope.importance_weights(a, p, target), rtol=1e-12
    )


def test_marginal_weights_on_a_hand_computed_example():
    a = np.array([0, 2])
    logging = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    target = np.array([[0.1, 0.6, 0.3], [0.0, 1.0, 0.0]])
    emb = np.array([0, 0, 1])  # actions 0 and 1 share a category
    # row 0: e = 0, p_t = 0.7, p_log = 0.75; row 1: e = 1, p_t = 0, p_log = 0.6
    np.testing.assert_allclose(ope_large.marginal_weights(a, logging, target, emb), [0.7 / 0.75, 0.0])
    np.testing.assert_allclose(
        np.asarray(ope_large.embedding_marginals(logging, emb, 3)), [[0.75, 0.25, 0.0], [0.4, 0.6, 0.0]]
    )


def test_mips_unbiased_without_direct_effect_monte_carlo():
    """Rewards depend on the action only through its category: over 400 data sets the mean MIPS
    estimate is within Z MC s.e. of the exact value, and its weights are lighter than IPS's."""
    rng = np.random.default_rng(1)
    n, K, C, reps = 300, 12, 3, 400
    emb = np.arange(K) % C
    cat_mean = np.array([0.2, 1.0, -0.5])
    logging = softmax(rng.normal(size=(1, K)))
    target = softmax(2 * rng.normal(size=(1, K)))
    truth = float(target[0] @ cat_mean[emb])
    logging, target = np.repeat(logging, n, 0), np.repeat(target, n, 0)
    values, max_mips, max_ips = [], [], []
    for _ in range(reps):
        a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
        r = cat_mean[emb[a]] + rng.normal(size=n)
        values.append(ope_large.mips(a, r, logging, target, emb, interval="normal").value)
        max_mips.append(ope_large.marginal_weights(a, logging, target, emb).max())
        max_ips.append(ope.importance_weights(a, logging[np.arange(n), a], target).max())
    values = np.array(values)
    mc.assert_mean_within_mc(values, truth, values.var(ddof=1), "MIPS")
    assert np.mean(max_mips) < np.mean(max_ips)


@pytest.fixture(scope="module")
def problem():
    """A linear chain (d = 2, L = 2), theta from it, uniform logs of n rows, a softmax target."""
    d, K, n = 2, 5, 200
    prior = DiffusionPrior.linear([[[1.0, 0.3], [-0.2, 0.8]], [[0.5, 0.0], [0.1, 0.7]]], [0.5, 1.0, 1.0])
    rng = np.random.default_rng(2)
    theta = np.asarray(prior.link1.weight) @ rng.normal(size=d) + rng.normal(0, np.sqrt(0.5), (K, d))
    X = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    r = np.sum(X * theta[a], 1) + rng.normal(size=n)
    target = softmax(X @ theta.T)
    return prior, theta, X, a, r, target


def test_direct_method_against_the_joint_gaussian_oracle(problem):
    """V = sum_a U_a^T m_a with the oracle's posterior mean; the posterior sd of the value from
    the draws within MC error of the oracle's; the interval adds the context sampling variance."""
    prior, _, X, a, r, target = problem
    n, K = target.shape
    lik = Gaussian(1.0)
    est = ope_large.posterior_direct_method(jax.random.PRNGKey(0), prior, X, a, r, target, lik, num_draws=4000)
    joint = oracle.joint_posterior(prior, lik.statistics(jnp.asarray(X), jnp.asarray(a), jnp.asarray(r), K))
    mom = oracle.split(prior, joint, K)
    U = target.T @ X / n
    assert est.value == pytest.approx(float(np.sum(U * np.asarray(mom["theta_mean"]))), abs=1e-8)
    cross = np.asarray(mom["theta_cross"])  # (K, K, d, d)
    post_var = float(np.einsum("ai,abij,bj->", U, cross, U))
    per_context = np.sum(target * (X @ np.asarray(mom["theta_mean"]).T), 1)
    ctx_var = per_context.var(ddof=1) / n
    draws = np.asarray(
        ope_large.value_draws(jax.random.PRNGKey(0), prior, ope_large.posterior_fit(prior, X, a, r, K, lik)[0], U, 4000)
    )
    # the sample variance of S Gaussian draws has s.e. var * sqrt(2 / (S - 1))
    assert abs(draws.var(ddof=1) - post_var) < mc.Z * post_var * np.sqrt(2 / 3999)
    assert est.se**2 == pytest.approx(draws.var(ddof=1) + ctx_var, rel=1e-6)
    assert est.lower == pytest.approx(est.value - ope.Z95 * est.se)


def test_direct_method_with_a_known_reward_model_is_the_exact_value():
    """A prior with (numerically) no uncertainty left fixes theta_a = c for every action: the DM is
    then the exact value mean_i sum_a pi(a | x_i) x_i^T c, and its se is the context term alone."""
    rng = np.random.default_rng(3)
    n, K, d = 50, 4, 2
    c = np.array([0.7, -1.3])
    prior = DiffusionPrior.linear([np.eye(d)], [1e-12, 1e-12], offsets=[c])
    X = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    r = rng.normal(size=n)
    target = softmax(rng.normal(size=(n, K)))
    est = ope_large.posterior_direct_method(jax.random.PRNGKey(1), prior, X, a, r, target, Gaussian(1.0))
    exact = X @ c
    assert est.value == pytest.approx(exact.mean(), abs=1e-8)
    assert est.se == pytest.approx(exact.std(ddof=1) / np.sqrt(n), rel=1e-4)


def test_posterior_reward_model_is_cross_fitted(problem):
    """Each fold's predictions are x^T (the posterior mean given the other fold's rows)."""
    prior, _, X, a, r, target = problem
    n, K = target.shape
    q = ope_large.posterior_reward_model(prior, X, a, r, K, Gaussian(1.0), folds=2, seed=4)
    fold = np.random.default_rng(4).permutation(n) % 2
    for f in range(2):
        keep = fold != f
        _, _, mean = ope_large.posterior_fit(prior, X[keep], a[keep], r[keep], K, Gaussian(1.0))
        np.testing.assert_allclose(q[fold == f], X[fold == f] @ np.asarray(mean).T, atol=1e-10)
    dr = ope_large.posterior_doubly_robust(prior, X, a, r, np.full(n, 1 / K), target, Gaussian(1.0), seed=4)
    assert dr == ope.doubly_robust(a, r, np.full(n, 1 / K), target, q)


@pytest.mark.filterwarnings("ignore::dts_ppl.analysis.ope.LowEffectiveSampleSize")
def test_posterior_doubly_robust_unbiased_monte_carlo():
    """Fixed theta, skewed known logging: over 150 data sets the mean DR estimate (dTS posterior
    mean, cross-fitted) is within Z MC s.e. of the exact value."""
    rng = np.random.default_rng(5)
    d, K, n, reps = 2, 4, 150, 150
    prior = DiffusionPrior.linear([np.eye(d)], [1.0, 1.0])
    theta = rng.normal(size=(K, d))
    Xs = rng.normal(size=(20, d))  # the context population: the truth is exact
    target_s = softmax(1.5 * Xs @ (theta + rng.normal(0, 0.5, theta.shape)).T)
    logging_s = softmax(Xs @ rng.normal(size=(K, d)).T)
    truth = float(np.mean(np.sum(target_s * (Xs @ theta.T), 1)))
    values = []
    for _ in range(reps):
        j = rng.integers(0, 20, n)
        X, logging, target = Xs[j], logging_s[j], target_s[j]
        a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
        r = np.sum(X * theta[a], 1) + rng.normal(size=n)
        p = logging[np.arange(n), a]
        values.append(ope_large.posterior_doubly_robust(prior, X, a, r, p, target, Gaussian(1.0), seed=0).value)
    values = np.array(values)
    mc.assert_mean_within_mc(values, truth, values.var(ddof=1), "DR with the dTS posterior mean")


def test_cluster_actions_recovers_separated_groups():
    rng = np.random.default_rng(6)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    group = np.arange(30) % 3
    features = centres[group] + rng.normal(0, 0.1, (30, 2))
    labels = np.asarray(ope_large.cluster_actions(jax.random.PRNGKey(0), features, 3))
    # the same partition up to relabelling: each true group maps to one label, all labels distinct
    mapping = {g: set(labels[group == g]) for g in range(3)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len(set().union(*mapping.values())) == 3


def test_bad_input_names_the_argument(problem):
    prior, _, X, a, r, target = problem
    n, K = target.shape
    logging = np.full((n, K), 1 / K)
    lik = Gaussian(1.0)
    key = jax.random.PRNGKey(0)
    cases = [
        ("embeddings", lambda: ope_large.mips(a, r, logging, target, np.arange(K - 1))),
        ("embeddings", lambda: ope_large.mips(a, r, logging, target, np.full(K, 0.5))),
        ("num_embeddings", lambda: ope_large.mips(a, r, logging, target, np.arange(K), num_embeddings=2)),
        ("logging", lambda: ope_large.mips(a, r, logging * 2, target, np.arange(K))),
        ("logging", lambda: ope_large.mips(a, r, logging[:, :-1], target, np.arange(K))),
        ("actions", lambda: ope_large.mips(a + K, r, logging, target, np.arange(K))),
        ("rewards", lambda: ope_large.mips(a, r[:-1], logging, target, np.arange(K))),
        ("interval", lambda: ope_large.mips(a, r, logging, target, np.arange(K), interval="wald")),
        ("num_clusters", lambda: ope_large.cluster_actions(key, np.ones((K, 2)), K + 1)),
        ("features", lambda: ope_large.cluster_actions(key, np.ones(K), 2)),
        ("likelihood", lambda: ope_large.posterior_fit(prior, X, a, r, K, "gaussian")),
        ("prior", lambda: ope_large.posterior_fit(None, X, a, r, K, lik)),
        ("X", lambda: ope_large.posterior_fit(prior, X[:, :1], a, r, K, lik)),
        ("folds", lambda: ope_large.posterior_reward_model(prior, X, a, r, K, lik, folds=1)),
        ("num_draws", lambda: ope_large.posterior_direct_method(key, prior, X, a, r, target, lik, num_draws=1)),
        ("target", lambda: ope_large.posterior_direct_method(key, prior, X, a, r, target[0], lik)),
        ("key", lambda: ope_large.posterior_direct_method(0, prior, X, a, r, target, lik)),
        ("propensities", lambda: ope_large.posterior_doubly_robust(prior, X, a, r, np.zeros(n), target, lik)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"^{name}"):
            call()
