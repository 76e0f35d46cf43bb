"""Deprecated alias of :mod:`dts_ppl.online` (renamed in 0.3; this name goes in 0.4)."""

import importlib
import sys
import warnings

warnings.warn("dts_ppl.bandit is deprecated: import dts_ppl.online instead", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dts_ppl.online")
