"""The tracker bank (core.tracker_bank): evidence against the joint Gaussian of the rewards, draw, grid; float64."""

import math

import jax
import jax.numpy as jnp
import mc
import numpy as np
import pytest
from drift_priors import two_level_affine_prior
from scipy.stats import multivariate_normal

from dts_ppl.core import tracker, tracker_bank

K, D, T, SIGMA = 3, 2, 9, 0.8


def _prior():
    return two_level_affine_prior(3, D)


def _data(num_actions, seed=0):
    kx, ka, ky = jax.random.split(jax.random.PRNGKey(seed), 3)
    X = np.asarray(jax.random.uniform(kx, (T, D), minval=-1, maxval=1))
    A = np.asarray(jax.random.randint(ka, (T,), 0, num_actions))
    y = np.asarray(2.0 * jax.random.normal(ky, (T,)))
    return X, A, y


def _log_evidence(model, num_actions, X, A, y):
    """log p(y_0, ..., y_{T-1}) under the tracker's model, from the joint Gaussian of the rewards.

    The state z = (u, e_1, ..., e_K) starts at the prior and takes z' = F z + w before round 0 and
    after every round (F = blockdiag(I, sqrt(g) I, ...), Cov(w) = blockdiag(q C, (1 - g + r) S_1, ...));
    y_t = x_t^T (u + e_{a_t}) + N(0, sigma^2). Cov(z_s, z_t) = F^(t - s) Cov(z_s) for s <= t, no filtering.
    """
    C, S1, m = (np.asarray(v) for v in (model.shared_cov, model.action_cov, model.mean))
    q, g, r = float(model.shared_step), float(model.own_discount), float(model.own_step)
    n = (num_actions + 1) * D
    F, Q, P = np.eye(n), np.zeros((n, n)), np.zeros((n, n))
    F[D:, D:] *= math.sqrt(g)
    Q[:D, :D], P[:D, :D] = q * C, C
    for a in range(1, num_actions + 1):
        Q[a * D : (a + 1) * D, a * D : (a + 1) * D] = (1 - g + r) * S1
        P[a * D : (a + 1) * D, a * D : (a + 1) * D] = S1
    rounds = len(y)
    mean = np.concatenate([m, np.zeros(num_actions * D)])
    means, covs = [], []
    for _ in range(rounds):
        mean, P = F @ mean, F @ P @ F.T + Q
        means.append(mean)
        covs.append(P)
    H = np.zeros((rounds, n))
    for t in range(rounds):
        H[t, :D] = X[t]
        H[t, (A[t] + 1) * D : (A[t] + 2) * D] = X[t]
    Sy = np.zeros((rounds, rounds))
    for s in range(rounds):
        for t in range(s, rounds):
            cross = np.linalg.matrix_power(F, t - s) @ covs[s]  # Cov(z_t, z_s)
            Sy[s, t] = Sy[t, s] = H[t] @ cross @ H[s]
    Sy += SIGMA**2 * np.eye(rounds)
    my = np.asarray([H[t] @ means[t] for t in range(rounds)])
    return multivariate_normal(my, Sy).logpdf(y)


def _feed(models, num_actions, X, A, y):
    state = tracker_bank.bank_init(models, num_actions)
    step = jax.jit(tracker_bank.bank_observe)
    for t in range(T):
        state = step(models, state, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
    return state


@pytest.mark.parametrize(
    ("num_actions", "rates"),
    [
        (K, [(0.0, 0.8, 0.0), (0.0, 1.0, 0.0), (0.0, 0.9, 0.2)]),
        (1, [(0.3, 0.7, 0.0), (0.5, 1.0, 0.1), (0.0, 1.0, 0.0)]),
    ],
)
def test_weights_are_the_posterior_over_models(num_actions, rates):
    """Where the trackers are exact (q = 0, or K = 1), log w_m is log p_m(y) - log sum_m' p_m'(y) (uniform prior)."""
    prior = _prior()
    q, g, r = (np.asarray(v) for v in zip(*rates, strict=True))
    models = tracker_bank.bank_model(prior, SIGMA**2, q, g, r)
    X, A, y = _data(num_actions)
    state = _feed(models, num_actions, X, A, y)
    evidence = np.asarray(
        [_log_evidence(tracker.tracker_model(prior, SIGMA**2, *rate), num_actions, X, A, y) for rate in rates]
    )
    ref = evidence - np.logaddexp.reduce(evidence)
    np.testing.assert_allclose(np.asarray(state.log_weights), ref, atol=1e-10)
    assert np.ptp(ref) > 1e-3  # the models are told apart
    # each member is its own tracker run alone
    for i, rate in enumerate(rates):
        model = tracker.tracker_model(prior, SIGMA**2, *rate)
        alone = tracker.tracker_init(model, num_actions)
        for t in range(T):
            alone = tracker.tracker_observe(model, alone, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
        for leaf, ref_leaf in zip(jax.tree.leaves(state.post), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(np.asarray(leaf[i]), np.asarray(ref_leaf), atol=1e-12)


def test_predictive_is_the_joint_gaussian_one_step():
    """tracker_predictive after T - 1 rounds: the conditional of y_{T-1} given the rounds before (joint Gaussian)."""
    prior = _prior()
    model = tracker.tracker_model(prior, SIGMA**2, 0.0, 0.85, 0.1)
    X, A, y = _data(K)
    state = tracker.tracker_init(model, K)
    for t in range(T - 1):
        state = tracker.tracker_observe(model, state, jnp.asarray(X[t]), jnp.asarray(A[t]), jnp.asarray(y[t]))
    mean, var = tracker.tracker_predictive(model, state, jnp.asarray(X[-1]), jnp.asarray(A[-1]))
    lp = -0.5 * (math.log(2 * math.pi * float(var)) + (y[-1] - float(mean)) ** 2 / float(var))
    full = _log_evidence(model, K, X, A, y)
    head = _log_evidence(model, K, X, A, y[:-1])
    np.testing.assert_allclose(lp, full - head, atol=1e-10)


def test_draw_follows_the_weights_and_the_play_map():
    """The model is drawn from the weights (Monte Carlo), the scores from tracker play[m] with the second key."""
    prior = _prior()
    models = tracker_bank.bank_model(prior, SIGMA**2, [0.0, 0.1, 0.2], [1.0, 0.9, 0.8], [0.0, 0.0, 0.1])
    X, A, y = _data(K)
    state = _feed(models, K, X, A, y)
    probs = np.asarray([0.2, 0.5, 0.3])
    state = state._replace(log_weights=jnp.log(jnp.asarray(probs)))
    x = jnp.asarray([0.4, -0.6])
    play = jnp.asarray([2, 0, 0])
    keys = jax.random.split(jax.random.PRNGKey(5), 4000)
    scores, m = jax.vmap(lambda k: tracker_bank.bank_sample(k, state, x, play))(keys)
    onehot = np.eye(3)[np.asarray(m)]
    mc.assert_mean_within_mc(onehot, probs, probs * (1 - probs), "drawn model")
    for i in range(5):
        _, ks = jax.random.split(keys[i])
        chosen = jax.tree.map(lambda leaf, j=int(play[int(m[i])]): leaf[j], state.post)
        np.testing.assert_array_equal(np.asarray(scores[i]), np.asarray(tracker.tracker_sample(ks, chosen, x)))


def test_grid_and_its_play_map():
    q, g, r, play = tracker_bank.drift_grid([math.inf, 100.0, 1000.0], walk_below=400.0)
    np.testing.assert_allclose(q, [0.0, 0.01, 0.01, 0.001, 0.001])
    np.testing.assert_allclose(g, [1.0, 0.99, 1.0, 0.999, 1.0])
    np.testing.assert_allclose(r, [0.0, 0.0, 0.01, 0.0, 0.001])
    np.testing.assert_array_equal(play, [0, 2, 2, 3, 3])  # tau 100 < 400 plays the walk, 1000 the AR(1)
    _, _, _, identity = tracker_bank.drift_grid([100.0, 1000.0])
    np.testing.assert_array_equal(identity, np.arange(4))
    assert len(tracker_bank.drift_grid([50.0], own="walk")[0]) == 1
    for kwargs in (
        dict(time_scales=[]),
        dict(time_scales=[0.0]),
        dict(time_scales=[10.0, 10.0]),
        dict(time_scales=[10.0], own="x"),
        dict(time_scales=[10.0], own="ar", walk_below=5.0),
        dict(time_scales=[10.0], walk_below=-1.0),
    ):
        with pytest.raises(ValueError, match="time_scales|own|walk_below"):
            tracker_bank.drift_grid(**kwargs)


def test_bank_model_rejects_bad_rates():
    prior = _prior()
    with pytest.raises(ValueError, match="shared_steps, own_discounts, own_steps"):
        tracker_bank.bank_model(prior, 1.0, [0.0, 0.1], [1.0], [0.0])
    with pytest.raises(ValueError, match="own_discount"):
        tracker_bank.bank_model(prior, 1.0, [0.0], [1.5], [0.0])
    with pytest.raises(ValueError, match="shared_step"):
        tracker_bank.bank_model(prior, 1.0, [-0.1], [1.0], [0.0])
