"""``ope.agent_policy`` on the K = 500 case, the implementation the issue timed against today's, in one process.

The K = 500 case of studies/ope/k500_case.py (a dTS agent trained on 1,000 uniform rounds,
d = 5, S = 1,000 Thompson draws per row, float64). "original" is the implementation the issue
timed (63 s on 5,000 rows): one set of draws per row, every call compiled again, as copied in
studies/ope/k500_case.py (:func:`agent_policy_per_row`, chunked over rows so that it fits in
memory). "after" is :func:`dts_ppl.analysis.ope.agent_policy`: one set of draws per block of
rows, each draw's context-free work (the latent chain, the standard normals) computed once per
draw and stored, then the scores of every (row, draw) from it, in float32 (its default
``precision="single"``); "after_agent_dtype" is the same call with ``precision="agent"`` (the
scores in the agent's float64). Each call is timed whole (wall and process CPU seconds): a first
call of each (compiling), then later calls, alternating: ``--reps`` of the original (with
``--reps 0`` its first call stands for its later calls: it compiles at every call) and
max(``--reps``, ``--after-calls``) of each new variant. The original and the new
implementation use different keys, so their probabilities differ by Monte-Carlo noise only:
reported as the largest difference in units of its standard error. The two precisions use the
same keys: reported as the fraction of (row, draw) winners that differ.

    PYTHONPATH=. python studies/performance/agent_policy_calls.py --rows 5000 --reps 1 \
        --json studies/performance/results/agent_policy_calls.json
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from dts_ppl import Gaussian  # noqa: E402
from dts_ppl.agents import dts  # noqa: E402
from dts_ppl.analysis import ope  # noqa: E402
from studies.common import save_json  # noqa: E402
from studies.ope.k500_case import agent_policy_per_row, problem  # noqa: E402


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--actions", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--reps", type=int, default=0)
    p.add_argument("--after-calls", type=int, default=3, help="later calls of each new variant (at least --reps)")
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
    fns = {
        "original": agent_policy_per_row,
        "after": ope.agent_policy,
        "after_agent_dtype": functools.partial(ope.agent_policy, precision="agent"),
    }
    first = {name: timed(fn, agent, key, state, X, S) for name, fn in fns.items()}
    a, b, b64 = (first[name][0] for name in fns)
    se = np.sqrt((a * (1 - a) + b * (1 - b)) / S) + 1e-12
    times = {name: {"wall": [], "cpu": []} for name in fns}
    later = max(args.reps, args.after_calls, 1)
    for rep in range(later):
        for name, fn in fns.items():
            if rep >= args.reps and name == "original":
                continue  # --reps 0: the original compiles at every call, so its first call is its later call
            _, wall, cpu = timed(fn, agent, key, state, X, S)
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    if not times["original"]["wall"]:
        times["original"] = {"wall": [first["original"][1]], "cpu": [first["original"][2]]}
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
        "rows_sum_to_one": float(np.max(np.abs(b.sum(1) - 1))),
        "max_abs_difference": float(np.max(np.abs(a - b))),
        "max_difference_in_se": float(np.max(np.abs(a - b) / se)),
        "mean_abs_difference": float(np.mean(np.abs(a - b))),
        # same keys: a (row, draw) whose winner differs moves 1/S of probability between two actions
        "precision_winners_differing": float(np.sum(np.abs(b - b64)) / 2 / n),
        "precision_max_abs_difference": float(np.max(np.abs(b - b64))),
        "first_call": {name: {"wall": f[1], "cpu": f[2]} for name, f in first.items()},
        "later_calls": {name: {"median_" + k: v for k, v in m.items()} for name, m in med.items()},
        "later_calls_raw": times,
        "speedup_wall": med["original"]["wall"] / med["after"]["wall"],
        "speedup_cpu": med["original"]["cpu"] / med["after"]["cpu"],
        "speedup_first_call_wall": first["original"][1] / first["after"][1],
        "speedup_first_call_cpu": first["original"][2] / first["after"][2],
        "speedup_wall_agent_dtype": med["original"]["wall"] / med["after_agent_dtype"]["wall"],
        "speedup_cpu_agent_dtype": med["original"]["cpu"] / med["after_agent_dtype"]["cpu"],
    }
    print(
        f"rows {n}: original {med['original']['wall']:.2f} s wall ({med['original']['cpu']:.2f} cpu), after "
        f"{med['after']['wall']:.2f} s ({med['after']['cpu']:.2f} cpu): {out['speedup_wall']:.1f}x wall, "
        f"{out['speedup_cpu']:.1f}x cpu; first calls {first['original'][1]:.1f} / {first['after'][1]:.1f} s; "
        f"largest difference {out['max_difference_in_se']:.1f} s.e.; agent dtype "
        f"{med['after_agent_dtype']['wall']:.2f} s ({out['speedup_wall_agent_dtype']:.1f}x wall); "
        f"winners differing between precisions {out['precision_winners_differing']:.1e}",
        flush=True,
    )
    if args.json:
        save_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
