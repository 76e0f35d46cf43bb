"""Forgetting (``discount=``, docs/math.md section 11): exact against weighted references, float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bernoulli, DiffusionPrior, Gaussian
from dts_ppl.agents import dts, dts_posterior, glm_ts, hier_ts, lin_ts, lin_ucb, ucb_glm
from dts_ppl.agents.linear import GaussianPrior
from dts_ppl.core import forgetting, oracle
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, Evidence
from dts_ppl.core.rows import write

K, D, N, GAMMA, SIGMA = 4, 3, 30, 0.9, 0.7


def _prior(key):
    k1, k2, k3 = jax.random.split(key, 3)
    a = jax.random.normal(k3, (D, D))
    return DiffusionPrior.linear(
        [jax.random.normal(k1, (D, 2)), jax.random.normal(k2, (2, 2))],
        [a @ a.T / D + 0.5 * jnp.eye(D), 0.7, 2.0],
        offsets=[jnp.arange(D) / D, -jnp.ones(2) / 2],
    )


def _data(key, n=N, likelihood=None):
    kx, ka, ky = jax.random.split(key, 3)
    X = jax.random.uniform(kx, (n, D), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K).at[-5:].set(0)  # the last rounds all play action 0
    if isinstance(likelihood, Bernoulli):
        y = jax.random.bernoulli(ky, jax.nn.sigmoid(2 * X[:, 0])).astype(X.dtype)
    else:
        y = jax.random.normal(ky, (n,)) + X[:, 0]
    return X, A, y


def _feed(agent, X, A, y, state=None):
    def step(s, row):
        return agent.update(s, *row), None

    return jax.jit(lambda s, data: jax.lax.scan(step, s, data)[0])(agent.init() if state is None else state, (X, A, y))


def _weighted_stats(X, A, y, gamma, sigma):
    """Independent numpy: G_a = sum_s w_s x x^T / sigma^2, b_a = sum_s w_s y x / sigma^2, w_s = gamma^(n-1-s)."""
    X, A, y = np.asarray(X), np.asarray(A), np.asarray(y)
    w = gamma ** np.arange(len(y) - 1, -1, -1.0) / sigma**2
    G = np.zeros((K, D, D))
    b = np.zeros((K, D))
    for x, a, r, ws in zip(X, A, y, w, strict=True):
        G[a] += ws * np.outer(x, x)
        b[a] += ws * r * x
    return G, b


def _assert_tree_equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("factory", [dts, pytest.param(hier_ts, marks=pytest.mark.slow)])
def test_discount_one_is_the_plain_agent_bit_for_bit(key, factory):
    prior = _prior(key)
    X, A, y = _data(jax.random.PRNGKey(1))
    plain, one = factory(prior, Gaussian(SIGMA), K), factory(prior, Gaussian(SIGMA), K, discount=1.0)
    _assert_tree_equal(_feed(plain, X, A, y), _feed(one, X, A, y))
    _assert_tree_equal(plain.update_batch(plain.init(), X, A, y), one.update_batch(one.init(), X, A, y))
    assert plain.spec.fingerprint == one.spec.fingerprint  # saved states stay loadable
    assert "discount" in dts(prior, Gaussian(SIGMA), K, discount=0.9).spec.fingerprint["options"]


@pytest.mark.parametrize("factory", [lin_ts, lin_ucb])
def test_linear_discount_one_is_the_plain_agent_bit_for_bit(key, factory):
    prior = GaussianPrior(jnp.arange(D) / D, jnp.eye(D) * 2.0)
    X, A, y = _data(key)
    plain, one = factory(prior, Gaussian(SIGMA), K), factory(prior, Gaussian(SIGMA), K, discount=1.0)
    _assert_tree_equal(_feed(plain, X, A, y), _feed(one, X, A, y))
    assert plain.spec.fingerprint == one.spec.fingerprint


def test_dts_discounted_equals_the_weighted_joint_gaussian_oracle(key):
    """Noise variance sigma^2 / gamma^(t-s): the oracle on independently weighted statistics."""
    prior = _prior(key)
    X, A, y = _data(jax.random.PRNGKey(2))
    agent = dts(prior, Gaussian(SIGMA), K, discount=GAMMA)
    state = _feed(agent, X, A, y)
    G, b = _weighted_stats(X, A, y, GAMMA, SIGMA)
    np.testing.assert_allclose(state.evidence.stats.G, G, rtol=1e-12, atol=1e-12)
    ref = oracle.split(prior, oracle.joint_posterior(prior, ActionStats(jnp.asarray(G), jnp.asarray(b))), K)
    mo = core.moments(prior, dts_posterior(prior, state))
    for name in ("theta_mean", "theta_cov", "psi_mean", "psi_cov"):
        np.testing.assert_allclose(getattr(mo, name), ref[name], atol=1e-10, err_msg=name)
    # the batch update reads its rows as rounds in order: the same posterior
    batch = agent.update_batch(agent.init(), X, A, y)
    mo_b = core.moments(prior, dts_posterior(prior, batch))
    np.testing.assert_allclose(mo_b.theta_mean, ref["theta_mean"], atol=1e-10)
    np.testing.assert_allclose(mo_b.psi_cov, ref["psi_cov"], atol=1e-10)


def test_a_forgotten_action_relaxes_to_its_conditional_prior(key):
    """An action unplayed for many rounds: theta_a | psi_1 -> N(f_1(psi_1), S_1), psi_1 still learnt."""
    prior = _prior(key)
    X, A, y = _data(jax.random.PRNGKey(3), n=400)
    A = A.at[200:].set(jnp.where(A[200:] == 3, 0, A[200:]))  # action 3 not played after round 200
    state = _feed(dts(prior, Gaussian(SIGMA), K, discount=0.9), X, A, y)
    # its evidence is 0.9^200 ~ 7e-10 of what it was
    np.testing.assert_allclose(state.theta_cov[3], prior.cov1, atol=1e-7)
    np.testing.assert_allclose(state.theta_shift[3], 0.0, atol=1e-7)
    assert np.max(np.abs(state.evidence_sum.G)) > 1e-2  # the latents still see the others' recent data


@pytest.mark.parametrize("shared", [False, True])
def test_lin_ts_discounted_equals_weighted_least_squares(key, shared):
    m, S = jnp.arange(D) / D, jnp.eye(D) * 2.0 + 0.3
    X, A, y = _data(key)
    if shared:  # one parameter: action features (n, K, D), the played row is X[i, A_i]
        feats = jax.random.normal(jax.random.PRNGKey(5), (N, K, D))
        state = _feed(lin_ts(GaussianPrior(m, S), Gaussian(SIGMA), K, shared=True, discount=GAMMA), feats, A, y)
        rows, groups = np.asarray(feats)[np.arange(N), np.asarray(A)], np.zeros(N, int)
    else:
        state = _feed(lin_ts(GaussianPrior(m, S), Gaussian(SIGMA), K, discount=GAMMA), X, A, y)
        rows, groups = np.asarray(X), np.asarray(A)
    w = GAMMA ** np.arange(N - 1, -1, -1.0) / SIGMA**2
    for g in range(1 if shared else K):
        sel = groups == g
        prec = np.linalg.inv(np.asarray(S)) + (rows[sel] * w[sel, None]).T @ rows[sel]
        cov = np.linalg.inv(prec)
        mean = cov @ (np.linalg.solve(np.asarray(S), np.asarray(m)) + (rows[sel] * w[sel, None]).T @ np.asarray(y)[sel])
        np.testing.assert_allclose(state.cov[g], cov, atol=1e-10)
        np.testing.assert_allclose(state.mean[g], mean, atol=1e-10)


def test_a_rejected_round_neither_adds_nor_decays(key):
    """The guard's rule holds with forgetting: a rejected round is not a round (state bit-identical)."""
    prior = _prior(key)
    X, A, y = _data(jax.random.PRNGKey(4), n=6)
    for agent in (
        dts(prior, Gaussian(SIGMA), K, discount=GAMMA),
        lin_ts(GaussianPrior(jnp.zeros(D), jnp.eye(D)), Gaussian(SIGMA), K, discount=GAMMA),
    ):
        clean = _feed(agent, X, A, y)
        Xb = jnp.concatenate([X[:3], jnp.full((1, D), jnp.nan), X[3:]])
        Ab = jnp.concatenate([A[:3], A[:1], A[3:]])
        yb = jnp.concatenate([y[:3], y[:1], y[3:]])
        dirty = _feed(agent, Xb, Ab, yb)
        assert int(dirty.rejected) == 1
        _assert_tree_equal(dirty._replace(rejected=0), clean._replace(rejected=0))
        # a batch drops the bad row the same way: its good rows are the rounds
        batch = jax.jit(agent.update_batch)(agent.init(), Xb.at[3].set(0.0), Ab.at[3].set(K), yb)
        assert int(batch.rejected) == 1
        for u, v in zip(
            jax.tree.leaves(batch._replace(rejected=0)), jax.tree.leaves(clean._replace(rejected=0)), strict=True
        ):
            np.testing.assert_allclose(u, v, atol=1e-12)


def _weighted_logistic_map(X, y, w, ridge):
    """Independent numpy Newton to convergence: argmin sum w (softplus(x b) - y x b) + ridge/2 |b|^2."""
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-X @ beta))
        grad = X.T @ (w * (p - y)) + ridge * beta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + ridge * np.eye(X.shape[1])
        beta = beta - np.linalg.solve(hess, grad)
    p = 1.0 / (1.0 + np.exp(-X @ beta))
    return beta, (X * (w * p * (1 - p))[:, None]).T @ X


@pytest.mark.parametrize("factory", [glm_ts, pytest.param(ucb_glm, marks=pytest.mark.slow)])
def test_glm_discount_weighs_the_history(key, factory):
    """The last-played action's refit is the gamma^age-weighted regularised MAP; the others decay by gamma."""
    prior = GaussianPrior(jnp.zeros(D), jnp.eye(D))
    X, A, y = _data(key, n=40, likelihood=Bernoulli())
    agent = factory(prior, Bernoulli(), K, newton_steps=40, discount=GAMMA)
    state = _feed(agent, X, A, y)
    Xn, An, yn = np.asarray(X), np.asarray(A), np.asarray(y)
    w = GAMMA ** np.arange(len(yn) - 1, -1, -1.0)
    sel = An == 0
    beta, G0 = _weighted_logistic_map(Xn[sel], yn[sel], w[sel], ridge=1.0)
    np.testing.assert_allclose(state.evidence.history.B[0], beta, atol=1e-8)
    np.testing.assert_allclose(state.evidence.stats.G[0], G0, atol=1e-8)
    # another action: its statistics are those of its last refit times gamma^(rounds since)
    a = int(An[:-5][-1]) if int(An[:-5][-1]) != 0 else 1
    last = int(np.nonzero(An == a)[0][-1])
    before = _feed(agent, X[: last + 1], A[: last + 1], y[: last + 1])
    np.testing.assert_allclose(
        state.evidence.stats.G[a], before.evidence.stats.G[a] * GAMMA ** (len(yn) - 1 - last), rtol=1e-12
    )


def test_rule_helpers_and_bad_discounts():
    assert forgetting.effective_window(0.99) == pytest.approx(100.0)
    assert forgetting.discount_for_window(100) == pytest.approx(0.99)
    assert forgetting.effective_window(1.0) == np.inf
    prior = GaussianPrior(jnp.zeros(D), jnp.eye(D))
    for bad in (0.0, 1.5, -0.1, float("nan"), "0.9", True, None):
        with pytest.raises(ValueError, match="discount"):
            lin_ts(prior, num_actions=K, discount=bad)
    with pytest.raises(ValueError, match="window"):
        forgetting.discount_for_window(0.5)


def test_glm_batch_decays_untouched_groups_and_dts_runs_with_glm_forgetting(key):
    prior = GaussianPrior(jnp.zeros(D), jnp.eye(D))
    X, A, y = _data(key, n=20, likelihood=Bernoulli())
    agent = glm_ts(prior, Bernoulli(), K, discount=GAMMA)
    state = _feed(agent, X, A, y)
    rows = slice(0, 6)
    A2 = jnp.where(A[rows] >= 2, 0, A[rows])  # the batch touches only actions 0 and 1
    after = agent.update_batch(state, X[rows], A2, y[rows])
    np.testing.assert_allclose(after.evidence.stats.G[2:], state.evidence.stats.G[2:] * GAMMA**6, rtol=1e-12)
    np.testing.assert_allclose(after.evidence.stats.b[2:], state.evidence.stats.b[2:] * GAMMA**6, rtol=1e-12)
    assert int(after.evidence.history.count) == 26
    dstate = _feed(dts(_prior(key), Bernoulli(), K, discount=GAMMA), X, A, y)
    assert np.all(np.isfinite(np.asarray(dstate.theta_cov))) and int(dstate.step) == 20


def test_an_array_discount_is_the_same_update_and_can_be_vmapped(key):
    """An array gamma (a traced sweep) takes the forgetting path: the same statistics as the float."""
    X, A, y = _data(key)
    lik = Gaussian(SIGMA)
    ev = Evidence(ActionStats(jnp.zeros((K, D, D)), jnp.zeros((K, D))), None)

    def run(gamma):
        def step(e, row):
            prop, _, _ = lik.propose_observation(e, row[0], row[1], row[2], 0, discount=gamma)
            return write(e, prop), None

        return jax.lax.scan(step, ev, (X, A, y))[0].stats

    gammas = jnp.asarray([0.8, 0.95, 1.0])
    swept = jax.jit(jax.vmap(run))(gammas)
    for i, g in enumerate((0.8, 0.95)):
        ref = run(g)
        np.testing.assert_allclose(swept.G[i], ref.G, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(swept.b[i], ref.b, rtol=1e-12, atol=1e-12)
    G, b = _weighted_stats(X, A, y, 1.0, SIGMA)  # gamma = 1 through the forgetting path: the plain sums
    np.testing.assert_allclose(swept.G[2], G, rtol=1e-12, atol=1e-12)
    assert forgetting.forgets(jnp.asarray(1.0)) and not forgetting.forgets(1.0) and forgetting.forgets(0.9)


def test_drift_window_balances_estimation_and_drift_variance():
    """At W the estimation variance sigma^2 K / (W E[x^2]) equals the drift's W v / tau."""
    s2, k, ex2, v, tau = 0.7, 100, 1.0 / 3.0, 1.3, 800.0
    w = forgetting.drift_window(s2, k, ex2, v, tau)
    assert s2 * k / (w * ex2) == pytest.approx(w * v / tau, rel=1e-12)
    # either side away from W the sum of the two is larger (W minimises it)
    total = lambda x: s2 * k / (x * ex2) + x * v / tau  # noqa: E731
    assert total(w) < total(0.8 * w) and total(w) < total(1.25 * w)
    for i in range(5):
        for bad in (0.0, -1.0, float("nan"), float("inf"), "1", True):
            args = [s2, k, ex2, v, tau]
            args[i] = bad
            with pytest.raises(ValueError, match=("noise_var", "num_actions", "context", "action_var", "drift")[i]):
                forgetting.drift_window(*args)
