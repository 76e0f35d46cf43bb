"""Online empirical Bayes: agents that re-fit their noise scale and S_1 every m rounds.

``dts(prior, likelihood, K, refit=Refit(every=100))`` (also ``hier_ts`` and ``lin_ts``) keeps, next
to its usual state, the scale-free sufficient statistics of its Gaussian rewards per group
(:class:`~dts_ppl.core.evidence.GaussianSummary`: sum x x^T, sum x y, sum y^2, counts) and the
current hyper-parameters (:class:`HyperState`). Every ``every`` accepted rounds, inside the
jitted update (``lax.cond`` on the step count: one compilation), it

1. whitens and decomposes every group's summary once
   (:func:`dts_ppl.core.scaled_evidence.action_eigen`, O(M d^3)), after which the exact log
   evidence and its derivatives in the noise scale and S_1's scale cost O(M d^2 + d_psi^3) per
   evaluation (:func:`~dts_ppl.core.scaled_evidence.scaled_log_evidence`, equal to
   :func:`dts_ppl.core.evidence.gaussian_log_evidence`);
2. takes ``steps`` safeguarded Newton steps on it
   (:func:`dts_ppl.core.empirical_bayes.newton_steps`; or a user's optax optimiser), warm-started
   at the current values, in :func:`~dts_ppl.core.empirical_bayes.fit_hyperparameters`'s bounded
   coordinates; then
3. rebuilds every group's conditional from the same factors
   (:func:`~dts_ppl.core.scaled_evidence.scaled_posterior`, equal to
   :func:`dts_ppl.core.inference.condition`'s) and the latent chain by the agent's own upward
   pass, so the state equals that of an agent built with the fitted values from the start on the
   same data (tests/agents/test_refit.py).

Between re-fits a round costs what it costs without the option plus one O(d^2) row write of the
summary: the agent's noise scale comes from the state, and it conditions through the given
S_1^-1's Cholesky factor rescaled by S_1's fitted scale (:meth:`RefitPlan.whitening`), not a new
factorisation. The re-fit's cost, amortised over ``every`` rounds, is measured in
docs/open_model.md.

The guard (:mod:`dts_ppl.agents.guard`) writes the summary only for accepted rounds, so a rejected
observation never enters it; a re-fit whose result is not finite leaves the state as it was.
Only Gaussian rewards have a noise scale and the exact evidence this needs: other likelihoods
raise ValueError. The fitted names are ``"noise_scale"`` and ``"action_cov"`` (S_1's scale, its
shape kept), as in :func:`~dts_ppl.core.empirical_bayes.fit_hyperparameters`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dts_ppl.agents.base import Agent
from dts_ppl.agents.registry import register_state
from dts_ppl.core import checks as _checks
from dts_ppl.core import empirical_bayes as _eb
from dts_ppl.core import evidence as _ev
from dts_ppl.core import inference as _inf
from dts_ppl.core import scaled_evidence as _se
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.linalg import psd_inv
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.rows import Row, all_finite, get_row

__all__ = ["ONLINE_FITTABLE", "HyperState", "Refit", "RefitPlan", "with_refit"]

#: the hyper-parameters an agent can re-fit online
ONLINE_FITTABLE = ("noise_scale", "action_cov")


class Refit(NamedTuple):
    """The online re-fit option of :func:`~dts_ppl.agents.dts` and :func:`~dts_ppl.agents.lin_ts`.

    Attributes:
        every: m, re-fit after every m-th accepted round (the step count crossing a multiple of m).
        fit: names from ("noise_scale", "action_cov").
        steps: optimiser steps per re-fit, warm-started at the current values.
        bounds: {fit name: (lower, upper)} (default: the factory's value / 1000 and * 1000).
        optimizer: None (default): safeguarded Newton steps on the exact evidence
            (:func:`~dts_ppl.core.empirical_bayes.newton_steps`), which converge to its maximiser;
            or an optax GradientTransformation (``optax.lbfgs()`` reproduces
            :func:`~dts_ppl.core.empirical_bayes.fit_hyperparameters` with ``num_steps=steps``).
        start: the first re-fit waits for at least this many accepted rounds (default ``every``).
    """

    every: int = 100
    fit: tuple = ("noise_scale", "action_cov")
    steps: int = 5
    bounds: dict | None = None
    optimizer: optax.GradientTransformation | None = None
    start: int | None = None


class HyperState(NamedTuple):
    """The re-fit's part of an agent's state (M groups, d features, P fitted parameters).

    Attributes:
        summary: GaussianSummary of the accepted rounds: G (M, d, d), b (M, d), yy (M,), count (M,).
        u: (P,) the fitted parameters in the optimiser's unconstrained coordinates (``Refit.fit`` order).
        noise_scale: () the noise scale the agent uses now.
        action_scale: () S_1's scale sqrt(trace(S_1) / d) the agent uses now.
        prec1: (d, d) S_1^-1 the agent uses now.
        log_evidence: () log p(y | hyper-parameters) after the last re-fit (0 before the first).
        refits: () int32 re-fits done.
    """

    summary: _ev.GaussianSummary
    u: Annotated[jax.Array, "P"]
    noise_scale: Annotated[jax.Array, ""]
    action_scale: Annotated[jax.Array, ""]
    prec1: Annotated[jax.Array, "d d"]
    log_evidence: Annotated[jax.Array, ""]
    refits: Annotated[jax.Array, ""]


register_state(HyperState, _ev.GaussianSummary)


class RefitPlan(NamedTuple):
    """What an agent's re-fit needs, fixed when the agent is built (:meth:`build`).

    Attributes:
        refit: the validated Refit.
        prior: the prior the evidence is computed with (the agent's, S_1 as given).
        likelihood: the agent's Gaussian likelihood as given.
        initial: {fit name: value given to the factory}.
        bounds: (P, 2) lower and upper bound per fitted name.
        linearisation: the agent's linearisation rule (nonlinear links).
        u0: (P,) the initial values in the optimiser's unconstrained coordinates.
        marginal: u = f_1(psi_1)'s prior law (:func:`dts_ppl.core.scaled_evidence.latent_marginal`)
            where the chain's linearisation is data-free, else None.
        white: the Whitening (Cholesky factor and its inverse) of S_1^-1 as given.
    """

    refit: Refit
    prior: DiffusionPrior
    likelihood: Gaussian
    initial: dict
    bounds: jax.Array
    linearisation: str
    u0: jax.Array
    marginal: _se.LatentMarginal | None = None
    white: _inf.Whitening | None = None

    @classmethod
    def build(
        cls, refit: Refit, prior: DiffusionPrior, likelihood: Gaussian, linearisation: str = "identity"
    ) -> RefitPlan:
        """Validate ``refit`` for an agent with this prior and likelihood (ValueError naming what is wrong)."""
        if not isinstance(refit, Refit):
            raise ValueError(f"refit: expected None or a dts_ppl.agents.Refit, got {type(refit).__name__}")
        if not isinstance(likelihood, Gaussian):
            raise ValueError(
                f"refit: needs Gaussian rewards (their noise scale and exact evidence); got {type(likelihood).__name__}"
            )
        every = _checks.check_positive_int("refit.every", refit.every)
        steps = _checks.check_positive_int("refit.steps", refit.steps)
        start = every if refit.start is None else _checks.check_positive_int("refit.start", refit.start)
        fit = (refit.fit,) if isinstance(refit.fit, str) else tuple(refit.fit)
        if not fit or any(f not in ONLINE_FITTABLE for f in fit) or len(set(fit)) != len(fit):
            raise ValueError(f"refit.fit: expected distinct names from {ONLINE_FITTABLE}, got {refit.fit!r}")
        if refit.optimizer is not None and not isinstance(refit.optimizer, optax.GradientTransformation):
            raise ValueError(
                f"refit.optimizer: expected an optax GradientTransformation, got {type(refit.optimizer).__name__}"
            )
        initial = _eb.initial_values(prior, likelihood, fit)
        try:
            bounds = _eb._bounds(fit, initial, refit.bounds)
        except ValueError as e:
            raise ValueError(f"refit.{e}") from None
        dtype = prior.cov1.dtype
        refit = refit._replace(every=every, steps=steps, start=start, fit=fit)
        u0 = jnp.asarray([_eb._to_unconstrained(initial[f], *bounds[f]) for f in fit], dtype)
        bnds = jnp.asarray([bounds[f] for f in fit], dtype)
        marginal = None
        if _se.fixed_linearisation(prior, linearisation):
            marginal = _se.latent_marginal(prior, linearisation)
        white = _inf.whiten(psd_inv(prior.cov1))
        return cls(refit, prior, likelihood, initial, bnds, linearisation, u0, marginal, white)

    def init(self, num_groups: int, prec1: jax.Array) -> HyperState:
        """The HyperState before any data: empty summary, the factory's values."""
        d, dtype = self.prior.dim, self.prior.cov1.dtype
        summary = _ev.GaussianSummary(
            jnp.zeros((num_groups, d, d), dtype),
            jnp.zeros((num_groups, d), dtype),
            jnp.zeros(num_groups, dtype),
            jnp.zeros(num_groups, dtype),
        )
        return HyperState(
            summary,
            self.u0,
            jnp.asarray(self.likelihood.scale, dtype),
            _eb.cov_scale(self.prior.cov1),
            prec1,
            jnp.zeros((), dtype),
            jnp.zeros((), jnp.int32),
        )

    def whitening(self, hyper: HyperState) -> _inf.Whitening:
        """The Whitening of the state's S_1^-1 = S_1^0^-1 / t: the given factors rescaled by sqrt(t).

        A round conditions through it (:func:`dts_ppl.core.inference.condition_whitened`) instead
        of factorising the state's S_1^-1 anew every round.
        """
        if "action_cov" not in self.refit.fit:
            return self.white
        root = hyper.action_scale / self.initial["action_cov"]  # sqrt(t)
        return _inf.Whitening(self.white.chol / root, self.white.chol_inv * root)

    def conditioner(self, hyper: HyperState) -> Callable:
        """``condition(G, b)``: :func:`dts_ppl.core.inference.condition` on the state's S_1^-1."""
        return partial(_inf.condition_whitened, self.whitening(hyper))

    def likelihood_of(self, hyper: HyperState) -> Gaussian:
        """The likelihood a round uses: Gaussian with the state's noise scale."""
        if "noise_scale" not in self.refit.fit:
            return self.likelihood
        return Gaussian(hyper.noise_scale)

    def propose_row(self, hyper: HyperState, phi: jax.Array, group: jax.Array, y: jax.Array) -> HyperState:
        """The HyperState after one accepted observation (phi (d,), group (), y ()), as Row writes."""
        s = hyper.summary
        G, b, yy, count = (get_row(a, group) for a in s)
        summary = _ev.GaussianSummary(
            Row(group, G + jnp.outer(phi, phi)), Row(group, b + y * phi), Row(group, yy + y**2), Row(group, count + 1.0)
        )
        return hyper._replace(summary=summary)

    def propose_rows(
        self, hyper: HyperState, phi: jax.Array, group: jax.Array, y: jax.Array, ok: jax.Array
    ) -> HyperState:
        """The HyperState after the rows with ``ok`` of a batch (phi (n, d), group (n,), y (n,), ok (n,))."""
        w = ok.astype(phi.dtype)
        M = hyper.summary.count.shape[0]
        add = _ev.gaussian_summary(phi * w[:, None], group, y * w, M)
        count = jax.ops.segment_sum(w, group, num_segments=M)
        s = hyper.summary
        return hyper._replace(summary=_ev.GaussianSummary(s.G + add.G, s.b + add.b, s.yy + add.yy, s.count + count))

    def values(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(sigma, t) at the unconstrained parameters u (P,): the noise scale and S_1 / S_1^0."""
        sigma, t = jnp.asarray(self.likelihood.scale, u.dtype), jnp.ones((), u.dtype)
        for i, name in enumerate(self.refit.fit):
            value = _eb._to_value(u[i], self.bounds[i, 0], self.bounds[i, 1])
            if name == "noise_scale":
                sigma = value
            else:
                t = (value / self.initial["action_cov"]) ** 2
        return sigma, t

    def refitted(self, hyper: HyperState) -> tuple[HyperState, _se.ScaledPosterior]:
        """``hyper`` after ``steps`` optimiser steps on the log evidence of its summary, warm-started at ``hyper.u``.

        The summary is whitened and decomposed once (:func:`dts_ppl.core.scaled_evidence.action_eigen`);
        every evaluation of the evidence and its derivatives then costs O(M d^2 + L d_psi^3).

        Returns:
            (the HyperState with the fitted values, every group's conditional at them).
        """
        r = self.refit
        eig = _se.action_eigen(self.prior.cov1, hyper.summary)
        n = jnp.maximum(eig.count, 1.0)

        def loss(u):
            sigma, t = self.values(u)
            return -_se.scaled_log_evidence(self.prior, eig, sigma, t, self.linearisation, marginal=self.marginal) / n

        if r.optimizer is None:
            u, trace = _eb.newton_steps(loss, hyper.u, r.steps)
        else:
            u, trace = _eb.optax_steps(loss, hyper.u, r.steps, r.optimizer)
        sigma, t = self.values(u)
        cov1 = self.prior.cov1 * t
        hyper = hyper._replace(
            u=u,
            noise_scale=sigma.astype(hyper.noise_scale.dtype),
            action_scale=_eb.cov_scale(cov1),
            prec1=psd_inv(cov1),
            log_evidence=-n * trace[-1],
            refits=hyper.refits + 1,
        )
        return hyper, _se.scaled_posterior(eig, sigma, t)


def with_refit(agent: Agent, plan: RefitPlan, rebuild: Callable) -> Agent:
    """``agent`` whose ``update`` and ``update_batch`` re-fit after every ``plan.refit.every``-th accepted round.

    Args:
        agent: the guarded agent; its states carry a ``hyper`` HyperState and a ``step`` count.
        plan: the RefitPlan.
        rebuild: ``rebuild(state, hyper, posterior) -> state``: the state with ``hyper``, every
            group's conditional from ``posterior`` (a :class:`~dts_ppl.core.scaled_evidence.ScaledPosterior`
            at the fitted values) and the latent chain recomputed from its summed message (the
            agent's own upward pass).

    Returns:
        The Agent with the re-fit after its updates (``lax.cond``: compiled once; inside a user's
        ``jit`` or ``scan`` it is inlined).
    """
    every, start = plan.refit.every, plan.refit.start

    def refit_state(state):
        new = rebuild(state, *plan.refitted(state.hyper))
        ok = all_finite(new._replace(rejected=0))
        return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)

    def due(old_step, step):
        return (step // every > old_step // every) & (step >= start)

    @jax.custom_batching.custom_vmap
    def maybe(old_step, state):
        return jax.lax.cond(due(old_step, state.step), refit_state, lambda s: s, state)

    @maybe.def_vmap
    def _maybe_batched(axis_size, in_batched, old_step, state):
        # Under vmap (runs of a simulation) a cond on a batched predicate would run the re-fit in
        # every round; instead re-fit the whole batch in the rounds where any run is due.
        def batched(x, b):
            return x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))

        old_step = batched(old_step, in_batched[0])
        state = jax.tree.map(batched, state, in_batched[1])
        now = jax.vmap(due)(old_step, state.step)

        def refit_due(s):  # one run at a time (lax.map): the unbatched re-fit, compiled once
            return jax.lax.map(lambda a: jax.lax.cond(a[0], refit_state, lambda t: t, a[1]), (now, s))

        out = jax.lax.cond(jnp.any(now), refit_due, lambda s: s, state)
        return out, jax.tree.map(lambda _: True, out)

    compiled = jax.jit(maybe)

    def update(state, x, action, reward):
        return compiled(state.step, agent.update(state, x, action, reward))

    def update_batch(state, X, A, y):
        return compiled(state.step, agent.update_batch(state, X, A, y))

    return agent._replace(update=update, update_batch=update_batch)
