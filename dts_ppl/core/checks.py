"""Input validation: clear ValueErrors that name the argument and what was expected.

Value checks (finiteness, ranges, PSD) run only on concrete arrays: under `jit`, `vmap` or
NUTS the arguments are tracers and only their shapes can be checked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds actual values (not a JAX tracer)."""
    return not isinstance(x, jax.core.Tracer)


def is_real_dtype(dtype) -> bool:
    """A floating or integer dtype (not bool, complex, string or object)."""
    return dtype != jnp.bool_ and (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))


def check_key(key, name: str = "key"):
    """A single JAX PRNG key: a typed key array () or a raw uint32 key of shape (2,) (shapes only, jit-safe)."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.ndim != 0:
            raise ValueError(f"{name}: expected a single PRNG key, got a key array of shape {tuple(key.shape)}")
        return key
    if not isinstance(key, jax.Array | np.ndarray) or key.shape != (2,) or key.dtype != np.uint32:
        what = f"{key.dtype} array of shape {tuple(key.shape)}" if hasattr(key, "shape") else repr(key)
        raise ValueError(f"{name}: expected a PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed)), got {what}")
    return key


def optional_key(key, name: str = "key", seed: int = 0):
    """``key`` checked by :func:`check_key`, or ``jax.random.PRNGKey(seed)`` when it is None (a documented default)."""
    return jax.random.PRNGKey(seed) if key is None else check_key(key, name)


def check_int(name: str, value, minimum: int = 1) -> int:
    """A Python or NumPy integer (not a bool) >= minimum."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, "an integer")
        raise ValueError(f"{name}: expected {what} (an integer >= {minimum}), got {value!r}")
    return int(value)


def check_scalar(name: str, value, positive: bool = True) -> float:
    """A real finite number (not a bool or string; a 0-d array is fine), > 0 when ``positive``."""
    if isinstance(value, bool | np.bool_ | str | bytes) or value is None:
        raise ValueError(f"{name}: expected a {'positive ' if positive else ''}finite number, got {value!r}")
    if is_concrete(value) and np.ndim(value) == 0:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = None
        if v is not None and np.isfinite(v) and (v > 0 or not positive):
            return v
    raise ValueError(f"{name}: expected a {'positive ' if positive else ''}finite number, got {value!r}")


def as_array(name: str, x, ndim: int | None = None, shape: tuple | None = None):
    """Convert to a floating jnp array and check rank / shape (None entries are free); no empty axes."""
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    if isinstance(x, str | bytes):
        raise ValueError(f"{name}: expected a numeric array, got {x!r}")
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: cannot be converted to a numeric array ({e})") from None
    if not is_real_dtype(arr.dtype):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {tuple(arr.shape)}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
            parts = ["?" if s is None else str(s) for s in shape]
            want = f"({parts[0]},)" if len(parts) == 1 else "(" + ", ".join(parts) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {tuple(arr.shape)}")
    if arr.size == 0 and (ndim is None or ndim > 0) and shape is None:
        raise ValueError(f"{name}: expected a non-empty array, got shape {tuple(arr.shape)}")
    return arr


def check_positive_int(name: str, value, what: str = "a positive integer") -> int:
    """``value`` as an int if it is an integer >= 1 (Python or NumPy; bools rejected), else ValueError.

    ``what`` words the expectation in the message (e.g. "a positive buffer size"); the check is
    :func:`check_int` with minimum 1.
    """
    try:
        return check_int(name, value, 1)
    except ValueError:
        raise ValueError(f"{name}: expected {what}, got {value!r}") from None


def check_finite(name: str, x) -> None:
    """Raise if a concrete array contains NaN or inf."""
    if is_concrete(x):
        bad = ~np.isfinite(np.asarray(x))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}: contains NaN or inf (first at index {idx})")


def check_actions(name: str, a, num_actions: int, length: int | None = None):
    """Integer action indices in [0, num_actions); returns an int32 array."""
    if a is None or isinstance(a, str | bytes):
        raise ValueError(f"{name}: expected integer actions of shape (n,), got {a!r}")
    try:
        arr = jnp.asarray(a)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: expected integer actions of shape (n,) ({e})") from None
    if not is_real_dtype(arr.dtype):
        raise ValueError(f"{name}: expected integer action indices, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (n,), got {tuple(arr.shape)}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name}: expected {length} actions (one per context row), got {arr.shape[0]}")
    if is_concrete(arr):
        np_a = np.asarray(arr)
        if np_a.dtype.kind == "f":
            if not np.all(np.isfinite(np_a)) or np.any(np_a != np.round(np_a)):
                raise ValueError(f"{name}: expected integer action indices, got non-integer values")
        elif np_a.dtype.kind not in "iub":
            raise ValueError(f"{name}: expected integer action indices, got dtype {np_a.dtype}")
        if np_a.size and (np_a.min() < 0 or np_a.max() >= num_actions):
            bad = np_a[(np_a < 0) | (np_a >= num_actions)][0]
            raise ValueError(f"{name}: action index {bad} is outside [0, {num_actions}) (num_actions={num_actions})")
    return arr.astype(jnp.int32)


def covariance(name: str, s, dim: int, dtype=None):
    """Turn a scalar, a diagonal vector or a full matrix into a validated (dim, dim) covariance.

    Full matrices must be symmetric (to 1e-6 relative) and positive definite.
    """
    if s is None or isinstance(s, str | bytes | bool):
        raise ValueError(f"{name}: expected a scalar, a diagonal vector or a ({dim}, {dim}) matrix, got {s!r}")
    if dim < 1:
        raise ValueError(f"{name}: the dimension must be >= 1, got {dim}")
    try:
        arr = jnp.asarray(s, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: cannot be converted to a numeric array ({e})") from None
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim == 0:
        arr = arr * jnp.eye(dim, dtype=arr.dtype)
    elif arr.ndim == 1:
        if arr.shape[0] != dim:
            raise ValueError(f"{name}: diagonal of length {arr.shape[0]} given, expected {dim}")
        arr = jnp.diag(arr)
    elif arr.ndim == 2:
        if arr.shape != (dim, dim):
            raise ValueError(f"{name}: expected a ({dim}, {dim}) covariance, got {tuple(arr.shape)}")
    else:
        raise ValueError(f"{name}: expected a scalar, a vector or a matrix, got shape {tuple(arr.shape)}")
    if is_concrete(arr):
        m = np.asarray(arr, dtype=np.float64)
        if not np.all(np.isfinite(m)) or not np.all(np.isfinite(np.asarray(arr))):
            raise ValueError(f"{name}: contains NaN or inf (in its dtype {arr.dtype})")
        scale = max(np.abs(m).max(), 1e-300)
        if np.abs(m - m.T).max() > 1e-6 * scale:
            raise ValueError(f"{name}: covariance is not symmetric (max |S - S^T| = {np.abs(m - m.T).max():.3g})")
        eig = np.linalg.eigvalsh(0.5 * (m + m.T))
        if eig.min() <= 0:
            raise ValueError(f"{name}: covariance is not positive definite (smallest eigenvalue {eig.min():.3g})")
    return arr
