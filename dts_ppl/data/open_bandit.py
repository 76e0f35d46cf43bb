"""A reader for logged bandit data in the Open Bandit Dataset's CSV layout (Saito et al. 2020).

The dataset (https://research.zozo.com/data.html; the Open Bandit Pipeline's sample in
``obd/{random,bts}/{all,men,women}.csv``) has one row per impression with the columns

    [unnamed index,] timestamp, item_id, position, click, propensity_score,
    user_feature_0..3 (categorical, hashed strings), user-item_affinity_0..(K-1) (numbers)

``read_open_bandit(path)`` reads such a file from a path the user gives (nothing is
downloaded) into :class:`LoggedData`: actions = item_id, rewards = click, propensities =
propensity_score, and contexts = the one-hot user features (categories sorted per column)
followed by the affinities. Only the standard library's csv module is used.
"""

from __future__ import annotations

import csv
import os
from typing import NamedTuple

import numpy as np

REQUIRED = ("timestamp", "item_id", "position", "click", "propensity_score")


class LoggedData(NamedTuple):
    """Logged bandit feedback.

    Attributes:
        context: (n, p) float contexts.   action: (n,) int item ids.   reward: (n,) float clicks.
        propensity: (n,) logging probabilities of the logged actions.   position: (n,) int slots.
        timestamp: (n,) str.   feature_names: p names, e.g. "user_feature_0=abc", "user-item_affinity_3".
        num_actions: K (max item_id + 1, or the affinity columns' count if larger).
    """

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    position: np.ndarray
    timestamp: np.ndarray
    feature_names: list
    num_actions: int


def _column(rows, index, name, path, kind):
    try:
        values = np.array([kind(row[index]) for row in rows])
    except (ValueError, IndexError) as e:
        raise ValueError(f"path: {path!r}: column {name!r} has a value that is not {kind.__name__} ({e})") from None
    return values


def read_open_bandit(path, position: int | None = None, affinity: bool = True) -> LoggedData:
    """Read an Open Bandit Dataset CSV file.

    Args:
        path: the .csv file.
        position: keep only rows of this slot (the dataset logs 3 slots; None keeps all); the
            one-hot categories are those of the whole file either way.
        affinity: append the user-item_affinity_* columns to the context.

    Returns:
        LoggedData (see its fields).

    Raises:
        ValueError: missing file or required columns, unparsable values, clicks not 0/1,
            propensities outside (0, 1], negative item ids.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"path: {path!r} is empty (expected an Open Bandit Dataset CSV header)") from None
        rows = [row for row in reader if row]
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"path: {path!r} lacks the Open Bandit Dataset column(s) {missing} (has {header[:8]}...)")
    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"path: {path!r}: row {bad[0] + 2} has {len(rows[bad[0]])} fields, the header {len(header)}")
    col = {name: i for i, name in enumerate(header)}
    if not rows:
        raise ValueError(f"path: {path!r} has no data rows")
    pos = _column(rows, col["position"], "position", path, int)
    item = _column(rows, col["item_id"], "item_id", path, int)
    click = _column(rows, col["click"], "click", path, float)
    prop = _column(rows, col["propensity_score"], "propensity_score", path, float)
    if item.min() < 0:
        raise ValueError(f"path: {path!r}: item_id must be >= 0, found {item.min()}")
    if not np.all((click == 0) | (click == 1)):
        raise ValueError(f"path: {path!r}: click must be 0 or 1")
    if not np.all((prop > 0) & (prop <= 1)):
        raise ValueError(f"path: {path!r}: propensity_score must lie in (0, 1]")
    blocks, names = [], []
    for name in sorted((h for h in header if h.startswith("user_feature_")), key=lambda h: (len(h), h)):
        values = np.array([row[col[name]] for row in rows])
        cats = sorted(set(values.tolist()))
        blocks.append((values[:, None] == np.array(cats)[None, :]).astype(float))
        names += [f"{name}={c}" for c in cats]
    aff = sorted((h for h in header if h.startswith("user-item_affinity_")), key=lambda h: int(h.rsplit("_", 1)[1]))
    if affinity and aff:
        blocks.append(np.stack([_column(rows, col[h], h, path, float) for h in aff], axis=1))
        names += aff
    context = np.hstack(blocks) if blocks else np.zeros((len(rows), 0))
    timestamp = np.array([row[col["timestamp"]] for row in rows])
    K = int(max(item.max() + 1, len(aff)))
    keep = np.ones(len(rows), bool) if position is None else pos == position
    if not keep.any():
        raise ValueError(
            f"position: no rows of {path!r} are at position {position} (found {sorted(set(pos.tolist()))})"
        )
    # categories come from the whole file, so contexts of different positions share columns
    return LoggedData(context[keep], item[keep], click[keep], prop[keep], pos[keep], timestamp[keep], names, K)
