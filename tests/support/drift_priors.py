"""The small two-level affine prior shared by the drift tests (walk filter, tracker, detector)."""

import jax
import jax.numpy as jnp

from dts_ppl import DiffusionPrior


def two_level_affine_prior(seed: int, d: int) -> DiffusionPrior:
    """A d-dimensional theta over a 2-dimensional psi_1 and psi_2: random links, a full S_1, offsets."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    a = jax.random.normal(k3, (d, d))
    return DiffusionPrior.linear(
        [jax.random.normal(k1, (d, 2)), jax.random.normal(k2, (2, 2))],
        [a @ a.T / d + 0.5 * jnp.eye(d), 0.7, 2.0],
        offsets=[jnp.arange(d) / d, -jnp.ones(2) / 2],
    )
