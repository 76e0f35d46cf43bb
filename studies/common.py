"""Helpers shared by the study scripts: result paths, atomic JSON, the timing prior and block runner,
paired differences, one Swiss-roll study run, and a prior's fit to held-out samples.

Scripts import this as a package module (``from studies.common import save_json``), so run them
from the repository root with ``PYTHONPATH=.`` (studies/README.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.agents import GaussianPrior
from dts_ppl.bandits.simulation import regret_ratio, simulate
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_prior
from dts_ppl.experiments import swissroll
from dts_ppl.experiments.synthetic import random_linear_prior
from dts_ppl.io.serialization import atomic_write
from dts_ppl.ppl.distances import energy_distance

ROOT = Path(__file__).resolve().parents[1]


def results_dir(study: str) -> Path:
    """``studies/<study>/results`` (absolute), where the scripts of one study write their JSON."""
    path = ROOT / "studies" / study / "results"
    if not path.parent.is_dir():
        raise ValueError(f"study: expected a folder under studies/, got {study!r}")
    return path


def resume_json(path, settings: dict) -> dict:
    """The results in ``path`` when they were run with ``settings`` (a rerun skips what is done), else
    a fresh ``{"settings": settings}``."""
    try:
        with open(path) as f:
            out = json.load(f)
        if out.get("settings") == settings:
            return out
    except (OSError, ValueError, KeyError):
        pass
    return {"settings": settings}


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, script: str) -> str:
    """The command that reruns ``script`` with ``args``: every option that differs from its default,
    in the parser's order, shell-quoted; ``--json`` as its file name in the script's results folder."""
    command = f"PYTHONPATH=. python {script}"
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value, flag = getattr(args, action.dest), action.option_strings[0]
        if action.dest == "json":
            if Path(value).resolve() != Path(action.default).resolve():
                command += f" {flag} {Path(script).parent / 'results' / Path(value).name}"
        elif value != action.default:
            command += f" {flag}" if action.nargs == 0 else f" {flag} {shlex.quote(str(value))}"
    return command


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


def run_swissroll_preset(
    name: str,
    num_actions: int = swissroll.STUDY.num_actions,
    num_rounds: int = swissroll.STUDY.num_rounds,
    num_runs: int = swissroll.STUDY.num_runs,
    noise: float = swissroll.STUDY.noise,
    linearisations=("identity",),
    seed: int = 0,
    progress: bool = True,
    action_cov=None,
) -> dict:
    """Run one Swiss-roll study preset: dTS with the trained prior (one per linearisation) vs LinTS.

    Both agents see the same theta, contexts and reward noise in run r (common random
    numbers), so the ratio of their regrets is paired.

    Returns:
        dict with "results" {agent name: RegretResult}, "ratio" and "ratio_se" (LinTS / dTS
        with the first linearisation, delta method over paired runs), and the settings.
    """
    agents = swissroll.swissroll_agents(name, num_actions, noise, linearisations, action_cov, progress)
    env = swissroll.swissroll_environment(num_actions, noise)
    key = jax.random.PRNGKey(seed)
    results = {
        label: simulate(key, env, agent, num_rounds, num_runs, progress=progress, desc=f"{name}: {label}")
        for label, agent in agents.items()
    }
    ratio, se = regret_ratio(results["LinTS"], results[f"dTS ({linearisations[0]})"])
    num_samples, num_levels = swissroll.STUDY_PRIORS[name]
    settings = dict(num_actions=num_actions, num_rounds=num_rounds, num_runs=num_runs, noise=noise, seed=seed)
    settings["action_cov"] = swissroll.TRAINING.action_cov if action_cov is None else action_cov
    return dict(
        preset=name,
        num_samples=num_samples,
        num_levels=num_levels,
        results=results,
        ratio=ratio,
        ratio_se=se,
        **settings,
    )


def prior_fit(key, prior: DiffusionPrior, gauss: GaussianPrior, heldout, pretrain, num_samples: int = 2000) -> dict:
    """Energy distances to held-out samples (M, d) of: the prior's draws, the Gaussian fit's draws,
    and the pre-training sample (N, d) itself (the floor a perfect fit of finite data reaches)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    held = jnp.asarray(heldout)
    held = held[jax.random.permutation(k4, held.shape[0])[:num_samples]]
    pre = jnp.asarray(pretrain)
    pre = pre[jax.random.permutation(k3, pre.shape[0])[:num_samples]]
    dts_draws = sample_prior(k1, prior, num_samples)[1][:, 0]
    chol = jnp.linalg.cholesky(gauss.cov)
    gauss_draws = gauss.mean + jax.random.normal(k2, (num_samples, gauss.mean.shape[0]), gauss.mean.dtype) @ chol.T
    return dict(
        energy_dts_prior=energy_distance(dts_draws, held),
        energy_gaussian_fit=energy_distance(gauss_draws, held),
        energy_pretrain_sample=energy_distance(pre, held),
        num_samples=int(held.shape[0]),
    )
