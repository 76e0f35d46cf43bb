"""AutoDTS: the closed-form dTS posterior for a diffusion chain inside any NumPyro model.

A model written with :func:`dts_ppl.ppl.diffusion_chain` and :func:`dts_ppl.ppl.bandit_rewards`
has the chain's sites ``psi`` and ``theta`` and any other latent sites of its own (a reward
scale, random intercepts, ...). :class:`AutoDTS` is a NumPyro guide for all of them:

    q(others) q(psi, theta | others)

- q(others) is an ordinary AutoGuide (``AutoNormal`` by default; ``AutoDelta`` gives type-II
  maximum likelihood / MAP of the other sites), built on the model with the chain sites hidden.
- q(psi, theta | others) is the dTS posterior (docs/math.md section 3) of the chain given the
  rewards, with the other sites' values substituted into the model: a ``Gaussian(sigma)``
  likelihood's scale and the reward site's offset. It has no parameters.

Gradients. SVI's ELBO is differentiated straight through the closed-form part (its derivative
comes from :func:`dts_ppl.core.inference.condition`'s Cholesky rule, so actions with fewer than
d pulls are fine). For affine chains with Gaussian rewards the conditional is exact, so
log p(y, psi, theta, others) - log q(psi, theta | others) = log p(y | others) + log p(others) for
every draw of (psi, theta): the ELBO and its gradient are those of the collapsed marginal
likelihood (:mod:`dts_ppl.core.evidence`), with no Monte-Carlo noise from the chain, at the same
O(K d^3 + L d_psi^3) cost, and any NumPyro ELBO (``Trace_ELBO``) works unchanged. For nonlinear
links and GLM rewards the conditional is the dTS approximation and the ELBO stays a true lower
bound, which the Laplace-type evidence would not be; that is why the route goes through the
closed form rather than through the collapsed evidence.

Inside ``numpyro.infer.autoguide.AutoGuideList``: a member AutoDTS handles the chain and its
own other sites; sites of the *other* members are not visible to it, so they must not enter the
reward site (AutoGuideList gives a member neither the other members' values nor their trace).
AutoDTS checks this when it sets up and raises ValueError otherwise; to use different AutoGuides
for different sites that do enter the rewards, pass an ``AutoGuideList`` as ``other_guide``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import ndtri
from numpyro import handlers
from numpyro.infer.autoguide import AutoNormal

from dts_ppl.core import checks as _checks
from dts_ppl.core import evidence as _ev
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, Gaussian, empty_stats
from dts_ppl.core.linalg import psd_cholesky
from dts_ppl.core.links import check_linearisation
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ppl.chain import CHAIN_KEY, LATENT_SITES, REWARDS_KEY, sample_chain


def _concrete(tree) -> bool:
    return all(_checks.is_concrete(leaf) for leaf in jax.tree.leaves(tree))


def _latent_names(tr) -> list:
    return [k for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]]


class AutoDTS:
    """The dTS posterior of a model's diffusion chain, conditional on its other latent sites.

    Args:
        model: a NumPyro model calling :func:`dts_ppl.ppl.diffusion_chain` (centred) once and
            :func:`dts_ppl.ppl.bandit_rewards` once (a :class:`dts_ppl.BanditModel` too).
        other_guide: for the other latent sites: an AutoGuide class or a callable
            ``f(model) -> guide`` (called with the model with ``psi`` and ``theta`` hidden;
            default ``AutoNormal``), or a guide built on such a model (e.g. an AutoGuideList).
            Unused when the model has no other latent sites.
        linearisation, max_passes, tol: the upward pass for nonlinear links (as
            :class:`dts_ppl.DTSGuide`).
        num_quantile_samples: joint draws behind :meth:`quantiles` of the chain sites when the
            model has other latent sites (their mixture has no closed-form quantiles).

    Call it like the model (``guide(*args, **kwargs)``); it returns {site: value}.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from numpyro.infer import SVI, Trace_ELBO
        >>> from dts_ppl import BanditModel, DiffusionPrior
        >>> model = BanditModel(DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0]), num_actions=3)
        >>> X, A, y = jnp.ones((4, 2)), jnp.array([0, 1, 1, 2]), jnp.array([1.0, 0.5, 0.7, -1.0])
        >>> guide = AutoDTS(model)  # no other latent sites: the closed-form posterior, no parameters
        >>> guide.sample_posterior(jax.random.PRNGKey(0), {}, X, A, y, sample_shape=(5,))["theta"].shape
        (5, 3, 2)
    """

    def __init__(
        self,
        model: Callable[..., Any],
        other_guide: Callable[..., Any] | None = AutoNormal,
        *,
        linearisation: str | None = core.DEFAULT_LINEARISATION,
        max_passes: int = core.DEFAULT_MAX_PASSES,
        tol: float = core.DEFAULT_TOL,
        num_quantile_samples: int = 4000,
    ) -> None:
        if not callable(model):
            raise ValueError(f"model: expected a NumPyro model (a callable), got {type(model).__name__}")
        if other_guide is not None and not callable(other_guide):
            raise ValueError(f"other_guide: expected an AutoGuide class, a factory or a guide, got {other_guide!r}")
        self.model = model
        self._other_spec = other_guide
        self.other_guide = None
        self.linearisation = None if linearisation is None else check_linearisation(linearisation)
        self.tol, self.max_passes = core.check_pass_options(tol, max_passes)
        self.num_quantile_samples = _checks.check_positive_int("num_quantile_samples", num_quantile_samples)
        self.prototype_trace = None
        self.rewards_site = None
        self.other_sites: tuple = ()
        self._args, self._kwargs = None, None
        self._glm = None

    def __repr__(self):
        other = type(self.other_guide).__name__ if self.other_guide is not None else "none"
        return f"AutoDTS(chain sites {LATENT_SITES}, other sites {self.other_sites} via {other})"

    # ------------------------------------------------------------------------------ set-up
    def _trace(self, fn, values, args, kwargs):
        """A trace of ``fn`` with ``values`` substituted, hidden from every handler outside."""
        with handlers.block():
            sub = handlers.substitute(fn, data=values) if values else fn
            return handlers.trace(handlers.seed(sub, rng_seed=0)).get_trace(*args, **kwargs)

    def _setup(self, *args, **kwargs):
        tr = self._trace(self.model, {}, args, kwargs)
        chains = [k for k, s in tr.items() if CHAIN_KEY in (s.get("infer") or {})]
        rewards = [k for k, s in tr.items() if REWARDS_KEY in (s.get("infer") or {})]
        if chains != ["theta"]:
            raise ValueError(
                "model: expected one centred diffusion_chain (sites psi, theta; "
                f"dts_ppl.ppl.diffusion_chain), found chain sites {chains}"
            )
        if tr["theta"]["infer"][CHAIN_KEY].parameterisation != "centred":
            raise ValueError("model: AutoDTS samples the centred chain; use diffusion_chain(..., 'centred')")
        if len(rewards) != 1:
            raise ValueError(f"model: expected one reward site (dts_ppl.ppl.bandit_rewards), found {rewards}")
        self.rewards_site = rewards[0]
        self.other_sites = tuple(k for k in _latent_names(tr) if k not in LATENT_SITES)
        self._check_hidden_sites(tr, args, kwargs)
        if self.other_sites and self._other_spec is not None:
            spec = self._other_spec
            made = isinstance(spec, type) or not hasattr(spec, "sample_posterior")
            self.other_guide = spec(handlers.block(self.model, hide=list(LATENT_SITES))) if made else spec
        elif self.other_sites:
            raise ValueError(f"other_guide: the model has other latent sites {self.other_sites}; give a guide for them")
        if _concrete((args, kwargs)):
            self._args, self._kwargs = args, kwargs
        info = tr["theta"]["infer"][CHAIN_KEY]
        lik = tr[self.rewards_site]["infer"][REWARDS_KEY].likelihood
        if not isinstance(lik, Gaussian) and lik.ridge is None:  # GLM: expand where the guide of the prior does
            self._glm = lik.for_prior(core.theta_prior_scale_cov(info.prior))
        self.prototype_trace = tr

    def _check_hidden_sites(self, tr, args, kwargs):
        """Inside an AutoGuideList: sites hidden from this member must not change the chain's conditional."""
        if not isinstance(self.model, handlers.block):
            return
        full = self._trace(self.model.fn, {}, args, kwargs)
        hidden = [k for k in _latent_names(full) if k not in tr]
        if not hidden:
            return
        visible = {k: full[k]["value"] for k in _latent_names(full) if k in tr}

        def inputs(h):  # what the chain's conditional reads from the model
            t = self._trace(self.model.fn, {**visible, **h}, args, kwargs)
            info = t[self.rewards_site]["infer"][REWARDS_KEY]
            offset = 0.0 if info.offset is None else info.offset
            return t["theta"]["infer"][CHAIN_KEY].prior, getattr(info.likelihood, "scale", 0.0), offset

        # discrete sites have no derivative; AutoGuides do not sample them anyway
        h0 = {k: full[k]["value"] for k in hidden if jnp.issubdtype(jnp.result_type(full[k]["value"]), jnp.floating)}
        tangent = jax.tree.map(jnp.ones_like, h0)
        out = jax.jvp(inputs, (h0,), (tangent,))[1]
        if any(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(out)):
            raise ValueError(
                f"model: sites {hidden}, handled by another guide of the AutoGuideList, enter the chain's prior or "
                "reward site, and AutoDTS cannot see their values there; give AutoDTS the whole model and pass an "
                "AutoGuideList for the other sites as other_guide"
            )

    def _model_args(self, args, kwargs):
        if args or kwargs:
            return args, kwargs
        if self._args is None:
            raise ValueError("args: pass the model's arguments (the guide has not been called with concrete ones)")
        return self._args, self._kwargs

    # ------------------------------------------------------------------- the conditional
    def _statistics(self, info, rew, y) -> ActionStats:
        K, d, dtype = info.num_actions, info.prior.dim, info.prior.cov1.dtype
        if y is None:
            return empty_stats(K, d, dtype)
        A = jnp.zeros(rew.X.shape[0], jnp.int32) if rew.A is None else rew.A
        lik = rew.likelihood
        if isinstance(lik, Gaussian):
            return _ev.gaussian_stats(_ev.gaussian_summary(rew.X, A, y, K, rew.offset), lik.scale)
        if rew.offset is not None:
            raise ValueError("offset: AutoDTS takes offsets with Gaussian rewards only (the GLM expansion has none)")
        return (self._glm or lik)._statistics(rew.X, A, y, K)

    def conditional(
        self, values: dict, *args: Any, **kwargs: Any
    ) -> tuple[DiffusionPrior, core.DTSPosterior, bool, core.Linearisation]:
        """The chain's posterior given the other sites' ``values``.

        Returns:
            (prior, DTSPosterior, shared, Linearisation): the model's prior at ``values``, the
            posterior conditionals of psi and theta, whether theta is shared, and the links'
            linearisation (for :func:`dts_ppl.core.inference.moments`).
        """
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        tr = self._trace(self.model, {k: v for k, v in values.items() if k not in LATENT_SITES}, args, kwargs)
        info = tr["theta"]["infer"][CHAIN_KEY]
        site = tr[self.rewards_site]
        y = site["value"] if site["is_observed"] else None
        stats = self._statistics(info, site["infer"][REWARDS_KEY], y)
        prior = info.prior
        method = core.resolve_linearisation(prior, self.linearisation)
        lin = _ev.differentiable_linearisation(prior, stats, method, self.tol, self.max_passes)
        theta, per_action = core.action_posteriors(prior, stats)
        latents = core.latent_posteriors(prior, core.Message(per_action.G.sum(0), per_action.b.sum(0)), lin)
        if method == "identity" and not prior.is_linear:  # as DTSGuide: moments through the Jacobian
            lin = core.linearise(prior, "jacobian")
        return prior, core.DTSPosterior(latents, theta), info.shared, lin

    # -------------------------------------------------------------------------- the guide
    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        others = dict(self.other_guide(*args, **kwargs)) if self.other_guide is not None else {}
        prior, post, shared, _ = self.conditional(others, *args, **kwargs)
        psi, theta = sample_chain(prior, post, shared)
        return {**others, "psi": psi, "theta": theta}

    # ---------------------------------------------------------------- AutoGuide surface
    def sample_posterior(
        self,
        rng_key: jax.Array,
        params: dict,
        *args: Any,
        sample_shape: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> dict:
        """Joint draws of every latent site: others from their guide, then the chain given each draw.

        Args:
            rng_key: PRNG key.
            params: the SVI params (``svi_result.params``; {} with no other latent sites).
            *args, **kwargs: the model's arguments (default: those of the guide's first call).
            sample_shape: leading shape of the draws.

        Returns:
            {site: (*sample_shape, *site_shape)}: psi (L, d_psi), theta (K, d) ((d,) shared), others.
        """
        args, kwargs = self._model_args(args, kwargs)
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        sample_shape = tuple(sample_shape)
        if self.other_guide is None:
            prior, post, shared, _ = self.conditional({}, *args, **kwargs)
            psi, theta = core.sample(rng_key, prior, post, sample_shape)
            others = {}
        else:
            k_other, k_chain = jax.random.split(rng_key)
            others = self.other_guide.sample_posterior(k_other, params, *args, sample_shape=sample_shape, **kwargs)
            others = {k: v for k, v in others.items() if k not in LATENT_SITES}
            num = math.prod(sample_shape)
            flat = {k: jnp.reshape(v, (num,) + jnp.shape(v)[len(sample_shape) :]) for k, v in others.items()}

            def one(key, values):
                prior, post, shared, _ = self.conditional(values, *args, **kwargs)
                return core.sample(key, prior, post, ())

            psi, theta = jax.vmap(one)(jax.random.split(k_chain, num), flat)
            psi = psi.reshape(sample_shape + psi.shape[1:])
            theta = theta.reshape(sample_shape + theta.shape[1:])
            shared = self.prototype_trace["theta"]["infer"][CHAIN_KEY].shared
        if shared:
            theta = theta[..., 0, :]
        return {**others, "psi": psi, "theta": theta}

    def _chain_moments(self, others, args, kwargs) -> dict:
        prior, post, shared, lin = self.conditional(others, *args, **kwargs)
        mo = core.moments(prior, post, lin)
        theta = (mo.theta_mean[0], mo.theta_cov[0]) if shared else (mo.theta_mean, mo.theta_cov)
        return {"psi": (mo.psi_mean, mo.psi_cov), "theta": theta}

    def median(self, params: dict, *args: Any, **kwargs: Any) -> dict:
        """Medians of the other sites (their guide's) and the chain's conditional posterior means there.

        With no other latent sites these are the exact posterior means of psi and theta
        (:meth:`dts_ppl.DTSGuide.median`).

        Returns:
            {site: site_shape}.
        """
        args, kwargs = self._model_args(args, kwargs)
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        others = dict(self.other_guide.median(params)) if self.other_guide is not None else {}
        chain = self._chain_moments(others, args, kwargs)
        return {**others, **{site: mean for site, (mean, _) in chain.items()}}

    def quantiles(self, params: dict, quantiles: Sequence[float] | jax.Array, *args: Any, **kwargs: Any) -> dict:
        """Marginal quantiles of every latent coordinate.

        The chain sites' are closed-form with no other latent sites (as DTSGuide's); otherwise
        empirical, from ``num_quantile_samples`` joint draws (fixed key), since integrating the
        conditional over the other sites has no closed form. The other sites' come from their guide.

        Args:
            params: the SVI params.
            quantiles: 1-d levels in (0, 1).

        Returns:
            {site: (len(quantiles), *site_shape)}.
        """
        q = jnp.asarray(quantiles)
        if q.ndim != 1 or not bool(jnp.all((q > 0) & (q < 1))):
            raise ValueError(f"quantiles: expected a 1-d list of levels in (0, 1), got {quantiles}")
        args, kwargs = self._model_args(args, kwargs)
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        if self.other_guide is None:
            z = ndtri(q)

            def qs(mean, cov):
                sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
                return mean[None] + z.astype(mean.dtype).reshape((-1,) + (1,) * mean.ndim) * sd[None]

            return {site: qs(*mc) for site, mc in self._chain_moments({}, args, kwargs).items()}
        draws = self.sample_posterior(
            jax.random.PRNGKey(0), params, *args, sample_shape=(self.num_quantile_samples,), **kwargs
        )
        out = {site: jnp.quantile(v, q, axis=0) for site, v in draws.items()}
        try:  # the other guide's own quantiles where it has them (AutoDelta has none: its draws are its value)
            out.update(self.other_guide.quantiles(params, quantiles))
        except NotImplementedError:
            pass
        return out

    def get_posterior(self, params: dict, *args: Any, **kwargs: Any) -> dict:
        """Per-level and per-action marginals of the chain as NumPyro distributions (no other sites only).

        Returns:
            {"psi": MultivariateNormal batch (L,), "theta": MultivariateNormal batch (K,)}.
        """
        args, kwargs = self._model_args(args, kwargs)
        if self.prototype_trace is None:
            self._setup(*args, **kwargs)
        if self.other_guide is not None:
            raise ValueError(
                "get_posterior: with other latent sites the chain's posterior is a mixture over them; "
                "use sample_posterior"
            )
        return {
            site: dist.MultivariateNormal(mean, scale_tril=psd_cholesky(cov))
            for site, (mean, cov) in self._chain_moments({}, args, kwargs).items()
        }
