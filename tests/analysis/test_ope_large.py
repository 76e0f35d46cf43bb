"""MIPS and the dTS-posterior direct method / doubly robust estimator against exact values, the
joint-Gaussian oracle and Monte-Carlo checks (tolerances from the MC standard error)."""

import warnings

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
    # a prior with no variance left has nothing for the logs to resolve: outside the claimed domain
    with pytest.warns(ope_large.PriorDominated):
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


# ------------------------------------------------------------------ domains of validity and the EL intervals


def test_policy_weight_range_on_a_hand_computed_example():
    logging = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    target = np.array([[0.1, 0.6, 0.3], [0.0, 1.0, 0.0]])
    # action ratios 0.2, 2.4, 1.2 / 0, 5, 0; category ratios (e = [0, 0, 1]) 0.7/0.75, 0.3/0.25 / 1/0.4, 0
    assert ope_large.policy_weight_range(logging, target) == pytest.approx((0.0, 5.0))
    assert ope_large.policy_weight_range(logging, target, np.array([0, 0, 1])) == pytest.approx((0.0, 2.5))
    # a range that excludes 1 is widened to hold it, as the EL interval requires
    lo, hi = ope_large.policy_weight_range(np.full((1, 2), 0.5), np.full((1, 2), 0.5))
    assert lo < 1 < hi and hi - lo < 1e-8


def test_policy_ess_is_the_expected_weight_second_moment_monte_carlo():
    """1 / policy_ess = E[w^2] over logged actions: the mean of w^2 over 20,000 logged rows is within
    Z MC s.e. of it; with categories the same for the marginal weights; uniform target = 1."""
    rng = np.random.default_rng(10)
    n, K = 20000, 8
    logging = np.repeat(softmax(rng.normal(size=(4, K))), n // 4, 0)
    target = np.repeat(softmax(2 * rng.normal(size=(4, K))), n // 4, 0)
    a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    w = ope.importance_weights(a, logging[np.arange(n), a], target)
    mc.assert_mean_within_mc(w**2, 1 / ope_large.policy_ess(logging, target), (w**2).var(), "E[w^2]")
    emb = np.arange(K) % 3
    wm = ope_large.marginal_weights(a, logging, target, emb)
    mc.assert_mean_within_mc(wm**2, 1 / ope_large.policy_ess(logging, target, emb), (wm**2).var(), "E[w_e^2]")
    assert ope_large.policy_ess(logging, logging) == pytest.approx(1.0)
    # a target action the logging policy never takes: no weight reaches it
    assert ope_large.policy_ess(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])) == 0.0


def test_mips_normal_warns_when_the_policies_ess_is_low():
    """The logged weights can look light while the policies' ESS is low: mips(interval="normal") warns on the latter."""
    n, K = 400, 200
    logging = np.full((n, K), 1 / K)
    target = np.zeros((n, K))
    target[:, 0] = 0.9
    target[:, 1:] = 0.1 / (K - 1)
    a = np.arange(1, n + 1) % (K - 1) + 1  # a sample that never drew the target's action 0
    r = np.random.default_rng(11).normal(size=n)
    assert ope.effective_sample_size(ope_large.marginal_weights(a, logging, target, np.arange(K))) > 0.9 * n
    with pytest.warns(ope.LowEffectiveSampleSize, match="mips: the policies' effective sample size"):
        ope_large.mips(a, r, logging, target, np.arange(K), interval="normal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ope_large.mips(a, r, logging, target, np.arange(K) % 1, interval="normal")  # one category: w = 1
    assert _outside(caught) == []


def test_posterior_doubly_robust_checks_the_policies_ess(problem):
    """Given the logging policy, the normal interval warns on the policies' ESS even when the logged
    weights look light, and the EL interval takes the policies' weight range."""
    prior, _, X, a, r, _ = problem
    n, K = X.shape[0], 50  # uniform logging over 50 actions (the logs drew only actions 1..4)
    logging = np.full((n, K), 1 / K)
    target = np.full((n, K), 0.04 / (K - 1))
    target[:, 0] = 0.96  # policy ESS 1 / (K sum pi^2), about 2%
    keep = a != 0  # logs that never drew the target's action
    X, a, r, logging, target = X[keep], a[keep], r[keep], logging[keep], target[keep]
    p, lik = logging[:, 0], Gaussian(1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ope_large.posterior_doubly_robust(prior, X, a, r, p, target, lik)
    assert _outside(caught) == []  # the logged weights (all equal) look light
    with pytest.warns(ope.LowEffectiveSampleSize, match="posterior_doubly_robust: the policies' effective"):
        ope_large.posterior_doubly_robust(prior, X, a, r, p, target, lik, logging=logging)
    el = ope_large.posterior_doubly_robust(prior, X, a, r, p, target, lik, interval="el", logging=logging)
    want = ope_large.posterior_doubly_robust(
        prior, X, a, r, p, target, lik, interval="el", weight_range=ope_large.policy_weight_range(logging, target)
    )
    assert el == want
    with pytest.raises(ValueError, match="^logging"):
        ope_large.posterior_doubly_robust(prior, X, a, r, p / 2, target, lik, logging=logging)


def test_prior_share_against_the_oracle(problem):
    """rho = sum_i sum_a pi(a|x_i) x_i^T Cov(theta_a | logs) x_i / sum_i x_i^T S_1 x_i with the oracle's covariances."""
    prior, _, X, a, r, target = problem
    n, K = target.shape
    lik = Gaussian(1.0)
    post, lin, _ = ope_large.posterior_fit(prior, X, a, r, K, lik)
    joint = oracle.joint_posterior(prior, lik.statistics(jnp.asarray(X), jnp.asarray(a), jnp.asarray(r), K))
    cov = np.asarray(oracle.split(prior, joint, K)["theta_cov"])
    num = np.einsum("ia,id,ade,ie->", target, X, cov, X)
    den = np.einsum("id,de,ie->", X, np.asarray(prior.cov1), X)
    rho = ope_large.prior_share(prior, post, lin, X, target)
    assert rho == pytest.approx(num / den, rel=1e-8)
    # 40 rows per action leave a small share; an action never logged leaves at least its whole S_1
    assert rho < ope_large.PRIOR_SHARE_WARN
    never = np.zeros_like(target)
    never[:, 0] = 1.0
    keep = a != 0
    post0, lin0, _ = ope_large.posterior_fit(prior, X[keep], a[keep], r[keep], K, lik)
    assert ope_large.prior_share(prior, post0, lin0, X, never) >= 1.0


def _outside(caught):
    return [c for c in caught if issubclass(c.category, ope.OutsideDomain)]


def test_direct_method_warns_outside_its_domain(problem):
    """40 rows per action: no warning; 200 actions and 200 rows: PriorDominated."""
    prior, _, X, a, r, target = problem
    key = jax.random.PRNGKey(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ope_large.posterior_direct_method(key, prior, X, a, r, target, Gaussian(1.0), num_draws=10)
    assert _outside(caught) == []
    rng = np.random.default_rng(7)
    K = 200
    wide = softmax(rng.normal(size=(X.shape[0], K)))
    with pytest.warns(ope_large.PriorDominated, match="posterior_direct_method: the prior holds"):
        ope_large.posterior_direct_method(key, prior, X, rng.integers(0, K, X.shape[0]), r, wide, Gaussian(1.0), 10)
    assert issubclass(ope_large.PriorDominated, ope.OutsideDomain)
    assert issubclass(ope.LowEffectiveSampleSize, ope.OutsideDomain)


def test_direct_effect_bias_is_the_mips_bias_monte_carlo():
    """With the true mean reward as q_hat, direct_effect_bias is MIPS's bias: over 400 data sets the
    mean MIPS error is within Z MC s.e. of it; it is 0 when the reward is constant within categories,
    and mips(q_hat=...) warns (DirectEffect) exactly in the first case."""
    rng = np.random.default_rng(8)
    n, K, C, reps = 300, 12, 3, 400
    emb = np.arange(K) % C
    f = rng.normal(size=K)  # the reward varies within categories
    logging = np.repeat(softmax(rng.normal(size=(1, K))), n, 0)
    target = np.repeat(softmax(3 * f[None]), n, 0)  # prefers the best actions of each category
    truth = float(target[0] @ f)
    q = np.repeat(f[None], n, 0)
    bias = ope_large.direct_effect_bias(logging, target, emb, q)
    values = []
    for _ in range(reps):
        a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
        r = f[a] + rng.normal(size=n)
        values.append(ope_large.mips(a, r, logging, target, emb, interval="normal").value)
    values = np.array(values)
    assert abs(bias) > 0.1
    mc.assert_mean_within_mc(values - truth, bias, values.var(ddof=1), "MIPS bias")
    homogeneous = np.repeat(np.array([0.2, 1.0, -0.5])[emb][None], n, 0)
    assert ope_large.direct_effect_bias(logging, target, emb, homogeneous) == pytest.approx(0.0, abs=1e-12)
    a = (logging.cumsum(1) > rng.uniform(size=(n, 1))).argmax(1)
    r = f[a] + rng.normal(size=n)
    with pytest.warns(ope_large.DirectEffect, match="mips: the categories are not reward-homogeneous"):
        ope_large.mips(a, r, logging, target, emb, interval="normal", q_hat=q)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ope_large.mips(a, r, logging, target, emb, interval="normal", q_hat=homogeneous)
    assert [c for c in caught if issubclass(c.category, ope_large.DirectEffect)] == []


def test_doubly_robust_el_covers_with_heavy_tailed_weights():
    """K = 100 uniform logging, a peaked target (relative ESS ~ 0.06), n = 200: over 120 data sets
    the DR interval with the EL residual term covers at least 95% less Z MC s.e. (it is valid;
    conservative, so no upper bound is asserted: docs/ope.md measures how much)."""
    rng = np.random.default_rng(9)
    n, K, reps = 200, 100, 120
    f = rng.normal(size=K)
    pi = softmax(4.5 * rng.normal(size=(1, K)))[0]
    assert 1 / (K * np.sum(pi**2)) < ope.ESS_WARN_FRACTION  # the expected relative ESS
    q_model = f + rng.normal(0, 0.5, K)  # a reward model with errors (fixed, as if fitted elsewhere)
    truth = float(pi @ f)
    cover = []
    for _ in range(reps):
        a = rng.integers(0, K, n)
        r = f[a] + rng.normal(size=n)
        w = K * pi[a]
        direct = np.full(n, pi @ q_model)
        lo, hi = ope_large.doubly_robust_el(direct, w, r - q_model[a], (0.0, K * pi.max()))
        cover.append(lo <= truth <= hi)
    coverage = float(np.mean(cover))
    assert coverage >= 0.95 - mc.Z * np.sqrt(0.95 * 0.05 / reps), coverage


def test_posterior_doubly_robust_el_is_its_parts(problem):
    prior, _, X, a, r, target = problem
    n, K = target.shape
    p = np.full(n, 1 / K)
    lik = Gaussian(1.0)
    normal = ope_large.posterior_doubly_robust(prior, X, a, r, p, target, lik, seed=3)
    el = ope_large.posterior_doubly_robust(prior, X, a, r, p, target, lik, seed=3, interval="el")
    assert el.value == pytest.approx(normal.value) and el.se == pytest.approx(normal.se)
    q = ope_large.posterior_reward_model(prior, X, a, r, K, lik, seed=3)
    w = target[np.arange(n), a] / p
    want = ope_large.doubly_robust_el(np.sum(target * q, 1), w, r - q[np.arange(n), a], (0.0, float(K)))
    assert (el.lower, el.upper) == pytest.approx(want)
    assert el.lower < el.value < el.upper


def test_posterior_mips_is_cross_fitted(problem):
    """Each fold's weights use the categories of k-means of the posterior means fitted on the other fold."""
    prior, _, X, a, r, target = problem
    n, K = target.shape
    logging = np.full((n, K), 1 / K)
    lik, key = Gaussian(1.0), jax.random.PRNGKey(5)
    args = (key, prior, X, a, r, logging, target, lik)
    with pytest.warns(ope_large.DirectEffect):  # 2 categories for 5 actions: not reward-homogeneous
        est = ope_large.posterior_mips(*args, num_embeddings=2, seed=1, interval="normal")
    fold = np.random.default_rng(1).permutation(n) % 2
    keys = jax.random.split(key, 2)
    w = np.zeros(n)
    for f in range(2):
        test = fold == f
        _, _, mean = ope_large.posterior_fit(prior, X[~test], a[~test], r[~test], K, lik)
        emb = np.asarray(ope_large.cluster_actions(keys[f], mean, 2))
        w[test] = ope_large.marginal_weights(a[test], logging[test], target[test], emb, 2)
    assert est.value == pytest.approx(np.mean(w * r), rel=1e-10)
    assert est.ess == pytest.approx(ope.effective_sample_size(w))
    with pytest.warns(ope_large.DirectEffect):
        el = ope_large.posterior_mips(*args, num_embeddings=2, seed=1)
    assert el.value == est.value and el.lower < el.upper


def test_domain_functions_name_bad_input(problem):
    prior, _, X, a, r, target = problem
    n, K = target.shape
    logging = np.full((n, K), 1 / K)
    lik, key = Gaussian(1.0), jax.random.PRNGKey(0)
    cases = [
        ("q_hat", lambda: ope_large.direct_effect_bias(logging, target, np.arange(K), np.zeros((n, K - 1)))),
        ("q_hat", lambda: ope_large.mips(a, r, logging, target, np.arange(K), q_hat=np.zeros(n))),
        ("direct", lambda: ope_large.doubly_robust_el(np.zeros(n - 1), np.ones(n), r)),
        ("logging", lambda: ope_large.policy_weight_range(logging, target[:, :-1])),
        (
            "weight_range",
            lambda: ope_large.posterior_doubly_robust(prior, X, a, r, logging[:, 0], target, lik, weight_range=(0, 9)),
        ),
        (
            "interval",
            lambda: ope_large.posterior_doubly_robust(prior, X, a, r, logging[:, 0], target, lik, interval="t"),
        ),
        ("num_embeddings", lambda: ope_large.posterior_mips(key, prior, X, a, r, logging, target, lik, K + 1)),
        ("logging", lambda: ope_large.posterior_mips(key, prior, X, a, r, logging[:, 1:], target, lik)),
        ("folds", lambda: ope_large.posterior_mips(key, prior, X, a, r, logging, target, lik, folds=1)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"^{name}"):
            call()


def el_primal_general(w, r, weight_range, atom_range, atoms=True, sd=None):
    """The EL programs with the atoms' reward in atom_range (or, with ``sd``, tied to V by the spread
    bound; atoms at 0 and w_max), or without atoms, solved in the primal by SLSQP (independent reference)."""
    from scipy import optimize

    n = w.shape[0]
    w_min, w_max = (0.0, weight_range[1]) if sd is not None else weight_range
    u = (w - w_min) / (1 - w_min)
    v = (w_max - w) / (w_max - 1)
    box, opts = [(1e-10, 1.0)] * n, dict(ftol=1e-14, maxiter=3000)
    if atoms:
        lin = {"type": "ineq", "fun": lambda q: np.array([1 - u @ q, 1 - v @ q])}
    else:
        lin = {"type": "eq", "fun": lambda q: np.array([1 - q.sum(), 1 - w @ q])}
    best = optimize.minimize(
        lambda q: -np.log(q).sum(), np.full(n, 1 / n), bounds=box, constraints=[lin], method="SLSQP", options=opts
    )
    ball = {"type": "ineq", "fun": lambda q: np.log(q).sum() + best.fun + ope.CHI2_95 / 2}
    lo, hi = atom_range

    def objective(q, sign):
        W, A = w @ q, (w * r) @ q
        if sd is None:
            return sign * (A + (1 - W) * (lo if sign > 0 else hi))
        spread = sd * np.sqrt(max(W * (1 - W), 0.0))
        if sign > 0:
            return max(A + (1 - W) * lo, (A - spread) / W)
        return -min(A + (1 - W) * hi, (A + spread) / W)

    ends = [
        optimize.minimize(
            objective, best.x, args=(s,), bounds=box, constraints=[lin, ball], method="SLSQP", options=opts
        )
        for s in (1.0, -1.0)
    ]
    return ends[0].fun, -ends[1].fun


def test_el_dual_interval_matches_a_primal_solver():
    """Newton on the two-variable duals equals the n-variable primal programs: the atoms' reward in a
    range narrower than the rewards' (some a_i < 0), wider, and the profile EL without atoms."""
    rng = np.random.default_rng(11)
    for t in range(6):
        n = 12
        weight_range = (0.0, 8.0) if t % 2 else (0.1, 8.0)
        w = np.clip(rng.exponential(0.7 + 0.1 * t, n), weight_range[0], 7.9)
        r = rng.uniform(0, 1, n)
        for atom_range in ((0.3, 0.7), (-0.5, 1.5)):
            got = ope_large.el_dual_interval(w, r, *weight_range, atom_range)
            np.testing.assert_allclose(got, el_primal_general(w, r, weight_range, atom_range), atol=1e-6)
        if w.min() < 1 < w.max():
            got = ope_large.el_dual_interval(w, r, *weight_range, (0.0, 1.0), atoms=False)
            np.testing.assert_allclose(got, el_primal_general(w, r, weight_range, (0.0, 1.0), False), atol=1e-6)


def test_el_interval_with_a_mean_reward_range():
    """mean_reward_range equal to the reward range is the plain EL program (the old dual's values);
    a narrower one gives the general dual's interval clipped to it, inside the plain one."""
    rng = np.random.default_rng(12)
    w = rng.pareto(1.5, 300) + 0.05
    w /= 1.2 * w.mean()
    r = rng.normal(size=300)
    weight_range = (0.0, 80.0)
    plain = ope.el_interval(w, r, weight_range)
    same = ope.el_interval(w, r, weight_range, mean_reward_range=(r.min(), r.max()))
    np.testing.assert_allclose(same, plain, atol=1e-7)
    narrow = ope.el_interval(w, r, weight_range, mean_reward_range=(-0.5, 0.5))
    raw = ope_large.el_dual_interval(w, r, *weight_range, (-0.5, 0.5))
    assert narrow == pytest.approx((max(raw[0], -0.5), min(raw[1], 0.5)))
    assert plain[0] <= narrow[0] <= narrow[1] <= plain[1] and narrow[1] - narrow[0] < 0.8 * (plain[1] - plain[0])
    lo, hi = ope_large.doubly_robust_el(np.ones(300), w, r, weight_range, mean_residual_range=(-0.5, 0.5))
    half = ope.Z95 * 0.0
    assert (lo, hi) == pytest.approx((1 + narrow[0] - half, 1 + narrow[1] + half))


def test_el_sd_interval_matches_a_primal_solver():
    """The spread-bound EL (the atoms' reward within sd sqrt((1 - delta) / delta) of V) equals its
    primal program; a huge sd gives the plain EL with atoms at 0 and w_max."""
    rng = np.random.default_rng(13)
    for t in range(5):
        n = 10
        w = np.clip(rng.exponential(0.7 + 0.1 * t, n), 0, 7.9)
        r = rng.normal(0.5, 1, n)
        for sd in (0.3, 0.5):
            got = ope_large.el_sd_interval(w, r, 8.0, sd)
            want = el_primal_general(w, r, (0.0, 8.0), (r.min(), r.max()), sd=sd)
            np.testing.assert_allclose(got, want, atol=2e-5)
        wide = ope_large.el_sd_interval(w, r, 8.0, 1e6)
        np.testing.assert_allclose(wide, ope.el_interval(w, r, (0.0, 8.0)), atol=1e-6)


@pytest.mark.slow
def test_el_bounds_on_mean_rewards_cover_monte_carlo():
    """K = 100 uniform logging, a target with relative ESS 0.06 (18 rows of n = 300), mean rewards
    in [-1, 1] with N(0, 1) noise: over 60 data sets the EL intervals given the mean-reward range or
    the mean reward's sd under the target cover at least 95% less Z MC s.e., and are narrower than
    the plain EL's, whose atoms may take any observed (noisy) reward."""
    rng = np.random.default_rng(14)
    n, K, reps = 300, 100, 60
    f = np.clip(rng.normal(0, 0.5, K), -1, 1)
    pi = softmax(2.5 * rng.normal(size=(1, K)))[0]
    assert 0.05 < 1 / (K * np.sum(pi**2)) < ope.ESS_WARN_FRACTION
    truth = float(pi @ f)
    sd = float(np.sqrt(pi @ (f - truth) ** 2))
    weight_range = (0.0, K * pi.max())
    cover, widths = {"range": [], "sd": []}, {"plain": [], "range": [], "sd": []}
    for _ in range(reps):
        a = rng.integers(0, K, n)
        r, w = f[a] + rng.normal(size=n), K * pi[a]
        got = {
            "plain": ope.el_interval(w, r, weight_range),
            "range": ope.el_interval(w, r, weight_range, mean_reward_range=(-1.0, 1.0)),
            "sd": ope.el_interval(w, r, weight_range, mean_reward_sd=sd),
        }
        for name, (lo, hi) in got.items():
            widths[name].append(hi - lo)
            if name in cover:
                cover[name].append(lo <= truth <= hi)
    for name, c in cover.items():
        assert np.mean(c) >= 0.95 - mc.Z * np.sqrt(0.95 * 0.05 / reps), (name, np.mean(c))
        assert np.mean(widths[name]) < 0.8 * np.mean(widths["plain"]), name


def el_moment_primal_lower(w, r, weight_range, m2, grid=41):
    """The lower end of the EL program with E_Q[w^2] = m2 and the atoms on a grid of weights (masses
    z_j >= 0, reward min r: linear moment constraints), solved in the primal by SLSQP: a restriction
    of the program with atoms anywhere in the weight range, so its end lies inside that one's
    (independent reference; the upper end is minus the lower end with -r)."""
    from scipy import optimize

    n = w.shape[0]
    g = np.linspace(*weight_range, grid)
    box, opts = [(1e-10, 1.0)] * n + [(0.0, 1.0)] * grid, dict(ftol=1e-10, maxiter=1000)
    A = np.stack([np.ones(n + grid), np.concatenate([w, g]), np.concatenate([w * w, g * g])])
    moments = {"type": "eq", "fun": lambda z: A @ z - np.array([1.0, 1.0, m2]), "jac": lambda z: A}
    z0 = np.concatenate([np.full(n, 0.5 / n), np.full(grid, 0.5 / grid)])

    def neg_loglik(z):
        return -np.log(z[:n]).sum()

    def neg_loglik_grad(z):
        return np.concatenate([-1 / z[:n], np.zeros(grid)])

    best = optimize.minimize(
        neg_loglik, z0, jac=neg_loglik_grad, bounds=box, constraints=[moments], method="SLSQP", options=opts
    )
    ball = {
        "type": "ineq",
        "fun": lambda z: best.fun - neg_loglik(z) + ope.CHI2_95 / 2,
        "jac": lambda z: -neg_loglik_grad(z),
    }
    c = np.concatenate([w * (r - r.min()), np.zeros(grid)])  # V - min r: E_Q[w] = 1, the atoms' reward min r
    res = optimize.minimize(
        lambda z: c @ z, best.x, jac=lambda z: c, bounds=box, constraints=[moments, ball], method="SLSQP", options=opts
    )
    # a feasible point (SLSQP may stop at its precision limit, "positive directional derivative")
    assert np.abs(A @ res.x - np.array([1.0, 1.0, m2])).max() < 1e-8 and ball["fun"](res.x) > -1e-8, res.message
    return r.min() + res.fun


def test_el_moment_interval_matches_a_primal_solver():
    """The three-variable dual (a quadratic non-negative on the weight range) contains the primal
    program with the atoms on a fine grid of weights and is within the grid's error of it."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    for t in range(6):
        n = 12
        weight_range = (0.0, 8.0) if t % 2 else (0.1, 8.0)
        w = np.clip(rng.exponential(0.7 + 0.3 * t, n), weight_range[0], 7.9)
        r = rng.uniform(0, 1, n)
        m2 = (1.5, 2.5, 4.0)[t % 3]
        lo, hi = ope_large.el_moment_interval(w, r, *weight_range, m2)
        with threadpool_limits(1):  # SLSQP's small dense solves slow down with BLAS threads competing
            want_lo = el_moment_primal_lower(w, r, weight_range, m2)
            want_hi = -el_moment_primal_lower(w, -r, weight_range, m2)
        assert lo <= want_lo + 1e-7 and hi >= want_hi - 1e-7, (t, lo, hi, want_lo, want_hi)
        np.testing.assert_allclose((lo, hi), (want_lo, want_hi), atol=5e-3)


def test_el_moment_interval_covers_monte_carlo():
    """K = 100 uniform logging, a target with relative ESS 0.06 (18 rows of n = 300): over 60 data
    sets the EL interval with the weights' known second moment K sum_a pi(a)^2 covers at least 95%
    less Z MC s.e."""
    rng = np.random.default_rng(17)
    n, K, reps = 300, 100, 60
    f = np.clip(rng.normal(0, 0.5, K), -1, 1)
    pi = softmax(2.5 * rng.normal(size=(1, K)))[0]
    m2 = K * float(np.sum(pi**2))
    assert 0.05 < 1 / m2 < ope.ESS_WARN_FRACTION
    truth = float(pi @ f)
    cover = []
    for _ in range(reps):
        a = rng.integers(0, K, n)
        lo, hi = ope_large.el_moment_interval(K * pi[a], f[a] + rng.normal(size=n), 0.0, K * pi.max(), m2)
        cover.append(lo <= truth <= hi)
    assert np.mean(cover) >= 0.95 - mc.Z * np.sqrt(0.95 * 0.05 / reps), np.mean(cover)


def test_posterior_error_sd_against_the_oracle(problem):
    """sqrt(sum_i sum_a pi(a|x_i) x_i^T Cov(theta_a | logs) x_i / n) with the oracle's covariances."""
    prior, _, X, a, r, target = problem
    n, K = target.shape
    lik = Gaussian(1.0)
    post, lin, _ = ope_large.posterior_fit(prior, X, a, r, K, lik)
    joint = oracle.joint_posterior(prior, lik.statistics(jnp.asarray(X), jnp.asarray(a), jnp.asarray(r), K))
    cov = np.asarray(oracle.split(prior, joint, K)["theta_cov"])
    want = np.sqrt(np.einsum("ia,id,ade,ie->", target, X, cov, X) / n)
    assert ope_large.posterior_error_sd(prior, post, lin, X, target) == pytest.approx(want, rel=1e-8)


def test_el_bounds_name_bad_input():
    rng = np.random.default_rng(15)
    w, r = rng.exponential(1.0, 50), rng.normal(size=50)
    cases = [
        ("mean_reward_range", lambda: ope.el_interval(w, r, mean_reward_range=(1.0, -1.0))),
        ("mean_reward_range", lambda: ope.el_interval(w, r, mean_reward_range=(0.0, np.inf))),
        ("mean_reward_range", lambda: ope.el_interval(w, r, mean_reward_range=3.0)),
        ("mean_reward_range", lambda: ope.el_interval(w, r, None, (-9, 9), mean_reward_range=(10.0, 11.0))),
        ("mean_reward_sd", lambda: ope.el_interval(w, r, mean_reward_sd=-1.0)),
        ("mean_reward_sd", lambda: ope.el_interval(w, r, mean_reward_sd=1.0, mean_reward_range=(-1, 1))),
        ("w", lambda: ope_large.el_dual_interval(np.full(5, 2.0), np.zeros(5), 0.0, 9.0, (0, 1), atoms=False)),
        ("second_moment", lambda: ope_large.el_moment_interval(w, r, 0.0, 20.0, 0.5)),
        ("second_moment", lambda: ope_large.el_moment_interval(w, r, 0.0, 20.0, 25.0)),
        ("second_moment", lambda: ope_large.el_moment_interval(w, r, 0.0, 20.0, np.nan)),
        ("w_max", lambda: ope_large.el_moment_interval(w, r, 0.0, np.inf, 2.0)),
        ("weight_range", lambda: ope_large.el_moment_interval(w, r, 0.0, 0.5, 2.0)),
        (
            "second_moment",
            lambda: ope_large.doubly_robust_el(np.ones(50), w, r, (0.0, 20.0), residual_sd=1.0, second_moment=2.0),
        ),
        ("second_moment", lambda: ope_large.doubly_robust_el(np.ones(50), w, r, None, second_moment=2.0)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"^{name}"):
            call()
