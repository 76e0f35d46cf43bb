"""The ceiling of a chain's cold start: S_1 against the fitted marginal, and an oracle newcomer prior.

Given psi_1, a newcomer's parameter is N(f_1(psi_1), S_1); the most the latent chain can give a
newcomer (psi_1 learnt perfectly from the rest of the catalogue) is that conditional prior, where
LinTS-fresh starts from the fitted marginal N(m, Sigma). This script measures

- the ratio of S_1 to Sigma: tr(S_1) / tr(Sigma), det(S_1)^(1/d) / det(Sigma)^(1/d) (the
  geometric mean of the variance ratios), and the same ratio for the newcomer's expected reward
  under the process's contexts, E[x^T S_1 x] / E[x^T Sigma x] (the spread the agent must explore);
- on the generated twin, the regret of an oracle that knows each run's psi_1: LinTS whose prior is
  N(f_1(psi_1), S_1) for every item, which is dTS with a perfectly learnt latent (for Gaussian
  rewards, given psi_1 the actions are independent with that prior). It runs as LinTS with
  N(0, S_1) on the items shifted by -f_1(psi_1), which shifts every item's mean reward by the same
  x^T f_1(psi_1) and so leaves every gap, hence every regret, unchanged. Same keys as
  studies/catalogue/arrivals.py, so the runs are paired with its rows.

    PYTHONPATH=. python studies/catalogue/ceiling.py [--data-dir DIR]

MovieLens (with ``--data-dir``): the ratios only. Its items are not draws of the chain, so there is
no true psi_1 to give an oracle; the ratio is what bounds the chain there.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.core.sampling import sample_prior
from dts_ppl.experiments import arrivals as ar
from dts_ppl.experiments import realdata
from studies.common import results_dir, save_json


def ratios(s1, sigma, context_cov) -> dict:
    """tr, det^(1/d) and expected-reward-variance ratios of S_1 to Sigma (context second moment ``context_cov``)."""
    s1, sigma, cc = (np.asarray(a, np.float64) for a in (s1, sigma, context_cov))
    d = s1.shape[0]
    return {
        "trace_ratio": float(np.trace(s1) / np.trace(sigma)),
        "det_ratio_per_dim": float(np.exp((np.linalg.slogdet(s1)[1] - np.linalg.slogdet(sigma)[1]) / d)),
        "reward_var_ratio": float(np.trace(cc @ s1) / np.trace(cc @ sigma)),
        "s1_reward_sd": float(np.sqrt(np.trace(cc @ s1))),
        "marginal_reward_sd": float(np.sqrt(np.trace(cc @ sigma))),
        "s1_trace": float(np.trace(s1)),
        "marginal_trace": float(np.trace(sigma)),
    }


def oracle_setup(setup: ar.ArrivalSetup, cfg: ar.ArrivalConfig) -> ar.ArrivalSetup:
    """The twin with every item shifted by -f_1(psi_1) of its run, and LinTS's prior N(0, S_1)."""
    prior = setup.prior
    num_items = cfg.initial + cfg.arrivals
    feature_sd = setup.info["feature_sd"]

    def sample_items(k):  # the draws of generated_arrivals' sample_items, with psi_1 kept
        k_theta, k_feat = jax.random.split(k)
        psi, theta = sample_prior(k_theta, prior, 1, num_items)
        centre = prior.link1(psi[0, -1])
        feats = theta[0] + feature_sd * jax.random.normal(k_feat, theta[0].shape, theta.dtype)
        return theta[0] - centre, feats - centre

    d = prior.cov1.shape[0]
    gauss = ag.GaussianPrior(jnp.zeros(d, prior.cov1.dtype), prior.cov1)
    return setup._replace(name=setup.name + ", oracle psi_1", sample_items=sample_items, gauss=gauss)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="MovieLens directory (ratios for the movielens source)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(results_dir("catalogue") / "ceiling.json"))
    args = p.parse_args(argv)
    cfg = ar.ArrivalConfig()
    out = {"command": "PYTHONPATH=. python studies/catalogue/ceiling.py" + (" --data-dir DIR" if args.data_dir else "")}

    setup = ar.generated_arrivals(cfg)
    d = setup.prior.cov1.shape[0]
    out["generated"] = {"ratios": ratios(setup.prior.cov1, setup.gauss.cov, np.eye(d) / d)}

    # the oracle's draws are the twin's: check that the shifted items plus f_1(psi_1) are its items
    osetup = oracle_setup(setup, cfg)
    k = jax.random.PRNGKey(7)
    theta, _ = setup.sample_items(k)
    psi, _ = sample_prior(jax.random.split(k)[0], setup.prior, 1, cfg.initial + cfg.arrivals)
    shifted, _ = osetup.sample_items(k)
    assert np.allclose(np.asarray(shifted + setup.prior.link1(psi[0, -1])), np.asarray(theta), atol=1e-5)

    cat = ar.arrival_agents(osetup, cfg)["LinTS-fresh"]
    t0 = time.perf_counter()
    sim = ar.simulate_arrivals(jax.random.PRNGKey(args.seed), cat, osetup, cfg)
    m = ar.newcomer_regret(sim, cfg)
    with open(results_dir("catalogue") / "arrivals_generated.json") as f:
        base = json.load(f)
    rows = {"oracle N(f_1(psi_1), S_1)": {k: np.asarray(v) for k, v in m.items()}}
    for name in ("dTS", "LinTS-fresh"):
        rows[name] = {k: np.asarray(v) for k, v in base["per_run"][name].items()}
    table = {}
    for name, r in rows.items():
        table[name] = {}
        for key in ("pulls_regret", "window_regret"):
            v = r[key]
            table[name][key] = {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(v.size))}
            f = rows["LinTS-fresh"][key]
            ratio = v.mean() / f.mean()
            c = np.cov(v, f)  # delta-method s.e. of the paired ratio
            var = (c[0, 0] - 2 * ratio * c[0, 1] + ratio**2 * c[1, 1]) / (v.size * f.mean() ** 2)
            table[name][key + "_over_fresh"] = float(ratio)
            table[name][key + "_over_fresh_se"] = float(np.sqrt(max(var, 0.0)))
            table[name][key + "_per_run"] = v.tolist()
    out["generated"]["regret"] = table
    out["generated"]["oracle_seconds"] = time.perf_counter() - t0
    out["generated"]["runs"] = cfg.runs
    print(json.dumps(out["generated"], indent=1), flush=True)

    if args.data_dir:
        s = realdata.movielens_setup(args.data_dir)
        users = np.asarray(s["factorisation"].user_vectors, np.float64)
        out["movielens"] = {"ratios": ratios(s["prior"].cov1, s["gauss"].cov, users.T @ users / users.shape[0])}
        print(json.dumps(out["movielens"], indent=1), flush=True)
    save_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
