"""Files and devices: priors (:mod:`dts_ppl.io.prior_files`) and agent states
(:mod:`dts_ppl.io.state_files`) over one container (:mod:`dts_ppl.io.npz`), and multi-device runs
(:mod:`dts_ppl.io.sharding`)."""

from dts_ppl.io.prior_files import load_prior, save_prior
from dts_ppl.io.state_files import load_state, save_state

__all__ = ["load_prior", "load_state", "save_prior", "save_state"]
