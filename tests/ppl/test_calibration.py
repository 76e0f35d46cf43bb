"""Prior draws (core.sample_prior), the fitted-Gaussian baseline and the calibrated S_1 of a DDPM prior."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mc import Z, assert_cov_within_mc, assert_mean_within_mc

from dts_ppl import (
    GaussianPrior,
    action_cov_calibration,
    calibrate_action_cov,
    load_prior,
    sample_prior,
    save_prior,
    train_diffusion_prior,
    with_action_cov,
)
from dts_ppl.agents import theta_marginal
from dts_ppl.core import inference as core
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior


def ring(num_samples, seed, num_clusters=8, radius=2.0, sd=0.15):
    """A non-Gaussian 2-d data set: a ring of ``num_clusters`` Gaussian clusters."""
    rng = np.random.default_rng(seed)
    ang = 2 * np.pi * rng.integers(0, num_clusters, num_samples) / num_clusters
    return radius * np.stack([np.cos(ang), np.sin(ang)], 1) + sd * rng.normal(size=(num_samples, 2))


def relative_frobenius(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


# ----------------------------------------------------------------------------- sample_prior


def test_sample_prior_matches_the_exact_linear_prior():
    prior = random_linear_prior(jax.random.PRNGKey(0), 3, (3, 2))
    n = 40_000
    psi, theta = sample_prior(jax.random.PRNGKey(1), prior, n, num_actions=2)
    assert psi.shape == (n, 2, 3) and theta.shape == (n, 2, 3)
    exact = theta_marginal(prior)  # closed form for affine links (core.moments)
    var = np.diag(exact.cov)
    for a in range(2):
        assert_mean_within_mc(theta[:, a], exact.mean, var, f"theta_{a} mean")
        assert_cov_within_mc(theta[:, a], theta[:, a], exact.cov, var, var, f"theta_{a} covariance")
    # the two actions share the chain: Cov(theta_1, theta_2) = loading Cov(psi_1) loading^T
    mo = core.moments(prior, core.prior_conditionals(prior, 2))
    assert_cov_within_mc(theta[:, 0], theta[:, 1], mo.theta_cross_cov(0, 1), var, var, "Cov(theta_1, theta_2)")
    # psi_1 (the last row, sampling order) has the exact latent marginal
    lat_var = np.diag(mo.psi_cov[-1])
    assert_mean_within_mc(psi[:, -1], mo.psi_mean[-1], lat_var, "psi_1 mean")
    assert_cov_within_mc(psi[:, -1], psi[:, -1], mo.psi_cov[-1], lat_var, lat_var, "psi_1 covariance")


def test_sample_prior_errors():
    prior = random_mlp_prior(jax.random.PRNGKey(0), 2, 2, 4)
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="num_samples"):
            sample_prior(jax.random.PRNGKey(0), prior, bad)
    with pytest.raises(ValueError, match="num_actions"):
        sample_prior(jax.random.PRNGKey(0), prior, 10, num_actions=0)
    with pytest.raises(ValueError, match="prior"):
        sample_prior(jax.random.PRNGKey(0), GaussianPrior(jnp.zeros(2), jnp.eye(2)), 10)


# --------------------------------------------------------------------------- GaussianPrior.fit


def test_gaussian_prior_fit():
    x = np.random.default_rng(0).normal(size=(50, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.1]])
    g = GaussianPrior.fit(x, jitter=0.0)
    np.testing.assert_allclose(g.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(g.cov, np.cov(x.T), rtol=1e-12)
    gj = GaussianPrior.fit(x, jitter=1e-3)
    np.testing.assert_allclose(gj.cov - g.cov, 1e-3 * np.mean(np.diag(np.cov(x.T))) * np.eye(3), atol=1e-14)
    assert GaussianPrior.fit(x, dtype=jnp.float32).cov.dtype == jnp.float32
    # N <= d: singular sample covariance, made positive definite by the jitter
    assert np.linalg.eigvalsh(np.asarray(GaussianPrior.fit(x[:2], jitter=1e-6).cov)).min() > 0


def test_gaussian_prior_fit_errors():
    with pytest.raises(ValueError, match="samples: expected at least 2 samples"):
        GaussianPrior.fit(np.ones((1, 3)))
    with pytest.raises(ValueError, match="samples: contains NaN"):
        GaussianPrior.fit(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="samples: expected a 2-d array"):
        GaussianPrior.fit(np.ones(5))
    with pytest.raises(ValueError, match="samples: expected a 2-d array"):
        GaussianPrior.fit(np.ones((4, 2, 2)))
    for bad in (-1.0, float("inf"), "small", True):
        with pytest.raises(ValueError, match="jitter"):
            GaussianPrior.fit(np.eye(3), jitter=bad)


# ------------------------------------------------------------------------ calibrate_action_cov


def test_calibration_on_a_linear_prior_matches_the_oracle():
    """S_1 = Cov(samples) - Cov(f_1(psi_1)); for affine links Cov(f_1(psi_1)) is exact (core.moments)."""
    prior = random_linear_prior(jax.random.PRNGKey(2), 2, (2, 2), scale=0.3)
    exact = theta_marginal(prior)
    link_cov = np.asarray(exact.cov - prior.cov1)  # W_1 Cov(psi_1) W_1^T
    target = link_cov + np.array([[2.0, 0.6], [0.6, 1.0]])  # data wider than the chain: no clipping
    x = np.random.default_rng(3).multivariate_normal(np.zeros(2), target, size=5000)
    n_draws = 40_000
    cal = action_cov_calibration(prior, x, jax.random.PRNGKey(4), num_draws=n_draws)
    assert cal.num_clipped == 0
    np.testing.assert_allclose(cal.data_cov, np.cov(x.T), rtol=1e-12)
    # Cov_MC(f_1(psi_1)) vs exact, within its Monte-Carlo standard error
    se = np.sqrt((np.outer(np.diag(link_cov), np.diag(link_cov)) + link_cov**2) / n_draws)
    assert np.max(np.abs(cal.link_cov - link_cov) / se) < Z
    assert np.max(np.abs(cal.cov1 - (np.cov(x.T) - link_cov)) / se) < Z
    # the calibrated prior's exact marginal is the samples' covariance (same MC error)
    calibrated = calibrate_action_cov(prior, x, jax.random.PRNGKey(4), num_draws=n_draws)
    np.testing.assert_array_equal(calibrated.cov1, jnp.asarray(cal.cov1))
    assert np.max(np.abs(theta_marginal(calibrated).cov - np.cov(x.T)) / se) < Z


def test_calibration_clips_to_the_floor():
    prior = random_linear_prior(jax.random.PRNGKey(2), 2, (2, 2))
    x = 0.01 * np.random.default_rng(0).normal(size=(500, 2))  # far narrower than f_1(psi_1)
    cal = action_cov_calibration(prior, x, jax.random.PRNGKey(0), num_draws=2000, floor=0.05)
    assert cal.num_clipped == 2 and np.all(cal.eigenvalues < 0)
    scale = np.sqrt(np.diag(np.cov(x.T)))
    np.testing.assert_allclose(np.linalg.eigvalsh(cal.cov1 / np.outer(scale, scale)), [0.05, 0.05], rtol=1e-10)


def test_calibration_errors():
    prior = random_linear_prior(jax.random.PRNGKey(0), 2, (2,))
    x = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match="samples: expected shape"):
        calibrate_action_cov(prior, np.ones((10, 3)))
    with pytest.raises(ValueError, match="samples: coordinate 1 is constant"):
        calibrate_action_cov(prior, np.c_[x[:, 0], np.ones(100)])
    with pytest.raises(ValueError, match="samples: contains NaN"):
        calibrate_action_cov(prior, np.r_[x, [[np.nan, 0.0]]])
    with pytest.raises(ValueError, match="floor"):
        calibrate_action_cov(prior, x, floor=0.0)
    with pytest.raises(ValueError, match="num_draws"):
        calibrate_action_cov(prior, x, num_draws=1)
    with pytest.raises(ValueError, match="prior"):
        calibrate_action_cov(GaussianPrior(jnp.zeros(2), jnp.eye(2)), x)


# ------------------------------------------------- the trained DDPM prior on a non-Gaussian ring


@pytest.fixture(scope="module")
def ring_prior():
    x = ring(2000, seed=0)
    return x, train_diffusion_prior(x, num_levels=10, hidden=32, steps=1500, key=jax.random.PRNGKey(0), progress=False)


def marginal_error(prior, x, key, num_draws=40_000, num_batches=10):
    """Relative Frobenius error of the prior's theta_1 covariance against Cov(x), and its MC s.e.

    The s.e. comes from ``num_batches`` independent batches of draws (batch means).
    """
    _, theta = sample_prior(key, prior, num_draws)
    theta = np.asarray(theta[:, 0])
    full = relative_frobenius(np.cov(theta.T), np.cov(x.T))
    per_batch = [relative_frobenius(np.cov(b.T), np.cov(x.T)) for b in np.split(theta, num_batches)]
    return full, float(np.std(per_batch, ddof=1) / np.sqrt(num_batches))


def test_calibrated_ddpm_prior_matches_the_data_covariance(ring_prior):
    """Must-show: within 15% (relative Frobenius) with the "marginal" rule; the old S_1 = I fails."""
    x, tr = ring_prior
    meta = tr.metadata
    assert meta["action_cov"] == "marginal" and meta["action_cov_calibration"]["num_draws"] == 20_000
    assert meta["action_cov_calibration"]["floor"] == pytest.approx(meta["betas"][0])
    err, se = marginal_error(tr.prior, x, jax.random.PRNGKey(11))  # independent of the calibration draws
    assert se < 0.015  # MC error << the 15% target
    assert err < 0.15, f"calibrated prior: relative Frobenius error {err:.3f} (MC s.e. {se:.3f})"
    old, _ = with_action_cov(tr.prior, meta, 1.0)
    old_err, old_se = marginal_error(old, x, jax.random.PRNGKey(11))
    assert old_err > 0.15 + Z * old_se, f"old default S_1 = I: {old_err:.3f} (MC s.e. {old_se:.3f})"
    print(f"\nring: calibrated {err:.4f} +- {se:.4f}, old action_cov=1.0 {old_err:.4f} +- {old_se:.4f}")


def test_with_action_cov_and_metadata_round_trip(ring_prior, tmp_path):
    x, tr = ring_prior
    meta = tr.metadata
    scale = np.asarray(meta["standardisation"]["scale"])
    beta_prior, beta_meta = with_action_cov(tr.prior, meta, "beta")
    np.testing.assert_allclose(beta_prior.cov1, meta["betas"][0] * np.diag(scale**2), rtol=1e-12)
    arr_prior, arr_meta = with_action_cov(tr.prior, meta, np.array([0.5, 0.25]))
    np.testing.assert_allclose(arr_prior.cov1, np.diag([0.5, 0.25] * scale**2), rtol=1e-12)
    assert arr_meta["action_cov"] == [0.5, 0.25] and beta_meta["action_cov"] == "beta"
    assert beta_prior.links is tr.prior.links and beta_prior.link1 is tr.prior.link1  # no retraining
    json.dumps(arr_meta)
    save_prior(tmp_path / "p.npz", arr_prior, arr_meta)
    loaded, loaded_meta = load_prior(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded.cov1, arr_prior.cov1)
    assert loaded_meta == arr_meta
    # back to the calibrated S_1 from the samples, without retraining
    again = calibrate_action_cov(loaded, x, jax.random.fold_in(jax.random.PRNGKey(0), 1), floor=meta["betas"][0])
    np.testing.assert_allclose(again.cov1, tr.prior.cov1, rtol=1e-6)
    with pytest.raises(ValueError, match="action_cov: 'marginal' needs the training samples"):
        with_action_cov(tr.prior, meta, "marginal")
    with pytest.raises(ValueError, match="metadata"):
        with_action_cov(tr.prior, {}, 1.0)
    with pytest.raises(ValueError, match="action_cov"):
        with_action_cov(tr.prior, meta, -1.0)
    with pytest.raises(ValueError, match="action_cov"):
        train_diffusion_prior(x, steps=1, action_cov="marginl", progress=False)
    with pytest.raises(ValueError, match="calibration_draws"):
        train_diffusion_prior(x, steps=1, calibration_draws=0, progress=False)


def test_old_default_is_reachable_at_training(ring_prior):
    x, tr = ring_prior
    old = train_diffusion_prior(x, num_levels=10, hidden=32, steps=100, action_cov=1.0, progress=False)
    np.testing.assert_allclose(old.prior.cov1, np.diag(x.std(0) ** 2), rtol=1e-12)
    assert old.metadata["action_cov"] == 1.0 and "action_cov_calibration" not in old.metadata
