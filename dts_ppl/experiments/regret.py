"""Named regret experiments (the paper's Figure 1 panels, the K sweep, misspecification).

A preset is a builder ``build(key, num_rounds) -> (Environment, {name: Agent})`` stored under a
name in :data:`PRESETS`; ``dts-ppl bench regret --preset NAME`` runs it. Users add their own
with :func:`register_preset`:

    from dts_ppl.experiments.regret import register_preset
    register_preset("my-bandit", build, "my catalogue, K=100")

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

import jax
import jax.numpy as jnp

from dts_ppl import agents as ag
from dts_ppl.bandits.envs import diffusion_environment
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.experiments import paper_extra, realdata, swissroll
from dts_ppl.experiments.registry import Preset
from dts_ppl.experiments.synthetic import paper_environment, paper_prior

# ------------------------------------------------------------------------------ the paper's

_SIZES = {100: dict(dim=5, active_dims=(5, 2), hidden=20), 10000: dict(dim=20, active_dims=(20, 10, 5, 2), hidden=60)}


def paper_agents(key, prior, reward: str, num_actions: int, num_rounds: int, which=None, agent_prior=None):
    """The paper's algorithms for a reward model: dTS and baselines, all given ``agent_prior``
    (default: the true prior) or its theta marginal."""
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


def _fig1(diffusion: str, reward: str, num_actions: int):
    sizes = _SIZES[num_actions]

    def build(key, num_rounds):
        k_prior, k_marg = jax.random.split(key)
        env, prior = paper_environment(k_prior, diffusion, reward, num_actions, **sizes)
        return env, paper_agents(k_marg, prior, reward, num_actions, num_rounds)

    return build


def _k_sweep(num_actions: int):
    def build(key, num_rounds):
        k_prior, k_marg = jax.random.split(key)
        env, prior = paper_environment(k_prior, "linear", "linear", num_actions, **_SIZES[100])
        return env, paper_agents(k_marg, prior, "linear", num_actions, num_rounds, which=("dTS", "LinTS"))

    return build


def misspecified_prior(key, prior, scale: float):
    """The true linear prior with every active weight perturbed by scale * U[-1, 1] noise."""
    weights = [prior.link1.weight] + [prior.link(level).weight for level in range(2, prior.num_levels + 1)]
    keys = jax.random.split(key, len(weights))
    noisy = [
        w + scale * jax.random.uniform(k, w.shape, w.dtype, -1.0, 1.0) * (w != 0)
        for k, w in zip(keys, weights, strict=True)
    ]
    covs = [prior.cov1] + list(prior.covs)
    return type(prior).linear(noisy, covs)


def _misspecified(scale: float):
    def build(key, num_rounds):
        k_prior, k_noise, k_marg = jax.random.split(key, 3)
        prior = paper_prior(k_prior, "linear", **_SIZES[100])
        env = diffusion_environment(prior, 100, Gaussian(1.0), name=f"misspecified prior v={scale}")
        wrong = misspecified_prior(k_noise, prior, scale)
        return env, paper_agents(k_marg, prior, "linear", 100, num_rounds, ("dTS", "LinTS", "HierTS"), wrong)

    return build


def _exact(key, num_rounds):
    # same split of the key as the fig1 builders: the same problem as fig1-lindiff-lin-k100
    env, prior = paper_environment(jax.random.split(key)[0], "linear", "linear", 100, **_SIZES[100])
    return env, {"dTS": ag.dts(prior, Gaussian(1.0), 100), "exact TS": ag.exact_ts(prior, Gaussian(1.0), 100)}


_VARIANTS = {  # what the dTS variants of each panel are (module docstring)
    ("linear", "linear"): "; dTS exact",
    ("mlp", "linear"): "; dTS = default (iterated to convergence), dTS (identity) = the paper's rule",
    ("linear", "logistic"): "; dTS = default (prior-scaled expansion), dTS (MLE expansion) = the paper's",
    ("mlp", "logistic"): "; dTS = default (iterated, prior-scaled), dTS (identity), dTS (MLE expansion)",
}


def _paper_presets() -> dict[str, Preset]:
    out = []
    for diff, dname in (("linear", "lindiff"), ("mlp", "nonlindiff")):
        for rew, rname in (("linear", "lin"), ("logistic", "logistic")):
            for K in (100, 10000):
                out.append(
                    Preset(
                        f"fig1-{dname}-{rname}-k{K}",
                        _fig1(diff, rew, K),
                        f"Figure 1: {diff} diffusion, {rew} reward, K={K}" + _VARIANTS[(diff, rew)],
                        runs=50 if K == 100 else 10,
                    )
                )
    for K in (10, 100, 500, 5000, 50000):
        out.append(Preset(f"fig2a-k{K}", _k_sweep(K), f"Figure 2a: K sweep (linear/linear, d=5, L=2), K={K}"))
    for v in ("0", "0.5", "1", "1.5"):
        out.append(
            Preset(
                f"fig2c-v{v}",
                _misspecified(float(v)),
                f"Figure 2c: agents' prior weights W_l + {v} U[-1, 1] (true: W_l), K=100, d=5, L=2",
            )
        )
    out.append(
        Preset("exact-k100", _exact, "dTS vs exact joint Thompson sampling on the fig1-lindiff-lin-k100 problem")
    )
    return {p.name: p for p in out}


#: Every built-in preset by name: a plain dict, filled without import side effects.
PRESETS: dict[str, Preset] = {
    **_paper_presets(),
    **swissroll.presets(),
    **paper_extra.presets(),
    **realdata.presets(),
}
_USER: dict[str, Preset] = {}


def register_preset(name: str, build, description: str = "", rounds: int = 5000, runs: int = 50) -> Preset:
    """Add a user experiment ``build(key, num_rounds) -> (Environment, dict[str, Agent])`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if name in PRESETS or (name in _USER and _USER[name].build is not build):
        raise ValueError(f"name: a preset called {name!r} is already registered")
    if not callable(build):
        raise ValueError(f"build: expected a callable (key, num_rounds) -> (env, agents), got {build!r}")
    _USER[name] = Preset(name, build, description, rounds, runs)
    return _USER[name]


def preset_names() -> list[str]:
    """Names of the built-in and user-registered presets, sorted."""
    return sorted({**PRESETS, **_USER})


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (ValueError listing the available names otherwise)."""
    table = {**PRESETS, **_USER}
    if name not in table:
        raise ValueError(f"preset: unknown preset {name!r}; available: {', '.join(sorted(table))}")
    return table[name]


def default_chunk_size(num_actions: int, dim: int, budget_bytes: float = 1e9) -> int:
    """Runs per vmapped chunk so that about four (K, d, d) arrays per run fit in ``budget_bytes``."""
    per_run = 4 * num_actions * dim * dim * jnp.dtype(jnp.result_type(float)).itemsize
    return max(1, int(budget_bytes // per_run))
