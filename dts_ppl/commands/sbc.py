"""``dts-ppl sbc``: simulation-based calibration of a guide on a validation preset, or of dTS on a bandit panel.

``--preset linear|mlp|logistic|ddpm`` ranks the prior draws of the preset's model among the
guide's draws on the preset's design (:func:`dts_ppl.ppl.sbc.sbc`); ``--preset fig1-...-k100``
runs the panel's dTS agent on theta* drawn from the panel's prior and ranks theta* among the
draws of the guide built on the agent's statistics (:func:`dts_ppl.ppl.sbc.bandit_sbc`).
"""

from __future__ import annotations

import os

import jax
from numpyro.infer.autoguide import AutoNormal

from dts_ppl.commands import positive_int
from dts_ppl.core.likelihoods import Bernoulli
from dts_ppl.experiments.registry import get_preset
from dts_ppl.experiments.regret import SIZES
from dts_ppl.experiments.synthetic import paper_environment
from dts_ppl.experiments.validation import PRESETS, make_problem
from dts_ppl.ppl.guide import DTSGuide
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.sbc import DEFAULT_NUM_DRAWS, DistortedGuide, bandit_sbc, sbc

#: the K = 100 panels of the paper's Figure 1 that bandit SBC runs on
BANDIT_PRESETS = (
    "fig1-lindiff-lin-k100",
    "fig1-nonlindiff-lin-k100",
    "fig1-lindiff-logistic-k100",
    "fig1-nonlindiff-logistic-k100",
)
_PANELS = {  # preset -> (diffusion, reward)
    "fig1-lindiff-lin-k100": ("linear", "linear"),
    "fig1-nonlindiff-lin-k100": ("mlp", "linear"),
    "fig1-lindiff-logistic-k100": ("linear", "logistic"),
    "fig1-nonlindiff-logistic-k100": ("mlp", "logistic"),
}
GUIDES = ("dts", "distorted", "autonormal")


def register(sub):
    p = sub.add_parser(
        "sbc", help="simulation-based calibration of a guide on a preset, or of dTS on a bandit panel (JSON, plot)"
    )
    p.add_argument(
        "--preset",
        required=True,
        choices=PRESETS + BANDIT_PRESETS,
        help="a validation preset (linear, mlp, logistic, ddpm) or a K = 100 Figure 1 panel (bandit SBC)",
    )
    p.add_argument(
        "--guide",
        choices=GUIDES,
        default="dts",
        help="dts (default), distorted (dTS with covariances x --cov-scale and means + --mean-shift sd), "
        "autonormal (NumPyro AutoNormal fitted by SVI; slow)",
    )
    p.add_argument(
        "--linearisation",
        choices=("identity", "jacobian", "iterated"),
        default=None,
        help="the guide's upward linearisation (default: the prior's default)",
    )
    p.add_argument(
        "--expansion",
        choices=("prior", "mle"),
        default=None,
        help="GLM expansion point of the guide (logistic presets; default: the preset's, 'prior')",
    )
    p.add_argument("--num-datasets", type=positive_int, default=1000, help="simulated data sets (default 1000)")
    p.add_argument(
        "--num-draws", type=positive_int, default=DEFAULT_NUM_DRAWS, help="guide draws per data set (default 99)"
    )
    p.add_argument("--num-obs", type=positive_int, default=None, help="observations (default: the preset's)")
    p.add_argument("--num-steps", type=positive_int, default=2000, help="SVI steps per data set (autonormal)")
    p.add_argument("--cov-scale", type=float, default=0.5, help="distorted guide: covariance factor (default 0.5)")
    p.add_argument("--mean-shift", type=float, default=0.3, help="distorted guide: mean shift in sd (default 0.3)")
    p.add_argument("--num-rounds", type=positive_int, default=200, help="bandit SBC: rounds per run (default 200)")
    p.add_argument("--num-runs", type=positive_int, default=1000, help="bandit SBC: runs (default 1000)")
    p.add_argument("--chunk-size", type=positive_int, default=None, help="data sets (runs) vmapped at once")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON here")
    p.add_argument("--plot", metavar="PATH", help="save rank histograms and ECDF-difference plots here")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


def guide_for(model: BanditModel, name: str, linearisation=None, expansion=None, cov_scale=0.5, mean_shift=0.3):
    """The guide ``name`` (one of :data:`GUIDES`) of ``model``, with its linearisation and GLM expansion."""
    if expansion is not None:
        if model.likelihood.is_exact:
            raise ValueError("--expansion: only GLM (logistic) presets have an expansion point")
        lik = Bernoulli() if expansion == "prior" else Bernoulli(expansion="mle")
        model = BanditModel(model.prior, model.num_actions, lik)
    if name == "autonormal":
        return AutoNormal(model)
    guide = DTSGuide(model, linearisation=linearisation)
    return DistortedGuide(guide, cov_scale, mean_shift) if name == "distorted" else guide


def bandit_problem(preset: str, key, num_rounds: int):
    """(prior, likelihood, K, dTS agent) of a K = 100 Figure 1 panel, the same problem as ``bench regret``."""
    if preset not in _PANELS:
        raise ValueError(f"preset: expected one of {BANDIT_PRESETS}, got {preset!r}")
    diffusion, reward = _PANELS[preset]
    # the panel's builder splits the key the same way (experiments/regret.py, _fig1)
    env, prior = paper_environment(jax.random.split(key)[0], diffusion, reward, 100, **SIZES[100]._asdict())
    _, agents = get_preset(preset).build(key, num_rounds)
    return prior, env.likelihood, env.num_actions, agents["dTS"]


def run(args) -> int:
    jax.config.update("jax_enable_x64", True)
    key = jax.random.PRNGKey(args.seed)
    k_problem, k_sbc = jax.random.split(key)
    progress = not args.no_progress
    given = {k: v for k, v in vars(args).items() if k not in ("run", "command", "json", "plot", "no_progress")}
    load = [round(x, 2) for x in os.getloadavg()]  # recorded with the timings: the machine may be shared
    if args.preset in BANDIT_PRESETS:
        if args.guide != "dts" or args.expansion is not None:
            raise ValueError("--guide/--expansion: bandit SBC ranks the dTS agent's own posterior")
        prior, likelihood, K, agent = bandit_problem(args.preset, k_problem, args.num_rounds)
        print(f"bandit SBC {args.preset}: {args.num_runs} runs of {args.num_rounds} rounds, {args.num_draws} draws")
        report = bandit_sbc(
            k_sbc,
            prior,
            likelihood,
            K,
            agent,
            args.num_rounds,
            args.num_runs,
            args.num_draws,
            linearisation=args.linearisation,
            chunk_size=args.chunk_size,
            progress=progress,
            meta={"preset": args.preset, "seed": args.seed, "args": given, "load_average_at_start": load},
        )
    else:
        problem = make_problem(args.preset, k_problem, num_obs=args.num_obs)
        guide = guide_for(
            problem.model, args.guide, args.linearisation, args.expansion, args.cov_scale, args.mean_shift
        )
        what = f"{type(guide).__name__} (SVI, {args.num_steps} steps)" if args.guide == "autonormal" else repr(guide)
        print(f"SBC {args.preset}: {what}, {args.num_datasets} data sets of n = {problem.X.shape[0]}")
        meta = {
            "preset": args.preset,
            "seed": args.seed,
            "guide_name": args.guide,
            "args": given,
            "load_average_at_start": load,
        }
        if isinstance(guide, DTSGuide | DistortedGuide):
            base = guide if isinstance(guide, DTSGuide) else guide.guide
            meta["linearisation"] = base.linearisation
            meta["expansion"] = args.expansion or ("prior" if not problem.model.likelihood.is_exact else None)
        report = sbc(
            problem.model,
            guide,
            k_sbc,
            args.num_datasets,
            args.num_draws,
            problem.X,
            problem.A,
            chunk_size=args.chunk_size,
            progress=progress,
            num_steps=args.num_steps,
            meta=meta,
        )
    print(report)
    print(f"{report.seconds:.2f} s without compilation ({report.meta['total_seconds']:.1f} s in all)")
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.plot:
        guide = "" if args.preset in BANDIT_PRESETS or args.guide == "dts" else f" --guide {args.guide}"
        report.plot(args.plot, title=f"dts-ppl sbc --preset {args.preset}{guide}")
        print(f"wrote {args.plot}")
    return 0
