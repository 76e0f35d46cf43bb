"""Why Gaussianised logistic evidence is weak here: MLE norms |B_a| against the true |theta_a|.

One run of dTS (Bernoulli) on the fig1-lindiff-logistic-k100 problem (seed 0), 2000 rounds:
    python benchmarks/glm_separation.py          # Bernoulli(): ridge 1e-3, the paper's (near-)MLE point
    python benchmarks/glm_separation.py prior    # Bernoulli().regularised_for(theta_cov), the presets' point
"""

import sys

import jax
import numpy as np

from dts_ppl import Bernoulli
from dts_ppl import agents as ag
from dts_ppl.bandits.envs import sample_reward
from dts_ppl.experiments.synthetic import paper_environment

k_build, k_sim = jax.random.split(jax.random.PRNGKey(0))
k_prior, k_marg = jax.random.split(k_build)
env, prior = paper_environment(k_prior, "linear", "logistic", 100, 5, (5, 2), 20)
lik = Bernoulli()
if sys.argv[1:] == ["prior"]:
    lik = lik.regularised_for(ag.theta_marginal(prior).cov)
print(f"ridge {lik.effective_ridge:.3g}")
agent = ag.dts(prior, lik, 100, history=2000)
n = 2000


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
for lo, hi in [(1, 5), (5, 20), (20, 100), (100, 10000)]:
    m = (counts >= lo) & (counts < hi)
    if m.any():
        stats = f"median |B_a| {np.median(nb[m]):8.2f}, median |theta_a| {np.median(nt[m]):6.2f}"
        print(f"pulls in [{lo},{hi}): {m.sum():3d} actions, {stats}, max |B_a| {nb[m].max():9.1f}")
print("true theta norms median", np.median(nt))
