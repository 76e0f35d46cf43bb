"""Exact joint Thompson sampling (oracle agent, small K): docs/math.md section 8.

The joint posterior of z = (psi_1..psi_L, theta_1..theta_K) starts at the joint-Gaussian oracle's
prior (:func:`dts_ppl.core.oracle.joint_posterior` with no data) and each Gaussian reward updates it
by one exact Kalman step (rank one, O(N^2) with N = L d_psi + K d). ``act`` samples the K
scores x^T theta_a jointly, N(x^T m_a, x^T C_ab x), in O(K^2 d^2 + K^3): the argmax needs
nothing else. Independent of the message passing of :mod:`dts_ppl.core.inference`, so it is a
reference for the dTS agent; linear priors and Gaussian rewards only.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import (
    Agent,
    AgentSpec,
    check_num_actions,
)
from dts_ppl.agents.guard import check_reward_bound, guarded_agent
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import oracle
from dts_ppl.core.likelihoods import Gaussian, empty_stats
from dts_ppl.core.linalg import psd_cholesky
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood


class JointState(NamedTuple):
    """mean (N,), cov (N, N) of z = (psi_1..psi_L, theta_1..theta_K); step () accepted updates;
    rejected () int32 updates the guard rejected."""

    mean: jax.Array
    cov: jax.Array
    step: jax.Array
    rejected: jax.Array | int = 0


register_state(JointState)


def exact_ts(
    prior: DiffusionPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    reward_bound: float | None = None,
) -> Agent:
    """Thompson sampling from the exact joint posterior (linear prior, Gaussian rewards).

    ``reward_bound``: None, or the largest |reward| learnt from (larger: rejected and counted).
    """
    reward_bound = check_reward_bound(reward_bound)
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    if not likelihood.is_exact:
        raise ValueError(f"likelihood: exact_ts needs Gaussian rewards, got {likelihood!r}")
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    if not prior.is_linear:
        raise ValueError("prior: exact_ts needs a linear diffusion prior (the joint is then Gaussian)")
    K = check_num_actions(num_actions)
    d = prior.dim
    offset = prior.num_levels * prior.latent_dim
    joint = oracle.joint_posterior(prior, empty_stats(K, d, prior.cov1.dtype))
    noise_var = likelihood.scale**2

    def init() -> JointState:
        return JointState(joint.mean, joint.cov, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def score(key, state: JointState, x):
        m = state.mean[offset:].reshape(K, d) @ x
        c = state.cov[offset:, offset:].reshape(K, d, K, d)
        s = jnp.einsum("i,aibj,j->ab", x, c, x)
        return m + psd_cholesky(s) @ jax.random.normal(key, (K,), m.dtype)

    def step(state: JointState, x, a, y) -> JointState:
        start = offset + a * d
        cols = jax.lax.dynamic_slice_in_dim(state.cov, start, d, axis=1)  # C[:, theta_a]
        mean_a = jax.lax.dynamic_slice_in_dim(state.mean, start, d)
        gain = cols @ x  # C h, with h = x in theta_a's block
        # x^T C x >= 0 in exact arithmetic; round-off must not push it below 0 (tiny noise_var)
        innovation_var = jnp.maximum(x @ jax.lax.dynamic_slice_in_dim(gain, start, d), 0.0) + noise_var
        mean = state.mean + gain * (y - x @ mean_a) / innovation_var
        cov = state.cov - jnp.outer(gain, gain) / innovation_var
        return JointState(mean, 0.5 * (cov + cov.T), state.step + 1)

    def step_batch(state: JointState, x, a, y, ok) -> JointState:
        """All rows at once: one block Kalman step on the theta blocks, O(N^2 K d + (K d)^3).

        With the rows' statistics (G_a, b_a) (``likelihood.statistics``) the posterior precision
        gains D = blockdiag(G_a) on theta = S^T z, so with C_t = S^T C S and M = (I + D C_t)^-1:
            mean' = mean + C S M (b - D S^T mean),   C' = C - C S M D S^T C
        (Woodbury, in a form valid for singular D). Rows without ``ok`` are sanitised zero rows.
        """
        stats = likelihood.statistics(x.astype(state.mean.dtype), a, y, K)
        D = jax.scipy.linalg.block_diag(*stats.G)  # (K d, K d)
        cs = state.cov[:, offset:]  # C S, (N, K d)
        m_inv = jnp.eye(K * d, dtype=D.dtype) + D @ cs[offset:]
        mean = state.mean + cs @ jnp.linalg.solve(m_inv, stats.b.reshape(-1) - D @ state.mean[offset:])
        cov = state.cov - cs @ jnp.linalg.solve(m_inv, D @ cs.T)
        return JointState(mean, 0.5 * (cov + cov.T), state.step + jnp.sum(ok, dtype=jnp.int32))

    spec = AgentSpec(
        "exact_ts",
        K,
        d,
        prior.num_levels,
        False,
        likelihood.name,
        fingerprint=model_fingerprint(prior, likelihood, reward_bound=reward_bound),
    )
    return guarded_agent(init, score, step, step_batch, spec, likelihood, reward_bound)
