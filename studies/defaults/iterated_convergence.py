"""Upward passes the default (iterated) dTS agent needs per update, to choose tol and max_passes.

    python studies/defaults/iterated_convergence.py DIFFUSION REWARD K RUNS ROUNDS MAX_PASSES [TOL]

e.g. ``mlp linear 100 10 5000 100`` is fig1-nonlindiff-lin-k100. Runs the default dTS agent with
``max_passes=MAX_PASSES`` (and ``tol``) on the fig1 problem, with the keys ``dts-ppl bench
regret --seed 0`` uses, and prints (one JSON line) the distribution of ``DTSState.passes`` over
all updates of all runs and each run's final regret.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core import inference as core
from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment


def passes_and_regret(key, env, agent, num_rounds):
    """One run: per-round passes (num_rounds,), converged flags, and per-round regret (the simulator's keys)."""
    _, regret, (passes, converged) = run_rounds(key, env, agent, num_rounds, lambda s: (s.passes, s.converged))
    return passes, converged, regret


def main():
    diffusion, reward, K = sys.argv[1], sys.argv[2], int(sys.argv[3])
    runs, rounds, max_passes = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    tol = float(sys.argv[7]) if len(sys.argv) > 7 else core.DEFAULT_TOL
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(0))  # as `dts-ppl bench regret --seed 0`
    k_prior, _ = jax.random.split(k_build)  # as the fig1 preset builders
    env, prior = paper_environment(k_prior, diffusion, reward, K, *SIZES[K])
    agent = ag.dts(prior, env.likelihood, K, history=rounds, tol=tol, max_passes=max_passes)
    keys = jax.vmap(lambda r: jax.random.fold_in(k_sim, r))(jnp.arange(runs))
    passes, conv, regret = jax.jit(jax.vmap(lambda k: passes_and_regret(k, env, agent, rounds)))(keys)
    passes, conv, final = np.asarray(passes), np.asarray(conv), np.asarray(regret).sum(1)
    out = {
        "problem": [diffusion, reward, K],
        "runs": runs,
        "rounds": rounds,
        "max_passes": max_passes,
        "tol": tol,
        "passes_mean": float(passes.mean()),
        "passes_max": int(passes.max()),
        "passes_quantiles": {str(q): float(np.quantile(passes, q)) for q in (0.5, 0.9, 0.99, 0.999)},
        "unconverged_updates": int((~conv).sum()),
        "updates": int(conv.size),
        "runs_with_unconverged_updates": int((~conv).any(1).sum()),
        "final_regret": [round(float(v), 2) for v in final],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
