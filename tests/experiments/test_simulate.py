"""The simulator, the preset registry and ``dts-ppl bench regret``."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from compiles import count_compilations

from dts_ppl import Gaussian, plot_regret, simulate
from dts_ppl.agents import Agent, dts, exact_ts, lin_ts, theta_marginal
from dts_ppl.bandits.envs import diffusion_environment, mean_rewards
from dts_ppl.cli import main
from dts_ppl.experiments.registry import get_preset, register_preset
from dts_ppl.experiments.synthetic import random_linear_prior


def _problem(K=4):
    prior = random_linear_prior(jax.random.PRNGKey(3), 2, (2, 1))
    return prior, diffusion_environment(prior, K, Gaussian(1.0), name="tiny")


def test_simulate_regret_of_a_fixed_policy_and_chunking(key, tmp_path):
    """Always playing action 0 has regret E[max_a r_a - r_0] per round (Monte-Carlo check);
    chunked runs are the same runs."""
    prior, env = _problem()
    always0 = Agent(lambda: jnp.zeros(()), lambda k, s, x: (jnp.zeros((), jnp.int32), None), lambda s, x, a, y: s)
    n, runs = 50, 40
    res = simulate(key, env, always0, n, runs, progress=False)
    assert res.cumulative.shape == (runs, n)
    assert np.all(np.diff(res.cumulative, axis=1) >= 0)  # pseudo-regret is non-negative
    np.testing.assert_allclose(res.se, res.cumulative.std(0, ddof=1) / np.sqrt(runs))
    chunked = simulate(key, env, always0, n, runs, chunk_size=16, progress=False)
    np.testing.assert_allclose(res.cumulative, chunked.cumulative, rtol=1e-12)
    # independent check: the same theta per run (same key derivation) and fresh contexts
    thetas = jax.vmap(lambda r: env.sample_theta(jax.random.split(jax.random.fold_in(key, r), 4)[0]))(jnp.arange(runs))
    xs = jax.random.uniform(jax.random.PRNGKey(9), (2000, 2), minval=-1, maxval=1)
    gap = jax.vmap(lambda th: jax.vmap(lambda x: jnp.max(mean_rewards(env, th, x)) - mean_rewards(env, th, x)[0])(xs))(
        thetas
    )
    expected = np.asarray(gap.mean(1))
    sd = np.asarray(gap.std(1))
    per_run = res.cumulative[:, -1] / n
    assert np.all(np.abs(per_run - expected) < 5 * sd * np.sqrt(1 / n + 1 / 2000))
    plot_regret({"always 0": res}, tmp_path / "r.png", "tiny")
    assert (tmp_path / "r.png").stat().st_size > 0


def test_exact_ts_and_dts_have_the_same_regret(key):
    """Both sample the exact joint posterior: paired regrets agree within the Monte-Carlo error."""
    prior, env = _problem(K=5)
    runs = 40
    r_dts = simulate(key, env, dts(prior, Gaussian(1.0), 5), 100, runs, progress=False).cumulative[:, -1]
    r_exact = simulate(key, env, exact_ts(prior, Gaussian(1.0), 5), 100, runs, progress=False).cumulative[:, -1]
    diff = r_dts - r_exact
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(runs)


def test_simulate_compiles_once_per_env_agent_and_rounds(key):
    """A second call with the same env, agent and num_rounds reuses the compiled runs (new keys, the
    same results as a fresh compilation); another agent object, or another num_rounds, compiles."""
    prior, env = _problem()
    agent = lin_ts(theta_marginal(prior), Gaussian(1.0), 4)
    first = simulate(key, env, agent, 30, 3, progress=False).cumulative
    other = jax.random.fold_in(key, 1)
    again = []
    assert count_compilations(lambda: again.append(simulate(other, env, agent, 30, 3, progress=False))) == 0
    assert count_compilations(lambda: simulate(key, env, agent, 31, 3, progress=False)) > 0
    twin = lin_ts(theta_marginal(prior), Gaussian(1.0), 4)  # equal, but new closures
    fresh = []
    assert count_compilations(lambda: fresh.append(simulate(other, env, twin, 30, 3, progress=False))) > 0
    np.testing.assert_array_equal(again[0].cumulative, fresh[0].cumulative)
    assert not np.array_equal(first, again[0].cumulative)


def test_bench_regret_cli_writes_json_and_plot(tmp_path, capsys):
    def build(key, num_rounds):
        prior, env = _problem(K=3)
        return env, {"LinTS": lin_ts(theta_marginal(prior), Gaussian(1.0), 3)}

    register_preset("test-tiny", build, "tiny problem for the CLI test")
    assert get_preset("test-tiny").build is build
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["bench", "regret", "--preset", "test-tiny", "--runs", "3", "--rounds", "12", "--seed", "1",
               "--json", str(out), "--plot", str(plot), "--quiet", "--x64"])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    assert set(data) == {"preset", "rounds", "runs", "seed", "curve_rounds", "algorithms"}
    assert (data["preset"], data["rounds"], data["runs"]) == ("test-tiny", 12, 3)
    algo = data["algorithms"]["LinTS"]
    assert set(algo) == {"final_regret_mean", "final_regret_se", "final_regrets", "curve"}
    assert len(algo["curve"]) == len(data["curve_rounds"]) == 12
    assert len(algo["final_regrets"]) == 3  # one per run, paired across algorithms
    np.testing.assert_allclose(np.mean(algo["final_regrets"]), algo["final_regret_mean"], rtol=1e-5)
    np.testing.assert_allclose(algo["curve"][-1], algo["final_regret_mean"], rtol=1e-5)
    assert plot.stat().st_size > 0
    assert main(["bench", "regret", "--preset", "no-such-preset", "--runs", "1"]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err


def test_run_rounds_is_run_regret_with_the_final_state_and_records(key):
    from dts_ppl.bandits.simulation import run_regret, run_rounds

    prior = random_linear_prior(jax.random.PRNGKey(3), 2, (2, 2))
    env = diffusion_environment(prior, 4)
    agent = dts(prior, Gaussian(1.0), 4)
    state, regret, steps = run_rounds(key, env, agent, 12, lambda s: s.step)
    np.testing.assert_array_equal(regret, run_regret(key, env, agent, 12))
    np.testing.assert_array_equal(steps, np.arange(1, 13))
    assert int(state.step) == 12
    assert run_rounds(key, env, agent, 3)[2] is None


def test_agent_key_replays_the_instance_under_other_agent_draws(key):
    """``agent_key`` replaces only the act draws: the run's own act key reproduces the run, and
    another key gives the regret of a uniform policy rebuilt by hand from the same theta,
    contexts and the new key's draws."""
    from dts_ppl.bandits.simulation import run_regret, run_rounds

    prior, env = _problem(K=5)
    n = 15
    uniform = Agent(
        lambda: jnp.zeros(()),
        lambda k, s, x: (jax.random.randint(k, (), 0, 5), None),
        lambda s, x, a, y: s,
    )
    own = jax.random.split(key, 4)[2]
    np.testing.assert_array_equal(run_regret(key, env, uniform, n, agent_key=own), run_regret(key, env, uniform, n))
    other = jax.random.PRNGKey(77)
    regret = np.asarray(run_regret(key, env, uniform, n, agent_key=other))
    k_theta, k_ctx, _, _ = jax.random.split(key, 4)
    theta = env.sample_theta(k_theta)
    ref = []
    for k_x, k_a in zip(jax.random.split(k_ctx, n), jax.random.split(other, n), strict=True):
        means = np.asarray(mean_rewards(env, theta, env.sample_context(k_x)))
        ref.append(means.max() - means[int(jax.random.randint(k_a, (), 0, 5))])
    np.testing.assert_allclose(regret, ref, rtol=1e-12)
    assert not np.allclose(regret, run_regret(key, env, uniform, n))
    dts_agent = dts(prior, Gaussian(1.0), 5)
    _, r_dts, _ = run_rounds(key, env, dts_agent, 4, agent_key=other)
    assert r_dts.shape == (4,)
