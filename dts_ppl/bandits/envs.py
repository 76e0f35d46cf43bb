"""Bandit environments: where theta comes from, what the contexts look like, how rewards arise.

An :class:`Environment` is generic: any ``sample_theta(key) -> theta`` works (a diffusion prior,
a Swiss roll from scikit-learn, a fixed array), with any ``sample_context(key) -> x`` and a
reward likelihood from :mod:`dts_ppl.core.likelihoods`. The paper's synthetic problems
(docs/math.md section 8) are built by :func:`dts_ppl.experiments.synthetic.paper_environment`.

Rewards: eta_a = x^T theta_a (per-action parameters, theta (K, d), x (d,)) or x_a^T theta
(shared parameter, theta (d,), x (K, d) action features); the mean reward is g(eta_a) and the
reward y ~ likelihood.sample(key, eta_A).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core import prng as _prng
from dts_ppl.core.deprecation import renamed
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.core.likelihoods import linear_predictor as _eta
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood


class Environment(NamedTuple):
    """A contextual bandit problem.

    Attributes:
        sample_theta: key -> theta (K, d) (or (d,) when ``shared``), one draw per run.
        sample_context: key -> x (d,) (or (K, d) action features when ``shared``), one per round.
        likelihood: reward model (Gaussian, Bernoulli, Poisson).
        num_actions: K.   dim: d.
        shared: one parameter for all actions.
        name: for tables and plots.
        drift: None (theta fixed for the run), or ``drift(key, theta, t) -> theta``, jittable: the
            parameter of round t from that of round t - 1 (theta of round -1 is the run's draw);
            see :func:`random_walk` and :func:`abrupt_changes`.
        table: None, or (X (N, d), R (N, K)): a data set turned into a bandit
            (:func:`table_environment`): each round draws a row i, the context is X[i] and the
            mean reward of action a is R[i, a], whatever theta is.
    """

    sample_theta: Callable
    sample_context: Callable
    likelihood: Likelihood
    num_actions: int
    dim: int
    shared: bool = False
    name: str = ""
    drift: Callable | None = None
    table: tuple | None = None


def linear_predictor(env: Environment, theta: jax.Array, x: jax.Array) -> jax.Array:
    """Deprecated: use :func:`dts_ppl.core.linear_predictor` ``(x, theta)`` (``env`` is unused)."""
    renamed("dts_ppl.bandits.envs.linear_predictor(env, theta, x)", "dts_ppl.core.linear_predictor(x, theta)")
    del env
    return _eta(x, theta)


def mean_rewards(env: Environment, theta, x):
    """Expected reward g(eta_a) of every action, (K,)."""
    return env.likelihood.mean(_eta(x, theta))


def table_environment(X, R, name: str = "") -> Environment:
    """A bandit from a data set with every action's reward known: the supervised-to-bandit reduction.

    Each round draws a row i uniformly (with replacement); the agent sees x = X[i] and receives
    a reward of mean R[i, a] for the action a it plays, drawn Bernoulli(R[i, a]) (so 0/1 means,
    e.g. "1 for the right class", give that reward exactly). The pseudo-regret of a round is
    max_a R[i, a] - R[i, A]. Per-action parameters: agents learn one theta_a (d,) per action.

    Args:
        X: (N, d) finite contexts.
        R: (N, K) mean rewards in [0, 1].
        name: for tables and plots.
    Returns:
        Environment with ``table=(X, R)`` and a Bernoulli likelihood; its ``sample_theta`` gives
        zeros (K, d) (the rewards come from the table, not from a parameter).
    """
    X = jnp.asarray(_checks.as_array("X", X, shape=(None, None)), jnp.result_type(float))
    R = jnp.asarray(_checks.as_array("R", R, shape=(X.shape[0], None)), X.dtype)
    if X.shape[0] < 1 or X.shape[1] < 1 or R.shape[1] < 2:
        raise ValueError(
            f"X, R: expected N >= 1 rows, d >= 1 features and K >= 2 actions, got X {X.shape}, R {R.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(X))):
        raise ValueError("X: expected finite values")
    if not bool(jnp.all((R >= 0) & (R <= 1))):
        raise ValueError("R: expected mean rewards in [0, 1]")
    N, d = X.shape
    K = R.shape[1]

    def sample_context(key):
        return X[jax.random.randint(key, (), 0, N)]

    return Environment(
        lambda key: jnp.zeros((K, d), X.dtype), sample_context, Bernoulli(), K, d, False, name, None, (X, R)
    )


def table_round(env: Environment, key):
    """One round of a table environment: (x (d,), mean rewards (K,)) of a uniformly drawn row."""
    X, R = env.table
    i = jax.random.randint(key, (), 0, X.shape[0])
    return X[i], R[i]


def sample_reward(env: Environment, key, theta, x, action):
    """One reward of the played action."""
    key = _checks.check_key(key)
    eta = _eta(x, theta)[action]
    return env.likelihood.sample(key, eta).astype(eta.dtype)


def uniform_contexts(dim: int, num_actions: int | None = None, low: float = -1.0, high: float = 1.0, dtype=None):
    """Contexts x ~ U[low, high]^d (or (K, d) features when ``num_actions`` is given)."""
    shape = (dim,) if num_actions is None else (num_actions, dim)
    dtype = dtype or jnp.result_type(float)
    return lambda key: _prng.uniform(key, shape, dtype, low, high)


def diffusion_environment(prior: DiffusionPrior, num_actions: int, likelihood=None, contexts=None, name: str = ""):
    """theta_a drawn from ``prior`` per run, contexts U[-1, 1]^d by default."""
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    conds = core.prior_conditionals(prior, num_actions)

    def sample_theta(key):
        return core.sample(key, prior, conds)[1]

    contexts = contexts or uniform_contexts(prior.dim, dtype=prior.cov1.dtype)
    return Environment(sample_theta, contexts, likelihood, int(num_actions), prior.dim, False, name)


# ----------------------------------------------------------------------- from arrays (real data)


def _pool_or_sampler(name, value, dim=None):
    """A callable is kept; an array becomes a (P, d) pool (ValueError on the wrong shape or NaN)."""
    if callable(value):
        return value, dim
    arr = jnp.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(
            f"{name}: expected a callable key -> array or a (P, d) array pool, got shape {tuple(arr.shape)}"
        )
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name}: contains NaN or inf")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected rows of dimension {dim} (as the other pool), got {arr.shape[1]}")
    return arr, int(arr.shape[1])


def pool_environment(thetas, contexts, num_actions: int, likelihood=None, shared: bool = False, name: str = ""):
    """An environment whose parameters and contexts are rows of given arrays (real data).

    Per-action parameters (``shared=False``): each run draws K distinct rows of ``thetas`` as
    theta (K, d) (e.g. K items of a factorisation); each round draws one row of ``contexts`` as
    x (d,) (e.g. a user vector). Shared parameter (``shared=True``): each run draws one row of
    ``thetas`` as theta (d,) (e.g. a task's linear model); each round draws K distinct rows of
    ``contexts`` as the action features x (K, d) (e.g. K images). Either argument may instead be
    a callable ``key -> array`` of the drawn shape.

    Args:
        thetas: (P, d) pool of parameters (P >= K per-action), or a sampler.
        contexts: (C, d) pool of contexts or action features (C >= K shared), or a sampler.
        num_actions: K.
        likelihood: reward model (default ``Gaussian(1.0)``); Bernoulli rewards use eta as logit.
        shared: one parameter for all actions.
    Returns:
        Environment.
    """
    if isinstance(num_actions, bool) or not hasattr(num_actions, "__index__") or num_actions < 1:
        raise ValueError(f"num_actions: expected a positive integer, got {num_actions!r}")
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    if not hasattr(likelihood, "sample") or not hasattr(likelihood, "mean"):
        raise ValueError(
            f"likelihood: expected a dts_ppl likelihood (Gaussian, Bernoulli, Poisson), got {likelihood!r}"
        )
    thetas, dim = _pool_or_sampler("thetas", thetas)
    contexts, dim = _pool_or_sampler("contexts", contexts, dim)
    if dim is None:
        raise ValueError("thetas, contexts: expected at least one array pool (the dimension d comes from it)")
    K = int(num_actions)
    for label, pool, needed in (("thetas", thetas, not shared), ("contexts", contexts, shared)):
        if needed and not callable(pool) and pool.shape[0] < K:
            raise ValueError(f"{label}: expected at least num_actions = {K} rows to draw from, got {pool.shape[0]}")

    def rows(pool, count):
        if callable(pool):
            return pool
        if count is None:
            return lambda key: pool[jax.random.randint(key, (), 0, pool.shape[0])]
        return lambda key: pool[jax.random.choice(key, pool.shape[0], (count,), replace=False)]

    sample_theta = rows(thetas, None if shared else K)
    sample_context = rows(contexts, K if shared else None)
    return Environment(sample_theta, sample_context, likelihood, K, dim, bool(shared), name)


# ------------------------------------------------------------------------------- drifting theta


def _check_env(env) -> Environment:
    if not isinstance(env, Environment):
        raise ValueError(f"env: expected a dts_ppl.bandits.envs.Environment, got {type(env).__name__}")
    return env


def random_walk(env: Environment, scale: float, name: str | None = None) -> Environment:
    """``env`` whose theta takes a Gaussian random-walk step every round, shaped like its own spread.

    theta_t = theta_{t-1} + scale (theta' - theta'') / sqrt(2), with theta', theta'' two fresh
    draws of ``env.sample_theta``: the steps have mean 0 and covariance scale^2 Cov(theta) (the
    prior's correlations across actions and coordinates, so a catalogue drifts together as its
    prior says). After n rounds theta has moved by sqrt(n) scale prior standard deviations:
    scale = 1 / sqrt(tau) moves it by one in tau rounds.

    Args:
        env: a stationary Environment (its ``drift`` is replaced).   scale: > 0 step size.
        name: of the new environment (default: env.name + "-walk").
    Returns:
        Environment with ``drift`` set.
    """
    env = _check_env(env)
    scale = _checks.check_scalar("scale", scale)

    def drift(key, theta, t):
        del t
        k1, k2 = jax.random.split(key)
        step = (env.sample_theta(k1) - env.sample_theta(k2)) * (scale / jnp.sqrt(2.0))
        return theta + step.astype(theta.dtype)

    return env._replace(drift=drift, name=f"{env.name}-walk" if name is None else name)


def abrupt_changes(env: Environment, rounds, name: str | None = None) -> Environment:
    """``env`` whose theta is redrawn from ``env.sample_theta`` at the start of each of ``rounds``.

    Args:
        env: a stationary Environment (its ``drift`` is replaced).
        rounds: distinct positive integers (round 0 is the run's own draw), any order.
        name: of the new environment (default: env.name + "-abrupt").
    Returns:
        Environment with ``drift`` set: theta is constant between changes, and a fresh
        independent draw from each change on.
    """
    env = _check_env(env)
    if isinstance(rounds, str | bytes) or not hasattr(rounds, "__iter__"):
        raise ValueError(f"rounds: expected a sequence of positive integers (change rounds), got {rounds!r}")
    values = [_checks.check_int("rounds", r, 1) for r in rounds]
    if not values or len(set(values)) != len(values):
        raise ValueError(f"rounds: expected distinct positive integers (round 0 is the run's draw), got {rounds!r}")
    changes = jnp.asarray(sorted(values), jnp.int32)

    def drift(key, theta, t):
        fresh = env.sample_theta(key).astype(theta.dtype)
        return jnp.where(jnp.any(changes == t), fresh, theta)

    return env._replace(drift=drift, name=f"{env.name}-abrupt" if name is None else name)


def drift_process(env: Environment, walk_scale, change_every, name: str | None = None) -> Environment:
    """``env`` with a random walk and/or periodic redraws whose sizes may be traced (a vmapped sweep).

    The same laws as :func:`random_walk` and :func:`abrupt_changes`, with the drift's sizes as
    array values, so one compiled simulation can run several drift sizes side by side (vmap over
    them): each round theta takes the step of ``random_walk(env, walk_scale)`` (none at 0), and
    at every round t > 0 that is a multiple of ``change_every`` (never at 0) it is redrawn from
    ``env.sample_theta`` as :func:`abrupt_changes` does. With ``change_every`` = 0 the theta
    path is that of :func:`random_walk` for the same keys, with ``walk_scale`` = 0 that of
    :func:`abrupt_changes` at rounds (c, 2c, ...) (tests/experiments/test_drift.py).

    Args:
        env: a stationary Environment (its ``drift`` is replaced).
        walk_scale: () >= 0 step size (Python number or array, possibly traced).
        change_every: () int >= 0 rounds between redraws, 0 for none (possibly traced).
        name: of the new environment (default: env.name + "-drift").
    Returns:
        Environment with ``drift`` set.
    """
    env = _check_env(env)
    for arg, value in (("walk_scale", walk_scale), ("change_every", change_every)):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{arg}: expected a scalar, got shape {jnp.shape(value)}")
        if not isinstance(value, jax.core.Tracer) and not (float(value) >= 0.0):
            raise ValueError(f"{arg}: expected a number >= 0, got {value!r}")
    every = jnp.asarray(change_every, jnp.int32)

    def drift(key, theta, t):
        k1, k2 = jax.random.split(key)
        step = (env.sample_theta(k1) - env.sample_theta(k2)) * (walk_scale / jnp.sqrt(2.0))
        walked = theta + step.astype(theta.dtype)
        change = (every > 0) & (t > 0) & (jnp.mod(t, jnp.maximum(every, 1)) == 0)
        return jnp.where(change, env.sample_theta(key).astype(theta.dtype), walked)

    return env._replace(drift=drift, name=f"{env.name}-drift" if name is None else name)
