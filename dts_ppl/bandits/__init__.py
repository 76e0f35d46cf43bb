"""Bandit environments and the regret simulator (jit, lax.scan over rounds, vmap over runs)."""

from dts_ppl.bandits.envs import (
    Environment,
    abrupt_changes,
    diffusion_environment,
    drift_process,
    mean_rewards,
    random_walk,
    sample_reward,
    uniform_contexts,
)
from dts_ppl.bandits.simulation import RegretResult, plot_regret, regret_ratio, simulate

__all__ = [
    "Environment",
    "RegretResult",
    "abrupt_changes",
    "diffusion_environment",
    "drift_process",
    "mean_rewards",
    "plot_regret",
    "random_walk",
    "regret_ratio",
    "sample_reward",
    "simulate",
    "uniform_contexts",
]
