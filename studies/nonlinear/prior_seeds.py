"""Final regret of dTS upward-pass rules and LinTS on fig1-nonlindiff-lin-k100 across prior seeds.

    PYTHONPATH=. python studies/nonlinear/prior_seeds.py --seeds 0-9 --runs 10 \
        --variants default,LinTS --json studies/nonlinear/results/prior_seeds.json

Seed s is ``dts-ppl bench regret --preset fig1-nonlindiff-lin-k100 --seed s``: the preset's random
MLP prior is drawn from it (``jax.random.split(jax.random.PRNGKey(s))[0]``, split again as the
Figure 1 builders do) and the runs use the bench's simulation keys, so every variant of one seed
sees the same priors, thetas, contexts and reward noise (paired runs). ``--variants`` names
entries of :data:`VARIANTS` (dTS keyword arguments) or "LinTS" (the preset's own LinTS, with the
moment-matched marginal of the prior). Results merge into the JSON (one entry per seed and
variant, final regret of every run), so variants and seeds can be added by later calls (or by
separate processes writing separate files, merged afterwards):

    PYTHONPATH=. python studies/nonlinear/prior_seeds.py --merge A.json B.json [--tag @COMMIT] \
        --json studies/nonlinear/results/prior_seeds.json

copies every seed's entries of A.json, B.json into the target, with ``--tag`` appended to the
dTS variant names (not to LinTS, whose code a tag does not concern): this is how results measured
at an earlier commit (an earlier default) are kept next to the current ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.bandits.simulation import simulate
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments.regret import SIZES, paper_agents
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import save_json

PRESET = "fig1-nonlindiff-lin-k100"
K = 100

#: dTS variants by name: keyword arguments of ``dts_ppl.agents.dts`` ("default": none).
VARIANTS: dict[str, dict] = {
    "default": {},
    "cold": {"warm_start": False},
    "passes50": {"max_passes": 50},
    "identity": {"linearisation": "identity"},
    "jacobian": {"linearisation": "jacobian"},
}


def parse_seeds(text: str) -> list[int]:
    """'0-9' or '0,3,5' -> list of ints."""
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def run_seed(seed: int, variants: list[str], runs: int, rounds: int) -> dict:
    """{variant: {"final_regrets": [...], "seconds": s}} for one prior seed."""
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(seed))  # as `dts-ppl bench regret --seed`
    k_prior, k_marg = jax.random.split(k_build)  # as regret.figure1's builder
    env, prior = paper_environment(k_prior, "mlp", "linear", K, *SIZES[K])
    out = {}
    for name in variants:
        if name == "LinTS":
            agent = paper_agents(k_marg, prior, "linear", K, rounds, which=("LinTS",))["LinTS"]
        else:
            agent = ag.dts(prior, Gaussian(1.0), K, **VARIANTS[name])
        t0 = time.perf_counter()
        res = simulate(k_sim, env, agent, rounds, runs, progress=False)
        final = np.asarray(res.cumulative)[:, -1]
        out[name] = {
            "final_regrets": [round(float(v), 2) for v in final],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(f"seed {seed} {name}: {final.mean():.1f} +- {final.std(ddof=1) / np.sqrt(runs):.1f}", flush=True)
    return out


def merge(path: Path, sources: list[Path], tag: str) -> None:
    """Copy every seed's entries of ``sources`` into ``path`` (dTS variant names + ``tag``)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("seeds", {})
    for src in sources:
        other = json.loads(src.read_text())
        for key in ("preset", "runs", "rounds"):
            if key in data and data[key] != other[key]:
                raise ValueError(f"--merge: {src} has {key}={other[key]!r}, {path} has {data[key]!r}")
            data[key] = other[key]
        for seed, res in other["seeds"].items():
            for name, entry in res.items():
                data["seeds"].setdefault(seed, {})[name if name == "LinTS" else name + tag] = entry
    save_json(path, data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5000)
    p.add_argument("--variants", default="default,LinTS")
    p.add_argument("--json", required=True)
    p.add_argument("--merge", nargs="*", default=None, help="merge these result files instead of running")
    p.add_argument("--tag", default="", help="with --merge: appended to the merged dTS variant names")
    args = p.parse_args()
    path = Path(args.json)
    if args.merge is not None:
        merge(path, [Path(m) for m in args.merge], args.tag)
        return
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v != "LinTS" and v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; expected LinTS or one of {sorted(VARIANTS)}")
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(preset=PRESET, runs=args.runs, rounds=args.rounds)
    data.setdefault("seeds", {})
    for seed in parse_seeds(args.seeds):
        res = run_seed(seed, variants, args.runs, args.rounds)
        data["seeds"].setdefault(str(seed), {}).update(res)
        save_json(path, data)


if __name__ == "__main__":
    main()
