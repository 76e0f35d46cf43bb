"""Bandit environments: where theta comes from, what the contexts look like, how rewards arise.

An :class:`Environment` is generic: any ``sample_theta(key) -> theta`` works (a diffusion prior,
a Swiss roll from scikit-learn, a fixed array), with any ``sample_context(key) -> x`` and a
reward likelihood from :mod:`dts_ppl.core.likelihoods`. The paper's synthetic problems
(MATH.md section 8) are built by :func:`dts_ppl.experiments.synthetic.paper_environment`.

Rewards: eta_a = x^T theta_a (per-action parameters, theta (K, d), x (d,)) or x_a^T theta
(shared parameter, theta (d,), x (K, d) action features); the mean reward is g(eta_a) and the
reward y ~ likelihood.sample(key, eta_A).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.likelihoods import linear_predictor as _eta
from dts_ppl.core.prior import DiffusionPrior


class Environment(NamedTuple):
    """A contextual bandit problem.

    Attributes:
        sample_theta: key -> theta (K, d) (or (d,) when ``shared``), one draw per run.
        sample_context: key -> x (d,) (or (K, d) action features when ``shared``), one per round.
        likelihood: reward model (Gaussian, Bernoulli, Poisson).
        num_actions: K.   dim: d.
        shared: one parameter for all actions.
        name: for tables and plots.
    """

    sample_theta: Callable
    sample_context: Callable
    likelihood: object
    num_actions: int
    dim: int
    shared: bool = False
    name: str = ""


def linear_predictor(env: Environment, theta, x):
    """eta (K,) of every action: x (d,) against theta (K, d), or features x (K, d) against theta (d,)."""
    del env  # the shapes tell the two cases apart (:func:`dts_ppl.core.linear_predictor`)
    return _eta(x, theta)


def mean_rewards(env: Environment, theta, x):
    """Expected reward g(eta_a) of every action, (K,)."""
    return env.likelihood.mean(linear_predictor(env, theta, x))


def sample_reward(env: Environment, key, theta, x, action):
    """One reward of the played action."""
    eta = linear_predictor(env, theta, x)[action]
    return env.likelihood.sample(key, eta).astype(eta.dtype)


def uniform_contexts(dim: int, num_actions: int | None = None, low: float = -1.0, high: float = 1.0, dtype=None):
    """Contexts x ~ U[low, high]^d (or (K, d) features when ``num_actions`` is given)."""
    shape = (dim,) if num_actions is None else (num_actions, dim)
    dtype = dtype or jnp.result_type(float)
    return lambda key: jax.random.uniform(key, shape, dtype, low, high)


def diffusion_environment(prior: DiffusionPrior, num_actions: int, likelihood=None, contexts=None, name: str = ""):
    """theta_a drawn from ``prior`` per run, contexts U[-1, 1]^d by default."""
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    conds = core.prior_conditionals(prior, num_actions)

    def sample_theta(key):
        return core.sample(key, prior, conds)[1]

    contexts = contexts or uniform_contexts(prior.dim, dtype=prior.cov1.dtype)
    return Environment(sample_theta, contexts, likelihood, int(num_actions), prior.dim, False, name)
