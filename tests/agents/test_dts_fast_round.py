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
        m.setattr(linalg, "SMALL_MAX_SIZE", 3)  # the package default (tests/conftest.py sets 0)
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
