"""Draws from a diffusion prior: the prior chain psi_L -> ... -> psi_1 -> theta_a (MATH.md section 1).

One formula: :func:`sample_prior` is the core sampler :func:`~dts_ppl.core.inference.sample`
run on the prior written as conditionals (:func:`~dts_ppl.core.inference.prior_conditionals`),
so prior and posterior draws go through the same code. :func:`sample_moments` is the one
sample mean / covariance formula of the package (Gaussian fits, moment-matched marginals,
the calibration of a DDPM prior's S_1).
"""

from __future__ import annotations

import jax

from dts_ppl.core import checks as _checks
from dts_ppl.core.inference import prior_conditionals, sample
from dts_ppl.core.linalg import sample_moments  # noqa: F401  (re-exported: the one sample-moments formula)
from dts_ppl.core.prior import DiffusionPrior


def sample_prior(
    key: jax.Array, prior: DiffusionPrior, num_samples: int, num_actions: int = 1
) -> tuple[jax.Array, jax.Array]:
    """Draw ``num_samples`` independent (psi, theta) from any DiffusionPrior.

    Each draw runs the whole chain once: psi_L ~ N(0, S_{L+1}), psi_{l-1} ~ N(f_l(psi_l), S_l),
    then ``num_actions`` parameters theta_a ~ N(f_1(psi_1), S_1) that share that psi.

    Args:
        key: PRNG key (``jax.random.PRNGKey(seed)`` or ``jax.random.key(seed)``).
        prior: any DiffusionPrior (linear, MLP, trained DDPM).
        num_samples: N, the number of independent draws of the chain.
        num_actions: K, the actions sharing one chain in each draw.
    Returns:
        psi (N, L, d_psi) in sampling order (psi[:, 0] = psi_L, psi[:, -1] = psi_1) and
        theta (N, K, d).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> psi, theta = sample_prior(jax.random.PRNGKey(0), prior, 5, num_actions=3)
        >>> psi.shape, theta.shape
        ((5, 1, 2), (5, 3, 2))
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    key = _checks.check_key(key)
    n = _checks.check_positive_int("num_samples", num_samples)
    k = _checks.check_positive_int("num_actions", num_actions)
    return sample(key, prior, prior_conditionals(prior, k), (n,))
