"""Cost of the reliability changes on dTS updates, as time ratios measured interleaved in one process.

Variants of one jitted, vmapped scan of dTS rounds (act + update), on the same data:

- ``guarded``: the package as it is (whitened-eigen ``condition`` + the guard of
  ``dts_ppl.agents.guard``: the proposal checked whole, then written row by row if accepted);
- ``no guard``: the guard's commit patched to write every proposal unconditionally, with no
  finiteness check (what the guard costs);
- ``cholesky condition, no guard``: additionally ``condition`` patched back to the former
  Cholesky form P = Q + G (kept below for this measurement only; it is the form that produced
  NaN at reward noise 1e-6 in float32), i.e. the code before issue 16.

Usage: python studies/performance/guard_overhead.py [--json studies/performance/results/guard_overhead.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

import dts_ppl.core.inference as inference
from dts_ppl import Gaussian
from dts_ppl.agents import dts
from dts_ppl.agents import guard as guard_module
from dts_ppl.core.linalg import psd_cholesky, symmetrise
from dts_ppl.experiments.synthetic import random_linear_prior

dts_module = importlib.import_module("dts_ppl.agents.dts")  # the module (dts_ppl.agents.dts is also the factory's name)


def cholesky_condition(prior_prec, G, b):
    """The pre-issue-16 ``condition`` (forms P = Q + G), for the timing comparison only."""
    chol = psd_cholesky(prior_prec + G)
    gain = cho_solve((chol, True), prior_prec)
    shift = cho_solve((chol, True), b[:, None])[:, 0]
    up = inference.Message(symmetrise(gain.T @ G), gain.T @ b)
    n = chol.shape[-1]
    linv = solve_triangular(chol, jnp.eye(n, dtype=chol.dtype), lower=True)
    return inference.Conditionals(gain, shift, psd_cholesky(symmetrise(linv.T @ linv))), up


def build(K, d, L, runs, rounds, guard=True, old_condition=False):
    """A jitted function (keys) -> final states of ``runs`` vmapped dTS runs of ``rounds`` rounds."""
    saved = (guard_module._commit, dts_module.core.condition, guard_module.all_finite)
    if not guard:
        commit = guard_module._commit
        guard_module._commit = lambda state, proposal, ok, rejected: commit(state, proposal, True, 0)
        guard_module.all_finite = lambda tree: jnp.ones((), bool)
    if old_condition:
        dts_module.core.condition = cholesky_condition
        inference.condition = cholesky_condition
    try:
        prior = random_linear_prior(jax.random.PRNGKey(0), d, (d,) * L)
        agent = dts(prior, Gaussian(1.0), K)
        theta = jax.random.normal(jax.random.PRNGKey(1), (K, d))

        def run(key):
            def round_(state, k):
                k1, k2, k3 = jax.random.split(k, 3)
                x = jax.random.uniform(k1, (d,), minval=-1, maxval=1)
                a, _ = agent.act(k2, state, x)
                y = theta[a] @ x + jax.random.normal(k3)
                return agent.update(state, x, a, y), None

            return jax.lax.scan(round_, agent.init(), jax.random.split(key, rounds))[0]

        fn = jax.jit(jax.vmap(run))
        keys = jax.random.split(jax.random.PRNGKey(2), runs)
        jax.block_until_ready(fn(keys))  # compile while the patches are in place
    finally:
        guard_module._commit, dts_module.core.condition, guard_module.all_finite = saved
        inference.condition = saved[1]
    return fn, keys


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--json", default=None)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    out = []
    for K, d, L, runs, rounds in [(100, 5, 2, 4, 200), (2000, 10, 2, 4, 200)]:
        variants = {
            "guarded": build(K, d, L, runs, rounds),
            "no guard": build(K, d, L, runs, rounds, guard=False),
            "cholesky condition, no guard": build(K, d, L, runs, rounds, guard=False, old_condition=True),
        }
        times = {k: [] for k in variants}
        for _ in range(args.reps):  # interleaved
            for name, (fn, keys) in variants.items():
                t = time.perf_counter()
                jax.block_until_ready(fn(keys))
                times[name].append(time.perf_counter() - t)
        med = {k: float(np.median(v)) for k, v in times.items()}
        row = dict(
            K=K,
            d=d,
            L=L,
            runs=runs,
            rounds=rounds,
            median_seconds=med,
            guard_ratio=med["guarded"] / med["no guard"],
            condition_ratio=med["no guard"] / med["cholesky condition, no guard"],
            total_ratio=med["guarded"] / med["cholesky condition, no guard"],
        )
        print(json.dumps(row))
        out.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"command": "python studies/performance/guard_overhead.py --json " + args.json, "rows": out},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
