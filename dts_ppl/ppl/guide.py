"""The dTS posterior as a NumPyro guide."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import ndtri
from jax.typing import ArrayLike
from numpyro.contrib.control_flow import scan

from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, empty_stats
from dts_ppl.core.linalg import psd_cholesky
from dts_ppl.ppl.model import LATENT_SITES, BanditModel, sample_chain

RAW_SITES = tuple(name + "_raw" for name in LATENT_SITES)  # the non-centred model's sample sites


# ------------------------------------------------------------------- non-centred guide sites
# The non-centred model samples psi_raw_l ~ N(0, I) and sets psi_l = mu_l + T_l psi_raw_l, with
# mu_l = f_{l+1}(psi_{l+1}) and T_l the Cholesky factor of the prior conditional covariance (theta
# alike, from psi_1). A guide conditional psi_l | psi_{l+1} ~ N(m_l, S_l S_l^T) is therefore, on
# the raw site, N(T_l^{-1} (m_l - mu_l), (T_l^{-1} S_l)(T_l^{-1} S_l)^T): the same distribution
# of (psi, theta) written on the sites NUTS samples.


def _raw_conditional(prior_cond, post_cond, u):
    """(mean, scale_tril) of a raw site given the parent mean u (batch axes of the conds broadcast)."""
    tril = prior_cond.scale_tril
    diff = core.conditional_loc(post_cond, u) - core.conditional_loc(prior_cond, u)
    mean = solve_triangular(tril, diff[..., None], lower=True)[..., 0]
    return mean, solve_triangular(tril, post_cond.scale_tril, lower=True)


def to_raw_sites(prior, psi, theta, num_actions: int, shared: bool = False) -> dict:
    """Map draws of (psi, theta) to the non-centred model's raw sites.

    Args:
        prior: DiffusionPrior.
        psi: (*batch, L, d_psi) in sampling order (row 0 is psi_L).
        theta: (*batch, K, d), or (*batch, d) when ``shared``.
        num_actions: K (1 when ``shared``).
    Returns:
        {"psi_raw": (*batch, L, d_psi), "theta_raw": theta's shape}.
    """
    conds = core.prior_conditionals(prior, num_actions)
    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)

    def one(psi, theta):
        def level(parent, xs):
            (cond, is_top, link), row = xs
            loc = core.conditional_loc(cond, core.parent_means(prior, parent, is_top, link))
            return row, solve_triangular(cond.scale_tril, row - loc, lower=True)

        _, psi_raw = jax.lax.scan(level, top, (core.chain_scan_inputs(prior, conds.latents), psi))
        th = theta[None] if shared else theta
        loc = core.conditional_loc(conds.theta, prior.link1(psi[-1]))
        theta_raw = solve_triangular(conds.theta.scale_tril, (th - loc)[..., None], lower=True)[..., 0]
        return psi_raw, theta_raw[0] if shared else theta_raw

    batch = psi.shape[:-2]
    flat = jax.vmap(one)(psi.reshape((-1,) + psi.shape[-2:]), theta.reshape((-1,) + theta.shape[len(batch) :]))
    return {name: x.reshape(batch + x.shape[1:]) for name, x in zip(RAW_SITES, flat, strict=True)}


def _sample_raw_chain(prior, post, num_actions: int, shared: bool):
    """The guide on the non-centred model's sites: psi_raw (L, d_psi), then theta_raw."""
    conds = core.prior_conditionals(prior, num_actions)

    def level(parent, xs):
        (cond, is_top, link), prior_cond = xs
        u = core.parent_means(prior, parent, is_top, link)
        mean, tril = _raw_conditional(prior_cond, cond, u)
        raw = numpyro.sample("psi_raw", dist.MultivariateNormal(mean, scale_tril=tril))
        psi = core.conditional_loc(prior_cond, u) + prior_cond.scale_tril @ raw
        return psi, psi

    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    prior_rows = core.chain_scan_inputs(prior, conds.latents)[0]
    _, psi = scan(level, top, (core.chain_scan_inputs(prior, post.latents), prior_rows))
    mean, tril = _raw_conditional(conds.theta, post.theta, prior.link1(psi[-1]))
    if shared:
        return numpyro.sample("theta_raw", dist.MultivariateNormal(mean[0], scale_tril=tril[0]))
    return numpyro.sample("theta_raw", dist.MultivariateNormal(mean, scale_tril=tril).to_event(1))


class DTSGuide:
    """Closed-form dTS posterior of a :class:`BanditModel`, usable wherever NumPyro takes a guide.

    It has the model's signature and exactly its latent sites (``psi``, ``theta``), and samples
    the conditionals of docs/math.md section 3: the top latent, each latent given the one above,
    then every theta_a given psi_1. Exact for affine links with Gaussian rewards; for nonlinear
    links ``linearisation`` picks the upward approximation, for GLM rewards each action's
    likelihood is Gaussianised (see :mod:`dts_ppl.core.likelihoods`; by default at the fit
    regularised at the prior's scale, ``likelihood.for_prior``). Called with ``y=None`` it is
    the prior. After each posterior computation ``guide.diagnostics`` holds
    ``{"linearisation_passes": int, "converged": bool}`` (when computed outside ``jit``).

    NumPyro's AutoGuide surface: the guide's ``params`` are its sufficient statistics, an
    :class:`dts_ppl.ActionStats` pytree (``params = guide.fit(X, A, y)``, or an agent state's
    statistics); ``sample_posterior(rng_key, params, *args, sample_shape=())``, ``median(params)``
    and ``quantiles(params, quantiles)`` (NumPyro's signatures) and ``get_posterior(params)`` take
    them; ``params=None`` means the bound statistics or data, else the prior.
    :meth:`from_statistics` rebuilds a guide from stored statistics without the raw data.

    Args:
        model: the BanditModel.
        linearisation: "iterated" (re-linearised to convergence,
            :func:`dts_ppl.core.inference.upward_pass`), "identity" (the paper) or "jacobian".
            None (default): the links' own rule
            (:func:`dts_ppl.core.inference.default_linearisation`), "iterated" for MLP links and
            "identity" for DDPM links.
        max_passes: most upward passes for "iterated".
        tol: tolerance of "iterated" on the change of the expansion points.
        data: (X, A, y) already checked by ``model.check_data`` (use :meth:`condition`).
        stats: ActionStats to condition on instead of data (use :meth:`from_statistics`).

    With the non-centred model (``model.noncentred()``, or :meth:`noncentred`) the guide's
    sites are the model's raw sites ``psi_raw`` and ``theta_raw``: the same posterior of
    (psi, theta), mapped through the prior's conditionals (:func:`to_raw_sites`), so NumPyro
    (PSIS, Predictive) can use it with the model NUTS samples.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from numpyro.infer import Predictive
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> model = BanditModel(prior, num_actions=3)
        >>> guide = DTSGuide(model)
        >>> X, A, y = jnp.ones((4, 2)), jnp.array([0, 1, 1, 2]), jnp.array([1.0, 0.5, 0.7, -1.0])
        >>> post = Predictive(model, guide=guide, num_samples=100)(jax.random.PRNGKey(0), X, A, y)
        >>> post["theta"].shape
        (100, 3, 2)
    """

    def __init__(
        self,
        model: BanditModel,
        linearisation: str | None = core.DEFAULT_LINEARISATION,
        max_passes: int = core.DEFAULT_MAX_PASSES,
        data: tuple | None = None,
        tol: float = core.DEFAULT_TOL,
        stats: ActionStats | None = None,
    ) -> None:
        if not isinstance(model, BanditModel):
            raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
        self.model = model
        self.linearisation = core.resolve_linearisation(model.prior, linearisation)
        self.tol, self.max_passes = core.check_pass_options(tol, max_passes)
        if data is not None and stats is not None:
            raise ValueError("stats: give data or statistics, not both")
        self.data = data
        self.stats = None if stats is None else self._check_stats(stats)
        self.diagnostics: dict = {}
        self._resolved_likelihood = None

    @classmethod
    def from_statistics(
        cls,
        model: BanditModel,
        stats: ActionStats,
        linearisation: str | None = core.DEFAULT_LINEARISATION,
        max_passes: int = core.DEFAULT_MAX_PASSES,
        tol: float = core.DEFAULT_TOL,
    ) -> DTSGuide:
        """A guide conditioned on stored sufficient statistics (no raw data needed).

        Args:
            model: the BanditModel.
            stats: ActionStats with G (K, d, d) and b (K, d), e.g. ``guide.fit(X, A, y)`` saved
                earlier, or a dTS agent state's statistics.
            linearisation, max_passes, tol: as in the constructor.

        Returns:
            A DTSGuide that ignores its call arguments' rewards and uses ``stats``; as a NumPyro
            guide it samples the posterior, ``Predictive(model, guide=g, ...)(key, X_new, A_new)``
            predicts at new inputs.
        """
        return cls(model, linearisation, max_passes, tol=tol, stats=stats)

    def _check_stats(self, stats) -> ActionStats:
        """Return ``stats`` as ActionStats of this model's shapes, else raise ValueError."""
        K, d = self.model.num_actions, self.model.prior.dim
        if not isinstance(stats, ActionStats):
            raise ValueError(f"params: expected ActionStats (from guide.fit(X, A, y)), got {type(stats).__name__}")
        if jnp.shape(stats.G) != (K, d, d) or jnp.shape(stats.b) != (K, d):
            raise ValueError(
                f"params: expected ActionStats with G {(K, d, d)} and b {(K, d)}, "
                f"got {jnp.shape(stats.G)} and {jnp.shape(stats.b)}"
            )
        dtype = self.model.prior.cov1.dtype
        return ActionStats(jnp.asarray(stats.G, dtype), jnp.asarray(stats.b, dtype))

    def noncentred(self) -> DTSGuide:
        """This guide on the sites of ``model.noncentred()`` (psi_raw, theta_raw)."""
        nc = self.model if self.model.parameterisation == "noncentred" else self.model.noncentred()
        return DTSGuide(nc, self.linearisation, self.max_passes, data=self.data, tol=self.tol, stats=self.stats)

    def __repr__(self):
        bound = ", data bound" if self.data is not None else ", statistics bound" if self.stats is not None else ""
        return f"DTSGuide({self.model!r}, linearisation={self.linearisation!r}{bound})"

    # -------------------------------------------------------------------- data and core calls
    def condition(self, X: ArrayLike, A: ArrayLike | None = None, y: ArrayLike | None = None) -> DTSGuide:
        """A copy of this guide bound to (X, A, y); it then ignores its call arguments.

        Use it for posterior predictions at new inputs:
        ``Predictive(model, guide=guide.condition(X, A, y), num_samples=N)(key, X_new, A_new)``.
        """
        if y is None:
            raise ValueError("y: condition() needs the observed rewards")
        data = self.model.check_data(X, A, y)
        return DTSGuide(self.model, self.linearisation, self.max_passes, data=data, tol=self.tol)

    def _data(self, X, A, y):
        if self.data is not None:
            return self.data
        return self.model.check_data(X, A, y)

    def statistics(
        self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None
    ) -> ActionStats:
        """Per-action evidence (G_a, b_a): (K, d, d), (K, d); zero when y is None.

        ``X`` may be ActionStats (the guide's params), returned checked; a guide made by
        :meth:`from_statistics` returns its own.
        """
        if isinstance(X, ActionStats):
            return self._check_stats(X)
        if self.stats is not None:
            return self.stats
        X, A, y = self._data(X, A, y)
        m = self.model
        if y is None:
            return empty_stats(m.num_actions, m.prior.dim, m.prior.cov1.dtype)
        return self._likelihood().statistics(X, A, y, m.num_actions)

    def posterior(
        self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None
    ) -> core.DTSPosterior:
        """The chain of posterior conditionals (see :class:`dts_ppl.core.inference.DTSPosterior`)."""
        return self._fit(self.statistics(X, A, y)).posterior

    def _likelihood(self):
        """The model's likelihood with its GLM expansion point resolved for the prior (cached)."""
        if self._resolved_likelihood is None:
            lik = self.model.likelihood
            if not lik.is_exact:
                lik = lik.for_prior(core.theta_prior_scale_cov(self.model.prior))
            self._resolved_likelihood = lik
        return self._resolved_likelihood

    def _fit(self, stats: ActionStats) -> core.PosteriorFit:
        """The core's posterior with its final linearisation; records the passes in ``diagnostics``."""
        fit = core.fit_posterior(self.model.prior, stats, self.linearisation, self.tol, self.max_passes)
        if _checks.is_concrete(fit.passes):
            self.diagnostics = {"linearisation_passes": int(fit.passes), "converged": bool(fit.converged)}
        return fit

    def _moments(self, stats: ActionStats) -> core.PosteriorMoments:
        """Moments at the linearisation the posterior's final upward pass used.

        With "identity" on nonlinear links that linearisation drops the links, so the moments
        use their Jacobian at the prior mean trajectory instead.
        """
        fit = self._fit(stats)
        lin = fit.linearisation
        if self.linearisation == "identity" and not self.model.prior.is_linear:
            lin = core.linearise(self.model.prior, "jacobian")
        return core.moments(self.model.prior, fit.posterior, lin)

    # ------------------------------------------------------------------------ NumPyro guide
    def __call__(self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None) -> jax.Array:
        m = self.model
        if m.parameterisation == "noncentred":
            return _sample_raw_chain(m.prior, self.posterior(X, A, y), m.num_actions, m.shared)
        psi, theta = sample_chain(m.prior, self.posterior(X, A, y), m.shared)
        return theta

    # ---------------------------------------------------------------- AutoGuide surface
    def fit(self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None) -> ActionStats:
        """The guide's params: its sufficient statistics on (X, A, y).

        Args:
            X: (n, d) contexts, A: (n,) actions, y: (n,) rewards (a bound guide uses its own).

        Returns:
            ActionStats, G (K, d, d) and b (K, d): a pytree to pass as ``params`` to
            :meth:`sample_posterior`, :meth:`median`, :meth:`quantiles`, :meth:`get_posterior`,
            or to store and give to :meth:`from_statistics`.
        """
        return self.statistics(X, A, y)

    def _params(self, params: ActionStats | None) -> ActionStats:
        """The statistics a call conditions on: ``params`` checked, or for None the bound
        statistics or data (the prior when the guide has none)."""
        if params is None:
            return self.statistics()
        if not isinstance(params, ActionStats):
            raise ValueError(
                f"params: expected ActionStats (params = guide.fit(X, A, y)) or None, got {type(params).__name__}"
            )
        return self._check_stats(params)

    def sample_posterior(
        self,
        rng_key: jax.Array,
        params: ActionStats | None,
        *args: object,
        sample_shape: tuple[int, ...] = (),
        **kwargs: object,
    ) -> dict:
        """Draws of every latent site from the joint posterior (vectorised; faster than Predictive).

        NumPyro's ``AutoGuide.sample_posterior`` signature.

        Args:
            rng_key: PRNG key.
            params: ActionStats from :meth:`fit`; None: the bound statistics or data
                (:meth:`from_statistics`, :meth:`condition`), else the prior.
            *args, **kwargs: the model's arguments, ignored (as by NumPyro's AutoGuides, which
                need them only to trace the model).
            sample_shape: leading shape of the draws.

        Returns:
            {"psi": (*sample_shape, L, d_psi), "theta": (*sample_shape, K, d)} ((*sample_shape, d) shared).
            With the non-centred model the draws are of its sites: {"psi_raw", "theta_raw"}, same shapes.
        """
        post = self.posterior(self._params(params))
        psi, theta = core.sample(rng_key, self.model.prior, post, tuple(sample_shape))
        if self.model.shared:
            theta = theta[..., 0, :]
        if self.model.parameterisation == "noncentred":
            return to_raw_sites(self.model.prior, psi, theta, self.model.num_actions, self.model.shared)
        return {"psi": psi, "theta": theta}

    def moments(
        self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None
    ) -> core.PosteriorMoments:
        """Per-level posterior means and covariances (exact for affine links; linearised otherwise)."""
        return self._moments(self.statistics(X, A, y))

    def _site_moments(self, stats: ActionStats) -> dict:
        """{site: (mean, cov)}: psi (L, d_psi), (L, d_psi, d_psi); theta (K, d), (K, d, d) (or (d,), (d, d) shared)."""
        mo = self.moments(stats)
        theta = (mo.theta_mean[0], mo.theta_cov[0]) if self.model.shared else (mo.theta_mean, mo.theta_cov)
        return {"psi": (mo.psi_mean, mo.psi_cov), "theta": theta}

    def median(self, params: ActionStats | None) -> dict:
        """Posterior means (= medians for the Gaussian guide) of each latent site (NumPyro's ``AutoGuide.median``).

        Args:
            params: ActionStats from :meth:`fit`; None: the bound statistics or data, else the prior.

        Returns:
            {"psi": (L, d_psi), "theta": (K, d)} ((d,) shared).
        """
        return {site: mean for site, (mean, _) in self._site_moments(self._params(params)).items()}

    def quantiles(self, params: ActionStats | None, quantiles: Sequence[float] | jax.Array) -> dict:
        """Marginal quantiles of each latent coordinate (NumPyro's ``AutoGuide.quantiles``).

        Args:
            params: ActionStats from :meth:`fit`; None: the bound statistics or data, else the prior.
            quantiles: 1-d levels in (0, 1), e.g. [0.05, 0.5, 0.95].

        Returns:
            {site: (len(quantiles), *site_shape)}.
        """
        stats = self._params(params)
        try:
            q = np.asarray(quantiles, dtype=np.float64)
        except (TypeError, ValueError):
            q = np.full((), np.nan)
        if q.ndim != 1 or not bool(np.all((q > 0) & (q < 1))):
            raise ValueError(f"quantiles: expected a 1-d list of levels in (0, 1), got {quantiles!r}")
        z = ndtri(jnp.asarray(q)).astype(self.model.prior.cov1.dtype)

        def qs(mean, cov):
            sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
            return mean[None] + z.reshape((-1,) + (1,) * mean.ndim) * sd[None]

        return {site: qs(mean, cov) for site, (mean, cov) in self._site_moments(stats).items()}

    def get_posterior(self, params: ActionStats | None) -> dict:
        """The posterior of each site as NumPyro distributions: per level and per action, not joint.

        The joint posterior of (psi, theta) couples every level and every action through psi_1
        (its covariance is (L d_psi + K d)^2, too large at K = 10^4); this returns its marginals
        per level and per action, the same moments as :meth:`median` and :meth:`quantiles`
        (exact for affine links, linearised otherwise). Joint draws: :meth:`sample_posterior`.

        Args:
            params: ActionStats from :meth:`fit` (None: the bound statistics or data, else the prior).

        Returns:
            {"psi": MultivariateNormal, batch (L,), event (d_psi,); "theta": MultivariateNormal,
            batch (K,), event (d,) (no batch when shared)}.
        """
        stats = self._params(params)
        return {
            site: dist.MultivariateNormal(mean, scale_tril=psd_cholesky(cov))
            for site, (mean, cov) in self._site_moments(stats).items()
        }
