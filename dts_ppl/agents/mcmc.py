"""Thompson sampling from an MCMC posterior (the paper's Table 2 baseline): NUTS on the model.

Every ``refresh_every`` = m rounds the agent runs NumPyro's NUTS kernel on the joint posterior
p(psi, theta | H) of :class:`dts_ppl.ppl.model.BanditModel`, warm-started from the previous
refresh (chain position, adapted step size and diagonal mass matrix), with ``num_warmup``
adaptation steps and then m draws, ``thinning`` transitions apart. Round t acts greedily on
draw t mod m of the latest refresh: one posterior draw per round, at most m - 1 rounds stale.
Round 0 draws theta from the prior exactly.

The potential is the model's log density (``numpyro.infer.util.log_density``, so NUTS targets
the same model as :func:`dts_ppl.ppl.validate.run_nuts`) with the data entering through their
Gaussian sufficient statistics, -1/2 theta_a^T G_a theta_a + b_a^T theta_a per action, which is
the exact Gaussian log-likelihood up to a constant and costs O(K d^2) per gradient whatever t.
Gaussian rewards only.

The refresh sits behind ``lax.cond`` on the step counter. The counter does not depend on the
data, so under ``vmap`` over runs (``bandits.simulate``) it stays unbatched and the NUTS branch
runs only on refresh rounds. The chain's randomness: NUTS's own key, folded with the bits of
the latest reward at each refresh so that runs sharing ``init()`` get independent chains.

Cost per refresh: (num_warmup + m thinning) NUTS transitions, each up to 2^max_tree_depth
gradient evaluations of O((K + L) d^2).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc import HMCState, hmc
from numpyro.infer.hmc_util import HMCAdaptState
from numpyro.infer.util import log_density

from dts_ppl.agents.base import (
    Agent,
    AgentSpec,
    check_num_actions,
)
from dts_ppl.agents.guard import check_reward_bound, guarded_agent
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, Evidence, Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood
from dts_ppl.core.rows import write
from dts_ppl.ppl.model import BanditModel


class MCMCState(NamedTuple):
    """State of the MCMC Thompson-sampling agent.

    Attributes:
        evidence: per-action (G_a (K, d, d), b_a (K, d)).
        chain: NumPyro HMCState; ``chain.z`` = {"psi": (L, d_psi), "theta": (K, d)} is the
            warm start, ``chain.adapt_state`` the adapted step size and mass matrix.
        draws: (m, K, d) theta draws of the latest refresh.
        step: () number of updates.
        rejected: () int32 updates the guard rejected (:mod:`dts_ppl.agents.guard`).
    """

    evidence: Evidence
    chain: HMCState
    draws: jax.Array
    step: jax.Array
    rejected: jax.Array | int = 0


register_state(MCMCState, HMCState, HMCAdaptState)  # the chain's NamedTuples are NumPyro's


def posterior_potential(prior: DiffusionPrior, num_actions: int):
    """``gen(stats) -> potential(z)``: minus the log posterior density of z = {"psi", "theta"}.

    Args:
        prior: the diffusion prior.   num_actions: K.
    Returns:
        A potential-function generator for NumPyro's ``hmc(potential_fn_gen=...)``; ``stats`` is
        an ActionStats with G (K, d, d), b (K, d) (Gaussian rewards).
    """
    model = BanditModel(prior, num_actions)

    def gen(stats: ActionStats):
        def potential(z):
            log_prior, _ = log_density(model, (), {}, z)
            theta = z["theta"]
            quad = jnp.einsum("ki,kij,kj->", theta, stats.G, theta)
            return -(log_prior - 0.5 * quad + jnp.sum(stats.b * theta))

        return potential

    return gen


def _check_positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def mcmc_ts(
    prior: DiffusionPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    refresh_every: int = 10,
    num_warmup: int = 50,
    thinning: int = 1,
    max_tree_depth: int = 6,
    target_accept_prob: float = 0.8,
    seed: int = 0,
    reward_bound: float | None = None,
) -> Agent:
    """Thompson sampling with NUTS on the model every ``refresh_every`` rounds (module docstring).

    Args:
        prior: DiffusionPrior (any links; the potential uses the model's exact density).
        likelihood: ``Gaussian(scale)`` (default ``Gaussian(1.0)``); other rewards raise ValueError.
        num_actions: K.
        refresh_every: m, rounds between NUTS refreshes, and draws per refresh.
        num_warmup: adaptation transitions per refresh (warm-started).
        thinning: transitions between kept draws.
        max_tree_depth: NUTS's tree-depth cap (2^depth gradient evaluations at most).
        target_accept_prob: dual-averaging target.
        seed: the key of the prior draw that starts the chain.
        reward_bound: None, or the largest |reward| learnt from (larger: rejected and counted).
    Returns:
        Agent(init, act, update).
    """
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    if not isinstance(likelihood, Gaussian):
        raise ValueError(
            f"likelihood: MCMC-TS uses the Gaussian sufficient statistics; expected Gaussian, got {likelihood!r}"
        )
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    K = check_num_actions(num_actions)
    reward_bound = check_reward_bound(reward_bound)
    m = _check_positive("refresh_every", refresh_every)
    num_warmup = _check_positive("num_warmup", num_warmup, 0)
    thinning = _check_positive("thinning", thinning)
    max_tree_depth = _check_positive("max_tree_depth", max_tree_depth)
    if not 0 < target_accept_prob < 1:
        raise ValueError(f"target_accept_prob: expected a value in (0, 1), got {target_accept_prob!r}")
    d, dtype = prior.dim, prior.cov1.dtype
    conds = core.prior_conditionals(prior, K)
    init_kernel, sample_kernel = hmc(potential_fn_gen=posterior_potential(prior, K), algo="NUTS")
    settings = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)

    def start_chain(z, stats, key, step_size=1.0, inverse_mass_matrix=None):
        return init_kernel(z, num_warmup, step_size, inverse_mass_matrix, model_args=(stats,), rng_key=key, **settings)

    def transitions(chain, stats, n):
        def body(c, _):
            return sample_kernel(c, model_args=(stats,)), None

        return jax.lax.scan(body, chain, None, length=n)[0] if n else chain

    def refresh(chain: HMCState, stats: ActionStats, salt):
        key = jax.random.fold_in(chain.rng_key, salt)
        ad = chain.adapt_state
        chain = start_chain(chain.z, stats, key, ad.step_size, ad.inverse_mass_matrix)
        chain = transitions(chain, stats, num_warmup)

        def draw(c, _):
            c = transitions(c, stats, thinning)
            return c, c.z["theta"]

        return jax.lax.scan(draw, chain, None, length=m)

    def init() -> MCMCState:
        psi, theta = core.sample(jax.random.PRNGKey(seed), prior, conds)
        ev = likelihood.init_evidence(K, d, 1, dtype)
        chain = start_chain({"psi": psi, "theta": theta}, ev.stats, jax.random.PRNGKey(seed + 1))
        zero = jnp.zeros((), jnp.int32)
        return MCMCState(ev, chain, jnp.broadcast_to(theta, (m, K, d)), zero, zero)

    def score(key, state: MCMCState, x):
        theta = jax.lax.cond(
            state.step == 0,
            lambda: core.sample(key, prior, conds)[1],
            lambda: state.draws[state.step % m],
        )
        return theta @ x

    def refreshed(state: MCMCState, ev: Evidence, step, salt) -> MCMCState:
        chain, draws = jax.lax.cond(
            step % m == 1 % m,  # refresh after rounds 1, m + 1, 2m + 1, ...: draws cover the next m rounds
            lambda: refresh(state.chain, ev.stats, salt),
            lambda: (state.chain, state.draws),
        )
        return MCMCState(ev, chain, draws, step)

    def step(state: MCMCState, phi, g, y) -> MCMCState:
        proposal, _, _ = likelihood.propose_observation(state.evidence, phi.astype(dtype), g, y, 1)
        ev = write(state.evidence, proposal)  # a new array: the chain needs the whole new statistics
        salt = jax.lax.bitcast_convert_type(y.astype(jnp.float32), jnp.int32)
        return refreshed(state, ev, state.step + 1, salt)

    def step_batch(state: MCMCState, phi, g, y, ok) -> MCMCState:
        ev = likelihood.propose_observations(state.evidence, phi.astype(dtype), g, y, ok)
        n = jnp.sum(ok, dtype=jnp.int32)
        salt = jax.lax.bitcast_convert_type(jnp.sum(y).astype(jnp.float32), jnp.int32)
        # the draws cover the rounds after the batch: refresh now (step 1 mod m), then count the rows
        new = refreshed(state, ev, jnp.ones((), jnp.int32), salt)
        return new._replace(step=state.step + n)

    options = dict(
        refresh_every=m,
        num_warmup=num_warmup,
        thinning=thinning,
        max_tree_depth=max_tree_depth,
        target_accept_prob=target_accept_prob,
    )
    spec = AgentSpec(
        "mcmc_ts",
        K,
        d,
        prior.num_levels,
        False,
        likelihood.name,
        fingerprint=model_fingerprint(prior, likelihood, reward_bound=reward_bound, **options),
    )
    return guarded_agent(init, score, step, step_batch, spec, likelihood, reward_bound)
