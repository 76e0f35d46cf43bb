"""Cost of the dTS guide against NUTS per effective sample, on each validation preset, in one process.

    PYTHONPATH=. python studies/performance/guide_vs_nuts_cost.py \
        --out studies/performance/results/guide_vs_nuts_cost.json [--presets linear,mlp,logistic,ddpm] [--num-obs N]

For each preset (at its default n unless --num-obs) NUTS runs once with the preset's settings
(dts_ppl.experiments.validation.NUTS_SETTINGS; wall time from the start of the run to the last
draw, compilation and warm-up included: what a user waits for), and its cost per effective
sample is wall / least bulk ESS over all coordinates. The guide (study rule "new": iterated
linearisation, prior-regularised GLM expansion) is timed in the same process on the same data:
seconds per independent draw, posterior included, best of 3 compiled calls of 2000 draws
(each draw is one effective sample). The ratio is NUTS s/ESS over guide s/draw. Before each
NUTS run the guide is timed once more, and the two guide timings are averaged, so a change in
machine load during the NUTS run shows up as a gap between them (reported).

    PYTHONPATH=. python studies/performance/guide_vs_nuts_cost.py --from-study studies/validation/results/validation_study.json \
        --out studies/performance/results/guide_vs_nuts_cost.json

collects the same figures from the rows of a `dts-ppl validation-study` run instead (there each
(preset, n) timed its NUTS reference and then the guide, in the study's one process), without
running anything: one row per (preset, n), the "new" rule's guide.
"""

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

from dts_ppl.experiments.study import guide_seconds_per_draw, rule_guide, study_problem  # noqa: E402
from dts_ppl.experiments.validation import NUTS_SETTINGS, PRESETS  # noqa: E402
from dts_ppl.ppl.nuts import nuts_diagnostics, run_nuts  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--presets", default=",".join(PRESETS))
parser.add_argument("--num-obs", type=int, default=None)
parser.add_argument("--out", required=True)
parser.add_argument("--from-study", metavar="JSON", help="collect the figures from a validation-study JSON")
args = parser.parse_args()

if args.from_study:
    with open(args.from_study) as f:
        study = [r for r in json.load(f) if r["rule"] == "new"]
    out = [
        dict(
            preset=r["preset"],
            num_obs=r["num_obs"],
            nuts_settings=r["nuts_settings"],
            nuts_wall_s=r["nuts_wall_s"],
            nuts_ess_bulk_min=r["ess_bulk_min"],
            nuts_reliable=r["reliable"],
            nuts_s_per_ess=r["nuts_s_per_ess"],
            guide_s_per_draw=r["guide_s_per_draw"],
            ratio=r["cost_ratio"],
        )
        for r in study
    ]
    for r in out:
        print(
            f"{r['preset']} n={r['num_obs']}: {r['nuts_s_per_ess']:.2e} s/ESS vs {r['guide_s_per_draw']:.2e} s/draw: "
            f"{r['ratio']:.0f}x"
        )
    with open(args.out, "w") as f:
        json.dump({"source": args.from_study, "rows": out}, f, indent=2)
    raise SystemExit(0)

rows = []
key = jax.random.PRNGKey(0)
for i, preset in enumerate(args.presets.split(",")):
    k_data, k_nuts, k_guide = jax.random.split(jax.random.fold_in(key, i), 3)
    problem = study_problem(preset, k_data, args.num_obs)
    data = (problem.X, problem.A, problem.y)
    guide = rule_guide(problem.model, "new", key=k_guide)
    before = guide_seconds_per_draw(guide, k_guide, *data)
    settings = NUTS_SETTINGS[preset]._replace(chain_method="vectorized")
    nuts = run_nuts(problem.model, data, settings, k_nuts, progress_bar=False)
    after = guide_seconds_per_draw(guide, jax.random.fold_in(k_guide, 1), *data)
    diag = nuts_diagnostics(nuts)
    per_draw = (before + after) / 2
    s_per_ess = nuts.wall_s / diag.ess_bulk_min
    row = dict(
        preset=preset,
        num_obs=int(problem.X.shape[0]),
        nuts_settings=nuts.settings._asdict(),
        nuts_wall_s=nuts.wall_s,
        nuts_ess_bulk_min=diag.ess_bulk_min,
        nuts_reliable=diag.reliable(),
        nuts_s_per_ess=s_per_ess,
        guide_s_per_draw_before=before,
        guide_s_per_draw_after=after,
        guide_s_per_draw=per_draw,
        ratio=s_per_ess / per_draw,
    )
    rows.append(row)
    print(
        f"{preset} n={row['num_obs']}: NUTS {row['nuts_wall_s']:.1f} s, ESS {diag.ess_bulk_min:.0f}, "
        f"{s_per_ess:.2e} s/ESS; guide {per_draw:.2e} s/draw ({before:.2e} before, {after:.2e} after); "
        f"ratio {row['ratio']:.0f}x",
        flush=True,
    )
    with open(args.out, "w") as f:
        json.dump(
            {"machine": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows},
            f,
            indent=2,
        )
