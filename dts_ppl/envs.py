"""Bandit environments: where theta comes from, what the contexts look like, how rewards arise.

An :class:`Environment` is generic: any ``sample_theta(key) -> theta`` works (a diffusion prior,
a Swiss roll from scikit-learn, a fixed array), with any ``sample_context(key) -> x`` and a
reward likelihood from :mod:`dts_ppl.likelihoods`. The paper's synthetic problems
(MATH.md section 8) are built by :func:`paper_environment`.

Rewards: eta_a = x^T theta_a (per-action parameters, theta (K, d), x (d,)) or x_a^T theta
(shared parameter, theta (d,), x (K, d) action features); the mean reward is g(eta_a) and the
reward y ~ likelihood.distribution(eta_A).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl import posterior as core
from dts_ppl.likelihoods import Bernoulli, Gaussian
from dts_ppl.prior import DiffusionPrior
from dts_ppl.synthetic import random_linear_prior, random_mlp_prior


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
    """eta (K,) of every action."""
    return x @ theta if env.shared else theta @ x


def mean_rewards(env: Environment, theta, x):
    """Expected reward g(eta_a) of every action, (K,)."""
    return env.likelihood.mean(linear_predictor(env, theta, x))


def sample_reward(env: Environment, key, theta, x, action):
    """One reward of the played action."""
    eta = linear_predictor(env, theta, x)[action]
    return env.likelihood.distribution(eta).sample(key).astype(eta.dtype)


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


def paper_prior(key, diffusion: str, dim: int, active_dims: Sequence[int], hidden: int) -> DiffusionPrior:
    """The paper's random diffusion prior: "linear" (W_l ~ U[-1, 1], zeroed columns) or "mlp"."""
    if diffusion == "linear":
        return random_linear_prior(key, dim, active_dims)
    if diffusion == "mlp":
        return random_mlp_prior(key, dim, len(active_dims), hidden)
    raise ValueError(f"diffusion: expected 'linear' or 'mlp', got {diffusion!r}")


def paper_environment(key, diffusion: str, reward: str, num_actions: int, dim: int, active_dims, hidden: int):
    """A synthetic problem of the paper: returns (environment, true prior).

    Args:
        diffusion: "linear" or "mlp".   reward: "linear" (Gaussian, sd 1) or "logistic".
        active_dims: (d_1, ..., d_L) active columns (linear) and L.   hidden: MLP width.
    """
    if reward not in ("linear", "logistic"):
        raise ValueError(f"reward: expected 'linear' or 'logistic', got {reward!r}")
    prior = paper_prior(key, diffusion, dim, active_dims, hidden)
    likelihood = Gaussian(1.0) if reward == "linear" else Bernoulli()
    name = f"{diffusion} diffusion, {reward} reward, K={num_actions}, d={dim}, L={len(active_dims)}"
    return diffusion_environment(prior, num_actions, likelihood, name=name), prior
