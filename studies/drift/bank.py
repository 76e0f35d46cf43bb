"""The drift's time scale chosen from the data: a bank of two-rate trackers weighted by predictive likelihood.

Thompson sampling on dts_ppl.core.tracker_bank (agents.tracker.adaptive_tracking_ts): M
trackers (core.tracker) run side by side on the same rounds, each with its own drift model, and
the posterior over the models is their predictive likelihood (the empirical-Bayes evidence,
docs/math.md section 11). No cell is told the drift's time scale. The stated rules, fixed
before any of these runs (tracker_bank.drift_grid):

- the grid: time scales tau = 62.5 * 2^k rounds, k = 0, ..., 7 (62.5 to 8,000), and tau = inf
  (no drift); for each finite tau, u's step q = 1 / tau and the own part either mean-reverting
  (gamma = 1 - 1 / tau, the matched rule of tracker.py) or a random walk (gamma = 1, r = 1 / tau,
  the walk's own model): M = 17 models, uniform prior weights, never forgotten.
- **bank**: a model drawn from the posterior, Thompson sampling on its tracker (the mixture).
- **bank, spacing**: the same bank and weights; a drawn time scale tau plays the walk's model
  when an action's own part moves more than half its prior s.d. between two of its pulls,
  sqrt(K / tau) > 1 / 2 (tau < 4 K = 400 rounds), the mean-reverting model otherwise. (Stated
  after tracker.py's seed-0 rows showed the mean-reverting model ahead at tau = 1,000 and the
  walk's ahead at tau = 250 and 100; seeds 1 and 2 are held out.)
- **bank, detector**: the bank (the mixture) with the CUSUM of core.change_detector on the
  standardized predictive residual of the model of largest weight; an alarm resets the whole bank
  (trackers and weights) to its prior. The detector's stated rules of detector.py: false-alarm
  rate alpha = 1 / (20 n) per round, rho = core.change_detector.variance_ratio_rule.
- **bank, spacing + detector**: the two rules above together, each as stated there (spacing's
  play map and the detector's CUSUM reset); stated after the three rows above, which showed
  spacing ahead on slow walks and the detector ahead on abrupt changes, and run on every
  environment and seed they ran on.

Every cell of an environment runs on the keys of forgetting.py and tracker.py (run r of seed s:
jax.random.fold_in(PRNGKey(s + 1), r)), so it is paired with their rows and with the dTS row
(no discount) that this script runs beside it. Results are written after every cell; a rerun
with the same settings skips the cells done.

    PYTHONPATH=. python studies/drift/bank.py --json studies/drift/results/bank-1000.json
    # cells and environments one at a time (semicolon-separated cells), into the same file:
    PYTHONPATH=. python studies/drift/bank.py --only walk --cells 'bank, detector' \
        --json studies/drift/results/bank-1000.json
    PYTHONPATH=. python studies/drift/bank.py --tau 250 --json studies/drift/results/bank-250.json
    PYTHONPATH=. python studies/drift/bank.py --seed 1 --only walk --json studies/drift/results/bank-seed1.json

Where bank.py has not run undiscounted dTS on an environment, make_doc.py pairs the cells with
forgetting.py's row (seed 0) or tracker.py's held-out row (same keys).
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.dts import dts
from dts_ppl.agents.tracker import adaptive_tracking_ts
from dts_ppl.bandits.envs import drift_process
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core.change_detector import variance_ratio_rule
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.tracker_bank import drift_grid
from studies.common import command_line, results_dir, resume_json, save_json
from studies.drift.forgetting import CONTEXT_SECOND_MOMENT, CURVE_EVERY, NOISE, D, K, diagnostics, problem

TIME_SCALES = (math.inf,) + tuple(62.5 * 2**k for k in range(8))
WALK_BELOW = 4.0 * K  # sqrt(K / tau) > 1 / 2
CELLS = ("dTS, no discount", "bank", "bank, spacing", "bank, detector", "bank, spacing + detector")


def environments(tau: int, only: set[str]) -> list[dict]:
    """walk-TAU, abrupt-TAU, stationary (those named in ``only``: walk, abrupt, stationary; empty: all)."""
    envs = [
        dict(env=f"walk-{tau}", kind="walk", tau=tau, walk_scale=1.0 / math.sqrt(tau), change_every=0),
        dict(env=f"abrupt-{tau}", kind="abrupt", tau=tau, walk_scale=0.0, change_every=tau),
        dict(env="stationary", kind="stationary", tau=None, walk_scale=0.0, change_every=0),
    ]
    return [e for e in envs if not only or e["kind"] in only]


def make_agent(prior, cell: str, rounds: int):
    """The agent of a cell."""
    if cell == "dTS, no discount":
        return dts(prior, Gaussian(NOISE), num_actions=K)
    q, g, r, play = drift_grid(TIME_SCALES, walk_below=WALK_BELOW if "spacing" in cell else None)
    detector = {}
    if "detector" in cell:
        trace = float(np.trace(np.asarray(prior.cov1)))
        detector = dict(
            false_alarm_rate=1.0 / (20 * rounds),
            ratio=variance_ratio_rule(NOISE**2, CONTEXT_SECOND_MOMENT, trace),
        )
    return adaptive_tracking_ts(prior, NOISE, K, q, g, r, play, **detector)


def run_cell(env, prior, spec: dict, cell: str, runs: int, rounds: int, seed: int) -> dict:
    """(runs, rounds) cumulative regret of one cell, the final model weights and alarms of a bank."""
    base = jax.random.PRNGKey(seed + 1)
    drifting = drift_process(env, spec["walk_scale"], spec["change_every"])
    agent = make_agent(prior, cell, rounds)
    bank = cell != "dTS, no discount"

    def one(run):
        state, regret, _ = run_rounds(jax.random.fold_in(base, run), drifting, agent, rounds)
        weights = jnp.exp(state.bank.log_weights) if bank else jnp.zeros(())
        alarms = state.alarms if bank else jnp.zeros((), jnp.int32)
        rejected = state.rejected if bank else jnp.zeros((), jnp.int32)
        return jnp.cumsum(regret), weights, alarms, rejected

    cum, weights, alarms, rejected = (np.asarray(v) for v in jax.jit(jax.vmap(one))(jnp.arange(runs)))
    out = dict(
        final=cum[:, -1].tolist(),
        curve_rounds=list(range(CURVE_EVERY, rounds + 1, CURVE_EVERY)),
        curve_mean=cum[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
    )
    if bank:
        q, g, r, play = drift_grid(TIME_SCALES)
        out.update(
            models=[
                dict(shared_step=float(a), own_discount=float(b), own_step=float(c))
                for a, b, c in zip(q, g, r, strict=True)
            ],
            final_weights_mean=weights.mean(0).tolist(),
            alarms_mean=float(alarms.mean()),
            rejected=int(rejected.sum()),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tau", type=int, default=1000, help="the drift's time scale in rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="environments: walk, abrupt, stationary (comma-separated)")
    parser.add_argument("--cells", default="", help="cells (semicolon-separated; default all)")
    parser.add_argument("--json", default=str(results_dir("drift") / "bank.json"))
    args = parser.parse_args()
    only = {o for o in args.only.split(",") if o}
    cells = [c.strip() for c in args.cells.split(";") if c.strip()] or list(CELLS)
    if bad := [c for c in cells if c not in CELLS] + [o for o in only if o not in ("walk", "abrupt", "stationary")]:
        raise SystemExit(f"unknown cells or environments: {bad}")
    env, prior = problem(args.seed)
    settings = dict(runs=args.runs, rounds=args.rounds, tau=args.tau, seed=args.seed)
    out = resume_json(args.json, settings)
    command = command_line(parser, args, "studies/drift/bank.py")
    out.setdefault("commands", [])
    if command not in out["commands"]:
        out["commands"].append(command)
    out["time_scales"] = [None if math.isinf(t) else t for t in TIME_SCALES]
    out["walk_below"] = WALK_BELOW
    out["diagnostics"] = diagnostics(prior)
    out["dim"] = D
    out.setdefault("environments", {})
    for spec in environments(args.tau, only):
        done = out["environments"].setdefault(spec["env"], dict(spec, cells={}))
        for cell in cells:
            if cell in done["cells"]:
                continue
            start = time.perf_counter()
            result = run_cell(env, prior, spec, cell, args.runs, args.rounds, args.seed)
            result["seconds"] = time.perf_counter() - start
            done["cells"][cell] = result
            save_json(args.json, out)
            final = np.asarray(result["final"])
            print(
                f"seed {args.seed} {spec['env']} {cell}: {final.mean():.0f} +- "
                f"{final.std(ddof=1) / math.sqrt(len(final)):.0f} ({result['seconds']:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
