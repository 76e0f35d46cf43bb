"""LaplaceDPS on an affine chain: its posterior against the float64 joint-Gaussian oracle, and its
time per round beside dTS's.

For a fixed 3-level affine chain (d = 3, d_psi = 2) and ``--obs`` Gaussian observations, the
maximum absolute difference between the oracle's moments (:mod:`dts_ppl.core.oracle`) and those
of LaplaceDPS's stage posteriors, for both evidence maps ("propagated": exact by construction;
"diffused": the paper's map, whose gap shrinks with the data), and each agent's time per round.

    PYTHONPATH=. python studies/shapes/affine_check.py
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents import dts
from dts_ppl.agents.laplace_dps import laplace_dps, stage_posteriors
from dts_ppl.bandits.envs import Environment, uniform_contexts
from dts_ppl.core import inference as core
from dts_ppl.core import oracle
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from studies.common import results_dir, save_json
from studies.shapes.shapes_study import seconds_per_round

jax.config.update("jax_enable_x64", True)


def chain() -> DiffusionPrior:
    """The test chain of tests/agents/test_laplace_dps.py."""
    return DiffusionPrior.linear(
        [
            jnp.array([[1.0, 0.5], [0.2, -0.7], [0.3, 0.1]]),
            jnp.array([[0.8, 0.1], [-0.2, 0.9]]),
            jnp.array([[1.1, 0.0], [0.3, 0.7]]),
        ],
        [0.5, 0.3, 0.4, 1.0],
        offsets=[jnp.array([0.1, -0.2, 0.3]), jnp.array([0.5, 0.0]), jnp.array([0.0, -0.4])],
    )


def gaps(prior, n: int, seed: int) -> dict:
    """Max |moment difference| from the oracle after n observations, per evidence map."""
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.uniform(-1, 1, (n, prior.dim)))
    y = X @ jnp.array([0.7, -0.3, 0.4]) + jnp.asarray(rng.normal(size=n))
    stats = Gaussian(1.0).statistics(X, jnp.zeros(n, int), y, 1)
    exact = oracle.split(prior, oracle.joint_posterior(prior, stats), 1)
    lin = core.linearise(prior, "jacobian")
    out = {}
    for ev in ("propagated", "diffused"):
        mo = core.moments(prior, stage_posteriors(prior, stats.G[0], stats.b[0], ev), lin)
        out[ev] = {
            k: float(jnp.max(jnp.abs(getattr(mo, k) - exact[k])))
            for k in ("psi_mean", "psi_cov", "theta_mean", "theta_cov")
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=500)
    args = p.parse_args()
    prior = chain()
    K = 20
    env = Environment(lambda k: jnp.zeros(3), uniform_contexts(3, K), Gaussian(1.0), K, 3, True, "affine chain")
    agents = {
        "dTS": dts(prior, Gaussian(1.0), K, shared=True, collapse=False),
        "dTS (collapsed)": dts(prior, Gaussian(1.0), K, shared=True),
        "LaplaceDPS (diffused)": laplace_dps(prior, Gaussian(1.0), K),
        "LaplaceDPS (propagated)": laplace_dps(prior, Gaussian(1.0), K, evidence="propagated"),
    }
    timing = {k: seconds_per_round(a, env, args.rounds, jax.random.PRNGKey(3)) for k, a in agents.items()}
    out = dict(
        command=f"PYTHONPATH=. python studies/shapes/affine_check.py --rounds {args.rounds}",
        gaps={str(n): gaps(prior, n, n) for n in (10, 100, 1000, 10000)},
        seconds_per_round=timing,
    )
    save_json(results_dir("shapes") / "affine_check.json", out)
    print(out)


if __name__ == "__main__":
    main()
