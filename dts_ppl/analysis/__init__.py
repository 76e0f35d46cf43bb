"""Research extensions on top of the agents: off-policy evaluation (:mod:`dts_ppl.analysis.ope`; large
action sets: :mod:`dts_ppl.analysis.ope_large`),
best-arm identification (:mod:`dts_ppl.analysis.bai`) and the regret bound (:mod:`dts_ppl.analysis.theory`)."""

from dts_ppl.analysis import bai, ope, ope_large, theory

__all__ = ["bai", "ope", "ope_large", "theory"]
