"""The classification-to-bandit suite: the table environment and the split/prior of the presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import agents as ag
from dts_ppl.bandits import simulate
from dts_ppl.bandits.envs import table_environment
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.experiments import classification as cl
from dts_ppl.experiments.registry import preset_names


def test_random_policy_regret_on_a_table_is_the_mistake_rate_within_mc_error():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    X = np.c_[rng.normal(size=(40, 2)), np.ones(40)]
    R = (np.arange(3)[None] == labels[:, None]).astype(float)
    env = table_environment(X, R, "toy")
    runs, rounds = 200, 30
    res = simulate(jax.random.PRNGKey(0), env, ag.random_policy(3), rounds, runs, progress=False)
    per_round = np.diff(np.c_[np.zeros(runs), res.cumulative], axis=1)
    assert set(np.unique(per_round)) <= {0.0, 1.0}  # 0/1 means: the regret of a round is a mistake
    want = rounds * 2 / 3  # uniform over 3 classes, one right: P(mistake) = 2/3 whatever the row
    se = np.sqrt(rounds * (2 / 3) * (1 / 3) / runs)
    assert abs(res.final_mean - want) < 4 * se


def test_a_table_reward_is_the_row_mean_for_zero_one_tables():
    X = np.eye(4)
    R = np.eye(4)  # row i: only action i pays
    env = table_environment(X, R)

    # an agent that plays argmax_a x_a: always the paying action, so regret 0 every round
    agent = ag.random_policy(4)._replace(act=lambda key, state, x: (jnp.argmax(x), ag.ActInfo(x)))
    regret = run_regret(jax.random.PRNGKey(1), env, agent, 25)
    np.testing.assert_array_equal(np.asarray(regret), 0.0)


@pytest.mark.parametrize(
    "X, R, match",
    [
        (np.full((3, 2), np.nan), np.eye(3)[:, :2], "X: expected finite"),
        (np.ones((3, 2)), np.full((3, 2), 1.5), r"R: expected mean rewards in \[0, 1\]"),
        (np.ones((3, 2)), np.ones((3, 1)), "K >= 2 actions"),
        (np.ones((3, 2)), np.ones((4, 2)), "R"),
    ],
)
def test_table_environment_names_bad_arguments(X, R, match):
    with pytest.raises(ValueError, match=match):
        table_environment(X, R)


def test_split_is_stratified_standardised_and_has_an_intercept():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), [20, 30, 50])
    features = rng.normal(3.0, 5.0, size=(100, 12))
    Xp, yp, Xb, yb = cl.split_features(features, labels, jax.random.PRNGKey(0), 6, 0.3)
    assert Xp.shape[1] == Xb.shape[1] == 6
    np.testing.assert_array_equal(Xp[:, -1], 1.0)
    assert [int(np.sum(yp == c)) for c in range(3)] == [6, 9, 15]
    assert Xp.shape[0] + Xb.shape[0] == 100
    np.testing.assert_allclose(Xp[:, :-1].std(0), 1.0, rtol=1e-10)


def test_full_information_logs_every_class_of_every_example():
    X = np.arange(6.0).reshape(3, 2)
    Xf, A, y = cl.full_information(X, np.array([2, 0, 1]), 3)
    assert Xf.shape == (9, 2) and A.tolist() == [0, 1, 2] * 3
    assert y.tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 0]


def test_presets_are_registered_and_unknown_data_sets_are_named():
    assert {f"classify-{n}" for n in cl.DATASETS} <= set(preset_names())
    with pytest.raises(ValueError, match="dataset: expected one of"):
        cl.load_dataset("mnist")


@pytest.mark.slow
def test_iris_setup_fits_a_prior_and_every_agent_runs():
    setup = cl.classification_setup("iris", jax.random.PRNGKey(0), cl.CLASSIFICATION._replace(eb_steps=20))
    assert setup["num_classes"] == 3 and setup["env"].dim == 5
    assert all(np.isfinite(v) and v > 0 for v in setup["fit"].values.values())
    for name, agent in cl.classification_agents(setup).items():
        res = simulate(jax.random.PRNGKey(2), setup["env"], agent, 50, 2, progress=False)
        assert np.all(np.isfinite(res.cumulative)), name
