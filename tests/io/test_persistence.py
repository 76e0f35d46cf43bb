"""save_state / load_state: bit-identical resume, atomic writes, every corruption kind; Bandit."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dts_ppl
from dts_ppl import Bandit, Bernoulli, DiffusionPrior, Gaussian, load_state, save_prior, save_state
from dts_ppl.agents import dts, exact_ts, glm_ts, lin_ts, theta_marginal
from dts_ppl.io import serialization

K, D = 4, 2


@pytest.fixture
def prior():
    return DiffusionPrior.linear([jnp.eye(D), 0.5 * jnp.eye(D)], [0.5, 1.0, 1.0])


def env_reward(x, a):
    return float(np.sin(a + 1.0) * x[0] + 0.1 * a)


def run(bandit, rounds, start, rng_seed=0):
    """Rounds [start, start + rounds) of an online loop with delayed batches of 5 rewards."""
    actions, pending = [], []
    for t in range(start, start + rounds):
        rng = np.random.default_rng(rng_seed + t)  # round t's context and noise, wherever we resume
        x = rng.uniform(-1, 1, D)
        a = bandit.choose(x)
        actions.append(a)
        pending.append((x, a, env_reward(x, a) + 0.1 * rng.standard_normal()))
        if len(pending) == 5:
            X, A, y = map(np.array, zip(*pending[::-1], strict=True))  # late and reversed
            bandit.partial_fit(X, A, y)
            pending = []
    return actions


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        u.dtype == v.dtype and np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(la, lb, strict=True)
    )


def test_bandit_resumes_bit_identically_at_several_points(prior, tmp_path):
    agent = dts(prior, Gaussian(0.5), K)
    straight = Bandit(agent, jax.random.PRNGKey(3))
    ref = run(straight, 30, 0)
    resumed, acts, path = Bandit(agent, jax.random.PRNGKey(3)), [], tmp_path / "b.npz"
    for start, stop in ((0, 10), (10, 20), (20, 30)):  # checkpoints at rounds 10 and 20
        acts += run(resumed, stop - start, start)
        resumed.save(path, {"round": stop})
        resumed = Bandit.load(path, agent)
        assert resumed.metadata == {"round": stop}
    assert acts == ref
    assert leaves_equal(resumed.state, straight.state)
    assert np.array_equal(np.asarray(resumed.key), np.asarray(straight.key))


@pytest.mark.parametrize("which", ["glm_ts", "exact_ts", "lin_ts_shared"])
def test_state_roundtrip_other_agents(prior, tmp_path, which):
    marg = theta_marginal(prior)
    agent = {
        "glm_ts": lambda: glm_ts(marg, Bernoulli(), K, history=20),
        "exact_ts": lambda: exact_ts(prior, Gaussian(1.0), K),
        "lin_ts_shared": lambda: lin_ts(marg, Gaussian(1.0), K, shared=True),
    }[which]()
    n = 6
    X = jax.random.uniform(jax.random.PRNGKey(0), (n, K, D) if agent.spec.shared else (n, D))
    A = jnp.arange(n) % K
    state = agent.update_batch(agent.init(), X, A, (jnp.arange(n) % 2).astype(float))
    path = tmp_path / "s.npz"
    save_state(path, state, {"note": which}, agent=agent)
    loaded, meta = load_state(path, expect=agent)
    assert meta == {"note": which} and leaves_equal(loaded, state)
    assert type(loaded) is type(state)
    header = serialization.read_state_header(path)
    assert header["kind"] == agent.spec.kind and header["num_actions"] == K and header["dim"] == D
    assert header["package_version"] == dts_ppl.__version__ and header["dtype"] == "float64"
    # None fields survive (GLM history present, Gaussian history None)
    if which != "glm_ts" and hasattr(state, "evidence"):
        assert loaded.evidence.history is None


@pytest.fixture
def saved(prior, tmp_path):
    agent = dts(prior, Gaussian(1.0), K)
    state = agent.update_batch(agent.init(), jnp.ones((3, D)), jnp.array([0, 1, 1]), jnp.array([1.0, 2.0, 3.0]))
    path = tmp_path / "good.npz"
    save_state(path, state, agent=agent)
    return agent, state, path


def test_truncated_file(saved, tmp_path):
    _, _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="path: .* not a readable dts_ppl state file .*corrupt or truncated"):
        load_state(bad)


def test_corrupted_payload(saved, tmp_path):
    agent, state, path = saved
    bad = tmp_path / "corrupt.npz"
    # same archive, one array changed: the zip is valid, the checksum is not
    arrays = dict(np.load(path, allow_pickle=False))
    arrays["state/theta_shift"] = arrays["state/theta_shift"] + 1e-12
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="is corrupt .*SHA-256"):
        load_state(bad)
    # a flipped byte inside the archive
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="path: "):
        load_state(bad)


def test_foreign_files(saved, tmp_path, prior):
    other = tmp_path / "foreign.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(ValueError, match="not a dts_ppl state file .no __meta__"):
        load_state(other)
    save_prior(other, prior)
    with pytest.raises(ValueError, match="not a dts_ppl state file .format 'dts_ppl.prior'"):
        load_state(other)
    other.write_text("hello")
    with pytest.raises(ValueError, match="not a readable dts_ppl state file"):
        load_state(other)
    with pytest.raises(ValueError, match="no such state file"):
        load_state(tmp_path / "missing.npz")


def test_mismatched_agent(saved, prior):
    agent, state, path = saved
    with pytest.raises(ValueError, match="num_actions=4; expected num_actions=5"):
        load_state(path, expect=dts(prior, Gaussian(1.0), K + 1))
    with pytest.raises(ValueError, match="kind='dts'; expected kind='lin_ts'"):
        load_state(path, expect=lin_ts(theta_marginal(prior), Gaussian(1.0), K))
    prior3 = DiffusionPrior.linear([jnp.eye(3)], [0.5, 1.0])
    with pytest.raises(ValueError, match="dim=2; expected dim=3"):
        load_state(path, expect=dts(prior3, Gaussian(1.0), K))
    with pytest.raises(ValueError, match="likelihood='gaussian'; expected likelihood='bernoulli'"):
        load_state(path, expect=dts(prior, Bernoulli(), K))
    with pytest.raises(ValueError, match="num_actions=4; expected num_actions=7"):
        load_state(path, expect={"num_actions": 7})


def test_saved_without_agent_is_checked_by_structure(prior, tmp_path):
    agent = dts(prior, Gaussian(1.0), K)
    path = tmp_path / "s.npz"
    save_state(path, agent.init())
    load_state(path, expect=agent)
    # a latent of dimension 1 instead of 2 (an affine chain's state holds psi_1's row only, so
    # L alone is not visible in the shapes: save with agent= to have it checked)
    other = DiffusionPrior.linear([jnp.ones((D, 1)), jnp.eye(1)], [0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="state field .* has shape"):
        load_state(path, expect=dts(other, Gaussian(1.0), K))
    save_state(path, agent.init(), agent=agent)
    with pytest.raises(ValueError, match="num_levels"):
        load_state(path, expect=dts(DiffusionPrior.linear([jnp.eye(D)], [0.5, 1.0]), Gaussian(1.0), K))


def test_failed_save_never_touches_the_previous_file(saved, monkeypatch):
    agent, state, path = saved
    before = path.read_bytes()
    with pytest.raises(ValueError, match="metadata: expected a JSON-serialisable dict"):
        save_state(path, state, {"bad": object()}, agent=agent)
    with pytest.raises(ValueError, match="state: expected an agent state"):
        save_state(path, {"not": "a state"})

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, state._replace(step=state.step + 1), agent=agent)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["good.npz"]  # no temporary file left


def test_save_prior_is_atomic(prior, tmp_path, monkeypatch):
    path = tmp_path / "prior.npz"
    save_prior(path, prior)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("crash before rename")))
    with pytest.raises(OSError, match="crash before rename"):
        save_prior(path, DiffusionPrior.linear([jnp.eye(D)], [0.1, 0.2]))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["prior.npz"]


def test_bandit_api(prior, tmp_path):
    agent = dts(prior, Gaussian(1.0), K)
    b = Bandit(agent, jax.random.PRNGKey(0))
    X = np.random.default_rng(0).uniform(-1, 1, (8, D))
    A = b.choose(X)
    assert A.shape == (8,) and A.dtype.kind == "i"
    b.partial_fit(X, A, X[:, 0])
    assert int(b.state.step) == 8
    mask = np.array([False, False, True, True])
    assert b.choose(X[0], mask=mask) in (2, 3)
    assert set(b.choose_top_k(X[0], 2, mask=mask).tolist()) == {2, 3}
    p = b.propensities(X[0], 300)
    assert abs(float(p.probs.sum()) - 1) < 1e-12
    with pytest.raises(ValueError, match="x: expected one context of shape"):
        b.choose(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="y: contains NaN"):
        b.partial_fit(X[:1], A[:1], [np.nan])
    with pytest.raises(ValueError, match="key: expected a jax.random.PRNGKey"):
        Bandit(agent, 3)
    b.save(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="without a bandit key"):
        save_state(tmp_path / "s.npz", b.state, agent=agent)
        Bandit.load(tmp_path / "s.npz", agent)
