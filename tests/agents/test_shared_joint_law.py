"""Shared-parameter Thompson agents score with ONE theta: the scores lie in the column space of X.

A Thompson agent with one parameter theta shared by all actions scores action a as x_a^T theta
for a single posterior draw theta per call, so with K > d action features X (K, d) of full column
rank the score vector s = X theta lies in X's column space: the least-squares residual
||s - X X^+ s|| is at float64 round-off, whatever the posterior and the key. Independent
per-action draws (each score from its own marginal) leave a residual of the order of the scores'
sd. Checked for every factory that accepts ``shared=True``, at the prior and after a few updates
(``Agent.score`` is ``act``'s scores). Discrimination inside the file: a vector whose entries are
the agent's own scores from K different keys (each entry from its marginal, not one theta), and
for LinTS an independent draw from its per-action moments (:func:`predictor_moments`), both give a
residual far above the tolerance. ``optimistic_ts`` (max of a draw and the mean) is not a point of
X's column space; its draw part is checked: its scores are max(base draw, mean) with the base's
draw on the same key passing the law. UCB-type policies are deterministic, not draws: left out.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from drift_priors import fixed_affine_prior

from dts_ppl import Bernoulli, Gaussian
from dts_ppl.agents import (
    Refit,
    bank_ts,
    dts,
    glm_ts,
    hier_ts,
    laplace_dps,
    lin_ts,
    posterior_policy,
    theta_marginal,
)
from dts_ppl.agents.linear import predictor_moments
from dts_ppl.experiments.synthetic import random_mlp_prior

K, D, N = 6, 3, 8
RTOL = 1e-9  # the residual relative to ||s||: float64 round-off is ~1e-15
DISCRIMINATION = 1e3  # a non-joint score vector's residual exceeds this many tolerances


_prior = fixed_affine_prior


def _builders():
    prior = _prior()
    m = theta_marginal(prior)
    mlp = random_mlp_prior(jax.random.PRNGKey(4), D, 2, hidden=8)
    bank = jax.random.normal(jax.random.PRNGKey(3), (512, D))
    g = Gaussian(1.0)
    return {
        "dts_affine": lambda: dts(prior, g, K, shared=True),
        "dts_affine_full_chain": lambda: dts(prior, g, K, shared=True, collapse=False),
        "dts_affine_bernoulli": lambda: dts(prior, Bernoulli(), K, shared=True, history=16),
        "dts_affine_discount": lambda: dts(prior, g, K, shared=True, discount=0.9),
        "dts_affine_refit": lambda: dts(prior, g, K, shared=True, refit=Refit(every=4)),
        "dts_mlp": lambda: dts(mlp, g, K, shared=True),
        "hier_ts": lambda: hier_ts(prior, g, K, shared=True),
        "lin_ts": lambda: lin_ts(m, g, K, shared=True),
        "lin_ts_discount": lambda: lin_ts(m, g, K, shared=True, discount=0.9),
        "lin_ts_refit": lambda: lin_ts(m, g, K, shared=True, refit=Refit(every=4)),
        "glm_ts": lambda: glm_ts(m, Bernoulli(), K, shared=True, history=16),
        "bank_ts": lambda: bank_ts(bank, g, K, shared=True, warn_ess=0.0),
        "laplace_dps_diffused": lambda: laplace_dps(prior, g, K),
        "laplace_dps_propagated": lambda: laplace_dps(prior, g, K, evidence="propagated"),
        "laplace_dps_bernoulli": lambda: laplace_dps(prior, Bernoulli(), K, history=16),
        "laplace_dps_mlp": lambda: laplace_dps(mlp, g, K),
    }


BINARY = ("dts_affine_bernoulli", "glm_ts", "laplace_dps_bernoulli")
# the heavier variants of a family in the slow run; each keeps a sibling in the default run
# (dts_affine, dts_mlp, lin_ts, laplace_dps_diffused)
SLOW = (
    "dts_affine_full_chain",
    "dts_affine_bernoulli",
    "dts_affine_discount",
    "dts_affine_refit",
    "lin_ts_refit",
    "laplace_dps_propagated",
    "laplace_dps_mlp",
)
AGENTS = [a if a not in SLOW else pytest.param(a, marks=pytest.mark.slow) for a in _builders()]


def _features():
    X = np.random.default_rng(0).uniform(-1.0, 1.0, (K, D))
    assert np.linalg.matrix_rank(X) == D  # full column rank, K > d: a proper subspace of R^K
    return jnp.asarray(X)


def _learnt(name, agent):
    """The state after N rounds on random (K, d) features (one batch update)."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1.0, 1.0, (N, K, D))
    A = rng.integers(0, K, N)
    y = (rng.random(N) < 0.5).astype(float) if name in BINARY else rng.normal(size=N)
    return agent.update_batch(agent.init(), jnp.asarray(X), jnp.asarray(A), jnp.asarray(y))


def residual(X, s) -> float:
    """||s - X X^+ s||: the distance of s (K,) from the column space of X (K, d), in float64."""
    X, s = np.asarray(X, np.float64), np.asarray(s, np.float64)
    coef, *_ = np.linalg.lstsq(X, s, rcond=None)
    return float(np.linalg.norm(s - X @ coef))


def _tol(s) -> float:
    return RTOL * max(1.0, float(np.linalg.norm(s)))


def _scores(agent, state, X, seeds):
    return np.stack([np.asarray(agent.score(jax.random.PRNGKey(int(k)), state, X)) for k in seeds])


def _check_law(agent, state, X, what):
    """Every draw in X's column space; the draws vary; a vector mixing K draws does not."""
    S = _scores(agent, state, X, range(K))  # (K keys, K actions)
    for s in S:
        assert residual(X, s) <= _tol(s), f"{what}: residual {residual(X, s):.3e} (one theta per act)"
    mixed = S[np.arange(K), np.arange(K)]  # action a's score from key a: each entry from its marginal
    assert residual(X, mixed) > DISCRIMINATION * _tol(mixed), f"{what}: the draws do not vary"


@pytest.mark.parametrize("name", AGENTS)
def test_shared_thompson_scores_lie_in_the_column_space_of_x(name):
    agent = _builders()[name]()
    assert agent.spec.shared and not agent.spec.deterministic
    X = _features()
    _check_law(agent, agent.init(), X, f"{name} at the prior")
    _check_law(agent, _learnt(name, agent), X, f"{name} after {N} rounds")


def test_independent_marginal_draws_fail_the_check():
    """LinTS's own per-action mean and sd, drawn independently: far from X's column space."""
    agent = lin_ts(theta_marginal(_prior()), Gaussian(1.0), K, shared=True)
    state, X = _learnt("lin_ts", agent), _features()
    mean, var = predictor_moments(X, state.mean, state.cov, True)
    sd = np.sqrt(np.asarray(var))
    assert np.all(sd > 0.1)
    z = np.random.default_rng(2).normal(size=(20, K))
    for s in np.asarray(mean) + sd * z:
        assert residual(X, s) > DISCRIMINATION * _tol(s)
    s = np.asarray(agent.score(jax.random.PRNGKey(0), state, X))  # the joint draw passes
    assert residual(X, s) <= _tol(s)


@pytest.mark.parametrize("base", ["lin_ts"] + [pytest.param(b, marks=pytest.mark.slow) for b in ("dts", "hier_ts")])
def test_optimistic_ts_is_the_max_of_one_joint_draw_and_the_mean(base):
    """optimistic_ts = max(the base's Thompson draw, the posterior mean): its draw part is joint."""
    prior = theta_marginal(_prior()) if base == "lin_ts" else _prior()
    factory = {"lin_ts": lin_ts, "dts": dts, "hier_ts": hier_ts}[base]
    draw = factory(prior, Gaussian(1.0), K, shared=True)
    opt = posterior_policy(base, prior, Gaussian(1.0), K, policy="optimistic_ts", shared=True)
    ucb = posterior_policy(base, prior, Gaussian(1.0), K, policy="ucb", alpha=0.0, shared=True)  # the mean
    state, X = _learnt(base, draw), _features()
    mean = np.asarray(ucb.score(jax.random.PRNGKey(0), state, X))
    assert residual(X, mean) <= _tol(mean)  # X times theta's posterior mean
    for seed in range(3):
        key = jax.random.PRNGKey(seed)
        s = np.asarray(draw.score(key, state, X))
        assert residual(X, s) <= _tol(s)
        np.testing.assert_allclose(np.asarray(opt.score(key, state, X)), np.maximum(s, mean), rtol=1e-12, atol=1e-12)
