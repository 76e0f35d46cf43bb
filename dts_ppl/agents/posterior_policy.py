"""Optimistic policies on the posteriors of dTS, HierTS and LinTS: Bayes-UCB and UCB.

Thompson sampling is one way to act on a posterior; these factories act on the *same* posterior
(the same ``init``, ``update`` and ``update_batch``, the same state) with an upper bound instead,
so a comparison of, say, ``dts`` and ``lin_ts`` under one policy separates the prior from the
policy. For each action the score is a functional of the posterior of its mean reward's linear
predictor eta_a = x^T theta_a (per-action parameters) or x_a^T theta (shared parameter):

- ``"bayes_ucb"`` (Kaufmann, Cappe and Garivier 2012): the (1 - 1/t) quantile of eta_a's
  posterior, t = max(step + 1, 2) (``step``: accepted updates). With a monotone link (logistic,
  log) this is the same action as the quantile of the mean reward.
- ``"ucb"``: LinUCB's width rule on the posterior's mean and sd, E[eta_a] + sqrt(2 log t) sd(eta_a)
  (``alpha``: a fixed width instead), as :func:`dts_ppl.agents.lin_ucb` does on its own Gaussian.
- ``"bayes_ucb_gaussian"``: the (1 - 1/t) quantile of the Gaussian with eta_a's posterior mean
  and variance, E[eta_a] + Phi^-1(1 - 1/t) sd(eta_a). The same as ``"bayes_ucb"`` where eta_a's
  posterior is Gaussian (LinTS, affine chains); on a nonlinear chain it replaces the mixture's
  Monte-Carlo tail (which saturates at the largest of the ``num_draws`` components once
  1/t < 1/num_draws) by the moment-matched Gaussian's.
- ``"optimistic_ts"`` (optimistic Thompson sampling, May, Korda, Lee and Leslie 2012): the base
  agent's own Thompson draw of every eta_a (its ``score``, :class:`dts_ppl.agents.Agent`: the
  scores its ``act`` takes the argmax of, with the same key), raised to the posterior mean where
  it falls below: score max(eta_a draw, E[eta_a]). Random through the draw (propensities by
  Monte Carlo).

How eta_a's posterior is obtained (no formula is repeated here; the state is read with the
core's and the agents' functions, and the Thompson draw is the base agent's ``score``):

- LinTS (:func:`dts_ppl.agents.lin_ts`): its Gaussian N(mean_a, cov_a), exactly, read with the
  agent's own :func:`~dts_ppl.agents.linear.predictor_moments`.
- dTS and HierTS on an affine chain: theta_a's marginal posterior is Gaussian. Integrating psi_1
  out of theta_a | psi_1 ~ N(gain_a f_1(psi_1) + shift_a, Shat_a) gives mean
  gain_a E[f_1(psi_1)] + shift_a and covariance Shat_a + gain_a W_1 Cov(psi_1) W_1^T gain_a^T,
  computed by :func:`dts_ppl.core.inference.moments` on :func:`dts_ppl.agents.dts_posterior`
  (exact; on the collapsed one-level chain when the agent runs collapsed). The policy is then
  deterministic (``spec.deterministic``).
- dTS on a nonlinear chain (MLP or DDPM links): psi_1's posterior is not Gaussian. ``num_draws``
  draws psi_1^(m) of the dTS posterior chain (:func:`dts_ppl.core.inference.sample`, the key of
  ``act``) make eta_a's posterior the equal-weight mixture of the exact conditionals
  N(x^T (gain_a f_1(psi_1^(m)) + shift_a), x^T Shat_a x). Bayes-UCB takes that mixture's
  (1 - 1/t) quantile (bisection on its CDF, 40 halvings); UCB takes its mean and sd (law of total
  variance). The Monte-Carlo error shrinks as 1/sqrt(num_draws); the policy is random through
  the draws, so its propensities are Monte-Carlo estimates (:func:`dts_ppl.agents.propensities`).
  Optimistic TS takes the dTS agent's own draw (psi_1 from the chain, then eta_a from the exact
  conditional given it; the first half of the split key) and the mean of the ``num_draws``
  mixture components (the second half) as E[eta_a].

Per round: LinTS O(K d^2); affine dTS/HierTS O(K d^3) (theta_a's marginal covariance); nonlinear
dTS O(num_draws (L d_psi^2 + K d)) + O(K d^2).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

from dts_ppl.agents.base import Agent, check_context, check_key, state_checker
from dts_ppl.agents.dts import DTSState, dts, dts_posterior, hier_ts, hierarchical_prior
from dts_ppl.agents.guard import guarded_act, jitted_score
from dts_ppl.agents.linear import GaussianPrior, LinearState, _ucb, lin_ts, predictor_moments
from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core import prng as _prng
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood

__all__ = ["POLICIES", "bayes_ucb_level", "mixture_quantile", "posterior_policy", "predictor_moments"]

#: The policies :func:`posterior_policy` builds.
POLICIES = ("bayes_ucb", "bayes_ucb_gaussian", "ucb", "optimistic_ts")
_BASES = ("dts", "hier_ts", "lin_ts")
_BISECTIONS = 40


def bayes_ucb_level(step) -> jax.Array:
    """Bayes-UCB's quantile level 1 - 1/t with t = max(step + 1, 2), () (0.5 before any update)."""
    t = jnp.maximum(jnp.asarray(step) + 1, 2)
    return 1.0 - 1.0 / t


def mixture_quantile(means: jax.Array, sd: jax.Array, level) -> jax.Array:
    """The ``level`` quantile of the equal-weight Gaussian mixture (1/M) sum_m N(means[m], sd^2), per column.

    Args:
        means: (M, K) component means.   sd: (K,) the common sd of column k's components (>= 0).
        level: () in (0, 1).
    Returns:
        (K,) quantiles, by bisection on the mixture CDF between min_m means + sd z and
        max_m means + sd z (z the standard normal quantile of ``level``), where the CDF is
        <= level and >= level; accurate to 2^-40 of that bracket.
    """
    z = ndtri(jnp.asarray(level, means.dtype))
    lo = jnp.min(means, 0) + sd * z
    hi = jnp.max(means, 0) + sd * z
    tiny = jnp.finfo(means.dtype).tiny
    scale = jnp.maximum(sd, tiny)

    def cdf(q):
        return jnp.mean(ndtr((q[None] - means) / scale[None]), 0)

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < level
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, halve, (lo, hi))
    return 0.5 * (lo + hi)


def _gaussian_score(policy, alpha):
    ucb = _ucb(alpha)  # LinUCB's own rule: mean + sqrt(2 log t) sd (or alpha sd)

    def score(mean, var, state):
        sd = jnp.sqrt(jnp.maximum(var, 0.0))
        if policy == "ucb":
            return ucb(None, state, mean, sd)
        return mean + ndtri(bayes_ucb_level(state.step).astype(mean.dtype)) * sd

    return score


def _linear_score(policy, alpha, shared, draw):
    """``draw``: the LinTS agent's ``score`` (its Thompson draw)."""
    gaussian = _gaussian_score(policy, alpha)

    def score(key, state: LinearState, x):
        mean, var = predictor_moments(x, state.mean, state.cov, shared)
        if policy == "optimistic_ts":
            return jnp.maximum(draw(key, state, x), mean)
        return gaussian(mean, var, state)

    return score


def _affine_dts_score(prior: DiffusionPrior, policy, alpha, shared, draw):
    """``draw``: the dTS (HierTS) agent's ``score`` (its Thompson draw)."""
    gaussian = _gaussian_score(policy, alpha)
    try:
        collapsed = core.collapse_linear(prior) if prior.num_levels > 1 else prior
    except ValueError:  # the agent then keeps the full chain too (dts's collapse rule)
        collapsed = prior

    def score(key, state: DTSState, x):
        # the agent runs on the collapsed chain (one latent row) unless it kept the full one
        chain = collapsed if state.latents.shift.shape[0] == 1 else prior
        mo = core.moments(chain, dts_posterior(chain, state))
        mean, var = predictor_moments(x, mo.theta_mean, mo.theta_cov, shared)
        if policy == "optimistic_ts":
            return jnp.maximum(draw(key, state, x), mean)
        return gaussian(mean, var, state)

    return score


def _mixture(key, prior: DiffusionPrior, post: core.DTSPosterior, x, shared, num_draws):
    """eta_a's posterior as a mixture over psi_1 draws: component means (num_draws, K) and the common sd (K,)."""
    one_action = core.prior_conditionals(prior, 1).theta
    psi, _ = core.sample(key, prior, core.DTSPosterior(post.latents, one_action), (num_draws,))
    u = jax.vmap(prior.link1)(psi[:, -1])  # (num_draws, d): f_1(psi_1) per draw
    loc = jax.vmap(lambda ui: core.conditional_loc(post.theta, ui))(u)  # (num_draws, M, d)
    means = loc[:, 0] @ x.T if shared else jnp.einsum("mkd,d->mk", loc, x)  # (num_draws, K)
    _, var = predictor_moments(x, post.theta.shift, post.theta.cov, shared)  # x^T Shat_a x
    return means, jnp.sqrt(jnp.maximum(var, 0.0))


def _nonlinear_dts_score(prior: DiffusionPrior, policy, alpha, shared, num_draws, draw):
    """``draw``: the dTS agent's ``score`` (its Thompson draw)."""
    ucb = _ucb(alpha)

    def score(key, state: DTSState, x):
        post = dts_posterior(prior, state)
        if policy == "optimistic_ts":
            k_draw, k_mean = _prng.split(key)
            means, _ = _mixture(k_mean, prior, post, x, shared, num_draws)
            return jnp.maximum(draw(k_draw, state, x), jnp.mean(means, 0))
        means, sd = _mixture(key, prior, post, x, shared, num_draws)
        if policy == "bayes_ucb":
            return mixture_quantile(means, sd, bayes_ucb_level(state.step).astype(means.dtype))
        total = jnp.var(means, 0) + sd**2  # law of total variance over the psi_1 draws
        if policy == "bayes_ucb_gaussian":
            return jnp.mean(means, 0) + ndtri(bayes_ucb_level(state.step).astype(means.dtype)) * jnp.sqrt(total)
        return ucb(None, state, jnp.mean(means, 0), jnp.sqrt(total))

    return score


def posterior_policy(
    base: str,
    prior: DiffusionPrior | GaussianPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    policy: str = "bayes_ucb",
    alpha: float | None = None,
    num_draws: int = 64,
    **agent_kwargs: Any,
) -> Agent:
    """An agent that learns as ``base`` does and acts by an optimistic ``policy`` on its posterior.

    Args:
        base: "dts" (:func:`dts_ppl.agents.dts`), "hier_ts" (:func:`dts_ppl.agents.hier_ts`) or
            "lin_ts" (:func:`dts_ppl.agents.lin_ts`): the posterior (init, update, state).
        prior: the base's prior: a DiffusionPrior for "dts" and "hier_ts" (HierTS builds its
            one-level prior from it), a GaussianPrior for "lin_ts".
        likelihood: reward model (the base's default when None).   num_actions: K.
        policy: "bayes_ucb" (the (1 - 1/t) posterior quantile), "bayes_ucb_gaussian" (that of the
            moment-matched Gaussian), "ucb" (LinUCB's width on the
            posterior mean and sd) or "optimistic_ts" (a Thompson draw raised to the posterior
            mean); see the module docstring for how each posterior is read.
        alpha: with "ucb", a fixed width instead of sqrt(2 log t).
        num_draws: psi_1 draws per round for nonlinear dTS (ignored otherwise).
        **agent_kwargs: passed to the base factory (``shared``, ``history``, ``linearisation``, ...).
    Returns:
        Agent with the base's init, update, update_batch and state, the policy's ``act`` and
        ``score`` (the scores ``act`` argmaxes), and ``spec.kind`` "<base>_<policy>";
        ``spec.deterministic`` unless the base is a nonlinear dTS or the policy is "optimistic_ts".

    Example:
        >>> import jax
        >>> from dts_ppl.experiments.synthetic import random_linear_prior
        >>> prior = random_linear_prior(jax.random.PRNGKey(0), 5, (5, 2))
        >>> agent = posterior_policy("dts", prior, num_actions=10, policy="bayes_ucb")
        >>> a, info = agent.act(jax.random.PRNGKey(1), agent.init(), jax.numpy.ones(5) / 2)
    """
    if base not in _BASES:
        raise ValueError(f"base: expected one of {_BASES}, got {base!r}")
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {POLICIES}, got {policy!r}")
    _ucb(alpha)  # checks alpha (LinUCB's rule)
    num_draws = _checks.check_positive_int("num_draws", num_draws)
    factory = {"dts": dts, "hier_ts": hier_ts, "lin_ts": lin_ts}[base]
    agent = factory(prior, likelihood, num_actions, **agent_kwargs)
    shared = agent.spec.shared
    deterministic = policy != "optimistic_ts"
    if base == "lin_ts":
        score = _linear_score(policy, alpha, shared, agent.score)
    else:
        chain = hierarchical_prior(prior) if base == "hier_ts" else prior
        if chain.is_linear:
            score = _affine_dts_score(chain, policy, alpha, shared, agent.score)
        else:
            score = _nonlinear_dts_score(chain, policy, alpha, shared, num_draws, agent.score)
            deterministic = False
    K, d = agent.spec.num_actions, agent.spec.dim
    check_state = state_checker(agent.init)
    act = guarded_act(score, check_key, check_state, lambda x: check_context(x, K, d, shared))
    spec = agent.spec._replace(kind=f"{base}_{policy}", deterministic=deterministic)
    return agent._replace(act=act, spec=spec, score=jitted_score(score, check_state))
