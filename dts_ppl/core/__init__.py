"""The functional core of dts_ppl: pure JAX functions over NamedTuples (no NumPyro).

Everything here is jittable, scan- and vmap-able; the NumPyro layer (:mod:`dts_ppl.ppl`) and the
agents (:mod:`dts_ppl.agents`) call these same functions.

- Priors and links: :class:`DiffusionPrior`, :class:`AffineLink`, :class:`MLPLink`.
- Likelihoods and their evidence: :class:`Gaussian`, :class:`Bernoulli`, :class:`Poisson`,
  :class:`ActionStats`.
- The closed-form posterior: :func:`posterior` / :func:`fit_posterior` (statistics -> chain of
  conditionals, with the final linearisation and the passes used), :func:`upward_pass` (the one
  iterated upward pass every caller uses; :func:`upward_plan` precomputes its evidence-free half
  for the identity rule), :func:`sample` (draws), :func:`moments` (means and
  covariances), :func:`prior_conditionals`, :func:`collapse_linear` (an affine chain as the
  one-level prior of psi_1 and theta it implies), :func:`linear_predictor` (eta = x^T theta).
- Protocols: :class:`Link` and :class:`Likelihood`, what the package calls on a link and a likelihood.
- Prior draws: :func:`sample_prior` (psi and theta from any DiffusionPrior); :func:`sample_moments`.
- The independent reference: :func:`joint_posterior` (the joint-Gaussian oracle).
- The marginal likelihood and empirical Bayes: :func:`log_marginal_likelihood` (exact for affine
  chains with Gaussian rewards, Laplace-type otherwise; differentiable), :func:`fit_hyperparameters`.

Row order of latent arrays: everywhere in the package a (L, ...) latent array is in sampling
order, row 0 = psi_L (the top), row L - 1 = psi_1, like the ``psi`` site of the model. The
prior's own level-ordered storage is converted in one place, :func:`chain_rows`.
"""

from dts_ppl.core.empirical_bayes import HyperFit, fit_hyperparameters
from dts_ppl.core.evidence import GaussianSummary, gaussian_summary, log_marginal_likelihood
from dts_ppl.core.inference import (
    DEFAULT_LINEARISATION,
    DEFAULT_MAX_PASSES,
    DEFAULT_STEP_RULE,
    DEFAULT_TOL,
    STEP_RULES,
    Conditionals,
    DTSPosterior,
    Linearisation,
    Message,
    PosteriorFit,
    PosteriorMoments,
    UpwardPass,
    UpwardPlan,
    chain_objective,
    chain_rows,
    collapse_linear,
    condition,
    default_linearisation,
    fit_posterior,
    linearise,
    moments,
    plug_in_mean,
    posterior,
    prior_conditionals,
    resolve_linearisation,
    sample,
    theta_prior_moments,
    upward_pass,
    upward_plan,
)
from dts_ppl.core.likelihoods import ActionStats, Bernoulli, Evidence, Gaussian, Poisson, empty_stats, linear_predictor
from dts_ppl.core.links import LINEARISATIONS, AffineLink, MLPLink
from dts_ppl.core.oracle import JointGaussian, joint_posterior
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood, Link
from dts_ppl.core.sampling import sample_moments, sample_prior

__all__ = [
    "DEFAULT_LINEARISATION",
    "default_linearisation",
    "resolve_linearisation",
    "DEFAULT_MAX_PASSES",
    "DEFAULT_TOL",
    "DEFAULT_STEP_RULE",
    "STEP_RULES",
    "chain_objective",
    "plug_in_mean",
    "LINEARISATIONS",
    "ActionStats",
    "AffineLink",
    "Bernoulli",
    "Conditionals",
    "DTSPosterior",
    "DiffusionPrior",
    "Evidence",
    "GaussianSummary",
    "HyperFit",
    "Gaussian",
    "JointGaussian",
    "Likelihood",
    "Link",
    "Linearisation",
    "MLPLink",
    "Message",
    "Poisson",
    "PosteriorFit",
    "PosteriorMoments",
    "UpwardPass",
    "UpwardPlan",
    "chain_rows",
    "collapse_linear",
    "condition",
    "empty_stats",
    "fit_hyperparameters",
    "fit_posterior",
    "gaussian_summary",
    "log_marginal_likelihood",
    "joint_posterior",
    "linear_predictor",
    "linearise",
    "moments",
    "posterior",
    "prior_conditionals",
    "sample",
    "sample_moments",
    "sample_prior",
    "theta_prior_moments",
    "upward_pass",
    "upward_plan",
]
