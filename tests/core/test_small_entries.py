"""The entry-by-entry small-matrix paths of the dTS round (core.linalg's entry lists, the
condition written entry by entry, the guard's finiteness check) and the unrolled paths up to
UNROLLED_OPTION (8 x 8, the option for d 4 .. 8; d = 5: the MovieLens prior's size) against LAPACK,
the matrix formulas and the float64 joint-Gaussian oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl.agents import dts
from dts_ppl.core import inference as core
from dts_ppl.core import linalg
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.rows import Row, all_finite

#: The largest unrolled size the package documents (``core.linalg.SMALL_MAX_SIZE = 8``, for d 4 .. 8).
UNROLLED_OPTION = 8


def _spd(rng, n, scale=1.0):
    b = rng.normal(size=(n, n))
    return (b @ b.T + 0.3 * np.eye(n)) * scale


def _evidence(rng, n, kind):
    """G (n, n), b (n,): full rank, rank one, none and near-noiseless (float32's G ~ 1e12)."""
    G = {"full": _spd(rng, n), "rank1": 4.0 * np.outer(np.ones(n), np.ones(n)), "zero": np.zeros((n, n))}
    G["huge"] = 1e12 * G["full"]
    return G[kind], G[kind] @ np.linspace(-1.0, 1.0, n)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["full", "rank1", "zero", "huge"])
def test_condition_by_entries_equals_the_matrix_condition_and_the_dense_formula(n, kind, monkeypatch):
    rng = np.random.default_rng(n)
    Q = jnp.asarray(_spd(rng, n, 2.0))
    G, b = (jnp.asarray(x) for x in _evidence(rng, n, kind))
    white = core.whiten(Q)
    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", linalg.DEFAULT_SMALL_MAX_SIZE)
    entries = core._condition_entries(white, G, b)
    assert jax.tree.map(jnp.shape, entries) == jax.tree.map(jnp.shape, core.condition_whitened(white, G, b))
    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", 0)  # the matrix formulas (eigh, products)
    matrix = core.condition_whitened(white, G, b)
    dense = core._condition_dense(Q, G, b)  # through a Cholesky factor of P = Q + G
    for a, m, ref in zip(jax.tree.leaves(entries), jax.tree.leaves(matrix), jax.tree.leaves(dense), strict=True):
        scale = 1.0 + float(jnp.max(jnp.abs(m)))
        np.testing.assert_allclose(a, m, rtol=0, atol=1e-10 * scale)
        if kind != "huge":  # the dense formula loses digits there (P ~ 1e12); the eigen-forms do not
            np.testing.assert_allclose(a, ref, rtol=0, atol=1e-8 * scale)


def test_condition_by_entries_batches_and_is_what_condition_runs(monkeypatch):
    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", linalg.DEFAULT_SMALL_MAX_SIZE)
    jax.clear_caches()
    rng = np.random.default_rng(0)
    Q = jnp.asarray(_spd(rng, 2))
    G = jnp.asarray(np.stack([_spd(rng, 2) for _ in range(4)]))
    b = jnp.asarray(rng.normal(size=(4, 2)))
    batched = jax.vmap(core.condition, in_axes=(None, 0, 0))(Q, G, b)
    for i in range(4):
        one = core._condition_entries(core.whiten(Q), G[i], b[i])
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(one), strict=True):
            np.testing.assert_allclose(x[i], y, rtol=1e-12, atol=1e-12)
    # the posterior of a Gaussian prior x ~ N(0, Q^-1) with evidence (G, b): P^-1 and P^-1 b
    cond, _ = core.condition(Q, G[0], b[0])
    P = np.asarray(Q) + np.asarray(G[0])
    np.testing.assert_allclose(cond.scale_tril @ cond.scale_tril.T, np.linalg.inv(P), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cond.shift, np.linalg.solve(P, np.asarray(b[0])), rtol=1e-9, atol=1e-12)


def test_jacobi_and_cholesky_entries_equal_lapack():
    rng = np.random.default_rng(3)
    for n in (2, 3):
        a = jnp.asarray(np.stack([_spd(rng, n) for _ in range(5)]))
        lam, V = linalg.jacobi_entries(linalg.entries(a), a.dtype)
        lam, V = jnp.stack(lam, -1), linalg.from_entries(V)
        np.testing.assert_allclose(jnp.sort(lam, -1), np.linalg.eigvalsh(np.asarray(a)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(V @ (lam[..., None] * jnp.swapaxes(V, -1, -2)), a, atol=1e-12)
        chol = linalg.psd_cholesky_entries(linalg.entries(a))
        np.testing.assert_allclose(chol, jnp.linalg.cholesky(a), rtol=1e-7, atol=1e-12)  # the jitter: ~eps
    bad = jnp.asarray([[1.0, 2.0], [2.0, 1.0]])  # not PD: NaN in the lower triangle, as LAPACK
    assert np.isnan(np.asarray(linalg.psd_cholesky_entries(linalg.entries(bad)))[np.tril_indices(2)]).all()


@pytest.mark.parametrize("n", [4, 5, 8])
def test_unrolled_paths_up_to_eight_equal_lapack(n, monkeypatch):
    monkeypatch.setattr(linalg, "SMALL_MAX_SIZE", UNROLLED_OPTION)
    assert n <= linalg.SMALL_MAX_SIZE
    rng = np.random.default_rng(n)
    a = jnp.asarray(np.stack([_spd(rng, n) for _ in range(6)]))
    np.testing.assert_allclose(linalg.cholesky(a), np.linalg.cholesky(np.asarray(a)), rtol=1e-10, atol=1e-12)
    chol = linalg.cholesky(a)
    np.testing.assert_allclose(linalg.tril_inv(chol), np.linalg.inv(np.asarray(chol)), rtol=1e-9, atol=1e-10)
    rhs = jnp.asarray(rng.normal(size=(6, n)))
    np.testing.assert_allclose(linalg.chol_solve(chol, rhs), np.linalg.solve(np.asarray(a), rhs[..., None])[..., 0])
    b = jnp.asarray(rng.normal(size=(6, n, n)))
    np.testing.assert_allclose(linalg.small_matmul(a, b), np.asarray(a) @ np.asarray(b), rtol=1e-12, atol=1e-12)


def test_all_finite_sees_every_leaf():
    good = {"a": jnp.ones((3, 2)), "r": Row(jnp.int32(1), jnp.ones(2, jnp.float32)), "i": jnp.arange(3)}
    assert bool(all_finite(good))
    for bad in (np.nan, np.inf, -np.inf):
        for path in ("a", "r"):
            tree = dict(good)
            if path == "a":
                tree["a"] = good["a"].at[2, 1].set(bad)
            else:
                tree["r"] = Row(jnp.int32(1), good["r"].value.at[0].set(bad))
            assert not bool(jax.jit(all_finite)(tree)), (bad, path)
    big = {"x": jnp.full((4,), jnp.finfo(jnp.float32).max, jnp.float32)}  # finite, its sum would overflow
    assert bool(all_finite(big))
    assert bool(all_finite({"n": jnp.arange(2)}))  # no floating leaf


def _ddpm_prior(dim: int, num_levels: int, dtype):
    from dts_ppl.ddpm import build_prior, noise_schedule
    from dts_ppl.ddpm.network import init_eps_net

    k_net, k_out = jax.random.split(jax.random.PRNGKey(1))
    params = init_eps_net(k_net, dim, 16)
    params = params._replace(w3=0.3 * jax.random.normal(k_out, params.w3.shape, params.w3.dtype) / 4.0)
    prior = build_prior(params, noise_schedule("cosine", num_levels), np.zeros(dim), np.ones(dim), action_cov=1.0)
    return jax.tree.map(lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, prior)


def _rounds(agent, dim, rounds=4):
    act, update = jax.jit(agent.act), jax.jit(agent.update)
    state, out = agent.init(), []
    for t in range(rounds):
        x = jnp.asarray(np.cos(t + np.arange(dim)), jnp.float32)
        a, info = act(jax.random.PRNGKey(t), state, x)
        state = update(state, x, a, 0.3 * t - 0.5)
        out.append((int(a), np.asarray(info.scores), state))
    return out


def test_d5_ddpm_round_on_the_unrolled_paths_equals_the_lapack_round(monkeypatch):
    # the MovieLens prior's size (d = 5): products, Cholesky factors and the isotropic pass unrolled
    # against the matrix-product and LAPACK round on fixed keys, float32
    prior = _ddpm_prior(5, 6, jnp.float32)
    assert core.scalar_plan(core.upward_plan(prior))
    with monkeypatch.context() as m:
        m.setattr(linalg, "SMALL_MAX_SIZE", UNROLLED_OPTION)
        jax.clear_caches()
        fast = _rounds(dts(prior, Gaussian(0.5), num_actions=4), 5)
    with monkeypatch.context() as m:
        m.setattr(linalg, "SMALL_MAX_SIZE", 0)
        m.setattr(core, "scalar_plan", lambda plan: False)
        jax.clear_caches()
        slow = _rounds(dts(prior, Gaussian(0.5), num_actions=4), 5)
    for (a1, s1, st1), (a2, s2, st2) in zip(fast, slow, strict=True):
        assert a1 == a2
        np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-4 * (1.0 + np.max(np.abs(s2))))
        for x, y in zip(jax.tree.leaves(st1), jax.tree.leaves(st2), strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=2e-4 * (1.0 + float(np.max(np.abs(y)))))


def test_d5_isotropic_pass_equals_the_recursion_in_float64():
    prior = _ddpm_prior(5, 6, jnp.float64)
    plan = core.upward_plan(prior, "identity")
    assert core.scalar_plan(plan)
    rng = np.random.default_rng(5)
    for kind in ("full", "rank1", "zero", "huge"):
        G, b = _evidence(rng, 5, kind)
        ev = core.Message(jnp.asarray(G), jnp.asarray(b))
        ref = core.latent_posteriors(prior, ev, core.linearise(prior, "identity"))
        got = jax.jit(lambda ev, p=prior, plan=plan: core.upward_pass(p, ev, "identity", plan=plan))(ev).latents
        for a, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, r, rtol=0, atol=1e-8 * (1.0 + float(jnp.max(jnp.abs(r)))), err_msg=kind)


def test_write_in_sequence_keeps_ok_whatever_was_written():
    from dts_ppl.core.rows import write

    old = {"a": jnp.zeros((3, 2)), "b": jnp.ones(2), "c": jnp.arange(3), "r": jnp.zeros((4, 2))}
    new = {
        "a": jnp.full((3, 2), jnp.nan),  # written first: NaN and inf entries must not change later writes' ok
        "b": jnp.asarray([jnp.inf, 2.0]),
        "c": jnp.arange(3) + 5,
        "r": Row(jnp.int32(2), jnp.asarray([7.0, 8.0])),
    }
    for ok in (True, False):
        out = jax.jit(write)(old, new, jnp.asarray(ok))
        want = jax.tree.map(lambda n, o, ok=ok: n if ok else o, {**new, "r": old["r"].at[2].set(new["r"].value)}, old)
        for key in old:
            np.testing.assert_array_equal(out[key], want[key], err_msg=f"{ok} {key}")


@pytest.mark.parametrize("kind", ["full", "rank1", "huge"])
def test_condition_at_three_takes_the_stacked_path_and_agrees_with_the_entries_in_float32(kind):
    rng = np.random.default_rng(7)
    Q = jnp.asarray(_spd(rng, 3, 2.0), jnp.float32)
    G, b = (jnp.asarray(x, jnp.float32) for x in _evidence(rng, 3, kind))
    white = core.whiten(Q)
    assert core.CONDITION_ENTRIES_MAX_SIZE < 3 <= linalg.DEFAULT_SMALL_MAX_SIZE
    R, Rinv = white
    lam, V = linalg.eigh(linalg.symmetrise(Rinv @ G @ Rinv.T))
    stacked = core._condition_from_eig(white, b, lam, V)
    got = core.condition_whitened(white, G, b)
    entries = core._condition_entries(white, G, b)
    for x, s, e in zip(jax.tree.leaves(got), jax.tree.leaves(stacked), jax.tree.leaves(entries), strict=True):
        scale = 1.0 + float(jnp.max(jnp.abs(s)))
        np.testing.assert_allclose(x, s, rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(x, e, rtol=0, atol=1e-4 * scale)
