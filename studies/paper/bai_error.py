"""Best-arm identification: top-two TS with the dTS posterior vs with LinTS's independent posterior.

python studies/paper/bai_error.py [--runs 200] [--actions 50] [--budgets 50,100,200,400,800] [--s1 1.0]
                               [--out studies/paper/results/bai]

Problem: the Figure 1 K = 100 linear diffusion prior (d = 5, L = 2, active columns (5, 2), S_l = I,
W_l ~ U[-1, 1]) restricted to K arms, every round's context x0 = 1 / sqrt(d) (||x0|| = 1), Gaussian
rewards with noise 1, theta drawn from the prior in every run. Both agents run the same runs
(same keys); beta = 1/2, 4 challenger resamples. Writes OUT.json, OUT.png and prints a table.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.analysis import bai
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.experiments.synthetic import random_linear_prior
from dts_ppl.plotting import pyplot


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--actions", type=int, default=50)
    p.add_argument("--budgets", default="50,100,200,400,800")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--s1", type=float, default=1.0, help="S_1 = s1 I (how far arms may be from their shared mean)")
    p.add_argument("--out", default="studies/paper/results/bai")
    args = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    budgets = [int(b) for b in args.budgets.split(",")]
    K, d = args.actions, 5
    k_prior, k_sim = jax.random.split(jax.random.PRNGKey(args.seed))
    prior = random_linear_prior(k_prior, d, (5, 2))
    if args.s1 != 1.0:  # same W_l and S_2, S_3; arms closer to (s1 < 1) their shared mean
        ws = [prior.link(level).weight for level in range(1, prior.num_levels + 1)]
        prior = DiffusionPrior.linear(ws, [args.s1] + [1.0] * prior.num_levels)
    env = bai.fixed_context_environment(prior, K, jnp.ones(d) / np.sqrt(d))
    agents = {
        "top-two TS, dTS posterior": (ag.dts(prior, Gaussian(1.0), K), bai.dts_mean_scores(prior)),
        "top-two TS, LinTS posterior": (ag.lin_ts(ag.theta_marginal(prior), Gaussian(1.0), K), bai.linear_mean_scores),
    }
    out = {
        "s1": args.s1,
        "runs": args.runs,
        "num_actions": K,
        "dim": d,
        "budgets": budgets,
        "seed": args.seed,
        "agents": {},
    }
    for name, (agent, scores) in agents.items():
        res = bai.identification_error(k_sim, env, agent, scores, budgets, args.runs)
        out["agents"][name] = {
            "error": res.error.tolist(),
            "error_se": res.error_se.tolist(),
            "simple_regret": res.simple_regret.tolist(),
            "simple_regret_se": res.simple_regret_se.tolist(),
            "seconds": res.seconds,
        }
        print(f"{name}: {res.seconds:.0f} s", flush=True)
    print(
        "| budget T | "
        + " | ".join(f"P(wrong) {n}" for n in agents)
        + " | "
        + " | ".join(f"simple regret {n}" for n in agents)
        + " |"
    )
    print("|---" * (1 + 2 * len(agents)) + "|")
    for i, b in enumerate(budgets):
        cells = [f"{out['agents'][n]['error'][i]:.3f} ± {out['agents'][n]['error_se'][i]:.3f}" for n in agents]
        cells += [
            f"{out['agents'][n]['simple_regret'][i]:.3f} ± {out['agents'][n]['simple_regret_se'][i]:.3f}"
            for n in agents
        ]
        print(f"| {b} | " + " | ".join(cells) + " |")
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    plt = pyplot(headless=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in out["agents"].items():
        e, se = np.array(r["error"]), np.array(r["error_se"])
        ax.errorbar(budgets, e, yerr=2 * se, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("budget T (rounds)")
    ax.set_ylabel("P(wrong identification)")
    ax.set_title(f"K={K}, d={d}, L=2 linear diffusion, S_1={args.s1} I; {args.runs} runs, bars = 2 s.e.", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=120)
    print(f"wrote {args.out}.json, {args.out}.png")


if __name__ == "__main__":
    main()
