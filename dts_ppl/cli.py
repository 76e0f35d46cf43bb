"""Command line: ``dts-ppl COMMAND``.

Each command lives in its own module exposing ``register(subparsers)``; add new ones to
``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import jax

_COMMANDS = [
    "dts_ppl.commands.demo",
    "dts_ppl.commands.bench",
    "dts_ppl.commands.validate",
    "dts_ppl.commands.validation_study",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dts-ppl", description="Diffusion Thompson sampling with NumPyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _compilation_cache():
    """Reuse XLA compilations across invocations (the simulator's scans take seconds to compile)."""
    path = os.environ.get("DTS_PPL_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dts_ppl", "jax"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _compilation_cache()
    try:
        return int(args.run(args) or 0)
    except ValueError as e:
        print(f"dts-ppl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
