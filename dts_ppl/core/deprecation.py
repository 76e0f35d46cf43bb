"""Renamed arguments and attributes: the old name keeps working for one version, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any


def renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (from the caller's caller by default)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next version; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_argument(old: str, old_value: Any, new: str, new_value: Any, new_default: Any) -> Any:
    """The value of argument ``new``, or of its deprecated spelling ``old`` if that was given.

    Args:
        old, new: the argument names.   old_value: the deprecated argument (None when not given).
        new_value: the new argument.   new_default: its default, to detect both being given.
    Returns:
        ``new_value``, or ``old_value`` (with a DeprecationWarning) when that is not None.
    Raises:
        ValueError: when both are given with different values.
    """
    if old_value is None:
        return new_value
    renamed(f"{old}=", f"{new}=", stacklevel=4)
    if new_value != new_default and new_value != old_value:
        raise ValueError(f"{new}: given twice, as {new}={new_value!r} and as the deprecated {old}={old_value!r}")
    return old_value
