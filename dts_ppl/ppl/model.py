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

The model is one user model written with :mod:`dts_ppl.ppl.chain`: :func:`diffusion_chain`
then :func:`bandit_rewards`. It samples each level from the prior's conditionals;
:class:`dts_ppl.DTSGuide` samples the same sites through the same function,
:func:`sample_chain`, with the posterior's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Bernoulli, Gaussian, Poisson
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood
from dts_ppl.ppl.chain import (  # noqa: F401  (re-exported: the model's site names, dims and plates)
    ACTIONS_PLATE,
    LATENT_SITES,
    OBS_PLATE,
    PARAMETERISATIONS,
    SITE_DIMS,
    bandit_rewards,
    check_parameterisation,
    diffusion_chain,
    reward_distribution,
    sample_chain,
)


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
        num_actions = None if self.shared else self.num_actions
        psi, theta = diffusion_chain(self.prior, num_actions, self.shared, self.parameterisation)
        if X.shape[0]:
            bandit_rewards("y", X, None if self.shared else A, theta, self.likelihood, obs=y)
        return theta
