"""How many up/down passes the "iterated" linearisation needs on random MLP links.

    PYTHONPATH=. python studies/defaults/iterated_passes.py [PASSES ...]     # default 1 3 6 12

The fig1-nonlindiff-lin-k100 problem of the regret table (seed 0, same key derivation as
`dts-ppl bench regret`), 50 runs x 5000 rounds with the table's run keys: dTS with
linearisation "iterated" and 1, 3, 6, 12 passes per update (1 pass = "jacobian") against
LinTS on the same runs. Prints the mean, s.e., quantiles of the per-run final regret and the
number of runs in which dTS beats LinTS, and writes them to studies/defaults/results/iterated_passes.json.

The recorded 3/6/12-pass numbers (converted from the script's printed transcript of that run) predate the damped, convergence-tested pass (docs/defaults.md):
they were n undamped passes. ``max_passes=n, tol=0.0`` now runs n passes of the damped rule.
"""

import sys
import time
from pathlib import Path

import jax
import numpy as np

from dts_ppl import agents as ag
from dts_ppl import simulate
from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import save_json

passes = [int(p) for p in sys.argv[1:]] or [1, 3, 6, 12]
k_build, k_sim = jax.random.split(jax.random.PRNGKey(0))
k_prior, k_marg = jax.random.split(k_build)
env, prior = paper_environment(k_prior, "mlp", "linear", 100, *SIZES[100])
lints = simulate(k_sim, env, ag.lin_ts(ag.theta_marginal(prior, k_marg), None, 100), 5000, 50, progress=False)
base = lints.cumulative[:, -1]
print(f"LinTS: {lints.final_mean:.0f} +- {lints.final_se:.0f}", flush=True)
rows = []
for n in passes:
    lin = "jacobian" if n == 1 else "iterated"
    t = time.time()
    res = simulate(
        k_sim, env, ag.dts(prior, None, 100, linearisation=lin, max_passes=n, tol=0.0), 5000, 50, progress=False
    )
    final = res.cumulative[:, -1]
    q = np.percentile(final, [0, 25, 50, 75, 90, 100]).round().astype(int)
    seconds = time.time() - t
    row = dict(passes=n, linearisation=lin, mean=float(res.final_mean), se=float(res.final_se))
    rows.append(dict(row, quantiles=q.tolist(), beats_lints=int((final < base).sum()), runs=50, seconds=seconds))
    print(
        f"{n:2d} passes ({lin}): {res.final_mean:.0f} +- {res.final_se:.0f}; quantiles 0/25/50/75/90/100% {q.tolist()};"
        f" beats LinTS in {(final < base).sum()}/50 runs ({seconds:.0f} s)",
        flush=True,
    )
out = dict(
    command="PYTHONPATH=. python studies/defaults/iterated_passes.py " + " ".join(map(str, passes)),
    problem="fig1-nonlindiff-lin-k100, seed 0, 50 runs x 5000 rounds",
    quantile_levels=[0, 25, 50, 75, 90, 100],
    lints=dict(mean=float(lints.final_mean), se=float(lints.final_se)),
    dts=rows,
)
save_json(Path(__file__).resolve().parent / "results" / "iterated_passes.json", out)
