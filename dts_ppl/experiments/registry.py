"""The record of a regret experiment that ``dts-ppl bench regret`` can run."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Preset(NamedTuple):
    """A named experiment: ``build(key, num_rounds) -> (Environment, {algorithm name: Agent})``."""

    name: str
    build: Callable
    description: str = ""
    rounds: int = 5000
    runs: int = 50
