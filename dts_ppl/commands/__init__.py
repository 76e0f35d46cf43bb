"""The commands of ``dts-ppl`` (one module each) and the argument types and flags they share."""

import argparse

from dts_ppl.ppl.nuts import CHAIN_METHODS, NutsSettings


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (so ``--chunk-size 0`` fails at parse time, as the API would)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "a non-negative integer")


def open_unit_interval(text: str) -> float:
    """argparse type: a number in (0, 1), e.g. a NUTS target acceptance."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value}")
    return value


# ----------------------------------------------------------------------------- NUTS flags

# flag -> (NutsSettings field, argparse keyword arguments, help); each flag's default is None: the
# preset's value, itself a NutsSettings whose unset fields are NutsSettings' defaults
_NUTS_FLAGS = {
    "--num-samples": ("num_samples", dict(type=positive_int), "NUTS draws per chain"),
    "--num-warmup": ("num_warmup", dict(type=non_negative_int), "NUTS warm-up steps per chain"),
    "--num-chains": ("num_chains", dict(type=positive_int), "NUTS chains"),
    "--chain-method": (
        "chain_method",
        dict(choices=CHAIN_METHODS),
        "how NUTS runs its chains (None: parallel with a device per chain, else sequential)",
    ),
    "--target-accept": ("target_accept_prob", dict(type=open_unit_interval), "NUTS target acceptance in (0, 1)"),
    "--max-tree-depth": ("max_tree_depth", dict(type=positive_int), "NUTS maximum tree depth"),
    "--parameterisation": (
        "parameterisation",
        dict(choices=("centred", "noncentred")),
        "the model NUTS samples (noncentred: standard-normal sites)",
    ),
}


def add_nuts_arguments(parser: argparse.ArgumentParser, whose: str = "the preset's") -> None:
    """Declare the NUTS flags on ``parser``: one per :class:`~dts_ppl.ppl.nuts.NutsSettings` field.

    Each flag defaults to None, meaning ``whose`` value (a preset's NutsSettings); the help shows
    NutsSettings' own default. Read them back with :func:`nuts_settings`.

    Args:
        parser: the command's parser.
        whose: who supplies the value of a flag not given, for the help (e.g. "each preset's").
    """
    defaults = NutsSettings()
    for flag, (field, kwargs, text) in _NUTS_FLAGS.items():
        default = getattr(defaults, field)
        parser.add_argument(
            flag, dest=field, default=None, help=f"{text} (default: {whose}; NutsSettings: {default})", **kwargs
        )
    mass = parser.add_mutually_exclusive_group()
    mass.add_argument(
        "--dense-mass",
        dest="dense_mass",
        action="store_true",
        default=None,
        help=f"adapt a dense mass matrix (default: {whose}; NutsSettings: dense_mass={defaults.dense_mass})",
    )
    mass.add_argument("--diag-mass", dest="dense_mass", action="store_false", help="adapt a diagonal mass matrix")


def nuts_settings(args: argparse.Namespace, base: NutsSettings) -> NutsSettings:
    """``base`` with the NUTS flags of :func:`add_nuts_arguments` that were given on the command line.

    Args:
        args: the parsed arguments.
        base: the settings a flag not given keeps (a preset's).

    Returns:
        NutsSettings, checked.
    """
    fields = [field for field, _, _ in _NUTS_FLAGS.values()] + ["dense_mass"]
    given = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    return base._replace(**given).check()
