"""Files: priors and agent states (:mod:`dts_ppl.io.serialization`) and multi-device runs
(:mod:`dts_ppl.io.sharding`)."""

from dts_ppl.io.serialization import load_prior, load_state, save_prior, save_state

__all__ = ["load_prior", "load_state", "save_prior", "save_state"]
