"""Prior files: a DiffusionPrior (any link family) and its metadata in one ``.npz`` file.

Every array of the prior's pytree at its own dtype (a loaded prior is bit-identical), plus a
JSON header holding the file format and version, the link class, the package version, a
SHA-256 of the arrays and the caller's metadata (for a trained DDPM: schedule, L, d,
standardisation, ...). Stacked link arrays that are equal across levels (a DDPM's shared network
weights) are stored once. The container, its whole-file SHA-256 and the atomic write are
:mod:`dts_ppl.io.npz`'s (format version 2). Loading checks the header against the arrays (link
class, L, d, d_psi, every array's shape) and that every array is finite. Version-1 files (array
checksum only, e.g. the shipped ``dts_ppl/models/*.npz``) still load.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl._version import __version__
from dts_ppl.core.links import AffineLink, MLPLink
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ddpm.prior import DDPMLink
from dts_ppl.io import npz
from dts_ppl.io.npz import PathLike

__all__ = ["FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "load_prior", "save_prior"]

FORMAT = "dts_ppl.prior"  # the file-format name (not a module path)
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

_LINK_CLASSES = {cls.__name__: cls for cls in (AffineLink, MLPLink, DDPMLink)}


def save_prior(path: PathLike, prior: DiffusionPrior, metadata: dict | None = None) -> None:
    """Write ``prior`` and ``metadata`` (JSON-serialisable dict) to ``path`` (one .npz file), atomically.

    Args:
        path: the .npz file to write (its folder must exist).
        prior: a DiffusionPrior with AffineLink, MLPLink or DDPMLink links.
        metadata: JSON-serialisable dict, returned by :func:`load_prior`.

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
    cls = type(prior.link1).__name__
    if cls not in _LINK_CLASSES or (prior.links is not None and type(prior.links).__name__ != cls):
        raise ValueError(f"prior: cannot save links of type {cls}; known link types: {sorted(_LINK_CLASSES)}")
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
    except (TypeError, ValueError) as e:
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
        sha256=npz.array_digest(arrays),
        metadata=user,
    )
    npz.write(path, arrays, header, compress=True)


def load_prior(path: PathLike) -> tuple[DiffusionPrior, dict]:
    """Read a prior written by :func:`save_prior`.

    Args:
        path: the file.

    Returns:
        (prior, metadata).

    Raises:
        ValueError: the file is missing, corrupt or truncated, fails its checksum, or has
            another format or format version.
    """
    arrays, header = _read(path)
    _check_header(path, arrays, header)
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
    _check_links(path, prior)
    return prior, header["metadata"]


def _read(path) -> tuple[dict, dict]:
    """(arrays, header) of a prior file: format, version, link class and checksums checked."""
    path = os.fspath(path)
    arrays, header, has_digest = npz.read(path, "prior")
    if header.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not a dts_ppl prior file (format {header.get('format')!r})")
    if header.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"path: {path!r} has prior-file format version {header.get('format_version')!r} (written by "
            f"dts_ppl {header.get('package_version')}); this dts_ppl reads versions {READABLE_VERSIONS}"
        )
    if header["format_version"] >= 2 and not has_digest:
        raise ValueError(f"path: {path!r} is corrupt (a version-2 file without its whole-file SHA-256)")
    if header.get("link_class") not in _LINK_CLASSES:
        raise ValueError(f"path: {path!r} holds unknown link type {header.get('link_class')!r}")
    if npz.array_digest(arrays) != header.get("sha256"):
        raise ValueError(f"path: {path!r} is corrupt (its arrays do not match the stored SHA-256)")
    return arrays, header


_HEADER_KEYS = {
    "link_class": str,
    "num_levels": int,
    "dim": int,
    "latent_dim": int,
    "shared_link_fields": list,
    "metadata": dict,
}


def _check_header(path, arrays: dict, header: dict) -> None:
    """The header's sizes and link class agree with the arrays; every array is finite."""
    for k, t in _HEADER_KEYS.items():
        if k not in header:
            raise ValueError(f"path: {path!r} has an incomplete header (no {k!r})")
        if not isinstance(header[k], t) or (t is int and isinstance(header[k], bool)):
            raise ValueError(f"path: {path!r} header field {k!r} should be a {t.__name__}, got {header[k]!r}")
    L, d, dp = header["num_levels"], header["dim"], header["latent_dim"]
    if min(L, d, dp) < 1:
        raise ValueError(f"path: {path!r} header has non-positive sizes (num_levels={L}, dim={d}, latent_dim={dp})")
    cls = _LINK_CLASSES[header["link_class"]]
    expected = {"cov1", "covs"} | {f"link1/{f}" for f in cls._fields}
    if L > 1:
        expected |= {f"links/{f}" for f in cls._fields}
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise ValueError(
            f"path: {path!r} arrays do not match its header (link_class={cls.__name__}, num_levels={L}): "
            f"missing {missing}, unexpected {extra}"
        )
    if not set(header["shared_link_fields"]) <= set(cls._fields) or (L == 1 and header["shared_link_fields"]):
        raise ValueError(f"path: {path!r} header lists unknown shared link fields {header['shared_link_fields']}")

    def want(name, shape):
        got = arrays[name].shape
        if got != shape:
            raise ValueError(f"path: {path!r} array {name!r} has shape {got}, its header implies {shape}")

    want("cov1", (d, d))
    want("covs", (L, dp, dp))
    for name, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise ValueError(f"path: {path!r} array {name!r} has non-numeric dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"path: {path!r} array {name!r} contains NaN or inf")
    if cls is AffineLink:
        want("link1/weight", (d, dp))
        want("link1/offset", (d,))
        if L > 1:
            for f, shape in (("weight", (dp, dp)), ("offset", (dp,))):
                want(f"links/{f}", shape if f in header["shared_link_fields"] else (L - 1,) + shape)
    else:
        # MLP / DDPM links: the first axis of link arrays of levels >= 2 is the level axis
        if L > 1:
            for f in cls._fields:
                a = arrays[f"links/{f}"]
                if f not in header["shared_link_fields"] and (a.ndim == 0 or a.shape[0] != L - 1):
                    raise ValueError(
                        f"path: {path!r} array 'links/{f}' has shape {a.shape}, its header implies {L - 1} levels"
                    )


def _check_links(path, prior: DiffusionPrior) -> None:
    """Each link maps a latent (d_psi,) to the level below: f_1 to (d,), f_2..f_L to (d_psi,)."""
    z = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    try:
        out1 = jax.eval_shape(prior.link1, z).shape
        outs = None if prior.links is None else jax.eval_shape(jax.vmap(lambda lk: lk(z)), prior.links).shape
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError(f"path: {path!r} link arrays do not fit together ({e})") from None
    if out1 != (prior.dim,) or (outs is not None and outs != (prior.num_levels - 1, prior.latent_dim)):
        raise ValueError(
            f"path: {path!r} links map to shapes {out1} / {outs}, the header implies ({prior.dim},) / "
            f"({prior.num_levels - 1}, {prior.latent_dim})"
        )
