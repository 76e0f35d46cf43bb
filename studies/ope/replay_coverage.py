"""Replay (ope.replay, Li et al. 2011) of a learning dTS agent on uniform logs: estimate vs the true value.

Environment: K = 10 actions, d = 5, a linear diffusion prior (L = 2) from which theta is drawn
once, contexts x ~ U[-1, 1]^d, rewards x^T theta_a + N(0, 1). The agent: dTS with that prior,
learning from scratch. Each of ``--draws`` log draws has ``--rows`` uniform-random rounds; the
replay accepts about rows / K of them (T_i) and estimates the agent's mean reward over its first
T_i online rounds.

The true value V(T) = E[(1/T) sum_{t <= T} x_t^T theta_{a_t}] of the agent run online in the
same environment comes from ``--runs`` independent online runs (lax.scan, vmapped over runs);
its Monte-Carlo s.e. is stored. Also stored: the spread of the online runs' mean reward at T
(what the replay's se should match) against the replay's mean reported se.

    PYTHONPATH=. python studies/ope/replay_coverage.py [--draws 20] [--rows 5000] [--runs 400]
    -> studies/ope/replay_coverage.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import DiffusionPrior, Gaussian
from dts_ppl.agents import dts
from dts_ppl.analysis import ope
from dts_ppl.core.sampling import sample_prior

OUT = Path(__file__).with_name("replay_coverage.json")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--actions", type=int, default=10)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    K, d, n = args.actions, 5, args.rows
    rng = np.random.default_rng(0)
    W = [jnp.asarray(rng.uniform(-1, 1, (d, d))), jnp.asarray(rng.uniform(-1, 1, (d, d)))]
    prior = DiffusionPrior.linear(W, [1.0, 1.0, 1.0])
    theta = jnp.asarray(sample_prior(jax.random.PRNGKey(0), prior, 1, num_actions=K)[1][0])
    agent = dts(prior, Gaussian(1.0), K)
    start = time.perf_counter()

    rows = []
    for i in range(args.draws):
        g = np.random.default_rng(100 + i)
        X = g.uniform(-1, 1, (n, d))
        A = g.integers(0, K, n)
        y = np.einsum("nd,nd->n", X, np.asarray(theta)[A]) + g.normal(size=n)
        est = ope.replay(agent, jax.random.PRNGKey(1000 + i), X, A, y, np.full(n, 1.0 / K)).estimate
        rows.append({"T": est.n, "value": est.value, "se": est.se, "lower": est.lower, "upper": est.upper})
    T_max = max(r["T"] for r in rows)

    def online(key):
        def step(carry, k):
            state = carry
            kx, ka, ky = jax.random.split(k, 3)
            x = jax.random.uniform(kx, (d,), minval=-1.0, maxval=1.0)
            a, _ = agent.act(ka, state, x)
            mean = x @ theta[a]
            r = mean + jax.random.normal(ky, ())
            return agent.update(state, x, a, r), (mean, r)

        _, (means, rewards) = jax.lax.scan(step, agent.init(), jax.random.split(key, T_max))
        return means, rewards

    means, rewards = jax.jit(jax.vmap(online))(jax.random.split(jax.random.PRNGKey(7), args.runs))
    means, rewards = np.asarray(means), np.asarray(rewards)
    csum_mean = np.cumsum(means, axis=1) / np.arange(1, T_max + 1)  # (runs, T): running mean of x^T theta_a
    csum_reward = np.cumsum(rewards, axis=1) / np.arange(1, T_max + 1)
    for r in rows:
        t = r["T"] - 1
        r["truth"] = float(csum_mean[:, t].mean())
        r["truth_mc_se"] = float(csum_mean[:, t].std(ddof=1) / np.sqrt(args.runs))
        r["covers"] = bool(r["lower"] <= r["truth"] <= r["upper"])
        r["online_sd_of_mean_reward"] = float(csum_reward[:, t].std(ddof=1))  # what se should be
    covered = sum(r["covers"] for r in rows)
    z = np.array([(r["value"] - r["truth"]) / r["se"] for r in rows])
    out = {
        "command": "PYTHONPATH=. python studies/ope/replay_coverage.py "
        f"--draws {args.draws} --rows {n} --runs {args.runs} --actions {K}",
        "python": platform.python_version(),
        "jax": jax.__version__,
        "K": K,
        "d": d,
        "rows": n,
        "runs": args.runs,
        "coverage": {"covered": int(covered), "draws": args.draws, "fraction": covered / args.draws},
        "mean_T": float(np.mean([r["T"] for r in rows])),
        "mean_reported_se": float(np.mean([r["se"] for r in rows])),
        "mean_online_sd_of_mean_reward": float(np.mean([r["online_sd_of_mean_reward"] for r in rows])),
        "sd_of_replay_values_across_draws": float(np.std([r["value"] for r in rows], ddof=1)),
        "mean_z": float(z.mean()),
        "sd_z": float(z.std(ddof=1)),
        "seconds": time.perf_counter() - start,
        "draws_detail": rows,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "draws_detail"}, indent=1))


if __name__ == "__main__":
    main()
