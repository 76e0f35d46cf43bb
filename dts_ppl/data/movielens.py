"""MovieLens ratings from a directory the user gives (never downloaded, shipped or committed).

The MovieLens licence forbids redistribution, so the package only reads files the user has.
Two formats are recognised:

- **100K** (``ml-100k``): ``u.data`` (tab-separated ``user item rating timestamp``) and
  ``u.item`` (``|``-separated, latin-1: ``movie id | title | release date | ...``).
- **latest-small** (``ml-latest-small``): ``ratings.csv`` (header
  ``userId,movieId,rating,timestamp``) and ``movies.csv`` (header ``movieId,title,genres``).

The directory is the ``data_dir`` argument, or the environment variable ``DTS_MOVIELENS_DIR``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

ENV_VAR = "DTS_MOVIELENS_DIR"

#: The files of each format and what each must look like (quoted in error messages).
FORMATS = {
    "100k": {
        "u.data": "tab-separated lines 'user_id<TAB>item_id<TAB>rating<TAB>timestamp' (MovieLens 100K)",
        "u.item": "'|'-separated lines 'movie_id|title|release date|...' in latin-1 (MovieLens 100K)",
    },
    "latest-small": {
        "ratings.csv": "CSV with header 'userId,movieId,rating,timestamp' (MovieLens latest-small)",
        "movies.csv": "CSV with header 'movieId,title,genres' (MovieLens latest-small)",
    },
}


class Ratings(NamedTuple):
    """A rating matrix in coordinate form, ids re-indexed 0..U-1 and 0..I-1.

    Attributes:
        users: (n,) int user index.   items: (n,) int item index.   ratings: (n,) float rating.
        user_ids: (U,) original user ids.   item_ids: (I,) original movie ids (int64; exact Python
            ints in an object array when an id does not fit int64).
        titles: (I,) movie titles ("" where the item file has none).
        format: "100k" or "latest-small".
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray
    format: str

    @property
    def num_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def num_items(self) -> int:
        return int(self.item_ids.shape[0])


def movielens_dir(data_dir=None) -> Path:
    """The MovieLens directory: ``data_dir``, else $DTS_MOVIELENS_DIR (ValueError if neither names a directory)."""
    if data_dir is None or data_dir == "":  # an empty setting counts as none
        data_dir = os.environ.get(ENV_VAR)
        if not data_dir:
            raise ValueError(
                f"data_dir: expected a directory holding MovieLens files ({_expected()}); "
                f"pass it (dts-ppl bench regret --data-dir DIR) or set {ENV_VAR}. "
                "The data are not shipped (the MovieLens licence forbids redistribution)."
            )
    if not isinstance(data_dir, str | os.PathLike):
        raise ValueError(f"data_dir: expected a directory path (str or os.PathLike), got {data_dir!r}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"data_dir: {str(path)!r} is not a directory; expected one holding {_expected()}")
    return path


def _expected() -> str:
    return " or ".join(" + ".join(files) for files in FORMATS.values())


def detect_format(path: Path) -> str:
    """ "100k" or "latest-small" from the files present (ValueError naming the missing file otherwise)."""
    for fmt, files in FORMATS.items():
        if all((path / f).is_file() for f in files):
            return fmt
    for files in FORMATS.values():  # one file of a pair present: name its missing partner
        present = [f for f in files if (path / f).is_file()]
        if present:
            missing = next(f for f in files if f not in present)
            raise ValueError(f"data_dir: {str(path)!r} has {present[0]} but not {missing}: expected {files[missing]}")
    raise ValueError(
        f"data_dir: {str(path)!r} holds neither {_expected()}; expected e.g. u.data: {FORMATS['100k']['u.data']}"
    )


def _bad(path: Path, line_no: int, fmt: str, why: str):
    return ValueError(f"data_dir: {path.name} line {line_no}: {why}; expected {FORMATS[fmt][path.name]}")


def _row(f: Path, line_no: int, fmt: str, fields) -> tuple[int, int, float]:
    """(user id, item id, rating) of one line: exact integer ids, a finite rating (ValueError naming the line)."""
    names = ("user_id", "item_id", "rating") if fmt == "100k" else ("userId", "movieId", "rating")
    ids = []
    for name, text in zip(names[:2], fields[:2], strict=True):
        try:
            ids.append(int(text.strip()))  # an int, never a float: ids above 2**53 stay distinct
        except ValueError:
            raise _bad(f, line_no, fmt, f"column {name}: non-numeric id {text!r}, expected an integer") from None
    try:
        rating = float(fields[2])
    except ValueError:
        raise _bad(f, line_no, fmt, f"column rating: non-numeric value {fields[2]!r}") from None
    if not np.isfinite(rating):
        raise _bad(f, line_no, fmt, f"column rating: expected a finite number, got {fields[2].strip()!r}")
    return ids[0], ids[1], rating


def _read_100k(path: Path):
    rows = []
    f = path / "u.data"
    with open(f, encoding="latin-1") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise _bad(f, i, "100k", f"{len(parts)} tab-separated fields")
            rows.append(_row(f, i, "100k", parts))
    titles = {}
    f = path / "u.item"
    with open(f, encoding="latin-1") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("|")
            if len(parts) < 2 or not parts[0].strip().isdigit():
                raise _bad(f, i, "100k", f"cannot read a movie id and title from {line[:40]!r}")
            titles[int(parts[0])] = parts[1]
    return rows, titles


def _read_csv(f: Path, header: list[str]):
    with open(f, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        first = next(reader, None)
        if first is None or [h.strip() for h in first[: len(header)]] != header:
            raise _bad(f, 1, "latest-small", f"header {first!r}")
        for i, row in enumerate(reader, 2):
            if row:
                yield i, row


def _read_latest(path: Path):
    rows = []
    f = path / "ratings.csv"
    for i, row in _read_csv(f, ["userId", "movieId", "rating"]):
        if len(row) < 3:
            raise _bad(f, i, "latest-small", f"cannot read userId, movieId, rating from {row!r}")
        rows.append(_row(f, i, "latest-small", row))
    titles = {}
    f = path / "movies.csv"
    for i, row in _read_csv(f, ["movieId", "title"]):
        try:
            titles[int(row[0])] = row[1]
        except (ValueError, IndexError):
            raise _bad(f, i, "latest-small", f"cannot read movieId, title from {row!r}") from None
    return rows, titles


def load_movielens(data_dir=None) -> Ratings:
    """Read the MovieLens ratings in ``data_dir`` (or $DTS_MOVIELENS_DIR), either format.

    Returns:
        Ratings with n ratings over U users and I rated items (items in the item file
        without ratings are dropped).

    Raises:
        ValueError: no directory, a missing file (named, with its expected format), or a malformed
            line (named by file, line and column: a non-integer id, a NaN, infinite or overflowing rating).
    """
    path = movielens_dir(data_dir)
    fmt = detect_format(path)
    rows, titles = _read_100k(path) if fmt == "100k" else _read_latest(path)
    if not rows:
        name = "u.data" if fmt == "100k" else "ratings.csv"
        raise ValueError(f"data_dir: {name} holds no ratings; expected {FORMATS[fmt][name]}")
    user_col, item_col, rating_col = zip(*rows, strict=True)
    user_ids, users = _index(user_col)
    item_ids, items = _index(item_col)
    names = np.asarray([titles.get(int(i), "") for i in item_ids], dtype=object)
    ratings = np.asarray(rating_col, dtype=np.float64)
    return Ratings(users.astype(np.int32), items.astype(np.int32), ratings, user_ids, item_ids, names, fmt)


def _index(ids) -> tuple[np.ndarray, np.ndarray]:
    """(unique ids (U,), index of each rating's id (n,)), exact for any integer id (no float64 round trip).

    Ids that fit int64 come back as int64; larger ones as Python ints in an object array.
    """
    lo, hi = min(ids), max(ids)
    if -(2**63) <= lo and hi < 2**63:
        return np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
    unique = sorted(set(ids))
    pos = {v: j for j, v in enumerate(unique)}
    return np.asarray(unique, dtype=object), np.asarray([pos[v] for v in ids], dtype=np.int64)
