"""Matrix factorisation of a rating matrix by alternating least squares (ALS), in JAX.

Ratings r_ui are centred by their training mean m and approximated by m + u_u^T v_i with
rank-d user vectors u_u and item vectors v_i, minimising

    sum_{(u, i) observed} (r_ui - m - u_u^T v_i)^2 + ridge (sum_u |u_u|^2 + sum_i |v_i|^2).

Each half-step is exact ridge regression of every user (item) on the fixed item (user)
vectors: (sum_i v_i v_i^T + ridge I) u_u = sum_i (r_ui - m) v_i, all users at once
(segment sums of outer products, then one batched Cholesky solve). Cost per sweep O(n d^2 + (U + I) d^3).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks
from dts_ppl.core.linalg import psd_solve


class Factorisation(NamedTuple):
    """ALS factors and their fit.

    Attributes:
        user_vectors: (U, d).   item_vectors: (I, d).   mean: () training mean rating.
        train_rmse: () RMSE on the training ratings.   test_rmse: () RMSE on the held-out ratings
            (nan when none were held out).
    """

    user_vectors: np.ndarray
    item_vectors: np.ndarray
    mean: float
    train_rmse: float
    test_rmse: float

    def predict(self, users, items) -> np.ndarray:
        """Predicted ratings (n,) of (user, item) index pairs (n,), (n,)."""
        return self.mean + np.sum(self.user_vectors[users] * self.item_vectors[items], -1)


def _half_step(fixed, rows, cols, resid, num_rows, ridge):
    """Ridge regression of every row entity on the fixed factors of its observed columns: (num_rows, d)."""
    v = fixed[cols]
    G = jax.ops.segment_sum(v[:, :, None] * v[:, None, :], rows, num_segments=num_rows)
    b = jax.ops.segment_sum(resid[:, None] * v, rows, num_segments=num_rows)
    d = fixed.shape[1]
    return jax.vmap(psd_solve)(G + ridge * jnp.eye(d, dtype=fixed.dtype), b)


def _rmse(U, V, users, items, centred):
    return jnp.sqrt(jnp.mean((centred - jnp.sum(U[users] * V[items], -1)) ** 2))


def train_test_split(num_ratings: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split of rating indices: (train (n - m,), test (m,)) with m = round(test_fraction n)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a fraction in [0, 1), got {test_fraction}")
    perm = np.random.RandomState(int(seed)).permutation(int(num_ratings))
    m = int(round(test_fraction * num_ratings))
    return np.sort(perm[m:]), np.sort(perm[:m])


def als(
    users,
    items,
    ratings,
    rank: int = 5,
    ridge: float = 5.0,
    num_iterations: int = 20,
    test_fraction: float = 0.1,
    num_users: int | None = None,
    num_items: int | None = None,
    seed: int = 0,
) -> Factorisation:
    """Factorise ratings by ALS; hold out a random ``test_fraction`` of them for the test RMSE.

    Args:
        users: (n,) int user indices.   items: (n,) int item indices.   ratings: (n,) ratings.
        rank: d.   ridge: the L2 penalty on every factor.   num_iterations: ALS sweeps (user + item half-steps).
        test_fraction: share of ratings held out (0 for none).
        num_users, num_items: U, I (default: max index + 1).
        seed: of the split and the initial item vectors.
    Returns:
        Factorisation with user_vectors (U, d), item_vectors (I, d), train and held-out RMSE.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    try:
        ratings = np.asarray(ratings, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"ratings: expected an (n,) array of numbers ({e})") from None
    if users.ndim != 1 or items.shape != users.shape or ratings.shape != users.shape:
        raise ValueError(
            f"users, items, ratings: expected three (n,) arrays, got {users.shape}, {items.shape}, {ratings.shape}"
        )
    if users.size < 2:
        raise ValueError(f"ratings: expected at least 2 ratings, got {users.size}")
    if users.dtype.kind not in "iu" or items.dtype.kind not in "iu" or users.min() < 0 or items.min() < 0:
        raise ValueError("users, items: expected non-negative integer indices")
    if not np.all(np.isfinite(ratings)):
        raise ValueError("ratings: contains NaN or inf")
    rank = _checks.check_positive_int("rank", rank)
    ridge = _checks.check_scalar("ridge", ridge)
    num_iterations = _checks.check_positive_int("num_iterations", num_iterations)
    U = int(users.max()) + 1 if num_users is None else _checks.check_positive_int("num_users", num_users)
    I = int(items.max()) + 1 if num_items is None else _checks.check_positive_int("num_items", num_items)  # noqa: E741
    if users.max() >= U or items.max() >= I:
        raise ValueError(f"num_users, num_items: expected more than the largest indices ({users.max()}, {items.max()})")
    test_fraction = _checks.check_scalar("test_fraction", test_fraction, positive=False)
    seed = _checks.check_int("seed", seed, 0)
    train, test = train_test_split(users.size, test_fraction, seed)
    if train.size == 0:
        raise ValueError(
            f"test_fraction: {test_fraction} holds out all {users.size} ratings; ALS needs at least one training rating"
        )
    mean = float(ratings[train].mean())
    dtype = jnp.result_type(float)
    tu, ti = jnp.asarray(users[train]), jnp.asarray(items[train])
    resid = jnp.asarray(ratings[train] - mean, dtype)
    V = 0.1 * jax.random.normal(jax.random.PRNGKey(seed), (I, int(rank)), dtype)

    @jax.jit
    def sweep(V, _):
        Uv = _half_step(V, tu, ti, resid, U, ridge)
        return _half_step(Uv, ti, tu, resid, I, ridge), None

    V, _ = jax.lax.scan(sweep, V, None, length=int(num_iterations))
    Uv = _half_step(V, tu, ti, resid, U, ridge)
    train_rmse = float(_rmse(Uv, V, tu, ti, resid))
    if test.size:
        test_resid = jnp.asarray(ratings[test] - mean, dtype)
        test_rmse = float(_rmse(Uv, V, jnp.asarray(users[test]), jnp.asarray(items[test]), test_resid))
    else:
        test_rmse = float("nan")
    return Factorisation(np.asarray(Uv), np.asarray(V), mean, train_rmse, test_rmse)
