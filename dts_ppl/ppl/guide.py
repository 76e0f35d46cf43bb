"""The dTS posterior as a NumPyro guide."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

from dts_ppl.core import checks as _checks
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, empty_stats
from dts_ppl.core.links import check_linearisation
from dts_ppl.ppl.model import BanditModel, sample_chain


class DTSGuide:
    """Closed-form dTS posterior of a :class:`BanditModel`, usable wherever NumPyro takes a guide.

    It has the model's signature and exactly its latent sites (``psi``, ``theta``), and samples
    the conditionals of MATH.md section 3: the top latent, each latent given the one above,
    then every theta_a given psi_1. Exact for affine links with Gaussian rewards; for nonlinear
    links ``linearisation`` picks the upward approximation, for GLM rewards each action's
    likelihood is Gaussianised (see :mod:`dts_ppl.core.likelihoods`). Called with ``y=None`` it is
    the prior.

    Args:
        model: the BanditModel.
        linearisation: "identity" (the paper), "jacobian" or "iterated".
        num_iterations: passes for "iterated".

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

    def __init__(self, model: BanditModel, linearisation: str = "identity", num_iterations: int = 3, data=None):
        if not isinstance(model, BanditModel):
            raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
        if model.parameterisation != "centred":
            raise ValueError(
                "model: DTSGuide samples the centred sites psi and theta; build it from the centred model "
                "(BanditModel(...) rather than model.noncentred())"
            )
        self.model = model
        self.linearisation = check_linearisation(linearisation)
        self.num_iterations = _checks.check_int("num_iterations", num_iterations, 1)
        self.data = data

    def __repr__(self):
        bound = ", data bound" if self.data is not None else ""
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
        """Per-action evidence (G_a, b_a): (K, d, d), (K, d); zero when y is None."""
        X, A, y = self._data(X, A, y)
        m = self.model
        if y is None:
            return empty_stats(m.num_actions, m.prior.dim, m.prior.cov1.dtype)
        return m.likelihood.statistics(X, A, y, m.num_actions)

    def posterior(self, X=None, A=None, y=None) -> core.DTSPosterior:
        """The chain of posterior conditionals (see :class:`dts_ppl.core.inference.DTSPosterior`)."""
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

    # ---------------------------------------------------------------- AutoGuide-like surface
    def sample_posterior(self, key, X=None, A=None, y=None, sample_shape=()) -> dict:
        """Draws of every latent site: {"psi": (*sample_shape, L, d_psi), "theta": (*sample_shape, K, d)}.

        The posterior is computed once and the draws are vectorised (faster than Predictive).
        """
        psi, theta = core.sample(key, self.model.prior, self.posterior(X, A, y), tuple(sample_shape))
        if self.model.shared:
            theta = theta[..., 0, :]
        return {"psi": psi, "theta": theta}

    def moments(self, X=None, A=None, y=None) -> core.PosteriorMoments:
        """Per-level posterior means and covariances (exact for affine links; linearised otherwise)."""
        post = self.posterior(X, A, y)
        lin = self._lin()
        if self.linearisation == "iterated" and not self.model.prior.is_linear:
            # the linearisation point the last pass used
            lin = core.linearise(self.model.prior, "iterated", core.moments(self.model.prior, post, lin).psi_mean)
        return core.moments(self.model.prior, post, lin)

    def median(self, X=None, A=None, y=None) -> dict:
        """Posterior means (= medians for the Gaussian guide) of each latent site."""
        mo = self.moments(X, A, y)
        theta = mo.theta_mean[0] if self.model.shared else mo.theta_mean
        return {"psi": mo.psi_mean, "theta": theta}

    def quantiles(self, quantiles, X=None, A=None, y=None) -> dict:
        """Marginal quantiles of each latent coordinate: {site: (len(quantiles), *site_shape)}."""
        q = jnp.asarray(quantiles)
        if q.ndim != 1 or not bool(np.all((np.asarray(q) > 0) & (np.asarray(q) < 1))):
            raise ValueError(f"quantiles: expected a 1-d list of levels in (0, 1), got {quantiles}")
        mo = self.moments(X, A, y)
        z = ndtri(q).astype(mo.psi_mean.dtype)

        def qs(mean, cov):
            sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
            return mean[None] + z.reshape((-1,) + (1,) * mean.ndim) * sd[None]

        theta = qs(mo.theta_mean, mo.theta_cov)
        return {"psi": qs(mo.psi_mean, mo.psi_cov), "theta": theta[:, 0] if self.model.shared else theta}
