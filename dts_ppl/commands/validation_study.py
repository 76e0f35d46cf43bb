"""``dts-ppl validation-study``: dTS vs NUTS as data grow (writes studies/validation/results/validation_study.*)."""

from __future__ import annotations

import json
import math
import os
import sys

import jax

from dts_ppl.commands import add_nuts_arguments, nuts_settings, positive_int
from dts_ppl.experiments.study import approximation_study, plot_study, study_table
from dts_ppl.experiments.validation import NUTS_SETTINGS, PRESETS
from dts_ppl.io.npz import atomic_write

UNRELIABLE_EXIT = 3


def _ints(text):
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--num-obs: expected comma-separated integers, got {text!r}") from None


def _strict(value):
    """Non-finite floats (k-hat of an exact guide is -inf) as None, so the JSON is strict."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def register(sub):
    p = sub.add_parser(
        "validation-study",
        help="approximation error of dTS vs NUTS as the number of observations grows (markdown table)",
    )
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    p.add_argument("--num-obs", default="10,50,200", help="comma-separated numbers of observations")
    add_nuts_arguments(p, "each preset's")
    p.add_argument(
        "--max-attempts", type=positive_int, default=2, help="NUTS runs per problem while it fails the gates"
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of data, NUTS and guide (default %(default)s)")
    p.add_argument("--markdown", metavar="PATH", help="write the table here")
    p.add_argument("--json", metavar="PATH", help="write the rows here")
    p.add_argument("--plot", metavar="PATH", help="write the figure here (PNG)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --json and run only the missing (preset, n); rows are saved as they finish",
    )
    p.add_argument(
        "--accept-unreliable-reference",
        action="store_true",
        help=f"exit 0 even when a NUTS reference fails the quality gates (default: exit {UNRELIABLE_EXIT})",
    )
    p.set_defaults(run=run)


def run(args) -> int:

    jax.config.update("jax_enable_x64", True)

    presets = tuple(args.presets.split(","))
    bad = [p for p in presets if p not in PRESETS]
    if bad:
        raise ValueError(f"--presets: expected names from {PRESETS}, got {bad}")
    settings = {p: nuts_settings(args, NUTS_SETTINGS[p]) for p in presets}
    if args.resume and not args.json:
        raise ValueError("--resume: needs --json, the file whose rows to keep")
    rows = []
    if args.resume and os.path.exists(args.json):
        with open(args.json) as f:
            rows = [r for r in json.load(f) if r["preset"] in presets]
    for r in rows:  # -inf k-hat was saved as null
        r["psis_khat"] = -math.inf if r["psis_khat"] is None else r["psis_khat"]

    def save(new_rows):
        rows.extend(new_rows)
        if args.json:
            text = json.dumps([{k: _strict(v) for k, v in r.items()} for r in rows], indent=2)
            atomic_write(args.json, text.encode())

    approximation_study(
        presets,
        _ints(args.num_obs),
        key=jax.random.PRNGKey(args.seed),
        settings=settings,
        max_attempts=args.max_attempts,
        progress=not args.no_progress,
        skip={(r["preset"], r["num_obs"]) for r in rows},
        on_rows=save,
    )
    order = {p: i for i, p in enumerate(presets)}
    rows.sort(key=lambda r: (order[r["preset"]], r["num_obs"]))
    save([])
    table = study_table(rows)
    print(table)
    if args.markdown:
        atomic_write(args.markdown, (table + "\n").encode())
    if args.plot:
        plot_study(rows, args.plot)
    failed = sorted({(r["preset"], r["num_obs"]) for r in rows if not r["reliable"]})
    if failed:
        print(f"NUTS references failing the quality gates: {failed}", file=sys.stderr)
        return 0 if args.accept_unreliable_reference else UNRELIABLE_EXIT
    return 0
