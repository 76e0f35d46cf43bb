"""The NumPyro layer: the bandit model, your own models (diffusion_chain, bandit_rewards, AutoDTS),
the dTS guide, NUTS validation, diagnostics, ArviZ.

It calls the functional core (:mod:`dts_ppl.core`) for every formula; ArviZ is reached only
through :mod:`dts_ppl.ppl.arviz_adapter`.
"""

from dts_ppl.core.empirical_bayes import fit_hyperparameters
from dts_ppl.ppl.autodts import AutoDTS
from dts_ppl.ppl.chain import bandit_rewards, diffusion_chain
from dts_ppl.ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel, reward_distribution
from dts_ppl.ppl.nuts import NutsSettings, run_nuts
from dts_ppl.ppl.report import ValidationReport
from dts_ppl.ppl.sbc import SBCReport, bandit_sbc, sbc
from dts_ppl.ppl.user_model import model_inference_data, run_nuts_model, validate_model
from dts_ppl.ppl.validate import validate

__all__ = [
    "AutoDTS",
    "BanditModel",
    "DTSGuide",
    "SBCReport",
    "NutsSettings",
    "ValidationReport",
    "bandit_sbc",
    "bandit_rewards",
    "diffusion_chain",
    "fit_hyperparameters",
    "log_importance_weights",
    "model_inference_data",
    "psis_khat",
    "reward_distribution",
    "run_nuts",
    "sbc",
    "run_nuts_model",
    "validate",
    "validate_model",
]
