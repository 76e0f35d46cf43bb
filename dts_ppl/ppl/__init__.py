"""The NumPyro layer: the bandit model, the dTS guide, NUTS validation, diagnostics, ArviZ.

It calls the functional core (:mod:`dts_ppl.core`) for every formula; ArviZ is reached only
through :mod:`dts_ppl.ppl.arviz_adapter`.
"""

from dts_ppl.ppl.diagnostics import log_importance_weights, psis_khat
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel, reward_distribution
from dts_ppl.ppl.nuts import NutsSettings, run_nuts
from dts_ppl.ppl.report import ValidationReport
from dts_ppl.ppl.sbc import SBCReport, bandit_sbc, sbc
from dts_ppl.ppl.validate import validate

__all__ = [
    "BanditModel",
    "DTSGuide",
    "SBCReport",
    "NutsSettings",
    "ValidationReport",
    "bandit_sbc",
    "log_importance_weights",
    "psis_khat",
    "reward_distribution",
    "run_nuts",
    "sbc",
    "validate",
]
