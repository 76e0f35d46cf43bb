"""Diffusion Thompson sampling (dTS) with the incremental scheme of docs/math.md section 6.

Per round only the played action's statistics change, so ``update`` does
    O(d^3)    re-condition theta_a on its new (G_a, b_a) (:func:`dts_ppl.core.inference.condition`)
              and swap its message (Lambda_a, beta_a) in the running sums,
    O(P L d^3) re-run the latent chain with the core's upward pass
              (:func:`dts_ppl.core.inference.upward_pass`; P passes, iterated to convergence by
              default for nonlinear links; an affine chain runs collapsed to psi_1 by default,
              :func:`dts_ppl.core.inference.collapse_linear`, so L = 1 and P = 1),
and ``act`` does O(L d^2) to sample the chain plus one pass over the cached Shat_a to score
all K actions: since gain_a = Shat_a S_1^-1 (docs/math.md section 3), with v_a = Shat_a x,

    x^T theta_a | psi_1 ~ N(v_a^T S_1^-1 f_1(psi_1) + x^T muhat_a^0, x^T v_a)

(muhat_a^0 = Shat_a b_a, the conditional's shift), an exact draw of every action's score
given the sampled psi_1. Memory O(K d^2 + L d^2); nothing grows with t for Gaussian rewards.

:func:`hier_ts` is dTS on the one-level prior of the paper's HierTS-1 (docs/math.md section 8).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Annotated, Any, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents import batch as _batch
from dts_ppl.agents import refit as _refit
from dts_ppl.agents.base import (
    Agent,
    AgentSpec,
    check_glm_options,
    check_num_actions,
)
from dts_ppl.agents.guard import check_reward_bound, guarded_agent
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import forgetting
from dts_ppl.core import inference as core
from dts_ppl.core import linalg as _linalg
from dts_ppl.core import prng as _prng
from dts_ppl.core.likelihoods import Evidence, Gaussian, linear_predictor
from dts_ppl.core.linalg import psd_cholesky, psd_inv
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood
from dts_ppl.core.rows import Row


class DTSState(NamedTuple):
    """State of the dTS agent (M = K groups, or M = 1 with shared parameters).

    Attributes:
        evidence: per-group (G_g, b_g) (and the GLM history).
        theta_cov: (M, d, d) Shat_g, the covariance of theta_g given psi_1.
        theta_shift: (M, d) Shat_g b_g; E[theta_g | psi_1] = Shat_g S_1^-1 f_1(psi_1) + shift.
        evidence_sum: running sums over groups of the messages (Lambda_g, beta_g) that each
            group's evidence sends to u = f_1(psi_1): (d, d), (d,). An update swaps the played
            group's old term for its new one, both recomputed from its statistics in O(d^3)
            (storing the K per-group messages would cost a full-array copy per round on CPU,
            see :meth:`dts_ppl.core.likelihoods.Gaussian.add_observation`).
        latents: the chain psi_l | psi_{l+1}, Conditionals with (L, d_psi, d_psi) fields
            (sampling order, row 0 = psi_L).
        step: () number of updates.
        passes: () upward passes the last update (or init) ran (:func:`core.upward_pass`).
        converged: () whether that upward pass met its tolerance.
        rejected: () int32 number of updates rejected by the guard (non-finite context or
            reward, action outside [0, K)); the state is unchanged by them.
    """

    evidence: Evidence
    theta_cov: Annotated[jax.Array, "M d d"]
    theta_shift: Annotated[jax.Array, "M d"]
    evidence_sum: core.Message
    latents: core.Conditionals
    step: Annotated[jax.Array, ""]
    passes: Annotated[jax.Array, ""]
    converged: Annotated[jax.Array, ""]
    rejected: Annotated[jax.Array, ""] | int = 0


class DTSRefitState(NamedTuple):
    """A :class:`DTSState` with the online re-fit's ``hyper`` (:class:`dts_ppl.agents.refit.HyperState`).

    The state of ``dts(..., refit=Refit(...))``: the same fields, read the same way, plus the
    re-fit's statistics and current hyper-parameters.
    """

    evidence: Evidence
    theta_cov: Annotated[jax.Array, "M d d"]
    theta_shift: Annotated[jax.Array, "M d"]
    evidence_sum: core.Message
    latents: core.Conditionals
    step: Annotated[jax.Array, ""]
    passes: Annotated[jax.Array, ""]
    converged: Annotated[jax.Array, ""]
    rejected: Annotated[jax.Array, ""] | int = 0
    hyper: _refit.HyperState | None = None


register_state(DTSState, DTSRefitState)


def dts(
    prior: DiffusionPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    linearisation: str | None = core.DEFAULT_LINEARISATION,
    shared: bool = False,
    history: int = 5000,
    newton_steps: int = 3,
    tol: float = core.DEFAULT_TOL,
    max_passes: int = core.DEFAULT_MAX_PASSES,
    collapse: bool | None = None,
    reward_bound: float | None = None,
    discount: float = 1.0,
    refit: _refit.Refit | None = None,
    warm_start: bool | None = None,
) -> Agent:
    """The dTS agent for a diffusion prior.

    Args:
        prior: DiffusionPrior (linear, MLP or any links with ``linearise``).
        likelihood: reward model the agent assumes (default ``Gaussian(1.0)``); GLMs are
            Gaussianised around a warm-started Newton fit (see :mod:`dts_ppl.agents.base`), by
            default at the fit regularised at the prior's scale (``likelihood.for_prior``;
            ``Bernoulli(expansion="mle")`` is the paper's near-MLE point).
        num_actions: K.
        linearisation: for nonlinear links, "iterated" (re-linearised up to ``max_passes``
            passes per update, each O(L d^3), until the expansion points move less than
            ``tol``), "identity" (the paper) or "jacobian". None (default): the links' own rule
            (:func:`dts_ppl.core.inference.default_linearisation`; docs/defaults.md), "iterated"
            for MLP links and "identity" for DDPM links. Affine links are exact in one pass
            whatever this is.
        shared: one parameter theta (d,) for all actions; ``x`` is then (K, d) action features.
        history: GLM ring-buffer size (use >= the number of rounds for the full history).
        newton_steps: Newton steps per GLM update.
        tol, max_passes: convergence rule of the iterated pass (:func:`core.upward_pass`).
        collapse: run on :func:`core.collapse_linear` (the one-level prior of psi_1 and theta that
            an affine chain implies; the same posterior of every theta_a and of psi_1, at a cost
            per round that does not grow with L). None (default): True for affine chains with
            L >= 2 (kept off, with a RuntimeWarning, when psi_1's marginal covariance is not
            positive definite in the prior's dtype: an explosive chain whose marginal variances
            overflow), False otherwise; True with nonlinear links is an error. The state then holds
            psi_1's posterior as its one latent row; :func:`dts_posterior` rebuilds all L levels.
        reward_bound: None (default), or the largest |reward| the agent learns from: a larger
            finite reward is rejected and counted in ``state.rejected`` (:mod:`dts_ppl.agents.guard`).
        discount: gamma in (0, 1], exponential forgetting for drifting rewards
            (:mod:`dts_ppl.core.forgetting`): each accepted round every action's evidence is
            multiplied by gamma (a rejected round changes nothing), so an unplayed action relaxes
            to its conditional prior given psi_1; O(K d^3) per round. 1.0 (default): none.
        refit: None (default), or a :class:`dts_ppl.agents.Refit`: re-fit the noise scale and/or
            S_1's scale by empirical Bayes every ``refit.every`` rounds inside the update
            (:mod:`dts_ppl.agents.refit`; Gaussian rewards); the state is then a
            :class:`DTSRefitState` holding the fitted values.
        warm_start: the "iterated" rule on nonlinear links only: every update also runs the pass
            from the previous posterior's trajectory (:func:`core.plug_in_mean` of the state's
            latents) and keeps whichever of that end point and the cold start's (the prior mean
            trajectory) has the lower :func:`core.chain_objective` (``core.upward_pass(start=)``;
            continuation: the mode moves little per observation). None (default): True there;
            False: the cold start alone, the same posterior as ``DTSGuide`` on the same data.
            True with another rule or affine links is an error (there is one pass, nothing to start).

    Example:
        >>> import jax
        >>> from dts_ppl.experiments.synthetic import random_linear_prior
        >>> prior = random_linear_prior(jax.random.PRNGKey(0), 5, (5, 2))
        >>> agent = dts(prior, num_actions=10)
        >>> state = agent.init()
        >>> x = jax.numpy.ones(5) / 2
        >>> a, _ = agent.act(jax.random.PRNGKey(1), state, x)
        >>> state = agent.update(state, x, a, 1.0)
    """
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    K = check_num_actions(num_actions)
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    linearisation = core.resolve_linearisation(prior, linearisation)
    check_glm_options(likelihood, history, newton_steps)
    tol, max_passes = core.check_pass_options(tol, max_passes)
    reward_bound = check_reward_bound(reward_bound)
    discount = forgetting.check_discount(discount)
    forgetting.check_forgetting_likelihood(likelihood, discount)
    if refit is not None and forgetting.forgets(discount):
        raise ValueError("refit, discount: an online re-fit with forgetting is not supported; use one of them")
    if not likelihood.is_exact:
        likelihood = likelihood.for_prior(core.theta_prior_scale_cov(prior))
    if not isinstance(shared, bool):
        raise ValueError(f"shared: expected True or False, got {shared!r}")
    if collapse is not None and not isinstance(collapse, bool):
        raise ValueError(f"collapse: expected None, True or False, got {collapse!r}")
    if collapse and not prior.is_linear:
        raise ValueError("collapse: True needs affine links (DiffusionPrior.linear); nonlinear chains run in full")
    iterates = linearisation == "iterated" and not prior.is_linear
    if warm_start is not None and not isinstance(warm_start, bool):
        raise ValueError(f"warm_start: expected None, True or False, got {warm_start!r}")
    if warm_start and not iterates:
        raise ValueError(
            f"warm_start: True needs the 'iterated' rule on nonlinear links, got {linearisation!r}"
            f" on {'affine' if prior.is_linear else 'nonlinear'} links"
        )
    warm_start = iterates if warm_start is None else warm_start
    fingerprint = model_fingerprint(
        prior,
        likelihood,
        dict(history=history, newton_steps=newton_steps),
        linearisation=linearisation,
        shared=shared,
        tol=tol,
        max_passes=max_passes,
        collapse=collapse,
        reward_bound=reward_bound,
        **({"discount": discount} if forgetting.forgets(discount) else {}),
        **({} if refit is None else {"refit": repr(refit)}),
        **({"warm_start": False} if iterates and not warm_start else {}),
    )
    num_levels = prior.num_levels
    if collapse:
        prior = core.collapse_linear(prior)
    elif collapse is None and prior.is_linear and num_levels > 1:
        try:
            prior = core.collapse_linear(prior)
        except ValueError as e:  # psi_1's marginal covariance not representable in this dtype
            warnings.warn(f"dts: keeping the full {num_levels}-level chain ({e})", RuntimeWarning, stacklevel=2)
    d, dtype = prior.dim, prior.cov1.dtype
    M = 1 if shared else K
    prec1 = psd_inv(prior.cov1)  # S_1^-1
    # theta = f_1(psi_1) exactly (gain I, shift 0, scale 0): the chain draw's own f_1 gives the scores' u
    link_only = core.Conditionals(jnp.eye(d, dtype=dtype)[None], jnp.zeros((1, d), dtype), jnp.zeros((1, d, d), dtype))

    plan = core.upward_plan(prior, linearisation)  # the evidence-free half of the pass, once
    hyper_plan = None if refit is None else _refit.RefitPlan.build(refit, prior, likelihood, linearisation)
    State = DTSState if refit is None else DTSRefitState

    def round_terms(state):  # the likelihood and S_1^-1 of this round: the closure's, or the re-fit's
        if hyper_plan is None:
            return likelihood, prec1
        return hyper_plan.likelihood_of(state.hyper), state.hyper.prec1

    def chain(total: core.Message, previous: core.Conditionals | None = None) -> core.UpwardPass:
        # ``previous``: the latents of the state being updated (the warm start's trajectory)
        start = core.plug_in_mean(prior, previous) if warm_start and previous is not None else None
        return core.upward_pass(prior, total, linearisation, tol, max_passes, plan=plan, start=start)

    def init() -> DTSState:
        zero = core.Message(jnp.zeros((d, d), dtype), jnp.zeros(d, dtype))
        up = chain(zero)
        hyper = {} if hyper_plan is None else {"hyper": hyper_plan.init(M, prec1)}
        return State(
            evidence=likelihood.init_evidence(M, d, history, dtype),
            theta_cov=jnp.broadcast_to(prior.cov1, (M, d, d)),
            theta_shift=jnp.zeros((M, d), dtype),
            evidence_sum=zero,
            latents=up.latents,
            step=jnp.zeros((), jnp.int32),
            passes=up.passes,
            converged=up.converged,
            rejected=jnp.zeros((), jnp.int32),
            **hyper,
        )

    def score(key, state: DTSState, x):
        prec1 = round_terms(state)[1]
        k_chain, k_score = _prng.split(key)
        if shared:
            theta_cond = core.Conditionals(state.theta_cov @ prec1, state.theta_shift, psd_cholesky(state.theta_cov))
            _, theta = core.sample(k_chain, prior, core.DTSPosterior(state.latents, theta_cond))
            return linear_predictor(x, theta[0])
        _, f1 = core.sample(k_chain, prior, core.DTSPosterior(state.latents, link_only))
        u = prec1 @ f1[0]  # S_1^-1 f_1(psi_1)
        # v_a^T u and v_a^T x (v_a = Shat_a x) for every action, reading the K covariances once
        if d <= _linalg.SMALL_MAX_SIZE:  # the d^2 terms written out: one kernel with the draws
            x = x.astype(dtype)
            cov, shift = state.theta_cov, state.theta_shift
            ij = [(i, j) for i in range(d) for j in range(d)]
            mean = sum(cov[:, i, j] * (u[i] * x[j]) for i, j in ij) + sum(shift[:, i] * x[i] for i in range(d))
            var = sum(cov[:, i, j] * (x[i] * x[j]) for i, j in ij)
        else:  # one product: vec(Shat_a) against vec(u x^T) and vec(x x^T)
            outer = jnp.stack([jnp.outer(u, x).reshape(-1), jnp.outer(x, x).reshape(-1)], -1)
            mv = state.theta_cov.reshape(K, d * d) @ outer.astype(dtype)
            mean, var = mv[:, 0] + state.theta_shift @ x, mv[:, 1]
        sd = jnp.sqrt(jnp.maximum(var, 0.0))
        return mean + sd * _prng.normal(k_score, (K,), mean.dtype)

    def step(state: DTSState, phi, g, y) -> DTSState:
        lik, prec1 = round_terms(state)
        ev, old_stats, new_stats = lik.propose_observation(state.evidence, phi.astype(dtype), g, y, newton_steps)
        condition = partial(core.condition, prec1) if hyper_plan is None else hyper_plan.conditioner(state.hyper)
        # (Lambda_g, beta_g) before and after this round, as one batch of two conditions
        both = jax.tree.map(lambda o, n: jnp.stack([o, n]), tuple(old_stats), tuple(new_stats))
        conds, msgs = jax.vmap(condition)(*both)
        cond = jax.tree.map(lambda x: x[1], conds)
        total = jax.tree.map(lambda s, m: s + (m[1] - m[0]), state.evidence_sum, msgs)
        up = chain(total, state.latents)
        out = State(
            ev, Row(g, cond.cov), Row(g, cond.shift), total, up.latents, state.step + 1, up.passes, up.converged
        )
        if hyper_plan is None:
            return out
        return out._replace(hyper=hyper_plan.propose_row(state.hyper, phi.astype(dtype), g, y))

    def step_batch(state: DTSState, phi, g, y, ok) -> DTSState:
        lik, prec1 = round_terms(state)
        n, ev, idx, cond, delta = _batch.conjugate_rows(lik, prec1, state.evidence, phi, g, y, ok)
        total = jax.tree.map(jnp.add, state.evidence_sum, delta)
        up = chain(total, state.latents)
        out = State(
            ev, Row(idx, cond.cov), Row(idx, cond.shift), total, up.latents, state.step + n, up.passes, up.converged
        )
        if hyper_plan is None:
            return out
        return out._replace(hyper=hyper_plan.propose_rows(state.hyper, phi.astype(dtype), g, y, ok))

    def rebuild(state: DTSRefitState, hyper: _refit.HyperState, post) -> DTSRefitState:
        """The state with ``hyper``, every group's conditional ``post`` and the chain re-run (the re-fit)."""
        up = chain(post.evidence, state.latents)
        return state._replace(
            evidence=state.evidence._replace(stats=post.stats),
            theta_cov=post.cov,
            theta_shift=post.shift,
            evidence_sum=post.evidence,
            latents=up.latents,
            passes=up.passes,
            converged=up.converged,
            hyper=hyper,
        )

    if forgetting.forgets(discount):  # every group decays each round: re-condition all, re-sum the messages

        def step(state: DTSState, phi, g, y) -> DTSState:
            ev, cond, total = forgetting.observe(
                likelihood, prec1, state.evidence, phi.astype(dtype), g, y, newton_steps, discount
            )
            up = chain(total, state.latents)
            return DTSState(ev, cond.cov, cond.shift, total, up.latents, state.step + 1, up.passes, up.converged)

        def step_batch(state: DTSState, phi, g, y, ok) -> DTSState:
            n, ev, cond, total = forgetting.observe_rows(
                likelihood, prec1, state.evidence, phi.astype(dtype), g, y, ok, discount
            )
            up = chain(total, state.latents)
            return DTSState(ev, cond.cov, cond.shift, total, up.latents, state.step + n, up.passes, up.converged)

    def forget_groups(state: DTSState, groups, valid) -> DTSState:
        # the messages of ``groups`` (m,) where ``valid`` (m,), recomputed from their statistics as
        # ``step`` does, leave the latents' evidence; the chain is re-run (catalogue retirement)
        G, b = state.evidence.stats
        _, msg = jax.vmap(core.condition, (None, 0, 0))(prec1, G[groups], b[groups])
        w = jnp.asarray(valid, dtype)
        total = core.Message(state.evidence_sum.G - jnp.einsum("m,mij->ij", w, msg.G), state.evidence_sum.b - w @ msg.b)
        up = chain(total, state.latents)
        return state._replace(evidence_sum=total, latents=up.latents, passes=up.passes, converged=up.converged)

    spec = AgentSpec("dts", K, d, num_levels, shared, likelihood.name, fingerprint=fingerprint)
    agent = guarded_agent(init, score, step, step_batch, spec, likelihood, reward_bound)
    if hyper_plan is not None:
        return _refit.with_refit(agent, hyper_plan, rebuild)
    return agent._replace(forget_groups=None if shared else forget_groups)


def dts_posterior(prior: DiffusionPrior, state: DTSState) -> core.DTSPosterior:
    """The posterior a dTS state encodes, as the core's DTSPosterior (gain_a = Shat_a S_1^-1).

    A state of a collapsed agent (``dts(..., collapse=None)`` on an affine chain) stores only
    psi_1's row; the L levels are rebuilt here from its evidence sum with the core's upward pass
    (exact, O(L d^3), once).
    """
    hyper = getattr(state, "hyper", None)  # a re-fitting agent's S_1 is the fitted one
    prec1 = psd_inv(prior.cov1) if hyper is None else hyper.prec1
    theta = core.Conditionals(state.theta_cov @ prec1, state.theta_shift, psd_cholesky(state.theta_cov))
    latents = state.latents
    if latents.shift.shape[0] != prior.num_levels:
        if not prior.is_linear or latents.shift.shape[0] != 1:
            raise ValueError(
                f"state: holds {latents.shift.shape[0]} latent rows, the prior has L = {prior.num_levels} levels"
            )
        latents = core.upward_pass(prior, state.evidence_sum).latents
    return core.DTSPosterior(latents, theta)


# ------------------------------------------------------------------------------------ HierTS


def hierarchical_prior(prior: DiffusionPrior, jitter: float = 1e-4) -> DiffusionPrior:
    """The paper's HierTS-1 prior (docs/math.md section 8) as a one-level linear diffusion prior.

    theta_a = m + h + e_a with h ~ N(0, B_L S_{L+1} B_L^T) shared by all actions and
    e_a ~ N(0, S_1 + sum_{l<L} B_l S_{l+1} B_l^T) per action, B_l = W_1 ... W_l, m the prior
    mean of theta. B_L S_{L+1} B_L^T is singular when W_L has zeroed columns: ``jitter`` times
    its mean diagonal is added (h then has a tiny variance in those directions).
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    if not prior.is_linear:
        raise ValueError("prior: HierTS-1 needs a linear diffusion prior (DiffusionPrior.linear)")
    L, d = prior.num_levels, prior.dim
    dtype = prior.cov1.dtype
    own = prior.cov1
    B = prior.link1.weight
    for level in range(1, L):
        own = own + B @ prior.covs[level - 1] @ B.T
        B = B @ prior.link(level + 1).weight
    top = B @ prior.covs[L - 1] @ B.T
    top = 0.5 * (top + top.T)
    top = top + jitter * (jnp.trace(top) / d + 1e-12) * jnp.eye(d, dtype=dtype)
    mean = core.theta_prior_moments(prior)[0]
    return DiffusionPrior.linear([jnp.eye(d, dtype=dtype)], [0.5 * (own + own.T), top], offsets=[mean])


def hier_ts(
    prior: DiffusionPrior, likelihood: Likelihood | None = None, num_actions: int | None = None, **kwargs: Any
) -> Agent:
    """HierTS-1 (Hong et al. 2022, as the paper ran it): dTS on :func:`hierarchical_prior`."""
    agent = dts(hierarchical_prior(prior), likelihood, num_actions, **kwargs)
    return agent._replace(spec=agent.spec._replace(kind="hier_ts", num_levels=prior.num_levels))
