"""S_1 of a diffusion prior: calibrated to the training data's covariance, or set by hand.

S_1 is the covariance of each theta_a around f_1(psi_1). A trained DDPM does not fix it (its own
value, beta_1 or betatilde_1 = 0, makes every action nearly identical given psi_1), and the old
default S_1 = I in standardised units gave the prior's theta marginal about twice the variance
of the data: the marginal covariance of one theta_a is

    Cov(theta_a) = S_1 + Cov(f_1(psi_1))          (psi_1 from the prior chain).

**The rule** (:func:`action_cov_calibration`, the default of
:func:`dts_ppl.train_diffusion_prior`): choose S_1 so that this marginal matches the data,

    S_1 = clip( Cov(samples) - Cov_MC(f_1(psi_1)) ),

with Cov_MC over ``num_draws`` prior draws of psi_1 (:func:`dts_ppl.core.sample_prior`), the
difference taken in coordinates standardised by the samples' standard deviations and made
positive definite by raising its eigenvalues to at least ``floor`` (there; training uses
floor = beta_1, the variance of the DDPM's own last reverse step). Where no eigenvalue is
clipped the prior's theta marginal covariance equals the samples' up to the Monte-Carlo error
of Cov_MC; clipped directions are where f_1(psi_1) alone already spreads at least as much as
the data (the marginal is then wider there by the clipped amount).

:func:`calibrate_action_cov` applies the rule to any DiffusionPrior; :func:`with_action_cov`
sets S_1 of a trained DDPM by the ``action_cov`` argument of training (a float s for s I, "beta",
or an array, in standardised units) without retraining.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_moments, sample_prior
from dts_ppl.ddpm.prior import action_covariance

#: The name of the calibration rule in a trained prior's metadata (``action_cov``).
MARGINAL = "marginal"
#: ``action_cov_rule`` in the metadata of a prior whose S_1 was given by hand.
OVERRIDE_RULE = "override: S_1 = diag(scale) A diag(scale) for the given action_cov A (standardised units)"


class ActionCovCalibration(NamedTuple):
    """What :func:`action_cov_calibration` measured and chose.

    Attributes:
        cov1: (d, d) the calibrated S_1 (raw units).
        data_cov: (d, d) covariance of the samples (N - 1 denominator).
        link_cov: (d, d) Monte-Carlo covariance of f_1(psi_1) under the prior.
        scale: (d,) standard deviations of the samples (the coordinates of the clipping).
        eigenvalues: (d,) eigenvalues of the standardised difference before clipping.
        floor: () the eigenvalue floor (standardised units).
        num_clipped: () how many eigenvalues were raised to the floor.
    """

    cov1: np.ndarray
    data_cov: np.ndarray
    link_cov: np.ndarray
    scale: np.ndarray
    eigenvalues: np.ndarray
    floor: float
    num_clipped: int


def _first_link_means(prior: DiffusionPrior, key, num_draws: int) -> np.ndarray:
    psi, _ = sample_prior(key, prior, num_draws)
    return np.asarray(jax.vmap(prior.link1)(psi[:, -1]), np.float64)  # (num_draws, d): f_1(psi_1)


def action_cov_calibration(
    prior: DiffusionPrior,
    samples: ArrayLike,
    key: jax.Array | None = None,
    num_draws: int = 20_000,
    floor: float = 1e-3,
) -> ActionCovCalibration:
    """S_1 = Cov(samples) - Cov(f_1(psi_1)), eigenvalues clipped at ``floor`` (module doc).

    Args:
        prior: any DiffusionPrior with theta of dimension d (its own S_1 is ignored).
        samples: (N, d) samples of theta (the training data), N >= 2.
        key: PRNG key of the prior draws (default PRNGKey(0)).
        num_draws: prior draws of psi_1 for Cov(f_1(psi_1)).
        floor: smallest eigenvalue of S_1 in coordinates standardised by the samples' sds, > 0.
    Returns:
        ActionCovCalibration (cov1 (d, d) is the S_1 to use).
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    key = _checks.optional_key(key)
    num_draws = _checks.check_positive_int("num_draws", num_draws)
    if num_draws < 2:
        raise ValueError(f"num_draws: expected at least 2 prior draws, got {num_draws}")
    if not (isinstance(floor, int | float | np.floating) and np.isfinite(floor) and floor > 0):
        raise ValueError(f"floor: expected a positive number, got {floor!r}")
    x = _checks.as_array("samples", samples, ndim=2)
    if x.shape[1] != prior.dim:
        raise ValueError(f"samples: expected shape (N, {prior.dim}) (the prior's theta dimension), got {x.shape}")
    _, data_cov = sample_moments(np.asarray(x, np.float64))
    data_cov = np.asarray(data_cov, np.float64)
    scale = np.sqrt(np.diag(data_cov))
    if np.any(scale <= 0):
        raise ValueError(f"samples: coordinate {int(np.argmin(scale))} is constant; S_1 cannot be calibrated")
    _, link_cov = sample_moments(_first_link_means(prior, key, num_draws), name="f_1(psi_1)")
    link_cov = np.asarray(link_cov, np.float64)
    outer = scale[:, None] * scale[None, :]
    eig, vec = np.linalg.eigh((data_cov - link_cov) / outer)
    clipped = np.maximum(eig, float(floor))
    s1_std = (vec * clipped) @ vec.T
    cov1 = 0.5 * (s1_std + s1_std.T) * outer
    return ActionCovCalibration(cov1, data_cov, link_cov, scale, eig, float(floor), int(np.sum(eig < floor)))


def calibrate_action_cov(
    prior: DiffusionPrior,
    samples: ArrayLike,
    key: jax.Array | None = None,
    num_draws: int = 20_000,
    floor: float = 1e-3,
) -> DiffusionPrior:
    """``prior`` with S_1 calibrated to ``samples`` (:func:`action_cov_calibration`); links unchanged.

    Args:
        prior: any DiffusionPrior.   samples: (N, d) samples of theta.
        key, num_draws, floor: as in :func:`action_cov_calibration`.
    Returns:
        The DiffusionPrior with the new cov1 (d, d), in the prior's dtype.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> x = np.random.default_rng(0).normal(size=(4000, 2)) * 2.0
        >>> cal = calibrate_action_cov(prior, x, jax.random.PRNGKey(1))
        >>> bool(jnp.allclose(cal.cov1, 3.0 * jnp.eye(2), atol=0.3))   # 4 I - Cov(psi_1) = 3 I
        True
    """
    cal = action_cov_calibration(prior, samples, key, num_draws, floor)
    return prior._replace(cov1=jnp.asarray(cal.cov1, prior.cov1.dtype))


def _json_action_cov(action_cov):
    if isinstance(action_cov, str | float | int) and not isinstance(action_cov, bool):
        return action_cov
    return np.asarray(action_cov, np.float64).tolist()


def with_action_cov(
    prior: DiffusionPrior, metadata: dict, action_cov: float | str | ArrayLike
) -> tuple[DiffusionPrior, dict]:
    """A trained DDPM prior with another S_1, without retraining.

    Args:
        prior: the DiffusionPrior of :func:`dts_ppl.train_diffusion_prior` (or :func:`dts_ppl.load_prior`).
        metadata: its metadata (needs ``betas`` and ``standardisation``).
        action_cov: as in training, in standardised units: a float s (S_1 = s I; 1.0 is the old
            default), "beta" (beta_1 I) or a (d,) / (d, d) array. For the calibrated S_1 use
            :func:`calibrate_action_cov` with the training samples.
    Returns:
        (prior with the new cov1 (d, d), metadata with ``action_cov``, ``action_cov_rule`` and
        ``cov1`` updated).
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    if not isinstance(metadata, dict) or "betas" not in metadata or "standardisation" not in metadata:
        raise ValueError("metadata: expected the metadata of a trained DDPM prior (with 'betas' and 'standardisation')")
    if isinstance(action_cov, str) and action_cov == MARGINAL:
        raise ValueError("action_cov: 'marginal' needs the training samples; use calibrate_action_cov(prior, samples)")
    betas = np.asarray(metadata["betas"], np.float64)
    scale = np.asarray(metadata["standardisation"]["scale"], np.float64)
    if scale.shape != (prior.dim,):
        raise ValueError(f"metadata: standardisation scale has shape {scale.shape}, the prior has d = {prior.dim}")
    cov1 = action_covariance(action_cov, betas, scale, prior.dim)
    meta = dict(
        metadata,
        action_cov=_json_action_cov(action_cov),
        action_cov_rule=OVERRIDE_RULE,
        cov1=cov1.tolist(),
    )
    for k in [k for k in meta if k.startswith("action_cov_calibration")]:
        del meta[k]
    return prior._replace(cov1=jnp.asarray(cov1, prior.cov1.dtype)), meta
