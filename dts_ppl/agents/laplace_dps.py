"""LaplaceDPS / DiffTS: posterior sampling with a diffusion prior by stage-wise Laplace approximations.

The method of Kveton, Oreshkin, Park, Deshmukh and Song, "Online posterior sampling with a
diffusion prior" (NeurIPS 2024, arXiv 2410.03919), written here from the paper's description on
the package's chain (:class:`dts_ppl.core.prior.DiffusionPrior`; no code of the authors is
public). One parameter theta (d,) is shared by all actions (the paper's setting); ``x`` is the
(K, d) matrix of action features and the reward of action a has mean x_a^T theta.

The reverse chain is sampled top-down, psi_L, ..., psi_1, theta. At every stage the variable s
(a latent psi_l, or theta) has the diffusion model's Gaussian conditional N(f(parent), S) given
the sampled parent, and that Gaussian is multiplied by the evidence h "diffused" to the stage:
the likelihood of the history written as a function of s through an affine evidence map
theta ~ A s + c. The stage posterior is then the Laplace approximation of

    N(s; f(parent), S) * p(h | theta = A s + c),

a product of two Gaussians for Gaussian rewards (the conditional's precision plus A^T G A, the
core's :func:`dts_ppl.core.inference.condition` after :func:`dts_ppl.core.inference.pull_back`),
and an IRLS (Newton) fit mixing prior and evidence for GLM rewards, computed at sampling time
from the sampled parent. The key difference from dTS (:mod:`dts_ppl.agents.dts`): dTS pushes the
evidence up the chain in closed form (each level's message accounts for the noise of every level
below it); LaplaceDPS conditions each stage on the evidence mapped to it directly.

Choices the paper leaves open (or that the package's chain forces), stated:

1. Evidence map (``evidence=``).
   - "diffused" (default, the paper's): the evidence about psi_l is the likelihood at
     theta = psi_l / sqrt(abar_l) -- the forward process's mean scaling inverted, its noise
     dropped. On the package's DDPM links (standardised latents, f_1 de-standardises) this is
     A_l = diag(out_scale_1) / sqrt(abar_l), c_l = out_shift_1, with abar_l = prod_{k<=l} alpha_k
     read off the links (alpha_k = 1 / x_coef_k^2). For links without a DDPM schedule (affine,
     MLP) the analogue is the composed mean map theta ~ f_1(f_2(... f_l(psi_l))) linearised at
     the prior mean trajectory (exact mean map for affine links), noise dropped likewise.
     Not the exact posterior on an affine chain: dropping the noise below a stage over-weights
     the evidence there (measured in docs/shapes.md); it is asymptotically consistent.
   - "propagated": the evidence about psi_l is its exact marginal likelihood through the
     chain below, as Gaussian messages through the links' Jacobian at the prior mean
     (:func:`dts_ppl.core.inference.latent_posteriors`). Exact on an affine chain with Gaussian
     rewards; there it coincides with the dTS posterior (the difference is only in how the
     stages would be approximated for nonlinear links and GLMs).
2. theta's own stage has A = I, c = 0 (abar_0 = 1): the exact conditional given psi_1.
3. The top stage uses the chain's top prior N(0, S_{L+1}) as the paper's p(s_T) = N(0, I).
4. GLM rewards: ``newton_steps`` undamped Newton (IRLS) steps per stage, started at the
   stage's prior mean f(parent), on the full history ring buffer (``history`` rows); the draw is
   N(mode, H^-1) with H the Hessian at the final iterate. Gaussian rewards need no iteration
   (the Laplace approximation of a Gaussian is exact), and their stage posteriors do not depend
   on the parent's value, so they are computed once per update (O(L d^3)) and sampled in O(L d^2).
5. The paper's score-based alternatives (DPS) and per-action parameters are not defined by the
   method and are not offered (``shared=True`` only).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.base import Agent, AgentSpec, check_glm_options, check_num_actions
from dts_ppl.agents.guard import check_reward_bound, guarded_agent
from dts_ppl.agents.registry import model_fingerprint, register_state
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Evidence, Gaussian, linear_predictor
from dts_ppl.core.linalg import psd_cholesky, psd_inv, symmetrise
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood

#: The evidence maps :func:`laplace_dps` offers (module docstring, choice 1).
EVIDENCE_MAPS = ("diffused", "propagated")


class LaplaceDPSState(NamedTuple):
    """State of the LaplaceDPS agent (one shared parameter).

    Attributes:
        evidence: the group's (G, b) (1, d, d), (1, d) (and the GLM history).
        latents: Gaussian-reward stage posteriors psi_l | psi_{l+1}, Conditionals with
            (L, d_psi, d_psi), (L, d_psi), (L, d_psi, d_psi) fields (sampling order); for GLM
            rewards the prior's conditionals (the stages are fitted at sampling time).
        theta: theta | psi_1, Conditionals with (1, d, d), (1, d), (1, d, d) fields.
        step: () number of updates.
        rejected: () int32 rounds rejected by the guard.
    """

    evidence: Evidence
    latents: core.Conditionals
    theta: core.Conditionals
    step: Annotated[jax.Array, ""]
    rejected: Annotated[jax.Array, ""] | int = 0


register_state(LaplaceDPSState)


def check_evidence_map(evidence: str) -> str:
    """``evidence`` if it is one of :data:`EVIDENCE_MAPS` (ValueError otherwise)."""
    if evidence not in EVIDENCE_MAPS:
        raise ValueError(f"evidence: expected one of {', '.join(EVIDENCE_MAPS)}, got {evidence!r}")
    return evidence


def diffused_maps(prior: DiffusionPrior) -> tuple[jax.Array, jax.Array]:
    """The paper's evidence maps theta ~ A_i psi + c_i for every latent row (module docstring, choice 1).

    Args:
        prior: DiffusionPrior with dim d, latent_dim d_psi, L levels.
    Returns:
        A (L, d, d_psi) and c (L, d), sampling order (row 0 = psi_L).
    """
    L, dtype = prior.num_levels, prior.cov1.dtype
    if hasattr(prior.link1, "x_coef"):  # a DDPM schedule: theta = de-standardised psi_l / sqrt(abar_l)
        coefs = prior.link1.x_coef[None]
        if prior.links is not None:
            coefs = jnp.concatenate([coefs, prior.links.x_coef])
        abar = jnp.cumprod(1.0 / coefs.astype(dtype) ** 2)  # abar_1..abar_L
        scale = 1.0 / jnp.sqrt(jnp.flip(abar))  # row i is psi_{L-i}
        A = scale[:, None, None] * jnp.diag(prior.link1.out_scale.astype(dtype))[None]
        return A, jnp.broadcast_to(prior.link1.out_shift.astype(dtype), (L, prior.dim))
    lin = core.linearise(prior, "jacobian")

    def step(carry, xs):  # bottom row first: carry is theta ~ A_i psi_i + c_i for this row i
        a_row, c_row = carry
        w, c = xs  # psi_i ~ w psi_{i-1} + c, the link from the row above (zero at row 0, unused)
        return (a_row @ w, a_row @ c + c_row), (a_row, c_row)

    _, (A, c) = jax.lax.scan(step, (lin.w1, lin.c1), (lin.w, lin.c), reverse=True)
    return A, c


def stage_posteriors(
    prior: DiffusionPrior, G: jax.Array, b: jax.Array, evidence: str = "diffused"
) -> core.DTSPosterior:
    """Every stage's Laplace posterior for Gaussian evidence exp(-theta^T G theta / 2 + b^T theta).

    Args:
        prior: DiffusionPrior with dim d, latent_dim d_psi, L levels.
        G: (d, d), b: (d,) the history's precision-form evidence about the shared theta.
        evidence: "diffused" or "propagated" (module docstring, choice 1).
    Returns:
        DTSPosterior with latents (L rows, sampling order) and theta (one row): sample it with
        :func:`dts_ppl.core.inference.sample`; on an affine chain its moments are
        :func:`dts_ppl.core.inference.moments` with the Jacobian linearisation.
    """
    evidence = check_evidence_map(evidence)
    prec1 = psd_inv(prior.cov1)
    theta, up = core.condition(prec1, G, b)
    theta = jax.tree.map(lambda t: t[None], theta)
    if evidence == "propagated":
        return core.DTSPosterior(core.latent_posteriors(prior, up, core.linearise(prior, "jacobian")), theta)
    A, c = diffused_maps(prior)
    precs = psd_inv(core.chain_rows(prior).cov)

    def one(prec, a, c):
        msg = core.pull_back(core.Message(G, b), a, c)
        return core.condition(prec, msg.G, msg.b)[0]

    return core.DTSPosterior(jax.vmap(one)(precs, A, c), theta)


def _irls_stage(likelihood, hist, weights, prior_mean, prec, a, c, newton_steps, key):
    """One GLM stage: Newton on -log N(s; m, Q^-1) - sum_i w_i log p(y_i | x_i^T (a s + c)), then a draw."""
    X = hist.X @ a  # rows in the stage's coordinates

    def hessian(s):
        eta = hist.X @ c + X @ s
        curv = weights * likelihood._curvature(eta)
        return symmetrise(prec + (X * curv[:, None]).T @ X), eta

    def newton(s, _):
        H, eta = hessian(s)
        grad = prec @ (s - prior_mean) + X.T @ (weights * (likelihood.mean(eta) - hist.y))
        return s - jnp.linalg.solve(H, grad), None

    mode, _ = jax.lax.scan(newton, prior_mean, None, length=newton_steps)
    H, _ = hessian(mode)
    z = jax.random.normal(key, mode.shape, mode.dtype)
    chol = psd_cholesky(H)
    return mode + jax.scipy.linalg.solve_triangular(chol.T, z, lower=False)


def laplace_dps(
    prior: DiffusionPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    evidence: str = "diffused",
    shared: bool = True,
    history: int = 5000,
    newton_steps: int = 3,
    reward_bound: float | None = None,
) -> Agent:
    """The LaplaceDPS (DiffTS) agent of Kveton et al. (2024) on a diffusion prior, one shared theta.

    Args:
        prior: DiffusionPrior (trained DDPM, affine or MLP links).
        likelihood: reward model (default ``Gaussian(1.0)``); GLMs (Bernoulli, Poisson) are fitted
            per stage by IRLS at sampling time (module docstring, choice 4).
        num_actions: K.
        evidence: "diffused" (the paper's evidence map) or "propagated" (exact on affine chains).
        shared: must be True: the method defines one parameter shared by all actions; ``x`` is
            the (K, d) action features.
        history: GLM ring-buffer size (the IRLS fits use these rows).
        newton_steps: IRLS steps per stage for GLM rewards.
        reward_bound: None, or the largest |reward| learned from (:mod:`dts_ppl.agents.guard`).
    Returns:
        Agent(init, act, update, update_batch, spec) with state :class:`LaplaceDPSState`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from dts_ppl.core.prior import DiffusionPrior
        >>> prior = DiffusionPrior.linear([jnp.eye(2), jnp.eye(2)], [0.5, 0.5, 1.0])
        >>> agent = laplace_dps(prior, num_actions=3)
        >>> x = jnp.eye(3, 2)
        >>> a, _ = agent.act(jax.random.PRNGKey(0), agent.init(), x)
        >>> state = agent.update(agent.init(), x, a, 1.0)
    """
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    K = check_num_actions(num_actions)
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    evidence = check_evidence_map(evidence)
    check_glm_options(likelihood, history, newton_steps)
    reward_bound = check_reward_bound(reward_bound)
    if shared is not True:
        raise ValueError("shared: LaplaceDPS defines one parameter shared by all actions; expected True")
    if not likelihood.is_exact and evidence != "diffused":
        raise ValueError("evidence: GLM rewards are fitted per stage with the 'diffused' map only")
    fingerprint = model_fingerprint(
        prior,
        likelihood,
        dict(history=history, newton_steps=newton_steps),
        evidence=evidence,
        reward_bound=reward_bound,
    )
    d, dtype = prior.dim, prior.cov1.dtype
    prior_post = core.prior_conditionals(prior, 1)
    A, c = diffused_maps(prior)
    rows = core.chain_rows(prior)
    precs = psd_inv(rows.cov)
    prec1 = psd_inv(prior.cov1)
    exact = likelihood.is_exact

    def posterior_of(ev: Evidence) -> core.DTSPosterior:
        if not exact:
            return prior_post
        return stage_posteriors(prior, ev.stats.G[0], ev.stats.b[0], evidence)

    def init() -> LaplaceDPSState:
        ev = likelihood.init_evidence(1, d, history, dtype)
        post = posterior_of(ev)
        zero = jnp.zeros((), jnp.int32)
        return LaplaceDPSState(ev, post.latents, post.theta, zero, zero)

    def glm_draw(key, hist):
        weights = (hist.group >= 0).astype(dtype)
        keys = jax.random.split(key, prior.num_levels + 1)
        links = rows.parent_link

        def step(parent, xs):
            k, prec, a, cc, is_top, link = xs
            m = core.parent_means(prior, parent, is_top, link)
            s = _irls_stage(likelihood, hist, weights, m, prec, a, cc, newton_steps, k)
            return s, None

        top = jnp.zeros(prior.latent_dim, dtype)
        psi1, _ = jax.lax.scan(step, top, (keys[:-1], precs, A, c, rows.is_top, links))
        eye = jnp.eye(d, dtype=dtype)
        return _irls_stage(
            likelihood, hist, weights, prior.link1(psi1), prec1, eye, jnp.zeros(d, dtype), newton_steps, keys[-1]
        )

    def score(key, state: LaplaceDPSState, x):
        if exact:
            _, theta = core.sample(key, prior, core.DTSPosterior(state.latents, state.theta))
            return linear_predictor(x, theta[0])
        return linear_predictor(x, glm_draw(key, state.evidence.history))

    def step(state: LaplaceDPSState, phi, g, y) -> LaplaceDPSState:
        ev, _, new = likelihood.propose_observation(state.evidence, phi.astype(dtype), g, y, newton_steps)
        post = stage_posteriors(prior, *new, evidence) if exact else prior_post
        return LaplaceDPSState(ev, post.latents, post.theta, state.step + 1, state.rejected)

    def step_batch(state: LaplaceDPSState, phi, g, y, ok) -> LaplaceDPSState:
        ev = likelihood.propose_observations(state.evidence, phi.astype(dtype), g, y, ok)
        post = posterior_of(ev)
        n = jnp.sum(ok, dtype=jnp.int32)
        return LaplaceDPSState(ev, post.latents, post.theta, state.step + n, state.rejected)

    spec = AgentSpec("laplace_dps", K, d, prior.num_levels, True, likelihood.name, fingerprint=fingerprint)
    return guarded_agent(init, score, step, step_batch, spec, likelihood, reward_bound)
