"""The functional core of dts_ppl: pure JAX functions over NamedTuples (no NumPyro).

Everything here is jittable, scan- and vmap-able; the NumPyro layer (:mod:`dts_ppl.ppl`) and the
agents (:mod:`dts_ppl.agents`) call these same functions.

- Priors and links: :class:`DiffusionPrior`, :class:`AffineLink`, :class:`MLPLink`.
- Likelihoods and their evidence: :class:`Gaussian`, :class:`Bernoulli`, :class:`Poisson`,
  :class:`ActionStats`.
- The closed-form posterior: :func:`posterior` (statistics -> chain of conditionals),
  :func:`sample` (draws), :func:`moments` (means and covariances), :func:`prior_conditionals`.
- Prior draws: :func:`sample_prior` (psi and theta from any DiffusionPrior); :func:`sample_moments`.
- The independent reference: :func:`joint_posterior` (the joint-Gaussian oracle).

Row order of latent arrays: everywhere in the package a (L, ...) latent array is in sampling
order, row 0 = psi_L (the top), row L - 1 = psi_1, like the ``psi`` site of the model.
"""

from dts_ppl.core.likelihoods import ActionStats, Bernoulli, Gaussian, Poisson, empty_stats
from dts_ppl.core.links import LINEARISATIONS, AffineLink, MLPLink
from dts_ppl.core.oracle import JointGaussian, joint_posterior
from dts_ppl.core.inference import (
    Conditionals,
    DTSPosterior,
    Linearisation,
    Message,
    PosteriorMoments,
    condition,
    linearise,
    moments,
    posterior,
    prior_conditionals,
    sample,
)
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_moments, sample_prior

__all__ = [
    "LINEARISATIONS",
    "ActionStats",
    "AffineLink",
    "Bernoulli",
    "Conditionals",
    "DTSPosterior",
    "DiffusionPrior",
    "Gaussian",
    "JointGaussian",
    "Linearisation",
    "MLPLink",
    "Message",
    "Poisson",
    "PosteriorMoments",
    "condition",
    "empty_stats",
    "joint_posterior",
    "linearise",
    "moments",
    "posterior",
    "prior_conditionals",
    "sample",
    "sample_moments",
    "sample_prior",
]
