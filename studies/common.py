"""Helpers shared by the study scripts: result paths, atomic JSON, the timing prior and block runner.

Scripts import this as a package module (``from studies.common import save_json``), so run them
from the repository root with ``PYTHONPATH=.`` (studies/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.experiments.synthetic import random_linear_prior
from dts_ppl.io.serialization import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def results_dir(study: str) -> Path:
    """``studies/<study>/results`` (absolute), where the scripts of one study write their JSON."""
    path = ROOT / "studies" / study / "results"
    if not path.parent.is_dir():
        raise ValueError(f"study: expected a folder under studies/, got {study!r}")
    return path


def save_json(path, out: dict) -> None:
    """Write a study's results as indented JSON, atomically (a crash never leaves half a file)."""
    atomic_write(path, json.dumps(out, indent=1).encode())


def timing_prior(key, d: int, L: int):
    """The paper's random linear prior (W_l ~ U[-1, 1]^{d x d}, S_l = I) with W_2..W_L scaled to
    spectral norm <= 0.9: deep chains of the unscaled prior grow like ||W||^L (~1e16 at d = 20,
    L = 40, overflowing float32 variances), which no trained chain does; times do not depend on it."""
    prior = random_linear_prior(key, d, [d] * L)
    if prior.links is None:
        return prior
    w = prior.links.weight
    norm = jnp.linalg.norm(w, ord=2, axis=(-2, -1))[:, None, None]
    return prior._replace(links=prior.links._replace(weight=w * jnp.minimum(1.0, 0.9 / norm)))


def block_runner(agent, K: int, d: int, rounds: int, donate: bool = False):
    """jit(state, key) -> state after `rounds` rounds with random contexts U[-1, 1]^d and N(0, 1) rewards.

    ``donate``: the state's buffers are donated, so a block updates them in place instead of
    allocating a new state (tens of MB at K = 10^4) per block.
    """
    del K  # the agent knows its catalogue size

    def step(state, key):
        kx, ka, ky = jax.random.split(key, 3)
        x = jax.random.uniform(kx, (d,), minval=-1.0, maxval=1.0)
        a, _ = agent.act(ka, state, x)
        return agent.update(state, x, a, jax.random.normal(ky)), None

    return jax.jit(
        lambda state, key: jax.lax.scan(step, state, jax.random.split(key, rounds))[0],
        donate_argnums=(0,) if donate else (),
    )


def paired_difference(a, b) -> tuple[float, float]:
    """Mean and s.e. of the paired per-run difference of final regrets a - b (two RegretResults)."""
    diff = a.cumulative[:, -1] - b.cumulative[:, -1]
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))
