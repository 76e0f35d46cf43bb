"""dts_ppl: diffusion Thompson sampling as a NumPyro guide."""

from dts_ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.guide import DTSGuide
from dts_ppl.likelihoods import ActionStats, Bernoulli, Gaussian, Poisson
from dts_ppl.links import AffineLink, MLPLink
from dts_ppl.model import BanditModel
from dts_ppl.posterior import Conditionals, DTSPosterior, PosteriorMoments
from dts_ppl.prior import DiffusionPrior
from dts_ppl.validate import ValidationReport, validate

__version__ = "0.1.0"

__all__ = [
    "ActionStats",
    "AffineLink",
    "BanditModel",
    "Bernoulli",
    "Conditionals",
    "DTSGuide",
    "DTSPosterior",
    "DiffusionPrior",
    "Gaussian",
    "MLPLink",
    "Poisson",
    "PosteriorMoments",
    "log_importance_weights",
    "psis_khat",
    "validate",
    "ValidationReport",
]
