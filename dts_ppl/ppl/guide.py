"""The dTS posterior as a NumPyro guide."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import ndtri
from numpyro.contrib.control_flow import scan

from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import ActionStats, empty_stats
from dts_ppl.core.links import check_linearisation
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
    the conditionals of MATH.md section 3: the top latent, each latent given the one above,
    then every theta_a given psi_1. Exact for affine links with Gaussian rewards; for nonlinear
    links ``linearisation`` picks the upward approximation, for GLM rewards each action's
    likelihood is Gaussianised (see :mod:`dts_ppl.core.likelihoods`). Called with ``y=None`` it is
    the prior.

    Args:
        model: the BanditModel.
        linearisation: "identity" (the paper), "jacobian" or "iterated".
        num_iterations: passes for "iterated".

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

    def __init__(self, model: BanditModel, linearisation: str = "identity", num_iterations: int = 3, data=None):
        if not isinstance(model, BanditModel):
            raise ValueError(f"model: expected a BanditModel, got {type(model).__name__}")
        self.model = model
        self.linearisation = check_linearisation(linearisation)
        if num_iterations < 1:
            raise ValueError(f"num_iterations: expected >= 1, got {num_iterations}")
        self.num_iterations = int(num_iterations)
        self.data = data

    def noncentred(self) -> DTSGuide:
        """This guide on the sites of ``model.noncentred()`` (psi_raw, theta_raw)."""
        nc = self.model if self.model.parameterisation == "noncentred" else self.model.noncentred()
        return DTSGuide(nc, self.linearisation, self.num_iterations, data=self.data)

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
        if m.parameterisation == "noncentred":
            return _sample_raw_chain(m.prior, self.posterior(X, A, y), m.num_actions, m.shared)
        psi, theta = sample_chain(m.prior, self.posterior(X, A, y), m.shared)
        return theta

    # ---------------------------------------------------------------- AutoGuide-like surface
    def sample_posterior(self, key, X=None, A=None, y=None, sample_shape=()) -> dict:
        """Draws of every latent site: {"psi": (*sample_shape, L, d_psi), "theta": (*sample_shape, K, d)}.

        The posterior is computed once and the draws are vectorised (faster than Predictive).
        With the non-centred model the draws are of its sites: {"psi_raw", "theta_raw"}, same shapes.
        """
        psi, theta = core.sample(key, self.model.prior, self.posterior(X, A, y), tuple(sample_shape))
        if self.model.shared:
            theta = theta[..., 0, :]
        if self.model.parameterisation == "noncentred":
            return to_raw_sites(self.model.prior, psi, theta, self.model.num_actions, self.model.shared)
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
