"""The one place that imports matplotlib's pyplot (lazily: it is slow, and the backend must be
chosen first)."""

from __future__ import annotations

import matplotlib


def pyplot(headless: bool = False):
    """matplotlib.pyplot, with the non-interactive Agg backend when ``headless`` (writing files)."""
    if headless:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # after choosing the backend

    return plt
