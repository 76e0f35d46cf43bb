"""The fast chain: unrolled draws (core.sample) and the planned "identity" upward pass against the
sequential algorithms they replace, on fixed keys, in float64 (round-off) and float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import load_prior
from dts_ppl.agents import dts
from dts_ppl.core import inference as core
from dts_ppl.core import linalg
from dts_ppl.core.isotropic import isotropic_plan
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments.swissroll import MODELS_DIR
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior


def _reference_sample_one(key, prior, post):
    """core.sample's per-draw body before the fast chain: a rolled scan masking the top row."""
    k_lat, k_theta = jax.random.split(key)
    noise = jax.random.normal(k_lat, (prior.num_levels, prior.latent_dim), prior.cov1.dtype)

    def step(psi_parent, xs):
        (cond, is_top, link), z = xs
        loc = core.conditional_loc(cond, core.parent_means(prior, psi_parent, is_top, link))
        psi = loc + cond.scale_tril @ z
        return psi, psi

    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    _, psi = jax.lax.scan(step, top, (core.chain_scan_inputs(prior, post.latents), noise))
    loc = core.conditional_loc(post.theta, prior.link1(psi[-1]))
    z = jax.random.normal(k_theta, loc.shape, loc.dtype)
    theta = loc + jnp.einsum("kij,kj->ki", jnp.broadcast_to(post.theta.scale_tril, loc.shape + loc.shape[-1:]), z)
    return psi, theta


def _as(prior, dtype):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, prior)


@pytest.fixture(scope="module")
def swissroll():
    return load_prior(MODELS_DIR / "swissroll_L40.npz")[0]


def _priors(swissroll):
    key = jax.random.PRNGKey(0)
    return {
        "ddpm_L40": swissroll,
        "mlp_L3": random_mlp_prior(key, 2, num_levels=3, hidden=10),
        "linear_L4": random_linear_prior(key, 3, [3, 3, 3, 3]),
        "linear_L1": random_linear_prior(key, 3, [3]),
    }


def _evidence(kind, d, dtype):
    """Summed action evidence on u = f_1(psi_1): ordinary, rank one, none, and near-noiseless."""
    a = np.arange(1.0, d * d + 1).reshape(d, d) / d
    G = {"full": a @ a.T + np.eye(d), "rank1": np.outer(np.ones(d), np.ones(d)) * 4.0}
    G["zero"], G["huge"] = np.zeros((d, d)), 1e12 * G["full"]
    b = G[kind] @ np.linspace(-1.0, 1.0, d)
    return core.Message(jnp.asarray(G[kind], dtype), jnp.asarray(b, dtype))


def _posterior(prior, ev):
    """A chain of posterior conditionals (the recursion's, identity rule) with one action."""
    lat = core.latent_posteriors(prior, ev, core.linearise(prior, "identity"))
    return core.DTSPosterior(lat, core.prior_conditionals(prior, 2).theta)


# float64: slow (the same code path; float32 is the agents' dtype)
@pytest.mark.parametrize("dtype, tol", [pytest.param(jnp.float64, 1e-11, marks=pytest.mark.slow), (jnp.float32, 2e-5)])
def test_sample_equals_the_sequential_scan(swissroll, dtype, tol):
    keys = jax.random.split(jax.random.PRNGKey(7), 5)
    for name, prior in _priors(swissroll).items():
        prior = _as(prior, dtype)
        post = jax.jit(_posterior)(prior, _evidence("full", prior.dim, dtype))
        psi, theta = core.sample(jax.random.PRNGKey(7), prior, post, (5,))
        ref_psi, ref_theta = jax.jit(jax.vmap(_reference_sample_one, in_axes=(0, None, None)))(keys, prior, post)
        assert psi.dtype == dtype
        for a, b in ((psi, ref_psi), (theta, ref_theta)):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol * (1.0 + float(jnp.max(jnp.abs(b)))), err_msg=name)


def test_deep_chains_sample_through_the_rolled_scan(monkeypatch):
    prior = random_mlp_prior(jax.random.PRNGKey(1), 2, num_levels=5, hidden=4)
    post = core.prior_conditionals(prior, 1)
    unrolled = core.sample(jax.random.PRNGKey(3), prior, post, (3,))
    monkeypatch.setattr(core, "UNROLL_MAX_LEVELS", 2)  # read on every call (a static argument)
    rolled = core.sample(jax.random.PRNGKey(3), prior, post, (3,))
    for a, b in zip(unrolled, rolled, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_shared_link_leaves_are_the_ddpm_network(swissroll):
    """A DDPM's one network is flagged shared (its step embedding and coefficients are not); a
    traced prior, an MLP chain with per-level weights and a one-level prior flag nothing."""
    names = type(swissroll.links)._fields
    flags = dict(zip(names, core.shared_link_leaves(swissroll), strict=True))
    assert flags == dict(
        w_x=True,
        b_in=False,
        w2=True,
        b2=True,
        w3=True,
        b3=True,
        x_coef=False,
        eps_coef=False,
        out_scale=True,
        out_shift=True,
    )
    assert core.shared_link_leaves(swissroll) == core.shared_link_leaves(swissroll)  # cached per array
    mlp = random_mlp_prior(jax.random.PRNGKey(0), 2, num_levels=3, hidden=10)
    assert not any(core.shared_link_leaves(mlp))
    assert core.shared_link_leaves(random_linear_prior(jax.random.PRNGKey(0), 3, [3])) == ()
    traced = jax.jit(lambda p: jnp.asarray(any(core.shared_link_leaves(p))))(swissroll)
    assert not bool(traced)


# float64: slow (the same code path; float32 is the agents' dtype)
@pytest.mark.parametrize("dtype", [pytest.param(jnp.float64, marks=pytest.mark.slow), jnp.float32])
def test_shared_network_draws_equal_the_stacked_copies(swissroll, dtype):
    """Reading the DDPM's shared weights from one copy gives the stacked copies' draws (fixed keys),
    for single draws, a batch of draws and draws under vmap over keys (as simulate runs them)."""
    prior = _as(swissroll, dtype)
    post = jax.jit(_posterior)(prior, _evidence("full", prior.dim, dtype))
    shared = core.shared_link_leaves(prior)
    assert any(shared)
    stacked = (False,) * len(shared)
    for shape in ((), (3,)):
        got = core._sample(jax.random.PRNGKey(5), prior, post, shape, shared, True)
        want = core._sample(jax.random.PRNGKey(5), prior, post, shape, stacked, True)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 if dtype == jnp.float32 else 1e-12)
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    runs = jax.jit(jax.vmap(lambda k: core.sample(k, prior, post)[0]))(keys)
    want = jnp.stack([core._sample(k, prior, post, (), stacked, True)[0] for k in keys])
    np.testing.assert_allclose(runs, want, rtol=0, atol=1e-5 if dtype == jnp.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_planned_identity_pass_equals_the_recursion(swissroll, dtype):
    # float32: the two orders of the same Gaussian algebra differ by round-off of the prior's
    # precisions (up to ~1e4 at the bottom of the DDPM chain)
    tol = 1e-9 if dtype == jnp.float64 else 2e-4
    priors = _priors(swissroll)
    mlp = priors["mlp_L3"]
    priors["mlp_L3_anisotropic"] = mlp._replace(covs=jnp.broadcast_to(jnp.diag(jnp.array([1.0, 2.5])), mlp.covs.shape))
    for name in ("ddpm_L40", "mlp_L3", "mlp_L3_anisotropic"):
        prior = _as(priors[name], dtype)
        plan = core.upward_plan(prior, "identity")
        assert plan is not None
        reference = jax.jit(lambda ev, p=prior: core.latent_posteriors(p, ev, core.linearise(p, "identity")))
        unplanned = jax.jit(lambda ev, p=prior: core.upward_pass(p, ev, "identity"))
        planned = jax.jit(lambda ev, plan, p=prior: core.upward_pass(p, ev, "identity", plan=plan))
        # the plan a closure constant (as agents hold it): one eigenbasis for every level when its
        # whitenings and gains are multiples of the identity (the DDPM's isotropic levels)
        constant = jax.jit(lambda ev, p=prior, plan=plan: core.upward_pass(p, ev, "identity", plan=plan))
        assert core.scalar_plan(plan) == (name != "mlp_L3_anisotropic")
        for kind in ("full", "rank1", "zero", "huge"):
            ev = _evidence(kind, prior.dim, dtype)
            ref = reference(ev)
            for up in (unplanned(ev), planned(ev, plan), constant(ev)):
                assert int(up.passes) == 1 and bool(up.converged)
                for field, a, b in zip(ref._fields, up.latents, ref, strict=True):
                    assert a.dtype == dtype
                    scale = 1.0 + float(jnp.max(jnp.abs(b)))
                    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale, err_msg=f"{name} {kind} {field}")


def test_plan_applies_only_to_the_identity_rule_on_nonlinear_links(swissroll):
    mlp = random_mlp_prior(jax.random.PRNGKey(0), 2, num_levels=3, hidden=10)
    linear = random_linear_prior(jax.random.PRNGKey(0), 3, [3, 3, 3])
    assert core.upward_plan(swissroll) is not None  # a DDPM prior's default rule is "identity"
    assert core.upward_plan(mlp, "identity") is not None
    for prior, method in ((mlp, "jacobian"), (mlp, "iterated"), (linear, "identity"), (mlp, None)):
        assert core.upward_plan(prior, method) is None
    plan = core.upward_plan(mlp, "identity")
    ev = _evidence("full", 2, mlp.cov1.dtype)
    with pytest.raises(ValueError, match="plan"):
        core.upward_pass(mlp, ev, "jacobian", plan=plan)
    with pytest.raises(ValueError, match="linearisation"):
        core.upward_plan(mlp, "newton")


def test_dts_agent_on_a_ddpm_prior_keeps_the_recursions_latents(swissroll):
    """The agent (planned pass, unrolled draws) holds the latents the recursion gives its evidence."""
    prior = _as(swissroll, jnp.float32)
    agent = dts(prior, Gaussian(0.5), num_actions=4)
    state = agent.init()
    update, act = jax.jit(agent.update), jax.jit(agent.act)
    for t in range(6):
        x = jnp.asarray([np.cos(t), np.sin(t)], jnp.float32)
        a, _ = act(jax.random.PRNGKey(t), state, x)
        state = update(state, x, a, 0.3 * t)
    ref = core.latent_posteriors(prior, state.evidence_sum, core.linearise(prior, "identity"))
    for a, b in zip(state.latents, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4 * (1.0 + float(jnp.max(jnp.abs(b)))))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_jacobi_eigh_matches_lapack(n):
    """Small symmetric eigendecompositions (core.linalg.eigh): the spectrum LAPACK gives and an
    orthonormal V with V diag(lam) V^T = a, at every scale, for rank-deficient and diagonal input."""
    from dts_ppl.core.linalg import eigh

    rng = np.random.default_rng(n)
    b = rng.normal(size=(20, n, n))
    mats = [b @ np.swapaxes(b, -1, -2), b[:, :, :1] @ np.swapaxes(b[:, :, :1], -1, -2), np.eye(n)[None] * 3.0]
    mats.append(np.zeros((1, n, n)))
    for scale in (1.0, 1e12, 1e-12):
        for m in mats:
            a = jnp.asarray(m * scale)
            lam, V = eigh(a)
            top = float(np.max(np.abs(m * scale))) or 1.0
            np.testing.assert_allclose(np.sort(lam, -1), np.linalg.eigvalsh(m * scale), rtol=0, atol=1e-13 * top)
            np.testing.assert_allclose(np.swapaxes(V, -1, -2) @ V, np.broadcast_to(np.eye(n), V.shape), atol=1e-13)
            np.testing.assert_allclose(np.einsum("bij,bj,bkj->bik", V, lam, V), m * scale, rtol=0, atol=1e-13 * top)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_small_cholesky_and_triangular_inverse_match_lapack(n, monkeypatch):
    """The unrolled small-matrix Cholesky, triangular inverse and solve (core.linalg) against
    LAPACK at every scale; a matrix that is not PD gives the NaN factor jnp.linalg.cholesky gives."""
    from dts_ppl.core import linalg
    from dts_ppl.core.linalg import chol_solve, cholesky, tril_inv

    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", linalg.DEFAULT_SMALL_MAX_SIZE)  # conftest.py sets 0

    rng = np.random.default_rng(10 + n)
    b = rng.normal(size=(20, n, n))
    for scale in (1.0, 1e12, 1e-12):
        a = (b @ np.swapaxes(b, -1, -2) + 0.1 * np.eye(n)) * scale
        chol = cholesky(jnp.asarray(a))
        want = np.linalg.cholesky(a)
        np.testing.assert_allclose(chol, want, rtol=1e-10, atol=1e-13 * np.sqrt(scale))
        inv = tril_inv(chol)
        np.testing.assert_allclose(inv @ chol, np.broadcast_to(np.eye(n), a.shape), atol=1e-10)
        rhs = rng.normal(size=(20, n))
        np.testing.assert_allclose(
            chol_solve(chol, jnp.asarray(rhs)), np.linalg.solve(a, rhs[..., None])[..., 0], rtol=1e-8
        )
        rhs2 = rng.normal(size=(20, n, 2))
        np.testing.assert_allclose(chol_solve(chol, jnp.asarray(rhs2)), np.linalg.solve(a, rhs2), rtol=1e-8)
    bad = np.eye(n)
    bad[-1, -1] = -1.0
    for m in (bad, np.zeros((n, n)), np.full((n, n), np.nan)):
        np.testing.assert_array_equal(cholesky(jnp.asarray(m)), jnp.linalg.cholesky(jnp.asarray(m)))


@pytest.mark.parametrize("evidence_scale", [0.0, pytest.param(0.7, marks=pytest.mark.slow)])
def test_planned_pass_derivatives_equal_the_recursions(evidence_scale):
    # rank-one evidence (repeated eigenvalues; none at all at scale 0): the planned pass's
    # derivatives with respect to the evidence and to the prior's covariances equal those of the
    # recursion, which differentiates through condition's dense rule
    prior = random_mlp_prior(jax.random.PRNGKey(0), 3, 2, 8)
    x = jnp.array([1.0, 0.5, -0.3])

    def total(p, planned):
        s, c = p
        scaled = prior._replace(cov1=prior.cov1 * c, covs=prior.covs * c)
        ev = core.Message(s * jnp.outer(x, x), 2.0 * s * x)
        if planned:
            rows = core.planned_latent_posteriors(core.upward_plan(scaled, "identity"), ev)
        else:
            rows = core.latent_posteriors(scaled, ev, core.linearise(scaled, "identity"))
        return sum(jnp.sum(leaf) for leaf in rows)

    p = jnp.array([evidence_scale, 1.3])
    grad, value = jax.jit(jax.grad(total), static_argnums=1), jax.jit(total, static_argnums=1)  # one compile each
    got, want = grad(p, True), grad(p, False)
    assert bool(jnp.all(jnp.isfinite(got)))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    h = 1e-6  # one-sided in the evidence scale (negative evidence is not a likelihood)
    fd = (value(p + jnp.array([h, 0.0]), False) - value(p, False)) / h
    np.testing.assert_allclose(got[0], fd, rtol=1e-4)


def test_isotropic_pass_derivatives_equal_the_recursions(swissroll):
    # the elementwise pass of a concrete isotropic plan (core.isotropic) takes its derivatives from
    # the basis path: the gradient in the evidence equals the recursion's
    prior = _as(swissroll, jnp.float64)
    plan = core.upward_plan(prior)
    assert core.scalar_plan(plan)
    x = jnp.array([1.0, 0.5])

    def total(s, planned):
        ev = core.Message(s * jnp.outer(x, x) + 0.3 * s * jnp.eye(2), 2.0 * s * x)
        if planned:
            rows = core.planned_latent_posteriors(plan, ev)
        else:
            rows = core.latent_posteriors(prior, ev, core.linearise(prior, "identity"))
        return sum(jnp.sum(leaf) for leaf in rows)

    grad, value = jax.jit(jax.grad(total), static_argnums=1), jax.jit(total, static_argnums=1)  # one compile each
    for s in (0.0, 0.7):
        np.testing.assert_allclose(grad(s, True), grad(s, False), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(value(s, True), value(s, False), rtol=1e-10)


def test_isotropic_plan_reads_the_plans_scalars(swissroll):
    prior = _as(swissroll, jnp.float64)
    plan = core.upward_plan(prior)
    iplan = isotropic_plan(plan)
    np.testing.assert_allclose(iplan.reach_scale[:, None, None] * np.eye(2), plan.reach.chol, atol=1e-12)
    np.testing.assert_allclose(iplan.level_scale[:, None, None] * np.eye(2), plan.levels.chol, atol=1e-12)
    np.testing.assert_allclose(iplan.reach_gain[:, None, None] * np.eye(2), plan.reach_gain, atol=1e-12)


@pytest.mark.parametrize("shape_a, shape_b", [((2, 2), (2, 2)), ((5, 3, 2), (5, 2, 3)), ((4, 1, 3), (3, 3))])
def test_small_matmul_equals_matmul(shape_a, shape_b, monkeypatch):
    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", linalg.DEFAULT_SMALL_MAX_SIZE)
    rng = np.random.default_rng(0)
    a, b = jnp.asarray(rng.normal(size=shape_a)), jnp.asarray(rng.normal(size=shape_b))
    np.testing.assert_allclose(linalg.small_matmul(a, b), a @ b, rtol=1e-13, atol=1e-14)
    v = jnp.asarray(rng.normal(size=shape_a[-1:]))
    np.testing.assert_allclose(linalg.small_matvec(a, v), a @ v, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype, tol", [(jnp.float64, 1e-12), (jnp.float32, 2e-6)])
def test_ddpm_link_equals_the_network_formula(swissroll, dtype, tol):
    # DDPMLink routes x through the first product as identity columns: against the formula in numpy
    prior = _as(swissroll, dtype)
    x = np.random.default_rng(0).normal(size=(7, prior.dim)) * 2.0
    rows = [jax.tree.map(lambda a, i=i: a[i], prior.links) for i in (0, 20, prior.num_levels - 2)]
    for link in [prior.link1, *rows]:
        p = {k: np.asarray(v, np.float64) for k, v in link._asdict().items()}
        h = np.maximum(x @ p["w_x"].T + p["b_in"], 0.0)
        eps = np.maximum(h @ p["w2"].T + p["b2"], 0.0) @ p["w3"].T + p["b3"]
        ref = p["out_shift"] + p["out_scale"] * (p["x_coef"] * x - p["eps_coef"] * eps)
        out = jax.jit(jax.vmap(link))(jnp.asarray(x, dtype))
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=0, atol=tol * (1.0 + np.max(np.abs(ref))))
        # the identity columns copy x exactly
        hidden = link.w_x.shape[0]
        both = jnp.asarray(x, dtype) @ jnp.concatenate([link.w_x.T, jnp.eye(prior.dim, dtype=dtype)], 1)
        np.testing.assert_array_equal(both[:, hidden:], jnp.asarray(x, dtype))
