"""The small affine priors shared by several test files: the drift tests' two-level prior (walk filter,
tracker, detector) and the fixed d = 3 prior of the agent-interface tests (score, joint law)."""

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


def fixed_affine_prior() -> DiffusionPrior:
    """theta (3,) over psi_1 (2,) over psi_2 (2,): fixed links, S_1 = 0.5 I, S_2 = S_3 = I."""
    return DiffusionPrior.linear(
        [jnp.array([[1.0, 0.5], [0.2, -0.7], [0.3, 0.1]]), jnp.array([[0.8, 0.1], [-0.2, 0.9]])], [0.5, 1.0, 1.0]
    )
