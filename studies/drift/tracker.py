"""The two-rate tracker on drifting rewards: the shared part walks, each action's own part forgets.

Thompson sampling on dts_ppl.core.tracker (agents.tracker.tracking_ts): the shared part
u = f_1(psi_1) follows a random walk of q C a round, each action's own part e_a an AR(1) process
that relaxes toward its conditional prior N(0, S_1) at the rate gamma (docs/math.md section 11).
The stated rule, fixed before the runs (core.tracker.tracking_rule): q = 1 / tau_v (the walk's
own step of u when theta moves one prior s.d. every tau_v rounds), gamma = 1 - 1 / W with W the
window of core.forgetting.drift_window (the rule of the ``discount=`` rows of forgetting.py),
tau_v = TAU for walk-TAU and TAU / 2 for abrupt-TAU. The grid beside it moves one rate at a time
(q x 4, x 1/4, 0; W x 2, / 2, gamma = 1). The "matched rule" (stated after the walk's grid had
run, so it is checked on a held-out seed; tracking_rule(own="matched")): gamma = 1 - 1 / tau_v,
the own part's AR(1) step (1 - gamma) S_1 equal to the walk's own step S_1 / tau_v, as q C is
u's. "walk's steps": the tracker told the walk's own model (gamma = 1, each e_a a random walk of
S_1 / tau_v a round), which differs from the exact filter only by the projection of u's steps.
On the stationary
environment: the walk's rules forced on it, and q = 0, gamma = 1 (no drift: dTS's exact
posterior on another code path).

The runs are those of studies/drift/forgetting.py (same problem, seed, keys: run r sees the same
theta path, contexts and noise), so every row is paired with its no-discount and discounted dTS
rows, read from studies/drift/results/forgetting.json by make_doc.py. One compiled simulation per
batch (vmap over cell x run, the rates traced). Results are written after every batch; a rerun
with the same settings skips done batches.

    PYTHONPATH=. python studies/drift/tracker.py
    # batches side by side, each to its own file (make_doc.py reads tracker*.json):
    PYTHONPATH=. python studies/drift/tracker.py --only walk-1000 --json studies/drift/results/tracker-walk.json
    # a held-out seed (another prior, theta paths, contexts and noise) with its own dTS baseline:
    PYTHONPATH=. python studies/drift/tracker.py --seed 1 --only walk-1000,abrupt-1000 --dts-baseline \
        --json studies/drift/results/tracker-heldout.json
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.dts import dts
from dts_ppl.agents.tracker import tracking_ts
from dts_ppl.bandits.envs import drift_process
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.core.forgetting import effective_window
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.tracker import tracking_rule
from studies.common import command_line, results_dir, resume_json, save_json
from studies.drift.forgetting import CONTEXT_SECOND_MOMENT, CURVE_EVERY, NOISE, K, diagnostics, problem

GRID = (
    ("rule", 1.0, 1.0),
    ("grid gamma = 1", 1.0, None),
    ("grid 2W", 1.0, 2.0),
    ("grid W/2", 1.0, 0.5),
    ("grid 4q", 4.0, 1.0),
    ("grid q/4", 0.25, 1.0),
    ("grid q = 0", 0.0, 1.0),
    ("matched rule", 1.0, "tau"),
    ("walk's steps", 1.0, "walk"),
)  # (chosen by, factor on q, factor on W; None: gamma = 1; "tau": W = tau_v, the walk's own step;
#    "walk": gamma = 1 and each e_a a random walk of S_1 / tau_v a round: the walk's own model,
#    which differs from the exact filter (walk_oracle.py) only by the projection of u's steps)


def plan(prior, tau: int, runs: int, names: tuple[str, ...] = ()) -> list[dict]:
    """The batches: walk-TAU and abrupt-TAU (rule and grid), stationary (the walk's rules forced, no drift).

    ``names``: only the cells chosen by these (empty: all).
    """
    v1 = diagnostics(prior)["s1_var_per_coordinate"]

    def cell(kind, tau_v, chosen_by, fq, fw, scale, every):
        q, g = tracking_rule(NOISE**2, K, CONTEXT_SECOND_MOMENT, v1, tau_v)
        w = effective_window(g)
        gamma = 1.0 if fw in (None, "walk") else 1.0 - 1.0 / (tau_v if fw == "tau" else fw * w)
        env = kind if kind == "stationary" else f"{kind}-{tau}"
        return dict(
            env=env,
            kind=kind,
            tau=None if kind == "stationary" else tau,
            walk_scale=scale,
            change_every=every,
            chosen_by=chosen_by,
            shared_step=fq * q,
            own_discount=gamma,
            own_window=None if gamma == 1.0 else 1.0 / (1.0 - gamma),
            own_step=1.0 / tau_v if fw == "walk" else 0.0,
        )

    grid = [g for g in GRID if not names or g[0] in names]
    walk = [cell("walk", float(tau), c, fq, fw, 1.0 / math.sqrt(tau), 0) for c, fq, fw in grid]
    abrupt = [cell("abrupt", tau / 2.0, c, fq, fw, 0.0, tau) for c, fq, fw in grid]
    stationary = [
        cell("stationary", float(tau), "walk's rule", 1.0, 1.0, 0.0, 0),
        cell("stationary", float(tau), "walk's matched rule", 1.0, "tau", 0.0, 0),
        cell("stationary", float(tau), "no drift (q = 0, gamma = 1)", 0.0, None, 0.0, 0),
    ]
    stationary = [c for c in stationary if not names or c["chosen_by"] in names]
    batches = [
        {"name": f"walk-{tau}", "runs": runs, "cells": walk},
        {"name": f"abrupt-{tau}", "runs": runs, "cells": abrupt},
        {"name": "stationary", "runs": runs, "cells": stationary},
    ]
    return [b for b in batches if b["cells"]]


def run_dts(env, prior, batch: dict, rounds: int, seed: int) -> np.ndarray:
    """(runs, rounds) cumulative regret of dTS without discount (the plain agent) on ``batch``'s environment."""
    c = batch["cells"][0]
    base = jax.random.PRNGKey(seed + 1)
    drifting = drift_process(env, c["walk_scale"], c["change_every"])
    agent = dts(prior, Gaussian(NOISE), num_actions=K)

    def one(run):
        return jnp.cumsum(run_regret(jax.random.fold_in(base, run), drifting, agent, rounds))

    return np.asarray(jax.jit(jax.vmap(one))(jnp.arange(batch["runs"])))


def run_batch(env, prior, batch: dict, rounds: int, seed: int) -> np.ndarray:
    """(cells, runs, rounds) cumulative regret of every cell of ``batch``, one compiled vmap."""
    cells, runs = batch["cells"], batch["runs"]
    scale = jnp.asarray([c["walk_scale"] for c in cells], jnp.float32)
    every = jnp.asarray([c["change_every"] for c in cells], jnp.int32)
    q = jnp.asarray([c["shared_step"] for c in cells], jnp.float32)
    g = jnp.asarray([c["own_discount"] for c in cells], jnp.float32)
    r = jnp.asarray([c["own_step"] for c in cells], jnp.float32)
    base = jax.random.PRNGKey(seed + 1)

    def one(s, e, qq, gg, rr, run):
        agent = tracking_ts(prior, NOISE, K, qq, gg, rr)
        return jnp.cumsum(run_regret(jax.random.fold_in(base, run), drift_process(env, s, e), agent, rounds))

    c_idx, r_idx = np.meshgrid(np.arange(len(cells)), np.arange(runs), indexing="ij")
    c_idx, r_idx = c_idx.ravel(), r_idx.ravel()
    out = jax.jit(jax.vmap(one))(scale[c_idx], every[c_idx], q[c_idx], g[c_idx], r[c_idx], jnp.asarray(r_idx))
    return np.asarray(out).reshape(len(cells), runs, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tau", type=int, default=1000, help="the drift time scale in rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only these batches (comma-separated names)")
    parser.add_argument("--cells", default="", help="run only the cells chosen by these (comma-separated)")
    parser.add_argument(
        "--dts-baseline",
        action="store_true",
        help="also run dTS without discount (for a seed forgetting.py has not run)",
    )
    parser.add_argument("--json", default=str(results_dir("drift") / "tracker.json"))
    args = parser.parse_args()

    env, prior = problem(args.seed)
    names = tuple(c for c in args.cells.split(",") if c)
    settings = dict(
        runs=args.runs, rounds=args.rounds, tau=args.tau, seed=args.seed, cells=list(names), dts=args.dts_baseline
    )
    out = resume_json(args.json, settings)
    command = command_line(parser, args, "studies/drift/tracker.py")
    out["command"] = command
    out.setdefault("batches", {})
    only = {b for b in args.only.split(",") if b}
    for batch in plan(prior, args.tau, args.runs, names):
        if batch["name"] in out["batches"] or (only and batch["name"] not in only):
            continue
        start = time.perf_counter()
        cum = run_batch(env, prior, batch, args.rounds, args.seed)
        seconds = time.perf_counter() - start
        cells = []
        for cell, c in zip(batch["cells"], cum, strict=True):
            cells.append(
                dict(
                    cell,
                    final=c[:, -1].tolist(),
                    curve_rounds=list(range(CURVE_EVERY, args.rounds + 1, CURVE_EVERY)),
                    curve_mean=c[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
                )
            )
            print(
                f"{batch['name']} {cell['chosen_by']} q={cell['shared_step']:.2e} gamma={cell['own_discount']:.5f}: "
                f"{c[:, -1].mean():.0f} +- {c[:, -1].std(ddof=1) / math.sqrt(c.shape[0]):.0f}",
                flush=True,
            )
        if args.dts_baseline:
            c = run_dts(env, prior, batch, args.rounds, args.seed)
            cells.append(
                dict(
                    batch["cells"][0],
                    chosen_by="dTS, no discount",
                    shared_step=None,
                    own_discount=None,
                    own_window=None,
                    final=c[:, -1].tolist(),
                    curve_rounds=list(range(CURVE_EVERY, args.rounds + 1, CURVE_EVERY)),
                    curve_mean=c[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
                )
            )
            print(f"{batch['name']} dTS, no discount: {c[:, -1].mean():.0f}", flush=True)
            seconds = time.perf_counter() - start
        out["batches"][batch["name"]] = {"runs": batch["runs"], "seconds": seconds, "cells": cells, "command": command}
        save_json(args.json, out)
        print(f"{batch['name']}: {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
