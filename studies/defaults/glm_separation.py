"""Why Gaussianised logistic evidence is weak here: MLE norms |B_a| against the true |theta_a|.

One run of dTS (Bernoulli) on the fig1-lindiff-logistic-k100 problem (seed 0), 2000 rounds:

    PYTHONPATH=. python studies/defaults/glm_separation.py           # Bernoulli(): ridge 1e-3, the paper's (near-)MLE point
    PYTHONPATH=. python studies/defaults/glm_separation.py --prior   # Bernoulli().regularised_for(theta_cov), the presets' point

Prints and writes studies/defaults/results/glm_separation[_prior].json: per bin of pull counts,
the number of actions, the median |B_a| (the per-action MLE of the history) and median |theta_a|.
"""

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from dts_ppl import Bernoulli
from dts_ppl import agents as ag
from dts_ppl.bandits.envs import sample_reward
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import save_json

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--prior", action="store_true", help="expand at the prior-regularised point")
parser.add_argument("--rounds", type=int, default=2000)
args = parser.parse_args()

k_build, k_sim = jax.random.split(jax.random.PRNGKey(0))
k_prior, k_marg = jax.random.split(k_build)
env, prior = paper_environment(k_prior, "linear", "logistic", 100, 5, (5, 2), 20)
lik = Bernoulli()
if args.prior:
    lik = lik.regularised_for(ag.theta_marginal(prior).cov)
print(f"ridge {lik.effective_ridge:.3g}")
agent = ag.dts(prior, lik, 100, history=args.rounds)
n = args.rounds


def run(key):
    k_theta, k = jax.random.split(key)
    theta = env.sample_theta(k_theta)

    def body(s, k):
        kx, ka, ky = jax.random.split(k, 3)
        x = env.sample_context(kx)
        a, _ = agent.act(ka, s, x)
        y = sample_reward(env, ky, theta, x, a)
        return agent.update(s, x, a, y), a

    s, acts = jax.lax.scan(body, agent.init(), jax.random.split(k, n))
    return s, acts, theta


s, acts, theta = jax.jit(run)(jax.random.PRNGKey(5))
counts = np.bincount(np.asarray(acts), minlength=100)
B = np.asarray(s.evidence.history.B)
th = np.asarray(theta)
nb = np.linalg.norm(B, axis=1)
nt = np.linalg.norm(th, axis=1)
bins = []
for lo, hi in [(1, 5), (5, 20), (20, 100), (100, 10000)]:
    m = (counts >= lo) & (counts < hi)
    if m.any():
        row = dict(
            pulls=[lo, hi],
            actions=int(m.sum()),
            median_norm_B=float(np.median(nb[m])),
            median_norm_theta=float(np.median(nt[m])),
            max_norm_B=float(nb[m].max()),
        )
        bins.append(row)
        print(
            f"pulls in [{lo},{hi}): {row['actions']:3d} actions, median |B_a| {row['median_norm_B']:8.2f}, "
            f"median |theta_a| {row['median_norm_theta']:6.2f}, max |B_a| {row['max_norm_B']:9.1f}"
        )
print("true theta norms median", np.median(nt))
out = dict(
    command="PYTHONPATH=. python studies/defaults/glm_separation.py" + (" --prior" if args.prior else ""),
    dtype=str(jax.numpy.result_type(float)),
    ridge=float(lik.effective_ridge),
    rounds=n,
    bins=bins,
    median_norm_theta_all=float(np.median(nt)),
    date=time.strftime("%Y-%m-%d", time.gmtime()),
)
name = "glm_separation_prior.json" if args.prior else "glm_separation.json"
save_json(Path(__file__).resolve().parent / "results" / name, out)
