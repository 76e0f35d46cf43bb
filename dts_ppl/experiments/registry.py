"""Every regret preset of ``dts-ppl bench regret``, in one table, and the functions to add and find them.

A preset is a typed record (:class:`Preset`): a builder ``build(key, num_rounds) -> (Environment,
{algorithm name: Agent})``, a description, and the rounds and runs it is reported at. The builders
live with their experiments (:mod:`~dts_ppl.experiments.regret`: the paper's Figure 1 and 2;
:mod:`~dts_ppl.experiments.paper_extra`: Figures 2b, 2c as printed, 6 and Table 2;
:mod:`~dts_ppl.experiments.swissroll`; :mod:`~dts_ppl.experiments.realdata`), each configured by
NamedTuples there; this module names them. Users add their own with :func:`register_preset`:

    from dts_ppl.experiments.registry import register_preset
    register_preset("my-bandit", build, "my catalogue, K=100")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from dts_ppl.experiments import classification, paper_extra, realdata, regret, shapes, swissroll


class Preset(NamedTuple):
    """A named experiment: ``build(key, num_rounds) -> (Environment, {name: Agent})``."""

    name: str
    build: Callable
    description: str = ""
    rounds: int = 5000
    runs: int = 50


_VARIANTS = {  # what the dTS variants of each Figure 1 panel are (experiments.regret's docstring)
    ("linear", "linear"): "; dTS exact",
    ("mlp", "linear"): "; dTS = default (iterated to convergence), dTS (identity) = the paper's rule",
    ("linear", "logistic"): "; dTS = default (prior-scaled expansion), dTS (MLE expansion) = the paper's",
    ("mlp", "logistic"): "; dTS = default (iterated, prior-scaled), dTS (identity), dTS (MLE expansion)",
}


def paper_presets() -> list[Preset]:
    """Figure 1 (8 panels), Figure 2a (K sweep), Figure 2c (misspecified weights), exact TS."""
    out = []
    for diff, dname in (("linear", "lindiff"), ("mlp", "nonlindiff")):
        for rew, rname in (("linear", "lin"), ("logistic", "logistic")):
            for K in (100, 10000):
                desc = f"Figure 1: {diff} diffusion, {rew} reward, K={K}" + _VARIANTS[(diff, rew)]
                runs = 50 if K == 100 else 10
                out.append(Preset(f"fig1-{dname}-{rname}-k{K}", regret.figure1(diff, rew, K), desc, runs=runs))
    for K in (10, 100, 500, 5000, 50000):
        out.append(Preset(f"fig2a-k{K}", regret.k_sweep(K), f"Figure 2a: K sweep (linear/linear, d=5, L=2), K={K}"))
    for v in ("0", "0.5", "1", "1.5"):
        desc = f"Figure 2c: agents' prior weights W_l + {v} U[-1, 1] (true: W_l), K=100, d=5, L=2"
        out.append(Preset(f"fig2c-v{v}", regret.misspecified(float(v)), desc))
    desc = "dTS vs exact joint Thompson sampling on the fig1-lindiff-lin-k100 problem"
    out.append(Preset("exact-k100", regret.exact_k100, desc))
    return out


def paper_extra_presets() -> list[Preset]:
    """Figure 2b (d and L sweeps), Figure 2c as printed, LinTS's prior, Figure 6, Table 2."""
    pe = paper_extra
    base, out = pe.BASE, []
    K = base.num_actions
    for d in pe.FIG2B_D:
        desc = f"Figure 2b: d={d} (L={base.num_levels}, K={K}, active {pe.fig2b_active_dims(d, base.num_levels)})"
        out.append(Preset(f"fig2b-d{d}", pe.fig2b(d, base.num_levels), desc))
    for L in pe.FIG2B_L:
        desc = f"Figure 2b: L={L} (d={base.dim}, K={K}, active {pe.fig2b_active_dims(base.dim, L)})"
        out.append(Preset(f"fig2b-L{L}", pe.fig2b(base.dim, L), desc))
        desc = f"Figure 2b variant: L={L} with every column active (d_l = d = {base.dim}), K={K}"
        out.append(Preset(f"fig2b-full-L{L}", pe.fig2b(base.dim, L, full=True), desc))
    for v in pe.FIG2C_V:
        desc = f"Figure 2c as printed: dTS gets W_l + U[{v}, {v}+0.5], S_l + U[{v}, {v}+0.5] (repaired), K=100"
        out.append(Preset(f"fig2c-paper-v{v}", pe.fig2c_paper(float(v)), desc))
    for k in pe.FIG2A_K:
        desc = f"LinTS with the exact marginal vs N(0, I) on the fig2a-k{k} problem"
        out.append(Preset(f"lints-prior-fig2a-k{k}", pe.lints_prior(k, pe.K100), desc, runs=50 if k <= 5000 else 10))
    desc = "LinTS with the exact marginal vs N(0, I) on the fig1-lindiff-lin-k10000 problem"
    out.append(Preset("lints-prior-fig1-lindiff-lin-k10000", pe.lints_prior(10000, pe.K10000), desc, runs=10))
    desc = "Figure 6 setting for the regret bound: d=5, K=10^4, L=5, n=1000, ||x||=1, lambda_1(W^T W)=1"
    out.append(Preset("fig6-k10000", pe.fig6, desc, rounds=pe.FIG6.rounds, runs=pe.FIG6.runs))
    desc = "Table 2 at small scale: dTS vs MCMC Thompson sampling (NUTS every 10 rounds), K=20, d=5"
    out.append(Preset("table2-mcmc", pe.table2, desc, rounds=pe.TABLE2.rounds, runs=pe.TABLE2.runs))
    return out


def swissroll_presets() -> list[Preset]:
    """The Swiss-roll study (the paper's Figure 3): one preset per pre-training size N and depth L."""
    study = swissroll.STUDY
    return [
        Preset(
            name,
            swissroll.preset_builder(name),
            f"Swiss-roll theta (K={study.num_actions}), dTS with a DDPM prior trained on N={num_samples} "
            f"roll samples, L={num_levels}, vs LinTS with their Gaussian fit",
            rounds=study.num_rounds,
            runs=study.num_runs,
        )
        for name, (num_samples, num_levels) in swissroll.STUDY_PRIORS.items()
    ]


def realdata_presets() -> list[Preset]:
    """The shared-parameter (ring, roll) and real-data (digits, MovieLens) presets."""
    rd = realdata
    shared = f"K={rd.SHARED.num_actions} features U[-1,1]^2, N(x^T theta, 1)"
    return [
        Preset("ring-shared", rd.shared_builder(rd.ring_setup), f"one theta from an 8-cluster ring, {shared}",
               rd.SHARED.rounds, rd.SHARED.runs),
        Preset("roll-shared", rd.shared_builder(rd.roll_setup), f"one theta from the Swiss roll, {shared}",
               rd.SHARED.rounds, rd.SHARED.runs),
        Preset("digits-multitask", rd.digits_builder("linear"),
               "scikit-learn digits: theta = a class's ridge fit, actions = 20 images, Gaussian rewards",
               rd.DIGITS.rounds, rd.DIGITS.runs),
        Preset("digits-multitask-bernoulli", rd.digits_builder("logistic"),
               "scikit-learn digits: theta = a class's logistic fit, actions = 20 images, Bernoulli rewards",
               rd.DIGITS.rounds, rd.DIGITS.runs),
        Preset("movielens", rd.movielens_build,
               "MovieLens item vectors (ALS rank 5), needs --data-dir or $DTS_MOVIELENS_DIR",
               rd.MOVIELENS.rounds, rd.MOVIELENS.runs),
        Preset("movielens-users", rd.movielens_users_build,
               "MovieLens cold start: theta = a held-out user's vector, K=30 films, needs --data-dir",
               rd.MOVIELENS_USERS.rounds, rd.MOVIELENS_USERS.runs),
        Preset("movielens-users-generated", rd.movielens_users_generated_build,
               "the movielens-users bandit on generated ratings (no files)",
               rd.MOVIELENS_USERS.rounds, rd.MOVIELENS_USERS.runs),
    ]  # fmt: skip


def classification_presets() -> list[Preset]:
    """scikit-learn classification data sets as bandits (classes = actions, reward 1 for the right class)."""
    cfg = classification.CLASSIFICATION
    return [
        Preset(
            f"classify-{name}",
            classification.classification_builder(name),
            f"scikit-learn {name}: actions = classes, reward 1 for the right class, prior by empirical Bayes",
            cfg.rounds,
            cfg.runs,
        )
        for name in classification.DATASETS
    ]


#: Every built-in preset by name.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        *paper_presets(),
        *swissroll_presets(),
        *paper_extra_presets(),
        *realdata_presets(),
        *classification_presets(),
        *map(Preset._make, shapes.presets()),
    ]
}
_USER: dict[str, Preset] = {}


def register_preset(name: str, build: Callable, description: str = "", rounds: int = 5000, runs: int = 50) -> Preset:
    """Add a user experiment ``build(key, num_rounds) -> (Environment, dict[str, Agent])`` under ``name``.

    Args:
        name: a new, non-empty name (a built-in or another builder's name raises ValueError).
        build: the builder.
        description: one line for ``dts-ppl bench regret --list``.
        rounds: default rounds.   runs: default runs.
    Returns:
        The registered :class:`Preset`.
    """
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
