"""Command line: ``dts-ppl COMMAND``.

Each command lives in its own module exposing ``register(subparsers)``; add new ones to
``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMANDS = ["dts_ppl.commands.demo", "dts_ppl.commands.validate", "dts_ppl.commands.validation_study"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dts-ppl", description="Diffusion Thompson sampling with NumPyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ValueError as e:
        print(f"dts-ppl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
