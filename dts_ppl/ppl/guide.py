"""The dTS posterior as a NumPyro guide."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import ndtri

from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, empty_stats
from dts_ppl.core.linalg import psd_cholesky
from dts_ppl.core.links import check_linearisation
from dts_ppl.ppl.model import BanditModel, sample_chain


class DTSGuide:
    """Closed-form dTS posterior of a :class:`BanditModel`, usable wherever NumPyro takes a guide.

    It has the model's signature and exactly its latent sites (``psi``, ``theta``), and samples
    the conditionals of docs/math.md section 3: the top latent, each latent given the one above,
    then every theta_a given psi_1. Exact for affine links with Gaussian rewards; for nonlinear
    links ``linearisation`` picks the upward approximation, for GLM rewards each action's
    likelihood is Gaussianised (see :mod:`dts_ppl.core.likelihoods`). Called with ``y=None`` it is
    the prior.

    NumPyro's AutoGuide surface: the guide's ``params`` are its sufficient statistics, an
    :class:`dts_ppl.ActionStats` pytree (``params = guide.fit(X, A, y)``, or an agent state's
    statistics); ``sample_posterior(rng_key, params, sample_shape=())``, ``median(params)``,
    ``quantiles(params, quantiles)`` and ``get_posterior(params)`` take them, and
    :meth:`from_statistics` rebuilds a guide from stored statistics without the raw data.

    Args:
        model: the BanditModel.
        linearisation: "identity" (the paper), "jacobian" or "iterated".
        num_iterations: passes for "iterated".
        data: (X, A, y) already checked by ``model.check_data`` (use :meth:`condition`).
        stats: ActionStats to condition on instead of data (use :meth:`from_statistics`).

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
        linearisation: str = "identity",
        num_iterations: int = 3,
        data=None,
        stats: ActionStats | None = None,
    ):
        if not isinstance(model, BanditModel):
            raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
        if model.parameterisation != "centred":
            raise ValueError(
                "model: DTSGuide samples the centred sites psi and theta; build it from the centred model "
                "(BanditModel(...) rather than model.noncentred())"
            )
        self.model = model
        self.linearisation = check_linearisation(linearisation)
        if num_iterations < 1:
            raise ValueError(f"num_iterations: expected >= 1, got {num_iterations}")
        self.num_iterations = int(num_iterations)
        if data is not None and stats is not None:
            raise ValueError("stats: give data or statistics, not both")
        self.data = data
        self.stats = None if stats is None else self._check_stats(stats)

    @classmethod
    def from_statistics(
        cls, model: BanditModel, stats: ActionStats, linearisation: str = "identity", num_iterations: int = 3
    ) -> DTSGuide:
        """A guide conditioned on stored sufficient statistics (no raw data needed).

        Args:
            model: the BanditModel.
            stats: ActionStats with G (K, d, d) and b (K, d), e.g. ``guide.fit(X, A, y)`` saved
                earlier, or a dTS agent state's statistics.
            linearisation, num_iterations: as in the constructor.

        Returns:
            A DTSGuide that ignores its call arguments' rewards and uses ``stats``; as a NumPyro
            guide it samples the posterior, ``Predictive(model, guide=g, ...)(key, X_new, A_new)``
            predicts at new inputs.
        """
        return cls(model, linearisation, num_iterations, stats=stats)

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

    def __repr__(self):
        bound = ", data bound" if self.data is not None else ", statistics bound" if self.stats is not None else ""
        return f"DTSGuide({self.model!r}, linearisation={self.linearisation!r}{bound})"

    # -------------------------------------------------------------------- data and core calls
    def condition(self, X, A=None, y=None) -> DTSGuide:
        """A copy of this guide bound to (X, A, y); it then ignores its call arguments.

        Use it for posterior predictions at new inputs:
        ``Predictive(model, guide=guide.condition(X, A, y), num_samples=N)(key, X_new, A_new)``.
        """
        if y is None:
            raise ValueError("y: condition() needs the observed rewards")
        data = self.model.check_data(X, A, y)
        return DTSGuide(self.model, self.linearisation, self.num_iterations, data=data)

    def _data(self, X, A, y):
        if self.data is not None:
            return self.data
        return self.model.check_data(X, A, y)

    def statistics(self, X=None, A=None, y=None) -> ActionStats:
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
        return m.likelihood.statistics(X, A, y, m.num_actions)

    def posterior(self, X=None, A=None, y=None) -> core.DTSPosterior:
        """The chain of posterior conditionals (see :class:`dts_ppl.core.inference.DTSPosterior`).

        ``X`` may be the guide's params (ActionStats) instead of data.
        """
        stats = self.statistics(X, A, y)
        return core.posterior(self.model.prior, stats, self.linearisation, self.num_iterations)

    def _lin(self):
        method = "jacobian" if self.linearisation == "iterated" else self.linearisation
        if not self.model.prior.is_linear and self.linearisation == "identity":
            # Moments through the identity rule would ignore the links entirely.
            method = "jacobian"
        return core.linearise(self.model.prior, method)

    # ------------------------------------------------------------------------ NumPyro guide
    def __call__(self, X=None, A=None, y=None):
        m = self.model
        psi, theta = sample_chain(m.prior, self.posterior(X, A, y), m.shared)
        return theta

    # ---------------------------------------------------------------- AutoGuide surface
    def fit(self, X=None, A=None, y=None) -> ActionStats:
        """The guide's params: its sufficient statistics on (X, A, y).

        Args:
            X: (n, d) contexts, A: (n,) actions, y: (n,) rewards (a bound guide uses its own).

        Returns:
            ActionStats, G (K, d, d) and b (K, d): a pytree to pass as ``params`` to
            :meth:`sample_posterior`, :meth:`median`, :meth:`quantiles`, :meth:`get_posterior`,
            or to store and give to :meth:`from_statistics`.
        """
        return self.statistics(X, A, y)

    def _params(self, method: str, params, args, kwargs) -> ActionStats:
        """The statistics of a call: from ActionStats ``params`` (the AutoGuide form), or from the
        deprecated data form ``method(X, A, y)`` (DeprecationWarning)."""
        if isinstance(params, ActionStats):
            return self._check_stats(params)
        if params is None and not args and not kwargs:
            return self.statistics()  # bound statistics or data; the prior otherwise
        if isinstance(params, dict | tuple):
            raise ValueError(f"params: expected ActionStats (from guide.fit(X, A, y)), got {type(params).__name__}")
        warnings.warn(
            f"DTSGuide.{method}: passing the data (X, A, y) is deprecated and will be removed in the next "
            f"version; pass params = guide.fit(X, A, y) instead",
            DeprecationWarning,
            stacklevel=3,
        )
        data = dict(zip(("X", "A", "y"), (params, *args), strict=False))
        data.update(kwargs)
        return self.statistics(data.get("X"), data.get("A"), data.get("y"))

    def sample_posterior(self, rng_key, params=None, *args, sample_shape=(), **kwargs) -> dict:
        """Draws of every latent site from the joint posterior (vectorised; faster than Predictive).

        Args:
            rng_key: PRNG key.
            params: ActionStats from :meth:`fit` (None: the bound statistics or data, else the prior).
                The deprecated form ``sample_posterior(key, X, A, y, sample_shape)`` still works.
            *args, **kwargs: the model's arguments, ignored (as by NumPyro's AutoGuides, which
                need them only to trace the model).
            sample_shape: leading shape of the draws.

        Returns:
            {"psi": (*sample_shape, L, d_psi), "theta": (*sample_shape, K, d)} ((*sample_shape, d) shared).
        """
        if not isinstance(params, ActionStats) and len(args) == 3 and not kwargs:
            args, sample_shape = args[:2], args[2]  # deprecated positional sample_shape
        stats = self._params("sample_posterior", params, args, kwargs)
        post = self.posterior(stats)
        psi, theta = core.sample(rng_key, self.model.prior, post, tuple(sample_shape))
        if self.model.shared:
            theta = theta[..., 0, :]
        return {"psi": psi, "theta": theta}

    def moments(self, X=None, A=None, y=None) -> core.PosteriorMoments:
        """Per-level posterior means and covariances (exact for affine links; linearised otherwise).

        ``X`` may be the guide's params (ActionStats) instead of data.
        """
        post = self.posterior(X, A, y)
        lin = self._lin()
        if self.linearisation == "iterated" and not self.model.prior.is_linear:
            # the linearisation point the last pass used
            lin = core.linearise(self.model.prior, "iterated", core.moments(self.model.prior, post, lin).psi_mean)
        return core.moments(self.model.prior, post, lin)

    def _site_moments(self, stats: ActionStats) -> dict:
        """{site: (mean, cov)}: psi (L, d_psi), (L, d_psi, d_psi); theta (K, d), (K, d, d) (or (d,), (d, d) shared)."""
        mo = self.moments(stats)
        theta = (mo.theta_mean[0], mo.theta_cov[0]) if self.model.shared else (mo.theta_mean, mo.theta_cov)
        return {"psi": (mo.psi_mean, mo.psi_cov), "theta": theta}

    def median(self, params=None, *args, **kwargs) -> dict:
        """Posterior means (= medians for the Gaussian guide) of each latent site.

        Args:
            params: ActionStats from :meth:`fit` (None: the bound statistics or data, else the
                prior). The deprecated form ``median(X, A, y)`` still works.

        Returns:
            {"psi": (L, d_psi), "theta": (K, d)} ((d,) shared).
        """
        stats = self._params("median", params, args, kwargs)
        return {site: mean for site, (mean, _) in self._site_moments(stats).items()}

    def quantiles(self, params, quantiles=None, *args, **kwargs) -> dict:
        """Marginal quantiles of each latent coordinate.

        Args:
            params: ActionStats from :meth:`fit`.
            quantiles: 1-d levels in (0, 1), e.g. [0.05, 0.5, 0.95]. The deprecated form
                ``quantiles(levels, X, A, y)`` still works.

        Returns:
            {site: (len(quantiles), *site_shape)}.
        """
        if isinstance(params, ActionStats) or (params is None and not args and not kwargs):
            stats, levels = self._params("quantiles", params, (), {}), quantiles
        else:  # deprecated: quantiles(levels, X, A, y)
            stats, levels = self._params("quantiles", quantiles, args, kwargs), params
        if levels is None:
            raise ValueError("quantiles: expected a 1-d list of levels in (0, 1), got None")
        q = jnp.asarray(levels)
        if q.ndim != 1 or not bool(np.all((np.asarray(q) > 0) & (np.asarray(q) < 1))):
            raise ValueError(f"quantiles: expected a 1-d list of levels in (0, 1), got {levels}")
        z = ndtri(q).astype(self.model.prior.cov1.dtype)

        def qs(mean, cov):
            sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
            return mean[None] + z.reshape((-1,) + (1,) * mean.ndim) * sd[None]

        return {site: qs(mean, cov) for site, (mean, cov) in self._site_moments(stats).items()}

    def get_posterior(self, params=None) -> dict:
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
        stats = self._params("get_posterior", params, (), {})
        return {
            site: dist.MultivariateNormal(mean, scale_tril=psd_cholesky(cov))
            for site, (mean, cov) in self._site_moments(stats).items()
        }
