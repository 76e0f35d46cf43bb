"""Is a learned prior worth training? A report from offline samples of theta, before deployment.

:func:`prior_report` takes samples (N, d) of the action parameters (one per item, or one shared
task parameter per sample), splits them (or takes a given held-out set), and

1. trains a DDPM prior on the training part (:func:`dts_ppl.experiments.realdata.trained_prior`,
   cached by content) or uses a prior given to it; fits a Gaussian (``GaussianPrior.fit``) and,
   for per-action parameters, the one-level Gaussian hierarchy with the DDPM's S_1
   (:func:`dts_ppl.experiments.realdata.gaussian_hierarchy`);
2. measures the energy distance of each prior's draws to the held-out samples, next to the
   sample floor (the training sample itself, at the same sizes);
3. simulates a bandit whose parameters are the held-out samples
   (:func:`dts_ppl.bandits.envs.pool_environment`) and runs every agent of :data:`REPORT_AGENTS`
   on the same runs (common random numbers);
4. gives a verdict by the rule of :func:`verdict`.

The agents the report runs are the list :data:`REPORT_AGENTS` (or the ``agents`` argument): each
:class:`ReportAgent` names the prior it uses ("ddpm", "hierarchy", "gaussian", or "bank", which
takes no part in the verdict) and its policy, and builds its agent from the :class:`ReportPriors`.
A new posterior policy joins the report by appending one entry, e.g.
``REPORT_AGENTS.append(ReportAgent("Bayes-UCB (dTS)", "ddpm", "bayes-ucb", build))``, and then
competes for its prior in the verdict. :data:`POLICY_AGENTS` are such entries, ready made: Bayes-UCB
and UCB on the dTS, HierTS and LinTS posteriors (``agents=REPORT_AGENTS + POLICY_AGENTS``).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl.agents.base import Agent
from dts_ppl.bandits.envs import pool_environment, uniform_contexts
from dts_ppl.bandits.simulation import RegretResult, plot_regret, simulate
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.core.sampling import sample_prior
from dts_ppl.experiments import realdata
from dts_ppl.io.npz import atomic_write
from dts_ppl.io.prior_files import load_prior
from dts_ppl.plotting import pyplot
from dts_ppl.ppl.distances import energy_distance

#: the verdicts, from the simplest prior to the most expensive one
VERDICTS = {
    "gaussian": "a fitted Gaussian is as good",
    "hierarchy": "a Gaussian hierarchy is as good",
    "ddpm": "train the diffusion prior",
}
FAMILIES = tuple(VERDICTS)

#: the smallest number of training and of held-out samples the report accepts
MIN_TRAIN = 10
MIN_HELDOUT = 2


class ReportPriors(NamedTuple):
    """What an agent of the report is built from.

    Attributes:
        ddpm: the DDPM prior (DiffusionPrior, dimension d).
        gaussian: the Gaussian fitted to the training samples (mean (d,), cov (d, d)).
        hierarchy: the one-level Gaussian hierarchy with the DDPM's S_1, or None (shared parameter).
        bank: (N_train, d) the training samples (bank TS's empirical prior).
        likelihood: the reward model of the simulated bandit.
        num_actions: K.
        shared: one parameter for all actions.
        history: rounds of the run (the agents' history buffer).
    """

    ddpm: DiffusionPrior
    gaussian: ag.GaussianPrior
    hierarchy: DiffusionPrior | None
    bank: jax.Array
    likelihood: Any
    num_actions: int
    shared: bool
    history: int


class ReportAgent(NamedTuple):
    """One agent the report runs: its name, the prior it uses, its policy, and how to build it.

    Attributes:
        name: the label in the tables and the plot.
        prior: "ddpm", "hierarchy", "gaussian" (the families of the verdict) or "bank" (reference only).
        policy: "thompson", "ucb", ... ; the same-policy verdict uses the "thompson" agents only.
        build: ``build(priors: ReportPriors) -> Agent | None`` (None: not applicable, e.g. a
            hierarchy with a shared parameter).
    """

    name: str
    prior: str
    policy: str
    build: Callable[[ReportPriors], Agent | None]


def _dts(p: ReportPriors) -> Agent:
    return ag.dts(p.ddpm, p.likelihood, p.num_actions, shared=p.shared, history=p.history)


def _hier(p: ReportPriors) -> Agent | None:
    if p.hierarchy is None:
        return None
    return ag.dts(p.hierarchy, p.likelihood, p.num_actions, shared=p.shared, history=p.history)


def _lin_ts(p: ReportPriors) -> Agent:
    return ag.lin_ts(p.gaussian, p.likelihood, p.num_actions, shared=p.shared, history=p.history)


def _lin_ucb(p: ReportPriors) -> Agent:
    return ag.lin_ucb(p.gaussian, p.likelihood, p.num_actions, shared=p.shared, history=p.history)


def _bank_ts(p: ReportPriors) -> Agent:
    return ag.bank_ts(p.bank, p.likelihood, p.num_actions, shared=p.shared)


#: The agents the report runs (the hook: append a ReportAgent to add a policy to every report).
REPORT_AGENTS: list[ReportAgent] = [
    ReportAgent("dTS", "ddpm", "thompson", _dts),
    ReportAgent("HierTS", "hierarchy", "thompson", _hier),
    ReportAgent("LinTS", "gaussian", "thompson", _lin_ts),
    ReportAgent("LinUCB", "gaussian", "ucb", _lin_ucb),
    ReportAgent("bank TS", "bank", "thompson", _bank_ts),
]


def _optimistic(base: str, prior: str, policy: str) -> Callable[[ReportPriors], Agent | None]:
    """Builder of an optimistic policy (:func:`dts_ppl.agents.posterior_policy`) on one prior's posterior."""

    def build(p: ReportPriors) -> Agent | None:
        fitted = getattr(p, prior)
        if fitted is None:  # no hierarchy with a shared parameter
            return None
        return ag.posterior_policy(
            base, fitted, p.likelihood, p.num_actions, policy, shared=p.shared, history=p.history
        )

    return build


#: Optimistic policies on each prior's posterior, named as in the presets' policy tables
#: (docs/realdata.md): ``prior_report(..., agents=REPORT_AGENTS + POLICY_AGENTS)`` or the command's
#: ``--policies``. Each competes for its prior in the all-agent verdict (not in the Thompson one).
POLICY_AGENTS: list[ReportAgent] = [
    ReportAgent("dTS Bayes-UCB", "ddpm", "bayes_ucb", _optimistic("dts", "ddpm", "bayes_ucb")),
    ReportAgent("dTS UCB", "ddpm", "ucb", _optimistic("dts", "ddpm", "ucb")),
    ReportAgent("HierTS Bayes-UCB", "hierarchy", "bayes_ucb", _optimistic("dts", "hierarchy", "bayes_ucb")),
    ReportAgent("HierTS UCB", "hierarchy", "ucb", _optimistic("dts", "hierarchy", "ucb")),
    ReportAgent("LinTS Bayes-UCB", "gaussian", "bayes_ucb", _optimistic("lin_ts", "gaussian", "bayes_ucb")),
]


class ReportSettings(NamedTuple):
    """The report's choices (every one is written to its JSON).

    Attributes:
        shared: True: each sample is one shared parameter (a task); the bandit draws one held-out
            sample per run and K action features per round. False: each sample is one action's
            parameter; the bandit draws K distinct held-out samples per run and one context per round.
        train_share: share of the samples the priors are fitted on (the rest is held out).
        num_actions: K.
        rounds: rounds per run.
        runs: runs (paired across agents).
        noise: sd of the Gaussian reward noise.
        num_draws: draws per energy distance (at most the training and held-out sizes).
        z: the verdict's threshold, in paired standard errors.
        seed: seed of the split, the energy draws and the runs.
    """

    shared: bool = False
    train_share: float = 0.7
    num_actions: int = 20
    rounds: int = 300
    runs: int = 20
    noise: float = 1.0
    num_draws: int = 2000
    z: float = 2.0
    seed: int = 0


class PriorReport(NamedTuple):
    """The result of :func:`prior_report`.

    Attributes:
        verdict: one of :data:`VERDICTS`' values (best agent per prior).
        verdict_thompson: the same rule with Thompson-sampling agents only (the prior, policy fixed).
        comparisons: the numbers behind each verdict (see :func:`verdict`), keys "all" and "thompson".
        energy: energy distances to the held-out samples: "ddpm", "gaussian", "floor", and "num_draws".
        results: {agent name: RegretResult} on the simulated bandit (paired runs).
        agents: {agent name: {"prior", "policy"}}.
        settings: the ReportSettings as a dict, plus the sizes and the S_1 rule.
        prior_metadata: the DDPM's metadata (training choices), or {} for a prior given without.
        heldout: (M, d) the held-out samples (for the plot; not written to JSON).
        draws: {"ddpm", "gaussian"}: (num_draws, d) draws used for the energy distances (for the plot).
    """

    verdict: str
    verdict_thompson: str
    comparisons: dict
    energy: dict
    results: dict
    agents: dict
    settings: dict
    prior_metadata: dict
    heldout: np.ndarray
    draws: dict


# ------------------------------------------------------------------------------------ input


def load_samples(path: str | os.PathLike, name: str = "samples") -> np.ndarray:
    """Read an (N, d) array of samples from a ``.npy`` file, with errors that name the file.

    Args:
        path: the ``.npy`` file.
        name: the argument's name for the error messages.
    Returns:
        (N, d) float64 array.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{name}: no file {path!r}; expected a .npy file of shape (N, d) written by numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError / OSError / UnpicklingError on foreign files
        raise ValueError(f"{name}: cannot read {path!r} as a .npy array ({e}); expected numpy.save's format") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name}: {path!r} holds several arrays (.npz); expected one (N, d) .npy array")
    return check_samples(x, name)


def check_samples(samples: Any, name: str = "samples", minimum: int = 2) -> np.ndarray:
    """``samples`` as an (N, d) float64 array: real numbers, finite, N >= ``minimum``, d >= 1."""
    x = np.asarray(samples)
    if x.dtype == object or not _checks.is_real_dtype(x.dtype):
        raise ValueError(f"{name}: expected real numbers, got an array of dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (N, d) (one sample of theta per row), got {x.shape}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(
            f"{name}: expected finite numbers; {int(bad.sum())} entries are NaN or inf (first in row {row})"
        )
    if x.shape[0] < minimum:
        raise ValueError(f"{name}: expected at least {minimum} samples (rows), got {x.shape[0]}")
    return x


def split_samples(samples: np.ndarray, train_share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split of the rows of ``samples``: (train (round(share N), d), held-out (rest, d))."""
    share = _checks.check_scalar("train_share", train_share)
    if not 0.0 < share < 1.0:
        raise ValueError(f"train_share: expected a number in (0, 1), got {train_share!r}")
    n = samples.shape[0]
    cut = int(round(share * n))
    if cut < MIN_TRAIN or n - cut < MIN_HELDOUT:
        raise ValueError(
            f"samples: {n} samples split {cut} / {n - cut} (train_share {share}); expected at least "
            f"{MIN_TRAIN} to train on and {MIN_HELDOUT} held out: give more samples or another train_share"
        )
    perm = np.random.RandomState(seed).permutation(n)
    return samples[perm[:cut]], samples[perm[cut:]]


def _check_settings(settings: ReportSettings) -> ReportSettings:
    if not isinstance(settings, ReportSettings):
        raise ValueError(f"settings: expected a ReportSettings, got {type(settings).__name__}")
    if not isinstance(settings.shared, bool):
        raise ValueError(f"shared: expected True or False, got {settings.shared!r}")
    for field in ("num_actions", "rounds", "num_draws"):
        _checks.check_positive_int(field, getattr(settings, field))
    if _checks.check_positive_int("runs", settings.runs) < 2:
        raise ValueError(f"runs: expected at least 2 (the verdict uses paired standard errors), got {settings.runs}")
    _checks.check_scalar("noise", settings.noise)
    _checks.check_scalar("z", settings.z)
    _checks.check_int("seed", settings.seed, minimum=0)
    return settings


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"prior-report: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- pieces


def energy_report(
    key: jax.Array, prior: DiffusionPrior, gauss: ag.GaussianPrior, train, heldout, num_draws: int = 2000
) -> tuple[dict, dict]:
    """Energy distances to held-out samples of the DDPM's draws, the Gaussian fit's, and the sample floor.

    All three use n = min(num_draws, N_train) draws against m = min(num_draws, M) held-out samples,
    so they share the finite-sample bias; the floor is a random n of the training samples (what a
    perfect fit of the training data would score). The DDPM's draws are one action's theta as dTS
    uses it (S_1 included). A per-action Gaussian hierarchy has the Gaussian fit's marginal, so it
    has the Gaussian's distance.

    Args:
        key: PRNG key.
        prior: the DDPM prior (dimension d).
        gauss: the Gaussian fit.
        train: (N_train, d) training samples.
        heldout: (M, d) held-out samples.
        num_draws: the most draws per set.
    Returns:
        ({"ddpm", "gaussian", "floor": float, "num_draws": n, "num_heldout": m},
         {"ddpm", "gaussian": (n, d) draws}).
    """
    k_d, k_g, k_t, k_h = jax.random.split(_checks.check_key(key), 4)
    train = np.asarray(train, np.float64)
    heldout = np.asarray(heldout, np.float64)
    n = int(min(num_draws, train.shape[0]))
    m = int(min(num_draws, heldout.shape[0]))
    held = heldout[np.asarray(jax.random.permutation(k_h, heldout.shape[0]))[:m]]
    floor_draws = train[np.asarray(jax.random.permutation(k_t, train.shape[0]))[:n]]
    ddpm = np.asarray(sample_prior(k_d, prior, n)[1][:, 0], np.float64)
    chol = np.linalg.cholesky(np.asarray(gauss.cov, np.float64))
    gauss_draws = np.asarray(gauss.mean, np.float64) + np.asarray(jax.random.normal(k_g, (n, chol.shape[0]))) @ chol.T
    out = dict(
        ddpm=energy_distance(ddpm, held),
        gaussian=energy_distance(gauss_draws, held),
        floor=energy_distance(floor_draws, held),
        num_draws=n,
        num_heldout=m,
    )
    return out, dict(ddpm=ddpm, gaussian=gauss_draws)


def paired(a: RegretResult, b: RegretResult) -> tuple[float, float]:
    """Mean and s.e. of the paired per-run difference of final regrets a - b."""
    diff = np.asarray(a.cumulative)[:, -1] - np.asarray(b.cumulative)[:, -1]
    if diff.size < 2:
        raise ValueError(f"results: expected at least 2 paired runs, got {diff.size}")
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


def verdict(results: dict, families: dict, z: float = 2.0) -> tuple[str, dict]:
    """The stated rule: the simplest prior whose best agent is within z paired s.e. of the best agent.

    Each family (prior) is represented by its agent with the lowest mean final regret; the best
    family is the one whose representative is lowest. Going from the simplest prior to the most
    expensive (Gaussian fit, Gaussian hierarchy, DDPM), the verdict is the first family whose
    paired difference of final regrets to the best, mean D +- s.e., has D <= z s.e. (it is not
    measurably worse). A family without agents is skipped.

    Args:
        results: {agent name: RegretResult}, paired runs.
        families: {agent name: "ddpm" | "hierarchy" | "gaussian" | other (ignored)}.
        z: the threshold in paired standard errors.
    Returns:
        (verdict text, {"best": {family: agent}, "best_family", "differences": {family: [D, s.e.]},
        "rule"}).
    """
    best = {}
    for fam in FAMILIES:
        names = [n for n in results if families.get(n) == fam]
        if names:
            best[fam] = min(names, key=lambda n: results[n].final_mean)
    if not best:
        raise ValueError(f"families: expected at least one agent of {FAMILIES}, got {families}")
    top = min(best, key=lambda f: results[best[f]].final_mean)
    diffs = {f: list(paired(results[best[f]], results[best[top]])) if f != top else [0.0, 0.0] for f in best}
    chosen = next(f for f in FAMILIES if f in best and diffs[f][0] <= z * diffs[f][1])
    rule = (
        f"the simplest prior (Gaussian fit < Gaussian hierarchy < DDPM) whose best agent's final regret is "
        f"within {z:g} paired s.e. of the best agent's (mean paired difference <= {z:g} s.e.)"
    )
    return VERDICTS[chosen], dict(best=best, best_family=top, differences=diffs, chosen=chosen, rule=rule)


# ---------------------------------------------------------------------------------- report


def prior_report(
    samples: Any,
    settings: ReportSettings | None = None,
    heldout: Any = None,
    contexts: Any = None,
    prior: DiffusionPrior | str | os.PathLike | None = None,
    action_cov: float | str | Any | None = None,
    training: dict | None = None,
    agents: Sequence[ReportAgent] | None = None,
    progress: bool = True,
) -> PriorReport:
    """Is a learned prior worth it on these samples? Energy distances, regrets and a verdict.

    Args:
        samples: (N, d) offline samples of theta (per action, or shared: ``settings.shared``).
        settings: :class:`ReportSettings` (None: the defaults).
        heldout: (M, d) held-out samples; None: a random ``1 - train_share`` of ``samples``.
        contexts: (C, d) pool of contexts (per action: one row per round) or action features
            (shared: K distinct rows per round); None: U[-1, 1]^d.
        prior: a trained DiffusionPrior (or the path of one saved by ``save_prior``) to use instead
            of training; it must not have seen the held-out samples.
        action_cov: S_1 of the DDPM trained here; None: "beta" (shared) or half the standardised
            sample covariance (per action), the real-data presets' rule.
        training: overrides of :data:`dts_ppl.experiments.realdata.TRAINING` (e.g. ``steps``).
        agents: the agents to run (default :data:`REPORT_AGENTS`).
        progress: progress messages and bars on stderr.
    Returns:
        :class:`PriorReport`.
    """
    settings = _check_settings(ReportSettings() if settings is None else settings)
    x = check_samples(samples, "samples")
    if heldout is None:
        train, held = split_samples(x, settings.train_share, settings.seed)
    else:
        train, held = x, check_samples(heldout, "heldout", MIN_HELDOUT)
        if train.shape[0] < MIN_TRAIN:
            raise ValueError(f"samples: expected at least {MIN_TRAIN} samples to train on, got {train.shape[0]}")
        if held.shape[1] != train.shape[1]:
            raise ValueError(f"heldout: expected d = {train.shape[1]} columns like samples, got {held.shape[1]}")
    d, K = train.shape[1], settings.num_actions
    if np.any(train.std(0) <= 0):
        raise ValueError(f"samples: coordinate {int(np.argmin(train.std(0)))} is constant in the training split")
    if not settings.shared and held.shape[0] < K:
        raise ValueError(
            f"num_actions: the bandit draws K = {K} distinct held-out samples per run, but only "
            f"{held.shape[0]} are held out; lower num_actions or give more samples"
        )
    if contexts is not None:
        contexts = check_samples(contexts, "contexts", K if settings.shared else 1)
        if contexts.shape[1] != d:
            raise ValueError(f"contexts: expected d = {d} columns like samples, got {contexts.shape[1]}")
    agents = REPORT_AGENTS if agents is None else list(agents)
    if not agents or not all(isinstance(a, ReportAgent) for a in agents):
        raise ValueError("agents: expected a non-empty sequence of ReportAgent")

    # 1. priors
    if prior is None:
        cov_rule = action_cov
        if cov_rule is None:
            cov_rule = "beta" if settings.shared else 0.5 * realdata.standardised_cov(train)
        _say(progress, f"training a DDPM prior on {train.shape[0]} samples (d = {d}; cached by content)")
        ddpm, meta = realdata.trained_prior(
            "prior-report", train, cov_rule, seed=settings.seed, progress=progress, **(training or {})
        )
    elif isinstance(prior, DiffusionPrior):
        ddpm, meta = prior, {}
    else:
        ddpm, meta = load_prior(prior)
    if ddpm.dim != d:
        raise ValueError(f"prior: expected a prior of dimension d = {d} (the samples'), got {ddpm.dim}")
    dtype = jnp.result_type(float)
    gauss = ag.GaussianPrior.fit(jnp.asarray(train, dtype))
    hierarchy = None if settings.shared else realdata.gaussian_hierarchy(gauss, ddpm.cov1)
    likelihood = Gaussian(settings.noise)
    priors = ReportPriors(
        ddpm, gauss, hierarchy, jnp.asarray(train, dtype), likelihood, K, settings.shared, settings.rounds
    )

    # 2. energy distances
    key = jax.random.PRNGKey(settings.seed)
    k_energy, k_sim = jax.random.split(key)
    _say(progress, f"energy distances to {held.shape[0]} held-out samples")
    energy, draws = energy_report(k_energy, ddpm, gauss, train, held, settings.num_draws)

    # 3. the simulated bandit on the held-out samples, every agent on the same runs
    if contexts is None:
        pool = uniform_contexts(d, K) if settings.shared else uniform_contexts(d)
    else:
        pool = jnp.asarray(contexts, dtype)
    name = f"{'shared' if settings.shared else 'per-action'} bandit on {held.shape[0]} held-out samples, K={K}"
    env = pool_environment(jnp.asarray(held, dtype), pool, K, likelihood, shared=settings.shared, name=name)
    results, kinds = {}, {}
    for spec in agents:
        agent = spec.build(priors)
        if agent is None:
            continue
        _say(progress, f"simulating {spec.name}: {settings.runs} runs x {settings.rounds} rounds")
        results[spec.name] = simulate(
            k_sim, env, agent, settings.rounds, settings.runs, progress=progress, desc=spec.name
        )
        kinds[spec.name] = dict(prior=spec.prior, policy=spec.policy)

    # 4. verdicts
    fam = {n: k["prior"] for n, k in kinds.items()}
    text, comp = verdict(results, fam, settings.z)
    ts = {n: f for n, f in fam.items() if kinds[n]["policy"] == "thompson"}
    text_ts, comp_ts = verdict({n: results[n] for n in ts}, ts, settings.z)
    info = dict(
        settings._asdict(),
        num_train=int(train.shape[0]),
        num_heldout=int(held.shape[0]),
        dim=int(d),
        heldout_given=heldout is not None,
        contexts="given pool" if contexts is not None else "U[-1, 1]^d",
        prior_source=_source(prior),
        trace_s1=float(np.trace(np.asarray(ddpm.cov1))),
        trace_fit_cov=float(np.trace(np.asarray(gauss.cov))),
    )
    return PriorReport(text, text_ts, dict(all=comp, thompson=comp_ts), energy, results, kinds, info, meta, held, draws)


def _source(prior) -> str:
    if prior is None:
        return "trained here"
    return "given" if isinstance(prior, DiffusionPrior) else str(prior)


# ---------------------------------------------------------------------------------- output


def report_json(report: PriorReport) -> dict:
    """The report as plain JSON (no samples): verdicts, comparisons, energies, regrets (per run), settings."""
    meta_keys = ("num_levels", "hidden", "steps", "schedule", "action_cov", "final_loss", "num_samples")
    return dict(
        verdict=report.verdict,
        verdict_thompson=report.verdict_thompson,
        comparisons=report.comparisons,
        energy=report.energy,
        regret={
            n: dict(
                report.agents[n],
                final_regret_mean=r.final_mean,
                final_regret_se=r.final_se,
                final_regrets=np.asarray(r.cumulative)[:, -1].tolist(),
                seconds=r.seconds,
            )
            for n, r in report.results.items()
        },
        settings=report.settings,
        ddpm={k: report.prior_metadata[k] for k in meta_keys if k in report.prior_metadata},
    )


def report_text(report: PriorReport) -> str:
    """A short plain-text summary: energy distances, regrets, paired differences and the verdicts."""
    e, s = report.energy, report.settings
    lines = [
        f"prior report: {s['num_train']} training / {s['num_heldout']} held-out samples, d = {s['dim']}, "
        f"{'shared parameter' if s['shared'] else 'per-action parameters'}",
        f"energy distance to the held-out samples ({e['num_draws']} draws): DDPM {e['ddpm']:.3f}, "
        f"Gaussian fit {e['gaussian']:.3f}, sample floor {e['floor']:.3f}",
        f"final regret after {s['rounds']} rounds, mean +- s.e. over {s['runs']} paired runs (K = {s['num_actions']}):",
    ]
    width = max(len(n) for n in report.results)
    for n, r in report.results.items():
        k = report.agents[n]
        lines.append(f"  {n:<{width}}  {r.final_mean:10.2f} +- {r.final_se:6.2f}   ({k['prior']}, {k['policy']})")
    for label, key, text in (
        ("best agent per prior", "all", report.verdict),
        ("Thompson sampling only", "thompson", report.verdict_thompson),
    ):
        c = report.comparisons[key]
        parts = [f"{f} {c['best'][f]} {c['differences'][f][0]:+.2f} +- {c['differences'][f][1]:.2f}" for f in c["best"]]
        lines.append(f"{label}: vs the best ({c['best'][c['best_family']]}): " + "; ".join(parts))
        lines.append(f"  verdict: {text}")
    lines.append(f"rule: {report.comparisons['all']['rule']}")
    return "\n".join(lines)


def plot_report(report: PriorReport, path: str | os.PathLike | None = None) -> Any:
    """Regret curves, energy distances and (d = 2) the held-out samples with the priors' draws; atomic save.

    Returns:
        The matplotlib Figure.
    """
    plt = pyplot(headless=path is not None)
    two_d = report.heldout.shape[1] == 2
    fig, axes = plt.subplots(1, 3 if two_d else 2, figsize=(14 if two_d else 10, 4))
    plot_regret(report.results, ax=axes[0], title=report.verdict)
    e = report.energy
    names = ["DDPM", "Gaussian fit", "sample floor"]
    axes[1].bar(names, [e["ddpm"], e["gaussian"], e["floor"]], color=["C0", "C2", "0.6"])
    axes[1].set(ylabel="energy distance to held-out samples", title=f"{e['num_draws']} draws each")
    if two_d:
        ax = axes[2]
        ax.scatter(*report.heldout.T, s=3, c="0.6", label="held-out")
        ax.scatter(*report.draws["ddpm"][: report.heldout.shape[0]].T, s=3, c="C0", alpha=0.5, label="DDPM")
        ax.scatter(*report.draws["gaussian"][: report.heldout.shape[0]].T, s=3, c="C2", alpha=0.3, label="Gaussian fit")
        ax.legend(frameon=False, markerscale=3, fontsize=8)
        ax.set_title("samples", fontsize=9)
    fig.tight_layout()
    if path is not None:
        buf = io.BytesIO()
        suffix = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
        fig.savefig(buf, format=suffix, dpi=100)
        plt.close(fig)
        atomic_write(path, buf.getvalue())
    return fig


def write_report(report: PriorReport, json_path: str | os.PathLike | None = None, plot_path=None) -> None:
    """Write the report's JSON and plot, each atomically (a crash never leaves half a file)."""
    if json_path is not None:
        atomic_write(json_path, json.dumps(report_json(report), indent=1).encode())
    if plot_path is not None:
        plot_report(report, plot_path)
