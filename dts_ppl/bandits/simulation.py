"""The bandit simulator: rounds under lax.scan, runs under vmap in memory-bounded chunks.

Pseudo-regret of round t: max_a g(x_t^T theta_a) - g(x_t^T theta_{A_t}) (docs/math.md section 8).
Run r uses the same theta, contexts and reward noise for every agent simulated with the same
key (common random numbers), so differences between agents are paired.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dts_ppl.agents.base import Agent
from dts_ppl.bandits.envs import Environment, mean_rewards, sample_reward, table_round
from dts_ppl.core.checks import check_key, check_positive_int
from dts_ppl.plotting import pyplot


class RegretResult(NamedTuple):
    """Cumulative pseudo-regret of every run.

    Attributes:
        cumulative: (num_runs, num_rounds) numpy array.
        seconds: wall time of the simulation, compilation included when the call compiled (a
            repeat call with the same env, agent and num_rounds reuses the program: :func:`simulate`).
    """

    cumulative: np.ndarray
    seconds: float

    @property
    def mean(self) -> np.ndarray:
        """(num_rounds,) mean cumulative regret over runs."""
        return self.cumulative.mean(0)

    @property
    def se(self) -> np.ndarray:
        """(num_rounds,) standard error of the mean (0 for one run)."""
        n = self.cumulative.shape[0]
        return self.cumulative.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(self.cumulative.shape[1])

    @property
    def final_mean(self) -> float:
        return float(self.mean[-1])

    @property
    def final_se(self) -> float:
        return float(self.se[-1])


def _check(env, agent, num_rounds, num_runs, chunk_size):
    if not isinstance(env, Environment):
        raise ValueError(f"env: expected a dts_ppl.bandits.envs.Environment, got {type(env).__name__}")
    if not isinstance(agent, Agent):
        raise ValueError(f"agent: expected a dts_ppl.agents.Agent, got {type(agent).__name__}")
    for name, v in (("num_rounds", num_rounds), ("num_runs", num_runs)):
        check_positive_int(name, v)
    if chunk_size is not None:
        check_positive_int("chunk_size", chunk_size, "a positive integer or None")


def check_compatible(key, env: Environment, agent: Agent) -> None:
    """The environment is well formed and finite, and the agent plays its K actions on its contexts.

    Traces the agent once (``jax.eval_shape``, no compute) on the environment's context and
    draws run 0's theta and first context to check they are finite.
    """
    key = check_key(key)
    K, d = env.num_actions, env.dim
    for name, v in (("env.num_actions", K), ("env.dim", d)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    k_theta, k_ctx = jax.random.split(jax.random.fold_in(key, 0))[:2]
    theta, x = env.sample_theta(k_theta), env.sample_context(k_ctx)
    want_theta, want_x = ((d,), (K, d)) if env.shared else ((K, d), (d,))
    if jnp.shape(theta) != want_theta:
        raise ValueError(f"env: sample_theta gives shape {jnp.shape(theta)}, expected {want_theta} (K={K}, d={d})")
    if jnp.shape(x) != want_x:
        raise ValueError(f"env: sample_context gives shape {jnp.shape(x)}, expected {want_x} (K={K}, d={d})")
    for name, v in (("env: sample_theta", theta), ("env: sample_context", x)):
        if not bool(jnp.all(jnp.isfinite(v))):
            raise ValueError(f"{name} returned NaN or inf values (run 0)")
    try:
        state = jax.eval_shape(agent.init)
        _, info = jax.eval_shape(agent.act, key, state, x)
    except ValueError as e:
        raise ValueError(f"agent: does not fit env (K={K}, d={d}, shared={env.shared}): {e}") from None
    scores = getattr(info, "scores", None)  # a custom agent may return other info
    if scores is not None and scores.shape != (K,):
        raise ValueError(f"agent: gives scores of shape {scores.shape}, env has num_actions={K} (expected ({K},))")


def run_regret(key, env: Environment, agent: Agent, num_rounds: int, agent_key: jax.Array | None = None):
    """One run: (num_rounds,) per-round pseudo-regret. Pure and jittable (num_rounds static).

    A drifting environment (``env.drift``) moves theta before every round t (t = 0, 1, ...) and
    the regret of round t is measured against that round's theta. ``agent_key``: as in
    :func:`run_rounds`.
    """
    return run_rounds(key, env, agent, num_rounds, agent_key=agent_key)[1]


def run_rounds(
    key,
    env: Environment,
    agent: Agent,
    num_rounds: int,
    record: Callable | None = None,
    agent_key: jax.Array | None = None,
):
    """One run, as :func:`run_regret` (the same keys), with its final state and per-round records.

    Args:
        record: None, or ``record(state) -> pytree`` of the state after each round's update
            (e.g. ``lambda s: s.passes``); its outputs are stacked over rounds.
        agent_key: None (the run's own: the third of ``jax.random.split(key, 4)``), or the key
            of the agent's ``act`` draws alone; theta, the contexts and the reward noise still
            come from ``key``, so one instance can be replayed under other agent randomness.
    Returns:
        (final agent state, (num_rounds,) per-round pseudo-regret, stacked records or None).
    """
    key = check_key(key)
    k_theta, k_ctx, k_act, k_rew = jax.random.split(key, 4)
    if agent_key is not None:
        k_act = check_key(agent_key)
    theta = env.sample_theta(k_theta)
    keys = jnp.stack([jax.random.split(k, num_rounds) for k in (k_ctx, k_act, k_rew)], axis=1)  # (num_rounds, 3, key)

    def round_(state, ks, theta=theta):
        if env.table is None:
            x = env.sample_context(ks[0])
            action, _ = agent.act(ks[1], state, x)
            means = mean_rewards(env, theta, x)
            y = sample_reward(env, ks[2], theta, x, action)
        else:  # a data set with every action's mean reward (table_environment)
            x, means = table_round(env, ks[0])
            action, _ = agent.act(ks[1], state, x)
            y = jax.random.bernoulli(ks[2], means[action]).astype(means.dtype)
        played = (action >= 0) & (action < env.num_actions)  # act flags a bad round with action -1
        regret = jnp.where(played, jnp.max(means) - means[action], jnp.nan)
        state = agent.update(state, x, action, y)
        return state, (regret, None if record is None else record(state))

    drift = getattr(env, "drift", None)
    if drift is None:
        state, (regret, records) = jax.lax.scan(round_, agent.init(), keys)
        return state, regret, records

    # a drifting theta rides in the carry; its keys come from another stream, so the contexts,
    # actions and rewards keys are those of the stationary run
    drift_keys = jax.random.split(jax.random.fold_in(key, 1), num_rounds)

    def drifting_round(carry, inputs):
        state, theta_prev = carry
        ks, k_drift, t = inputs
        theta_t = drift(k_drift, theta_prev, t)
        state, out = round_(state, ks, theta_t)
        return (state, theta_t), out

    inputs = (keys, drift_keys, jnp.arange(num_rounds))
    (state, _), (regret, records) = jax.lax.scan(drifting_round, (agent.init(), theta), inputs)
    return state, regret, records


# simulate's compiled runs, most recent last: (id(env), id(agent), num_rounds) -> (env, agent, fn).
# The entry holds env and agent, so their ids are not reused while it lives, and a hit is checked
# by identity. A new env or agent (even an equal one: its closures are new) compiles anew.
_COMPILED_RUNS: OrderedDict[tuple, tuple] = OrderedDict()
COMPILED_RUNS_MAX = 16


def _compiled_runs(env: Environment, agent: Agent, num_rounds: int) -> Callable:
    """The jitted, vmapped cumulative regret of ``agent`` on ``env``, compiled once per (env, agent, num_rounds)."""
    key = (id(env), id(agent), num_rounds)
    hit = _COMPILED_RUNS.get(key)
    if hit is not None and hit[0] is env and hit[1] is agent:
        _COMPILED_RUNS.move_to_end(key)
        return hit[2]
    fn = jax.jit(jax.vmap(lambda k: jnp.cumsum(run_regret(k, env, agent, num_rounds))))
    _COMPILED_RUNS[key] = (env, agent, fn)
    while len(_COMPILED_RUNS) > COMPILED_RUNS_MAX:
        _COMPILED_RUNS.popitem(last=False)
    return fn


def clear_compiled_runs() -> None:
    """Forget every compiled program :func:`simulate` kept (and the env and agent each holds)."""
    _COMPILED_RUNS.clear()


def simulate(
    key: jax.Array,
    env: Environment,
    agent: Agent,
    num_rounds: int,
    num_runs: int = 1,
    chunk_size: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> RegretResult:
    """Simulate ``num_runs`` independent runs of ``agent`` on ``env`` for ``num_rounds`` rounds.

    Calls with the same ``env`` and ``agent`` objects and ``num_rounds`` reuse one compiled program
    (the last 16 such programs are kept, :func:`clear_compiled_runs` drops them; jax recompiles
    for a new chunk shape or jax setting).

    Args:
        key: PRNG key; run r uses ``jax.random.fold_in(key, r)`` for theta, contexts, actions, rewards.
        chunk_size: runs vmapped at once (default: all); memory grows linearly with it.
        progress: tqdm bar over chunks.
    Returns:
        RegretResult with the (num_runs, num_rounds) cumulative pseudo-regret.
    """
    _check(env, agent, num_rounds, num_runs, chunk_size)
    check_key(key)
    check_compatible(key, env, agent)
    chunk = min(int(chunk_size or num_runs), int(num_runs))
    fn = _compiled_runs(env, agent, int(num_rounds))
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_runs))
    num_chunks = -(-num_runs // chunk)
    pad = num_chunks * chunk - num_runs
    keys = jnp.concatenate([keys, keys[:pad]]) if pad else keys
    out = []
    start = time.perf_counter()
    bar = tqdm(total=num_runs, desc=desc or env.name or "simulate", unit="run", disable=not progress, leave=False)
    for c in range(num_chunks):
        res = np.asarray(fn(keys[c * chunk : (c + 1) * chunk]))
        out.append(res)
        bar.update(min(chunk, num_runs - c * chunk))
    bar.close()
    cumulative = np.concatenate(out)[:num_runs]
    bad = ~np.isfinite(cumulative)
    if bad.any():
        run, t = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"env: run {run} gave a non-finite regret at round {t} (a NaN/inf context, theta or mean reward, "
            "or an action flagged invalid by the agent)"
        )
    return RegretResult(cumulative, time.perf_counter() - start)


def plot_regret(results: dict, path: str | os.PathLike | None = None, title: str = "", ax: Any = None) -> Any:
    """Mean cumulative regret with +- 2 s.e. bands, one line per agent; saved to ``path`` if given."""
    plt = pyplot(headless=ax is None and path is not None)

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, res in results.items():
        t = np.arange(1, res.cumulative.shape[1] + 1)
        ax.plot(t, res.mean, label=name)
        ax.fill_between(t, res.mean - 2 * res.se, res.mean + 2 * res.se, alpha=0.2)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret")
    runs = next(iter(results.values())).cumulative.shape[0] if results else 0
    ax.set_title(f"{title} ({runs} runs, bands = 2 s.e.)" if title else f"{runs} runs, bands = 2 s.e.", fontsize=9)
    ax.legend(fontsize=8)
    if fig is not None:
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
            plt.close(fig)
    return ax


def regret_ratio(baseline: RegretResult, agent: RegretResult) -> tuple[float, float]:
    """Ratio of mean final regrets baseline / agent and its delta-method standard error.

    The runs are taken as paired (the same theta, contexts and noise in run r, as
    :func:`simulate` gives agents simulated with the same key), so the s.e. uses their covariance.
    """
    b, a = np.asarray(baseline.cumulative)[:, -1], np.asarray(agent.cumulative)[:, -1]
    if b.shape != a.shape:
        raise ValueError(f"agent: expected as many runs as the baseline ({b.shape[0]}), got {a.shape[0]}")
    n = b.shape[0]
    r = b.mean() / a.mean()
    if n < 2:
        return float(r), float("nan")
    cov = np.cov(b, a)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1]) / (n * a.mean() ** 2)
    return float(r), float(np.sqrt(max(var, 0.0)))
