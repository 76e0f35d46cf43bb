"""Empirical Bayes: the hyper-parameters that maximise the marginal likelihood (docs/open_model.md).

:func:`fit_hyperparameters` maximises :mod:`dts_ppl.core.evidence`'s log p(y | hyper-parameters)
with optax over any of

- ``"noise_scale"``: sigma of Gaussian rewards;
- ``"action_cov"``: the scale of S_1 (theta_a | psi_1), its shape kept: S_1 = (s / s_0)^2 S_1^0;
- ``"latent_cov"``: one scale for every latent level's covariance S_2..S_{L+1}, shapes kept.

A covariance's scale is its root-mean-square standard deviation, sqrt(trace(S) / dim). Each
parameter lives in bounds (default: its initial value divided and multiplied by 1000), through
p = lo (hi / lo)^sigmoid(u) with u unconstrained; a fit that ends at a bound is reported
(``HyperFit.at_bound``) and warned about. Parameters the data cannot identify raise ValueError
before any fitting.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from dts_ppl.core import checks as _checks
from dts_ppl.core import evidence as _ev
from dts_ppl.core import inference as _inf
from dts_ppl.core.likelihoods import ActionStats, Bernoulli, Gaussian, Poisson
from dts_ppl.core.linalg import eigh, symmetrise
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.protocols import Likelihood

FITTABLE = ("noise_scale", "action_cov", "latent_cov")
#: the name each fitted parameter's value has in ``HyperFit.values``
VALUE_NAMES = {"noise_scale": "noise_scale", "action_cov": "action_scale", "latent_cov": "latent_scale"}
DEFAULT_BOUND_RATIO = 1e3


class HyperFit(NamedTuple):
    """What :func:`fit_hyperparameters` returns.

    Attributes:
        prior: the DiffusionPrior with the fitted covariances.
        likelihood: the likelihood with the fitted noise scale (unchanged if not fitted).
        values: {"noise_scale" | "action_scale" | "latent_scale": fitted value} for the fitted ones.
        initial: the same names' initial values.
        log_evidence: (num_steps + 1,) log p(y) at the start and after every step.
        bounds: {fit name: (lower, upper)}.
        at_bound: the fit names whose value ended within 0.1% (on the log scale) of a bound.
        grad_norm: () norm of the gradient of log p(y) / n in the unconstrained coordinates at the end.
    """

    prior: DiffusionPrior
    likelihood: object
    values: dict
    initial: dict
    log_evidence: jax.Array
    bounds: dict
    at_bound: tuple
    grad_norm: float


def cov_scale(cov):
    """The scale of a covariance (..., n, n): sqrt(trace / n), the root-mean-square sd."""
    return jnp.sqrt(jnp.mean(jnp.diagonal(cov, axis1=-2, axis2=-1), axis=-1))


def initial_values(prior: DiffusionPrior, likelihood, fit) -> dict:
    """{fit name: current value}: the noise scale, S_1's scale, the latent levels' common scale."""
    out = {}
    for name in fit:
        if name == "noise_scale":
            out[name] = float(likelihood.scale)
        elif name == "action_cov":
            out[name] = float(cov_scale(prior.cov1))
        else:
            out[name] = float(jnp.sqrt(jnp.mean(cov_scale(prior.covs) ** 2)))
    return out


def with_values(prior: DiffusionPrior, likelihood, values: dict, initial: dict):
    """(prior, likelihood) with the named parameters set to ``values`` (shapes of the covariances kept)."""
    if "action_cov" in values:
        prior = prior._replace(cov1=prior.cov1 * (values["action_cov"] / initial["action_cov"]) ** 2)
    if "latent_cov" in values:
        prior = prior._replace(covs=prior.covs * (values["latent_cov"] / initial["latent_cov"]) ** 2)
    if "noise_scale" in values:
        likelihood = Gaussian(values["noise_scale"])
    return prior, likelihood


def _check_fit(fit) -> tuple:
    if isinstance(fit, str):
        fit = (fit,)
    fit = tuple(fit)
    if not fit or any(f not in FITTABLE for f in fit) or len(set(fit)) != len(fit):
        raise ValueError(f"fit: expected distinct names from {FITTABLE}, got {fit!r}")
    return fit


def _check_identifiable(fit, likelihood, G_unit, counts, shared: bool):
    """Raise ValueError for a parameter these data cannot identify (G_unit (K, d, d), counts (K,))."""
    if "noise_scale" in fit:
        if not isinstance(likelihood, Gaussian):
            raise ValueError(
                f"fit: 'noise_scale' is the sd of Gaussian rewards; {type(likelihood).__name__} rewards have none"
            )
        ranks = np.linalg.matrix_rank(np.asarray(G_unit), hermitian=True)
        dof = int(np.sum(np.asarray(counts) - np.where(np.asarray(counts) > 0, ranks, 0)))
        if dof < 1:
            raise ValueError(
                "fit: 'noise_scale' cannot be identified: no action has more observations than the rank of its "
                "contexts, so any residual can be absorbed into theta (fix the noise scale, or gather more data)"
            )
    played = int(np.sum(np.asarray(counts) > 0))
    if "action_cov" in fit and played < 2:
        what = "a shared-parameter model has one theta" if shared else f"only {played} action(s) have data"
        raise ValueError(
            f"fit: 'action_cov' (S_1, the spread of the actions around psi_1) needs data on at least 2 actions; "
            f"{what}, so S_1 cannot be told from the latent levels' spread"
        )


def _bounds(fit, initial, bounds) -> dict:
    bounds = {} if bounds is None else dict(bounds)
    unknown = set(bounds) - set(fit)
    if unknown:
        raise ValueError(f"bounds: names {sorted(unknown)} are not in fit={fit}")
    out = {}
    for name in fit:
        p0 = initial[name]
        lo, hi = bounds.get(name, (p0 / DEFAULT_BOUND_RATIO, p0 * DEFAULT_BOUND_RATIO))
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < p0 < hi):
            raise ValueError(
                f"bounds: {name} needs 0 < lower < initial value {p0:.4g} < upper, finite; got ({lo!r}, {hi!r})"
            )
        out[name] = (lo, hi)
    return out


def _to_value(u, lo, hi):
    return jnp.exp(jnp.log(lo) + (jnp.log(hi) - jnp.log(lo)) * jax.nn.sigmoid(u))


def _to_unconstrained(p, lo, hi):
    t = (math.log(p) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.log(t) - math.log1p(-t)


@partial(jax.jit, static_argnames=("likelihood", "fit", "num_steps", "optimizer", "linearisation", "glm"))
def _optimise(prior, likelihood, data, u0, initial, bounds, *, fit, num_steps, optimizer, linearisation, glm):
    """Run the optimiser; returns (u (P,), log-evidence trace (num_steps + 1,), final grad).

    bounds: (P, 2) lower and upper bound of each fitted parameter, in ``fit`` order.
    """
    n = data[-1]

    def values(u):
        return {name: _to_value(u[i], bounds[i, 0], bounds[i, 1]) for i, name in enumerate(fit)}

    def log_evidence(u):
        p, lik = with_values(prior, likelihood, values(u), initial)
        if glm:
            stats, const = data[0], data[1]
            return const + _ev.chain_log_evidence(p, stats, _ev.differentiable_linearisation(p, stats, linearisation))
        return _ev.gaussian_log_evidence(p, data[0], lik.scale, linearisation)

    def loss(u):
        return -log_evidence(u) / n

    u, trace = optax_steps(loss, u0, num_steps, optimizer)
    return u, -n * trace, jax.grad(loss)(u)


def optax_steps(loss, u0, num_steps: int, optimizer=None):
    """``num_steps`` steps of an optax optimiser on ``loss`` from ``u0`` (P,).

    Args:
        loss: a differentiable function (P,) -> ().
        u0: (P,) the start.
        num_steps: steps.
        optimizer: an optax GradientTransformation (None: ``optax.lbfgs()`` with its line search).
    Returns:
        (u (P,), the loss at the start and after every step (num_steps + 1,)).
    """
    if optimizer is None:
        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)
    else:
        opt = optax.with_extra_args_support(optimizer)
        value_and_grad = lambda u, state: jax.value_and_grad(loss)(u)  # noqa: E731

    def step(carry, _):
        u, state = carry
        value, grad = value_and_grad(u, state=state)
        updates, state = opt.update(grad, state, u, value=value, grad=grad, value_fn=loss)
        u = optax.apply_updates(u, updates)
        return (u, state), loss(u)

    (u, _), trace = jax.lax.scan(step, (u0, opt.init(u0)), None, length=num_steps)
    return u, jnp.concatenate([loss(u0)[None], trace])


#: step lengths the Newton line search tries, longest first
NEWTON_STEP_LENGTHS = tuple(0.5**i for i in range(11))


def newton_steps(loss, u0, num_steps: int):
    """``num_steps`` safeguarded Newton steps on a smooth ``loss`` of a few parameters (P,).

    Each step solves with the Hessian whose eigenvalues are replaced by their absolute values
    (floored at 1e-8 of the largest, so the direction always descends), then takes the longest
    of :data:`NEWTON_STEP_LENGTHS` that lowers the loss by the Armijo amount (all tried at once,
    no loop), or stays put when none does (at a minimum, to round-off). From a start near the
    minimum (a warm start) the steps converge quadratically.

    Args:
        loss: a twice-differentiable function (P,) -> ().
        u0: (P,) the start.
        num_steps: steps.
    Returns:
        (u (P,), the loss at the start and after every step (num_steps + 1,)).
    """
    alphas = jnp.asarray(NEWTON_STEP_LENGTHS, u0.dtype)

    def step(u, _):
        value, grad = jax.value_and_grad(loss)(u)
        lam, vecs = eigh(symmetrise(jax.hessian(loss)(u)))
        lam = jnp.abs(lam)
        lam = jnp.maximum(lam, 1e-8 * jnp.max(lam) + jnp.finfo(u.dtype).tiny)
        direction = -vecs @ ((vecs.T @ grad) / lam)
        trial = jax.vmap(lambda a: loss(u + a * direction))(alphas)
        ok = jnp.isfinite(trial) & (trial <= value + 1e-4 * alphas * (grad @ direction))
        i = jnp.argmax(ok)
        moved = jnp.any(ok) & jnp.all(jnp.isfinite(direction))
        u = jnp.where(moved, u + alphas[i] * direction, u)
        return u, jnp.where(moved, trial[i], value)

    trace = [loss(u0)]
    u = u0
    for _ in range(num_steps):  # unrolled: a loop here would cost the enclosing loop's rounds (XLA CPU)
        u, value = step(u, None)
        trace.append(value)
    return u, jnp.stack(trace)


def fit_hyperparameters(
    prior: DiffusionPrior,
    likelihood: Likelihood,
    X: ArrayLike,
    A: ArrayLike | None,
    y: ArrayLike,
    fit: str | Sequence[str] = ("noise_scale", "action_cov"),
    *,
    num_actions: int | None = None,
    offset: ArrayLike | None = None,
    bounds: dict | None = None,
    num_steps: int = 100,
    optimizer: optax.GradientTransformation | None = None,
    linearisation: str | None = _inf.DEFAULT_LINEARISATION,
) -> HyperFit:
    """Type-II maximum likelihood of the noise scale and the chain's covariance scales.

    Args:
        prior: DiffusionPrior; its covariances' shapes are kept and its values start the fit.
        likelihood: Gaussian(scale) (its scale starts the fit), Bernoulli() or Poisson()
            (Laplace-type evidence, expanded once at the initial prior).
        X: (n, d) contexts (features with a shared theta).
        A: (n,) int actions in [0, K); None for a shared theta.
        y: (n,) rewards.
        fit: names from ("noise_scale", "action_cov", "latent_cov").
        num_actions: K (default max(A) + 1).
        offset: (n,) other terms of the linear predictor (Gaussian rewards), held fixed.
        bounds: {fit name: (lower, upper)} (default: initial value / 1000 and * 1000).
        num_steps: optimiser steps (each O(K d^3 + L d_psi^3) after one pass over the data).
        optimizer: an optax GradientTransformation on the unconstrained parameters (default
            ``optax.lbfgs()`` with its zoom line search).
        linearisation: the upward pass for nonlinear links (expansion points held fixed).

    Returns:
        HyperFit(prior, likelihood, values, initial, log_evidence trace, bounds, at_bound, grad_norm).

    Raises:
        ValueError: on bad input, and when the data cannot identify a requested parameter
            (a noise scale without residual degrees of freedom or for non-Gaussian rewards;
            S_1 with data on fewer than two actions).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> prior = DiffusionPrior.linear([jnp.eye(2)], [1.0, 1.0])
        >>> kx, ka, ky = jax.random.split(jax.random.PRNGKey(0), 3)
        >>> X, A = jax.random.normal(kx, (300, 2)), jax.random.randint(ka, (300,), 0, 10)
        >>> y = 0.5 * jax.random.normal(ky, (300,))
        >>> out = fit_hyperparameters(prior, Gaussian(1.0), X, A, y, fit=("noise_scale",), num_actions=10)
        >>> round(out.values["noise_scale"], 1)
        0.5
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"prior: expected a DiffusionPrior, got {type(prior).__name__}")
    if not isinstance(likelihood, Gaussian | Bernoulli | Poisson):
        raise ValueError(f"likelihood: expected Gaussian, Bernoulli or Poisson, got {likelihood!r}")
    fit = _check_fit(fit)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer: expected an optax GradientTransformation, got {type(optimizer).__name__}")
    dtype = prior.cov1.dtype
    X = _checks.as_array("X", X, shape=(None, prior.dim)).astype(dtype)
    _checks.check_finite("X", X)
    n = X.shape[0]
    if n == 0:
        raise ValueError("X: no observations; empirical Bayes needs data")
    shared = A is None
    if shared:
        A, num_actions = jnp.zeros(n, jnp.int32), 1
    else:
        if num_actions is None:
            num_actions = int(np.max(np.asarray(A))) + 1
        A = _checks.check_actions("A", A, num_actions, length=n)
    y = _checks.as_array("y", y, shape=(n,)).astype(dtype)
    likelihood.check_rewards("y", y)
    if offset is not None:
        if not isinstance(likelihood, Gaussian):
            raise ValueError("offset: supported with Gaussian rewards only")
        offset = _checks.as_array("offset", offset, shape=(n,)).astype(dtype)
        _checks.check_finite("offset", offset)
    summary = _ev.gaussian_summary(X, A, y, num_actions, offset)
    _check_identifiable(fit, likelihood, summary.G, summary.count, shared)
    initial = initial_values(prior, likelihood, fit)
    bnds = _bounds(fit, initial, bounds)
    linearisation = _inf.resolve_linearisation(prior, linearisation)
    glm = not isinstance(likelihood, Gaussian)
    if glm:
        lik = likelihood if likelihood.ridge is not None else likelihood.for_prior(_inf.theta_prior_scale_cov(prior))
        G, b, B = lik._laplace_batch(X, A, y, num_actions)
        eta = jnp.sum(X * B[A], axis=-1)
        const = jnp.sum(lik.log_prob(y, eta)) + 0.5 * jnp.einsum("ki,kij,kj->", B, G, B) - jnp.sum(b * B)
        data = (ActionStats(G, b), const, jnp.asarray(n, dtype))
    else:
        data = (summary, jnp.asarray(n, dtype))
    u0 = jnp.asarray([_to_unconstrained(initial[f], *bnds[f]) for f in fit], dtype)
    u, trace, grad = _optimise(
        prior,
        likelihood,
        data,
        u0,
        initial,
        jnp.asarray([bnds[f] for f in fit], dtype),
        fit=fit,
        num_steps=num_steps,
        optimizer=optimizer,
        linearisation=linearisation,
        glm=glm,
    )
    fitted = {f: float(_to_value(u[i], *(jnp.asarray(b, dtype) for b in bnds[f]))) for i, f in enumerate(fit)}
    new_prior, new_lik = with_values(prior, likelihood, fitted, initial)
    s = np.asarray(jax.nn.sigmoid(u))
    at_bound = tuple(f for i, f in enumerate(fit) if s[i] < 1e-3 or s[i] > 1 - 1e-3)
    if at_bound:
        warnings.warn(
            f"fit_hyperparameters: {', '.join(at_bound)} ended at a bound {[bnds[f] for f in at_bound]}: the data "
            "prefer a value outside it; widen the bounds or check the model",
            RuntimeWarning,
            stacklevel=2,
        )
    return HyperFit(
        new_prior,
        new_lik,
        {VALUE_NAMES[f]: v for f, v in fitted.items()},
        {VALUE_NAMES[f]: v for f, v in initial.items()},
        trace,
        bnds,
        at_bound,
        float(jnp.linalg.norm(grad)),
    )
