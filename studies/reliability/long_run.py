"""A long jitted run with corrupted rewards: does the guard keep dTS learning?

dTS on the paper's linear-diffusion problem (K = 100, d = 5, L = 2, Gaussian rewards), float32,
100,000 rounds per run. In the corrupted runs every round's reward is replaced, independently with
probability 1% each, by NaN, by inf or by 1e30 (a finite reward whose square float32 cannot hold);
the clean runs use the same keys without corruption. The pseudo-regret of a corrupted round is
counted as in any other round (the agent played; its feedback was lost).

Reports, per run: the final regret of both, the rejected count against the number of corrupted
rounds, and whether every state leaf is finite; writes JSON.

    python studies/reliability/long_run.py --runs 4 --rounds 100000 \
        --json studies/reliability/results/long_run.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents import dts
from dts_ppl.bandits.envs import mean_rewards, sample_reward
from dts_ppl.experiments.synthetic import paper_environment

BAD = (jnp.nan, jnp.inf, 1e30)


def run(key, env, agent, num_rounds: int, corrupt: float):
    """(final regret, rejected, corrupted rounds, state finite) of one run."""
    k_theta, k_ctx, k_act, k_rew, k_bad = jax.random.split(key, 5)
    theta = env.sample_theta(k_theta)
    keys = jnp.stack([jax.random.split(k, num_rounds) for k in (k_ctx, k_act, k_rew, k_bad)], axis=1)

    def round_(carry, ks):
        state, regret, bad_count = carry
        x = env.sample_context(ks[0])
        action, _ = agent.act(ks[1], state, x)
        means = mean_rewards(env, theta, x)
        y = sample_reward(env, ks[2], theta, x, action)
        u = jax.random.uniform(ks[3])
        which = jnp.floor(u / corrupt).astype(jnp.int32)  # 0, 1, 2: one of BAD, each with probability corrupt
        bad = (which < len(BAD)) & (corrupt > 0)
        y = jnp.where(bad, jnp.asarray(BAD, y.dtype)[jnp.clip(which, 0, len(BAD) - 1)], y)
        regret = regret + jnp.max(means) - means[action]
        return (agent.update(state, x, action, y), regret, bad_count + bad), None

    zero = jnp.zeros((), jnp.float32)
    (state, regret, n_bad), _ = jax.lax.scan(round_, (agent.init(), zero, jnp.zeros((), jnp.int32)), keys)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(state)]))
    return regret, state.rejected, n_bad, finite


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=100_000)
    p.add_argument("--corrupt", type=float, default=0.01, help="probability of each bad kind per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", False)
    env, prior = paper_environment(jax.random.PRNGKey(args.seed), "linear", "linear", 100, 5, (5, 2), 0)
    agent = dts(prior, env.likelihood, 100)
    one = jax.jit(lambda k, c: run(k, env, agent, args.rounds, c))
    rows = []
    for r in range(args.runs):
        key = jax.random.fold_in(jax.random.PRNGKey(args.seed + 1), r)
        t0 = time.perf_counter()
        clean = [np.asarray(v).tolist() for v in one(key, 0.0)]
        dirty = [np.asarray(v).tolist() for v in one(key, args.corrupt)]
        rows.append(
            {
                "run": r,
                "regret_clean": clean[0],
                "regret_corrupted": dirty[0],
                "ratio": dirty[0] / clean[0],
                "rejected": dirty[1],
                "corrupted_rounds": dirty[2],
                "state_finite": bool(dirty[3]) and bool(clean[3]),
                "seconds": time.perf_counter() - t0,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    ratios = np.array([row["ratio"] for row in rows])
    out = {
        "command": "python studies/reliability/long_run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(jax.devices()[0]),
        "dtype": "float32",
        "problem": env.name,
        "rounds": args.rounds,
        "corrupt_per_kind": args.corrupt,
        "runs": rows,
        "mean_ratio": float(ratios.mean()),
        "max_ratio": float(ratios.max()),
        "all_counted": all(row["rejected"] == row["corrupted_rounds"] for row in rows),
        "all_finite": all(row["state_finite"] for row in rows),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.json)), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)
    return out


if __name__ == "__main__":
    main()
