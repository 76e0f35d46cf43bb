"""``dts-ppl validate``: the dTS guide against NUTS on a simulated preset problem."""

from __future__ import annotations

import jax
import numpy as np

from dts_ppl import DTSGuide
from dts_ppl.commands import non_negative_int, positive_int
from dts_ppl.experiments.validation import NUTS_PARAMETERISATION, PRESETS, make_problem
from dts_ppl.ppl.inspection import plot_comparison, to_inference_data
from dts_ppl.ppl.validate import validate

PRESET_HELP = "linear (exact), mlp (random MLP links), logistic (Bernoulli rewards), ddpm (trained Swiss-roll prior)"


def register(sub):

    p = sub.add_parser("validate", help="validate the dTS guide against NUTS on a preset problem (JSON report, plot)")
    p.add_argument("--preset", required=True, choices=PRESETS, help=PRESET_HELP)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    p.add_argument("--plot", metavar="PATH", help="save the guide-vs-NUTS forest and pair plot here (e.g. cmp.png)")
    p.add_argument("--linearisation", default="identity", choices=("identity", "jacobian", "iterated"))
    p.add_argument("--num-obs", type=positive_int, default=None, help="observations (default: the preset's)")
    p.add_argument("--num-samples", type=positive_int, default=1000, help="NUTS draws per chain")
    p.add_argument("--num-warmup", type=non_negative_int, default=500)
    p.add_argument("--num-chains", type=positive_int, default=2)
    p.add_argument(
        "--parameterisation",
        choices=("centred", "noncentred"),
        default=None,
        help="the model NUTS samples (default: the preset's; noncentred for ddpm)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide NUTS's progress bar")
    p.set_defaults(run=run)


def _worst(site) -> tuple:

    return tuple(int(i) for i in np.unravel_index(np.argmax(site.std_mean_error), site.std_mean_error.shape))


def run(args) -> int:

    jax.config.update("jax_enable_x64", True)

    key = jax.random.PRNGKey(args.seed)
    k_data, k_val, k_pred = jax.random.split(key, 3)
    problem = make_problem(args.preset, k_data, num_obs=args.num_obs)
    model = problem.model
    guide = DTSGuide(model, linearisation=args.linearisation)
    parameterisation = args.parameterisation or NUTS_PARAMETERISATION[args.preset]
    print(
        f"preset {args.preset}: {model}, n={problem.X.shape[0]}, linearisation={args.linearisation}, "
        f"NUTS {parameterisation}"
    )
    report = validate(
        model,
        guide,
        problem.X,
        problem.A,
        problem.y,
        key=k_val,
        num_samples=args.num_samples,
        num_warmup=args.num_warmup,
        num_chains=args.num_chains,
        progress_bar=not args.no_progress,
        nuts_parameterisation=parameterisation,
    )
    print(report)
    if args.json:
        report.to_json(args.json, preset=args.preset)
        print(f"wrote {args.json}")
    if args.plot:
        data = (problem.X, problem.A, problem.y)
        sets = {
            "dTS guide": to_inference_data(model, report.guide_samples, *data, key=k_pred),
            "NUTS": to_inference_data(model, report.nuts_result, *data, key=k_pred),
        }
        # the two coordinates where the guide's mean is furthest from NUTS's, one per site
        pair = (("psi", _worst(report.sites["psi"])), ("theta", _worst(report.sites["theta"])))
        plot_comparison(sets, args.plot, pair=pair, title=f"dts-ppl validate --preset {args.preset}")
        print(f"wrote {args.plot}")
    return 0
