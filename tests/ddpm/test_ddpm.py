"""DDPM-trained diffusion priors (docs/math.md section 5) and their save / load."""

import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import BanditModel, DDPMLink, DTSGuide, load_prior, save_prior, train_diffusion_prior, with_action_cov
from dts_ppl.ddpm import build_prior, level_variances, noise_schedule
from dts_ppl.io.serialization import FORMAT_VERSION


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)) * np.array([3.0, 0.5]) + np.array([10.0, -2.0])
    return x, train_diffusion_prior(x, num_levels=5, hidden=16, steps=100, key=jax.random.PRNGKey(1), progress=False)


def test_schedules():
    for name in ("cosine", "linear"):
        betas = noise_schedule(name, 40)
        assert betas.shape == (40,) and np.all(betas > 0) and np.all(betas <= 0.5)
        assert np.all(np.diff(betas) >= 0)  # variances increase with the level (the paper)
    betas = noise_schedule("cosine", 10)
    tilde = level_variances(betas, "betatilde")
    assert tilde[0] == 0 and np.all(tilde[1:] < betas[1:])
    with pytest.raises(ValueError, match="schedule"):
        noise_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="schedule"):
        noise_schedule([0.1, 1.2], 2)


def test_trained_prior_structure(trained, tmp_path):
    x, tr = trained
    prior = tr.prior
    assert (prior.num_levels, prior.dim, prior.latent_dim) == (5, 2, 2)
    assert isinstance(prior.link1, DDPMLink) and isinstance(prior.links, DDPMLink)
    assert not prior.is_linear
    assert tr.losses.shape == (100,) and np.all(np.isfinite(tr.losses))
    assert tr.losses[-20:].mean() < tr.losses[:5].mean()  # it learned something
    tr.plot_losses(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0
    meta = tr.metadata
    np.testing.assert_allclose(meta["standardisation"]["mean"], x.mean(0))
    np.testing.assert_allclose(meta["standardisation"]["scale"], x.std(0))
    # Covariances follow the schedule: S_l = beta_l I (l = 2..L), S_{L+1} = I; S_1 by the "marginal"
    # rule (tests/ppl/test_calibration.py), recorded in the metadata; the old S_1 = diag(scale)^2 (s = 1)
    # stays reachable without retraining.
    betas = np.asarray(meta["betas"])
    np.testing.assert_allclose(np.diagonal(prior.covs, 0, 1, 2)[:-1], betas[1:, None] * np.ones(2), rtol=1e-12)
    np.testing.assert_allclose(prior.covs[-1], np.eye(2))
    assert meta["action_cov"] == "marginal" and meta["action_cov_rule"].startswith("marginal")
    np.testing.assert_allclose(prior.cov1, np.asarray(meta["cov1"]), rtol=1e-12)
    old, old_meta = with_action_cov(prior, meta, 1.0)
    np.testing.assert_allclose(old.cov1, np.diag(x.std(0) ** 2), rtol=1e-12)
    assert old_meta["action_cov"] == 1.0 and "action_cov_calibration" not in old_meta


def test_ddpm_link_is_the_reverse_mean_formula(trained):
    x, tr = trained
    betas = np.asarray(tr.metadata["betas"])
    alphas, abar = 1 - betas, np.cumprod(1 - betas)
    mean, scale = x.mean(0), x.std(0)
    from dts_ppl.ddpm import eps_net, step_embedding

    point = jnp.array([0.3, -1.2])
    for level in (1, 3):
        eps = eps_net(tr.params, point.astype(jnp.float32), step_embedding(level)).astype(jnp.float64)
        want = (point - betas[level - 1] / np.sqrt(1 - abar[level - 1]) * eps) / np.sqrt(alphas[level - 1])
        if level == 1:
            want = mean + scale * want
        np.testing.assert_allclose(tr.prior.link(level)(point), want, rtol=1e-5)
    # identity linearisation: the paper's W = I in standardised units (de-standardisation for f_1)
    w, c = tr.prior.link(1).linearise(point, "identity")
    np.testing.assert_allclose(w, np.diag(scale)) and np.testing.assert_allclose(c, mean)
    w, c = tr.prior.link(2).linearise(point, "identity")
    np.testing.assert_array_equal(w, np.eye(2)) and np.testing.assert_array_equal(c, np.zeros(2))


def test_action_cov_choice(trained):
    x, tr = trained
    st = tr.metadata["standardisation"]
    args = (tr.params, tr.metadata["betas"], np.array(st["mean"]), np.array(st["scale"]))
    beta1 = tr.metadata["betas"][0]
    np.testing.assert_allclose(build_prior(*args, action_cov="beta").cov1, beta1 * np.diag(x.std(0) ** 2))
    np.testing.assert_allclose(build_prior(*args, action_cov=0.2).cov1, 0.2 * np.diag(x.std(0) ** 2))
    with pytest.raises(ValueError, match="action_cov"):
        build_prior(*args, action_cov="betatilde")
    with pytest.raises(ValueError, match="action_cov"):
        build_prior(*args, action_cov=-1.0)


def test_bad_training_input():
    with pytest.raises(ValueError, match="samples"):
        train_diffusion_prior(np.ones((10, 2)), steps=1, progress=False)  # constant columns
    with pytest.raises(ValueError, match="samples"):
        train_diffusion_prior(np.array([[0.0, np.nan], [1.0, 2.0]]), steps=1, progress=False)
    with pytest.raises(ValueError, match="samples"):
        train_diffusion_prior(np.ones(10), steps=1, progress=False)
    with pytest.raises(ValueError, match="variance"):
        train_diffusion_prior(np.random.default_rng(0).normal(size=(10, 2)), variance="sigma", progress=False)


def test_guide_runs_on_a_trained_prior_with_every_linearisation(trained):
    _, tr = trained
    model = BanditModel(tr.prior, num_actions=3)
    X = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (12, 2)))
    A = jnp.arange(12) % 3
    y = X @ jnp.array([10.0, -2.0])
    for lin in ("identity",):  # "iterated" (which starts from "jacobian") runs in the save/load test
        guide = DTSGuide(model, linearisation=lin)
        draws = guide.sample_posterior(jax.random.PRNGKey(0), guide.fit(X, A, y), sample_shape=(50,))
        assert draws["theta"].shape == (50, 3, 2) and bool(jnp.all(jnp.isfinite(draws["theta"])))


def test_save_load_is_bit_identical(trained, tmp_path):
    _, tr = trained
    path = tmp_path / "prior.npz"
    save_prior(path, tr.prior, tr.metadata)
    loaded, meta = load_prior(path)
    assert meta == tr.metadata
    for a, b in zip(jax.tree.leaves(tr.prior), jax.tree.leaves(loaded), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    X = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (8, 2)))
    A, y = jnp.arange(8) % 4, jnp.linspace(-1.0, 1.0, 8)
    key = jax.random.PRNGKey(7)
    g1 = DTSGuide(BanditModel(tr.prior, 4), linearisation="iterated")
    g2 = DTSGuide(BanditModel(loaded, 4), linearisation="iterated")
    d1 = g1.sample_posterior(key, g1.fit(X, A, y), sample_shape=(20,))
    d2 = g2.sample_posterior(key, g2.fit(X, A, y), sample_shape=(20,))
    np.testing.assert_array_equal(d1["theta"], d2["theta"])
    np.testing.assert_array_equal(d1["psi"], d2["psi"])
    # the shared network weights are stored once: file much smaller than L copies
    assert os.path.getsize(path) < 4 * 16 * 16 * 8 + 20_000


def test_corrupt_or_foreign_files_raise(trained, tmp_path):
    _, tr = trained
    path = tmp_path / "prior.npz"
    save_prior(path, tr.prior, tr.metadata)
    raw = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_prior(tmp_path / "truncated.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable dts_ppl prior file"):
        load_prior(tmp_path / "text.npz")
    with pytest.raises(ValueError, match="no such prior file"):
        load_prior(tmp_path / "missing.npz")
    # rewrite one array (valid zip, wrong content) -> checksum
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["cov1"] = arrays["cov1"] * 2
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="SHA-256"):
        load_prior(tmp_path / "tampered.npz")
    # another format version
    import json

    header = json.loads(arrays["__meta__"].tobytes().decode())
    header["format_version"] = FORMAT_VERSION + 1
    arrays["cov1"] = arrays["cov1"] / 2
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="format version"):
        load_prior(tmp_path / "future.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a dts_ppl prior file"):
        load_prior(tmp_path / "plain.npz")
    assert zipfile.is_zipfile(path)


def test_save_load_linear_and_mlp_priors(tmp_path):
    from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior

    for i, prior in enumerate(
        [random_linear_prior(jax.random.PRNGKey(0), 3, (3, 2)), random_mlp_prior(jax.random.PRNGKey(1), 3, 2, 4)]
    ):
        save_prior(tmp_path / f"p{i}.npz", prior)
        loaded, meta = load_prior(tmp_path / f"p{i}.npz")
        assert meta == {} and type(loaded.link1) is type(prior.link1)
        for a, b in zip(jax.tree.leaves(prior), jax.tree.leaves(loaded), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
