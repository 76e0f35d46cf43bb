import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import DiffusionPrior
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior


def test_covariance_shorthands():
    w = [jnp.ones((3, 2))]
    a = DiffusionPrior.linear(w, [2.0, jnp.array([1.0, 3.0])])
    b = DiffusionPrior.linear(w, [2.0 * jnp.eye(3), jnp.diag(jnp.array([1.0, 3.0]))])
    np.testing.assert_array_equal(a.cov1, b.cov1)
    np.testing.assert_array_equal(a.covs, b.covs)
    assert (a.dim, a.latent_dim, a.num_levels) == (3, 2, 1) and a.links is None


def test_links_and_trajectory():
    prior = random_mlp_prior(jax.random.PRNGKey(40), 3, 4, hidden=5)
    traj = prior.prior_mean_trajectory()  # level order
    assert traj.shape == (4, 3)
    np.testing.assert_allclose(traj[3], 0.0)
    np.testing.assert_allclose(traj[2], prior.link(4)(traj[3]))
    np.testing.assert_allclose(traj[0], prior.link(2)(traj[1]))
    assert not prior.is_linear


def test_paper_linear_prior_zeroes_columns():
    prior = random_linear_prior(jax.random.PRNGKey(41), 5, active_dims=[5, 2])
    w2 = prior.link(2).weight
    assert np.all(w2[:, 2:] == 0) and np.all(w2[:, :2] != 0)
    assert prior.is_linear and np.all(np.abs(prior.link1.weight) <= 1)
