"""The two-rate tracker (core.tracker) against a dense Kalman filter and core.walk_filter, float64."""

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest
from drift_priors import two_level_affine_prior

from dts_ppl.core import tracker, walk_filter

K, D, T, SIGMA = 3, 2, 9, 0.8


def _prior():
    return two_level_affine_prior(3, D)


def _data(num_actions, rounds=T, seed=0):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(seed), 3)
    X = np.asarray(jax.random.uniform(kx, (rounds, D), minval=-1, maxval=1))
    A = np.asarray(jax.random.randint(ka, (rounds,), 0, num_actions))
    y = np.asarray(2.0 * jax.random.normal(ky, (rounds,)))
    return X, A, y


def _dense_kalman(model, num_actions, X, A, y, step_from=0):
    """The Kalman filter of z = (u, e_1, ..., e_K) under the tracker's model, dense numpy.

    Transition z' = F z + w: F = blockdiag(I, sqrt(g) I, ...), Q = blockdiag(q C, (1 - g + r) S_1, ...);
    the prior plus one transition before round 0 and after every round. ``step_from``: u's step
    is q for the transitions after that many rounds have been observed, 0 before.
    Returns theta's predicted (mean (K d,), cov (K d, K d)) after the last round.
    """
    C, S1, m = (np.asarray(v) for v in (model.shared_cov, model.action_cov, model.mean))
    q, g, r = float(model.shared_step), float(model.own_discount), float(model.own_step)
    n = (num_actions + 1) * D
    mean = np.concatenate([m, np.zeros(num_actions * D)])
    cov = np.zeros((n, n))
    cov[:D, :D] = C
    for a in range(num_actions):
        cov[(a + 1) * D : (a + 2) * D, (a + 1) * D : (a + 2) * D] = S1
    F = np.eye(n)
    F[D:, D:] *= np.sqrt(g)

    def predict(mean, cov, observed):
        qu = q if observed >= step_from else 0.0
        Q = np.zeros((n, n))
        Q[:D, :D] = qu * C
        for a in range(num_actions):
            Q[(a + 1) * D : (a + 2) * D, (a + 1) * D : (a + 2) * D] = (1 - g + r) * S1
        return F @ mean, F @ cov @ F.T + Q

    mean, cov = predict(mean, cov, 0)
    for t in range(len(y)):
        h = np.zeros(n)
        h[:D] = X[t]
        h[(A[t] + 1) * D : (A[t] + 2) * D] = X[t]
        s = h @ cov @ h + SIGMA**2
        k = cov @ h / s
        mean = mean + k * (y[t] - h @ mean)
        cov = cov - np.outer(k, k) * s
        mean, cov = predict(mean, cov, t + 1)
    Tm = np.concatenate([np.tile(np.eye(D), (num_actions, 1)), np.eye(num_actions * D)], 1)
    return Tm @ mean, Tm @ cov @ Tm.T


def _run(model, num_actions, X, A, y):
    state = tracker.tracker_init(model, num_actions)
    step = jax.jit(tracker.tracker_observe)
    for t in range(len(y)):
        state = step(model, state, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
    return state


@pytest.mark.parametrize(
    ("num_actions", "q", "g", "r"),
    [(K, 0.0, 0.8, 0.0), (K, 0.0, 1.0, 0.0), (K, 0.0, 0.9, 0.2), (1, 0.3, 0.7, 0.0), (1, 0.5, 1.0, 0.1)],
)
def test_exact_cases_are_the_kalman_filter(num_actions, q, g, r):
    """q = 0 (any K) or K = 1: the factorised family holds the model's exact posterior."""
    model = tracker.tracker_model(_prior(), SIGMA**2, q, g, r)
    X, A, y = _data(num_actions)
    mean, cov = tracker.tracker_theta(_run(model, num_actions, X, A, y))
    ref_mean, ref_cov = _dense_kalman(model, num_actions, X, A, y)
    np.testing.assert_allclose(np.asarray(mean).reshape(-1), ref_mean, atol=1e-10)
    np.testing.assert_allclose(np.asarray(cov), ref_cov, atol=1e-10)


@pytest.mark.parametrize(("q", "r"), [(0.0, 0.0), (0.4, 0.0), (0.0, 0.3), (0.4, 0.3)])
def test_random_walks_are_the_walk_filter(q, r):
    """gamma = 1, u walking by q C and each e_a by r S_1 a round: walk_filter with those steps
    (exact for K = 3 when q = 0, for K = 1 otherwise)."""
    prior = _prior()
    num_actions = 1 if q > 0 else K
    model = tracker.tracker_model(prior, SIGMA**2, q, 1.0, r)
    X, A, y = _data(num_actions)
    mean, cov = tracker.tracker_theta(_run(model, num_actions, X, A, y))
    wmodel = walk_filter.walk_model(prior, np.sqrt(r), SIGMA**2, np.sqrt(q))
    ws = walk_filter.walk_init(wmodel, num_actions)
    for t in range(T):
        ws = walk_filter.walk_observe(wmodel, ws, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
    ref_mean, ref_cov = walk_filter.walk_theta(ws)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(ref_mean), atol=1e-10)
    np.testing.assert_allclose(np.asarray(cov), np.asarray(ref_cov), atol=1e-10)


def test_shared_step_keeps_every_pair_exact():
    """K > 1, q > 0: one shared step from an exact state keeps each action's theta_a law exact
    (the diagonal blocks, and each theta_a's mean), and only the dependence between actions is dropped."""
    q, g = 0.6, 0.9
    model = tracker.tracker_model(_prior(), SIGMA**2, q, g)
    static = model._replace(shared_step=jnp.asarray(0.0))
    X, A, y = _data(K)
    state = tracker.tracker_init(static, K)
    for t in range(T):
        state = tracker.tracker_condition(static, state, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
        if t < T - 1:
            state = tracker.tracker_predict(static, state)
    state = tracker.tracker_predict(model, state)  # the only shared step: after the last round
    mean, cov = tracker.tracker_theta(state)
    ref_mean, ref_cov = _dense_kalman(model, K, X, A, y, step_from=T)
    np.testing.assert_allclose(np.asarray(mean).reshape(-1), ref_mean, atol=1e-10)
    cov, ref_cov = np.asarray(cov).reshape(K, D, K, D), ref_cov.reshape(K, D, K, D)
    for a in range(K):
        np.testing.assert_allclose(cov[a, :, a], ref_cov[a, :, a], atol=1e-10)
    assert np.abs(cov[0, :, 1] - ref_cov[0, :, 1]).max() > 1e-6  # the projection does drop something


def test_scores_and_draws():
    """tracker_scores is x^T theta's law under tracker_theta; tracker_sample draws from it (Monte Carlo)."""
    model = tracker.tracker_model(_prior(), SIGMA**2, 0.2, 0.9)
    X, A, y = _data(K)
    state = _run(model, K, X, A, y)
    x = jnp.asarray([0.3, -0.7])
    m, c = tracker.tracker_scores(state, x)
    tm, tc = tracker.tracker_theta(state)
    Hx = np.kron(np.eye(K), np.asarray(x)[None, :])
    np.testing.assert_allclose(np.asarray(m), Hx @ np.asarray(tm).reshape(-1), atol=1e-10)
    np.testing.assert_allclose(np.asarray(c), Hx @ np.asarray(tc) @ Hx.T, atol=1e-10)
    keys = jax.random.split(jax.random.PRNGKey(5), 20000)
    draws = np.asarray(jax.vmap(lambda k: tracker.tracker_sample(k, state, x))(keys))
    c = np.asarray(c)
    mc.assert_mean_within_mc(draws, np.asarray(m), np.diag(c), "score mean")
    mc.assert_cov_within_mc(draws, draws, c, np.diag(c), np.diag(c), "score covariance")


def test_tracking_rule():
    q, g = tracker.tracking_rule(1.0, 100, 1.0 / 3.0, 1.0, 1000.0)
    assert q == pytest.approx(1e-3)
    assert 1.0 / (1.0 - g) == pytest.approx(np.sqrt(1.0 * 100 * 1000 * 3.0))
    q, g = tracker.tracking_rule(1.0, 100, 1.0 / 3.0, 1.0, 500.0, own="matched")
    assert (q, 1.0 / (1.0 - g)) == pytest.approx((2e-3, 500.0))
    with pytest.raises(ValueError, match="own"):
        tracker.tracking_rule(1.0, 100, 1.0 / 3.0, 1.0, 500.0, own="fast")
    with pytest.raises(ValueError, match="drift_rounds"):
        tracker.tracking_rule(1.0, 100, 1.0 / 3.0, 1.0, 0.5)


def test_bad_input():
    prior = _prior()
    with pytest.raises(ValueError, match="shared_step"):
        tracker.tracker_model(prior, 1.0, -0.1, 1.0)
    with pytest.raises(ValueError, match="own_discount"):
        tracker.tracker_model(prior, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="own_discount"):
        tracker.tracker_model(prior, 1.0, 0.0, 1.5)
    with pytest.raises(ValueError, match="noise_var"):
        tracker.tracker_model(prior, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="own_step"):
        tracker.tracker_model(prior, 1.0, 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="num_actions"):
        tracker.tracker_init(tracker.tracker_model(prior, 1.0, 0.0, 1.0), 0)
    with pytest.raises(ValueError, match="prior"):
        tracker.tracker_model("not a prior", 1.0, 0.0, 1.0)
