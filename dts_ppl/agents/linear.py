"""Baselines with an independent Gaussian prior per action (docs/math.md section 8).

LinTS / GLM-TS sample every action's score from its own Gaussian posterior (per-action
parameters: the actions are independent, so one normal draw per score is exact); with one shared
parameter they draw one theta ~ N(mean, Sigma) and score x_a^T theta (scores jointly Gaussian
with covariance X Sigma X^T, as every shared Thompson agent); LinUCB / UCB-GLM
score the upper confidence bound x^T mu_a + alpha_t sqrt(x^T Sigma_a x). The GLM variants use
the Gaussianised statistics of :mod:`dts_ppl.agents.base` (ridge MLE and its Hessian), so a
GLM baseline is the linear one with a GLM likelihood. As in the paper, every baseline gets the
diffusion prior's marginal of theta_a (:func:`theta_marginal`) as its prior.

Per round: ``update`` O(d^3) for the played action, ``act`` one O(K d^2) pass (v_a = Sigma_a x);
shared Thompson sampling one O(d^3) Cholesky factor of Sigma and O(K d) scores.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

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
from dts_ppl.core import checks as _checks
from dts_ppl.core import forgetting
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Bernoulli, Evidence, Gaussian, linear_predictor
from dts_ppl.core.linalg import psd_cholesky, psd_inv
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood
from dts_ppl.core.rows import Row
from dts_ppl.core.sampling import sample_moments


class GaussianPrior(NamedTuple):
    """N(mean, cov) on each action's parameter.

    Attributes:
        mean: (d,)   cov: (d, d)
    """

    mean: Annotated[jax.Array, "d"]
    cov: Annotated[jax.Array, "d d"]

    @classmethod
    def fit(cls, samples: ArrayLike, jitter: float = 1e-9, dtype: DTypeLike | None = None) -> GaussianPrior:
        """The Gaussian fitted to samples: their mean and (unbiased, N - 1) covariance.

        The baseline prior of LinTS / LinUCB when only samples of theta are known (the
        pre-training set of a DDPM prior, item vectors).

        Args:
            samples: (N, d) samples, N >= 2, all finite.
            jitter: added to the diagonal as ``max(jitter, 10 d eps)`` times the mean sample
                variance (eps: the resolution ``finfo(dtype).eps`` of the result's dtype), so the
                covariance stays positive definite in that dtype when N <= d or a direction is
                flat (0: none).
            dtype: dtype of the result (default: JAX's default float).
        Returns:
            GaussianPrior with mean (d,) and cov (d, d).

        Example:
            >>> import numpy as np
            >>> g = GaussianPrior.fit(np.random.default_rng(0).normal(size=(500, 2)), jitter=0.0)
            >>> g.mean.shape, g.cov.shape
            ((2,), (2, 2))
        """
        try:
            jit = float(jitter)
        except (TypeError, ValueError):
            jit = float("nan")
        if isinstance(jitter, bool) or not (math.isfinite(jit) and jit >= 0):
            raise ValueError(f"jitter: expected a finite number >= 0, got {jitter!r}")
        x = _checks.as_array("samples", samples, ndim=2)
        try:
            target = jnp.dtype(dtype or jnp.result_type(float))
        except TypeError:
            target = None
        if target is None or not jnp.issubdtype(target, jnp.floating):
            raise ValueError(f"dtype: expected a floating dtype (jnp.float32, jnp.float64), got {dtype!r}")
        mean, cov = sample_moments(x.astype(target))
        d = cov.shape[0]
        if jit > 0:  # below 10 d eps the rounding of a rank-deficient covariance can outweigh it
            jit = max(jit, 10.0 * d * float(jnp.finfo(cov.dtype).eps))
        scale = jnp.mean(jnp.diag(cov))
        if _checks.is_concrete(cov) and not bool(jnp.all(jnp.isfinite(cov))):
            raise ValueError(f"samples: their covariance overflows {cov.dtype} (spread too large for the dtype)")
        if _checks.is_concrete(scale) and not float(scale) > 0:
            raise ValueError("samples: every coordinate is constant (zero sample covariance); cannot fit a Gaussian")
        cov = cov + jit * scale * jnp.eye(d, dtype=cov.dtype)
        return cls(mean, cov)


def theta_marginal(prior: DiffusionPrior, key: jax.Array | None = None, num_samples: int = 20000) -> GaussianPrior:
    """The diffusion prior's marginal of one theta_a.

    Exact for affine links (S_1 + sum_l B_l S_{l+1} B_l^T, through :func:`dts_ppl.core.inference.moments`);
    moment-matched from ``num_samples`` prior draws otherwise (``key`` required).
    """
    return GaussianPrior(*core.theta_prior_moments(prior, key, num_samples))


class LinearState(NamedTuple):
    """Per-group Gaussian posteriors: mean (M, d), cov (M, d, d), evidence, step () accepted
    updates, rejected () int32 updates the guard rejected (:mod:`dts_ppl.agents.guard`)."""

    evidence: Evidence
    mean: Annotated[jax.Array, "M d"]
    cov: Annotated[jax.Array, "M d d"]
    step: Annotated[jax.Array, ""]
    rejected: Annotated[jax.Array, ""] | int = 0


class LinearRefitState(NamedTuple):
    """A :class:`LinearState` with the online re-fit's ``hyper`` (:class:`dts_ppl.agents.refit.HyperState`)."""

    evidence: Evidence
    mean: Annotated[jax.Array, "M d"]
    cov: Annotated[jax.Array, "M d d"]
    step: Annotated[jax.Array, ""]
    rejected: Annotated[jax.Array, ""] | int = 0
    hyper: _refit.HyperState | None = None


register_state(LinearState, LinearRefitState)


def _check_gaussian_prior(theta_prior, dim_hint=None) -> GaussianPrior:
    if isinstance(theta_prior, DiffusionPrior):
        raise ValueError(
            "theta_prior: expected a GaussianPrior(mean, cov); for a diffusion prior pass theta_marginal(prior)"
        )
    if not isinstance(theta_prior, tuple) or len(theta_prior) != 2:
        raise ValueError(f"theta_prior: expected a GaussianPrior(mean, cov), got {type(theta_prior).__name__}")
    mean, cov = theta_prior
    mean = _checks.as_array("theta_prior.mean", mean, ndim=1)
    _checks.check_finite("theta_prior.mean", mean)
    cov = _checks.covariance("theta_prior.cov", cov, mean.shape[0], mean.dtype)
    return GaussianPrior(mean, cov)


def independent_prior(theta_prior: GaussianPrior) -> DiffusionPrior:
    """N(mean, cov) on every theta_a as a one-level linear chain whose link ignores its latent (W_1 = 0).

    The baselines' evidence (online re-fit) is then the core's chain evidence
    (:func:`dts_ppl.core.evidence.gaussian_log_evidence`), a sum of independent per-action terms.
    """
    d, dtype = theta_prior.mean.shape[0], theta_prior.mean.dtype
    return DiffusionPrior.linear(
        [jnp.zeros((d, 1), dtype)], [theta_prior.cov, jnp.ones((1, 1), dtype)], offsets=[theta_prior.mean]
    )


def predictor_moments(
    x: jax.Array, theta_mean: jax.Array, theta_cov: jax.Array, shared: bool
) -> tuple[jax.Array, jax.Array]:
    """Mean (K,) and variance (K,) of eta_a = x^T theta_a (or x_a^T theta) from theta's Gaussian moments.

    The one pass the linear agents score with (v_a = Sigma_a x, O(K d^2)); the optimistic
    policies (:mod:`dts_ppl.agents.posterior_policy`) read every Gaussian posterior with it.

    Args:
        x: (d,) context, or (K, d) action features when ``shared``.
        theta_mean: (M, d), theta_cov: (M, d, d), M = K (per action) or 1 (shared).
    Returns:
        (mean (K,), var (K,)).
    """
    if shared:  # one parameter: scores x_a^T theta with x (K, d)
        v = x @ theta_cov[0]
        var = jnp.sum(v * x, -1)
    else:
        v = jnp.einsum("kij,j->ki", theta_cov, x)  # Sigma_a x, the one O(K d^2) pass
        var = v @ x
    return linear_predictor(x, theta_mean[0] if shared else theta_mean), var


def _linear_agent(
    theta_prior,
    likelihood,
    num_actions,
    shared,
    history,
    newton_steps,
    score,
    kind="lin_ts",
    reward_bound=None,
    discount=1.0,
    refit=None,
) -> Agent:
    theta_prior = _check_gaussian_prior(theta_prior)
    reward_bound = check_reward_bound(reward_bound)
    discount = forgetting.check_discount(discount)
    forgetting.check_forgetting_likelihood(likelihood, discount)
    if refit is not None and forgetting.forgets(discount):
        raise ValueError("refit, discount: an online re-fit with forgetting is not supported; use one of them")
    K = check_num_actions(num_actions)
    check_glm_options(likelihood, history, newton_steps)
    if not isinstance(shared, bool):
        raise ValueError(f"shared: expected True or False, got {shared!r}")
    likelihood = likelihood.for_prior(theta_prior.cov)  # the GLM default: expand at the prior's scale
    d, dtype = theta_prior.mean.shape[0], theta_prior.mean.dtype
    M = 1 if shared else K
    prec0 = psd_inv(theta_prior.cov)
    hyper_plan = None
    if refit is not None:
        hyper_plan = _refit.RefitPlan.build(refit, independent_prior(theta_prior), likelihood, "jacobian")
    State = LinearState if refit is None else LinearRefitState

    def round_terms(state):  # the likelihood and prior precision of this round: the closure's, or the re-fit's
        if hyper_plan is None:
            return likelihood, prec0
        return hyper_plan.likelihood_of(state.hyper), state.hyper.prec1

    def init() -> LinearState:
        hyper = {} if hyper_plan is None else {"hyper": hyper_plan.init(M, prec0)}
        return State(
            evidence=likelihood.init_evidence(M, d, history, dtype),
            mean=jnp.broadcast_to(theta_prior.mean, (M, d)),
            cov=jnp.broadcast_to(theta_prior.cov, (M, d, d)),
            step=jnp.zeros((), jnp.int32),
            rejected=jnp.zeros((), jnp.int32),
            **hyper,
        )

    def scores(key, state: LinearState, x):
        if shared and score is _thompson:  # one theta for every action: a joint draw, not K marginal ones
            return _shared_thompson(key, state.mean[0], state.cov[0], x)
        mean, var = predictor_moments(x, state.mean, state.cov, shared)
        return score(key, state, mean, jnp.sqrt(jnp.maximum(var, 0.0)))

    def step(state: LinearState, phi, g, y) -> LinearState:
        lik, prec0 = round_terms(state)
        ev, _, (G_g, b_g) = lik.propose_observation(state.evidence, phi.astype(dtype), g, y, newton_steps)
        condition = partial(core.condition, prec0) if hyper_plan is None else hyper_plan.conditioner(state.hyper)
        cond, _ = condition(G_g, b_g)  # conjugate Gaussian update
        mean = core.conditional_loc(cond, theta_prior.mean)
        out = State(ev, Row(g, mean), Row(g, cond.cov), state.step + 1)
        if hyper_plan is None:
            return out
        return out._replace(hyper=hyper_plan.propose_row(state.hyper, phi.astype(dtype), g, y))

    def step_batch(state: LinearState, phi, g, y, ok) -> LinearState:
        lik, prec0 = round_terms(state)
        n, ev, idx, cond, _ = _batch.conjugate_rows(lik, prec0, state.evidence, phi, g, y, ok)
        out = State(ev, Row(idx, core.conditional_loc(cond, theta_prior.mean)), Row(idx, cond.cov), state.step + n)
        if hyper_plan is None:
            return out
        return out._replace(hyper=hyper_plan.propose_rows(state.hyper, phi.astype(dtype), g, y, ok))

    def rebuild(state: LinearRefitState, hyper: _refit.HyperState, post) -> LinearRefitState:
        """The state with ``hyper`` and every group's posterior ``post`` (the re-fit)."""
        mean = jnp.einsum("mij,j->mi", post.gain, theta_prior.mean) + post.shift
        return state._replace(evidence=state.evidence._replace(stats=post.stats), mean=mean, cov=post.cov, hyper=hyper)

    if forgetting.forgets(discount):  # every group decays each round: re-condition all (O(M d^3))

        def step(state: LinearState, phi, g, y) -> LinearState:
            ev, cond, _ = forgetting.observe(
                likelihood, prec0, state.evidence, phi.astype(dtype), g, y, newton_steps, discount
            )
            return LinearState(ev, core.conditional_loc(cond, theta_prior.mean), cond.cov, state.step + 1)

        def step_batch(state: LinearState, phi, g, y, ok) -> LinearState:
            phi = phi.astype(dtype)
            n, ev, cond, _ = forgetting.observe_rows(likelihood, prec0, state.evidence, phi, g, y, ok, discount)
            return LinearState(ev, core.conditional_loc(cond, theta_prior.mean), cond.cov, state.step + n)

    fingerprint = model_fingerprint(
        theta_prior,
        likelihood,
        dict(history=history, newton_steps=newton_steps),
        shared=shared,
        reward_bound=reward_bound,
        **({"discount": discount} if forgetting.forgets(discount) else {}),
        **({} if refit is None else {"refit": repr(refit)}),
    )
    spec = AgentSpec(kind, K, d, 0, shared, likelihood.name, kind in ("lin_ucb", "ucb_glm"), fingerprint)
    agent = guarded_agent(init, scores, step, step_batch, spec, likelihood, reward_bound)
    return agent if hyper_plan is None else _refit.with_refit(agent, hyper_plan, rebuild)


def _thompson(key, state, mean, sd):
    """Per-action Thompson scores: eta_a ~ N(mean_a, sd_a^2), independent (exact for per-action parameters)."""
    return mean + sd * jax.random.normal(key, mean.shape, mean.dtype)


def _shared_thompson(key, mean, cov, x):
    """Shared-parameter Thompson scores x_a^T theta of one draw theta = mean + chol(cov) z, z ~ N(0, I_d).

    Args:
        key: PRNG key.   mean: (d,) and cov: (d, d), theta's Gaussian posterior.   x: (K, d) features.
    Returns:
        (K,) scores, jointly N(x mean, x cov x^T).
    """
    z = jax.random.normal(key, mean.shape, mean.dtype)
    theta = mean + psd_cholesky(cov) @ z
    return linear_predictor(x, theta)


def _ucb(alpha):
    if alpha is not None:
        alpha = _checks.check_scalar("alpha", alpha, positive=False)
        if alpha < 0:
            raise ValueError(f"alpha: expected a non-negative confidence width, got {alpha!r}")

    def score(key, state, mean, sd):
        del key
        t = jnp.maximum(state.step + 1, 2).astype(mean.dtype)
        width = jnp.sqrt(2.0 * jnp.log(t)) if alpha is None else alpha
        return mean + width * sd

    return score


def lin_ts(
    theta_prior: GaussianPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    shared: bool = False,
    history: int = 5000,
    newton_steps: int = 3,
    reward_bound: float | None = None,
    discount: float = 1.0,
    refit: _refit.Refit | None = None,
) -> Agent:
    """Linear Thompson sampling with an independent N(mean, cov) prior per action.

    Args:
        theta_prior: GaussianPrior (e.g. :func:`theta_marginal` of the diffusion prior).
        likelihood: default ``Gaussian(1.0)``; a GLM gives GLM-TS (:func:`glm_ts`).
        num_actions: K.   shared: one parameter, ``x`` (K, d) action features; Thompson sampling then
            draws one theta from its posterior and scores every action with x_a^T theta.
        history, newton_steps: GLM ring-buffer size and Newton steps per update.
        reward_bound: None, or the largest |reward| learnt from (larger: rejected and counted).
        discount: gamma in (0, 1], exponential forgetting (:mod:`dts_ppl.core.forgetting`): each
            accepted round every action's evidence is multiplied by gamma, so an unplayed action
            relaxes to the prior N(mean, cov); O(K d^3) per round. 1.0 (default): none.
        refit: None, or a :class:`dts_ppl.agents.Refit`: re-fit the noise scale and/or the prior
            covariance's scale (``"action_cov"``) by empirical Bayes every ``refit.every`` rounds
            (:mod:`dts_ppl.agents.refit`; Gaussian rewards). The state is then a LinearRefitState.
    """
    lik = likelihood or Gaussian(1.0)
    return _linear_agent(
        theta_prior,
        lik,
        num_actions,
        shared,
        history,
        newton_steps,
        _thompson,
        "lin_ts",
        reward_bound,
        discount,
        refit,
    )


def _kind(agent: Agent, kind: str) -> Agent:
    """``agent`` with ``spec.kind`` set (the GLM factories reuse the linear ones)."""
    return agent._replace(spec=agent.spec._replace(kind=kind, deterministic=kind in ("lin_ucb", "ucb_glm")))


def lin_ucb(
    theta_prior: GaussianPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    alpha: float | None = None,
    shared: bool = False,
    history: int = 5000,
    newton_steps: int = 3,
    reward_bound: float | None = None,
    discount: float = 1.0,
) -> Agent:
    """LinUCB: argmax x^T mu_a + alpha_t ||x||_{Sigma_a}; alpha_t = sqrt(2 log t) unless ``alpha`` is given.

    ``discount``: exponential forgetting as :func:`lin_ts`.
    """
    lik = likelihood or Gaussian(1.0)
    return _linear_agent(
        theta_prior, lik, num_actions, shared, history, newton_steps, _ucb(alpha), "lin_ucb", reward_bound, discount
    )


def glm_ts(
    theta_prior: GaussianPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    shared: bool = False,
    history: int = 5000,
    newton_steps: int = 3,
    reward_bound: float | None = None,
    discount: float = 1.0,
) -> Agent:
    """GLM-TS: Thompson sampling from the Laplace (Gaussianised) posterior; default logistic rewards.

    ``discount``: exponential forgetting as :func:`lin_ts`, through row weights gamma^age in the
    ring buffer (:func:`dts_ppl.core.likelihoods.ring_weights`).
    """
    lik = likelihood or Bernoulli()
    agent = lin_ts(theta_prior, lik, num_actions, shared, history, newton_steps, reward_bound, discount)
    return _kind(agent, "glm_ts")


def ucb_glm(
    theta_prior: GaussianPrior,
    likelihood: Likelihood | None = None,
    num_actions: int | None = None,
    alpha: float | None = None,
    shared: bool = False,
    history: int = 5000,
    newton_steps: int = 3,
    reward_bound: float | None = None,
    discount: float = 1.0,
) -> Agent:
    """UCB-GLM (Li et al. 2017): UCB on the linear predictor, monotone in the mean reward.

    ``discount``: exponential forgetting as :func:`glm_ts`.
    """
    lik = likelihood or Bernoulli()
    agent = lin_ucb(theta_prior, lik, num_actions, alpha, shared, history, newton_steps, reward_bound, discount)
    return _kind(agent, "ucb_glm")
