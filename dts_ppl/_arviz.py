"""The one place that calls ArviZ (written for arviz 0.2x; ArviZ 1.x can be added here)."""

from __future__ import annotations

import warnings

import numpy as np


def psis(log_weights):
    """Pareto-smoothed importance sampling. log_weights (S,) -> (smoothed log weights (S,), k-hat)."""
    import arviz as az

    lw = np.asarray(log_weights, dtype=np.float64)
    with warnings.catch_warnings():
        # ArviZ warns when k-hat is high or the tail is short; the caller reports k-hat itself.
        warnings.simplefilter("ignore")
        smoothed, khat = az.psislw(lw - lw.max())
    return np.asarray(smoothed), float(np.asarray(khat))
