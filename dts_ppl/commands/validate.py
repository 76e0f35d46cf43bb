"""``dts-ppl validate``: the dTS guide against NUTS on a simulated preset problem."""

from __future__ import annotations

import sys

import jax
import numpy as np

from dts_ppl import DTSGuide
from dts_ppl.commands import add_nuts_arguments, nuts_settings, positive_int
from dts_ppl.experiments.validation import NUTS_SETTINGS, PRESETS, make_problem
from dts_ppl.ppl.inspection import plot_comparison, to_inference_data
from dts_ppl.ppl.nuts import DEFAULT_GATES, ReferenceGates
from dts_ppl.ppl.validate import validate

UNRELIABLE_EXIT = 3  # exit status when the NUTS reference fails a quality gate

PRESET_HELP = "linear (exact), mlp (random MLP links), logistic (Bernoulli rewards), ddpm (trained Swiss-roll prior)"


def register(sub):

    p = sub.add_parser("validate", help="validate the dTS guide against NUTS on a preset problem (JSON report, plot)")
    p.add_argument("--preset", required=True, choices=PRESETS, help=PRESET_HELP)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    p.add_argument("--plot", metavar="PATH", help="save the guide-vs-NUTS forest and pair plot here (e.g. cmp.png)")
    p.add_argument(
        "--linearisation",
        default=None,
        choices=("identity", "jacobian", "iterated"),
        help="the guide's upward linearisation for nonlinear links (default: the guide's default)",
    )
    p.add_argument("--num-obs", type=positive_int, default=None, help="observations (default: the preset's)")
    add_nuts_arguments(p, "the preset's")
    p.add_argument(
        "--ess-floor",
        type=float,
        default=DEFAULT_GATES.ess_min,
        help=f"quality gate: least bulk and tail ESS (default {DEFAULT_GATES.ess_min:.0f})",
    )
    p.add_argument(
        "--accept-unreliable-reference",
        action="store_true",
        help=f"exit 0 even when the NUTS reference fails a quality gate (default: exit {UNRELIABLE_EXIT})",
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of data, NUTS and guide (default %(default)s)")
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
    guide = DTSGuide(model) if args.linearisation is None else DTSGuide(model, linearisation=args.linearisation)
    settings = nuts_settings(args, NUTS_SETTINGS[args.preset])
    gates = ReferenceGates(ess_min=args.ess_floor).check()
    print(
        f"preset {args.preset}: {model}, n={problem.X.shape[0]}, linearisation={guide.linearisation}, NUTS {settings}"
    )
    report = validate(
        model,
        guide,
        problem.X,
        problem.A,
        problem.y,
        key=k_val,
        settings=settings,
        gates=gates,
        progress_bar=not args.no_progress,
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
    if not report.reliable:
        if args.accept_unreliable_reference:
            print("NUTS reference fails the quality gates; accepted (--accept-unreliable-reference)", file=sys.stderr)
            return 0
        print(
            "error: the NUTS reference fails the quality gates (" + "; ".join(report.reference_problems) + "); "
            "rerun with more --num-warmup/--num-samples/--num-chains, --dense-mass, --target-accept or "
            "--parameterisation noncentred, or pass --accept-unreliable-reference",
            file=sys.stderr,
        )
        return UNRELIABLE_EXIT
    return 0
