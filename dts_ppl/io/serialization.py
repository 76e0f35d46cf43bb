"""Prior and state files in one import: :mod:`dts_ppl.io.prior_files`, :mod:`dts_ppl.io.state_files`,
over one container (:mod:`dts_ppl.io.npz`: arrays and a JSON header, a whole-file SHA-256, atomic writes)."""

from dts_ppl.io.npz import array_digest, atomic_write
from dts_ppl.io.prior_files import FORMAT, FORMAT_VERSION, READABLE_VERSIONS, load_prior, save_prior
from dts_ppl.io.state_files import STATE_FORMAT, STATE_FORMAT_VERSION, load_state, read_state_header, save_state

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "STATE_FORMAT",
    "STATE_FORMAT_VERSION",
    "atomic_write",
    "load_prior",
    "load_state",
    "read_state_header",
    "save_prior",
    "save_state",
]
_digest = array_digest  # the array checksum in prior files' headers (scripts that rewrite old files use it)
