"""The paper's Bayes regret bound for dTS and LinTS (MATH.md section 9; camera-ready App. E).

Linear links f_l(psi) = W_l psi, Gaussian rewards with noise variance sigma^2, S_l = sigma_l^2 I:

    BR(n) <= sqrt(2 n (R_ACT(n) + sum_l R_LAT_l) log(1/delta)) + c n delta
    R_ACT(n) = c_0 d K log(1 + n sigma_1^2 / d),            c_0 = sigma_1^2 / log(1 + sigma_1^2)
    R_LAT_l  = c_l d_l log(1 + sigma_{l+1}^2 / sigma_l^2),  c_l = sigma_{l+1}^2 sigma_MAX^{2l} / log(1 + sigma_{l+1}^2)
    sigma_MAX^2 = max_{l in [L+1]} (1 + sigma_l^2 / sigma^2)

with d_l = d (Theorem E.1) or d_l = the active columns of W_l (Proposition E.2, ``sparse=True``).
``form="printed"`` implements the statement as printed (no sigma^2 inside the constants' logs);
``form="proof"`` puts sigma^2 where the proof carries it: c_0 = sigma_1^2 / log(1 + sigma_1^2 / sigma^2),
c_l = sigma_{l+1}^2 sigma_MAX^{2l} / log(1 + sigma_{l+1}^2 / sigma^2) and R_ACT's log(1 + n sigma_1^2 / (d sigma^2)).
With sigma = 1 (every preset here) the two agree.

The theorem assumes ||x_t||_2 = 1 and lambda_1(W_l^T W_l) = 1; the bound then depends on the prior
only through (d, K, L, sigma_l, d_l). :func:`assumptions` reports how far a prior is from them.

LinTS with the marginal prior N(0, Sigma) gets the same R_ACT-type term with sigma_1^2 replaced by
lambda_max(Sigma) and no latent terms (:func:`lints_bound`): the independent-action Bayes bound,
O~(sqrt(n d K lambda_max(Sigma))), which the paper writes as O~(sqrt(n d K (sigma_1^2 + sum_l sigma_{l+1}^2))).

Pure math (numpy/jax.numpy), no NumPyro: usable from the core and from notebooks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dts_ppl.core.prior import DiffusionPrior

_FORMS = ("printed", "proof")


class BoundTerms(NamedTuple):
    """The terms of the Bayes regret bound at horizons ``n``.

    Attributes:
        num_rounds: (m,) the horizons n.
        r_act: (m,) R_ACT(n).
        r_lat: (L,) R_LAT_l for l = 1..L (independent of n).
        bound: (m,) the bound sqrt(2 n (R_ACT + sum R_LAT) log(1/delta)) + c n delta.
        delta: (m,) the delta used (1/n by default).
    """

    num_rounds: np.ndarray
    r_act: np.ndarray
    r_lat: np.ndarray
    bound: np.ndarray
    delta: np.ndarray


class PriorScales(NamedTuple):
    """What the bound reads off a linear prior: sigma_1^2..sigma_{L+1}^2 (L+1,), active columns d_l (L,)."""

    variances: np.ndarray
    active_dims: np.ndarray


def prior_scales(prior: DiffusionPrior, rtol: float = 1e-6) -> PriorScales:
    """sigma_l^2 of S_l = sigma_l^2 I and the number of nonzero columns of each W_l.

    Raises ValueError when the prior is not linear or a covariance is not isotropic.
    """
    if not isinstance(prior, DiffusionPrior) or not prior.is_linear:
        raise ValueError("prior: expected a linear DiffusionPrior (DiffusionPrior.linear)")
    covs = [np.asarray(prior.cov1)] + [np.asarray(c) for c in prior.covs]
    variances = []
    for i, s in enumerate(covs, start=1):
        v = float(np.mean(np.diag(s)))
        if np.abs(s - v * np.eye(s.shape[0])).max() > rtol * max(v, 1e-300):
            raise ValueError(f"prior: the bound needs S_{i} = sigma_{i}^2 I, got a non-isotropic S_{i}")
        variances.append(v)
    weights = [np.asarray(prior.link(level).weight) for level in range(1, prior.num_levels + 1)]
    active = [int(np.sum(np.any(w != 0, axis=0))) for w in weights]
    return PriorScales(np.asarray(variances), np.asarray(active))


def assumptions(prior: DiffusionPrior) -> dict:
    """How far ``prior`` is from the theorem's lambda_1(W_l^T W_l) = 1: {"lambda_max": [per level]}."""
    if not prior.is_linear:
        raise ValueError("prior: expected a linear DiffusionPrior")
    lam = [float(np.linalg.eigvalsh(np.asarray(w.T @ w)).max()) for w in _weights(prior)]
    return {"lambda_max": lam}


def _weights(prior):
    return [prior.link(level).weight for level in range(1, prior.num_levels + 1)]


def _check(num_actions, num_rounds, noise_var, delta, max_gap, form):
    if not isinstance(num_actions, int | np.integer) or num_actions < 1:
        raise ValueError(f"num_actions: expected a positive integer, got {num_actions!r}")
    n = np.atleast_1d(np.asarray(num_rounds, dtype=float))
    if n.ndim != 1 or np.any(n < 1) or not np.all(np.isfinite(n)):
        raise ValueError(f"num_rounds: expected horizons n >= 1 (scalar or 1-d), got {num_rounds!r}")
    if not (np.isfinite(noise_var) and noise_var > 0):
        raise ValueError(f"noise_var: expected a positive reward-noise variance sigma^2, got {noise_var!r}")
    if delta is None and np.any(n < 2):
        raise ValueError("num_rounds: the default delta = 1/n needs n >= 2 (or pass delta)")
    d = 1.0 / n if delta is None else np.broadcast_to(np.asarray(delta, dtype=float), n.shape)
    if np.any(d <= 0) or np.any(d >= 1):
        raise ValueError(f"delta: expected values in (0, 1), got {delta!r}")
    if not (np.isfinite(max_gap) and max_gap >= 0):
        raise ValueError(f"max_gap: expected the constant c >= 0 of the c n delta term, got {max_gap!r}")
    if form not in _FORMS:
        raise ValueError(f"form: expected one of {_FORMS}, got {form!r}")
    return n, d


def bound_terms(
    variances,
    active_dims,
    dim: int,
    num_actions: int,
    num_rounds,
    noise_var: float = 1.0,
    delta=None,
    max_gap: float = 0.0,
    form: str = "printed",
) -> BoundTerms:
    """Theorem E.1 / Proposition E.2 from the scalars: the bound's terms at horizons ``num_rounds``.

    Args:
        variances: (L+1,) sigma_1^2, ..., sigma_{L+1}^2.
        active_dims: (L,) d_l used in the latent terms (pass [d] * L for Theorem E.1).
        dim: d.   num_actions: K.   num_rounds: n, scalar or (m,).
        noise_var: sigma^2.   delta: scalar or (m,); default 1/n.
        max_gap: c in the c n delta term (a bound on the per-round regret).
        form: "printed" or "proof" (module docstring).
    Returns:
        BoundTerms with (m,) r_act, bound, delta and (L,) r_lat.
    """
    n, delta = _check(num_actions, num_rounds, noise_var, delta, max_gap, form)
    s2 = np.asarray(variances, dtype=float)
    dl = np.asarray(active_dims, dtype=float)
    if s2.ndim != 1 or s2.size < 2 or np.any(s2 <= 0):
        raise ValueError(f"variances: expected L + 1 >= 2 positive variances, got {variances!r}")
    if dl.shape != (s2.size - 1,) or np.any(dl < 1) or np.any(dl > dim):
        raise ValueError(f"active_dims: expected L = {s2.size - 1} values in 1..{dim}, got {active_dims!r}")
    noise = noise_var if form == "proof" else 1.0
    s2_max = np.max(1.0 + s2 / noise_var)
    c0 = s2[0] / np.log1p(s2[0] / noise)
    r_act = c0 * dim * num_actions * np.log1p(n * s2[0] / (dim * noise))
    levels = np.arange(1, s2.size)
    c_l = s2[1:] * s2_max**levels / np.log1p(s2[1:] / noise)
    r_lat = c_l * dl * np.log1p(s2[1:] / s2[:-1])
    bound = np.sqrt(2.0 * n * (r_act + r_lat.sum()) * np.log(1.0 / delta)) + max_gap * n * delta
    return BoundTerms(n, r_act, r_lat, bound, delta)


def regret_bound(
    prior: DiffusionPrior,
    num_actions: int,
    num_rounds,
    noise_var: float = 1.0,
    delta=None,
    max_gap: float = 0.0,
    sparse: bool = False,
    form: str = "printed",
) -> BoundTerms:
    """dTS's Bayes regret bound for a linear prior: Theorem E.1, or Proposition E.2 with ``sparse``.

    Args:
        prior: linear DiffusionPrior with isotropic S_l.
        sparse: use the active columns d_l of W_l in the latent terms (else d).
        Other arguments as :func:`bound_terms`.
    Returns:
        BoundTerms.
    """
    scales = prior_scales(prior)
    L = prior.num_levels
    active = scales.active_dims if sparse else np.full(L, prior.dim)
    return bound_terms(scales.variances, active, prior.dim, num_actions, num_rounds, noise_var, delta, max_gap, form)


def lints_bound(
    marginal_cov,
    num_actions: int,
    num_rounds,
    noise_var: float = 1.0,
    delta=None,
    max_gap: float = 0.0,
    form: str = "printed",
) -> BoundTerms:
    """LinTS's Bayes bound under an independent N(., Sigma) prior per action.

    The dTS bound with no latent levels and sigma_1^2 = lambda_max(Sigma): R_ACT only.

    Args:
        marginal_cov: (d, d) Sigma (e.g. ``theta_marginal(prior).cov``).
        Other arguments as :func:`bound_terms`.
    Returns:
        BoundTerms with an empty r_lat.
    """
    cov = np.asarray(marginal_cov, dtype=float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"marginal_cov: expected a (d, d) covariance, got shape {cov.shape}")
    lam = float(np.linalg.eigvalsh(0.5 * (cov + cov.T)).max())
    if not lam > 0:
        raise ValueError("marginal_cov: expected a positive definite covariance")
    n, delta = _check(num_actions, num_rounds, noise_var, delta, max_gap, form)
    noise = noise_var if form == "proof" else 1.0
    d = cov.shape[0]
    r_act = lam / np.log1p(lam / noise) * d * num_actions * np.log1p(n * lam / (d * noise))
    bound = np.sqrt(2.0 * n * r_act * np.log(1.0 / delta)) + max_gap * n * delta
    return BoundTerms(n, r_act, np.zeros(0), bound, delta)
