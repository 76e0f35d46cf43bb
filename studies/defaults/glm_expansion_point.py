"""Where to Gaussianise a logistic likelihood: regret of dTS, GLM-TS and UCB-GLM against the ridge.

    PYTHONPATH=. python studies/defaults/glm_expansion_point.py [RUNS] [RIDGES] [AGENTS]
    PYTHONPATH=. python studies/defaults/glm_expansion_point.py 20 0.001,0.03,0.1,prior,1,3 dts,glmts,ucbglm

On a fig1-lindiff-logistic-k100 problem (K = 100, d = 5, L = 2; the true prior drawn from
PRNGKey(0) itself, so another draw than the table's; 5000 rounds, runs from PRNGKey(1)),
every agent uses Bernoulli(ridge=r): the statistics expand the log-likelihood to
second order at the fit regularised by r (docs/math.md section 2, ``_GLM.laplace``). "prior" is
``Bernoulli().regularised_for(theta_cov)``, r = 1 / mean prior variance of theta (the presets'
choice); 0.001 is the default, close to the paper's MLE point.
Output: studies/defaults/results/glm_expansion_point.json (docs/choosing.md, "Where GLM likelihoods are expanded").
"""

import json
import sys
import time

import jax

from dts_ppl import agents as ag
from dts_ppl import simulate
from dts_ppl.core.likelihoods import Bernoulli
from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
ridges = (sys.argv[2] if len(sys.argv) > 2 else "0.001,0.03,0.1,prior,1,3").split(",")
which = (sys.argv[3] if len(sys.argv) > 3 else "dts,glmts,ucbglm").split(",")
K = 100
k_prior, k_marg = jax.random.split(jax.random.PRNGKey(0))
env, prior = paper_environment(k_prior, "linear", "logistic", K, *SIZES[K])
marg = ag.theta_marginal(prior, k_marg)
results = []
for r in ridges:
    lik = Bernoulli().regularised_for(marg[1]) if r == "prior" else Bernoulli(ridge=float(r))
    for name in which:
        make = {
            "dts": lambda lik=lik: ag.dts(prior, lik, K, history=5000),
            "glmts": lambda lik=lik: ag.glm_ts(marg, lik, K, history=5000),
            "ucbglm": lambda lik=lik: ag.ucb_glm(marg, lik, K, history=5000),
        }
        t = time.time()
        res = simulate(jax.random.PRNGKey(1), env, make[name](), num_rounds=5000, num_runs=runs, progress=False)
        row = dict(
            ridge=r,
            ridge_value=lik.effective_ridge,
            agent=name,
            runs=runs,
            mean=float(res.final_mean),
            se=float(res.se[-1]),
        )
        results.append(row)
        print(
            f"ridge={r} ({lik.effective_ridge:.3g}) {name}: {row['mean']:.1f} +- {row['se']:.1f} ({time.time() - t:.0f}s)",
            flush=True,
        )
with open("studies/defaults/results/glm_expansion_point.json", "w") as f:
    json.dump(results, f, indent=1)
