"""The one reader and writer of dts_ppl's files: arrays and a JSON header in a NumPy ``.npz``.

A file is a NumPy ``.npz`` archive (no pickle) of named arrays plus the JSON header stored as
the uint8 array ``__meta__``. The zip comment holds ``dts_ppl-sha256:<hex>``, a SHA-256 of the
WHOLE archive as written (every byte: zip headers, the central directory, the arrays, the
header; computed with an empty comment), checked before anything is parsed, so any changed,
missing or appended byte fails the load.

Writes are atomic: the bytes go to a temporary file beside the target, named
``.<target name>.tmp-<pid>-<8 hex>``, which is fsync'ed and renamed over the target
(``os.replace``); on an error it is removed and the previous file is untouched. A process killed
while writing leaves its temporary file behind; the next write to the same target removes the
temporary files of that target whose process is no longer running.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import zipfile
import zlib
from typing import NamedTuple, TypeAlias

import numpy as np

PathLike: TypeAlias = str | os.PathLike
HEADER = "__meta__"
_TAG = b"dts_ppl-sha256:"
_TRAILER = len(_TAG) + 64  # the zip comment: tag + hex digest
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory signature (22 bytes + comment)
_TEMP_SUFFIX = re.compile(r"(\d+)-[0-9a-f]{8}")


class NpzFile(NamedTuple):
    """What :func:`read` found: the arrays (without the header), the JSON header, and whether the
    file carries a whole-file SHA-256 (it was checked when it does)."""

    arrays: dict
    header: dict
    has_digest: bool


def array_digest(arrays: dict) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def encode(arrays: dict, header: dict, compress: bool = False) -> bytes:
    """The bytes of a file holding ``arrays`` and the JSON ``header``, with its whole-file SHA-256.

    Args:
        arrays: {name: numeric array}; ``__meta__`` is reserved.
        header: a JSON-serialisable dict.
        compress: deflate the arrays (``np.savez_compressed``) or store them (``np.savez``).
    """
    if HEADER in arrays:
        raise ValueError(f"arrays: the name {HEADER!r} is reserved for the header")
    payload = dict(arrays)
    payload[HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **payload)
    raw = buf.getvalue()
    if raw[-22:-18] != _EOCD or raw[-2:] != b"\x00\x00":  # pragma: no cover - numpy writes no comment
        raise ValueError("path: unexpected zip layout from numpy.savez")
    digest = hashlib.sha256(raw).hexdigest().encode()
    return raw[:-2] + _TRAILER.to_bytes(2, "little") + _TAG + digest


def write(path: PathLike, arrays: dict, header: dict, compress: bool = False) -> None:
    """Write ``arrays`` and ``header`` to ``path`` atomically (:func:`encode`, :func:`atomic_write`)."""
    atomic_write(path, encode(arrays, header, compress))


def _check_whole_file(path: str, data: bytes) -> bool:
    """True when ``data`` ends with a whole-file SHA-256 comment, which then must match."""
    if len(data) >= 22 + _TRAILER and data[-_TRAILER:].startswith(_TAG):
        eocd = data[:-_TRAILER][-22:]
        if eocd[:4] != _EOCD or int.from_bytes(eocd[-2:], "little") != _TRAILER:
            raise ValueError(f"path: {path!r} is corrupt (damaged zip end record)")
        original = data[: -_TRAILER - 2] + b"\x00\x00"
        if hashlib.sha256(original).hexdigest().encode() != data[-64:]:
            raise ValueError(f"path: {path!r} is corrupt (the file does not match its stored SHA-256)")
        return True
    return False


def read(path: PathLike, what: str) -> NpzFile:
    """Read a file written by :func:`write` (or an older one without the whole-file SHA-256).

    Args:
        path: the file.
        what: the kind of file expected, for messages ("prior", "state").

    Returns:
        :class:`NpzFile`. The caller checks the header's format and version, and requires
        ``has_digest`` for the format versions that write one.

    Raises:
        ValueError: missing file, a whole-file SHA-256 that does not match, not a readable
            ``.npz``, no header, or a header that is not a JSON object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such {what} file {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    has_digest = _check_whole_file(path, data)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib.error) as e:
        raise ValueError(f"path: {path!r} is not a readable dts_ppl {what} file (corrupt or truncated: {e})") from None
    if HEADER not in arrays:
        raise ValueError(f"path: {path!r} is not a dts_ppl {what} file (no {HEADER} header)")
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} has a corrupt header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"path: {path!r} is not a dts_ppl {what} file (its header is not a JSON object)")
    return NpzFile(arrays, header, has_digest)


# ----------------------------------------------------------------------------------- atomic writes


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing (True when it cannot be told)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists under another user
        return True
    return True


def temporary_files(path: PathLike) -> list[str]:
    """The temporary files of ``path``'s writes now in its folder (full paths), finished or not."""
    path = os.fspath(path)
    folder, prefix = os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-"
    return sorted(
        os.path.join(folder, entry)
        for entry in os.listdir(folder)
        if entry.startswith(prefix) and _TEMP_SUFFIX.fullmatch(entry[len(prefix) :])
    )


def remove_stale_temporaries(path: PathLike) -> list[str]:
    """Remove the temporary files of ``path`` left by writers that are no longer running.

    Returns:
        The removed paths.
    """
    removed = []
    for tmp in temporary_files(path):
        pid = int(_TEMP_SUFFIX.fullmatch(tmp.rsplit(".tmp-", 1)[1]).group(1))
        if _alive(pid):
            continue
        try:
            os.remove(tmp)
        except FileNotFoundError:  # another writer cleaned it first
            continue
        removed.append(tmp)
    return removed


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    Stale temporary files of ``path`` (their writer was killed) are removed first. On any error
    the temporary file is removed and ``path`` keeps its previous content.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"path: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"path: {path!r} is a folder")
    remove_stale_temporaries(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable (POSIX); best effort elsewhere
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
