"""dts_ppl: diffusion Thompson sampling for contextual bandits, as a functional JAX core and NumPyro guides.

Layers (each a sub-package):

- :mod:`dts_ppl.core`: priors, links, likelihoods, the closed-form posterior, the oracle (pure JAX).
- :mod:`dts_ppl.ppl`: the NumPyro model and guide, NUTS validation, diagnostics, ArviZ.
- :mod:`dts_ppl.agents`: dTS and the baselines as ``Agent(init, act, update)``.
- :mod:`dts_ppl.bandits`: environments and the regret simulator.
- :mod:`dts_ppl.ddpm`: DDPM priors (schedule, network, training).
- :mod:`dts_ppl.experiments`: the paper's presets and the studies.
- :mod:`dts_ppl.io`: prior and state files, multi-device runs.
- :mod:`dts_ppl.analysis`: off-policy evaluation, best-arm identification, the regret bound.
- :mod:`dts_ppl.online`: :class:`Bandit`, the stateful wrapper for serving.
"""

from dts_ppl import agents, analysis, bandits, core, data, ddpm, experiments, io, ppl
from dts_ppl._version import __version__
from dts_ppl.agents import Agent
from dts_ppl.agents.linear import GaussianPrior
from dts_ppl.analysis import ope
from dts_ppl.bandits import envs
from dts_ppl.bandits.envs import Environment
from dts_ppl.bandits.simulation import RegretResult, plot_regret, simulate
from dts_ppl.core import oracle
from dts_ppl.core.empirical_bayes import HyperFit, fit_hyperparameters
from dts_ppl.core.inference import Conditionals, DTSPosterior, PosteriorMoments
from dts_ppl.core.likelihoods import ActionStats, Bernoulli, Gaussian, Poisson
from dts_ppl.core.links import AffineLink, MLPLink
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_moments, sample_prior
from dts_ppl.ddpm import DDPMLink, TrainedPrior, train_diffusion_prior
from dts_ppl.ddpm.calibrate import action_cov_calibration, calibrate_action_cov, with_action_cov
from dts_ppl.io.serialization import load_prior, load_state, save_prior, save_state
from dts_ppl.online import Bandit
from dts_ppl.ppl.autodts import AutoDTS
from dts_ppl.ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.inspection import to_inference_data
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.nuts import NutsSettings
from dts_ppl.ppl.report import ValidationReport
from dts_ppl.ppl.validate import validate

__all__ = [
    "ActionStats",
    "AffineLink",
    "Agent",
    "AutoDTS",
    "Bandit",
    "BanditModel",
    "Bernoulli",
    "Conditionals",
    "DDPMLink",
    "DTSGuide",
    "DTSPosterior",
    "DiffusionPrior",
    "Environment",
    "Gaussian",
    "MLPLink",
    "NutsSettings",
    "Poisson",
    "PosteriorMoments",
    "RegretResult",
    "TrainedPrior",
    "ValidationReport",
    "__version__",
    "agents",
    "analysis",
    "bandits",
    "core",
    "data",
    "ddpm",
    "envs",
    "io",
    "experiments",
    "load_prior",
    "load_state",
    "log_importance_weights",
    "ope",
    "oracle",
    "plot_regret",
    "ppl",
    "psis_khat",
    "save_prior",
    "save_state",
    "simulate",
    "to_inference_data",
    "train_diffusion_prior",
    "validate",
    "GaussianPrior",
    "HyperFit",
    "fit_hyperparameters",
    "action_cov_calibration",
    "calibrate_action_cov",
    "sample_moments",
    "sample_prior",
    "with_action_cov",
]
