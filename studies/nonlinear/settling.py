"""Where the default dTS's iterated pass settles on fig1-nonlindiff-lin-k100, per run, against a long reference fit.

    PYTHONPATH=. python studies/nonlinear/settling.py --seeds 9,4 \
        --json studies/nonlinear/results/settling.json

For each prior seed (the runs of ``prior_seeds.py --seeds s``: the same prior, keys and paired
runs), the default agent runs 10 runs x 5000 rounds vmapped as ``simulate`` does, recording after
every update the upward pass's passes, whether it converged, its trajectory
(``core.plug_in_mean`` of the state's latents) and the summed evidence. At rounds 500, 1000, 2000,
3000, 4000 and 5000 each run's evidence is refitted offline by the iterated pass with 200 passes
and tol 1e-6, from both the prior mean (cold) and the run's true latent trajectory, keeping the
lower :func:`core.chain_objective` (the reference). Reported per run: the final regret, mean
passes, the fraction of updates that converged or hit ``max_passes``, the objective of the agent's
trajectory minus the reference's (<= 0: the agent is at the best mode found, or lower), and the
distance of u = f_1(psi_1) from the true u in the evidence's G-norm (agent and reference).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.bandits.simulation import run_rounds
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import save_json
from studies.nonlinear.prior_seeds import PRESET, K, parse_seeds

#: Rounds at which the evidence is refitted (1-based).
CHECKPOINTS = (500, 1000, 2000, 3000, 4000, 5000)


def record_runs(seed: int, runs: int, rounds: int) -> dict:
    """The default agent's runs on prior seed ``seed`` with per-update records (numpy arrays)."""
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(seed))
    k_prior, _ = jax.random.split(k_build)
    env, prior = paper_environment(k_prior, "mlp", "linear", K, *SIZES[K])
    agent = ag.dts(prior, Gaussian(1.0), K)
    conds = core.prior_conditionals(prior, K)

    def record(s):
        return s.passes, s.converged, core.plug_in_mean(prior, s.latents), s.evidence_sum.G, s.evidence_sum.b

    def one(key):
        psi = core.sample(jax.random.split(key, 4)[0], prior, conds)[0]  # the run's true latents (env's key)
        _, regret, rec = run_rounds(key, env, agent, rounds, record)
        return psi, jnp.sum(regret), rec

    keys = jax.vmap(lambda r: jax.random.fold_in(k_sim, r))(jnp.arange(runs))
    psi, final, (passes, conv, points, G, b) = jax.jit(jax.vmap(one))(keys)
    at = np.asarray([c - 1 for c in CHECKPOINTS if c <= rounds])
    out = dict(psi=psi, final=final, passes=passes, conv=conv, points=points[:, at], G=G[:, at], b=b[:, at])
    return {k: np.asarray(v) for k, v in out.items()}, prior


def reference(prior, rec: dict) -> dict:
    """Objective gaps and G-norm distances of the agent's and the reference's u from the true u."""
    objective = jax.vmap(jax.vmap(lambda G, b, p: core.chain_objective(prior, core.Message(G, b), p)))

    def fit(G, b, start):
        up = core.upward_pass(prior, core.Message(G, b), tol=1e-6, max_passes=200, start=start)
        return core.plug_in_mean(prior, up.latents)

    G, b, points = (jnp.asarray(rec[k]) for k in ("G", "b", "points"))
    truth = jnp.broadcast_to(jnp.asarray(rec["psi"])[:, None], points.shape)
    best = jax.jit(jax.vmap(jax.vmap(fit)))(G, b, truth)
    gap = objective(G, b, points) - objective(G, b, best)

    def u_dist(p):
        u = jax.vmap(jax.vmap(lambda q: prior.link1(q[-1])))(p) - jax.vmap(jax.vmap(lambda q: prior.link1(q[-1])))(
            truth
        )
        return jnp.sqrt(jnp.einsum("rci,rcij,rcj->rc", u, G, u))

    return dict(gap=np.asarray(gap), agent_u=np.asarray(u_dist(points)), reference_u=np.asarray(u_dist(best)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="9,4")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5000)
    p.add_argument("--json", required=True)
    args = p.parse_args()
    path = Path(args.json)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(
        preset=PRESET, runs=args.runs, rounds=args.rounds, checkpoints=[c for c in CHECKPOINTS if c <= args.rounds]
    )
    data.setdefault("seeds", {})
    for seed in parse_seeds(args.seeds):
        t0 = time.perf_counter()
        rec, prior = record_runs(seed, args.runs, args.rounds)
        ref = reference(prior, rec)
        data["seeds"][str(seed)] = {
            "final_regrets": rec["final"].round(2).tolist(),
            "mean_passes": rec["passes"].mean(1).round(2).tolist(),
            "converged_fraction": rec["conv"].mean(1).round(4).tolist(),
            "max_passes_fraction": (rec["passes"] >= core.DEFAULT_MAX_PASSES).mean(1).round(4).tolist(),
            "objective_minus_reference": ref["gap"].round(3).tolist(),
            "agent_u_distance": ref["agent_u"].round(2).tolist(),
            "reference_u_distance": ref["reference_u"].round(2).tolist(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        save_json(path, data)
        gap = ref["gap"]
        print(
            f"seed {seed}: objective - reference: max {gap.max():.2f}, min {gap.min():.2f}; "
            f"final {rec['final'].round(0).tolist()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
