"""The paper's regret experiments (Figure 1 panels, the K sweep, misspecification): their builders.

Each builder returns ``build(key, num_rounds) -> (Environment, {name: Agent})``; the presets that
name them, and :func:`~dts_ppl.experiments.registry.register_preset` for users' own, are in
:mod:`dts_ppl.experiments.registry` (``dts-ppl bench regret --preset NAME`` runs one).

Settings follow docs/math.md section 8: contexts U[-1, 1]^d, covariances I, reward noise 1; K = 100
panels use d = 5, L = 2 (active columns 5, 2; MLP width 20), K = 10^4 panels d = 20, L = 4
(active columns 20, 10, 5, 2; MLP width 60). The true prior is drawn once from the seed, theta
per run. Baselines get the diffusion prior's marginal of theta_a (moment-matched from 20000
draws for MLP priors).

"dTS" is the package's default agent, ``dts(prior, likelihood, K)`` with no options: on MLP
priors its upward messages are re-linearised to convergence ("iterated", beyond the paper), and
with logistic rewards it expands at the prior-regularised fit. MLP panels add "dTS (identity)",
the paper's rule; logistic panels add "dTS (MLE expansion)", the paper's near-MLE point
(docs/defaults.md).
"""

from __future__ import annotations

import importlib
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl import agents as ag
from dts_ppl.bandits.envs import diffusion_environment
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.experiments.synthetic import paper_environment, paper_prior

# ------------------------------------------------------------------------------ the paper's


class PaperSizes(NamedTuple):
    """The sizes of one of the paper's synthetic problems (docs/math.md section 8)."""

    dim: int
    active_dims: tuple[int, ...]
    hidden: int


#: Problem sizes by number of actions K: the K = 100 panels and the K = 10^4 panels.
SIZES: dict[int, PaperSizes] = {100: PaperSizes(5, (5, 2), 20), 10000: PaperSizes(20, (20, 10, 5, 2), 60)}


def paper_agents(key, prior, reward: str, num_actions: int, num_rounds: int, which=None, agent_prior=None):
    """The paper's algorithms for a reward model: dTS and baselines, all given ``agent_prior``
    (default: the true prior) or its theta marginal."""
    key = _checks.check_key(key)
    agent_prior = prior if agent_prior is None else agent_prior
    marginal = ag.theta_marginal(agent_prior, key)
    K, H = num_actions, num_rounds
    if reward == "linear":
        out = {
            "dTS": lambda: ag.dts(agent_prior, Gaussian(1.0), K),
            "LinTS": lambda: ag.lin_ts(marginal, Gaussian(1.0), K),
            "LinUCB": lambda: ag.lin_ucb(marginal, Gaussian(1.0), K),
        }
        if agent_prior.is_linear:
            out["HierTS"] = lambda: ag.hier_ts(agent_prior, Gaussian(1.0), K)
        else:  # the paper's rule (the default re-linearises to convergence, MATH.md section 4)
            out["dTS (identity)"] = lambda: ag.dts(agent_prior, Gaussian(1.0), K, linearisation="identity")
    else:
        # Every GLM agent expands its likelihood at the fit regularised at the prior's scale (the
        # default, Bernoulli().for_prior); "dTS (MLE expansion)" keeps the paper's near-MLE point.
        out = {
            "dTS": lambda: ag.dts(agent_prior, Bernoulli(), K, history=H),
            "dTS (MLE expansion)": lambda: ag.dts(agent_prior, Bernoulli(expansion="mle"), K, history=H),
            "dTS (linear reward)": lambda: ag.dts(agent_prior, Gaussian(1.0), K),
            "GLM-TS": lambda: ag.glm_ts(marginal, Bernoulli(), K, history=H),
            "UCB-GLM": lambda: ag.ucb_glm(marginal, Bernoulli(), K, history=H),
        }
        if not agent_prior.is_linear:
            out["dTS (identity)"] = lambda: ag.dts(agent_prior, Bernoulli(), K, linearisation="identity", history=H)
    return {name: make() for name, make in out.items() if which is None or name in which}


def figure1(diffusion: str, reward: str, num_actions: int):
    """Builder of a Figure 1 panel: ``diffusion`` "linear"/"mlp", ``reward`` "linear"/"logistic", K 100 or 10^4."""
    sizes = SIZES[num_actions]

    def build(key, num_rounds):
        k_prior, k_marg = jax.random.split(key)
        env, prior = paper_environment(k_prior, diffusion, reward, num_actions, *sizes)
        return env, paper_agents(k_marg, prior, reward, num_actions, num_rounds)

    return build


def k_sweep(num_actions: int):
    """Builder of Figure 2a at K = ``num_actions``: the K = 100 panel's sizes, dTS against LinTS."""

    def build(key, num_rounds):
        k_prior, k_marg = jax.random.split(key)
        env, prior = paper_environment(k_prior, "linear", "linear", num_actions, *SIZES[100])
        return env, paper_agents(k_marg, prior, "linear", num_actions, num_rounds, which=("dTS", "LinTS"))

    return build


def misspecified_prior(key, prior, scale: float):
    """The true linear prior with every active weight perturbed by scale * U[-1, 1] noise."""
    key = _checks.check_key(key)
    weights = [prior.link1.weight] + [prior.link(level).weight for level in range(2, prior.num_levels + 1)]
    keys = jax.random.split(key, len(weights))
    noisy = [
        w + scale * jax.random.uniform(k, w.shape, w.dtype, -1.0, 1.0) * (w != 0)
        for k, w in zip(keys, weights, strict=True)
    ]
    covs = [prior.cov1] + list(prior.covs)
    return type(prior).linear(noisy, covs)


def misspecified(scale: float):
    """Builder of Figure 2c: the agents get the true prior's weights perturbed by ``scale`` U[-1, 1]."""

    def build(key, num_rounds):
        k_prior, k_noise, k_marg = jax.random.split(key, 3)
        prior = paper_prior(k_prior, "linear", *SIZES[100])
        env = diffusion_environment(prior, 100, Gaussian(1.0), name=f"misspecified prior v={scale}")
        wrong = misspecified_prior(k_noise, prior, scale)
        return env, paper_agents(k_marg, prior, "linear", 100, num_rounds, ("dTS", "LinTS", "HierTS"), wrong)

    return build


def exact_k100(key, num_rounds):
    """dTS against exact joint Thompson sampling on fig1-lindiff-lin-k100's problem (same key split)."""
    key = _checks.check_key(key)
    del num_rounds
    env, prior = paper_environment(jax.random.split(key)[0], "linear", "linear", 100, *SIZES[100])
    return env, {"dTS": ag.dts(prior, Gaussian(1.0), 100), "exact TS": ag.exact_ts(prior, Gaussian(1.0), 100)}


def default_chunk_size(num_actions: int, dim: int, budget_bytes: float = 1e9) -> int:
    """Runs per vmapped chunk so that about four (K, d, d) arrays per run fit in ``budget_bytes``."""
    per_run = 4 * num_actions * dim * dim * jnp.dtype(jnp.result_type(float)).itemsize
    return max(1, int(budget_bytes // per_run))


_MOVED = {"PRESETS", "register_preset", "preset_names", "get_preset"}


def __getattr__(name: str):
    """The registry's names here are deprecated: they live in :mod:`dts_ppl.experiments.registry`."""
    if name in _MOVED:
        registry = importlib.import_module("dts_ppl.experiments.registry")  # it imports this module
        warnings.warn(
            f"dts_ppl.experiments.regret.{name} is deprecated; use dts_ppl.experiments.registry.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(registry, name)
    if name == "_SIZES":
        warnings.warn("regret._SIZES is deprecated; use regret.SIZES (PaperSizes)", DeprecationWarning, stacklevel=2)
        return {k: v._asdict() for k, v in SIZES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
