"""Save and load a DiffusionPrior (any link family), or an agent's state, to one ``.npz`` file.

The file is a NumPy ``.npz`` archive (no pickle): every array of the prior's pytree at its own
dtype, so a loaded prior is bit-identical, plus a JSON header ``__meta__`` holding the file
format and version, the link class, the package version, a SHA-256 of the arrays and the
caller's metadata (for a trained DDPM: schedule, L, d, standardisation, ...). Stacked link
arrays that are equal across levels (a DDPM's shared network weights) are stored once.

Agent states (:func:`save_state`, :func:`load_state`) use the same container: every array of
the state's pytree under its field path (``evidence/stats/G``), the pytree's structure by
class and field names in the JSON header (no pickle; None fields recorded as such), the agent
kind, K, d, L, dtype and package version, and a SHA-256 over the arrays and the header. Every
write goes to a temporary file in the target's folder, is fsync'ed and then renamed over the
target (``os.replace``), so a crash or a rejected save never leaves a half-written file and
never touches the previous good one.
Format version 2 also stores a SHA-256 of the WHOLE archive (every byte, zip headers and
compressed streams included) in the zip comment, ``dts_ppl-sha256:<hex>``, checked before
anything is parsed: any corrupted byte fails the load. Loading then checks the header against
the arrays (link class, L, d, d_psi, every array's shape) and that every array is finite.
Version-1 files (array checksum only) still load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl._version import __version__
from dts_ppl.agents.base import AgentSpec
from dts_ppl.agents.dts import DTSState
from dts_ppl.agents.exact import JointState
from dts_ppl.agents.linear import LinearState
from dts_ppl.core.inference import Conditionals, Message
from dts_ppl.core.likelihoods import ActionStats, Evidence, History
from dts_ppl.core.links import AffineLink, MLPLink
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.ddpm.prior import DDPMLink

FORMAT = "dts_ppl.prior"  # the file-format name (not a module path)
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_TAG = b"dts_ppl-sha256:"
_TRAILER = len(_TAG) + 64  # the zip comment: tag + hex digest
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory signature (22 bytes + comment)


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
    raw = buf.getvalue()
    if raw[-22:-18] != _EOCD or raw[-2:] != b"\x00\x00":  # pragma: no cover - numpy writes no comment
        raise ValueError("path: unexpected zip layout from numpy.savez_compressed")
    digest = hashlib.sha256(raw).hexdigest().encode()
    atomic_write(path, raw[:-2] + _TRAILER.to_bytes(2, "little") + _TAG + digest)


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"path: folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
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


def _check_whole_file(path, data: bytes):
    """(payload bytes, has_digest): verify the whole-archive SHA-256 of a version-2 file."""
    if len(data) >= 22 + _TRAILER and data[-_TRAILER:].startswith(_TAG):
        eocd = data[:-_TRAILER][-22:]
        if eocd[:4] != _EOCD or int.from_bytes(eocd[-2:], "little") != _TRAILER:
            raise ValueError(f"path: {path!r} is corrupt (damaged zip end record)")
        original = data[: -_TRAILER - 2] + b"\x00\x00"
        if hashlib.sha256(original).hexdigest().encode() != data[-64:]:
            raise ValueError(f"path: {path!r} is corrupt (the file does not match its stored SHA-256)")
        return True
    return False


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


def _read(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such prior file {path!r}")
    with open(path, "rb") as f:
        data = f.read()
    has_digest = _check_whole_file(path, data)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
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
    if not isinstance(header, dict):
        raise ValueError(f"path: {path!r} has a corrupt header (expected a JSON object)")
    if header.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"path: {path!r} has prior-file format version {header.get('format_version')!r} (written by "
            f"dts_ppl {header.get('package_version')}); this dts_ppl reads versions {READABLE_VERSIONS}"
        )
    if header["format_version"] >= 2 and not has_digest:
        raise ValueError(f"path: {path!r} is corrupt (a version-2 file without its whole-file SHA-256)")
    if header.get("link_class") not in _LINK_CLASSES:
        raise ValueError(f"path: {path!r} holds unknown link type {header.get('link_class')!r}")
    if _digest(arrays) != header.get("sha256"):
        raise ValueError(f"path: {path!r} is corrupt (its arrays do not match the stored SHA-256)")
    return arrays, header


# ------------------------------------------------------------------------------ agent states

STATE_FORMAT = "dts_ppl.state"
STATE_FORMAT_VERSION = 1

_STATE_CLASSES = {
    cls.__name__: cls
    for cls in (DTSState, LinearState, JointState, Evidence, History, ActionStats, Message, Conditionals)
}


def _encode(node, path: str, arrays: dict):
    """The pytree's structure as JSON (class and field names), its arrays into ``arrays``."""
    if node is None:
        return {"none": True}
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        name = type(node).__name__
        if name not in _STATE_CLASSES:
            raise ValueError(f"state: cannot save a {name} (known state types: {sorted(_STATE_CLASSES)})")
        fields = [[f, _encode(getattr(node, f), f"{path}/{f}" if path else f, arrays)] for f in node._fields]
        return {"class": name, "fields": fields}
    try:
        arr = np.asarray(node)
    except Exception as e:  # noqa: BLE001 - anything that is not an array
        raise ValueError(f"state: field {path!r} is not an array ({type(node).__name__}: {e})") from None
    if arr.dtype == object:
        raise ValueError(f"state: field {path!r} is not a numeric array ({type(node).__name__})")
    arrays[path] = arr
    return {"array": path}


def _decode(tree, arrays: dict, where: str):
    if tree.get("none"):
        return None
    if "array" in tree:
        return jnp.asarray(arrays[tree["array"]])
    cls = _STATE_CLASSES.get(tree.get("class"))
    if cls is None:
        raise ValueError(f"path: {where!r} holds an unknown state type {tree.get('class')!r}")
    names = [f for f, _ in tree["fields"]]
    if list(cls._fields) != names:
        raise ValueError(
            f"path: {where!r} holds a {cls.__name__} with fields {names}; this dts_ppl's {cls.__name__} has "
            f"fields {list(cls._fields)} (written by dts_ppl {{version}})"
        )
    return cls(*(_decode(sub, arrays, where) for _, sub in tree["fields"]))


def _infer_spec(state) -> dict:
    """What a state alone tells about its agent (used when no agent is given)."""
    if isinstance(state, DTSState):
        M, d = state.theta_cov.shape[0], state.theta_cov.shape[-1]
        return dict(kind="dts", num_actions=M if M > 1 else None, dim=d, num_levels=state.latents.gain.shape[0])
    if isinstance(state, LinearState):
        M, d = state.mean.shape
        return dict(kind="linear", num_actions=M if M > 1 else None, dim=d, num_levels=0)
    if isinstance(state, JointState):
        return dict(kind="exact_ts", num_actions=None, dim=None, num_levels=None)
    raise ValueError(f"state: expected an agent state (DTSState, LinearState, JointState), got {type(state).__name__}")


def _header_digest(arrays: dict, header: dict) -> str:
    """SHA-256 over the arrays and the header (without its own checksum field)."""
    h = hashlib.sha256(_digest(arrays).encode())
    h.update(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True).encode())
    return h.hexdigest()


def save_state(path, state, metadata: dict | None = None, agent=None) -> None:
    """Write an agent's state (and a JSON-serialisable ``metadata`` dict) to ``path``, atomically.

    Args:
        path: the .npz file to write (its folder must exist); a previous file there is replaced
            only once the new one is completely written.
        state: a state of any dts_ppl agent (a NamedTuple of arrays).
        metadata: JSON-serialisable dict, returned by :func:`load_state`.
        agent: the Agent the state belongs to (recommended): records its kind, K, L, shared and
            likelihood exactly, so :func:`load_state` can check them; without it they are
            inferred from the state's type and shapes (K unknown when shared).

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from dts_ppl.agents import dts
        >>> agent = dts(DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0]), num_actions=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
        >>> save_state(path, agent.init(), {"round": 0}, agent=agent)
        >>> state, meta = load_state(path, expect=agent)
        >>> meta["round"], int(state.step)
        (0, 0)
    """
    if agent is not None:
        spec = _agent_spec(agent, "agent")
        info = dict(spec._asdict())
    else:
        info = dict(_infer_spec(state), shared=None, likelihood=None, deterministic=None)
        info.update(kind=None, num_levels=None if info["kind"] == "dts" else info["num_levels"])
    _infer_spec(state)  # a state type check either way
    arrays: dict = {}
    tree = _encode(state, "", arrays)
    floats = sorted({str(a.dtype) for a in arrays.values() if a.dtype.kind == "f"})
    try:
        user = json.loads(json.dumps(metadata or {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"metadata: expected a JSON-serialisable dict ({e})") from None
    if not isinstance(user, dict):
        raise ValueError(f"metadata: expected a dict, got {type(metadata).__name__}")
    header = dict(
        format=STATE_FORMAT,
        format_version=STATE_FORMAT_VERSION,
        package_version=__version__,
        state_class=type(state).__name__,
        dtype=floats[0] if len(floats) == 1 else floats,
        tree=tree,
        metadata=user,
        **info,
    )
    header["sha256"] = _header_digest(arrays, header)
    arrays = {f"state/{k}": v for k, v in arrays.items()}
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def _agent_spec(agent, name: str) -> AgentSpec:
    spec = getattr(agent, "spec", None)
    if not isinstance(spec, AgentSpec):
        raise ValueError(
            f"{name}: expected a dts_ppl Agent with a spec (from an agent factory), got {type(agent).__name__}"
        )
    return spec


def read_state_header(path) -> dict:
    """The validated JSON header of a state file (format, versions, kind, K, d, L, dtype, metadata)."""
    return _read_state(path)[1]


def load_state(path, expect=None):
    """Read a state written by :func:`save_state`.

    Args:
        path: the file.
        expect: an Agent (recommended: its kind, K, d, L, shared, likelihood and the exact
            structure, shapes and dtypes of ``agent.init()`` are checked), or a dict with any of
            the keys kind, num_actions, dim, num_levels, shared, likelihood, state_class.

    Returns:
        (state, metadata).

    Raises:
        ValueError: missing, truncated or corrupted file (checksum), a foreign file (not a
            dts_ppl state, or another format version), or a state that does not match ``expect``;
            the message names what is wrong.
    """
    arrays, header = _read_state(path)
    where = os.fspath(path)
    try:
        state = _decode(header["tree"], arrays, where)
    except KeyError as e:
        raise ValueError(f"path: {where!r} is corrupt (its structure names a missing array {e})") from None
    except ValueError as e:
        raise ValueError(str(e).replace("{version}", str(header.get("package_version")))) from None
    if expect is not None:
        _check_expected(where, header, state, expect)
    return state, header["metadata"]


def _check_expected(where: str, header: dict, state, expect) -> None:
    if isinstance(expect, dict):
        wanted, template = dict(expect), None
    else:
        wanted, template = dict(_agent_spec(expect, "expect")._asdict()), expect.init()
        wanted.pop("deterministic")
    for key, value in wanted.items():
        if key not in header or key in ("format", "tree", "metadata", "sha256"):
            raise ValueError(f"expect: unknown key {key!r}")
        got = header[key]
        if got is not None and got != value:
            raise ValueError(f"path: {where!r} holds a state with {key}={got!r}; expected {key}={value!r}")
    if template is None:
        return
    if jax.tree.structure(template) != jax.tree.structure(state):
        raise ValueError(
            f"path: {where!r} holds a {header['state_class']} whose structure differs from the agent's state "
            f"(file {jax.tree.structure(state)}, agent {jax.tree.structure(template)})"
        )
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    for name, a, b in zip(paths, jax.tree.leaves(state), jax.tree.leaves(template), strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"path: {where!r}: state field {name} has shape {tuple(a.shape)} {a.dtype}; the agent's has "
                f"{tuple(b.shape)} {b.dtype} (a state of another K, d, L or dtype)"
            )


def _read_state(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such state file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib.error) as e:
        raise ValueError(f"path: {path!r} is not a readable dts_ppl state file (corrupt or truncated: {e})") from None
    if "__meta__" not in arrays:
        raise ValueError(f"path: {path!r} is not a dts_ppl state file (no __meta__ header)")
    try:
        header = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"path: {path!r} has a corrupt header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"path: {path!r} is not a dts_ppl state file (format {fmt!r})")
    if header.get("format_version") != STATE_FORMAT_VERSION:
        raise ValueError(
            f"path: {path!r} has state-file format version {header.get('format_version')!r} (written by "
            f"dts_ppl {header.get('package_version')}); this dts_ppl reads version {STATE_FORMAT_VERSION}"
        )
    if any(not k.startswith("state/") for k in arrays):
        raise ValueError(f"path: {path!r} is corrupt (unexpected entries in the archive)")
    arrays = {k[len("state/") :]: v for k, v in arrays.items()}
    if _header_digest(arrays, header) != header.get("sha256"):
        raise ValueError(f"path: {path!r} is corrupt (its content does not match the stored SHA-256)")
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
