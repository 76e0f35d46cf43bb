"""The bandit's generative model as a NumPyro program.

Site names, in the order they are sampled:

- ``psi``: (L, d_psi), the latent chain, sampled top-down with
  ``numpyro.contrib.control_flow.scan``, rows in sampling order: ``psi[0]`` is the top latent
  psi_L and ``psi[-1]`` is psi_1 (so ``psi[L - l]`` is psi_l).
- ``theta``: (K, d) action parameters inside ``plate("actions", K)`` (``(d,)`` and no plate with
  ``shared=True``).
- ``y``: (n,) rewards, observed when given, inside ``plate("obs", n)``.

Every site names its dimensions (plates, and ``infer={"event_dims": ...}`` for the event axes), so
``arviz.from_numpyro`` and :func:`dts_ppl.to_inference_data` label them alike: ``psi`` (level,
latent_feature), ``theta`` (actions, feature), ``y`` (obs).

The model samples each level from the prior's conditionals; :class:`dts_ppl.DTSGuide`
samples the same sites through the same function, :func:`sample_chain`, with the posterior's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro.contrib.control_flow import scan

from dts_ppl.core import checks as _checks
from dts_ppl.core.inference import (
    DTSPosterior,
    chain_scan_inputs,
    conditional_loc,
    parent_means,
    prior_conditionals,
)
from dts_ppl.core.likelihoods import Bernoulli, Gaussian, Poisson, linear_predictor
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood

LATENT_SITES = ("psi", "theta")
# the names of each site's dimensions (ArviZ dims), batch (plate) dims first
SITE_DIMS = {"psi": ("level", "latent_feature"), "theta": ("actions", "feature"), "y": ("obs",)}
ACTIONS_PLATE, OBS_PLATE = "actions", "obs"


def reward_distribution(likelihood: Likelihood, eta: jax.Array) -> dist.Distribution:
    """The NumPyro distribution of rewards given the linear predictor eta, for a core likelihood."""
    name = getattr(likelihood, "name", None)
    if name == "gaussian":
        return dist.Normal(eta, likelihood.scale)
    if name == "bernoulli":
        return dist.Bernoulli(logits=eta)
    if name == "poisson":
        return dist.Poisson(jnp.exp(eta))
    raise ValueError(f"likelihood: expected Gaussian, Bernoulli or Poisson, got {likelihood!r}")


PARAMETERISATIONS = ("centred", "noncentred")


def check_parameterisation(parameterisation: str) -> str:
    """Return ``parameterisation`` if it is one of :data:`PARAMETERISATIONS`, else raise ValueError."""
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation: expected one of {PARAMETERISATIONS}, got {parameterisation!r}")
    return parameterisation


def sample_chain(prior: DiffusionPrior, conds: DTSPosterior, shared: bool, parameterisation: str = "centred"):
    """Sample sites ``psi`` then ``theta`` from a chain of Gaussian conditionals.

    ``parameterisation="noncentred"`` samples standard-normal sites ``psi_raw`` and
    ``theta_raw`` instead and records ``psi = loc + scale_tril @ psi_raw`` (and theta alike) as
    deterministic sites: the same distribution of (psi, theta), a geometry NUTS finds easier
    when the chain's conditionals are much narrower than their marginals (DDPM chains).

    Returns:
        psi (L, d_psi) and theta (K, d), or (d,) when ``shared``.
    """
    centred = check_parameterisation(parameterisation) == "centred"

    def draw(name, loc, tril, event_names):
        infer = {"event_dims": list(event_names)}
        if centred:
            return numpyro.sample(name, dist.MultivariateNormal(loc, scale_tril=tril), infer=infer)
        raw = numpyro.sample(name + "_raw", dist.Normal(jnp.zeros_like(loc), 1.0).to_event(1), infer=infer)
        return loc + jnp.einsum("...ij,...j->...i", tril, raw)

    def level(psi_parent, xs):
        cond, is_top, link = xs
        loc = conditional_loc(cond, parent_means(prior, psi_parent, is_top, link))
        # scan stacks the levels into the site's first axis, which no plate names: it goes in event_dims
        psi = draw("psi", loc, cond.scale_tril, SITE_DIMS["psi"])
        return psi, psi

    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    _, psi = scan(level, top, chain_scan_inputs(prior, conds.latents))
    loc = conditional_loc(conds.theta, prior.link1(psi[-1]))
    tril = conds.theta.scale_tril
    if shared:
        theta = draw("theta", loc[0], tril[0], SITE_DIMS["theta"][1:])
    else:
        with numpyro.plate(ACTIONS_PLATE, loc.shape[0]):
            theta = draw("theta", loc, tril, SITE_DIMS["theta"][1:])
    if not centred:
        psi = numpyro.deterministic("psi", psi)
        theta = numpyro.deterministic("theta", theta)
    return psi, theta


class BanditModel:
    """Contextual bandit with a diffusion prior: ``model(X, A, y=None)``.

    Args:
        prior: DiffusionPrior (theta dimension d).
        num_actions: K, the number of actions (omit with ``shared=True``).
        likelihood: Gaussian(scale) (default Gaussian(1.0)), Bernoulli() or Poisson(). The
            model's GLM likelihood is exact; its expansion point only sets where the guide
            Gaussianises it (by default at the prior's scale, ``likelihood.for_prior``).
        shared: one parameter theta (d,) for all actions; X then holds the features
            phi(x_i, A_i) of the played pairs and A is not used (pass None).
        parameterisation: "centred" (default: sample sites ``psi`` and ``theta``, as the
            guide does) or "noncentred" (standard-normal sites ``psi_raw``, ``theta_raw``;
            ``psi`` and ``theta`` become deterministic sites). Same distribution; use
            :meth:`noncentred` to give NUTS the easier geometry on deep DDPM chains.

    Call arguments:
        X: (n, d) contexts (or features); None for no data.
        A: (n,) int actions in [0, K).
        y: (n,) rewards; None samples them.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from numpyro.infer import Predictive
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> model = BanditModel(prior, num_actions=3)
        >>> draws = Predictive(model, num_samples=4)(jax.random.PRNGKey(0), jnp.ones((5, 2)), jnp.zeros(5, int))
        >>> draws["psi"].shape, draws["theta"].shape, draws["y"].shape
        ((4, 1, 2), (4, 3, 2), (4, 5))
    """

    def __init__(
        self,
        prior: DiffusionPrior,
        num_actions: int | None = None,
        likelihood: Likelihood | None = None,
        shared: bool = False,
        parameterisation: str = "centred",
    ) -> None:
        if not isinstance(prior, DiffusionPrior):
            raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
        if not isinstance(shared, bool | np.bool_):
            raise ValueError(f"shared: expected True or False, got {shared!r}")
        if shared:
            if num_actions not in (None, 1):
                raise ValueError(
                    f"num_actions: the shared-parameter model has one theta; got num_actions={num_actions}"
                )
            num_actions = 1
        else:
            num_actions = _checks.check_int("num_actions", num_actions, 1)
        likelihood = Gaussian(1.0) if likelihood is None else likelihood
        if not isinstance(likelihood, Gaussian | Bernoulli | Poisson):
            raise ValueError(f"likelihood: expected Gaussian, Bernoulli or Poisson, got {likelihood!r}")
        self.prior = prior
        self.num_actions = int(num_actions)
        self.likelihood = likelihood
        self.shared = bool(shared)
        self.parameterisation = check_parameterisation(parameterisation)

    def noncentred(self) -> BanditModel:
        """The same model with the non-centred parameterisation (for NUTS; see ``parameterisation``)."""
        return BanditModel(
            self.prior, None if self.shared else self.num_actions, self.likelihood, self.shared, "noncentred"
        )

    def __repr__(self):
        kind = "shared" if self.shared else f"K={self.num_actions}"
        return (
            f"BanditModel({kind}, d={self.prior.dim}, d_psi={self.prior.latent_dim}, "
            f"L={self.prior.num_levels}, likelihood={self.likelihood}"
            + (", noncentred)" if self.parameterisation == "noncentred" else ")")
        )

    @property
    def latent_shapes(self) -> dict:
        """Shapes of the latent sites, in sampling order."""
        theta = (self.prior.dim,) if self.shared else (self.num_actions, self.prior.dim)
        return {"psi": (self.prior.num_levels, self.prior.latent_dim), "theta": theta}

    def check_data(
        self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """Validate and convert (X, A, y). Returns (X (n, d), A (n,) int32, y (n,) or None).

        With no data (X None) returns empty arrays. With ``shared=True`` A is all zeros.
        """
        d, dtype = self.prior.dim, self.prior.cov1.dtype
        if X is None:
            if y is not None or A is not None:
                raise ValueError("X: contexts are required when actions A or rewards y are given")
            return jnp.zeros((0, d), dtype), jnp.zeros((0,), jnp.int32), None
        X = _checks.as_array("X", X, shape=(None, d)).astype(dtype)
        _checks.check_finite("X", X)
        n = X.shape[0]
        if self.shared:
            if A is not None:
                raise ValueError(
                    "A: the shared-parameter model takes features X = phi(x, a) and no actions; pass A=None"
                )
            A = jnp.zeros(n, jnp.int32)
        else:
            A = _checks.check_actions("A", A, self.num_actions, length=n)
        if y is not None:
            y = _checks.as_array("y", y, shape=(n,)).astype(dtype)
            self.likelihood.check_rewards("y", y)
        return X, A, y

    def __call__(self, X: ArrayLike | None = None, A: ArrayLike | None = None, y: ArrayLike | None = None) -> jax.Array:
        X, A, y = self.check_data(X, A, y)
        conds = prior_conditionals(self.prior, self.num_actions)
        psi, theta = sample_chain(self.prior, conds, self.shared, self.parameterisation)
        eta = linear_predictor(X, theta, None if self.shared else A)
        if X.shape[0]:
            with numpyro.plate(OBS_PLATE, X.shape[0]):
                numpyro.sample("y", reward_distribution(self.likelihood, eta), obs=y)
        return theta
