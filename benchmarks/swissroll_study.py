"""The Swiss-roll regret study (the paper's Figure 3) and the linearisation table.

    PYTHONPATH=. python benchmarks/swissroll_study.py ratios          # 12 presets, dTS (identity) vs LinTS
    PYTHONPATH=. python benchmarks/swissroll_study.py linearisations  # regret per linearisation
    PYTHONPATH=. python benchmarks/swissroll_study.py tables          # print the README tables

Each finished preset is written to benchmarks/results/<name>.json at once, so an interrupted
run resumes where it stopped. Sizes: --rounds, --runs, --actions (defaults: dts_ppl.swissroll.STUDY).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dts_ppl.swissroll import PAPER_RATIOS, PRESETS, STUDY, run_preset

RESULTS = Path(__file__).resolve().parent / "results"


def _summary(out, extra=None):
    res = out.pop("results")
    out["agents"] = {
        k: dict(final_mean=r.final_mean, final_se=r.final_se, seconds=r.seconds, curve_mean=r.mean[::10].tolist())
        for k, r in res.items()
    }
    out.update(extra or {})
    return out


def ratios(args):
    RESULTS.mkdir(exist_ok=True)
    for name in args.presets or PRESETS:
        path = RESULTS / f"{name}.json"
        if path.exists() and not args.force:
            print(f"{name}: done ({path.name})")
            continue
        t = time.time()
        out = run_preset(name, args.actions, args.rounds, args.runs, linearisations=("identity",), progress=False)
        out = _summary(out, dict(wall_s=time.time() - t, command="benchmarks/swissroll_study.py ratios"))
        path.write_text(json.dumps(out, indent=1))
        a = out["agents"]
        print(
            f"{name}: LinTS {a['LinTS']['final_mean']:.1f} +- {a['LinTS']['final_se']:.1f}, dTS "
            f"{a['dTS (identity)']['final_mean']:.1f} +- {a['dTS (identity)']['final_se']:.1f}, ratio "
            f"{out['ratio']:.2f} +- {out['ratio_se']:.2f} ({time.time() - t:.0f}s)",
            flush=True,
        )


def linearisations(args):
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "linearisations-swissroll.json"
    if not path.exists() or args.force:
        t = time.time()
        out = run_preset(
            "swissroll-depth-40",
            args.actions,
            args.rounds,
            args.runs,
            linearisations=("identity", "jacobian", "iterated"),
            progress=False,
        )
        path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
        print(f"swiss roll done ({time.time() - t:.0f}s)", flush=True)


def tables(args):
    def row(name):
        path = RESULTS / f"{name}.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    for kind, title in (("pretrain", "pre-training size N (L = 40)"), ("depth", "depth L (N = 10^4)")):
        print(f"\n| {title} | LinTS regret | dTS regret | LinTS / dTS | paper |")
        print("|---|---|---|---|---|")
        for name in (n for n in PRESETS if f"-{kind}-" in n):
            out = row(name)
            value = name.rsplit("-", 1)[1]
            if out is None:
                print(f"| {value} | not run | | | {PAPER_RATIOS[name]} |")
                continue
            a = out["agents"]
            lin, dts = a["LinTS"], a["dTS (identity)"]
            print(
                f"| {value} | {lin['final_mean']:.1f} +- {lin['final_se']:.1f} | {dts['final_mean']:.1f} +- "
                f"{dts['final_se']:.1f} | {out['ratio']:.2f} +- {out['ratio_se']:.2f} | {PAPER_RATIOS[name]} |"
            )
    some = next((row(n) for n in PRESETS if row(n)), None)
    if some:
        print(
            f"\nK = {some['num_actions']}, n = {some['num_rounds']} rounds, {some['num_runs']} runs, "
            f"Gaussian rewards sd {some['noise']}"
        )
    out = row("linearisations-swissroll")
    if out:
        print("\n| preset | LinTS | dTS identity | dTS jacobian | dTS iterated |")
        print("|---|---|---|---|---|")
        a = out["agents"]
        cells = [f"{a[k]['final_mean']:.1f} +- {a[k]['final_se']:.1f}" for k in a]
        print(f"| swissroll-depth-40 | {' | '.join(cells)} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["ratios", "linearisations", "tables"])
    p.add_argument("--presets", nargs="*")
    p.add_argument("--actions", type=int, default=STUDY["num_actions"])
    p.add_argument("--rounds", type=int, default=STUDY["num_rounds"])
    p.add_argument("--runs", type=int, default=STUDY["num_runs"])
    p.add_argument("--force", action="store_true")
    args = p.parse_args()
    {"ratios": ratios, "linearisations": linearisations, "tables": tables}[args.what](args)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
