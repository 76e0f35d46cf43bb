"""NUTS-free diagnostics of a guide against its model (MATH.md section 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.infer.util import log_density

from dts_ppl import _arviz


def traced_values(fn, args, values: dict) -> dict:
    """The values ``fn``'s sites take when ``values`` are substituted, one draw per leading index.

    NumPyro's ``scan(..., reverse=True)`` (used by the model for ``psi``) hands substituted
    values to its steps in iteration order, i.e. reversed along the scanned axis, while a
    sampled site's value is stacked in the natural order (numpyro 0.22). So substituting a
    draw z scores the model at this function's output, not at z. Everything that substitutes
    (``log_density``, MCMC, ``Predictive`` with a guide) sees the reversed chain.

    Args:
        values: {site: (num_draws, *site_shape)}.
    Returns:
        {site: (num_draws, *site_shape)}.
    """

    def one(v):
        trace = handlers.trace(handlers.substitute(handlers.seed(fn, 0), data=v)).get_trace(*args)
        return {k: trace[k]["value"] for k in v}

    return jax.vmap(one)(values)


def substitution_values(fn, args, values: dict) -> dict:
    """Values to substitute so that ``fn``'s sites take ``values`` (undoes :func:`traced_values`)."""
    subs = traced_values(fn, args, values)
    back = traced_values(fn, args, subs)
    for k in values:
        if not bool(jnp.allclose(back[k], values[k], rtol=1e-6, atol=1e-9)):
            raise ValueError(f"{k}: NumPyro's substitution of this site is not an involution; cannot evaluate it")
    return subs


def log_importance_weights(key, model, guide, X=None, A=None, y=None, num_samples: int = 2000):
    """log p(y, z) - log q(z) for z ~ q: (num_samples,).

    Both densities are NumPyro's own (`numpyro.infer.util.log_density`) on the same sites, so
    this also checks that the guide's density is tractable and finite. The draws are mapped
    through :func:`substitution_values` so each density is evaluated at the drawn z.
    """
    draws = guide.sample_posterior(key, X, A, y, sample_shape=(num_samples,))
    args = (X, A, y)
    subs_p = substitution_values(model, args, draws)
    subs_q = substitution_values(guide, args, draws)

    def one(zp, zq):
        log_p, _ = log_density(model, args, {}, zp)
        log_q, _ = log_density(guide, args, {}, zq)
        return log_p - log_q

    return jax.vmap(one)(subs_p, subs_q)


def psis_khat(key, model, guide, X=None, A=None, y=None, num_samples: int = 2000) -> float:
    """Pareto k-hat of the importance weights p(y, z) / q(z) (Yao et al. 2018).

    Below 0.5: the guide is a reliable proposal for the posterior; above 0.7: it is not.
    A guide that is exact has weights constant to round-off and k-hat reported as -inf.
    """
    lw = log_importance_weights(key, model, guide, X, A, y, num_samples)
    if not bool(jnp.all(jnp.isfinite(lw))):
        raise ValueError("guide: log importance weights are not finite; the guide misses the model's support")
    return _arviz.psis(lw)[1]
