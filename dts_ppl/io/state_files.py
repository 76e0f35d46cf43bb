"""State files (checkpoints): an agent's state, what agent it belongs to, and its model's fingerprint.

One :mod:`dts_ppl.io.npz` file (whole-file SHA-256, atomic write, no pickle): every array of the
state's pytree under its field path (``evidence/stats/G``), the pytree's structure in the JSON
header by class and field names (NamedTuples registered with
:func:`dts_ppl.agents.registry.register_state`; dicts, tuples and None fields as such), the
agent's kind, K, d, L, shared and likelihood name (``AgentSpec``), its model fingerprint
(:func:`dts_ppl.agents.registry.model_fingerprint`: prior arrays, likelihood parameters, update
options), the float dtype, the package version and the caller's metadata. A catalogue's state
(:class:`dts_ppl.agents.catalogue.CatalogueState`) is saved the same way: the wrapped state, the
active set, the stable ids and the next id; K is then the catalogue's capacity.

What is checked. On save: the state is a registered state class; every float array is finite;
with ``agent=``, the state has the structure, shapes and dtypes of ``agent.init()`` (so a K = 4
state is never written as a K = 7 agent's). On load: the whole-file digest, the format and its
version, every array finite, and with ``expect=agent`` the recorded spec, the structure, shapes
and dtypes, and the fingerprint: a state saved by an agent with other prior arrays, likelihood
parameters or options is refused with a message naming each difference, unless
``allow_mismatch=True`` (then it loads with a warning).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import dts_ppl.agents  # noqa: F401 - importing the agents registers their state classes
from dts_ppl._version import __version__
from dts_ppl.agents.base import Agent, AgentSpec
from dts_ppl.agents.registry import fingerprint_differences, registered_states, state_class
from dts_ppl.io import npz
from dts_ppl.io.npz import PathLike

__all__ = ["STATE_FORMAT", "STATE_FORMAT_VERSION", "load_state", "read_state_header", "save_state"]

STATE_FORMAT = "dts_ppl.state"
STATE_FORMAT_VERSION = 2
READABLE_STATE_VERSIONS = (1, 2)  # version 1: a SHA-256 of the arrays and header, no whole-file digest
_PREFIX = "state/"


# ------------------------------------------------------------------------------ the pytree as JSON


def _is_namedtuple(node) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _encode(node, path: str, arrays: dict):
    """The pytree's structure as JSON (class and field names), its arrays into ``arrays``."""
    if node is None:
        return {"none": True}
    if _is_namedtuple(node):
        name = type(node).__name__
        if state_class(name) is not type(node):
            raise ValueError(
                f"state: cannot save a {name} at {path or 'the top'!r}: not a registered state class (register it "
                "with dts_ppl.agents.registry.register_state where it is defined)"
            )
        fields = [[f, _encode(getattr(node, f), f"{path}/{f}" if path else f, arrays)] for f in node._fields]
        return {"class": name, "fields": fields}
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise ValueError(f"state: field {path!r} is a dict with keys that are not strings")
        return {"dict": [[k, _encode(v, f"{path}/{k}" if path else k, arrays)] for k, v in node.items()]}
    if isinstance(node, tuple | list):
        kind = "tuple" if isinstance(node, tuple) else "list"
        return {kind: [_encode(v, f"{path}/{i}" if path else str(i), arrays) for i, v in enumerate(node)]}
    if path in arrays:
        raise ValueError(f"state: two fields are both stored as {path!r} (a dict key with '/'?)")
    if isinstance(node, jax.Array) and jax.dtypes.issubdtype(node.dtype, jax.dtypes.prng_key):
        arrays[path] = np.asarray(jax.random.key_data(node))
        return {"key": path, "impl": str(jax.random.key_impl(node))}
    try:
        arr = np.asarray(node)
    except Exception as e:  # noqa: BLE001 - anything that is not an array
        raise ValueError(f"state: field {path!r} is not an array ({type(node).__name__}: {e})") from None
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"state: field {path!r} is not a numeric array ({type(node).__name__}, dtype {arr.dtype})")
    arrays[path] = arr
    return {"array": path}


def _decode(tree, arrays: dict, where: str, used: set):
    if not isinstance(tree, dict):
        raise ValueError(f"path: {where!r} is corrupt (a malformed structure entry {tree!r})")
    if tree.get("none"):
        return None
    if "array" in tree:
        used.add(tree["array"])
        return jnp.asarray(arrays[tree["array"]])
    if "key" in tree:
        used.add(tree["key"])
        return jax.random.wrap_key_data(jnp.asarray(arrays[tree["key"]]), impl=tree["impl"])
    if "dict" in tree:
        return {k: _decode(sub, arrays, where, used) for k, sub in tree["dict"]}
    if "tuple" in tree or "list" in tree:
        items = [_decode(sub, arrays, where, used) for sub in tree.get("tuple", tree.get("list"))]
        return tuple(items) if "tuple" in tree else items
    cls = state_class(tree.get("class"))
    if cls is None:
        raise ValueError(
            f"path: {where!r} holds an unknown state type {tree.get('class')!r} (registered: "
            f"{sorted(registered_states())}; import the module that defines it first)"
        )
    names = [f for f, _ in tree["fields"]]
    if list(cls._fields) != names:
        raise ValueError(
            f"path: {where!r} holds a {cls.__name__} with fields {names}; this dts_ppl's {cls.__name__} has "
            f"fields {list(cls._fields)} (written by dts_ppl {{version}})"
        )
    return cls(*(_decode(sub, arrays, where, used) for _, sub in tree["fields"]))


def _non_finite(arrays: dict) -> list[str]:
    return [name for name, a in sorted(arrays.items()) if a.dtype.kind in "fc" and not np.all(np.isfinite(a))]


# ------------------------------------------------------------------------------ the agent's template

_TEMPLATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _template(agent):
    """``jax.eval_shape(agent.init)`` (structure, shapes, dtypes), cached per ``init`` function."""
    try:
        return _TEMPLATES[agent.init]
    except (KeyError, TypeError):
        pass
    ref = jax.eval_shape(agent.init)
    try:
        _TEMPLATES[agent.init] = ref
    except TypeError:  # not weak-referenceable: no cache
        pass
    return ref


def _mismatch(state, template) -> str | None:
    """Why ``state`` is not a state of the agent whose ``init()`` has ``template``'s shapes (None if it is)."""
    if type(state) is not type(template):
        return f"a {type(state).__name__} is not its state (its init() gives a {type(template).__name__})"
    if jax.tree.structure(state) != jax.tree.structure(template):
        got, want = jax.tree.structure(state), jax.tree.structure(template)
        return f"the state's structure {got} differs from its init()'s {want}"
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    for name, a, b in zip(paths, jax.tree.leaves(state), jax.tree.leaves(template), strict=True):
        shape, dtype = np.shape(a), a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
        if shape != b.shape or dtype != b.dtype:
            return (
                f"state field {name} has shape {tuple(shape)} {dtype}; its init() gives {tuple(b.shape)} {b.dtype} "
                "(a state of an agent with another K, d, L, history or dtype?)"
            )
    return None


def _agent_spec(agent, name: str) -> AgentSpec:
    spec = getattr(agent, "spec", None)
    if not isinstance(spec, AgentSpec):
        raise ValueError(
            f"{name}: expected a dts_ppl Agent with a spec (from an agent factory), got {type(agent).__name__}"
        )
    return spec


# ------------------------------------------------------------------------------------------ save


def save_state(path: PathLike, state: tuple, metadata: dict | None = None, agent: Agent | None = None) -> None:
    """Write an agent's state (and a JSON-serialisable ``metadata`` dict) to ``path``, atomically.

    Args:
        path: the .npz file to write (its folder must exist); a previous file there is replaced
            only once the new one is completely written.
        state: a state of any dts_ppl agent (a NamedTuple of arrays of a registered class).
        metadata: JSON-serialisable dict, returned by :func:`load_state`.
        agent: the Agent the state belongs to (recommended): the state must have the structure,
            shapes and dtypes of ``agent.init()``; its kind, K, d, L, shared, likelihood and
            model fingerprint are recorded so that :func:`load_state` can check them.

    Raises:
        ValueError: a state that is not a registered state class or holds NaN or inf; a state
            that is not ``agent``'s; metadata that is not JSON; a folder that does not exist.

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from dts_ppl import DiffusionPrior
        >>> from dts_ppl.agents import dts
        >>> agent = dts(DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0]), num_actions=3)
        >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
        >>> save_state(path, agent.init(), {"round": 0}, agent=agent)
        >>> state, meta = load_state(path, expect=agent)
        >>> meta["round"], int(state.step)
        (0, 0)
    """
    if not _is_namedtuple(state) or state_class(type(state).__name__) is not type(state):
        raise ValueError(
            f"state: expected an agent state (a NamedTuple of a registered state class, e.g. "
            f"{', '.join(sorted(n for n in registered_states() if n.endswith('State'))[:6])}), "
            f"got {type(state).__name__}"
        )
    spec = _agent_spec(agent, "agent") if agent is not None else None
    arrays: dict = {}
    tree = _encode(state, "", arrays)
    bad = _non_finite(arrays)
    if bad:
        raise ValueError(f"state: field {bad[0]!r} contains NaN or inf ({len(bad)} such fields); not saved")
    if agent is not None:
        why = _mismatch(state, _template(agent))
        if why is not None:
            raise ValueError(f"agent: the state does not belong to this {spec.kind} agent: {why}")
    try:
        user = json.loads(json.dumps(metadata if metadata is not None else {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"metadata: expected a JSON-serialisable dict ({e})") from None
    if not isinstance(user, dict):
        raise ValueError(f"metadata: expected a dict, got {type(metadata).__name__}")
    info = dict(kind=None, num_actions=None, dim=None, num_levels=None, shared=None, likelihood=None)
    info.update(deterministic=None, fingerprint=None)
    if spec is not None:
        info.update(spec._asdict())
        info["fingerprint"] = getattr(spec, "fingerprint", None)
    floats = sorted({str(a.dtype) for a in arrays.values() if a.dtype.kind == "f"})
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
    npz.write(path, {_PREFIX + k: v for k, v in arrays.items()}, header)


# ------------------------------------------------------------------------------------------ load


def read_state_header(path: PathLike) -> dict:
    """The validated JSON header of a state file (format, versions, kind, K, d, L, dtype, fingerprint, metadata)."""
    return _read_state(path)[1]


def load_state(path: PathLike, expect: Agent | dict | None = None, allow_mismatch: bool = False) -> tuple[Any, dict]:
    """Read a state written by :func:`save_state`.

    Args:
        path: the file.
        expect: an Agent (recommended: its kind, K, d, L, shared, likelihood, the structure,
            shapes and dtypes of ``agent.init()`` and its model fingerprint are checked), or a
            dict with any of the keys kind, num_actions, dim, num_levels, shared, likelihood,
            state_class.
        allow_mismatch: load a state whose fingerprint differs from ``expect``'s (other prior
            arrays, likelihood parameters or options) with a RuntimeWarning naming the
            differences, instead of refusing it. Shapes and the spec are checked either way.

    Returns:
        (state, metadata).

    Raises:
        ValueError: missing, truncated or corrupted file (whole-file SHA-256), a foreign file (not
            a dts_ppl state, or another format version), NaN or inf in the arrays, or a state
            that does not match ``expect``; the message names what is wrong.
    """
    if not isinstance(allow_mismatch, bool):
        raise ValueError(f"allow_mismatch: expected True or False, got {allow_mismatch!r}")
    arrays, header = _read_state(path)
    where = os.fspath(path)
    bad = _non_finite(arrays)
    if bad:
        raise ValueError(f"path: {where!r} is not a usable state (field {bad[0]!r} contains NaN or inf)")
    used: set = set()
    try:
        state = _decode(header["tree"], arrays, where, used)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"path: {where!r} is corrupt (its structure does not match its arrays: {e!r})") from None
    except ValueError as e:
        raise ValueError(str(e).replace("{version}", str(header.get("package_version")))) from None
    if used != set(arrays):
        raise ValueError(f"path: {where!r} is corrupt (arrays outside its structure: {sorted(set(arrays) - used)})")
    if expect is not None:
        _check_expected(where, header, state, expect, allow_mismatch)
    return state, header["metadata"]


def _check_expected(where: str, header: dict, state, expect, allow_mismatch: bool) -> None:
    if isinstance(expect, dict):
        wanted, agent = dict(expect), None
    else:
        spec = _agent_spec(expect, "expect")
        wanted, agent = dict(spec._asdict()), expect
        wanted.pop("deterministic")
        wanted.pop("fingerprint", None)
    for key, value in wanted.items():
        if key not in header or key in ("format", "tree", "metadata", "fingerprint"):
            raise ValueError(f"expect: unknown key {key!r}")
        got = header[key]
        if got is not None and got != value:
            raise ValueError(f"path: {where!r} holds a state with {key}={got!r}; expected {key}={value!r}")
    if agent is None:
        return
    why = _mismatch(state, _template(agent))
    if why is not None:
        raise ValueError(f"path: {where!r} holds a {header['state_class']} that is not this agent's: {why}")
    current = json.loads(json.dumps(getattr(agent.spec, "fingerprint", None)))
    diffs = fingerprint_differences(header.get("fingerprint"), current)
    if not diffs:
        return
    text = f"{where!r} was saved by an agent with another model: " + "; ".join(diffs)
    if not allow_mismatch:
        raise ValueError(f"path: {text} (load_state(..., allow_mismatch=True) loads it anyway)")
    warnings.warn(f"load_state: {text}; loaded anyway (allow_mismatch=True)", RuntimeWarning, stacklevel=3)


def _read_state(path) -> tuple[dict, dict]:
    """(arrays, header) of a state file: format, version and checksums checked."""
    path = os.fspath(path)
    arrays, header, has_digest = npz.read(path, "state")
    if header.get("format") != STATE_FORMAT:
        raise ValueError(f"path: {path!r} is not a dts_ppl state file (format {header.get('format')!r})")
    version = header.get("format_version")
    if version not in READABLE_STATE_VERSIONS:
        raise ValueError(
            f"path: {path!r} has state-file format version {version!r} (written by dts_ppl "
            f"{header.get('package_version')}); this dts_ppl reads versions {READABLE_STATE_VERSIONS}"
        )
    if version >= 2 and not has_digest:
        raise ValueError(f"path: {path!r} is corrupt (a version-2 file without its whole-file SHA-256)")
    if any(not k.startswith(_PREFIX) for k in arrays):
        raise ValueError(f"path: {path!r} is corrupt (unexpected entries in the archive)")
    arrays = {k[len(_PREFIX) :]: v for k, v in arrays.items()}
    if version == 1 and _v1_digest(arrays, header) != header.get("sha256"):
        raise ValueError(f"path: {path!r} is corrupt (its content does not match the stored SHA-256)")
    for key, kind in (("tree", dict), ("metadata", dict)):
        if not isinstance(header.get(key), kind):
            raise ValueError(f"path: {path!r} has a corrupt header ({key!r} is not a JSON object)")
    return arrays, header


def _v1_digest(arrays: dict, header: dict) -> str:
    """Version 1's SHA-256 over the arrays and the header (without its own checksum field)."""
    h = hashlib.sha256(npz.array_digest(arrays).encode())
    h.update(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True).encode())
    return h.hexdigest()
