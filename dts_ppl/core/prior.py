"""The diffusion prior: a chain psi_L -> ... -> psi_1 -> theta_a of Gaussian conditionals.

    psi_L             ~ N(0, S_{L+1})
    psi_{l-1} | psi_l ~ N(f_l(psi_l), S_l)      l = L..2
    theta_a  | psi_1  ~ N(f_1(psi_1), S_1)      a = 1..K

(docs/math.md section 1.) theta has dimension ``dim`` (d); every latent has ``latent_dim`` (d_psi).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from dts_ppl.core import checks as _checks
from dts_ppl.core.links import AffineLink, MLPLink
from dts_ppl.core.protocols import Link


def _stack(links):
    if not links:
        return None
    return jax.tree.map(lambda *xs: jnp.stack(xs), *links)


def _sequence(name: str, value, what: str) -> list:
    """A list, tuple or stacked array argument (not None, a scalar or a string) as a list."""
    if isinstance(value, jax.Array | np.ndarray) and value.ndim >= 1:
        return list(value)
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name}: expected a list of {what}, got {type(value).__name__}")
    return list(value)


def _covariances(covariances, num_levels: int, dim: int, latent_dim: int, dtype):
    covariances = _sequence("covariances", covariances, "covariances [S_1, ..., S_{L+1}]")
    if len(covariances) != num_levels + 1:
        raise ValueError(
            f"covariances: expected L + 1 = {num_levels + 1} covariances [S_1, ..., S_{num_levels + 1}] "
            f"for L = {num_levels} links, got {len(covariances)}"
        )
    cov1 = _checks.covariance("covariances[0] (S_1)", covariances[0], dim, dtype)
    covs = [
        _checks.covariance(f"covariances[{i}] (S_{i + 1})", s, latent_dim, dtype)
        for i, s in enumerate(covariances[1:], start=1)
    ]
    return cov1, jnp.stack(covs)


def _matrix(name, w, shape):
    w = _checks.as_array(name, w, shape=shape)
    _checks.check_finite(name, w)
    return w


class DiffusionPrior(NamedTuple):
    """Diffusion prior over action parameters (a pytree: jit-, vmap- and scan-friendly).

    Attributes:
        link1: link f_1 from psi_1 (latent_dim,) to the mean of theta_a (dim,).
        links: links f_2..f_L stacked on a leading axis of length L - 1 (index 0 is f_2);
            None when L = 1.
        cov1: (dim, dim) S_1, the covariance of theta_a given psi_1.
        covs: (L, latent_dim, latent_dim) S_2..S_{L+1}; covs[l - 1] is the covariance of
            psi_l given psi_{l+1} (covs[L - 1] = S_{L+1} is the prior of the top latent).

    Build with :meth:`linear` or :meth:`mlp` (validated); trained DDPM priors come from
    :func:`dts_ppl.train_diffusion_prior`.
    """

    link1: Link
    links: Link | None
    cov1: jax.Array
    covs: jax.Array

    @property
    def num_levels(self) -> int:
        return self.covs.shape[0]

    @property
    def dim(self) -> int:
        return self.cov1.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.covs.shape[-1]

    @property
    def is_linear(self) -> bool:
        return self.link1.is_linear and (self.links is None or self.links.is_linear)

    def link(self, level: int) -> Link:
        """The link f_level (1-based, as in the paper)."""
        if not 1 <= level <= self.num_levels:
            raise ValueError(f"level: expected 1..{self.num_levels}, got {level}")
        if level == 1:
            return self.link1
        return jax.tree.map(lambda x: x[level - 2], self.links)

    @classmethod
    def linear(
        cls,
        weights: Sequence,
        covariances: Sequence,
        offsets: Sequence | None = None,
        dtype: DTypeLike | None = None,
    ) -> DiffusionPrior:
        """Linear diffusion prior with links f_l(psi) = W_l psi + c_l.

        Args:
            weights: [W_1, ..., W_L]; W_1 is (d, d_psi), W_l for l >= 2 is (d_psi, d_psi).
            covariances: [S_1, ..., S_{L+1}]; S_1 is (d, d), the others (d_psi, d_psi). Each may
                be a scalar (times identity), a diagonal vector or a full PD matrix.
            offsets: optional [c_1, ..., c_L] with c_1 (d,) and c_l (d_psi,); zeros by default.

        Example:
            >>> import jax.numpy as jnp
            >>> prior = DiffusionPrior.linear([jnp.ones((3, 2)), jnp.eye(2)], [1.0, 1.0, 1.0])
            >>> prior.dim, prior.latent_dim, prior.num_levels
            (3, 2, 2)
        """
        weights = _sequence("weights", weights, "link weights [W_1, ..., W_L]")
        if len(weights) == 0:
            raise ValueError("weights: expected at least one link weight W_1")
        w1 = _checks.as_array("weights[0] (W_1)", weights[0], ndim=2)
        dim, latent_dim = w1.shape
        num_levels = len(weights)
        ws = [_matrix("weights[0] (W_1)", w1, (dim, latent_dim))]
        ws += [
            _matrix(f"weights[{i}] (W_{i + 1})", w, (latent_dim, latent_dim))
            for i, w in enumerate(weights[1:], start=1)
        ]
        if offsets is None:
            cs = [jnp.zeros(dim, ws[0].dtype)] + [jnp.zeros(latent_dim, ws[0].dtype)] * (num_levels - 1)
        else:
            offsets = _sequence("offsets", offsets, "offsets [c_1, ..., c_L]")
            if len(offsets) != num_levels:
                raise ValueError(f"offsets: expected {num_levels} offsets [c_1, ..., c_L], got {len(offsets)}")
            cs = [
                _matrix(f"offsets[{i}] (c_{i + 1})", c, (dim if i == 0 else latent_dim,)) for i, c in enumerate(offsets)
            ]
        dtype = dtype or ws[0].dtype
        cov1, covs = _covariances(covariances, num_levels, dim, latent_dim, dtype)
        links = [AffineLink(w.astype(dtype), c.astype(dtype)) for w, c in zip(ws, cs, strict=True)]
        for i, (lk, s) in enumerate(zip(links, covs, strict=True)):
            # each level's spread W_l S_{l+1} W_l^T must be representable (1e38 weights in float32 are not)
            spread = lk.weight @ s @ lk.weight.T
            if _checks.is_concrete(spread) and not bool(jnp.all(jnp.isfinite(spread))):
                raise ValueError(
                    f"weights[{i}] (W_{i + 1}): too large for {jnp.dtype(dtype).name} (W S W^T overflows); "
                    "rescale the prior"
                )
        return cls(links[0], _stack(links[1:]), cov1, covs)

    @classmethod
    def mlp(cls, layers: Sequence, covariances: Sequence, dtype: DTypeLike | None = None) -> DiffusionPrior:
        """Diffusion prior with two-layer ReLU links f_l(psi) = w2 relu(w1 psi + b1) + b2.

        Args:
            layers: [(w1, b1, w2, b2) for f_1, ..., f_L] (tuples or :class:`MLPLink`); f_1 maps
                d_psi -> d, the others d_psi -> d_psi. All levels >= 2 share one hidden width.
            covariances: [S_1, ..., S_{L+1}] as in :meth:`linear`.
        """
        layers = _sequence("layers", layers, "links (w1, b1, w2, b2)")
        if len(layers) == 0:
            raise ValueError("layers: expected at least one link (w1, b1, w2, b2) for f_1")
        num_levels = len(layers)
        links = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, list | tuple) or len(layer) != 4:
                got = f"{len(layer)} arrays" if isinstance(layer, list | tuple) else type(layer).__name__
                raise ValueError(f"layers[{i}] (f_{i + 1}): expected (w1, b1, w2, b2), got {got}")
            w1 = _checks.as_array(f"layers[{i}].w1 (f_{i + 1})", layer[0], ndim=2)
            hidden, d_in = w1.shape
            w2 = _checks.as_array(f"layers[{i}].w2 (f_{i + 1})", layer[2], ndim=2)
            d_out = w2.shape[0]
            links.append(
                MLPLink(
                    _matrix(f"layers[{i}].w1 (f_{i + 1})", w1, (hidden, d_in)),
                    _matrix(f"layers[{i}].b1 (f_{i + 1})", layer[1], (hidden,)),
                    _matrix(f"layers[{i}].w2 (f_{i + 1})", w2, (d_out, hidden)),
                    _matrix(f"layers[{i}].b2 (f_{i + 1})", layer[3], (d_out,)),
                )
            )
        dim, latent_dim = links[0].w2.shape[0], links[0].w1.shape[1]
        for i, lk in enumerate(links[1:], start=1):
            if lk.w1.shape[1] != latent_dim or lk.w2.shape[0] != latent_dim:
                raise ValueError(
                    f"layers[{i}] (f_{i + 1}): expected a map {latent_dim} -> {latent_dim} (the latent "
                    f"dimension set by f_1), got {lk.w1.shape[1]} -> {lk.w2.shape[0]}"
                )
            if lk.w1.shape[0] != links[1].w1.shape[0]:
                raise ValueError(f"layers[{i}] (f_{i + 1}): hidden width differs from f_2's")
        dtype = dtype or links[0].w1.dtype
        links = [jax.tree.map(lambda x: x.astype(dtype), lk) for lk in links]
        cov1, covs = _covariances(covariances, num_levels, dim, latent_dim, dtype)
        return cls(links[0], _stack(links[1:]), cov1, covs)

    def prior_mean_trajectory(self) -> jax.Array:
        """psi*_L = 0, psi*_{l-1} = f_l(psi*_l): (L, d_psi) with row l - 1 holding psi*_l."""
        top = jnp.zeros(self.latent_dim, self.cov1.dtype)
        if self.links is None:
            return top[None]

        def step(psi, link):
            below = link(psi)
            return below, below

        _, below = jax.lax.scan(step, top, self.links, reverse=True)
        return jnp.concatenate([below, top[None]])
