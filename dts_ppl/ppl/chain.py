"""Building blocks for your own NumPyro model: a diffusion chain and a reward site a guide can read.

Call :func:`diffusion_chain` inside any NumPyro model to sample the chain's sites exactly as
:class:`dts_ppl.BanditModel` does (``psi`` (L, d_psi) top-down, ``theta`` (K, d) in
``plate("actions", K)``; same names and dims, so ArviZ labels them alike), and declare the
rewards with :func:`bandit_rewards`. Both record what they are in the site's ``infer`` dict
(``"dts_chain"`` on ``theta``, ``"dts_rewards"`` on the reward site), which is how
:class:`dts_ppl.AutoDTS` finds the chain, the contexts, the actions, the likelihood (whose
Gaussian scale may be a sample site of your model) and the offset (any other term of the linear
predictor: random intercepts, a baseline) in a trace of your model.

Example:
    >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
    >>> from dts_ppl import DiffusionPrior, Gaussian
    >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
    >>> def model(X, A, user, y=None):
    ...     psi, theta = diffusion_chain(prior, num_actions=3)
    ...     sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    ...     with numpyro.plate("users", 4):
    ...         u = numpyro.sample("u", dist.Normal(0.0, 0.5))
    ...     return bandit_rewards("y", X, A, theta, Gaussian(sigma), offset=u[user], obs=y)
    >>> from numpyro.infer import Predictive
    >>> X, A, user = jnp.ones((5, 2)), jnp.array([0, 1, 2, 0, 1]), jnp.array([0, 1, 2, 3, 0])
    >>> Predictive(model, num_samples=2)(jax.random.PRNGKey(0), X, A, user)["y"].shape
    (2, 5)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
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

#: The ``infer`` keys that mark a diffusion chain's ``theta`` site and a reward site.
CHAIN_KEY, REWARDS_KEY = "dts_chain", "dts_rewards"
LATENT_SITES = ("psi", "theta")
# the names of each site's dimensions (ArviZ dims), batch (plate) dims first
SITE_DIMS = {"psi": ("level", "latent_feature"), "theta": ("actions", "feature"), "y": ("obs",)}
ACTIONS_PLATE, OBS_PLATE = "actions", "obs"


class ChainInfo(NamedTuple):
    """What :func:`diffusion_chain` records on its ``theta`` site (``infer["dts_chain"]``).

    Attributes:
        prior: the DiffusionPrior (its arrays may depend on other sample sites).
        num_actions: K (1 when ``shared``).
        shared: one theta (d,) for every action.
        parameterisation: "centred" or "noncentred".
    """

    prior: DiffusionPrior
    num_actions: int
    shared: bool
    parameterisation: str

    # Site metadata: JAX caches traces keyed on it (ArviZ 1.x's from_numpyro runs jax.eval_shape over a
    # model trace), so it must compare without comparing arrays: by identity.
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class RewardsInfo(NamedTuple):
    """What :func:`bandit_rewards` records on its site (``infer["dts_rewards"]``).

    Attributes:
        X: (n, d) contexts (features with a shared theta).
        A: (n,) int actions, or None with a shared theta.
        likelihood: Gaussian (its scale may be a sample site's value), Bernoulli or Poisson.
        offset: (n,) the linear predictor's other terms, or None.
    """

    X: jax.Array
    A: jax.Array | None
    likelihood: object
    offset: jax.Array | None

    # Site metadata: JAX caches traces keyed on it (ArviZ 1.x's from_numpyro runs jax.eval_shape over a
    # model trace), so it must compare without comparing arrays: by identity.
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


PARAMETERISATIONS = ("centred", "noncentred")


def check_parameterisation(parameterisation: str) -> str:
    """Return ``parameterisation`` if it is one of :data:`PARAMETERISATIONS`, else raise ValueError."""
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation: expected one of {PARAMETERISATIONS}, got {parameterisation!r}")
    return parameterisation


def sample_chain(
    prior: DiffusionPrior,
    conds: DTSPosterior,
    shared: bool,
    parameterisation: str = "centred",
    infer: dict | None = None,
):
    """Sample sites ``psi`` then ``theta`` from a chain of Gaussian conditionals.

    ``parameterisation="noncentred"`` samples standard-normal sites ``psi_raw`` and
    ``theta_raw`` instead and records ``psi = loc + scale_tril @ psi_raw`` (and theta alike) as
    deterministic sites: the same distribution of (psi, theta), a geometry NUTS finds easier
    when the chain's conditionals are much narrower than their marginals (DDPM chains).
    ``infer`` entries are added to the ``theta`` site's infer dict (:func:`diffusion_chain`
    records the chain there).

    Returns:
        psi (L, d_psi) and theta (K, d), or (d,) when ``shared``.
    """
    centred = check_parameterisation(parameterisation) == "centred"

    def draw(name, loc, tril, event_names, extra=None):
        infer = {"event_dims": list(event_names), **(extra or {})}
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
        theta = draw("theta", loc[0], tril[0], SITE_DIMS["theta"][1:], infer)
    else:
        with numpyro.plate(ACTIONS_PLATE, loc.shape[0]):
            theta = draw("theta", loc, tril, SITE_DIMS["theta"][1:], infer)
    if not centred:
        psi = numpyro.deterministic("psi", psi)
        theta = numpyro.deterministic("theta", theta)
    return psi, theta


def diffusion_chain(
    prior: DiffusionPrior, num_actions: int | None = None, shared: bool = False, parameterisation: str = "centred"
) -> tuple[jax.Array, jax.Array]:
    """Sample a diffusion chain's sites ``psi`` then ``theta`` inside a NumPyro model.

    The sites, plates and dims are :class:`dts_ppl.BanditModel`'s (docs/math.md section 1).

    Args:
        prior: DiffusionPrior (theta dimension d, L levels of dimension d_psi); its arrays may be
            functions of other sample sites of the model.
        num_actions: K (omit with ``shared=True``).
        shared: one parameter theta (d,) for all actions (no actions plate).
        parameterisation: "centred" (sites ``psi``, ``theta``) or "noncentred" (standard-normal
            sites ``psi_raw``, ``theta_raw``, with ``psi`` and ``theta`` deterministic).

    Returns:
        psi (L, d_psi) in sampling order (row 0 is psi_L), theta (K, d) ((d,) when ``shared``).
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    num_actions = check_num_actions(num_actions, shared)
    info = ChainInfo(prior, num_actions, bool(shared), parameterisation)
    conds = prior_conditionals(prior, num_actions)
    return sample_chain(prior, conds, bool(shared), parameterisation, infer={CHAIN_KEY: info})


def check_num_actions(num_actions, shared) -> int:
    """K for a chain: ``num_actions`` (>= 1), or 1 with ``shared=True``; ValueError otherwise."""
    if not isinstance(shared, bool) and not (hasattr(shared, "dtype") and shared.dtype == bool):
        raise ValueError(f"shared: expected True or False, got {shared!r}")
    if shared:
        if num_actions not in (None, 1):
            raise ValueError(f"num_actions: the shared-parameter model has one theta; got num_actions={num_actions}")
        return 1
    return _checks.check_int("num_actions", num_actions, 1)


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


def bandit_rewards(
    name: str,
    X: ArrayLike,
    A: ArrayLike | None,
    theta: ArrayLike,
    likelihood: Likelihood | None = None,
    offset: ArrayLike | None = None,
    obs: ArrayLike | None = None,
) -> jax.Array:
    """The reward site: ``name`` ~ likelihood(x_i^T theta_{A_i} + offset_i) in ``plate("obs", n)``.

    Args:
        name: the site's name (e.g. "y").
        X: (n, d) contexts (or features phi(x, a) with a shared theta).
        A: (n,) int actions in [0, K); None with a shared theta (d,).
        theta: (K, d) from :func:`diffusion_chain` ((d,) when shared).
        likelihood: Gaussian(scale) (default Gaussian(1.0); the scale may be the value of a
            sample site, e.g. ``Gaussian(sigma)``), Bernoulli() or Poisson().
        offset: (n,) the linear predictor's other terms (random intercepts, a baseline), or None.
        obs: (n,) observed rewards, or None to sample them.

    Returns:
        (n,) rewards (the observed ones when ``obs`` is given).
    """
    likelihood = Gaussian(1.0) if likelihood is None else likelihood
    if not isinstance(likelihood, Gaussian | Bernoulli | Poisson):
        raise ValueError(f"likelihood: expected Gaussian, Bernoulli or Poisson, got {likelihood!r}")
    theta = jnp.asarray(theta)
    X = _checks.as_array("X", X, shape=(None, theta.shape[-1])).astype(theta.dtype)
    _checks.check_finite("X", X)
    n = X.shape[0]
    if theta.ndim == 1:
        if A is not None:
            raise ValueError("A: a shared theta (d,) takes features X = phi(x, a) and no actions; pass A=None")
        eta = linear_predictor(X, theta)
    else:
        A = _checks.check_actions("A", A, theta.shape[-2], length=n)
        eta = linear_predictor(X, theta, A)
    if offset is not None:
        offset = jnp.asarray(offset, theta.dtype)
        if offset.shape != (n,):
            raise ValueError(f"offset: expected shape ({n},) (one term per observation), got {offset.shape}")
        eta = eta + offset
    if obs is not None:
        obs = _checks.as_array("obs", obs, shape=(n,)).astype(theta.dtype)
        likelihood.check_rewards("obs", obs)
    info = RewardsInfo(X, A, likelihood, offset)
    with numpyro.plate(OBS_PLATE, n):
        return numpyro.sample(name, reward_distribution(likelihood, eta), obs=obs, infer={REWARDS_KEY: info})
