"""The dTS round on a DDPM prior through the fast paths (the network's shared weights read from one
copy, unrolled small-matrix Cholesky factors, one eigenbasis for the isotropic levels' upward
pass, the played action's two conditions as one batch) against the same round through the
stacked copies, LAPACK and one eigendecomposition per level, on fixed keys in float32; the
batched conditions against each action's own condition."""

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import load_prior
from dts_ppl.agents import dts
from dts_ppl.core import inference as core
from dts_ppl.core import linalg
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.linalg import psd_inv
from dts_ppl.experiments.swissroll import MODELS_DIR


def _rounds(agent, rounds: int = 6):
    """Actions, scores and states of ``rounds`` jitted rounds with fixed keys and contexts."""
    act, update = jax.jit(agent.act), jax.jit(agent.update)
    state, out = agent.init(), []
    for t in range(rounds):
        x = jnp.asarray([np.cos(t), np.sin(t)], jnp.float32)
        a, info = act(jax.random.PRNGKey(t), state, x)
        state = update(state, x, a, 0.4 * t - 1.0)
        out.append((int(a), np.asarray(info.scores), state))
    return out


def test_fast_round_equals_the_stacked_lapack_round(monkeypatch):
    prior = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), load_prior(MODELS_DIR / "swissroll_L40.npz")[0])
    assert any(core.shared_link_leaves(prior)) and core.scalar_plan(core.upward_plan(prior))
    with monkeypatch.context() as m:
        m.setattr(linalg, "SMALL_MAX_SIZE", linalg.DEFAULT_SMALL_MAX_SIZE)  # the default (conftest.py sets 0)
        jax.clear_caches()  # no trace made under another SMALL_MAX_SIZE is reused
        fast = _rounds(dts(prior, Gaussian(0.5), num_actions=5))

    with monkeypatch.context() as m:
        m.setattr(core, "shared_link_leaves", lambda p: (False,) * len(jax.tree.leaves(p.links)))
        m.setattr(linalg, "SMALL_MAX_SIZE", 0)
        m.setattr(core, "scalar_plan", lambda plan: False)
        jax.clear_caches()
        slow = _rounds(dts(prior, Gaussian(0.5), num_actions=5))
    for (a1, s1, st1), (a2, s2, st2) in zip(fast, slow, strict=True):
        assert a1 == a2
        np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-4 * (1.0 + np.max(np.abs(s2))))
        for x, y in zip(jax.tree.leaves(st1), jax.tree.leaves(st2), strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=2e-4 * (1.0 + float(np.max(np.abs(y)))))
    # the update's batched conditions: every action's conditional and the evidence sum from its statistics
    state = fast[-1][2]
    conds, msgs = jax.vmap(core.condition, in_axes=(None, 0, 0))(psd_inv(prior.cov1), *state.evidence.stats)
    np.testing.assert_allclose(state.theta_cov, conds.cov, rtol=0, atol=1e-5)
    np.testing.assert_allclose(state.evidence_sum.G, msgs.G.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state.evidence_sum.b, msgs.b.sum(0), rtol=1e-4, atol=1e-4)


def _reference_scores(agent_prior, state, key, x):
    """dTS scores written out with jax.random and the prior's f_1: the formula before the unrolled draws."""
    prior = agent_prior
    k_chain, k_score = jax.random.split(key)
    k_lat = jax.random.split(jax.random.split(k_chain, 1)[0])[0]
    lat = state.latents
    z = jnp.einsum("lij,lj->li", lat.scale_tril, jax.random.normal(k_lat, lat.shift.shape, lat.shift.dtype))
    psi = lat.shift[0] + z[0]
    for i in range(1, prior.num_levels):
        psi = lat.gain[i] @ prior.link(prior.num_levels - i + 1)(psi) + lat.shift[i] + z[i]
    u = psd_inv(prior.cov1) @ prior.link1(psi)
    mean = jnp.einsum("kij,j,i->k", state.theta_cov, u, x) + state.theta_shift @ x
    sd = jnp.sqrt(jnp.maximum(jnp.einsum("kij,i,j->k", state.theta_cov, x, x), 0.0))
    return mean + sd * jax.random.normal(k_score, mean.shape, mean.dtype)


def test_scores_equal_the_jax_random_formula_on_fixed_keys():
    prior = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), load_prior(MODELS_DIR / "swissroll_L40.npz")[0])
    agent = dts(prior, Gaussian(0.5), num_actions=6)
    state = _rounds(agent, 4)[-1][2]
    for t in range(3):
        key, x = jax.random.PRNGKey(100 + t), jnp.asarray([0.3 * t - 0.2, 0.5], jnp.float32)
        a, info = jax.jit(agent.act)(key, state, x)
        ref = _reference_scores(prior, state, key, x)
        np.testing.assert_allclose(info.scores, ref, rtol=0, atol=2e-4 * (1.0 + float(np.max(np.abs(ref)))))
        assert int(a) == int(jnp.argmax(info.scores)) and bool(info.valid)


def test_the_guards_argmax_is_jnp_argmax_and_flags_non_finite_scores():
    from dts_ppl.agents.guard import _argmax_finite

    rng = np.random.default_rng(0)
    cases = [rng.normal(size=50), np.round(rng.normal(size=50)), np.zeros(7), np.array([1.0, 3.0, 3.0, 2.0])]
    for v in cases:
        best, top = jax.jit(_argmax_finite)(jnp.asarray(v, jnp.float32))
        assert int(best) == int(np.argmax(v)) and float(top) == float(np.max(v).astype(np.float32))
    for bad in (np.nan, np.inf, -np.inf):
        v = np.array([0.5, bad, 2.0, 1.0])
        assert np.isnan(float(_argmax_finite(jnp.asarray(v, jnp.float32))[1]))
