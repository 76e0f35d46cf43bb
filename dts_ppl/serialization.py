"""Save and load a DiffusionPrior (any link family) to one ``.npz`` file with its metadata.

The file is a NumPy ``.npz`` archive (no pickle): every array of the prior's pytree at its own
dtype, so a loaded prior is bit-identical, plus a JSON header ``__meta__`` holding the file
format and version, the link class, the package version, a SHA-256 of the arrays and the
caller's metadata (for a trained DDPM: schedule, L, d, standardisation, ...). Stacked link
arrays that are equal across levels (a DDPM's shared network weights) are stored once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib

import jax.numpy as jnp
import numpy as np

from dts_ppl._version import __version__
from dts_ppl.core.links import AffineLink, MLPLink
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ddpm.prior import DDPMLink

FORMAT = "dts_ppl.prior"  # the file-format name (not a module path)
FORMAT_VERSION = 1


_LINK_CLASSES = {cls.__name__: cls for cls in (AffineLink, MLPLink, DDPMLink)}


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_prior(path, prior: DiffusionPrior, metadata: dict | None = None) -> None:
    """Write ``prior`` and ``metadata`` (JSON-serialisable dict) to ``path`` (one .npz file).

    Example:
        >>> import jax.numpy as jnp, tempfile, os
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> path = os.path.join(tempfile.mkdtemp(), "prior.npz")
        >>> save_prior(path, prior, {"note": "identity link"})
        >>> loaded, meta = load_prior(path)
        >>> meta["note"], loaded.num_levels
        ('identity link', 1)
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    classes = _LINK_CLASSES
    cls = type(prior.link1).__name__
    if cls not in classes or (prior.links is not None and type(prior.links).__name__ != cls):
        raise ValueError(f"prior: cannot save links of type {cls}; known link types: {sorted(classes)}")
    arrays = {"cov1": np.asarray(prior.cov1), "covs": np.asarray(prior.covs)}
    shared = []
    for field, value in prior.link1._asdict().items():
        arrays[f"link1/{field}"] = np.asarray(value)
    if prior.links is not None:
        for field, value in prior.links._asdict().items():
            v = np.asarray(value)
            if v.shape[0] > 1 and (v == v[:1]).all():
                arrays[f"links/{field}"] = v[0]
                shared.append(field)
            else:
                arrays[f"links/{field}"] = v
    try:
        user = json.loads(json.dumps(metadata or {}))
    except TypeError as e:
        raise ValueError(f"metadata: expected a JSON-serialisable dict ({e})") from None
    header = dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        package_version=__version__,
        link_class=cls,
        num_levels=prior.num_levels,
        dim=prior.dim,
        latent_dim=prior.latent_dim,
        shared_link_fields=shared,
        sha256=_digest(arrays),
        metadata=user,
    )
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(os.fspath(path), "wb") as f:
        f.write(buf.getvalue())


def read_header(path) -> dict:
    """The JSON header of a prior file (format, versions, sizes, metadata), validated."""
    return _read(path)[1]


def load_prior(path) -> tuple[DiffusionPrior, dict]:
    """Read a prior written by :func:`save_prior`. Returns (prior, metadata).

    Raises:
        ValueError: the file is missing, corrupt or truncated, fails its checksum, or has
            another format or format version.
    """
    arrays, header = _read(path)
    cls = _LINK_CLASSES[header["link_class"]]
    L = header["num_levels"]
    link1 = cls(**{f: jnp.asarray(arrays[f"link1/{f}"]) for f in cls._fields})
    links = None
    if L > 1:
        fields = {}
        for f in cls._fields:
            v = arrays[f"links/{f}"]
            if f in header["shared_link_fields"]:
                v = np.broadcast_to(v, (L - 1,) + v.shape)
            fields[f] = jnp.asarray(v)
        links = cls(**fields)
    prior = DiffusionPrior(link1, links, jnp.asarray(arrays["cov1"]), jnp.asarray(arrays["covs"]))
    return prior, header["metadata"]


def _read(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such prior file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib.error) as e:
        raise ValueError(f"path: {path!r} is not a readable dts_ppl prior file (corrupt or truncated: {e})") from None
    if "__meta__" not in arrays:
        raise ValueError(f"path: {path!r} is not a dts_ppl prior file (no __meta__ header)")
    try:
        header = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} has a corrupt header ({e})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not a dts_ppl prior file (format {header.get('format')!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"path: {path!r} has prior-file format version {header.get('format_version')!r} (written by "
            f"dts_ppl {header.get('package_version')}); this dts_ppl reads version {FORMAT_VERSION}"
        )
    if header.get("link_class") not in _LINK_CLASSES:
        raise ValueError(f"path: {path!r} holds unknown link type {header.get('link_class')!r}")
    if _digest(arrays) != header.get("sha256"):
        raise ValueError(f"path: {path!r} is corrupt (its arrays do not match the stored SHA-256)")
    return arrays, header
