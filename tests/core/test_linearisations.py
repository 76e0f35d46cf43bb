"""The three linearisations of the upward messages (docs/math.md section 4)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior
from dts_ppl.core import inference as core
from dts_ppl.core import oracle
from dts_ppl.core.likelihoods import ActionStats
from dts_ppl.experiments.synthetic import random_mlp_prior


def _random_spd(key, n):
    a = jax.random.normal(key, (n, n))
    return a @ a.T / n + 0.5 * jnp.eye(n)


def _random_affine_prior(key, d, dp, L):
    keys = jax.random.split(key, 3 * L + 2)
    weights = [jax.random.normal(keys[0], (d, dp))] + [jax.random.normal(keys[i], (dp, dp)) for i in range(1, L)]
    offsets = [jax.random.normal(keys[L], (d,))] + [jax.random.normal(keys[L + i], (dp,)) for i in range(1, L)]
    covs = [_random_spd(keys[2 * L], d)] + [_random_spd(keys[2 * L + 1 + i], dp) for i in range(L)]
    return DiffusionPrior.linear(weights, covs, offsets)


def _random_stats(key, K, d, n_per_action):
    kx, ky = jax.random.split(key)
    X = jax.random.uniform(kx, (K, n_per_action, d), minval=-1, maxval=1)
    y = jax.random.normal(ky, (K, n_per_action))
    G = jnp.einsum("kni,knj->kij", X, X)
    b = jnp.einsum("kni,kn->ki", X, y)
    return ActionStats(G, b)


@jax.jit
def _oracle_moments(prior, stats):
    return oracle.split(prior, oracle.joint_posterior(prior, stats), stats.G.shape[0])


@partial(jax.jit, static_argnums=2)
def _closed_form_moments(prior, stats, linearisation):
    post = core.posterior(prior, stats, linearisation=linearisation)
    return post, core.moments(prior, post, core.linearise(prior, linearisation))


@pytest.mark.parametrize(("d", "dp", "L", "K", "n"), [(3, 2, 3, 4, 2), (2, 2, 1, 1, 0)])
def test_linear_links_give_the_exact_posterior_with_every_linearisation(d, dp, L, K, n):
    k_prior, k_stats = jax.random.split(jax.random.PRNGKey(d + 10 * L + 100 * K))
    prior = _random_affine_prior(k_prior, d, dp, L)
    stats = _random_stats(k_stats, K, d, n)  # n = 2 < d: singular G_a; n = 0: no data (with L = 1, K = 1)
    ref = _oracle_moments(prior, stats)
    for linearisation in ("identity", "jacobian", "iterated"):
        _, mo = _closed_form_moments(prior, stats, linearisation)
        for name in ("psi_mean", "psi_cov", "theta_mean", "theta_cov"):
            np.testing.assert_allclose(
                getattr(mo, name), ref[name], rtol=1e-9, atol=1e-10, err_msg=f"{linearisation}: {name}"
            )
        cross = jnp.einsum("aij,jk,blk->abil", mo.theta_loading, mo.psi_cov[-1], mo.theta_loading)  # psi_1 is last
        off = ~np.eye(K, dtype=bool)
        np.testing.assert_allclose(cross[off], ref["theta_cross"][off], rtol=1e-9, atol=1e-10)


def test_jacobian_linearisation_is_the_tangent_of_the_link():
    prior = random_mlp_prior(jax.random.PRNGKey(5), dim=3, num_levels=2, hidden=8)
    points = jax.random.normal(jax.random.PRNGKey(6), (2, 3))  # sampling order: row 0 = psi_2
    lin = core.linearise(prior, "iterated", points)
    f1, f2 = prior.link(1), prior.link(2)
    eps = 1e-6
    v = jnp.array([0.3, -0.2, 0.5])
    fd = (f2(points[0] + eps * v) - f2(points[0] - eps * v)) / (2 * eps)
    np.testing.assert_allclose(lin.w[1] @ v, fd, rtol=1e-6, atol=1e-8)  # row 1 = psi_1 | psi_2: f_2 at psi_2
    np.testing.assert_allclose(lin.w[1] @ points[0] + lin.c[1], f2(points[0]), rtol=1e-12)
    np.testing.assert_allclose(lin.w1 @ points[1] + lin.c1, f1(points[1]), rtol=1e-12)  # f_1 at psi_1
    np.testing.assert_array_equal(lin.w[0], 0.0)  # the top has no parent
