"""``dts-ppl validation-study``: dTS vs NUTS as data grow (regenerates the README table)."""

from __future__ import annotations

import json

import jax

from dts_ppl.commands import non_negative_int, positive_int
from dts_ppl.experiments.study import approximation_study, study_table
from dts_ppl.experiments.validation import PRESETS


def _ints(text):
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--num-obs: expected comma-separated integers, got {text!r}") from None


def register(sub):
    p = sub.add_parser(
        "validation-study",
        help="approximation error of dTS vs NUTS as the number of observations grows (markdown table)",
    )
    p.add_argument("--presets", default="linear,mlp,logistic", help="comma-separated presets")
    p.add_argument("--num-obs", default="10,50,200", help="comma-separated numbers of observations")
    p.add_argument("--num-samples", type=positive_int, default=800, help="NUTS draws per chain")
    p.add_argument("--num-warmup", type=non_negative_int, default=400)
    p.add_argument("--num-chains", type=positive_int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", metavar="PATH", help="write the table here")
    p.add_argument("--json", metavar="PATH", help="write the rows here")
    p.set_defaults(run=run)


def run(args) -> int:

    jax.config.update("jax_enable_x64", True)

    presets = tuple(args.presets.split(","))
    bad = [p for p in presets if p not in PRESETS]
    if bad:
        raise ValueError(f"--presets: expected names from {PRESETS}, got {bad}")
    rows = approximation_study(
        presets,
        _ints(args.num_obs),
        key=jax.random.PRNGKey(args.seed),
        num_samples=args.num_samples,
        num_warmup=args.num_warmup,
        num_chains=args.num_chains,
    )
    table = study_table(rows)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0
