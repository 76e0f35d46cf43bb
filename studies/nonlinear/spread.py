"""Where dTS's spread of final regret across runs comes from on fig1-nonlindiff-lin-k100.

    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 1,4,9 --instances 0-9 --keys 1-2 --agents default
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 1,4,9 --instances 0-9 --keys 0-3 \
        --agents LinTS,LinTS-psi
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 1,4,9 --instances 10-99 --keys 0 --agents LinTS
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 0,2,3,5,6,7,8 --instances 0-9 --keys 0 \
        --agents LinTS-psi
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 0,2,3,5,6,7,8 --instances 0-99 --keys 0 \
        --agents LinTS
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 9,4,1 --instances 0-9 --keys 0-1 \
        --agents dts-bayes-ucb
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 0,2,3,5,6,7,8 --instances 0-9 --keys 0 \
        --agents dts-bayes-ucb
    PYTHONPATH=. python studies/nonlinear/spread.py calibration --seeds 9,4,1 --instances 0-19
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 0-9 --instances 10-99 --keys 0 --agents LinTS-psi
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 1,4,9 --instances 0-99 --keys 0 \
        --agents LinTS-psi-optimistic_ts,LinTS-psi-bayes_ucb,LinTS-psi-ucb
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 0,2,3,5,6,7,8 --instances 0-99 --keys 0 \
        --agents LinTS-psi-bayes_ucb
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 9,1,3,4,0,2,5,6,7,8 --instances 0-9 --keys 0 \
        --agents dts-bayes-ucb-gaussian
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 1 --instances 10-49 --keys 0 \
        --agents dts-bayes-ucb-gaussian
    PYTHONPATH=. python studies/nonlinear/spread.py run --seeds 9,4,3,6,0 --instances 10-39 --keys 0 \
        --agents dts-bayes-ucb-gaussian
    PYTHONPATH=. python studies/nonlinear/spread.py doc          # rewrite the marked block of docs/defaults.md
    PYTHONPATH=. python studies/nonlinear/spread.py doc --check  # exit 1 if it is stale

Every command adds to studies/nonlinear/results/spread.json (``--json``).

A run of ``studies/nonlinear/prior_seeds.py`` (seed s, run i) draws theta, the contexts, the
reward noise and the agent's act keys from one key, ``fold_in(k_sim, i)``. Here instance i keeps
that key for theta, the contexts and the reward noise (the environment) and agent key j replaces
only the act keys (``run_regret(..., agent_key=)``): j = 0 is the run's own act key (so (i, 0)
is run i of prior_seeds.json, whose final regrets are taken from there for a dTS variant not
re-run with j = 0), j >= 1 is ``fold_in(own act key, j)``. With I instances x J agent keys the
final regret's variance splits as a one-way random-effects ANOVA into the agent's own sampling
randomness (the within-instance mean square) and the instance's part ((between mean square -
within) / J). "LinTS-psi" is the reference: LinTS told the instance's true psi_1, i.e. every
theta_a's exact prior N(f_1(psi_1), S_1) given the shared latent (an exact posterior with nothing
left to learn about the chain); "dts-bayes-ucb" is Bayes-UCB on dTS's posterior
(``posterior_policy``), a policy with little randomness of its own; "dts-bayes-ucb-gaussian" takes
the quantile of the moment-matched Gaussian instead of the 64-draw mixture's; "LinTS-psi-<policy>"
is the reference under another policy of ``posterior_policy("lin_ts", ...)`` on its exact posterior. Per instance the script also records features of its difficulty:
how far theta is from the prior (mean Mahalanobis distance under the theta marginal LinTS uses),
how spread the K thetas are about their own mean (against the marginal's total variance), and
the mean reward gaps over contexts (best minus second best, best minus the average action).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl import agents as ag
from dts_ppl import core
from dts_ppl.bandits.envs import mean_rewards
from dts_ppl.bandits.simulation import run_regret, run_rounds
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.experiments.regret import SIZES, paper_agents
from dts_ppl.experiments.synthetic import paper_environment
from studies.common import save_json

ROOT = Path(__file__).resolve().parents[2]
PRIOR_SEEDS = ROOT / "studies" / "nonlinear" / "results" / "prior_seeds.json"
RESULTS = ROOT / "studies" / "nonlinear" / "results" / "spread.json"
DOC = ROOT / "docs" / "defaults.md"
BEGIN = "<!-- results SPREAD: python studies/nonlinear/spread.py doc -->"
END = "<!-- /results SPREAD -->"
PRESET = "fig1-nonlindiff-lin-k100"
K = 100
CHECKPOINTS = (250, 500, 1000, 2000, 3000, 4000, 5000)

#: dTS variants by name: keyword arguments of ``dts_ppl.agents.dts`` ("default": none).
VARIANTS: dict[str, dict] = {"default": {}}
#: Other policies on dTS's posterior (not Thompson sampling): ``posterior_policy("dts", ...)`` arguments.
POLICIES: dict[str, dict] = {
    "dts-bayes-ucb": {"policy": "bayes_ucb"},
    "dts-bayes-ucb-gaussian": {"policy": "bayes_ucb_gaussian"},
    "dts-ucb": {"policy": "ucb"},
    "dts-optimistic-ts": {"policy": "optimistic_ts"},
}
#: The reference agent: LinTS told the instance's true psi_1 (prior N(f_1(psi_1), S_1) per action).
ORACLE = "LinTS-psi"
#: The reference's posterior under other policies (``posterior_policy("lin_ts", ...)``), by name.
ORACLE_POLICIES: dict[str, str] = {f"{ORACLE}-{p}": p for p in ("bayes_ucb", "ucb", "optimistic_ts")}


def parse_ints(text: str) -> list[int]:
    """'0-9' or '0,3,5' -> list of ints."""
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def build(seed: int, name: str, rounds: int):
    """(environment, agent, marginal, simulation key) of prior seed ``seed``, as prior_seeds.py builds them."""
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(seed))  # as `dts-ppl bench regret --seed`
    k_prior, k_marg = jax.random.split(k_build)  # as regret.figure1's builder
    env, prior = paper_environment(k_prior, "mlp", "linear", K, *SIZES[K])
    marginal = ag.theta_marginal(prior, k_marg)  # the marginal paper_agents gives LinTS (same key)
    if name == "LinTS":
        agent = paper_agents(k_marg, prior, "linear", K, rounds, which=("LinTS",))["LinTS"]
    elif name in POLICIES:
        agent = ag.posterior_policy("dts", prior, Gaussian(1.0), K, **POLICIES[name])
    else:
        agent = ag.dts(prior, Gaussian(1.0), K, **VARIANTS[name])
    return env, agent, marginal, k_sim


def checkpoints(rounds: int) -> list[int]:
    """The rounds (1-based) whose cumulative regret is kept: CHECKPOINTS below ``rounds``, and ``rounds``."""
    return sorted({c for c in CHECKPOINTS if c < rounds} | {rounds})


def agent_key(run_key: jax.Array, j: int) -> jax.Array:
    """Agent key j of a run: the run's own act key (j = 0) or ``fold_in`` of it with j."""
    own = jax.random.split(run_key, 4)[2]
    return own if j == 0 else jax.random.fold_in(own, j)


def instance_features(env, marginal, run_key: jax.Array, contexts: int = 2000) -> dict:
    """Difficulty features of one instance (its theta, and contexts drawn apart from the run's)."""
    theta = env.sample_theta(jax.random.split(run_key, 4)[0])  # (K, d), as run_regret draws it
    mean, cov = np.asarray(marginal.mean), np.asarray(marginal.cov)
    th = np.asarray(theta)
    diff = th - mean
    maha = np.einsum("kd,de,ke->k", diff, np.linalg.inv(cov), diff)
    within = np.trace(np.cov(th.T))
    xs = jax.vmap(env.sample_context)(jax.random.split(jax.random.fold_in(run_key, 99), contexts))
    mu = np.sort(np.asarray(jax.vmap(lambda x: mean_rewards(env, theta, x))(xs)), axis=1)
    return {
        "theta_mahalanobis": float(np.mean(maha) / th.shape[1]),
        "theta_within_share": float(within / np.trace(cov)),
        "gap_best_second": float(np.mean(mu[:, -1] - mu[:, -2])),
        "gap_best_average": float(np.mean(mu[:, -1] - mu.mean(1))),
    }


def oracle_prior(seed: int, run_key: jax.Array) -> ag.GaussianPrior:
    """N(f_1(psi_1), S_1): every theta_a's prior given the instance's true psi_1 (as run_regret draws it)."""
    k_build, _ = jax.random.split(jax.random.PRNGKey(seed))
    _, prior = paper_environment(jax.random.split(k_build)[0], "mlp", "linear", K, *SIZES[K])
    psi, _ = core.sample(jax.random.split(run_key, 4)[0], prior, core.prior_conditionals(prior, K))
    return ag.GaussianPrior(prior.link1(psi[-1]), prior.cov1)


def run_seed(seed: int, name: str, instances: list[int], keys: list[int], rounds: int, chunk: int) -> dict:
    """{"runs": [{instance, key, checkpoints}], "seconds"} for one agent on one prior seed."""
    pairs = [(i, j) for i in instances for j in keys]
    told = name == ORACLE or name in ORACLE_POLICIES
    env, agent, _, k_sim = build(seed, "LinTS" if told else name, rounds)
    run_keys = jnp.stack([jax.random.fold_in(k_sim, i) for i, _ in pairs])
    a_keys = jnp.stack([agent_key(jax.random.fold_in(k_sim, i), j) for i, j in pairs])
    cps = np.asarray(checkpoints(rounds)) - 1
    if told:  # each instance's own prior: its mean rides in the vmap
        priors = [oracle_prior(seed, k) for k in run_keys]
        means, cov = jnp.stack([p.mean for p in priors]), priors[0].cov

        def one(k, a, m):
            exact = ag.GaussianPrior(m, cov)
            if name == ORACLE:
                reference = ag.lin_ts(exact, Gaussian(1.0), K)
            else:
                reference = ag.posterior_policy("lin_ts", exact, Gaussian(1.0), K, policy=ORACLE_POLICIES[name])
            return jnp.cumsum(run_regret(k, env, reference, rounds, agent_key=a))[cps]
    else:
        means = jnp.zeros(len(pairs))

        def one(k, a, m):
            return jnp.cumsum(run_regret(k, env, agent, rounds, agent_key=a))[cps]

    fn = jax.jit(jax.vmap(one))
    t0 = time.perf_counter()
    out = []
    for c in range(0, len(pairs), chunk):
        out.append(np.asarray(fn(run_keys[c : c + chunk], a_keys[c : c + chunk], means[c : c + chunk])))
    cum = np.concatenate(out)
    seconds = time.perf_counter() - t0
    runs = [
        {"instance": i, "key": j, "checkpoints": [round(float(v), 2) for v in cum[n]]} for n, (i, j) in enumerate(pairs)
    ]
    print(f"seed {seed} {name}: {len(runs)} runs in {seconds:.0f} s", flush=True)
    return {"runs": runs, "seconds": round(seconds, 1)}


def cmd_run(args) -> None:
    path = Path(args.json)
    agents = [a.strip() for a in args.agents.split(",")]
    known = ["LinTS", ORACLE, *ORACLE_POLICIES, *VARIANTS, *POLICIES]
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"--agents: unknown {unknown}; expected one of {known}")
    instances, keys = parse_ints(args.instances_list), parse_ints(args.keys)
    for seed in parse_ints(args.seeds):
        entry = _load(path, args.rounds).get("seeds", {}).get(str(seed), {})
        todo = [i for i in instances if str(i) not in entry.get("features", {})]
        if todo:
            env, _, marginal, k_sim = build(seed, "LinTS", args.rounds)
            feats = {str(i): instance_features(env, marginal, jax.random.fold_in(k_sim, i)) for i in todo}
            _save(path, args.rounds, seed, "features", lambda old, feats=feats: {**(old or {}), **feats})
        for name in agents:
            res = run_seed(seed, name, instances, keys, args.rounds, args.chunk)

            def merged(old, res=res):
                old = old or {"runs": [], "seconds": 0.0}
                done = {(r["instance"], r["key"]) for r in res["runs"]}
                runs = [r for r in old["runs"] if (r["instance"], r["key"]) not in done] + res["runs"]
                return {"runs": runs, "seconds": round(old["seconds"] + res["seconds"], 1)}

            _save(path, args.rounds, seed, name, merged)


CALIBRATION_ROUNDS = (25, 50, 100, 250, 500, 1000)


def calibration_seed(seed: int, instances: list[int], num_draws: int, chunk: int) -> dict:
    """Calibration of dTS's posterior of u = f_1(psi_1) against the instance's true u, at CALIBRATION_ROUNDS.

    With an exact posterior the truth is exchangeable with the posterior's draws (for any policy
    that acts on the observed data alone), so p = the posterior probability of a draw lying
    farther (Mahalanobis distance under the draws' mean and covariance) than the truth is
    Uniform(0, 1): mean 0.5, P(p < 0.1) = 0.1. An over-confident posterior gives small p.
    Runs are (instance i, its own act key): the prior-seed study's runs, for the first rounds.
    """
    rounds = max(CALIBRATION_ROUNDS)
    env, agent, _, k_sim = build(seed, "default", rounds)
    k_build, _ = jax.random.split(jax.random.PRNGKey(seed))
    _, prior = paper_environment(jax.random.split(k_build)[0], "mlp", "linear", K, *SIZES[K])
    one = core.prior_conditionals(prior, 1).theta
    at = jnp.asarray(CALIBRATION_ROUNDS) - 1

    def one_run(run_key):
        _, regret, lat = run_rounds(run_key, env, agent, rounds, record=lambda st: st.latents)
        psi_true, _ = core.sample(jax.random.split(run_key, 4)[0], prior, core.prior_conditionals(prior, K))
        u_true = prior.link1(psi_true[-1])

        def p_value(t, k):
            post = core.DTSPosterior(jax.tree.map(lambda x: x[t], lat), one)
            psi, _ = core.sample(k, prior, post, (num_draws,))
            u = jax.vmap(prior.link1)(psi[:, -1])
            mean = u.mean(0)
            prec = jnp.linalg.inv(jnp.cov(u.T))
            dist = jnp.einsum("sd,de,se->s", u - mean, prec, u - mean)
            d_true = (u_true - mean) @ prec @ (u_true - mean)
            return jnp.mean(dist >= d_true), d_true

        ks = jax.random.split(jax.random.fold_in(run_key, 7), at.size)
        return jax.vmap(p_value)(at, ks)

    fn = jax.jit(jax.vmap(one_run))
    keys = jnp.stack([jax.random.fold_in(k_sim, i) for i in instances])
    t0 = time.perf_counter()
    res = [fn(keys[c : c + chunk]) for c in range(0, len(instances), chunk)]
    p = np.concatenate([np.asarray(r[0]) for r in res])
    d2 = np.concatenate([np.asarray(r[1]) for r in res])
    print(f"seed {seed} calibration: {len(instances)} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "instances": instances,
        "rounds": list(CALIBRATION_ROUNDS),
        "draws": num_draws,
        "p": [[round(float(v), 4) for v in row] for row in p],
        "mahalanobis2": [[round(float(v), 3) for v in row] for row in d2],
    }


def cmd_calibration(args) -> None:
    path = Path(args.json)
    for seed in parse_ints(args.seeds):
        res = calibration_seed(seed, parse_ints(args.instances_list), args.draws, args.chunk)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("seeds", {}).setdefault(str(seed), {})
        data["seeds"][str(seed)]["calibration"] = res
        save_json(path, data)


def _load(path: Path, rounds: int) -> dict:
    data = json.loads(path.read_text()) if path.exists() else {}
    if data.get("rounds", rounds) != rounds:
        raise ValueError(f"--rounds: {path} holds runs of {data['rounds']} rounds, got {rounds}")
    return data


def _save(path: Path, rounds: int, seed: int, name: str, update) -> None:
    """Re-read the file (another process may have written it), set seeds[seed][name] = update(old), save."""
    data = _load(path, rounds)
    data.update(preset=PRESET, rounds=rounds, checkpoints=checkpoints(rounds))
    entry = data.setdefault("seeds", {}).setdefault(str(seed), {})
    entry[name] = update(entry.get(name))
    save_json(path, data)


def final_matrix(data: dict, seed: str, name: str, prior_seeds: dict) -> tuple[np.ndarray, list[int]]:
    """(I, J) final regrets of ``name`` on ``seed`` (rows: instances, columns: agent keys, sorted).

    An (instance, key 0) cell missing from spread.json is run i of prior_seeds.json (the same run).
    The grid is every instance that has more than one agent key, and the keys they all have.
    """
    cells = key_cells(data, seed, name, prior_seeds)
    multi = sorted({i for i, j in cells if j > 0})
    keys = sorted(set.intersection(*({j for i2, j in cells if i2 == i} for i in multi))) if multi else []
    if len(keys) < 2:
        raise ValueError(f"seed {seed} {name}: no instance has two agent keys")
    return np.array([[cells[(i, j)] for j in keys] for i in multi]), multi


def has_grid(data: dict, seed: str, name: str, prior_seeds: dict) -> bool:
    """Whether ``name`` has an instances x keys grid on ``seed`` (some instance with two agent keys)."""
    try:
        final_matrix(data, seed, name, prior_seeds)
    except ValueError:
        return False
    return True


def ten_runs(data: dict, prior_seeds: dict) -> dict:
    """Per prior seed, the runs of the prior-seed target (instances 0..9, each with its own act key).

    dTS's and LinTS's final regrets are prior_seeds.json's; the oracle's (LinTS told psi_1) are this
    study's key-0 runs of the same instances; LinTS's sd over all its key-0 runs here (up to 100
    independent runs) is the population sd the 10-run sd estimates.
    """
    out = {}
    for seed, res in sorted(prior_seeds.get("seeds", {}).items(), key=lambda kv: int(kv[0])):
        entry = data.get("seeds", {}).get(seed, {})
        if "default" not in res or "LinTS" not in res or ORACLE not in entry:
            continue
        dts_runs, lin_runs = np.asarray(res["default"]["final_regrets"]), np.asarray(res["LinTS"]["final_regrets"])
        cells = key_cells(data, seed, ORACLE, {})
        if any((i, 0) not in cells for i in range(len(dts_runs))):
            continue
        oracle = np.array([cells[(i, 0)] for i in range(len(dts_runs))])
        lin_all = np.array([v for (i, j), v in sorted(key_cells(data, seed, "LinTS", {}).items()) if j == 0])
        sd = {k: float(np.std(v, ddof=1)) for k, v in (("dTS", dts_runs), ("LinTS", lin_runs), ("oracle", oracle))}
        out[seed] = {
            "runs": int(dts_runs.size),
            "mean": {"dTS": float(dts_runs.mean()), "LinTS": float(lin_runs.mean()), "oracle": float(oracle.mean())},
            "sd": sd,
            "LinTS_sd_all": float(np.std(lin_all, ddof=1)),
            "LinTS_runs_all": int(lin_all.size),
            "ratio_dTS": sd["dTS"] / sd["LinTS"],
            "ratio_oracle": sd["oracle"] / sd["LinTS"],
            "ratio_dTS_all": sd["dTS"] / float(np.std(lin_all, ddof=1)),
            "ratio_oracle_all": sd["oracle"] / float(np.std(lin_all, ddof=1)),
        }
    return out


def policy_runs(data: dict, prior_seeds: dict, name: str) -> dict:
    """Per seed, ``name``'s key-0 runs of instances 0..9 against dTS's default and LinTS on the same runs."""
    out = {}
    for seed, res in sorted(prior_seeds.get("seeds", {}).items(), key=lambda kv: int(kv[0])):
        if name not in data.get("seeds", {}).get(seed, {}) or "default" not in res or "LinTS" not in res:
            continue
        base, lin = np.asarray(res["default"]["final_regrets"]), np.asarray(res["LinTS"]["final_regrets"])
        cells = key_cells(data, seed, name, {})
        if any((i, 0) not in cells for i in range(base.size)):
            continue
        x = np.array([cells[(i, 0)] for i in range(base.size)])
        diff = x - base
        out[seed] = {
            "mean": float(x.mean()),
            "diff": float(diff.mean()),
            "diff_se": float(diff.std(ddof=1) / np.sqrt(diff.size)),
            "lin_ratio": float(lin.mean() / x.mean()),
            "lin_diff": float(np.mean(x - lin)),
            "sd": float(np.std(x, ddof=1)),
            "sd_ratio": float(np.std(x, ddof=1) / np.std(lin, ddof=1)),
        }
    return out


def key_cells(data: dict, seed: str, name: str, prior_seeds: dict, checkpoint: int = -1) -> dict:
    """{(instance, key): cumulative regret at a checkpoint}; key-0 finals missing here from prior_seeds.json."""
    runs = data["seeds"][seed].get(name, {}).get("runs", [])
    cells = {(r["instance"], r["key"]): r["checkpoints"][checkpoint] for r in runs}
    if checkpoint == -1:
        own = prior_seeds.get("seeds", {}).get(seed, {}).get(name, {}).get("final_regrets", [])
        for i, v in enumerate(own):
            cells.setdefault((i, 0), v)
    return cells


def anova(x: np.ndarray) -> dict:
    """One-way random-effects ANOVA of an (I, J) table: instance and agent-key variance components."""
    num_i, num_j = x.shape
    within = float(np.mean(np.var(x, axis=1, ddof=1)))  # agent's own sampling: E Var(R | instance)
    between = float(num_j * np.var(x.mean(1), ddof=1))  # J Var(instance means)
    inst = max(0.0, (between - within) / num_j)
    return {
        "instances": num_i,
        "keys": num_j,
        "mean": float(x.mean()),
        "sd_runs": float(np.std(x[:, 0], ddof=1)),  # one key per instance: the prior-seed study's sd
        "sd_agent": float(np.sqrt(within)),
        "sd_instance": float(np.sqrt(inst)),
        "sd_total": float(np.sqrt(within + inst)),
        "agent_share": float(within / (within + inst)) if within + inst > 0 else float("nan"),
        "df_within": num_i * (num_j - 1),
        "ms_within": within,
        "ms_between": between,
    }


def _grid_at(cells: dict, instances: list[int]) -> np.ndarray | None:
    """(I, J) table of ``cells`` over ``instances`` and the keys they all have (None if fewer than 2)."""
    keys = sorted(set.intersection(*({j for i2, j in cells if i2 == i} for i in instances)))
    return np.array([[cells[(i, j)] for j in keys] for i in instances]) if len(keys) >= 2 else None


def summarise(data: dict, prior_seeds: dict) -> dict:
    """Per seed: each agent's ANOVA, instance-mean correlations, features, time course; dTS's ratios."""
    from scipy import stats

    out = {}
    for seed, entry in sorted(data["seeds"].items(), key=lambda kv: int(kv[0])):
        names = [n for n in entry if n not in ("features", "calibration") and has_grid(data, seed, n, prior_seeds)]
        if "LinTS" not in names or len(names) < 2:
            continue
        lin, inst_lin = final_matrix(data, seed, "LinTS", {})
        lin_cells = key_cells(data, seed, "LinTS", {})
        lin_key0 = np.array([v for (i, j), v in sorted(lin_cells.items()) if j == 0])
        own = prior_seeds.get("seeds", {}).get(seed, {}).get("LinTS", {}).get("final_regrets", [])
        row = {
            "LinTS_independent_runs": {"runs": int(lin_key0.size), "sd": float(np.std(lin_key0, ddof=1))},
            "LinTS_key0_vs_prior_seeds": max(
                (abs(lin_cells[(i, 0)] - v) for i, v in enumerate(own) if (i, 0) in lin_cells), default=None
            ),
        }
        feats = entry.get("features", {})
        fnames = list(next(iter(feats.values()))) if feats else []
        for name in names:
            x, inst = final_matrix(data, seed, name, prior_seeds)
            a = anova(x)
            lin_means = lin.mean(1)[[inst_lin.index(i) for i in inst]]
            a["corr_instance_means_LinTS"] = float(np.corrcoef(x.mean(1), lin_means)[0, 1])
            a["feature_corr"] = {
                f: float(np.corrcoef(x.mean(1), [feats[str(i)][f] for i in inst])[0, 1]) for f in fnames
            }
            course = []  # agent and instance sd at each checkpoint (this study's runs only)
            for c, rnd in enumerate(data["checkpoints"]):
                m = _grid_at(key_cells(data, seed, name, {}, c), inst)
                if m is not None:
                    course.append({"round": rnd, **{k: a_ for k, a_ in anova(m).items() if k in COURSE_KEYS}})
            a["course"] = course
            row[name] = a
        for name in names:
            if name in ("LinTS", ORACLE):
                continue
            a = row[name]  # dTS against LinTS and the oracle
            for ref in ("LinTS", ORACLE):
                if ref not in row:
                    continue
                r = row[ref]
                f_stat = a["ms_within"] / r["ms_within"]
                lo, hi = stats.f.ppf([0.025, 0.975], a["df_within"], r["df_within"])
                a[f"sd_agent_ratio_{ref}"] = float(np.sqrt(f_stat))
                a[f"sd_agent_ratio_{ref}_ci95"] = [float(np.sqrt(f_stat / hi)), float(np.sqrt(f_stat / lo))]
                a[f"sd_total_ratio_{ref}"] = a["sd_total"] / r["sd_total"]
            a["sd_total_ratio_LinTS_independent"] = a["sd_total"] / row["LinTS_independent_runs"]["sd"]
            base = prior_seeds.get("seeds", {}).get(seed, {}).get("default", {}).get("final_regrets", [])
            own = key_cells(data, seed, name, prior_seeds)
            pairs = [(own[(i, 0)], v) for i, v in enumerate(base) if (i, 0) in own]
            if name != "default" and len(pairs) >= 2:  # the same runs (instance, act key 0) as the default's
                diff = np.array([p - q for p, q in pairs])
                a["paired_vs_default"] = {
                    "runs": len(pairs),
                    "mean": float(diff.mean()),
                    "se": float(diff.std(ddof=1) / np.sqrt(len(pairs))),
                    "sd_runs": float(np.std([p for p, _ in pairs], ddof=1)),
                }
        out[seed] = row
    return out


COURSE_KEYS = ("mean", "sd_agent", "sd_instance", "keys")
AGENT_LABEL = {
    "LinTS": "LinTS",
    ORACLE: "LinTS told psi_1",
    "dts-bayes-ucb": "Bayes-UCB on dTS's posterior",
    "dts-bayes-ucb-gaussian": "Bayes-UCB (moment-matched Gaussian) on dTS's posterior",
    "dts-ucb": "UCB on dTS's posterior",
    "dts-optimistic-ts": "optimistic TS on dTS's posterior",
    f"{ORACLE}-bayes_ucb": "Bayes-UCB told psi_1",
    f"{ORACLE}-ucb": "UCB told psi_1",
    f"{ORACLE}-optimistic_ts": "optimistic TS told psi_1",
}
#: Paired independent runs per seed (key 0, instances 0..n-1) a name needs to enter the attainability table.
MIN_RUNS = 40
#: Resamples of 10 paired runs per seed.
RESAMPLES = 20_000


def independent_runs(data: dict, seed: str, name: str) -> np.ndarray:
    """Final regrets of ``name``'s key-0 runs of instances 0, 1, ... on ``seed``, up to the first missing one."""
    cells = key_cells(data, seed, name, {})
    out = []
    while (len(out), 0) in cells:
        out.append(cells[(len(out), 0)])
    return np.array(out)


def attainability(data: dict, name: str, runs: int = 10) -> dict:
    """How often ``runs`` paired runs give sd(name) <= 2 sd(LinTS), per seed and on every seed at once.

    From each seed's n >= MIN_RUNS independent paired runs (instance i: the same environment for
    both agents; n = the runs both have): "resampled" draws ``runs`` of the n instances without
    replacement RESAMPLES times (numpy generator seeded 0) and counts the draws whose sd ratio is at
    most 2; "F" is the normal-theory value P(F(runs - 1, runs - 1) <= 4 / r^2) with r the ratio of
    the n-run sds (independent samples). The probability on every seed is the product over seeds
    (the seeds' runs are independent).
    """
    from scipy import stats

    rng = np.random.default_rng(0)
    out = {}
    for seed in sorted(data.get("seeds", {}), key=int):
        lin, x = independent_runs(data, seed, "LinTS"), independent_runs(data, seed, name)
        n = min(lin.size, x.size)
        if n < MIN_RUNS:
            continue
        lin, x = lin[:n], x[:n]
        idx = np.argsort(rng.random((RESAMPLES, n)), 1)[:, :runs]
        ratio = np.std(x[idx], axis=1, ddof=1) / np.std(lin[idx], axis=1, ddof=1)
        r = float(np.std(x, ddof=1) / np.std(lin, ddof=1))
        out[seed] = {
            "runs": n,
            "mean": float(x.mean()),
            "sd": float(np.std(x, ddof=1)),
            "sd_LinTS": float(np.std(lin, ddof=1)),
            "ratio": r,
            "p_resampled": float(np.mean(ratio <= 2)),
            "p_F": float(stats.f.cdf(4 / r**2, runs - 1, runs - 1)),
        }
    return out


def pooled(summary: dict, name: str) -> dict:
    """Variance components pooled over seeds (mean of the per-seed mean squares, as equal-size cells)."""
    rows = [r for r in summary.values() if name in r]
    within = float(np.mean([r[name]["ms_within"] for r in rows]))
    inst = float(np.mean([r[name]["sd_instance"] ** 2 for r in rows]))
    return {
        "seeds": len(rows),
        "mean": float(np.mean([r[name]["mean"] for r in rows])),
        "sd_agent": float(np.sqrt(within)),
        "sd_instance": float(np.sqrt(inst)),
        "sd_total": float(np.sqrt(within + inst)),
        "agent_share": within / (within + inst),
    }


def render(data: dict, prior_seeds: dict) -> str:
    """The docs block: per seed and agent the variance split, the ratios, the pooled numbers, the time course."""
    summary = summarise(data, prior_seeds)
    lines = [BEGIN, ""]
    dts_names = sorted({n for r in summary.values() for n in r if n in VARIANTS}) + sorted(
        {n for r in summary.values() for n in r if n in POLICIES}
    )
    order = ["LinTS", ORACLE, *dts_names]
    lines += [
        f"Final regret (round {data['rounds']}) split by a one-way random-effects ANOVA over instances"
        ' (theta, contexts, reward noise) x agent keys (the act draws alone): "sd agent" = the sd across'
        ' agent keys on a fixed instance, "sd instance" = the sd of the instance\'s expected regret,'
        ' "sd total" = their sum in quadrature (the sd across independent runs they imply), "agent share"'
        ' = the agent\'s part of the variance. "sd, independent runs" is the plain sd of key 0 over every'
        " instance run (the prior-seed study's own runs for dTS).",
        "",
        "| seed | agent | instances x keys | mean | sd, independent runs (runs) | sd agent | sd instance |"
        " sd total | agent share | corr. of instance means with LinTS's |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, row in summary.items():
        for name in order:
            if name not in row:
                continue
            a = row[name]
            label = AGENT_LABEL.get(name, f"dTS `{name}`")
            if name == "LinTS":
                ind = row["LinTS_independent_runs"]
                sd_runs, n_runs = ind["sd"], ind["runs"]
                corr = ""
            else:
                sd_runs, n_runs = a["sd_runs"], a["instances"]
                corr = f"{a['corr_instance_means_LinTS']:+.2f}"
            lines.append(
                f"| {seed} | {label} | {a['instances']} x {a['keys']} | {a['mean']:,.0f} | {sd_runs:,.0f} ({n_runs}) |"
                f" {a['sd_agent']:,.0f} | {a['sd_instance']:,.0f} | {a['sd_total']:,.0f} | {a['agent_share']:.2f} |"
                f" {corr} |"
            )
    lines.append("")
    for name in dts_names:
        for seed, row in summary.items():
            if name not in row:
                continue
            a = row[name]
            parts = []
            for ref in ("LinTS", ORACLE):
                if f"sd_agent_ratio_{ref}" in a:
                    lo, hi = a[f"sd_agent_ratio_{ref}_ci95"]
                    parts.append(
                        f"sd agent / {AGENT_LABEL[ref]}'s **{a[f'sd_agent_ratio_{ref}']:.2f}** (95% {lo:.2f} .. {hi:.2f},"
                        f" F on {a['df_within']} and {row[ref]['df_within']} df), sd total / {AGENT_LABEL[ref]}'s"
                        f" {a[f'sd_total_ratio_{ref}']:.2f}"
                    )
            feats = ", ".join(f"{f} {v:+.2f}" for f, v in a["feature_corr"].items())
            lin_feats = ", ".join(f"{v:+.2f}" for v in row["LinTS"]["feature_corr"].values())
            lines.append(
                f"- Seed {seed}, {AGENT_LABEL.get(name, 'dTS `' + name + '`')}: "
                + "; ".join(parts)
                + f"; sd total / LinTS's sd over its {row['LinTS_independent_runs']['runs']} independent runs"
                f" {a['sd_total_ratio_LinTS_independent']:.2f}. Correlation of the instance means with the"
                f" instance's features: {feats} (LinTS's: {lin_feats})."
                + (
                    f" On the prior-seed runs (key 0, {a['paired_vs_default']['runs']} runs): minus dTS's default"
                    f" {a['paired_vs_default']['mean']:+,.0f} +- {a['paired_vs_default']['se']:,.0f} (paired),"
                    f" sd {a['paired_vs_default']['sd_runs']:,.0f} against LinTS's"
                    f" {row['LinTS']['sd_runs']:,.0f} on the same runs."
                    if "paired_vs_default" in a
                    else ""
                )
            )
    lines.append("")
    for name in order:
        if not any(name in r for r in summary.values()):
            continue
        p = pooled(summary, name)
        lines.append(
            f"- Pooled over {p['seeds']} seeds, {AGENT_LABEL.get(name, 'dTS `' + name + '`')}: mean {p['mean']:,.0f},"
            f" sd agent {p['sd_agent']:,.0f}, sd instance {p['sd_instance']:,.0f}, sd total {p['sd_total']:,.0f}"
            f" (agent share {p['agent_share']:.2f})."
        )
    lines.append("")
    seeds = [s for s, r in summary.items() if any(n in r and r[n]["course"] for n in dts_names)]
    # the agents with a time course on every one of those seeds (an agent run on fewer seeds is left out)
    order = [n for n in order if all(n in summary[s] and summary[s][n]["course"] for s in seeds)]
    if seeds:
        head = " | ".join(f"{AGENT_LABEL.get(n, 'dTS')}: mean, sd agent, sd instance" for n in order)
        lines += [
            "Where in time the spread accrues (cumulative regret at each round; this study's own agent keys, so"
            " dTS's key 0 is not in it), averaged in variance over seeds " + ", ".join(seeds) + ":",
            "",
            f"| round | {head} |",
            "|---|" + "---|" * len(order),
        ]
        for c, rnd in enumerate(data["checkpoints"]):
            cells = []
            for n in order:
                cs = [summary[s][n]["course"][c] for s in seeds if n in summary[s] and len(summary[s][n]["course"]) > c]
                if not cs:
                    cells.append("")
                    continue
                m = np.mean([x["mean"] for x in cs])
                sa = np.sqrt(np.mean([x["sd_agent"] ** 2 for x in cs]))
                si = np.sqrt(np.mean([x["sd_instance"] ** 2 for x in cs]))
                cells.append(f"{m:,.0f}, {sa:,.0f}, {si:,.0f}")
            lines.append(f"| {rnd} | " + " | ".join(cells) + " |")
        lines.append("")
    shares = [f["theta_within_share"] for e in data["seeds"].values() for f in e.get("features", {}).values()]
    if shares:
        lines += [
            f"An instance's K thetas spread over {100 * np.mean(shares):.1f}% (mean over {len(shares)} instances,"
            f" range {100 * min(shares):.1f} .. {100 * max(shares):.1f}%) of the total variance of the theta marginal"
            " LinTS uses: the shared latent makes the rest.",
            "",
        ]
    ten = ten_runs(data, prior_seeds)
    if ten:
        lines += [
            "The prior-seed target's own runs (instances 0..9 with their own act keys: dTS's and LinTS's from"
            " prior_seeds.json, LinTS told psi_1 on the same instances and keys), and LinTS's sd over all its"
            " independent runs here:",
            "",
            "| seed | mean dTS / LinTS told psi_1 / LinTS | sd dTS | sd LinTS told psi_1 | sd LinTS (10 runs) |"
            " sd LinTS (runs) | sd ratio dTS / LinTS (10 runs) | told psi_1 / LinTS (10 runs) |"
            " dTS / LinTS (all runs) | told psi_1 / LinTS (all runs) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for seed, t in ten.items():
            m, sd = t["mean"], t["sd"]
            lines.append(
                f"| {seed} | {m['dTS']:,.0f} / {m['oracle']:,.0f} / {m['LinTS']:,.0f} | {sd['dTS']:,.0f} |"
                f" {sd['oracle']:,.0f} | {sd['LinTS']:,.0f} | {t['LinTS_sd_all']:,.0f} ({t['LinTS_runs_all']}) |"
                f" {t['ratio_dTS']:.1f} | {t['ratio_oracle']:.1f} | {t['ratio_dTS_all']:.1f} | {t['ratio_oracle_all']:.1f} |"
            )
        n = len(ten)
        ok = {k: sum(t[k] <= 2 for t in ten.values()) for k in ("ratio_dTS", "ratio_oracle", "ratio_dTS_all")}
        pool = {k: float(np.sqrt(np.mean([t["sd"][k] ** 2 for t in ten.values()]))) for k in ("dTS", "oracle", "LinTS")}
        pool_all = float(np.sqrt(np.mean([t["LinTS_sd_all"] ** 2 for t in ten.values()])))
        lines += [
            "",
            f"Ratio <= 2 on {ok['ratio_dTS']} / {n} seeds for dTS and on {ok['ratio_oracle']} / {n} for LinTS told"
            f" psi_1 (10 runs each, against LinTS's 10 runs); dTS against LinTS's sd over all its runs: {ok['ratio_dTS_all']}"
            f" / {n}. Pooled sd (root mean square over seeds): dTS {pool['dTS']:,.0f}, LinTS told psi_1"
            f" {pool['oracle']:,.0f}, LinTS {pool['LinTS']:,.0f} (10 runs), {pool_all:,.0f} (all runs).",
            "",
        ]
    for name in POLICIES:
        rows = policy_runs(data, prior_seeds, name)
        if not rows:
            continue
        label = AGENT_LABEL.get(name, name)
        lines += [
            f"{label} on the prior-seed target's runs (instances 0..9, act key 0; paired with dTS's and LinTS's"
            " runs of prior_seeds.json):",
            "",
            f"| seed | {label} | minus dTS (paired) | LinTS / it | sd | sd / LinTS's sd (10 runs) |",
            "|---|---|---|---|---|---|",
        ]
        for seed, r in rows.items():
            lines.append(
                f"| {seed} | {r['mean']:,.0f} | {r['diff']:+,.0f} +- {r['diff_se']:,.0f} | {r['lin_ratio']:.2f} |"
                f" {r['sd']:,.0f} | {r['sd_ratio']:.2f} |"
            )
        n = len(rows)
        geo = float(np.exp(np.mean([np.log(r["lin_ratio"]) for r in rows.values()])))
        below = sum(r["diff"] < 0 for r in rows.values())
        sd_ok = sum(r["sd_ratio"] <= 2 for r in rows.values())
        below_lin = sum(r["lin_diff"] < 0 for r in rows.values())
        lines += [
            "",
            f"Over {n} seeds: below dTS's default on {below} / {n} and below LinTS on {below_lin} / {n} (paired"
            f" means), geometric mean LinTS / it {geo:.2f}, sd ratio <= 2 on {sd_ok} / {n}.",
            "",
        ]
    lines += render_attainability(data)
    cal = {
        s: e["calibration"] for s, e in sorted(data["seeds"].items(), key=lambda kv: int(kv[0])) if "calibration" in e
    }
    if cal:
        first = next(iter(cal.values()))
        lines += [
            "Calibration of dTS's posterior of u = f_1(psi_1) in the first rounds (`spread.py calibration`;"
            f" {first['draws']} posterior draws per run and round): p = the posterior probability of a draw"
            " farther from the draws' mean (Mahalanobis) than the true u, Uniform(0, 1) for an exact posterior"
            " (mean 0.50, P(p < 0.1) = 0.10); an over-confident posterior gives small p:",
            "",
            "| seed | runs | " + " | ".join(f"round {r}: mean p, P(p < 0.1)" for r in first["rounds"]) + " |",
            "|---|---|" + "---|" * len(first["rounds"]),
        ]
        for seed, c in cal.items():
            p = np.asarray(c["p"])
            cells = [f"{p[:, k].mean():.2f}, {np.mean(p[:, k] < 0.1):.2f}" for k in range(p.shape[1])]
            lines.append(f"| {seed} | {p.shape[0]} | " + " | ".join(cells) + " |")
        allp = np.concatenate([np.asarray(c["p"]) for c in cal.values()])
        lines += [
            "",
            f"Over all {allp.size} (run, round) pairs: mean p {allp.mean():.2f}, P(p < 0.1) = {np.mean(allp < 0.1):.2f}.",
            "",
        ]
    checks = {s: r["LinTS_key0_vs_prior_seeds"] for s, r in summary.items()}
    lines += [
        "LinTS's key-0 runs are prior_seeds.json's runs (largest |difference| per seed: "
        + ", ".join(f"{s}: {v:.2f}" if v is not None else f"{s}: not run" for s, v in checks.items())
        + ").",
        "",
        END,
    ]
    return "\n".join(lines)


def render_attainability(data: dict) -> list[str]:
    """Markdown: the reference's policies over RUNS_ALL runs, and how attainable the 10-run sd target is."""
    names = [ORACLE, *ORACLE_POLICIES, *POLICIES]
    table = {n: attainability(data, n) for n in names}
    table = {n: t for n, t in table.items() if t}
    if not table:
        return []
    lines = [
        "The exact-posterior reference (LinTS told psi_1) under other policies, and policies on dTS's posterior,"
        f" over n >= {MIN_RUNS} independent runs per seed (instances 0..n-1, act key 0; n in the second table):"
        " mean and sd of the final regret, and the sd against LinTS's on the same n runs:",
        "",
        "| seed | LinTS: mean, sd (runs) | " + " | ".join(f"{AGENT_LABEL[n]}: mean, sd, ratio" for n in table) + " |",
        "|---|---|" + "---|" * len(table),
    ]
    seeds = sorted(set().union(*(t.keys() for t in table.values())), key=int)
    for seed in seeds:
        cells = [
            f"{t[seed]['mean']:,.0f}, {t[seed]['sd']:,.0f}, {t[seed]['ratio']:.2f}" if seed in t else ""
            for t in table.values()
        ]
        lin = independent_runs(data, seed, "LinTS")
        lin_cell = f"{lin.mean():,.0f}, {np.std(lin, ddof=1):,.0f} ({lin.size})"
        lines.append(f"| {seed} | {lin_cell} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "How attainable the target's sd item is: the probability that 10 paired runs give an sd ratio <= 2"
        f" (resampled: 10 of the n paired runs, {RESAMPLES:,} times; F: normal theory from the n-run sds),"
        " per seed (n runs in brackets) and on all the seeds measured at once (the product):",
        "",
        "| agent | seeds | " + " | ".join(f"seed {s}" for s in seeds) + " | all (resampled) | all (F) |",
        "|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for n, t in table.items():
        cells = [f"{t[s]['p_resampled']:.2f} ({t[s]['runs']})" if s in t else "" for s in seeds]
        p_all = float(np.prod([r["p_resampled"] for r in t.values()]))
        f_all = float(np.prod([r["p_F"] for r in t.values()]))
        lines.append(f"| {AGENT_LABEL[n]} | {len(t)} | " + " | ".join(cells) + f" | {p_all:.3f} | {f_all:.3f} |")
    lines.append("")
    return lines


def doc(check: bool) -> int:
    """Rewrite (or with ``check``, compare) the marked block of docs/defaults.md."""
    data = json.loads(RESULTS.read_text())
    prior_seeds = json.loads(PRIOR_SEEDS.read_text())
    block = render(data, prior_seeds)
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC}: expected the markers {BEGIN!r} and {END!r}")
    new = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    if check:
        return int(new != text)
    DOC.write_text(new)
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="simulate instances x agent keys")
    r.add_argument("--seeds", default="1,4,9")
    r.add_argument("--instances", dest="instances_list", default="0-9", help="instance (run) indices, e.g. 0-9")
    r.add_argument("--keys", default="1-2", help="agent key indices (0: the run's own act key)")
    r.add_argument("--agents", default="default")
    r.add_argument("--rounds", type=int, default=5000)
    r.add_argument("--chunk", type=int, default=10)
    r.add_argument("--json", default=str(RESULTS))
    c = sub.add_parser("calibration", help="dTS's posterior of f_1(psi_1) against the truth in the first rounds")
    c.add_argument("--seeds", default="9")
    c.add_argument("--instances", dest="instances_list", default="0-9")
    c.add_argument("--draws", type=int, default=1000)
    c.add_argument("--chunk", type=int, default=10)
    c.add_argument("--json", default=str(RESULTS))
    d = sub.add_parser("doc", help="rewrite the marked block of docs/defaults.md from the JSON")
    d.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "run":
        cmd_run(args)
        return 0
    if args.cmd == "calibration":
        cmd_calibration(args)
        return 0
    return doc(args.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
