"""S_1 of the shipped Swiss-roll prior: its old S_1 = I (standardised) against the "marginal" rule.

    PYTHONPATH=. python studies/swissroll/swissroll_action_cov.py

Loads dts_ppl/models/swissroll_L40.npz (not modified), calibrates S_1 to the prior's own training
samples (``experiments.swissroll.swiss_roll(10000, seed=0)``) with the rule of
``train_diffusion_prior`` (20000 prior draws of psi_1, key fold_in(PRNGKey(0), 1), eigenvalue floor
beta_1), and measures each prior's theta marginal covariance (40000 draws) against the data's
(relative Frobenius error). Writes studies/swissroll/results/swissroll_action_cov.json.

With ``--regret RUNS``: also the Swiss-roll study's regret (``studies.common.run_swissroll_preset``,
preset swissroll-pretrain-10000: K = 100 i.i.d. roll points per run, contexts U[-1, 1]^2,
N(x^T theta, 1) rewards, 1000 rounds, seed 0, dTS "identity") with the old and the calibrated
S_1, both against LinTS with the fitted Gaussian; the paired ratios go in the same JSON.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np

from dts_ppl import action_cov_calibration, calibrate_action_cov, load_prior, sample_prior
from dts_ppl.bandits.simulation import regret_ratio
from dts_ppl.experiments.swissroll import MODELS_DIR, swiss_roll
from studies.common import run_swissroll_preset

# float32 (JAX's default), the dtype of the shipped prior and of the Swiss-roll study
prior, meta = load_prior(MODELS_DIR / "swissroll_L40.npz")
data = swiss_roll(meta["num_samples"], seed=meta["study_config"]["seed"])
key, floor = jax.random.fold_in(jax.random.PRNGKey(0), 1), float(meta["betas"][0])
cal = action_cov_calibration(prior, data, key, 20_000, floor)
calibrated = calibrate_action_cov(prior, data, key, 20_000, floor)
ref = np.cov(data.T)
out = dict(
    command="PYTHONPATH=. python studies/swissroll/swissroll_action_cov.py",
    data_cov=ref.tolist(),
    link_cov=cal.link_cov.tolist(),
    eigenvalues_before_clipping=cal.eigenvalues.tolist(),
    floor=floor,
    num_clipped=cal.num_clipped,
    S_1=dict(old=np.asarray(prior.cov1).tolist(), calibrated=np.asarray(calibrated.cov1).tolist()),
)
for name, p in (("old", prior), ("calibrated", calibrated)):
    _, theta = sample_prior(jax.random.PRNGKey(99), p, 40_000)
    c = np.cov(np.asarray(theta[:, 0]).T)
    out[f"theta_marginal_cov_{name}"] = c.tolist()
    out[f"relative_frobenius_error_{name}"] = float(np.linalg.norm(c - ref) / np.linalg.norm(ref))
if "--regret" in sys.argv:
    runs = int(sys.argv[sys.argv.index("--regret") + 1])
    out["command"] += f" --regret {runs}"
    scale = np.asarray(meta["standardisation"]["scale"])
    s1_std = np.asarray(calibrated.cov1) / np.outer(scale, scale)  # action_cov is in standardised units
    regret, dts_runs = {}, {}
    for name, acov in (("old", 1.0), ("calibrated", s1_std)):
        res = run_swissroll_preset("swissroll-pretrain-10000", num_runs=runs, progress=False, action_cov=acov)
        lints, dts_res = res["results"]["LinTS"], res["results"]["dTS (identity)"]
        dts_runs[name] = dts_res
        regret[name] = dict(
            dTS=dict(mean=dts_res.final_mean, se=dts_res.final_se),
            LinTS=dict(mean=lints.final_mean, se=lints.final_se),
            ratio_LinTS_over_dTS=res["ratio"],
            ratio_se=res["ratio_se"],
            dTS_below_LinTS_runs=int(np.sum(dts_res.cumulative[:, -1] < lints.cumulative[:, -1])),
        )
        print(name, regret[name], flush=True)
    r, se = regret_ratio(dts_runs["old"], dts_runs["calibrated"])  # same seed: paired runs
    out["regret"] = dict(preset="swissroll-pretrain-10000", num_runs=runs, num_rounds=1000, **regret)
    out["regret"]["ratio_old_over_calibrated"] = dict(ratio=r, se=se)
print(json.dumps(out, indent=1))
(Path(__file__).parent / "results" / "swissroll_action_cov.json").write_text(json.dumps(out, indent=1))
