"""Abrupt drift: dTS reset by a change detector (CUSUM on predictive residuals), against no discount.

The problem, environments, seed and keys are those of studies/drift/forgetting.py (run r of every
row sees the same theta path, contexts and noise), so these rows are paired with its no-discount,
rule-discount and oracle-reset rows, read from studies/drift/results/forgetting*.json.

The detector (dts_ppl.agents.detector.detect_changes, docs/math.md section 11) wraps plain dTS (no
discount); its two settings are stated rules, fixed before the runs:

- false-alarm rate alpha = 1 / (20 n) per round on a stationary stream (one false alarm in 20 runs
  of n rounds); the CUSUM threshold is the one with ARL_0 = 1 / alpha (core.change_detector);
- the alternative residual variance rho = 1 + 2 E[x_i^2] tr(S_1) / sigma^2 (a well-learnt
  action whose own part is redrawn).

On an alarm the whole state returns to the prior (in these environments a change redraws the
whole chain). Rows: abrupt-TAU at the issue's TAU = 1000 (``--runs``) and other TAU
(``--range-runs``), stationary and walk-1000 (``--runs``): what the detector costs where nothing
changes abruptly.

``--paired ENV --paired-runs N`` runs, at N runs of one abrupt environment, the detector beside
undiscounted dTS and the oracle reset on the plain code path (no forgetting code), for a paired
comparison with more runs than forgetting.py's rows have there.

    PYTHONPATH=. python studies/drift/detector.py
"""

from __future__ import annotations

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.detector import detect_changes
from dts_ppl.agents.dts import dts
from dts_ppl.bandits.envs import drift_process
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core import change_detector
from dts_ppl.core.likelihoods import Gaussian
from studies.common import results_dir, save_json
from studies.drift.forgetting import CONTEXT_SECOND_MOMENT, CURVE_EVERY, NOISE, K, problem, resetting


def rules(prior, rounds: int) -> dict:
    """The detector's settings from the stated rules."""
    alpha = 1.0 / (20.0 * rounds)
    rho = change_detector.variance_ratio_rule(NOISE**2, CONTEXT_SECOND_MOMENT, float(np.trace(np.asarray(prior.cov1))))
    return dict(
        false_alarm_rate=alpha,
        ratio=rho,
        threshold=change_detector.cusum_threshold(alpha, rho),
        rule="alpha = 1 / (20 n)",
    )


def cells(taus: list[int], tau: int, runs: int, range_runs: int) -> list[dict]:
    out = [dict(env=f"abrupt-{tau}", kind="abrupt", tau=tau, walk_scale=0.0, change_every=tau, runs=runs)]
    out += [dict(env="stationary", kind="stationary", tau=None, walk_scale=0.0, change_every=0, runs=runs)]
    out += [dict(env=f"walk-{tau}", kind="walk", tau=tau, walk_scale=1.0 / math.sqrt(tau), change_every=0, runs=runs)]
    out += [
        dict(env=f"abrupt-{t}", kind="abrupt", tau=t, walk_scale=0.0, change_every=t, runs=range_runs)
        for t in taus
        if t != tau
    ]
    return out


def run_cells(env, prior, todo: list[dict], settings: dict, rounds: int, seed: int):
    """Cumulative regret (runs, rounds) and alarms (runs,) of every cell, one compiled vmap over (cell, run)."""
    agent = detect_changes(
        dts(prior, Gaussian(NOISE), num_actions=K), prior, settings["false_alarm_rate"], settings["ratio"], NOISE**2
    )
    base = jax.random.PRNGKey(seed + 1)
    c_idx = np.concatenate([np.full(c["runs"], i) for i, c in enumerate(todo)])
    r_idx = np.concatenate([np.arange(c["runs"]) for c in todo])
    scale = jnp.asarray([todo[i]["walk_scale"] for i in c_idx], jnp.float32)
    every = jnp.asarray([todo[i]["change_every"] for i in c_idx], jnp.int32)

    def one(s, e, run):
        state, regret, _ = run_rounds(jax.random.fold_in(base, run), drift_process(env, s, e), agent, rounds)
        return jnp.cumsum(regret), state.alarms

    cum, alarms = jax.jit(jax.vmap(one))(scale, every, jnp.asarray(r_idx))
    cum, alarms = np.asarray(cum), np.asarray(alarms)
    return [(cum[c_idx == i], alarms[c_idx == i]) for i in range(len(todo))]


def run_paired(env, prior, tau: int, runs: int, settings: dict, rounds: int, seed: int) -> dict:
    """abrupt-tau at ``runs`` runs: plain dTS, the oracle reset and the detector, same keys (final regrets)."""
    plain = dts(prior, Gaussian(NOISE), num_actions=K)
    base = jax.random.PRNGKey(seed + 1)
    abrupt = drift_process(env, jnp.asarray(0.0, jnp.float32), jnp.asarray(tau, jnp.int32))

    def baseline(every, run):
        agent = resetting(plain, every)
        return jnp.sum(run_rounds(jax.random.fold_in(base, run), abrupt, agent, rounds)[1])

    def detected(run):
        agent = detect_changes(plain, prior, settings["false_alarm_rate"], settings["ratio"], NOISE**2)
        state, regret, _ = run_rounds(jax.random.fold_in(base, run), abrupt, agent, rounds)
        return jnp.sum(regret), state.alarms

    r = jnp.arange(runs)
    every = jnp.asarray([0] * runs + [tau] * runs, jnp.int32)
    both = np.asarray(jax.jit(jax.vmap(baseline))(every, jnp.concatenate([r, r])))
    det, alarms = jax.jit(jax.vmap(detected))(r)
    return dict(
        env=f"abrupt-{tau}",
        runs=runs,
        none=both[:runs].tolist(),
        oracle_reset=both[runs:].tolist(),
        detector=np.asarray(det).tolist(),
        alarms=np.asarray(alarms).tolist(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--range-runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tau", type=int, default=1000)
    parser.add_argument("--taus", default="2500,250,100", help="other abrupt time scales, comma-separated")
    parser.add_argument("--only", default="", help="run only these rows (comma-separated env names)")
    parser.add_argument("--paired", default="", help="an abrupt environment (abrupt-TAU) for the plain-path comparison")
    parser.add_argument("--paired-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(results_dir("drift") / "detector.json"))
    args = parser.parse_args()
    env, prior = problem(args.seed)
    settings = rules(prior, args.rounds)
    try:
        with open(args.json) as f:
            out = json.load(f)
    except OSError:
        out = {}
    out["settings"] = settings
    out.setdefault("cells", {})
    if args.paired:
        start = time.perf_counter()
        tau = int(args.paired.split("-")[1])
        res = run_paired(env, prior, tau, args.paired_runs, settings, args.rounds, args.seed)
        res["seconds"] = time.perf_counter() - start
        res["command"] = (
            f"PYTHONPATH=. python studies/drift/detector.py --paired {args.paired} --paired-runs {args.paired_runs}"
        )
        out.setdefault("paired", {})[args.paired] = res
        save_json(args.json, out)
        for k in ("none", "oracle_reset", "detector"):
            print(f"{args.paired} {k}: {np.mean(res[k]):.0f}", flush=True)
        return
    todo = cells([int(t) for t in args.taus.split(",") if t], args.tau, args.runs, args.range_runs)
    only = {o for o in args.only.split(",") if o}
    todo = [c for c in todo if (not only or c["env"] in only)]
    command = "PYTHONPATH=. python studies/drift/detector.py" + (f" --only {args.only}" if args.only else "")
    print(settings, flush=True)
    start = time.perf_counter()
    results = run_cells(env, prior, todo, settings, args.rounds, args.seed)
    seconds = time.perf_counter() - start
    for cell, (cum, alarms) in zip(todo, results, strict=True):
        out["cells"][cell["env"]] = dict(
            cell,
            rounds=args.rounds,
            seed=args.seed,
            seconds=seconds,
            command=command,
            final=cum[:, -1].tolist(),
            alarms=alarms.tolist(),
            curve_rounds=list(range(CURVE_EVERY, args.rounds + 1, CURVE_EVERY)),
            curve_mean=cum[:, CURVE_EVERY - 1 :: CURVE_EVERY].mean(0).tolist(),
        )
        print(
            f"{cell['env']} detector: {cum[:, -1].mean():.0f} +- {cum[:, -1].std(ddof=1) / math.sqrt(len(cum)):.0f}, "
            f"alarms/run {alarms.mean():.2f}",
            flush=True,
        )
    save_json(args.json, out)
    print(f"{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
