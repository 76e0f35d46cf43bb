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

import importlib

from dts_ppl._version import __version__

# Public names and the module each comes from. They are imported on first use (PEP 562), so that
# ``import dts_ppl`` and ``dts-ppl --version`` do not import JAX; ``from dts_ppl import X`` works as
# before.
_SUBPACKAGES = ("agents", "analysis", "bandits", "core", "data", "ddpm", "experiments", "io", "ppl")
_MODULES = {"ope": "dts_ppl.analysis.ope", "envs": "dts_ppl.bandits.envs", "oracle": "dts_ppl.core.oracle"}
_NAMES = {
    "dts_ppl.agents": ("Agent",),
    "dts_ppl.agents.linear": ("GaussianPrior",),
    "dts_ppl.online": ("Bandit",),
    "dts_ppl.bandits.envs": ("Environment",),
    "dts_ppl.bandits.simulation": ("RegretResult", "plot_regret", "simulate"),
    "dts_ppl.core.inference": ("Conditionals", "DTSPosterior", "PosteriorMoments"),
    "dts_ppl.core.likelihoods": ("ActionStats", "Bernoulli", "Gaussian", "Poisson"),
    "dts_ppl.core.links": ("AffineLink", "MLPLink"),
    "dts_ppl.core.prior": ("DiffusionPrior",),
    "dts_ppl.core.sampling": ("sample_moments", "sample_prior"),
    "dts_ppl.ddpm": ("DDPMLink", "TrainedPrior", "train_diffusion_prior"),
    "dts_ppl.ddpm.calibrate": ("action_cov_calibration", "calibrate_action_cov", "with_action_cov"),
    "dts_ppl.ppl.diagnostics": ("log_importance_weights", "psis_khat"),
    "dts_ppl.ppl.guide": ("DTSGuide",),
    "dts_ppl.ppl.inspection": ("to_inference_data",),
    "dts_ppl.ppl.model": ("BanditModel",),
    "dts_ppl.ppl.validate": ("ValidationReport", "validate"),
    "dts_ppl.ppl.nuts": ("NutsSettings",),
    "dts_ppl.ppl.autodts": ("AutoDTS",),
    "dts_ppl.core.empirical_bayes": ("HyperFit", "fit_hyperparameters"),
    "dts_ppl.agents.refit": ("Refit",),
    "dts_ppl.io.serialization": ("load_prior", "load_state", "save_prior", "save_state"),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}


def __getattr__(name: str):
    """Import a public name (or sub-package) on first use and keep it as a module attribute."""
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"dts_ppl.{name}")
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'dts_ppl' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


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
    "Refit",
    "action_cov_calibration",
    "calibrate_action_cov",
    "sample_moments",
    "sample_prior",
    "with_action_cov",
]
