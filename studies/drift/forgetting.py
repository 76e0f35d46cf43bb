"""Forgetting on drifting rewards: discounted dTS and LinTS against undiscounted, with a stated rule.

The problem is the paper's K = 100 linear panel (d = 5, L = 2, active columns (5, 2), Gaussian
rewards sd 1, contexts U[-1, 1]^d), with theta made to drift (dts_ppl.bandits.envs):

- walk: a random walk, theta moves by one prior standard deviation every TAU rounds
  (``random_walk(env, 1 / sqrt(TAU))``);
- abrupt: theta redrawn from the prior every TAU rounds (``abrupt_changes``);
- stationary: theta fixed (the default, undiscounted agents are unchanged there).

The discount's rule, fixed before any run (docs/drift.md): the window W that balances the
variance of an action's estimate from W / K pulls (sigma^2 K / (W E[x_i^2]) per coordinate) against
the variance the drift adds over the window (W v / tau, with v the prior's mean variance of a
coordinate of theta and tau the rounds over which theta's change has variance v: the walk's
TAU, and TAU / 2 for independent redraws every TAU rounds, whose change has variance 2 v):

    W = sqrt(sigma^2 K tau / (E[x_i^2] v)),     gamma = 1 - 1 / W.

Each environment may be written to its own file (``--envs abrupt --json .../forgetting-abrupt.json``:
studies/drift/make_doc.py merges ``forgetting*.json``). Every agent of one environment sees the same theta path, contexts and noise in run r (common
random numbers), so differences are paired. Results are written after every simulation and a
rerun skips the entries already in the JSON.

    PYTHONPATH=. python studies/drift/forgetting.py --runs 20 --rounds 5000
"""

from __future__ import annotations

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents.dts import dts
from dts_ppl.agents.linear import lin_ts, theta_marginal
from dts_ppl.bandits import abrupt_changes, random_walk, simulate
from dts_ppl.core import inference as core
from dts_ppl.core.forgetting import discount_for_window
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import results_dir, save_json

K, D, ACTIVE, NOISE, CONTEXT_SECOND_MOMENT = 100, 5, (5, 2), 1.0, 1.0 / 3.0
GRID = (0.999, 0.998, 0.99)


def rule_discount(prior, tau: float) -> float:
    """The stated rule: gamma = 1 - 1 / sqrt(sigma^2 K tau / (E[x_i^2] v))."""
    v = float(jnp.mean(jnp.diag(core.theta_prior_moments(prior)[1])))
    return discount_for_window(math.sqrt(NOISE**2 * K * tau / (CONTEXT_SECOND_MOMENT * v)))


def environments(prior_key, rounds: int, tau: int):
    env, prior = paper_environment(prior_key, "linear", "linear", K, D, ACTIVE, 20)
    changes = list(range(tau, rounds, tau))
    envs = {
        "walk": (random_walk(env, 1.0 / math.sqrt(tau)), float(tau)),
        "abrupt": (abrupt_changes(env, changes), tau / 2.0),
        "stationary": (env, None),
    }
    return envs, prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--tau", type=int, default=1000, help="drift time scale in rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", default="walk,abrupt,stationary")
    parser.add_argument("--json", default=str(results_dir("drift") / "forgetting.json"))
    parser.add_argument("--grid", default=",".join(map(str, GRID)), help="dTS discounts run beside the rule")
    parser.add_argument("--dts-only", action="store_true", help="no LinTS rows (a confirmation run)")
    args = parser.parse_args()

    envs, prior = environments(jax.random.PRNGKey(args.seed), args.rounds, args.tau)
    marginal = theta_marginal(prior)
    try:
        with open(args.json) as f:
            out = json.load(f)
        if out["settings"] != {"runs": args.runs, "rounds": args.rounds, "tau": args.tau, "seed": args.seed}:
            raise ValueError
    except (OSError, ValueError, KeyError):
        out = {"settings": {"runs": args.runs, "rounds": args.rounds, "tau": args.tau, "seed": args.seed}}
    out.setdefault("problem", f"K={K}, d={D}, L={len(ACTIVE)}, active {ACTIVE}, Gaussian rewards sd {NOISE}")
    out.setdefault("grid", [float(g) for g in args.grid.split(",") if g])
    out.setdefault("results", {})
    key = jax.random.PRNGKey(args.seed + 1)

    for env_name in args.envs.split(","):
        env, tau = envs[env_name]
        rule = rule_discount(prior, tau if tau is not None else args.tau)
        out.setdefault("rule", {})[env_name] = {"tau": tau, "discount": rule, "window": 1.0 / (1.0 - rule)}
        plan = [("dTS", 1.0), ("dTS", rule)]
        grid = [float(g) for g in args.grid.split(",") if g]
        if env_name != "stationary":  # what a default agent does without drift is the point there
            plan += [] if args.dts_only else [("LinTS", 1.0), ("LinTS", rule)]
            plan += [("dTS", g) for g in grid]
        for agent_name, gamma in plan:
            label = f"{env_name}/{agent_name}/{gamma:.6f}"
            if label in out["results"]:
                continue
            if agent_name == "dTS":
                agent = dts(prior, num_actions=K, discount=gamma)
            else:
                agent = lin_ts(marginal, num_actions=K, discount=gamma)
            start = time.perf_counter()
            res = simulate(key, env, agent, args.rounds, args.runs, progress=False)
            every = max(1, args.rounds // 100)
            out["results"][label] = {
                "env": env_name,
                "agent": agent_name,
                "discount": gamma,
                "rule": gamma == rule,
                "final": res.cumulative[:, -1].tolist(),
                "final_mean": res.final_mean,
                "final_se": res.final_se,
                "curve_rounds": list(range(every, args.rounds + 1, every)),
                "curve_mean": res.mean[every - 1 :: every].tolist(),
                "seconds": time.perf_counter() - start,
            }
            save_json(args.json, out)
            print(
                f"{label}: {res.final_mean:.1f} +- {res.final_se:.1f} ({time.perf_counter() - start:.0f} s)", flush=True
            )
    np.set_printoptions(precision=4)


if __name__ == "__main__":
    main()
