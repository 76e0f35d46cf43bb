"""Forgetting on drifting rewards: discounted dTS against undiscounted, a stated rule, a grid, an oracle.

The problem is the paper's K = 100 linear panel (d = 5, L = 2, active columns (5, 2), Gaussian
rewards sd 1, contexts U[-1, 1]^d), with theta made to drift (dts_ppl.bandits.envs.drift_process,
the laws of random_walk and abrupt_changes):

- walk-TAU: a random walk, theta moves by one prior standard deviation every TAU rounds;
- abrupt-TAU: theta (the whole chain, latents included) redrawn from the prior every TAU rounds;
- stationary: theta fixed.

The issue's setting is TAU = 1000 (n = 5000: the walk moves theta by sqrt(5) prior s.d., the
abrupt environment has 4 changes); ``--range-taus`` adds other TAU (smaller: larger drift) at
fewer runs, in one batch "range", to show where forgetting pays how much.

The discount's rule, fixed before the runs (core.forgetting.drift_window, docs/math.md section 11):

    W = sqrt(sigma^2 K tau_v / (E[x_i^2] v_1)),     gamma = 1 - 1 / W,

with v_1 the mean diagonal of S_1 (an action's covariance given psi_1: the part of theta that
only its own pulls teach and that decides which action is best) and tau_v the rounds over which
that part changes by variance v_1 (TAU for the walk, TAU / 2 for redraws every TAU rounds, whose
change has variance 2 v_1). Beside it, the grid point 2 W and no discount (the W / 2 points are
the previous version's rule, studies/drift/results/previous/, runs 0-9 of these), and for the
abrupt environments an oracle: undiscounted dTS reset to its prior at every change (it knows the
change rounds; with independent redraws that is the exact posterior, what staleness costs).

One compiled simulation runs every cell of a batch side by side (vmap over cell x run): the
discount enters the Gaussian update as a traced scalar (core.likelihoods.forgets: an array
discount takes the forgetting path, so the gamma = 1 cells run the forgetting code with gamma = 1,
the plain posterior up to rounding), the drift sizes enter drift_process as traced scalars.
Runs are paired: run r of every cell of one environment sees the same theta path, contexts and
noise. Results are written after every batch; a rerun with the same settings skips done batches.

    PYTHONPATH=. python studies/drift/forgetting.py --runs 20 --range-runs 10
    # batches can run side by side, each to its own file (make_doc.py merges forgetting-*.json):
    PYTHONPATH=. python studies/drift/forgetting.py --only range --json studies/drift/results/forgetting-range.json
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.base import Agent
from dts_ppl.agents.dts import dts
from dts_ppl.bandits.envs import drift_process
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.core import inference as core
from dts_ppl.core.forgetting import discount_for_window, drift_window
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import command_line, results_dir, resume_json, save_json

K, D, ACTIVE, NOISE, CONTEXT_SECOND_MOMENT = 100, 5, (5, 2), 1.0, 1.0 / 3.0
CURVE_EVERY = 50


class SweptGaussian(Gaussian):
    """Gaussian rewards whose updates forget with a traced discount (the one passed in is ignored)."""

    def __init__(self, gamma):
        super().__init__(NOISE)
        object.__setattr__(self, "_gamma", gamma)

    def propose_observation(self, ev, phi, group, y, newton_steps, discount=1.0):
        return Gaussian.propose_observation(self, ev, phi, group, y, newton_steps, discount=self._gamma)

    def propose_observations(self, ev, phi, group, y, ok, discount=1.0):
        return Gaussian.propose_observations(self, ev, phi, group, y, ok, discount=self._gamma)


def resetting(agent: Agent, every) -> Agent:
    """``agent`` reset to its initial state after every ``every``-th update (traced; 0: never)."""

    def init():
        return agent.init(), jnp.zeros((), jnp.int32)

    def act(key, state, x):
        return agent.act(key, state[0], x)

    def update(state, x, action, reward):
        inner, t = agent.update(state[0], x, action, reward), state[1] + 1
        reset = (every > 0) & (jnp.mod(t, jnp.maximum(every, 1)) == 0)
        fresh = agent.init()
        return jax.tree.map(lambda a, b: jnp.where(reset, b, a), inner, fresh), t

    return Agent(init, act, update, None, agent.spec)


def problem(seed: int):
    env, prior = paper_environment(jax.random.PRNGKey(seed), "linear", "linear", K, D, ACTIVE, 20)
    return env, prior


def diagnostics(prior) -> dict:
    """The scales the drift is measured against (the prior's, the noise's)."""
    theta_cov = np.asarray(core.theta_prior_moments(prior)[1])
    s1 = np.asarray(prior.cov1)
    v, v1 = float(np.mean(np.diag(theta_cov))), float(np.mean(np.diag(s1)))
    return {
        "theta_var_per_coordinate": v,
        "s1_var_per_coordinate": v1,
        "shared_share_of_theta_var": 1.0 - v1 / v,
        "action_reward_sd": math.sqrt(D * CONTEXT_SECOND_MOMENT * v1),
        "noise_sd": NOISE,
    }


def plan(prior, issue_tau: int, range_taus: list[int], runs: int, range_runs: int) -> list[dict]:
    """The batches, most needed first: each a list of cells (env, tau, sizes, gamma, reset, ...)."""
    v1 = diagnostics(prior)["s1_var_per_coordinate"]

    def cells(kind: str, tau: int | None, which: tuple[str, ...]) -> list[dict]:
        if kind == "stationary":
            tau_v, scale, every = float(issue_tau), 0.0, 0  # the walk's rule, forced where nothing drifts
        else:
            tau_v = float(tau) if kind == "walk" else tau / 2.0
            scale, every = (1.0 / math.sqrt(tau), 0) if kind == "walk" else (0.0, tau)
        w = drift_window(NOISE**2, K, CONTEXT_SECOND_MOMENT, v1, tau_v)
        windows = {"none": math.inf, "rule": w, "grid W/2": w / 2.0, "grid 2W": 2.0 * w, "oracle reset": math.inf}
        return [
            dict(
                env=kind if tau is None else f"{kind}-{tau}",
                kind=kind,
                tau=tau,
                walk_scale=scale,
                change_every=every,
                chosen_by=c,
                window=windows[c],
                gamma=1.0 if windows[c] == math.inf else discount_for_window(windows[c]),
                reset=every if c == "oracle reset" else 0,
            )
            for c in which
        ]

    t = issue_tau
    batches = [
        {"name": f"abrupt-{t}", "runs": runs, "cells": cells("abrupt", t, ("none", "rule", "grid 2W", "oracle reset"))},
        {
            "name": f"walk-{t}",
            "runs": runs,
            "cells": cells("walk", t, ("none", "rule", "grid 2W")) + cells("stationary", None, ("none",)),
        },
    ]
    rng = []
    for tau in range_taus:
        rng += cells("walk", tau, ("none", "rule", "grid 2W")) + cells("abrupt", tau, ("none", "rule", "oracle reset"))
    if rng:
        batches.append({"name": "range", "runs": range_runs, "cells": rng + cells("stationary", None, ("rule",))})
    return batches


def run_batch(env, prior, batch: dict, rounds: int, seed: int) -> np.ndarray:
    """(cells, runs, rounds) cumulative regret of every cell of ``batch``, one compiled vmap."""
    cells, runs = batch["cells"], batch["runs"]
    scale = jnp.asarray([c["walk_scale"] for c in cells], jnp.float32)
    every = jnp.asarray([c["change_every"] for c in cells], jnp.int32)
    gamma = jnp.asarray([c["gamma"] for c in cells], jnp.float32)
    reset = jnp.asarray([c["reset"] for c in cells], jnp.int32)
    base = jax.random.PRNGKey(seed + 1)

    def one(s, e, g, r, run):
        agent = resetting(dts(prior, SweptGaussian(g), num_actions=K, discount=0.5), r)
        return jnp.cumsum(run_regret(jax.random.fold_in(base, run), drift_process(env, s, e), agent, rounds))

    flat = jax.vmap(one)
    c_idx, r_idx = np.meshgrid(np.arange(len(cells)), np.arange(runs), indexing="ij")
    c_idx, r_idx = c_idx.ravel(), r_idx.ravel()
    out = jax.jit(flat)(scale[c_idx], every[c_idx], gamma[c_idx], reset[c_idx], jnp.asarray(r_idx))
    return np.asarray(out).reshape(len(cells), runs, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--range-runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tau", type=int, default=1000, help="the issue's drift time scale in rounds")
    parser.add_argument(
        "--range-taus", default="250,100", help="other drift time scales for the range batch, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only these batches (comma-separated names)")
    parser.add_argument("--json", default=str(results_dir("drift") / "forgetting.json"))
    args = parser.parse_args()

    env, prior = problem(args.seed)
    range_taus = [int(t) for t in args.range_taus.split(",") if t]
    settings = dict(
        runs=args.runs,
        range_runs=args.range_runs,
        rounds=args.rounds,
        tau=args.tau,
        range_taus=range_taus,
        seed=args.seed,
    )
    out = resume_json(args.json, settings)
    command = command_line(parser, args, "studies/drift/forgetting.py")
    out["command"] = command
    out["problem"] = f"K={K}, d={D}, L={len(ACTIVE)}, active {ACTIVE}, Gaussian rewards sd {NOISE}, contexts U[-1, 1]^d"
    out["diagnostics"] = diagnostics(prior)
    out.setdefault("batches", {})
    only = {b for b in args.only.split(",") if b}
    for batch in plan(prior, args.tau, range_taus, args.runs, args.range_runs):
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
                    window=None if cell["window"] == math.inf else cell["window"],
                    final=c[:, -1].tolist(),
                    curve_rounds=list(range(CURVE_EVERY, args.rounds + 1, CURVE_EVERY)),
                    curve_mean=c[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
                )
            )
            print(
                f"{batch['name']} {cell['env']} {cell['chosen_by']} gamma={cell['gamma']:.5f}: "
                f"{c[:, -1].mean():.0f} +- {c[:, -1].std(ddof=1) / math.sqrt(c.shape[0]):.0f}",
                flush=True,
            )
        out["batches"][batch["name"]] = {"runs": batch["runs"], "seconds": seconds, "cells": cells, "command": command}
        save_json(args.json, out)
        print(f"{batch['name']}: {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
