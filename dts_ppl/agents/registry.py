"""What checkpoints need from the agents: state classes by name, and a fingerprint of each agent's model.

State classes. A checkpoint (:mod:`dts_ppl.io.state_files`) stores a state's pytree by class and
field names and rebuilds it from those names alone (no pickle, no import of a name read from a
file), so every NamedTuple that can appear in a state registers itself where it is defined:

    @register_state            # or register_state(MyState) after the class
    class MyState(NamedTuple): ...

The core's containers that states nest (Evidence, History, ActionStats, Message, Conditionals)
are registered here, since the core does not know about the agents.

Fingerprints. :func:`model_fingerprint` summarises what a state's meaning depends on beyond its
shapes: the prior's arrays (a SHA-256 over every leaf), the likelihood's class and parameters,
and the options the agent's ``update`` uses. Each factory puts it in ``AgentSpec.fingerprint``;
``save_state(..., agent=)`` stores it and ``load_state(path, agent)`` compares it
(:func:`fingerprint_differences`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import jax
import numpy as np

from dts_ppl.core.inference import Conditionals, Message
from dts_ppl.core.likelihoods import ActionStats, Evidence, History

__all__ = ["fingerprint_differences", "model_fingerprint", "register_state", "registered_states", "state_class"]

_STATES: dict[str, type] = {}


def register_state(*classes: type) -> type:
    """Register NamedTuple classes that may appear in a saved state; returns the first (a decorator).

    Args:
        *classes: NamedTuple classes (at least one). A class is known by its ``__name__``; a second,
            different class of the same name is refused.

    Returns:
        ``classes[0]``, so ``@register_state`` decorates a class definition.
    """
    if not classes:
        raise ValueError("classes: expected at least one NamedTuple class")
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise ValueError(f"classes: expected NamedTuple classes, got {cls!r}")
        known = _STATES.get(cls.__name__)
        if known is not None and known is not cls and _qualname(known) != _qualname(cls):
            raise ValueError(
                f"classes: a state class named {cls.__name__!r} is already registered ({_qualname(known)}); "
                f"cannot register {_qualname(cls)} under the same name"
            )
        _STATES[cls.__name__] = cls
    return classes[0]


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def state_class(name: str) -> type | None:
    """The registered class called ``name``, or None."""
    return _STATES.get(name)


def registered_states() -> dict[str, type]:
    """A copy of the registry: {class name: class}."""
    return dict(_STATES)


register_state(Evidence, History, ActionStats, Message, Conditionals)


# ---------------------------------------------------------------------------------- fingerprints


def _array_digest(leaves: list[tuple[str, Any]]) -> str | None:
    """SHA-256 over (path, dtype, shape, bytes) of every leaf; None when a leaf is a tracer."""
    h = hashlib.sha256()
    for path, leaf in leaves:
        try:
            a = np.ascontiguousarray(np.asarray(leaf))
        except jax.errors.TracerArrayConversionError:
            return None  # a factory called under jit: nothing concrete to fingerprint
        h.update(f"{path}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """A JSON value standing for ``value``: plain scalars as they are, arrays by their digest."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if np.ndim(value) == 0:
            try:
                return np.asarray(value).item()
            except jax.errors.TracerArrayConversionError:
                return None
        digest = _array_digest([("", value)])
        return None if digest is None else "sha256:" + digest
    return repr(value)


def _prior_digest(prior: Any) -> str | None:
    """SHA-256 of a prior pytree (DiffusionPrior, GaussianPrior, a bank array): structure and arrays."""
    if prior is None:
        return None
    leaves, treedef = jax.tree_util.tree_flatten_with_path(prior)
    digest = _array_digest([(jax.tree_util.keystr(p), leaf) for p, leaf in leaves])
    if digest is None:
        return None
    return hashlib.sha256(f"{treedef}|{digest}".encode()).hexdigest()


def _likelihood_params(likelihood: Any) -> dict | None:
    if likelihood is None:
        return None
    params = {"class": type(likelihood).__name__}
    if dataclasses.is_dataclass(likelihood):
        params.update({f.name: _plain(getattr(likelihood, f.name)) for f in dataclasses.fields(likelihood)})
    else:
        params["repr"] = repr(likelihood)
    return params


def model_fingerprint(
    prior: Any = None, likelihood: Any = None, glm_options: dict | None = None, **options: Any
) -> dict:
    """What a state's meaning depends on, as plain JSON values (computed once, in the factory).

    Args:
        prior: the prior the agent computes with (a DiffusionPrior, a GaussianPrior, a bank
            array (N, d), any pytree of arrays) or None.
        likelihood: the likelihood the agent uses (its class and dataclass fields are recorded).
        glm_options: options that only matter for non-Gaussian rewards (history, newton_steps);
            left out when ``likelihood.is_exact``.
        **options: the other options ``update`` uses (plain values; arrays by digest).

    Returns:
        {"prior": hex SHA-256 or None, "likelihood": {"class": ..., parameters} or None,
        "options": {name: value}}.
    """
    opts = dict(options)
    if glm_options and not getattr(likelihood, "is_exact", True):
        opts.update(glm_options)
    return {
        "prior": _prior_digest(prior),
        "likelihood": _likelihood_params(likelihood),
        "options": {k: _plain(v) for k, v in sorted(opts.items())},
    }


def fingerprint_differences(saved: dict | None, current: dict | None) -> list[str]:
    """What differs between two fingerprints, one phrase each ([] when equal or either is unknown).

    Args:
        saved: the fingerprint stored in a file.   current: the agent's (``agent.spec.fingerprint``).
    """
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return []
    out = []
    a, b = saved.get("prior"), current.get("prior")
    if a is not None and b is not None and a != b:
        out.append(f"prior arrays (file sha256 {a[:12]}..., agent {b[:12]}...)")
    la, lb = saved.get("likelihood"), current.get("likelihood")
    if isinstance(la, dict) and isinstance(lb, dict):
        if la.get("class") != lb.get("class"):
            out.append(f"likelihood (file {la.get('class')}, agent {lb.get('class')})")
        else:
            out += [f"likelihood parameter {k} ({diff})" for k, diff in _changed(la, lb)]
    oa, ob = saved.get("options") or {}, current.get("options") or {}
    out += [f"option {k} ({diff})" for k, diff in _changed(oa, ob)]
    return out


def _changed(a: dict, b: dict) -> list[tuple[str, str]]:
    """(key, "file X, agent Y") for every key whose values differ (a missing key reads "absent")."""

    def show(d, k):
        return repr(d[k]) if k in d else "absent"

    return [
        (k, f"file {show(a, k)}, agent {show(b, k)}")
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k) or (k in a) != (k in b)
    ]
