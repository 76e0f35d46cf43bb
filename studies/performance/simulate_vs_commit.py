"""`simulate` run-rounds per second of dTS on the Swiss-roll preset: this checkout against the
package of an older commit, in alternating processes (two versions of one package cannot share a
process), CPU time of each process, float32.

The older package is an extracted copy outside the repository, for example:

    git archive bf6f437 dts_ppl | tar -x -C ../dts_old
    python studies/performance/simulate_vs_commit.py --old-root ../dts_old --commit bf6f437

Each child process compiles dTS on the swissroll-pretrain-10000 preset (K = 100, identity rule),
runs ``runs`` x ``rounds`` rounds through ``run_regret`` vmapped like ``simulate``, and reports the
median of ``reps`` timed calls. Writes results/simulate_vs_commit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[2]
RESULTS = HERE.parent / "results"

CHILD = """
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from dts_ppl.bandits.simulation import run_regret
from dts_ppl.experiments.swissroll import STUDY, swissroll_agents, swissroll_environment
runs, rounds, reps = (int(v) for v in sys.argv[1:4])
study = STUDY if isinstance(STUDY, dict) else STUDY._asdict()
env = swissroll_environment(study["num_actions"], study["noise"])
agent = swissroll_agents("swissroll-pretrain-10000", linearisations=("identity",), progress=False)["dTS (identity)"]
fn = jax.jit(jax.vmap(lambda k: jnp.cumsum(run_regret(k, env, agent, rounds))))
jax.block_until_ready(fn(jax.random.split(jax.random.PRNGKey(0), runs)))
times = []
for i in range(reps):
    keys = jax.random.split(jax.random.PRNGKey(i + 1), runs)
    start = time.process_time()
    jax.block_until_ready(fn(keys))
    times.append(time.process_time() - start)
print(json.dumps({"run_rounds_per_s": runs * rounds / float(np.median(times))}))
"""


def child_rate(root: pathlib.Path, runs: int, rounds: int, reps: int) -> float:
    """Run-rounds per second of the dTS simulate of the package under ``root`` (one child process)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(runs), str(rounds), str(reps)],
        env=env,
        cwd=str(root),
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["run_rounds_per_s"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old-root", required=True, help="folder holding the older commit's dts_ppl package")
    p.add_argument("--commit", required=True, help="the older commit's hash (recorded in the JSON)")
    p.add_argument("--pairs", type=int, default=2, help="alternating (old, new) process pairs")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    old_root = pathlib.Path(args.old_root).resolve()
    if not (old_root / "dts_ppl" / "__init__.py").is_file():
        raise ValueError(f"--old-root: expected a folder holding dts_ppl/, got {args.old_root!r}")
    rates = {"old": [], "new": []}
    for _ in range(args.pairs):
        rates["old"].append(child_rate(old_root, args.runs, args.rounds, args.reps))
        rates["new"].append(child_rate(ROOT, args.runs, args.rounds, args.reps))
        print({k: round(v[-1]) for k, v in rates.items()})
    ratio = np.asarray(rates["new"]) / np.asarray(rates["old"])
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    out = {
        "command": (
            "PYTHONPATH=. python studies/performance/simulate_vs_commit.py --old-root DIR"
            f" --commit {args.commit} --pairs {args.pairs} --runs {args.runs} --rounds {args.rounds} --reps {args.reps}"
        ),
        "commit": args.commit,
        "preset": "swissroll-pretrain-10000",
        "runs": args.runs,
        "rounds": args.rounds,
        "reps": args.reps,
        "clock": "cpu",
        "load_average": load,
        "run_rounds_per_s": rates,
        "new_over_old": {"median": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max())},
    }
    path = pathlib.Path(args.json) if args.json else RESULTS / "simulate_vs_commit.json"
    sys.path.insert(0, str(ROOT))
    from studies.performance.common import save_json

    save_json(path, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
