"""Eager calls against jitted ones: the median ``update`` and ``act`` of every agent, one process, interleaved.

Each agent factory compiles its functions once per input shape, so a plain Python loop (no
``jax.jit`` by the user) should cost about what the same calls under the user's ``jax.jit`` cost.
For every agent (K = 8, d = 3, Gaussian rewards; GLM agents with Bernoulli rewards) it times,
after warm-up, blocks of ``--calls`` eager calls and the same calls through ``jax.jit(agent.update)``
/ ``jax.jit(agent.act)``, alternating the two, and reports the medians per call and their ratio.
Neither loop waits for its results (JAX dispatches asynchronously; an eager call on moderate,
valid inputs checks them on the host and reads nothing back); the "jit waited" columns time the
jitted calls waiting for every result, the floor of any call that reads its result. Ratios are of the median blocks and of the
best (fastest) blocks, the latter less sensitive to other processes on a shared machine.

    PYTHONPATH=. python studies/performance/eager.py --json studies/performance/results/eager.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import Bernoulli, Gaussian
from dts_ppl.agents import (
    bank_ts,
    dts,
    exact_ts,
    glm_ts,
    hier_ts,
    lin_ts,
    lin_ucb,
    random_policy,
    theta_marginal,
    ucb_glm,
)
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior
from studies.common import save_json

K, D = 8, 3


def agents():
    prior = random_linear_prior(jax.random.PRNGKey(0), D, (D, 2))
    mlp = random_mlp_prior(jax.random.PRNGKey(1), D, 2, 16)
    m = theta_marginal(prior)
    bank = jax.random.normal(jax.random.PRNGKey(2), (2000, D))
    return {
        "dts": (dts(prior, Gaussian(1.0), K), False),
        "dts (mlp)": (dts(mlp, Gaussian(1.0), K), False),
        "hier_ts": (hier_ts(prior, Gaussian(1.0), K), False),
        "lin_ts": (lin_ts(m, Gaussian(1.0), K), False),
        "lin_ucb": (lin_ucb(m, Gaussian(1.0), K), False),
        "glm_ts": (glm_ts(m, Bernoulli(), K, history=500), True),
        "ucb_glm": (ucb_glm(m, Bernoulli(), K, history=500), True),
        "exact_ts": (exact_ts(prior, Gaussian(1.0), K), False),
        "bank_ts": (bank_ts(bank, Gaussian(1.0), K, warn_ess=0.0), False),
        "random": (random_policy(K), False),
    }


def time_calls(fn, args_list):
    t = time.perf_counter()
    out = None
    for args in args_list:
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / len(args_list)


def time_calls_waited(fn, args_list):
    """Like :func:`time_calls`, waiting for every call's result (what an eager call's status read costs)."""
    t = time.perf_counter()
    for args in args_list:
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t) / len(args_list)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.uniform(-1, 1, (args.calls, D)))
    A = jnp.asarray(rng.integers(0, K, args.calls))
    rows = []
    for name, (agent, binary) in agents().items():
        y = jnp.asarray(rng.integers(0, 2, args.calls) if binary else rng.normal(size=args.calls), X.dtype)
        state = agent.init()
        keys = list(jax.random.split(jax.random.PRNGKey(3), args.calls))
        upd = [(state, X[i], A[i], y[i]) for i in range(args.calls)]
        act = [(keys[i], state, X[i]) for i in range(args.calls)]
        jit_update, jit_act = jax.jit(agent.update), jax.jit(agent.act)
        for fn, calls in ((agent.update, upd), (jit_update, upd), (agent.act, act), (jit_act, act)):
            time_calls(fn, calls[:3])  # warm-up: compile
        times = {
            k: [] for k in ("update eager", "update jit", "update jit waited", "act eager", "act jit", "act jit waited")
        }
        for _ in range(args.blocks):  # interleaved
            times["update eager"].append(time_calls(agent.update, upd))
            times["update jit"].append(time_calls(jit_update, upd))
            times["update jit waited"].append(time_calls_waited(jit_update, upd))
            times["act eager"].append(time_calls(agent.act, act))
            times["act jit"].append(time_calls(jit_act, act))
            times["act jit waited"].append(time_calls_waited(jit_act, act))
        med = {k: float(np.median(v)) for k, v in times.items()}
        best = {k: float(np.min(v)) for k, v in times.items()}
        row = {
            "agent": name,
            **{f"{k} (us)": 1e6 * v for k, v in med.items()},
            "update ratio": med["update eager"] / med["update jit"],
            "act ratio": med["act eager"] / med["act jit"],
            "update ratio, best blocks": best["update eager"] / best["update jit"],
            "act ratio, best blocks": best["act eager"] / best["act jit"],
            "blocks (us)": {k: [1e6 * t for t in v] for k, v in times.items()},
        }
        rows.append(row)
        print(
            f"{name:10s} update {row['update eager (us)']:8.1f} us eager / {row['update jit (us)']:8.1f} us jit"
            f" = {row['update ratio']:.2f}x   act {row['act eager (us)']:8.1f} / {row['act jit (us)']:8.1f}"
            f" = {row['act ratio']:.2f}x",
            flush=True,
        )
    ratios = [r[f"{f} ratio"] for r in rows for f in ("update", "act")]
    best_ratios = [r[f"{f} ratio, best blocks"] for r in rows for f in ("update", "act")]
    out = {
        "load_average": list(os.getloadavg()),
        "worst_ratio": max(ratios),
        "worst_ratio_best_blocks": max(best_ratios),
        "command": "python studies/performance/eager.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(jax.devices()[0]),
        "x64": bool(jax.config.jax_enable_x64),
        "K": K,
        "d": D,
        "rows": rows,
    }
    if args.json:
        save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
