"""What the package calls on a link and on a likelihood: the :class:`Link` and :class:`Likelihood` Protocols.

A new link family (affine, ReLU MLP, trained DDPM step, ...) or reward family only needs these
members to work with the posterior, the model, the guide and the agents. Both are
``runtime_checkable``: ``isinstance(obj, Link)`` checks that the members exist (not their
signatures).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

from dts_ppl.core.likelihoods import ActionStats, Evidence


@runtime_checkable
class Link(Protocol):
    """A link f_l of the diffusion chain: the mean of the level below and its affine stand-ins.

    Links of levels 2..L are stored stacked (a leading level axis on every leaf) and mapped over
    with ``jax.vmap``, so a link must be a pytree (a NamedTuple of arrays).
    """

    @property
    def is_linear(self) -> bool:
        """True when f is affine (the posterior is then exact whatever the linearisation)."""
        ...

    def __call__(self, psi: jax.Array) -> jax.Array:
        """f(psi): (d_in,) -> (d_out,)."""
        ...

    def linearise(self, point: jax.Array, linearisation: str = "identity") -> tuple[jax.Array, jax.Array]:
        """(W (d_out, d_in), c (d_out,)) with f(psi) ~ W psi + c near ``point`` (d_in,).

        ``linearisation``: "identity" (W = I, c = 0), "jacobian" or "iterated" (the Jacobian at ``point``).
        """
        ...


@runtime_checkable
class Likelihood(Protocol):
    """A reward family y | eta with eta = x^T theta, and its evidence about theta (docs/math.md section 2)."""

    name: str
    is_exact: bool

    def mean(self, eta: jax.Array) -> jax.Array:
        """E[y | eta], same shape as eta."""
        ...

    def log_prob(self, y: jax.Array, eta: jax.Array) -> jax.Array:
        """log p(y | eta), broadcast shape of y and eta."""
        ...

    def sample(self, key: jax.Array, eta: jax.Array) -> jax.Array:
        """y ~ p(y | eta), same shape as eta."""
        ...

    def check_rewards(self, name: str, y: Any) -> None:
        """Raise ValueError (naming ``name``) when y is outside the family's support."""
        ...

    def statistics(self, X: jax.Array, A: jax.Array, y: jax.Array, num_actions: int) -> ActionStats:
        """Per-action precision-form evidence: G (K, d, d), b (K, d)."""
        ...

    def for_prior(self, theta_cov: Any) -> Likelihood:
        """The likelihood an agent or guide with this (d, d) prior covariance of theta_a uses."""
        ...

    def init_evidence(self, num_groups: int, dim: int, history: int, dtype: Any) -> Evidence:
        """Zero online evidence for ``num_groups`` groups of dimension ``dim``."""
        ...

    def in_support(self, y: jax.Array) -> jax.Array:
        """Elementwise bool, jittable: y is a reward of this family (the guard's support check)."""
        ...

    def propose_observation(self, ev: Evidence, phi: jax.Array, group: Any, y: Any, newton_steps: int) -> Any:
        """One observation (phi (d,), y ()) of ``group`` as a proposal: (evidence of Rows, old terms, new terms)."""
        ...

    def propose_observations(self, ev: Evidence, phi: jax.Array, group: Any, y: Any, ok: Any) -> Evidence:
        """A batch of rows (those with ``ok``) as new evidence, nothing written."""
        ...

    def add_observation(self, ev: Evidence, phi: jax.Array, group: Any, y: Any, newton_steps: int) -> Any:
        """:meth:`propose_observation`, written: (new evidence, old terms, new terms)."""
        ...
