"""The Bayes regret bound (dts_ppl.analysis.theory) against hand-computed values and a simulation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import agents as ag
from dts_ppl.analysis import theory
from dts_ppl.bandits.envs import diffusion_environment
from dts_ppl.bandits.simulation import simulate
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.experiments.paper_extra import normalised_linear_prior, sphere_contexts
from dts_ppl.experiments.synthetic import random_linear_prior


def test_theorem_terms_match_a_hand_computation_for_unit_variances():
    prior = random_linear_prior(jax.random.PRNGKey(0), 5, (5, 2))
    n = 5000
    t = theory.regret_bound(prior, 100, n)
    r_act = 5 * 100 * math.log(1 + n / 5) / math.log(2)  # c_0 = 1 / log 2
    # c_l = sigma_MAX^{2l} / log 2 with sigma_MAX^2 = 2, times d log(1 + 1) = d log 2
    r_lat = [5 * 2.0, 5 * 4.0]
    assert t.r_act[0] == pytest.approx(r_act, rel=1e-12)
    np.testing.assert_allclose(t.r_lat, r_lat, rtol=1e-12)
    assert t.bound[0] == pytest.approx(math.sqrt(2 * n * (r_act + 30) * math.log(n)), rel=1e-12)
    sparse = theory.regret_bound(prior, 100, n, sparse=True)  # d_2 = 2 active columns
    np.testing.assert_allclose(sparse.r_lat, [10.0, 4 * 2.0], rtol=1e-12)
    assert sparse.bound[0] < t.bound[0]


def test_unequal_variances_and_the_proof_form():
    s2, noise = [0.5, 2.0, 3.0], 4.0
    t = theory.bound_terms(s2, [3, 1], 3, 7, [10.0, 100.0], noise_var=noise, delta=0.1, max_gap=2.0, form="proof")
    smax = max(1 + s / noise for s in s2)
    r_act = [s2[0] / math.log(1 + s2[0] / noise) * 3 * 7 * math.log(1 + n * s2[0] / (3 * noise)) for n in (10, 100)]
    c1 = s2[1] * smax / math.log(1 + s2[1] / noise)
    c2 = s2[2] * smax**2 / math.log(1 + s2[2] / noise)
    r_lat = [c1 * 3 * math.log(1 + s2[1] / s2[0]), c2 * 1 * math.log(1 + s2[2] / s2[1])]
    np.testing.assert_allclose(t.r_act, r_act, rtol=1e-12)
    np.testing.assert_allclose(t.r_lat, r_lat, rtol=1e-12)
    want = [
        math.sqrt(2 * n * (ra + sum(r_lat)) * math.log(10)) + 2.0 * n * 0.1
        for n, ra in zip((10, 100), r_act, strict=True)
    ]
    np.testing.assert_allclose(t.bound, want, rtol=1e-12)
    printed = theory.bound_terms(s2, [3, 1], 3, 7, [10.0, 100.0], noise_var=noise, delta=0.1, max_gap=2.0)
    assert not np.allclose(printed.bound, t.bound)  # sigma^2 != 1: the two forms differ
    same = [theory.bound_terms(s2, [3, 1], 3, 7, 50, noise_var=1.0, form=f).bound for f in ("printed", "proof")]
    np.testing.assert_allclose(*same, rtol=1e-12)


def test_lints_bound_is_the_act_term_with_the_largest_marginal_variance():
    cov = jnp.diag(jnp.array([3.0, 1.0]))
    t = theory.lints_bound(cov, 10, 200)
    r = 3.0 / math.log(4.0) * 2 * 10 * math.log(1 + 200 * 3.0 / 2)
    assert t.r_act[0] == pytest.approx(r, rel=1e-12)
    assert t.bound[0] == pytest.approx(math.sqrt(2 * 200 * r * math.log(200)), rel=1e-12)


def test_bad_inputs_raise():
    prior = random_linear_prior(jax.random.PRNGKey(0), 3, (3,))
    with pytest.raises(ValueError, match="num_actions"):
        theory.regret_bound(prior, 0, 10)
    with pytest.raises(ValueError, match="num_rounds"):
        theory.regret_bound(prior, 3, 0)
    with pytest.raises(ValueError, match="delta"):
        theory.regret_bound(prior, 3, 10, delta=1.5)
    with pytest.raises(ValueError, match="form"):
        theory.regret_bound(prior, 3, 10, form="x")
    full = DiffusionPrior.linear([jnp.eye(2)], [jnp.array([[1.0, 0.5], [0.5, 1.0]]), 1.0])
    with pytest.raises(ValueError, match="isotropic"):
        theory.regret_bound(full, 3, 10)
    with pytest.raises(ValueError, match="active_dims"):
        theory.bound_terms([1.0, 1.0], [4], 3, 2, 10)


def test_measured_regret_stays_below_the_bound_when_its_assumptions_hold():
    """||x|| = 1, lambda_1(W^T W) = 1, S_l = I: dTS's mean regret (+3 s.e.) is below Theorem E.1."""
    prior = normalised_linear_prior(jax.random.PRNGKey(1), 4, 2)
    np.testing.assert_allclose(theory.assumptions(prior)["lambda_max"], [1.0, 1.0], rtol=1e-9)
    env = diffusion_environment(prior, 30, Gaussian(1.0), contexts=sphere_contexts(4))
    res = simulate(jax.random.PRNGKey(2), env, ag.dts(prior, Gaussian(1.0), 30), 200, 10, progress=False)
    bound = theory.regret_bound(prior, 30, np.arange(2, 201)).bound
    assert np.all(res.mean[1:] + 3 * res.se[1:] <= bound)
    assert res.final_mean > 0.05 * bound[-1]  # the comparison is not vacuous: regret is of the bound's order
