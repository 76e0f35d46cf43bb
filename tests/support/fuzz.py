"""Outcome bookkeeping for the property-based (hypothesis) fuzz tests of tests/*/test_fuzz_*.py.

Every generated case is one call of a public entry point with an input that is either valid
(possibly an edge case) or invalid in a known argument. :func:`run_case` calls it and sorts the
outcome into the categories of issue 16's table; ``COUNTS`` accumulates them per entry point,
the conftest prints the table at the end of the session and, when ``DTS_PPL_FUZZ_JSON`` names a
file, writes it there as JSON (studies/reliability/results/fuzz.json comes from that).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import jax
import numpy as np

NAMED = "clear ValueError naming the argument"
UNNAMED = "ValueError not naming it"
OTHER = "another exception type"
SILENT_NAN = "silent NaN/inf"
ACCEPTED_INVALID = "invalid input silently accepted"
VALID_REJECTED = "valid edge case rejected"
VALID_OK = "valid input: finite result"
FLAGGED = "inside jit: rejected/flagged, state finite"
JIT_POISONED = "inside jit: NaN state or unflagged action"
OUTCOMES = (NAMED, UNNAMED, OTHER, SILENT_NAN, ACCEPTED_INVALID, VALID_REJECTED, VALID_OK, FLAGGED, JIT_POISONED)
BAD = (UNNAMED, OTHER, SILENT_NAN, ACCEPTED_INVALID, VALID_REJECTED, JIT_POISONED)

COUNTS: dict = defaultdict(lambda: defaultdict(int))
EXAMPLES: dict = defaultdict(list)  # a few failing cases per (entry, outcome), for the report


def all_finite(tree) -> bool:
    """True when every numeric leaf of ``tree`` is finite (non-numeric leaves are ignored)."""
    for leaf in jax.tree.leaves(tree):
        a = np.asarray(leaf) if not isinstance(leaf, jax.Array) else np.asarray(leaf)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            return False
    return True


def record(entry: str, outcome: str, detail: str = "") -> str:
    COUNTS[entry][outcome] += 1
    if outcome in BAD and len(EXAMPLES[(entry, outcome)]) < 3:
        EXAMPLES[(entry, outcome)].append(detail[:300])
    return outcome


def run_case(entry: str, fn, arg: str | None, check=all_finite) -> str:
    """Call ``fn()``; ``arg`` names the invalid argument (None for a valid input). Returns the outcome.

    A ValueError "names the argument" when the text before its first ':' contains ``arg``.
    """
    try:
        out = fn()
    except ValueError as e:
        msg = str(e)
        if arg is None:
            return record(entry, VALID_REJECTED, msg)
        head = msg.split(":")[0]
        return record(entry, NAMED if arg in head else UNNAMED, f"{arg}: {msg}")
    except Exception as e:  # noqa: BLE001 - classifying is the point
        return record(entry, OTHER, f"{arg}: {type(e).__name__}: {e}")
    if not check(out):
        return record(entry, SILENT_NAN, f"{arg}")
    if arg is not None:
        return record(entry, ACCEPTED_INVALID, f"{arg}")
    return record(entry, VALID_OK)


def table() -> dict:
    """{"entries": {entry: {outcome: n}}, "totals": {outcome: n}, "cases": n, "examples": {...}}."""
    totals = defaultdict(int)
    for per in COUNTS.values():
        for k, v in per.items():
            totals[k] += v
    return {
        "cases": int(sum(totals.values())),
        "totals": {k: int(totals.get(k, 0)) for k in OUTCOMES},
        "entries": {e: {k: int(v) for k, v in sorted(per.items())} for e, per in sorted(COUNTS.items())},
        "examples": {f"{e} / {o}": v for (e, o), v in EXAMPLES.items()},
    }


def summary_lines() -> list[str]:
    t = table()
    lines = [f"fuzz: {t['cases']} cases over {len(t['entries'])} entry points"]
    lines += [f"  {k:<45} {v:6d}" for k, v in t["totals"].items()]
    return lines


def write_json(path=None) -> None:
    path = path or os.environ.get("DTS_PPL_FUZZ_JSON")
    if path and COUNTS:
        with open(path, "w") as f:
            json.dump(table(), f, indent=1)
