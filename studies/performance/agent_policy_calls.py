"""``ope.agent_policy`` per call, before and after it kept its compiled function, interleaved in one process.

The K = 500 case of studies/ope/k500_case.py (a dTS agent trained on uniform logs, d = 5, S =
1,000 Thompson draws per row, float64). "before" is the implementation it replaced, copied below
as :func:`agent_policy_before`: an eager check that vmapped ``propensities`` over the draws of row
0 and a ``jax.jit`` of a new lambda at every call, so every call compiled again. "after" is
:func:`dts_ppl.analysis.ope.agent_policy`, which compiles once per agent and input shape. Both
give the same probabilities on the same key (checked here). Every call is timed whole (wall and
process CPU seconds), the two alternating, after one warm-up call of each.

    PYTHONPATH=. python studies/performance/agent_policy_calls.py --rows 100 --reps 3 \
        --json studies/performance/results/agent_policy_calls.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from dts_ppl import Gaussian  # noqa: E402
from dts_ppl.agents import dts  # noqa: E402
from dts_ppl.agents import policy as _policy  # noqa: E402
from dts_ppl.analysis import ope  # noqa: E402
from studies.common import save_json  # noqa: E402
from studies.ope.k500_case import problem  # noqa: E402


def agent_policy_before(agent, key, state, X, num_samples=1000, mask=None, rows_per_block=None):
    """``ope.agent_policy`` as it was before it cached its compiled function (same draws, same output)."""
    X = jnp.asarray(X)
    _policy.propensities(agent, key, state, X[0], num_samples, mask)  # eager checks on one row
    mask = _policy.check_mask(mask, agent.spec.num_actions)
    n, K = X.shape[0], agent.spec.num_actions
    if rows_per_block is None:
        rows_per_block = max(1, min(n, ope.SCORE_BUDGET // (num_samples * K)))
    blocks = -(-n // rows_per_block)
    padded = jnp.concatenate([X, jnp.repeat(X[-1:], blocks * rows_per_block - n, axis=0)])
    padded = padded.reshape((blocks, rows_per_block) + X.shape[1:])
    block_keys = jax.random.split(key, blocks)

    def block(args):
        k, xs = args
        keys = jax.random.split(k, num_samples)

        def row(x):
            scores = jax.vmap(lambda kk: _policy.masked_scores(agent, kk, state, x, mask))(keys)
            return jnp.zeros(K, scores.dtype).at[jnp.argmax(scores, axis=1)].add(1.0) / num_samples

        return jax.vmap(row)(xs)

    probs = jax.jit(lambda ks, xs: jax.lax.map(block, (ks, xs)))(block_keys, padded)
    return np.asarray(probs, dtype=float).reshape(blocks * rows_per_block, K)[:n]


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100)
    p.add_argument("--actions", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    K, d, n, S = args.actions, 5, args.rows, args.samples
    prior, _, X, A, y = problem(0, K, d, 1000 + n, noise=1.0)
    agent = dts(prior, Gaussian(1.0), K)
    state = jax.jit(agent.update_batch)(
        agent.init(), jnp.asarray(X[:1000]), jnp.asarray(A[:1000]), jnp.asarray(y[:1000])
    )
    X = np.asarray(X[1000:])
    key = jax.random.PRNGKey(2)
    fns = {"before": agent_policy_before, "after": ope.agent_policy}
    first = {name: timed(fn, agent, key, state, X, S) for name, fn in fns.items()}
    same = float(np.max(np.abs(first["before"][0] - first["after"][0])))
    times = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(args.reps):
        for name, fn in fns.items():
            _, wall, cpu = timed(fn, agent, key, state, X, S)
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    med = {name: {k: float(np.median(v)) for k, v in t.items()} for name, t in times.items()}
    out = {
        "command": "PYTHONPATH=. python studies/performance/agent_policy_calls.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(jax.devices()[0]),
        "load_average": list(os.getloadavg()),
        "K": K,
        "d": d,
        "rows": n,
        "num_samples": S,
        "max_abs_difference": same,
        "first_call": {name: {"wall": f[1], "cpu": f[2]} for name, f in first.items()},
        "later_calls": {name: {"median_" + k: v for k, v in m.items()} for name, m in med.items()},
        "later_calls_raw": times,
        "speedup_wall": med["before"]["wall"] / med["after"]["wall"],
        "speedup_cpu": med["before"]["cpu"] / med["after"]["cpu"],
    }
    print(
        f"rows {n}: before {med['before']['wall']:.2f} s wall ({med['before']['cpu']:.2f} cpu), after "
        f"{med['after']['wall']:.2f} s ({med['after']['cpu']:.2f} cpu): {out['speedup_wall']:.1f}x wall, "
        f"{out['speedup_cpu']:.1f}x cpu; first calls {first['before'][1]:.1f} / {first['after'][1]:.1f} s; "
        f"max |difference| {same:.1e}",
        flush=True,
    )
    if args.json:
        save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
