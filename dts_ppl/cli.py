"""Command line: ``dts-ppl COMMAND``.

Each command lives in its own module exposing ``register(subparsers)``; add new ones to
``_COMMANDS``. The command modules (and JAX) are imported only when a command runs or help is
asked for: ``dts-ppl --version`` imports neither.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dts_ppl._version import __version__

_COMMANDS = [
    "dts_ppl.commands.demo",
    "dts_ppl.commands.bench",
    "dts_ppl.commands.validate",
    "dts_ppl.commands.validation_study",
    "dts_ppl.commands.sbc",
    "dts_ppl.commands.prior_report",
]


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dts-ppl", description="Diffusion Thompson sampling with NumPyro.")
    parser.add_argument(
        "--version", action="version", version=f"dts-ppl {__version__}", help="print the version and exit"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``--version`` and every command of ``_COMMANDS`` (imports them, and JAX)."""
    parser = _top_parser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _compilation_cache():
    """Reuse XLA compilations across invocations when DTS_PPL_JAX_CACHE names a folder (opt-in).

    The simulator's scans take seconds to compile, so a persistent cache speeds up repeated
    runs; it is off by default because jax 0.10 was seen to crash (segfault) reading entries
    written by other processes with other flags on this machine.
    """
    path = os.environ.get("DTS_PPL_JAX_CACHE", "")
    if path:
        import jax

        jax.config.update("jax_compilation_cache_dir", path)


# flags that name a file a command writes; checked before the command starts
OUTPUT_FLAGS = ("json", "plot", "markdown")


def check_output_paths(args: argparse.Namespace) -> None:
    """Raise ValueError naming the flag if an output path is a folder, or its folder is missing or read-only.

    Args:
        args: parsed arguments; the attributes named in :data:`OUTPUT_FLAGS` that are set are checked.
    """
    for name in OUTPUT_FLAGS:
        path = getattr(args, name, None)
        if path is None:
            continue
        flag = "--" + name.replace("_", "-")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ValueError(f"{flag}: expected a file path, got the folder {path!r}")
        if not os.path.isdir(folder):
            raise ValueError(f"{flag}: the folder {folder!r} of {path!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{flag}: the folder {folder!r} of {path!r} is not writable")


def main(argv=None) -> int:
    """Run ``dts-ppl`` with ``argv`` (default sys.argv[1:]). Returns the exit code: 0, or 2 on bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:  # answered before the commands (and JAX) are imported; exits
        _top_parser().parse_args(argv[:1])
    args = build_parser().parse_args(argv)
    try:
        check_output_paths(args)
        _compilation_cache()
        return int(args.run(args) or 0)
    except ValueError as e:
        print(f"dts-ppl: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
