"""Where does dTS lose to the bank-TS ceiling on a shared-parameter preset: the prior fit or the posterior?

Three Thompson samplers on the same runs (common random numbers):
- "bank TS": exact posterior of 20,000 TRUE-prior draws (the ceiling, as in the preset);
- "bank TS (DDPM draws)": exact posterior of 20,000 draws of the TRAINED DDPM prior, so its gap
  to "bank TS" is the cost of the prior fit alone;
- "dTS": the trained prior with dTS's approximate posterior ("identity" linearisation), and
  "dTS (iterated)" (12 up/down passes); their gap to "bank TS (DDPM draws)" is the cost of the
  posterior approximation (up to the bank's own finite size).

    PYTHONPATH=. python studies/realdata/realdata_decomposition.py --preset ring-shared --runs 40

Writes studies/realdata/results/<preset>-decomposition.json.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.bandits.simulation import regret_ratio, simulate
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.sampling import sample_prior
from dts_ppl.experiments import realdata
from dts_ppl.ppl.distances import energy_distance
from studies.common import paired_difference, results_dir

OUT = results_dir("realdata")

SETUPS = {"ring-shared": realdata.ring_setup, "roll-shared": realdata.roll_setup}


def posterior_error(s, ddpm_bank, lik, num_obs=(10, 50, 200), num_problems=5, draws=2000, seed=0):
    """dTS's posterior of theta against the exact posterior under the same trained prior.

    For each problem: theta* from the true prior, n observations y = x^T theta* + noise with
    x ~ U[-1, 1]^2; the exact posterior is the bank of DDPM draws reweighted by the likelihood
    (resampled to ``draws`` points), dTS's is sampled from its state. Returns, per linearisation
    and n, the mean energy distance to the exact posterior and the floor (two independent
    resamples of the exact one), and the mean error |E_dTS - E_exact| in exact-posterior sd units.
    """
    K = realdata.SHARED.num_actions
    out = {}
    for lin in ("identity", "iterated"):
        agent = ag.dts(s["prior"], lik, K, shared=True, linearisation=lin, max_passes=12)
        bank = ag.bank_ts(ddpm_bank, lik, K, shared=True, warn_ess=0)
        update, bank_update = jax.jit(agent.update), jax.jit(bank.update)
        for n in num_obs:
            dist, floor, err = [], [], []
            for p in range(num_problems):
                key = jax.random.fold_in(jax.random.PRNGKey(seed), 1000 * n + p)
                k_t, k_x, k_y, k_a, k_b, k_c = jax.random.split(key, 6)
                theta = s["env"].sample_theta(k_t)
                X = jax.random.uniform(k_x, (n, K, 2), theta.dtype, -1.0, 1.0)
                y = X[:, 0] @ theta + lik.scale * jax.random.normal(k_y, (n,), theta.dtype)
                st, bs = agent.init(), bank.init()
                for i in range(n):
                    st = update(st, X[i], jnp.zeros((), jnp.int32), y[i])
                    bs = bank_update(bs, X[i], jnp.zeros((), jnp.int32), y[i])
                approx = core.sample(k_a, s["prior"], ag.dts_posterior(s["prior"], st), (draws,))[1][:, 0]
                exact = ddpm_bank[jax.random.categorical(k_b, bs.log_weights[0], shape=(draws,))]
                exact2 = ddpm_bank[jax.random.categorical(k_c, bs.log_weights[0], shape=(draws,))]
                dist.append(energy_distance(approx, exact))
                floor.append(energy_distance(exact2, exact))
                mean, cov = (np.asarray(a)[0] for a in ag.bank_moments(ddpm_bank, bs.log_weights))
                err.append(float(np.max(np.abs(np.asarray(approx.mean(0)) - mean) / np.sqrt(np.diag(cov)))))
            out[f"{lin} n={n}"] = dict(
                energy=float(np.mean(dist)), floor=float(np.mean(floor)), max_std_mean_error=float(np.mean(err))
            )
            print(lin, n, out[f"{lin} n={n}"], flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="ring-shared", choices=sorted(SETUPS))
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--rounds", type=int, default=realdata.SHARED.rounds)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--posterior-only", action="store_true", help="only the posterior-error check")
    args = p.parse_args()
    s = SETUPS[args.preset](progress=False)
    K, lik = realdata.SHARED.num_actions, Gaussian(realdata.SHARED.noise)
    ddpm_bank = sample_prior(jax.random.PRNGKey(99), s["prior"], realdata.SHARED.bank)[1][:, 0]
    path = OUT / f"{args.preset}-decomposition.json"
    if args.posterior_only:
        out = json.loads(path.read_text()) if path.is_file() else {}
        out["posterior_error"] = posterior_error(s, ddpm_bank, lik, seed=args.seed)
        path.write_text(json.dumps(out, indent=1))
        return
    agents = {
        "bank TS": ag.bank_ts(s["bank"], lik, K, shared=True, warn_ess=0),
        "bank TS (DDPM draws)": ag.bank_ts(ddpm_bank, lik, K, shared=True, warn_ess=0),
        "dTS": ag.dts(s["prior"], lik, K, shared=True),
        "dTS (iterated)": ag.dts(s["prior"], lik, K, shared=True, linearisation="iterated", max_passes=12),
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
    out["posterior_error"] = posterior_error(s, ddpm_bank, lik, seed=args.seed)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
