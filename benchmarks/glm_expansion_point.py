"""Where to Gaussianise a GLM likelihood: dTS and GLM-TS regret for different expansion points.

    PYTHONPATH=. python benchmarks/glm_expansion_point.py mle linear 100 20 0.001,0.3 dts,glmts
    PYTHONPATH=. python benchmarks/glm_expansion_point.py taylor linear 100 20 0.3,1.0 dts,glmts

MODE "mle": the package's statistics, b_a = G_a B_a at the ridge-regularised fit B_a (ridge as
given). MODE "taylor": b_a = G_a B_a - grad NLL(B_a) (second-order expansion of the
log-likelihood at B_a, exact Laplace when B_a is a penalised optimum), patched in here for the
experiment. Output: benchmarks/results/glm_expansion_point.log (README, logistic rewards).
"""

import sys
import time

import jax
import jax.numpy as jnp

from dts_ppl import agents as ag
from dts_ppl import simulate
from dts_ppl.agents import base
from dts_ppl.envs import paper_environment
from dts_ppl.likelihoods import Bernoulli
from dts_ppl.presets import _SIZES

mode, diff, K, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ridges = [float(r) for r in sys.argv[5].split(",")]
which = sys.argv[6].split(",")
if mode == "taylor":
    orig_update = base.update_evidence

    def update_evidence(likelihood, ev, phi, group, y, newton_steps):
        ev2, old, new = orig_update(likelihood, ev, phi, group, y, newton_steps)
        h = ev2.history
        if h is None:
            return ev2, old, new
        B = h.B[group]
        m = (h.group == group).astype(h.X.dtype)
        grad = h.X.T @ (m * (likelihood.mean(h.X @ B) - h.y))
        bnew = new[1] - grad
        G, b = ev2.stats
        stats = type(ev2.stats)(G, base.set_row(b, group, bnew))
        return ev2._replace(stats=stats), old, (new[0], bnew)

    base.update_evidence = update_evidence
    for module in ("dts_ppl.agents.dts", "dts_ppl.agents.linear"):
        sys.modules[module].update_evidence = update_evidence
key = jax.random.PRNGKey(0)
k_prior, k_marg = jax.random.split(key)
env, prior = paper_environment(k_prior, diff, "logistic", K, **_SIZES[K])
marg = ag.theta_marginal(prior, k_marg)
print("marginal mean", marg[0], "var diag", jnp.diag(marg[1]), flush=True)
for r in ridges:
    for name in which:
        lik = Bernoulli(ridge=r)
        agent = {
            "dts": lambda lik=lik: ag.dts(prior, lik, K, history=5000),
            "dts-it": lambda lik=lik: ag.dts(prior, lik, K, history=5000, linearisation="iterated"),
            "glmts": lambda lik=lik: ag.glm_ts(marg, lik, K, history=5000),
        }[name]()
        t = time.time()
        res = simulate(jax.random.PRNGKey(1), env, agent, num_rounds=5000, num_runs=runs, progress=False)
        print(
            f"{mode} ridge={r} {name}: {float(res.final_mean):.1f} +- {float(res.se[-1]):.1f} ({time.time() - t:.0f}s)",
            flush=True,
        )
