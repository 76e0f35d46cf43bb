"""NUTS-free diagnostics of a guide against its model (docs/math.md section 7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from numpyro.infer.util import log_density

from dts_ppl.core import checks as _checks
from dts_ppl.ppl import arviz_adapter as _arviz
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel


def log_importance_weights(
    key: jax.Array,
    model: BanditModel,
    guide: DTSGuide,
    X: ArrayLike | None = None,
    A: ArrayLike | None = None,
    y: ArrayLike | None = None,
    num_samples: int = 2000,
) -> jax.Array:
    """log p(y, z) - log q(z) for z ~ q: (num_samples,).

    Both densities are NumPyro's own (`numpyro.infer.util.log_density`) on the same sites, so
    this also checks that the guide's density is tractable and finite.
    """
    key = _checks.check_key(key)
    draws = guide.sample_posterior(key, guide.fit(X, A, y), sample_shape=(num_samples,))
    args = (X, A, y)

    def one(z):
        log_p, _ = log_density(model, args, {}, z)
        log_q, _ = log_density(guide, args, {}, z)
        return log_p - log_q

    return jax.jit(jax.vmap(one))(draws)


def psis_khat(
    key: jax.Array,
    model: BanditModel,
    guide: DTSGuide,
    X: ArrayLike | None = None,
    A: ArrayLike | None = None,
    y: ArrayLike | None = None,
    num_samples: int = 2000,
) -> float:
    """Pareto k-hat of the importance weights p(y, z) / q(z) (Yao et al. 2018).

    Below 0.5: the guide is a reliable proposal for the posterior; above 0.7: it is not.
    A guide that is exact has weights constant to round-off, reported as k-hat = -inf (see
    :func:`dts_ppl.ppl.arviz_adapter.psis`).
    """
    lw = log_importance_weights(key, model, guide, X, A, y, num_samples)
    if not bool(jnp.all(jnp.isfinite(lw))):
        raise ValueError("guide: log importance weights are not finite; the guide misses the model's support")
    return _arviz.psis(lw)[1]
