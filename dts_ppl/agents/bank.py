"""Bank Thompson sampling: the exact posterior of an empirical prior (the prior-knowledge ceiling).

The prior is the empirical distribution of a bank of N samples theta^(1..N) (the pre-training
set, or many draws of the true prior). Its posterior after observations H_g of group g (an
action, or the shared parameter) puts weight

    w_g^(i)  proportional to  prod_{(x, y) in H_g} p(y | x^T theta^(i))

on sample i: self-normalised importance weights, exact for this prior and any likelihood
(Gaussian, Bernoulli, Poisson), so no Gaussianisation is involved. The agent keeps the
log-weights (M, N) and adds the played group's log-likelihood of the new reward to its row, O(N d)
per update; ``act`` draws one bank index per group from its weights, O(M N).

Effective sample size. ESS_g = (sum_i w_g^(i))^2 / sum_i (w_g^(i))^2 is kept per group. When it
falls below ``warn_ess`` the posterior rests on a handful of bank samples: it is still the exact
posterior of the empirical prior, but no longer a good picture of a continuous prior's posterior
(a bigger bank is needed). The agent then warns once (a RuntimeWarning, also from jitted code;
the state's ``min_ess`` keeps the smallest value).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.agents.base import (
    Agent,
    AgentSpec,
    check_num_actions,
)
from dts_ppl.agents.guard import check_reward_bound, guarded_agent
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.protocols import Likelihood
from dts_ppl.core.rows import Row


class BankState(NamedTuple):
    """Log importance weights (M, N) of the bank per group, their ESS (M,), the smallest ESS
    seen so far (), step () the number of updates (M = K, or 1 when shared) and rejected () int32
    the updates the guard rejected (:mod:`dts_ppl.agents.guard`)."""

    log_weights: jax.Array
    ess: jax.Array
    min_ess: jax.Array
    step: jax.Array
    rejected: jax.Array | int = 0


register_state(BankState)


def effective_sample_size(log_weights: jax.Array) -> jax.Array:
    """ESS (...,) of normalised weights from log-weights (..., N): (sum w)^2 / sum w^2."""
    w = jnp.exp(log_weights - jnp.max(log_weights, -1, keepdims=True))
    return jnp.sum(w, -1) ** 2 / jnp.sum(w**2, -1)


def bank_moments(bank: jax.Array, log_weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior mean (M, d) and covariance (M, d, d) of each group under weights (M, N) on the bank (N, d)."""
    w = jax.nn.softmax(log_weights, -1)
    mean = w @ bank
    centred = bank[None] - mean[:, None]
    return mean, jnp.einsum("mn,mni,mnj->mij", w, centred, centred)


def bank_mean_se(bank, log_weights) -> jax.Array:
    """Monte-Carlo s.e. (M, d) of :func:`bank_moments`'s mean as an estimate of a continuous
    prior's posterior mean when the bank holds i.i.d. draws of it (delta method:
    se^2 = sum_i w_i^2 (theta_i - mean)^2 with normalised w)."""
    w = jax.nn.softmax(log_weights, -1)
    mean = w @ bank
    return jnp.sqrt(jnp.einsum("mn,mni->mi", w**2, (bank[None] - mean[:, None]) ** 2))


def _collapse_warner(threshold):
    """A host callback that warns the first time it sees an ESS below ``threshold`` (once per agent)."""
    warned = []

    def warn(ess):
        low = float(np.min(np.asarray(ess)))
        if low < threshold and not warned:
            warned.append(low)
            warnings.warn(
                f"bank TS: the effective sample size fell to {low:.1f} (< warn_ess = {threshold:g}); the posterior "
                "rests on a few bank samples, so it no longer stands for a continuous prior's: use a larger bank",
                RuntimeWarning,
                stacklevel=2,
            )

    return warn


def bank_ts(
    bank: ArrayLike,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    shared: bool = False,
    warn_ess: float = 10.0,
    reward_bound: float | None = None,
) -> Agent:
    """Thompson sampling with the exact posterior of the bank's empirical prior.

    Args:
        bank: (N, d) samples of theta (each action's parameter, or the shared one).
        likelihood: reward model (default ``Gaussian(1.0)``): Gaussian, Bernoulli or Poisson.
        num_actions: K.
        shared: one parameter for all actions; ``x`` is then (K, d) action features.
        warn_ess: warn (once) when a group's ESS falls below this; 0 disables the check.
        reward_bound: None, or the largest |reward| learnt from (larger: rejected and counted).
    Returns:
        Agent with state :class:`BankState`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> agent = bank_ts(jax.random.normal(jax.random.PRNGKey(0), (1000, 2)), num_actions=3)
        >>> state = agent.update(agent.init(), jnp.ones(2), 1, 0.5)
        >>> float(state.ess[1]) < 1000.0 == float(state.ess[0])
        True
    """
    bank = _checks.as_array("bank", bank, ndim=2)
    _checks.check_finite("bank", bank)
    if bank.shape[0] < 1:
        raise ValueError("bank: expected at least one sample (row)")
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    if not hasattr(likelihood, "log_prob") or not hasattr(likelihood, "check_rewards"):
        raise ValueError(
            f"likelihood: expected a dts_ppl likelihood (Gaussian, Bernoulli, Poisson), got {likelihood!r}"
        )
    if not (np.isfinite(warn_ess) and warn_ess >= 0):
        raise ValueError(f"warn_ess: expected a non-negative number, got {warn_ess!r}")
    K = check_num_actions(num_actions)
    if not isinstance(shared, bool):
        raise ValueError(f"shared: expected True or False, got {shared!r}")
    reward_bound = check_reward_bound(reward_bound)
    N, d = bank.shape
    M = 1 if shared else K
    dtype = bank.dtype
    warn = _collapse_warner(float(warn_ess))

    def init() -> BankState:
        n = jnp.asarray(float(N), dtype)
        zero = jnp.zeros((), jnp.int32)
        return BankState(jnp.zeros((M, N), dtype), jnp.full((M,), n), n, zero, zero)

    def score(key, state: BankState, x):
        idx = jax.random.categorical(key, state.log_weights, axis=-1)  # (M,) one posterior draw per group
        theta = bank[idx]
        return x @ theta[0] if shared else theta @ x

    def step(state: BankState, phi, g, y) -> BankState:
        row = state.log_weights[g] + likelihood.log_prob(y, bank @ phi.astype(dtype))
        row = row - jnp.max(row)  # keep the log-weights bounded; normalisation is free
        ess_g = effective_sample_size(row)
        if warn_ess > 0:
            jax.debug.callback(warn, ess_g)
        return BankState(Row(g, row), Row(g, ess_g), jnp.minimum(state.min_ess, ess_g), state.step + 1)

    def step_batch(state: BankState, phi, g, y, ok) -> BankState:
        loglik = jnp.where(ok[:, None], likelihood.log_prob(y[:, None], phi.astype(dtype) @ bank.T), 0.0)  # (n, N)
        rows = state.log_weights + jax.ops.segment_sum(loglik, g, num_segments=M)
        rows = rows - jnp.max(rows, -1, keepdims=True)
        ess = effective_sample_size(rows)
        if warn_ess > 0:
            jax.debug.callback(warn, ess)
        return BankState(rows, ess, jnp.minimum(state.min_ess, jnp.min(ess)), state.step + jnp.sum(ok, dtype=jnp.int32))

    spec = AgentSpec(
        "bank_ts",
        K,
        d,
        0,
        shared,
        likelihood.name,
        fingerprint=model_fingerprint(bank, likelihood, shared=shared, reward_bound=reward_bound),
    )
    return guarded_agent(init, score, step, step_batch, spec, likelihood, reward_bound)
