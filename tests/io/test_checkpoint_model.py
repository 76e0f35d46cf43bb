"""Checkpoints that know their agent and model: the spec on save, finite arrays, the fingerprint on load."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import Bandit, Bernoulli, DiffusionPrior, Gaussian, load_state, save_state
from dts_ppl.agents import dts, lin_ts, mcmc_ts, theta_marginal
from dts_ppl.agents.registry import fingerprint_differences, model_fingerprint
from dts_ppl.io import npz, state_files
from dts_ppl.io.serialization import read_state_header

D = 2


def _prior(scale=1.0):
    return DiffusionPrior.linear([scale * jnp.array([[1.0, 0.5], [0.2, -0.7]]), 0.5 * jnp.eye(D)], [0.5, 1.0, 1.0])


def _run(agent, n=5):
    X = jax.random.uniform(jax.random.PRNGKey(0), (n, D), minval=-1.0, maxval=1.0)
    return agent.update_batch(agent.init(), X, jnp.arange(n) % agent.spec.num_actions, (jnp.arange(n) % 2) * 1.0)


def _same(a, b):
    return all(
        x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# ------------------------------------------------------------------------------------- on save


def test_save_refuses_a_state_of_another_agent(tmp_path):
    path = tmp_path / "s.npz"
    state4 = dts(_prior(), Gaussian(1.0), 4).init()
    with pytest.raises(
        ValueError, match=r"agent: the state does not belong to this dts agent: .*\(4, 2, 2\).*\(7, 2, 2\)"
    ):
        save_state(path, state4, agent=dts(_prior(), Gaussian(1.0), 7))
    with pytest.raises(ValueError, match="agent: .*a DTSState is not its state .*LinearState"):
        save_state(path, state4, agent=lin_ts(theta_marginal(_prior()), Gaussian(1.0), 4))
    with pytest.raises(ValueError, match="agent: .*shape"):  # GLM history 8 vs 9
        save_state(
            path, dts(_prior(), Bernoulli(), 4, history=8).init(), agent=dts(_prior(), Bernoulli(), 4, history=9)
        )
    assert not path.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_states_are_refused_on_save_and_on_load(tmp_path, bad):
    agent = dts(_prior(), Gaussian(1.0), 3)
    state = _run(agent)
    poisoned = state._replace(theta_shift=state.theta_shift.at[1, 0].set(bad))
    path = tmp_path / "s.npz"
    with pytest.raises(ValueError, match="state: field 'theta_shift' contains NaN or inf"):
        save_state(path, poisoned, agent=agent)
    assert not path.exists()
    # a file with a valid digest but a non-finite array (written around save_state's check)
    save_state(path, state, agent=agent)
    loaded = npz.read(path, "state")
    arrays = dict(loaded.arrays)
    arrays["state/theta_shift"] = np.asarray(poisoned.theta_shift)
    npz.write(path, arrays, loaded.header)
    with pytest.raises(ValueError, match=r"path: .* not a usable state \(field 'theta_shift' contains NaN or inf\)"):
        load_state(path, expect=agent)


# ------------------------------------------------------------------------------ the fingerprint


@pytest.fixture
def saved(tmp_path):
    agent = dts(_prior(), Bernoulli(), 3, history=8, newton_steps=3)
    state = agent.init()._replace(step=jnp.asarray(5, jnp.int32))
    path = tmp_path / "s.npz"
    save_state(path, state, {"round": 5}, agent=agent)
    return agent, state, path


def test_the_fingerprint_is_stored(saved):
    agent, _, path = saved
    header = read_state_header(path)
    assert header["fingerprint"] == json.loads(json.dumps(agent.spec.fingerprint))
    fp = header["fingerprint"]
    assert len(fp["prior"]) == 64 and fp["likelihood"]["class"] == "Bernoulli"
    assert fp["options"]["newton_steps"] == 3 and fp["options"]["history"] == 8
    # GLM-only options are left out for Gaussian rewards
    assert "history" not in dts(_prior(), Gaussian(1.0), 3).spec.fingerprint["options"]


@pytest.mark.parametrize(
    "other, match",
    [
        # prior arrays: same shapes, other values
        (lambda: dts(_prior(1.5), Bernoulli(), 3, history=8), r"prior arrays \(file sha256 [0-9a-f]{12}"),
        # a likelihood parameter
        (
            lambda: dts(_prior(), Bernoulli(ridge=2.0), 3, history=8),
            r"likelihood parameter ridge \(file .*agent 2\.0\)",
        ),
        # an option
        (lambda: dts(_prior(), Bernoulli(), 3, history=8, newton_steps=5), r"option newton_steps \(file 3, agent 5\)"),
    ],
    ids=["prior arrays", "likelihood parameter", "option"],
)
def test_load_refuses_another_model_and_allow_mismatch_loads_it(saved, other, match):
    _, state, path = saved
    agent = other()
    with pytest.raises(
        ValueError, match=f"path: .*saved by an agent with another model: .*{match}.*allow_mismatch=True"
    ):
        load_state(path, expect=agent)
    with pytest.warns(RuntimeWarning, match=match):
        loaded, meta = load_state(path, expect=agent, allow_mismatch=True)
    assert meta == {"round": 5} and _same(loaded, state)


def test_gaussian_scale_and_several_differences_are_named(tmp_path):
    agent = dts(_prior(), Gaussian(1.0), 3)
    path = tmp_path / "s.npz"
    save_state(path, agent.init(), agent=agent)
    with pytest.raises(ValueError, match=r"likelihood parameter scale \(file 1\.0, agent 3\.0\)"):
        load_state(path, expect=dts(_prior(), Gaussian(3.0), 3))
    with pytest.raises(ValueError, match=r"prior arrays .*; likelihood parameter scale .*; option linearisation"):
        load_state(path, expect=dts(_prior(2.0), Gaussian(3.0), 3, linearisation="identity"))
    with pytest.raises(ValueError, match="allow_mismatch: expected True or False"):
        load_state(path, expect=agent, allow_mismatch="yes")
    # the same agent rebuilt from equal arrays matches
    load_state(path, expect=dts(_prior(), Gaussian(1.0), 3))


def test_bandit_load_checks_the_model(tmp_path):
    agent = dts(_prior(), Gaussian(1.0), 3)
    bandit = Bandit(agent, jax.random.PRNGKey(0))
    bandit.partial_fit(np.ones((2, D)), np.array([0, 1]), np.array([1.0, 0.0]))
    path = tmp_path / "b.npz"
    bandit.save(path, {"round": 2})
    with pytest.raises(ValueError, match=r"likelihood parameter scale \(file 1\.0, agent 2\.0\)"):
        Bandit.load(path, dts(_prior(), Gaussian(2.0), 3))
    with pytest.warns(RuntimeWarning, match="likelihood parameter scale"):
        resumed = Bandit.load(path, dts(_prior(), Gaussian(2.0), 3), allow_mismatch=True)
    assert _same(resumed.state, bandit.state) and resumed.metadata == {"round": 2}


def test_a_file_without_a_fingerprint_is_checked_by_shapes_only(tmp_path):
    agent = dts(_prior(), Gaussian(1.0), 3)
    path = tmp_path / "s.npz"
    save_state(path, agent.init())  # no agent: nothing recorded beyond the state itself
    assert read_state_header(path)["fingerprint"] is None
    load_state(path, expect=dts(_prior(2.0), Gaussian(3.0), 3))
    with pytest.raises(ValueError, match="state field .* has shape"):
        load_state(path, expect=dts(_prior(), Gaussian(1.0), 4))


def test_fingerprint_helpers():
    fp = model_fingerprint(jnp.ones((4, 2)), Gaussian(2.0), {"history": 3}, alpha=jnp.float32(0.5), tag=(1, 2))
    assert fp["likelihood"] == {"class": "Gaussian", "scale": 2.0}
    assert fp["options"] == {"alpha": 0.5, "tag": [1, 2]}  # GLM options dropped for Gaussian rewards
    assert model_fingerprint(jnp.ones((4, 2)))["prior"] != model_fingerprint(jnp.ones((2, 4)))["prior"]
    assert model_fingerprint(jnp.ones(2))["prior"] != model_fingerprint(jnp.ones(2, jnp.float32))["prior"]
    assert fingerprint_differences(fp, fp) == [] and fingerprint_differences(None, fp) == []
    other = dict(fp, options={"alpha": 0.5})
    assert fingerprint_differences(fp, other) == ["option tag (file [1, 2], agent absent)"]
    # a factory under jit: nothing concrete to fingerprint, and no error
    assert jax.jit(lambda b: jnp.zeros(()) if model_fingerprint(b)["prior"] is None else jnp.ones(()))(jnp.ones(2)) == 0


def test_mcmc_options_are_in_the_fingerprint():
    a = mcmc_ts(_prior(), Gaussian(1.0), 3, refresh_every=2, num_warmup=3)
    b = mcmc_ts(_prior(), Gaussian(1.0), 3, refresh_every=2, num_warmup=4)
    assert fingerprint_differences(a.spec.fingerprint, b.spec.fingerprint) == ["option num_warmup (file 3, agent 4)"]


def test_version_1_state_files_still_load(tmp_path):
    agent = dts(_prior(), Gaussian(1.0), 3)
    state = _run(agent)
    path, old = tmp_path / "s.npz", tmp_path / "v1.npz"
    save_state(path, state, agent=agent)
    arrays, header, _ = npz.read(path, "state")
    header = {k: v for k, v in header.items() if k != "fingerprint"}
    header["format_version"] = 1
    header["sha256"] = state_files._v1_digest({k[len("state/") :]: v for k, v in arrays.items()}, header)
    np.savez(old, **arrays, __meta__=np.frombuffer(json.dumps(header).encode(), np.uint8))  # as version 1 wrote
    loaded, _ = load_state(old, expect=agent)
    assert _same(loaded, state)
    header["format_version"] = 2  # a version-2 header without the whole-file digest is corrupt
    np.savez(old, **arrays, __meta__=np.frombuffer(json.dumps(header).encode(), np.uint8))
    with pytest.raises(ValueError, match="without its whole-file SHA-256"):
        load_state(old)
