"""``dts-ppl prior-report SAMPLES.npy``: is a learned prior worth training on these samples of theta?

Trains (or loads, ``--prior``) a DDPM prior and fits a Gaussian and a Gaussian hierarchy on a split
of the samples, reports held-out energy distances, the regret of every agent of
:data:`dts_ppl.analysis.prior_report.REPORT_AGENTS` on a bandit built from the held-out samples,
and a verdict by the rule of :func:`dts_ppl.analysis.prior_report.verdict`; JSON and plot written
atomically.
"""

from __future__ import annotations

import jax

from dts_ppl.analysis import prior_report as pr
from dts_ppl.commands import open_unit_interval, positive_int

_DEFAULTS = pr.ReportSettings()


def register(sub):
    p = sub.add_parser(
        "prior-report",
        help="is a learned prior worth it? energy distances, regrets and a verdict from samples of theta",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("samples", help=".npy file of shape (N, d): one sample of theta per row")
    p.add_argument(
        "--shared",
        action="store_true",
        help="each sample is one shared parameter (a task; K action features per round); default: one action's",
    )
    p.add_argument("--heldout", default=None, help=".npy (M, d) held-out samples (default: split SAMPLES)")
    p.add_argument(
        "--train-share",
        type=open_unit_interval,
        default=_DEFAULTS.train_share,
        help=f"share of SAMPLES the priors are fitted on (default {_DEFAULTS.train_share}; unused with --heldout)",
    )
    p.add_argument(
        "--contexts",
        default=None,
        help=".npy (C, d) pool of contexts (per action) or action features (--shared); default U[-1, 1]^d",
    )
    p.add_argument("--prior", default=None, help="a prior file (save_prior) to use instead of training one")
    p.add_argument("--steps", type=positive_int, default=None, help="DDPM training steps (default: the presets' 6000)")
    p.add_argument("--num-actions", type=positive_int, default=_DEFAULTS.num_actions, help="K (default 20)")
    p.add_argument("--rounds", type=positive_int, default=_DEFAULTS.rounds, help="rounds per run (default 300)")
    p.add_argument("--runs", type=positive_int, default=_DEFAULTS.runs, help="paired runs, >= 2 (default 20)")
    p.add_argument("--noise", type=float, default=_DEFAULTS.noise, help="reward noise sd (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the draws and the runs (default 0)")
    p.add_argument("--json", default=None, help="write the report's JSON here")
    p.add_argument("--plot", default=None, help="write the report's plot here (png/pdf)")
    p.add_argument(
        "--policies",
        action="store_true",
        help="also run Bayes-UCB and UCB on each prior's posterior (POLICY_AGENTS); they compete for their prior",
    )
    p.add_argument("--x64", action="store_true", help="float64 (default float32)")
    p.add_argument("--quiet", action="store_true", help="no progress messages or bars")
    p.set_defaults(run=run_prior_report)


def run_prior_report(args) -> int:
    jax.config.update("jax_enable_x64", bool(args.x64))
    samples = pr.load_samples(args.samples, "SAMPLES")
    heldout = None if args.heldout is None else pr.load_samples(args.heldout, "--heldout")
    contexts = None if args.contexts is None else pr.load_samples(args.contexts, "--contexts")
    settings = pr.ReportSettings(
        shared=bool(args.shared),
        train_share=args.train_share,
        num_actions=args.num_actions,
        rounds=args.rounds,
        runs=args.runs,
        noise=args.noise,
        seed=args.seed,
    )
    training = None if args.steps is None else dict(steps=args.steps)
    agents = pr.REPORT_AGENTS + pr.POLICY_AGENTS if args.policies else None
    report = pr.prior_report(
        samples, settings, heldout, contexts, args.prior, training=training, agents=agents, progress=not args.quiet
    )
    print(pr.report_text(report))
    pr.write_report(report, args.json, args.plot)
    for path in (args.json, args.plot):
        if path is not None:
            print(f"wrote {path}")
    return 0
