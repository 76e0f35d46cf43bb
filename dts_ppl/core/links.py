"""Links f_l of the diffusion chain and their linearisations (docs/math.md sections 3-4).

A link is a NamedTuple pytree with two methods:

- ``link(psi)``: the mean of the level below, ``f_l(psi_l)``; shapes (d_in,) -> (d_out,).
- ``link.linearise(point, linearisation)``: ``(W, c)`` with ``f_l(psi) ~ W psi + c``, used by the
  upward messages. Affine links return their own ``(W, c)`` whatever the linearisation, so the
  posterior is exact for them. Nonlinear links support ``"identity"`` (the paper: W = I,
  c = 0, needs d_in == d_out), ``"jacobian"`` and ``"iterated"`` (both: the Jacobian at
  ``point``, which the caller chooses; docs/math.md section 4).

Links of levels 2..L are stored stacked (a leading level axis on every leaf), so new link
families only need these two methods to work with the posterior code.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.core.deprecation import renamed_argument

LINEARISATIONS = ("identity", "jacobian", "iterated")


def check_linearisation(linearisation: str) -> str:
    if not isinstance(linearisation, str) or linearisation not in LINEARISATIONS:
        raise ValueError(f"linearisation: expected one of {LINEARISATIONS}, got {linearisation!r}")
    return linearisation


def _jacobian_linearisation(f, point):
    jac = jax.jacfwd(f)(point)
    return jac, f(point) - jac @ point


def _identity_linearisation(d_in: int, d_out: int, dtype):
    if d_in != d_out:
        raise ValueError(
            "linearisation='identity' drops the link from the upward messages and needs equal "
            f"input and output dimensions, got {d_in} -> {d_out}; use 'jacobian' or 'iterated'"
        )
    return jnp.eye(d_out, dtype=dtype), jnp.zeros(d_out, dtype=dtype)


class AffineLink(NamedTuple):
    """f(psi) = weight @ psi + offset.

    Attributes:
        weight: (d_out, d_in)
        offset: (d_out,)
    """

    weight: jax.Array
    offset: jax.Array

    @property
    def is_linear(self) -> bool:
        return True

    def __call__(self, psi: jax.Array) -> jax.Array:
        return self.weight @ psi + self.offset

    def linearise(
        self, point: jax.Array, linearisation: str = "identity", *, method: str | None = None
    ) -> tuple[jax.Array, jax.Array]:
        linearisation = renamed_argument("method", method, "linearisation", linearisation, "identity")
        del point, linearisation  # exact whatever the linearisation
        return self.weight, self.offset


class MLPLink(NamedTuple):
    """Two-layer ReLU network f(psi) = w2 @ relu(w1 @ psi + b1) + b2 (the paper's nonlinear links).

    Attributes:
        w1: (hidden, d_in)
        b1: (hidden,)
        w2: (d_out, hidden)
        b2: (d_out,)
    """

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array

    @property
    def is_linear(self) -> bool:
        return False

    def __call__(self, psi: jax.Array) -> jax.Array:
        return self.w2 @ jax.nn.relu(self.w1 @ psi + self.b1) + self.b2

    def linearise(
        self, point: jax.Array, linearisation: str = "identity", *, method: str | None = None
    ) -> tuple[jax.Array, jax.Array]:
        linearisation = renamed_argument("method", method, "linearisation", linearisation, "identity")
        if linearisation == "identity":
            return _identity_linearisation(self.w1.shape[-1], self.w2.shape[-2], self.w2.dtype)
        return _jacobian_linearisation(self, point)
