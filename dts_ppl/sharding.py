"""Deprecated alias of :mod:`dts_ppl.io.sharding` (renamed in 0.3; this name goes in 0.4)."""

import importlib
import sys
import warnings

warnings.warn("dts_ppl.sharding is deprecated: import dts_ppl.io.sharding instead", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dts_ppl.io.sharding")
