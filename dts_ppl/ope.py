"""Deprecated alias of :mod:`dts_ppl.analysis.ope` (renamed in 0.3; this name goes in 0.4)."""

import importlib
import sys
import warnings

warnings.warn("dts_ppl.ope is deprecated: import dts_ppl.analysis.ope instead", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dts_ppl.analysis.ope")
