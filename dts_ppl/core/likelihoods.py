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

Online evidence: each likelihood owns every evidence update, one row
(:meth:`Gaussian.propose_observation`) or a batch (:meth:`Gaussian.propose_observations`),
including the GLM ring buffer. Both return proposals that nothing has written yet: the agents'
guard (:mod:`dts_ppl.agents.guard`) writes them with :func:`dts_ppl.core.rows.write` only when the
whole round is accepted. The batch statistics and the online updates share each likelihood's
formula (:meth:`Gaussian._rows`, :meth:`_GLM.laplace`).

Forgetting (``discount=`` gamma < 1 on the updates; docs/math.md section 11): every accepted
round first multiplies every group's (G, b) by gamma, then adds the new row, so an observation s
rounds old carries weight gamma^s (exact for Gaussian rewards: noise variance sigma^2 / gamma^s).
GLM rows carry the same weights in the ring buffer (:func:`ring_weights`) when a group is refitted.
gamma = 1 runs the plain updates, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from dts_ppl.core import checks as _checks
from dts_ppl.core import prng as _prng
from dts_ppl.core.deprecation import renamed, renamed_argument
from dts_ppl.core.rows import Row, get_row, set_row, write


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


def linear_predictor(X: jax.Array, theta: jax.Array, A: jax.Array | None = None) -> jax.Array:
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


def _outer_sums(X, A, weights, num_actions):
    outer = weights[:, None, None] * X[:, :, None] * X[:, None, :]
    return jax.ops.segment_sum(outer, A, num_segments=num_actions)


@partial(jax.jit, static_argnums=(0, 4))
def _jit_statistics(likelihood, X, A, y, num_actions):
    return likelihood._statistics(X, A, y, num_actions)


def empty_stats(num_actions: int, dim: int, dtype: DTypeLike | None = None) -> ActionStats:
    dtype = dtype or jnp.result_type(float)
    return ActionStats(jnp.zeros((num_actions, dim, dim), dtype), jnp.zeros((num_actions, dim), dtype))


def _proposed_stats(G, b, group, new, discount: float) -> ActionStats:
    """The statistics a one-row proposal writes: the played group's new row, as a Row.

    With forgetting (``discount`` < 1) every group was decayed, so the whole arrays are proposed,
    with the played group's row set.
    """
    if forgets(discount):
        return ActionStats(set_row(G, group, new[0]), set_row(b, group, new[1]))
    return ActionStats(Row(group, new[0]), Row(group, new[1]))


def forgets(discount: float | jax.Array) -> bool:
    """Whether ``discount`` asks for forgetting (a Python number below 1, or any array: a traced sweep).

    1.0 is the plain update. An array discount (possibly traced, e.g. vmapped over discounts)
    always takes the forgetting path, where gamma = 1 multiplies by one.
    """
    if isinstance(discount, int | float):
        return discount != 1.0
    return True


def decayed(stats: ActionStats, factor: jax.Array | float) -> ActionStats:
    """Every group's statistics times ``factor`` (gamma^rounds): the forgetting of ``rounds`` rounds."""
    return ActionStats(stats.G * factor, stats.b * factor)


def ring_weights(history: History, count: jax.Array, discount: float) -> jax.Array:
    """(H,) forgetting weight gamma^age of every ring-buffer slot after ``count`` rows (0 for empty slots).

    Rows enter slot ``s % H`` in order, so with ``count`` rows written the row in slot j is
    (count - 1 - j) mod H rounds old (the newest has age 0).
    """
    size = history.X.shape[0]
    ages = jnp.mod(count - 1 - jnp.arange(size), size).astype(history.X.dtype)
    return jnp.where(history.group >= 0, jnp.asarray(discount, history.X.dtype) ** ages, 0.0)


def batch_weights(ok: jax.Array, discount: float, dtype: DTypeLike) -> tuple[jax.Array, jax.Array]:
    """(weights (n,), gamma^n_ok ()) of a batch read as n_ok rounds in row order (rows without ``ok`` weigh 0).

    The good row of rank r among n_ok is n_ok - 1 - r rounds old at the batch's end; the evidence
    from before the batch decays by gamma^n_ok, as the row-by-row loop gives.
    """
    rank = jnp.cumsum(ok.astype(jnp.int32)) - 1
    n_ok = jnp.sum(ok.astype(jnp.int32))
    gamma = jnp.asarray(discount, dtype)
    return jnp.where(ok, gamma ** (n_ok - 1 - rank).astype(dtype), 0.0), gamma ** n_ok.astype(dtype)


class _WritesProposals:
    """A likelihood's ``add_observation``: its ``propose_observation``, written (core.rows.write)."""

    def add_observation(
        self, ev: Evidence, phi: jax.Array, group: jax.Array, y: jax.Array, newton_steps: int
    ) -> tuple[Evidence, tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
        """:meth:`propose_observation`, written: (new evidence, old stats, new stats)."""
        proposal, old, new = self.propose_observation(ev, phi, group, y, newton_steps)
        return write(ev, proposal), old, new


@dataclass(frozen=True)
class Gaussian(_WritesProposals):
    """Gaussian rewards y ~ N(x^T theta, scale^2); the dTS posterior is exact."""

    scale: float = 1.0
    name = "gaussian"
    is_exact = True

    def __post_init__(self):
        # a traced scale (a sample site of a NumPyro model, a hyper-parameter under jax.grad) is
        # kept as it is: only concrete values can be checked
        if _checks.is_concrete(self.scale) or jnp.ndim(self.scale) != 0:
            object.__setattr__(self, "scale", _checks.check_scalar("scale", self.scale))

    def mean(self, eta: jax.Array) -> jax.Array:
        return eta

    def log_prob(self, y: jax.Array, eta: jax.Array) -> jax.Array:
        z = (y - eta) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi)

    def sample(self, key: jax.Array, eta: jax.Array) -> jax.Array:
        """y ~ N(eta, scale^2), same shape as eta."""
        return eta + self.scale * _prng.normal(key, jnp.shape(eta), jnp.result_type(eta))

    def check_rewards(self, name: str, y: ArrayLike) -> None:
        _checks.check_finite(name, y)

    def statistics(self, X: jax.Array, A: jax.Array, y: jax.Array, num_actions: int) -> ActionStats:
        """Exact sufficient statistics. X (n, d), A (n,) int, y (n,)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def for_prior(self, theta_cov: ArrayLike) -> Gaussian:
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

    def init_evidence(self, num_groups: int, dim: int, history: int, dtype: DTypeLike) -> Evidence:
        """Zero statistics for ``num_groups`` groups (``history`` is unused: the update is exact)."""
        del history
        return Evidence(empty_stats(num_groups, dim, dtype), None)

    def propose_observation(
        self,
        ev: Evidence,
        phi: jax.Array,
        group: jax.Array,
        y: jax.Array,
        newton_steps: int,
        discount: float = 1.0,
    ) -> tuple[Evidence, tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
        """The evidence after one observation (phi (d,), y ()) of ``group``, exactly, in O(d^2), as a proposal.

        Nothing is written: the result is :class:`Evidence` whose (G, b) are
        :class:`~dts_ppl.core.rows.Row` writes of the group's new statistics, for
        :func:`dts_ppl.core.rows.write` (the agents' guard writes it only if the whole round is
        accepted). With ``discount`` gamma < 1 every group's statistics are first multiplied by
        gamma (whole arrays, O(M d^2)), then the row is added.

        Returns:
            (proposal, (G_old, b_old), (G_new, b_new)): the group's statistics before and after
            (before: already decayed when forgetting), (d, d) and (d,) each, so callers can swap
            the group's term in running sums.
        """
        del newton_steps
        dG, db = jax.tree.map(lambda t: t[0], self._rows(phi[None], jnp.reshape(y, (1,))))
        G, b = ev.stats if not forgets(discount) else decayed(ev.stats, discount)
        old = (get_row(G, group), get_row(b, group))
        new = (old[0] + dG, old[1] + db)
        return Evidence(_proposed_stats(G, b, group, new, discount), None), old, new

    def propose_observations(
        self, ev: Evidence, phi: jax.Array, group: jax.Array, y: jax.Array, ok: jax.Array, discount: float = 1.0
    ) -> Evidence:
        """The evidence after a batch of rows (those with ``ok``), exactly: one segment_sum.

        Args:
            ev: Evidence with (M, d, d), (M, d) statistics.   phi: (n, d).   group: (n,).   y: (n,).
            ok: (n,) bool; rows without it add nothing.
            discount: gamma; below 1 the good rows are n_ok rounds in row order (:func:`batch_weights`).

        Returns:
            new Evidence (whole arrays: a batch touches O(M d^2) anyway), nothing written.
        """
        G, b = ev.stats
        if forgets(discount):
            w, decay = batch_weights(ok, discount, phi.dtype)
            dG, db = self._rows(phi, y)
            M = G.shape[0]
            return ev._replace(
                stats=ActionStats(
                    decay * G + jax.ops.segment_sum(w[:, None, None] * dG, group, num_segments=M),
                    decay * b + jax.ops.segment_sum(w[:, None] * db, group, num_segments=M),
                )
            )
        w = ok.astype(phi.dtype)
        add = self._statistics(phi * w[:, None], group, y * w, G.shape[0])  # a traced scale (refit) is not hashable
        return ev._replace(stats=ActionStats(G + add.G, b + add.b))

    def in_support(self, y: jax.Array) -> jax.Array:
        """() bool per reward, jittable: a Gaussian reward is any finite number."""
        return jnp.isfinite(y)


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


@dataclass(frozen=True, init=False)
class _GLM(_WritesProposals):
    """Shared Gaussianisation of a canonical-link GLM (docs/math.md section 2).

    Attributes:
        ridge: the fits' L2 penalty (None: resolved by :meth:`for_prior`).
        newton_steps: damped-Newton steps of the batch fits (:meth:`statistics`, :meth:`fit`).
        expansion: "prior" or "mle", where the fit is expanded when ``ridge`` is None.
    """

    ridge: float | None = None
    newton_steps: int = 30
    expansion: str = "prior"
    is_exact = False

    def __init__(
        self,
        ridge: float | None = None,
        newton_steps: int = 30,
        expansion: str = "prior",
        *,
        num_iterations: int | None = None,
    ) -> None:
        newton_steps = renamed_argument("num_iterations", num_iterations, "newton_steps", newton_steps, 30)
        object.__setattr__(self, "ridge", ridge)
        object.__setattr__(self, "newton_steps", newton_steps)
        object.__setattr__(self, "expansion", expansion)
        self.__post_init__()

    def __post_init__(self):
        object.__setattr__(self, "newton_steps", _checks.check_positive_int("newton_steps", self.newton_steps))
        if self.ridge is not None:
            object.__setattr__(self, "ridge", _checks.check_scalar("ridge", self.ridge))
        if self.expansion not in EXPANSIONS:
            raise ValueError(f"expansion: expected one of {EXPANSIONS}, got {self.expansion!r}")

    @property
    def num_iterations(self) -> int:
        """Deprecated name of :attr:`newton_steps`."""
        renamed("num_iterations", "newton_steps")
        return self.newton_steps

    @property
    def effective_ridge(self) -> float:
        """The ridge the fits use: the explicit one, else the near-MLE 1e-3 (see :meth:`for_prior`)."""
        return MLE_RIDGE if self.ridge is None else self.ridge

    def for_prior(self, theta_cov: ArrayLike) -> _GLM:
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

    def regularised_for(self, theta_cov: ArrayLike) -> _GLM:
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
    def log_prob(self, y: jax.Array, eta: jax.Array) -> jax.Array:
        return -self._nll(y, eta) - self._log_normaliser(y)

    def _log_normaliser(self, y):
        return jnp.zeros_like(y)

    def laplace(
        self,
        X: jax.Array,
        y: jax.Array,
        weights: jax.Array,
        B: jax.Array,
        newton_steps: int | None = None,
        group: jax.Array | None = None,
        num_groups: int | None = None,
        *,
        num_steps: int | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """The one Gaussianisation routine, for the batch statistics and the agents' updates.

        Runs ``newton_steps`` damped-Newton steps from B on
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
            newton_steps: Newton steps (each O(n d^2 + M d^3)); default :attr:`newton_steps`.
            num_steps: deprecated name of ``newton_steps``.

        Returns:
            (G, b, B): (M, d, d), (M, d), (M, d); or (d, d), (d,), (d,) for one group.
        """
        newton_steps = renamed_argument("num_steps", num_steps, "newton_steps", newton_steps, None)
        newton_steps = self.newton_steps if newton_steps is None else newton_steps
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
            cands = B[None] - steps.reshape((-1,) + (1,) * B.ndim) * direction[None]
            best = jnp.argmin(jnp.nan_to_num(objective(cands), nan=jnp.inf), axis=0)
            return jnp.take_along_axis(cands, best[None, ..., None], axis=0)[0], None

        B, _ = jax.lax.scan(newton, B, None, length=newton_steps)
        grad, eta = gradient(B)
        G = _weighted_outer(X, weights * self._curvature(eta), group, num_groups)
        G = 0.5 * (G + jnp.swapaxes(G, -1, -2))
        return G, jnp.einsum("...ij,...j->...i", G, B) - grad, B

    def fit(self, X: jax.Array, A: jax.Array, y: jax.Array, num_actions: int) -> jax.Array:
        """Ridge-regularised MLE per action (the expansion point). Returns B (K, d)."""
        return self._laplace_batch(X, A, y, num_actions)[2]

    def statistics(self, X: jax.Array, A: jax.Array, y: jax.Array, num_actions: int) -> ActionStats:
        """Gaussianised evidence of each action's data (see :meth:`laplace`)."""
        return _jit_statistics(self, X, A, y, num_actions)

    def _statistics(self, X, A, y, num_actions: int) -> ActionStats:
        G, b, _ = self._laplace_batch(X, A, y, num_actions)
        return ActionStats(G, b)

    def init_evidence(self, num_groups: int, dim: int, history: int, dtype: DTypeLike) -> Evidence:
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

    def propose_observation(
        self,
        ev: Evidence,
        phi: jax.Array,
        group: jax.Array,
        y: jax.Array,
        newton_steps: int,
        discount: float = 1.0,
    ) -> tuple[Evidence, tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
        """The evidence after one observation (phi (d,), y ()) of ``group``, as a proposal: buffer it, refit the group.

        Runs ``newton_steps`` damped-Newton steps on the group's buffered rows, warm-started at
        its previous fit (:meth:`laplace`), O(history d^2) whatever t is. Nothing is written: the
        buffer slot, the group's fit and its statistics come back as
        :class:`~dts_ppl.core.rows.Row` writes (:meth:`Gaussian.propose_observation`). With
        ``discount`` gamma < 1 the refit weighs each buffered row by gamma^age
        (:func:`ring_weights`) and every other group's (G, b) is multiplied by gamma (the same
        weights, applied to its last expansion, which stays exact to second order there).

        Returns:
            (proposal, (G_old, b_old), (G_new, b_new)) as :meth:`Gaussian.propose_observation`.
        """
        G, b = ev.stats if not forgets(discount) else decayed(ev.stats, discount)
        h = ev.history
        old = (get_row(G, group), get_row(b, group))
        slot = h.count % h.X.shape[0]
        X_new = h.X.at[slot].set(phi)
        group_new, y_new = h.group.at[slot].set(group), h.y.at[slot].set(y)
        weights = (group_new == group).astype(h.X.dtype)
        if forgets(discount):
            weights = weights * ring_weights(h._replace(group=group_new), h.count + 1, discount)
        G_new, b_new, B_new = self.laplace(X_new, y_new, weights, get_row(h.B, group), newton_steps)
        buf = History(Row(slot, phi), Row(slot, group), Row(slot, y), h.count + 1, Row(group, B_new))
        return Evidence(_proposed_stats(G, b, group, (G_new, b_new), discount), buf), old, (G_new, b_new)

    def propose_observations(
        self, ev: Evidence, phi: jax.Array, group: jax.Array, y: jax.Array, ok: jax.Array, discount: float = 1.0
    ) -> Evidence:
        """The evidence after a batch of rows (those with ``ok``), nothing written.

        The good rows enter the ring buffer in order (only the last H of them when there are more),
        then each touched group is refitted once by :meth:`laplace` from its previous fit with
        ``newton_steps`` Newton steps; untouched groups keep their statistics (times gamma^n_ok
        with ``discount`` gamma < 1, when the refit weighs each row by gamma^age, :func:`ring_weights`).

        Args:
            ev: Evidence with (M, d, d), (M, d) statistics and a History.   phi: (n, d).
            group: (n,).   y: (n,).   ok: (n,) bool.   discount: gamma.

        Returns:
            new Evidence (whole arrays).
        """
        G, b = ev.stats
        M = G.shape[0]
        h = ev.history
        H = h.X.shape[0]
        rank = jnp.cumsum(ok.astype(jnp.int32)) - 1  # position among the good rows
        n_ok = rank[-1] + 1
        slots = jnp.where(ok & (rank >= n_ok - H), (h.count + rank) % H, H)  # H: out of range, dropped
        h = History(
            h.X.at[slots].set(phi, mode="drop"),
            h.group.at[slots].set(group, mode="drop"),
            h.y.at[slots].set(y, mode="drop"),
            h.count + n_ok,
            h.B,
        )
        weights = (h.group >= 0).astype(phi.dtype)
        if forgets(discount):
            weights = ring_weights(h, h.count, discount)
            G, b = decayed(ev.stats, jnp.asarray(discount, phi.dtype) ** n_ok.astype(phi.dtype))
        G_fit, b_fit, B_fit = self.laplace(
            h.X, h.y, weights, h.B, self.newton_steps, group=jnp.maximum(h.group, 0), num_groups=M
        )
        touched = jax.ops.segment_sum(ok.astype(jnp.int32), group, num_segments=M) > 0
        G = jnp.where(touched[:, None, None], G_fit, G)
        b = jnp.where(touched[:, None], b_fit, b)
        B = jnp.where(touched[:, None], B_fit, h.B)
        return Evidence(ActionStats(G, b), h._replace(B=B))

    def _laplace_batch(self, X, A, y, num_actions):
        B0 = jnp.zeros((num_actions, X.shape[1]), X.dtype)
        ones = jnp.ones(X.shape[0], X.dtype)
        return self.laplace(X, y, ones, B0, self.newton_steps, group=A, num_groups=num_actions)


@dataclass(frozen=True, init=False)
class Bernoulli(_GLM):
    """Binary rewards y ~ Bernoulli(sigmoid(x^T theta)) (logistic bandit).

    ``Bernoulli()`` expands at the prior-regularised fit once an agent or guide resolves it
    (:meth:`for_prior`); ``Bernoulli(expansion="mle")`` is the paper's near-MLE point.
    """

    name = "bernoulli"

    def mean(self, eta: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(eta)

    def sample(self, key: jax.Array, eta: jax.Array) -> jax.Array:
        """y ~ Bernoulli(sigmoid(eta)) as 0.0 / 1.0, same shape as eta."""
        return jax.random.bernoulli(key, jax.nn.sigmoid(eta)).astype(jnp.result_type(eta))

    def _nll(self, y, eta):
        return jax.nn.softplus(eta) - y * eta

    def _curvature(self, eta):
        p = jax.nn.sigmoid(eta)
        return p * (1.0 - p)

    def in_support(self, y: jax.Array) -> jax.Array:
        """() bool per reward, jittable: a Bernoulli reward is 0 or 1."""
        return (y == 0) | (y == 1)

    def check_rewards(self, name: str, y: ArrayLike) -> None:
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = ~np.asarray(self.in_support(v))
            if bad.any():
                raise ValueError(f"{name}: Bernoulli rewards must be 0 or 1, got {v[bad][0]!r}")


@dataclass(frozen=True, init=False)
class Poisson(_GLM):
    """Count rewards y ~ Poisson(exp(x^T theta)); expansion point as :class:`Bernoulli`."""

    name = "poisson"

    def mean(self, eta: jax.Array) -> jax.Array:
        return jnp.exp(eta)

    def sample(self, key: jax.Array, eta: jax.Array) -> jax.Array:
        """y ~ Poisson(exp(eta)), same shape as eta."""
        return jax.random.poisson(key, jnp.exp(eta), jnp.shape(eta)).astype(jnp.result_type(eta))

    def _log_normaliser(self, y):
        return jax.scipy.special.gammaln(y + 1.0)

    def _nll(self, y, eta):
        return jnp.exp(eta) - y * eta

    def _curvature(self, eta):
        return jnp.exp(eta)

    def in_support(self, y: jax.Array) -> jax.Array:
        """() bool per reward, jittable: a Poisson reward is a finite non-negative integer."""
        return jnp.isfinite(y) & (y >= 0) & (y == jnp.round(y))

    def check_rewards(self, name: str, y: ArrayLike) -> None:
        _checks.check_finite(name, y)
        if _checks.is_concrete(y):
            v = np.asarray(y)
            bad = ~np.asarray(self.in_support(v))
            if bad.any():
                raise ValueError(f"{name}: Poisson rewards must be non-negative integers, got {v[bad][0]!r}")
