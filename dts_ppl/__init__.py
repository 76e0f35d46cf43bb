"""dts_ppl: diffusion Thompson sampling as a NumPyro guide."""

from dts_ppl import agents, envs
from dts_ppl.agents import Agent
from dts_ppl.ddpm import DDPMLink, TrainedPrior, train_diffusion_prior
from dts_ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.envs import Environment
from dts_ppl.guide import DTSGuide
from dts_ppl.likelihoods import ActionStats, Bernoulli, Gaussian, Poisson
from dts_ppl.links import AffineLink, MLPLink
from dts_ppl.model import BanditModel
from dts_ppl.posterior import Conditionals, DTSPosterior, PosteriorMoments
from dts_ppl.prior import DiffusionPrior
from dts_ppl.serialization import load_prior, save_prior
from dts_ppl.simulation import RegretResult, plot_regret, simulate
from dts_ppl.validate import ValidationReport, validate

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Environment",
    "RegretResult",
    "agents",
    "envs",
    "plot_regret",
    "simulate",
    "ActionStats",
    "DDPMLink",
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
    "TrainedPrior",
    "load_prior",
    "log_importance_weights",
    "psis_khat",
    "save_prior",
    "train_diffusion_prior",
    "validate",
    "ValidationReport",
]
