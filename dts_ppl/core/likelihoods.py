"""Reward likelihoods and their per-action statistics (docs/math.md section 2).

Each likelihood gives the reward distribution given the linear predictor eta = x^T theta,
its mean function g, and ``statistics(X, A, y, num_actions) -> ActionStats``: the precision
form (G_a, b_a) of each action's evidence about theta_a.

- Gaussian: exact, G_a = sigma^-2 sum x x^T, b_a = sigma^-2 sum x y.
- Bernoulli (logistic) and Poisson (log link): the likelihood of each action is replaced by
  its second-order expansion at a ridge-regularised fit B_a (approximation (i) of the paper),
  G_a = sum gdot(x^T B_a) x x^T and b_a = G_a B_a - grad NLL(B_a). B_a comes from damped Newton
  (IRLS) on NLL + ridge/2 |theta|^2. The ridge keeps B_a finite for actions with fewer than d
  pulls or separable labels; the gradient term keeps the expansion exact to second order at
  B_a (at the plain MLE it is zero and b_a = G_a B_a, the paper's form).

  Where the fit is expanded (``expansion``): by DEFAULT ("prior") the ridge is the prior's
  precision scale, ridge = 1 / (mean prior variance of theta_a), i.e. a MAP-like point under an
  isotropic Gaussian of theta's scale; the agents and the guide know the prior and resolve it
  with :meth:`_GLM.for_prior` (docs/defaults.md; it measured far lower regret on the paper's
  logistic bandits). ``expansion="mle"`` is the paper's near-MLE point (ridge 1e-3); an explicit
  ``ridge=`` overrides both. Without a prior (a bare ``statistics`` call) "prior" falls back to
  the near-MLE ridge. No data gives G_a = 0, b_a = 0.

Online evidence: each likelihood owns its evidence update (:meth:`Gaussian.add_observation`,
:meth:`_GLM.add_observation`), the one formula the agents call; the batch statistics and the
online updates share each likelihood's formula (:meth:`Gaussian._rows`, :meth:`_GLM.laplace`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import checks as _checks


class ActionStats(NamedTuple):
    """Precision-form evidence of each action's data about its parameter.

    Attributes:
        G: (K, d, d) precisions (Hessians of the negative log-likelihood).
        b: (K, d) linear terms, b_a = G_a B_a.
    """

    G: Annotated[jax.Array, "K d d"]
    b: Annotated[jax.Array, "K d"]


class History(NamedTuple):
    """Ring buffer of observations for GLM rewards (H = buffer size, M = groups).

    Attributes:
        X: (H, d) rows.   group: (H,) int group of each row (-1: empty slot).   y: (H,) rewards.
        count: () observations seen.   B: (M, d) warm start of each group's Newton fit.
    """

    X: Annotated[jax.Array, "H d"]
    group: Annotated[jax.Array, "H"]
    y: Annotated[jax.Array, "H"]
    count: Annotated[jax.Array, ""]
    B: Annotated[jax.Array, "M d"]


class Evidence(NamedTuple):
    """Online per-group statistics (M groups: actions, or 1 shared parameter).

    Attributes:
        stats: ActionStats with G (M, d, d), b (M, d).
        history: the GLM ring buffer; None for exact (Gaussian) likelihoods.
    """

    stats: ActionStats
    history: History | None


def linear_predictor(X, theta, A=None):
    """The linear predictor eta = x^T theta: the one formula for agents, environments, model, fits.

    Args:
        X: (..., d) rows (contexts or features).
        theta: (..., d) broadcasting against X (a shared parameter (d,) with features (K, d),
            or per-action parameters (K, d) with one context (d,)); or, with ``A``, (..., K, d)
            per-action parameters indexed by the rows' actions.
        A: optional (n,) int actions of the rows X (n, d): eta_i = x_i^T theta_{A_i}.
    Returns:
        eta, the broadcast shape of X and theta without the last axis ((..., n) with ``A``).
    """
    if A is not None:
        theta = jnp.take(theta, A, axis=-2)
    return jnp.sum(X * theta, axis=-1)


def set_row(array, index, value):
    """array with row ``index`` replaced by ``value``, as an in-place dynamic-update-slice.

    (``array.at[i].set`` lowers to a scatter, which XLA on CPU copies the whole (K, d, d) array
    for inside a scan; this keeps the per-round update O(d^2) instead of O(K d^2).)
    """
    return jax.lax.dynamic_update_index_in_dim(array, jnp.asarray(value, array.dtype), index, 0)


def guarded_row(ok, array, index, new_row):
    """``array`` with row ``index`` set to ``new_row`` if ``ok``, else unchanged (reads one row only)."""
    old_row = jax.lax.dynamic_index_in_dim(array, index, 0, keepdims=False)
    return set_row(array, index, jnp.where(ok, new_row, old_row))


def all_finite(tree):
    """() bool: every leaf of ``tree`` is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _outer_sums(X, A, weights, num_actions):
    outer = weights[:, None, None] * X[:, :, None] * X[:, None, :]
    return jax.ops.segment_sum(outer, A, num_segments=num_actions)


@partial(jax.jit, static_argnums=(0, 4))
def _jit_statistics(likelihood, X, A, y, num_actions):
    return likelihood._statistics(X, A, y, num_actions)


def empty_stats(num_actions: int, dim: int, dtype=None) -> ActionStats:
    dtype = dtype or jnp.result_type(float)
    return ActionStats(jnp.zeros((num_actions, dim, dim), dtype), jnp.zeros((num_actions, dim), dtype))


@dataclass(frozen=True)
class Gaussian:
    """Gaussian rewards y ~ N(x^T theta, scale^2); the dTS posterior is exact."""

    scale: float = 1.0
    name = "gaussian"
    is_exact = True

    def __post_init__(self):
        # a traced scale (a sample site of a NumPyro model, a hyper-parameter under jax.grad) is
        # kept as it is: only concrete values can be checked
        if _checks.is_concrete(self.scale) or jnp.ndim(self.scale) != 0:
            object.__setattr__(self, "scale", _checks.check_scalar("scale", self.scale))

    def mean(self, eta):
        return eta

    def log_prob(self, y, eta):
        z = (y - eta) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi)

    def sample(self, key, eta):
        """y ~ N(eta, scale^2), same shape as eta."""
        return eta + self.scale * jax.random.normal(key, jnp.shape(eta), jnp.result_type(eta))

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)

    def statistics(self, X, A, y, num_actions: int) -> ActionStats:
        """Exact sufficient statistics. X (n, d), A (n,) int, y (n,)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def for_prior(self, theta_cov):
        """This likelihood (Gaussian evidence does not depend on the prior)."""
        del theta_cov
        return self

    def _rows(self, X, y):
        """The Gaussian evidence formula: per-row terms sigma^-2 x x^T (n, d, d), sigma^-2 y x (n, d)."""
        prec = 1.0 / self.scale**2
        return prec * X[:, :, None] * X[:, None, :], prec * y[:, None] * X

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        G, b = self._rows(X, y)
        return ActionStats(
            jax.ops.segment_sum(G, A, num_segments=num_actions), jax.ops.segment_sum(b, A, num_segments=num_actions)
        )

    def init_evidence(self, num_groups: int, dim: int, history: int, dtype) -> Evidence:
        """Zero statistics for ``num_groups`` groups (``history`` is unused: the update is exact)."""
        del history
        return Evidence(empty_stats(num_groups, dim, dtype), None)

    def add_observation(self, ev: Evidence, phi, group, y, newton_steps: int, ok=True):
        """Add one observation (phi (d,), y ()) of ``group``, exactly, in O(d^2).

        With ``ok`` False (a rejected round inside jit; pass sanitised, finite inputs) nothing is
        added: the increment is exactly 0.

        Returns:
            (new evidence, (G_old, b_old), (G_new, b_new)): the group's statistics before and
            after, (d, d) and (d,) each, so callers can swap the group's term in running sums.

        Performance note: XLA on CPU updates a (M, d, d) row in place inside a scan only if the
        old row is not also read for anything else; reading it costs a copy of the whole array
        every round (measured 15-25 ms at M = 10^4, d = 20 against under 1 ms). The old
        statistics are therefore never read back (they are the new ones minus the increment).
        """
        del newton_steps
        dG, db = jax.tree.map(lambda t: t[0], self._rows(phi[None], jnp.reshape(y, (1,))))
        dG, db = jnp.where(ok, dG, 0.0), jnp.where(ok, db, 0.0)  # a rejected round adds exactly 0
        G, b = ev.stats
        G, b = G.at[group].add(dG), b.at[group].add(db)  # write first, then read the new row
        new = (G[group], b[group])
        old = (new[0] - dG, new[1] - db)
        return ev._replace(stats=ActionStats(G, b)), old, new


_STEPS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.0)  # damped-Newton line search: the best of these step sizes


def _group_sum(values, group, num_groups):
    """Sum rows (n, ...) per group -> (M, ...); with ``num_groups=None`` one group -> (...)."""
    if num_groups is None:
        return jnp.sum(values, axis=0)
    return jax.ops.segment_sum(values, group, num_segments=num_groups)


def _weighted_outer(X, w, group, num_groups):
    """sum_i w_i x_i x_i^T per group: (M, d, d), or (d, d) for one group (a matmul)."""
    if num_groups is None:
        return (X * w[:, None]).T @ X
    return _outer_sums(X, group, w, num_groups)


def _predictor(X, B, group, num_groups):
    """eta_i = x_i^T B_{group_i} for B (..., M, d) -> (..., n); one group: B (..., d)."""
    if num_groups is None:
        return linear_predictor(X, B[..., None, :])
    return linear_predictor(X, B, group)


MLE_RIDGE = 1e-3  # the paper's near-MLE expansion point (expansion="mle")
EXPANSIONS = ("prior", "mle")


@dataclass(frozen=True)
class _GLM:
    """Shared Gaussianisation of a canonical-link GLM (docs/math.md section 2)."""

    ridge: float | None = None
    num_iterations: int = 30
    expansion: str = "prior"
    is_exact = False

    def __post_init__(self):
        object.__setattr__(self, "num_iterations", _checks.check_positive_int("num_iterations", self.num_iterations))
        if self.ridge is not None:
            object.__setattr__(self, "ridge", _checks.check_scalar("ridge", self.ridge))
        if self.expansion not in EXPANSIONS:
            raise ValueError(f"expansion: expected one of {EXPANSIONS}, got {self.expansion!r}")

    @property
    def effective_ridge(self) -> float:
        """The ridge the fits use: the explicit one, else the near-MLE 1e-3 (see :meth:`for_prior`)."""
        return MLE_RIDGE if self.ridge is None else self.ridge

    def for_prior(self, theta_cov):
        """The likelihood an agent or guide with this prior on theta_a uses (the GLM default).

        An explicit ``ridge`` is kept; ``expansion="mle"`` gives the near-MLE ridge 1e-3; the
        default ``expansion="prior"`` gives :meth:`regularised_for` ``(theta_cov)``.
        theta_cov: (d, d) prior covariance of theta_a.
        """
        if self.ridge is not None:
            return self
        if self.expansion == "mle":
            return replace(self, ridge=MLE_RIDGE)
        return self.regularised_for(theta_cov)

    def regularised_for(self, theta_cov):
        """This likelihood with ridge = 1 / (mean prior variance of theta) (the default expansion).

        The statistics then expand the log-likelihood around the MAP under an isotropic Gaussian
        prior of the same scale as theta's, instead of around the (near-)MLE: far better early on,
        when an action's few observations are separable and its MLE runs off to infinity
        (measured in docs/choosing.md, "Where GLM likelihoods are expanded").
        theta_cov: (d, d) prior covariance of theta_a.
        """
        cov = np.asarray(theta_cov, dtype=float)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise ValueError(f"theta_cov: expected a square (d, d) covariance, got shape {cov.shape}")
        var = float(np.mean(np.diag(cov)))
        if not (np.all(np.isfinite(cov)) and var > 0):
            raise ValueError("theta_cov: expected a finite covariance with a positive diagonal")
        return replace(self, ridge=1.0 / var)

    # Subclasses define: mean, sample, _nll(y, eta), _log_normaliser(y), _curvature(eta), check_rewards.
    def log_prob(self, y, eta):
        return -self._nll(y, eta) - self._log_normaliser(y)

    def _log_normaliser(self, y):
        return jnp.zeros_like(y)

    def laplace(self, X, y, weights, B, num_steps: int, group=None, num_groups=None):
        """The one Gaussianisation routine, for the batch statistics and the agents' updates.

        Runs ``num_steps`` damped-Newton steps from B on
        sum_i w_i nll(y_i, x_i^T B_{g_i}) + ridge/2 |B_g|^2, then expands the log-likelihood
        to second order at the result B:

            G = sum_i w_i gdot(x_i^T B) x_i x_i^T,   b = G B - sum_i w_i (g(x_i^T B) - y_i) x_i,

        so that log p(y | theta) ~ const - theta^T G theta / 2 + b^T theta. The gradient term makes
        the expansion a correct Taylor expansion wherever B is (at an unregularised MLE it
        vanishes and b = G B, the paper's form). Groups without rows get G = 0, b = 0.

        Args:
            X: (n, d) rows, y: (n,) rewards, weights: (n,) row weights (0 masks a row out).
            B: start point, (M, d) with ``group`` (n,) ints and ``num_groups`` = M, or (d,) for
                a single group (``group=None``; mask other rows with ``weights``).
            num_steps: Newton steps (each O(n d^2 + M d^3)).

        Returns:
            (G, b, B): (M, d, d), (M, d), (M, d); or (d, d), (d,), (d,) for one group.
        """
        dim = X.shape[1]
        ridge = self.effective_ridge
        eye = jnp.eye(dim, dtype=X.dtype)
        steps = jnp.asarray(_STEPS, X.dtype)

        def gradient(B):  # of the unpenalised NLL, and the linear predictor
            eta = _predictor(X, B, group, num_groups)
            return _group_sum(X * (weights * (self.mean(eta) - y))[:, None], group, num_groups), eta

        def objective(cands):  # (S, [M,] d) -> (S, [M])
            terms = weights * self._nll(y, _predictor(X, cands, group, num_groups))  # (S, n)
            nll = jnp.moveaxis(_group_sum(jnp.moveaxis(terms, -1, 0), group, num_groups), 0, -1)
            return nll + 0.5 * ridge * jnp.sum(cands**2, axis=-1)

        def newton(B, _):
            grad, eta = gradient(B)
            hess = _weighted_outer(X, weights * self._curvature(eta), group, num_groups) + ridge * eye
            direction = jnp.linalg.solve(hess, (grad + ridge * B)[..., None])[..., 0]
            # safeguard: an overflowing solve (huge x in float32) must not poison the step-0
            # candidate (0 * NaN = NaN); the line search then keeps B where no step is finite
            direction = jnp.where(jnp.all(jnp.isfinite(direction), axis=-1, keepdims=True), direction, 0.0)
            # safeguard: an overflowing solve (huge x in float32) must not poison the step-0
            # candidate (0 * NaN = NaN); the line search then keeps B where no step is finite
            direction = jnp.where(jnp.all(jnp.isfinite(direction), axis=-1, keepdims=True), direction, 0.0)
            cands = B[None] - steps.reshape((-1,) + (1,) * B.ndim) * direction[None]
            best = jnp.argmin(jnp.nan_to_num(objective(cands), nan=jnp.inf), axis=0)
            return jnp.take_along_axis(cands, best[None, ..., None], axis=0)[0], None

        B, _ = jax.lax.scan(newton, B, None, length=num_steps)
        grad, eta = gradient(B)
        G = _weighted_outer(X, weights * self._curvature(eta), group, num_groups)
        G = 0.5 * (G + jnp.swapaxes(G, -1, -2))
        return G, jnp.einsum("...ij,...j->...i", G, B) - grad, B

    def fit(self, X, A, y, num_actions: int):
        """Ridge-regularised MLE per action (the expansion point). Returns B (K, d)."""
        return self._laplace_batch(X, A, y, num_actions)[2]

    def statistics(self, X, A, y, num_actions: int) -> ActionStats:
        """Gaussianised evidence of each action's data (see :meth:`laplace`)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        G, b, _ = self._laplace_batch(X, A, y, num_actions)
        return ActionStats(G, b)

    def init_evidence(self, num_groups: int, dim: int, history: int, dtype) -> Evidence:
        """Zero statistics and an empty ring buffer of ``history`` rows for ``num_groups`` groups."""
        history = _checks.check_positive_int("history", history, "a positive buffer size for GLM rewards")
        buf = History(
            jnp.zeros((history, dim), dtype),
            jnp.full((history,), -1, jnp.int32),
            jnp.zeros((history,), dtype),
            jnp.zeros((), jnp.int32),
            jnp.zeros((num_groups, dim), dtype),
        )
        return Evidence(empty_stats(num_groups, dim, dtype), buf)

    def add_observation(self, ev: Evidence, phi, group, y, newton_steps: int, ok=True):
        """Add one observation (phi (d,), y ()) of ``group``: buffer it, refit the group.

        With ``ok`` False (a rejected round), or when the refit is not finite, nothing is written.

        Runs ``newton_steps`` damped-Newton steps on the group's buffered rows, warm-started at
        its previous fit (:meth:`laplace`), O(history d^2) whatever t is.

        Returns:
            (new evidence, (G_old, b_old), (G_new, b_new)) as :meth:`Gaussian.add_observation`.
        """
        G, b = ev.stats
        h = ev.history
        old = (G[group], b[group])
        B_old = h.B[group]
        slot = h.count % h.X.shape[0]
        X_new, group_new, y_new = set_row(h.X, slot, phi), set_row(h.group, slot, group), set_row(h.y, slot, y)
        G_new, b_new, B_new = self.laplace(X_new, y_new, (group_new == group).astype(h.X.dtype), B_old, newton_steps)
        # a rejected round (or a fit that overflows) writes nothing; the returned ``new`` stays the
        # raw fit so the caller sees an overflow in the conditional it computes from it
        fine = ok & all_finite((G_new, b_new, B_new))
        h = History(
            guarded_row(fine, h.X, slot, phi),
            guarded_row(fine, h.group, slot, group),
            guarded_row(fine, h.y, slot, y),
            h.count + jnp.asarray(fine, jnp.int32),
            h.B,
        )
        stats = ActionStats(guarded_row(fine, G, group, G_new), guarded_row(fine, b, group, b_new))
        return Evidence(stats, h._replace(B=guarded_row(fine, h.B, group, B_new))), old, (G_new, b_new)

    def _laplace_batch(self, X, A, y, num_actions):
        B0 = jnp.zeros((num_actions, X.shape[1]), X.dtype)
        ones = jnp.ones(X.shape[0], X.dtype)
        return self.laplace(X, y, ones, B0, self.num_iterations, group=A, num_groups=num_actions)


@dataclass(frozen=True)
class Bernoulli(_GLM):
    """Binary rewards y ~ Bernoulli(sigmoid(x^T theta)) (logistic bandit).

    ``Bernoulli()`` expands at the prior-regularised fit once an agent or guide resolves it
    (:meth:`for_prior`); ``Bernoulli(expansion="mle")`` is the paper's near-MLE point.
    """

    name = "bernoulli"

    def mean(self, eta):
        return jax.nn.sigmoid(eta)

    def sample(self, key, eta):
        """y ~ Bernoulli(sigmoid(eta)) as 0.0 / 1.0, same shape as eta."""
        return jax.random.bernoulli(key, jax.nn.sigmoid(eta)).astype(jnp.result_type(eta))

    def _nll(self, y, eta):
        return jax.nn.softplus(eta) - y * eta

    def _curvature(self, eta):
        p = jax.nn.sigmoid(eta)
        return p * (1.0 - p)

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = (v != 0) & (v != 1)
            if bad.any():
                raise ValueError(f"{name}: Bernoulli rewards must be 0 or 1, got {v[bad][0]!r}")


@dataclass(frozen=True)
class Poisson(_GLM):
    """Count rewards y ~ Poisson(exp(x^T theta)); expansion point as :class:`Bernoulli`."""

    name = "poisson"

    def mean(self, eta):
        return jnp.exp(eta)

    def sample(self, key, eta):
        """y ~ Poisson(exp(eta)), same shape as eta."""
        return jax.random.poisson(key, jnp.exp(eta), jnp.shape(eta)).astype(jnp.result_type(eta))

    def _log_normaliser(self, y):
        return jax.scipy.special.gammaln(y + 1.0)

    def _nll(self, y, eta):
        return jnp.exp(eta) - y * eta

    def _curvature(self, eta):
        return jnp.exp(eta)

    def check_rewards(self, name, y):
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = (v < 0) | (v != np.round(v))
            if bad.any():
                raise ValueError(f"{name}: Poisson rewards must be non-negative integers, got {v[bad][0]!r}")
