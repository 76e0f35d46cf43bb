"""Where does dTS lose to the bank-TS ceiling on a shared-parameter preset: the prior fit or the posterior?

Three Thompson samplers on the same runs (common random numbers):
- "bank TS": exact posterior of 20,000 TRUE-prior draws (the ceiling, as in the preset);
- "bank TS (DDPM draws)": exact posterior of 20,000 draws of the TRAINED DDPM prior, so its gap
  to "bank TS" is the cost of the prior fit alone;
- "dTS": the trained prior with dTS's approximate posterior ("identity" linearisation), and
  "dTS (iterated)" (12 up/down passes); their gap to "bank TS (DDPM draws)" is the cost of the
  posterior approximation (up to the bank's own finite size).

    nice -n 10 python benchmarks/realdata_decomposition.py --preset ring-shared --runs 40

Writes benchmarks/results/realdata/<preset>-decomposition.json.
"""

from __future__ import annotations

import argparse
import json

import jax
from realdata_study import OUT, paired_difference  # the sibling script (run from benchmarks/ or the root)

from dts_ppl import agents as ag
from dts_ppl.bandits.simulation import regret_ratio, simulate
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments import realdata

SETUPS = {"ring-shared": realdata.ring_setup, "roll-shared": realdata.roll_setup}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="ring-shared", choices=sorted(SETUPS))
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--rounds", type=int, default=realdata.SHARED["rounds"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    s = SETUPS[args.preset](progress=False)
    K, lik = realdata.SHARED["num_actions"], Gaussian(realdata.SHARED["noise"])
    ddpm_bank = realdata.prior_samples(jax.random.PRNGKey(99), s["prior"], realdata.SHARED["bank"])
    agents = {
        "bank TS": ag.bank_ts(s["bank"], lik, K, shared=True, warn_ess=0),
        "bank TS (DDPM draws)": ag.bank_ts(ddpm_bank, lik, K, shared=True, warn_ess=0),
        "dTS": ag.dts(s["prior"], lik, K, shared=True),
        "dTS (iterated)": ag.dts(s["prior"], lik, K, shared=True, linearisation="iterated", num_iterations=12),
    }
    k_sim = jax.random.split(jax.random.PRNGKey(args.seed))[1]  # as `dts-ppl bench regret` (run_experiment)
    res = {n: simulate(k_sim, s["env"], a, args.rounds, args.runs, progress=False) for n, a in agents.items()}
    out = dict(
        preset=args.preset,
        runs=args.runs,
        rounds=args.rounds,
        final={n: (r.final_mean, r.final_se) for n, r in res.items()},
        ratios_to_bank={n: regret_ratio(r, res["bank TS"]) for n, r in res.items() if n != "bank TS"},
        differences_to_ddpm_bank={
            n: paired_difference(res[n], res["bank TS (DDPM draws)"]) for n in res if n != "bank TS (DDPM draws)"
        },
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.preset}-decomposition.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
