"""Fixed-budget best-arm identification with top-two Thompson sampling (Russo 2016).

The paper names best-arm identification as the natural extension of dTS: plug the diffusion
posterior sampler into a Bayesian fixed-budget procedure. Here the procedure is top-two
Thompson sampling on any Thompson-sampling :class:`~dts_ppl.agents.base.Agent`:

    leader     = the action of one posterior draw (``agent.act``)
    challenger = the first of ``max_resamples`` further draws whose action differs from the
                 leader (the leader itself when none differs)
    play the leader with probability ``beta``, else the challenger; update the posterior.

After a budget of T rounds recommend the action with the largest posterior mean score
(``mean_scores(state, x)``; :func:`dts_mean_scores`, :func:`linear_mean_scores`). The problem is
non-contextual: every round sees the same context x0, arm a's mean reward is x0^T theta_a, and
theta is drawn from the true prior in every run (Bayesian probability of error).

:func:`identification_error` runs the procedure once up to the largest budget, recording the
recommendation at every budget (top-two TS does not depend on the budget), vmapped over runs.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.base import Agent
from dts_ppl.agents.dts import dts_posterior
from dts_ppl.bandits.envs import Environment, diffusion_environment, mean_rewards, sample_reward
from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior


class BAIResult(NamedTuple):
    """Probability of wrong identification and simple regret at each budget.

    Attributes:
        budgets: (B,) T.
        error: (B,) fraction of runs whose recommendation is not the best arm.
        error_se: (B,) its binomial standard error sqrt(p (1 - p) / runs).
        simple_regret: (B,) mean of max_a mu_a - mu_recommended.
        simple_regret_se: (B,) its standard error.
        runs: number of runs.
        seconds: wall time (compilation included).
    """

    budgets: np.ndarray
    error: np.ndarray
    error_se: np.ndarray
    simple_regret: np.ndarray
    simple_regret_se: np.ndarray
    runs: int
    seconds: float


def _check_options(beta, max_resamples):
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: expected a leader probability in [0, 1], got {beta!r}")
    if not isinstance(max_resamples, int) or max_resamples < 1:
        raise ValueError(f"max_resamples: expected a positive integer, got {max_resamples!r}")


def top_two_action(key, agent: Agent, state, x, beta: float = 0.5, max_resamples: int = 4):
    """One top-two Thompson-sampling choice. Returns (action (), leader ())."""
    key = _checks.check_key(key)
    _check_options(beta, max_resamples)
    k_lead, k_chal, k_coin = jax.random.split(key, 3)
    leader, _ = agent.act(k_lead, state, x)
    challengers = jax.vmap(lambda k: agent.act(k, state, x)[0])(jax.random.split(k_chal, max_resamples))
    differs = challengers != leader
    challenger = jnp.where(jnp.any(differs), challengers[jnp.argmax(differs)], leader)
    return jnp.where(jax.random.uniform(k_coin) < beta, leader, challenger), leader


def dts_mean_scores(prior: DiffusionPrior):
    """``mean_scores(state, x) -> (K,)`` posterior means of x^T theta_a from a dTS state (exact for linear links)."""

    def mean_scores(state, x):
        return core.moments(prior, dts_posterior(prior, state)).theta_mean @ x

    return mean_scores


def linear_mean_scores(state, x):
    """Posterior means of x^T theta_a from a LinTS state, (K,)."""
    return state.mean @ x


def fixed_context_environment(prior: DiffusionPrior, num_actions: int, context, noise: float = 1.0) -> Environment:
    """Non-contextual BAI problem: theta_a from ``prior``, every round's context is ``context`` (d,)."""
    x0 = jnp.asarray(context, prior.cov1.dtype)
    if x0.shape != (prior.dim,):
        raise ValueError(f"context: expected shape ({prior.dim},), got {tuple(x0.shape)}")
    return diffusion_environment(prior, num_actions, Gaussian(noise), contexts=lambda key: x0, name="fixed-context BAI")


def _run(key, env, agent, mean_scores, budgets, beta, max_resamples):
    k_theta, k_ctx, k_rounds = jax.random.split(key, 3)
    theta = env.sample_theta(k_theta)
    x0 = env.sample_context(k_ctx)
    mu = mean_rewards(env, theta, x0)
    keys = jax.random.split(k_rounds, budgets[-1])

    def round_(state, k):
        k_act, k_rew = jax.random.split(k)
        action, _ = top_two_action(k_act, agent, state, x0, beta, max_resamples)
        y = sample_reward(env, k_rew, theta, x0, action)
        return agent.update(state, x0, action, y), None

    state, start, wrong, regret = agent.init(), 0, [], []
    for b in budgets:
        state, _ = jax.lax.scan(round_, state, keys[start:b])
        start = b
        rec = jnp.argmax(mean_scores(state, x0))
        wrong.append(rec != jnp.argmax(mu))
        regret.append(jnp.max(mu) - mu[rec])
    return jnp.stack(wrong), jnp.stack(regret)


def identification_error(
    key,
    env: Environment,
    agent: Agent,
    mean_scores,
    budgets,
    num_runs: int = 200,
    beta: float = 0.5,
    max_resamples: int = 4,
    chunk_size: int | None = None,
) -> BAIResult:
    """Probability of wrong identification of top-two TS with ``agent``'s posterior, per budget.

    Args:
        key: PRNG key; run r uses ``fold_in(key, r)`` (the same problems for every agent).
        env: a fixed-context environment (:func:`fixed_context_environment`).
        agent: a Thompson-sampling Agent (its ``act`` draws from its posterior).
        mean_scores: ``(state, x) -> (K,)`` posterior mean scores used for the recommendation.
        budgets: increasing positive ints T.
        num_runs: runs (vmapped in chunks of ``chunk_size``).
    Returns:
        BAIResult.
    """
    key = _checks.check_key(key)
    _check_options(beta, max_resamples)
    b = [int(v) for v in np.atleast_1d(budgets)]
    if not b or b[0] < 1 or any(v2 <= v1 for v1, v2 in zip(b, b[1:], strict=False)):
        raise ValueError(f"budgets: expected increasing positive integers, got {budgets!r}")
    if not isinstance(num_runs, int) or num_runs < 1:
        raise ValueError(f"num_runs: expected a positive integer, got {num_runs!r}")
    chunk = min(num_runs, chunk_size or num_runs)
    fn = jax.jit(jax.vmap(lambda k: _run(k, env, agent, mean_scores, tuple(b), beta, max_resamples)))
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_runs))
    start = time.perf_counter()
    wrong, regret = [], []
    for c in range(0, num_runs, chunk):
        part = keys[c : c + chunk]
        if part.shape[0] < chunk:  # pad the last chunk so one compiled shape serves all
            part = jnp.concatenate([part, keys[: chunk - part.shape[0]]])
        w, r = fn(part)
        n = min(chunk, num_runs - c)
        wrong.append(np.asarray(w)[:n])
        regret.append(np.asarray(r)[:n])
    seconds = time.perf_counter() - start
    wrong, regret = np.concatenate(wrong).astype(float), np.concatenate(regret)
    p = wrong.mean(0)
    se_r = regret.std(0, ddof=1) / np.sqrt(num_runs) if num_runs > 1 else np.zeros(len(b))
    return BAIResult(np.asarray(b), p, np.sqrt(p * (1 - p) / num_runs), regret.mean(0), se_r, num_runs, seconds)
