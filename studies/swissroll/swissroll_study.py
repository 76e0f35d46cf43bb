"""The Swiss-roll regret study (the paper's Figure 3) and the linearisation table.

    PYTHONPATH=. python studies/swissroll/swissroll_study.py ratios          # 12 presets, dTS (identity) vs LinTS
    PYTHONPATH=. python studies/swissroll/swissroll_study.py linearisations  # regret per linearisation
    PYTHONPATH=. python studies/swissroll/swissroll_study.py action_cov      # S_1 sensitivity (depth 40)
    PYTHONPATH=. python studies/swissroll/swissroll_study.py control         # one roll point per run (dTS's structure)
    PYTHONPATH=. python studies/swissroll/swissroll_study.py pooling         # Gaussian hierarchy, no diffusion
    PYTHONPATH=. python studies/swissroll/swissroll_study.py tables          # print the tables of docs/results.md

Each finished preset is written to studies/swissroll/results/<name>.json at once, so an interrupted
run resumes where it stopped. Sizes: --rounds, --runs, --actions (defaults: dts_ppl.experiments.swissroll.STUDY).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dts_ppl.bandits.simulation import regret_ratio
from dts_ppl.experiments.swissroll import PAPER_RATIOS, STUDY, STUDY_PRIORS
from studies.common import run_swissroll_preset

RESULTS = Path(__file__).resolve().parent / "results"


def _summary(out, extra=None):
    res = out.pop("results")
    out["agents"] = {
        k: dict(final_mean=r.final_mean, final_se=r.final_se, seconds=r.seconds, curve_mean=r.mean[::10].tolist())
        for k, r in res.items()
    }
    out.update(extra or {})
    return out


def ratios(args):
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.action_cov is None else f"@s1={args.action_cov}"
    for name in args.presets or STUDY_PRIORS:
        path = RESULTS / f"{name}{suffix}.json"
        if path.exists() and not args.force:
            print(f"{name}: done ({path.name})")
            continue
        t = time.time()
        s1 = None if args.action_cov is None else float(args.action_cov)
        out = run_swissroll_preset(
            name, args.actions, args.rounds, args.runs, linearisations=("identity",), progress=False, action_cov=s1
        )
        out = _summary(out, dict(wall_s=time.time() - t, command="studies/swissroll/swissroll_study.py ratios"))
        path.write_text(json.dumps(out, indent=1))
        a = out["agents"]
        print(
            f"{name}: LinTS {a['LinTS']['final_mean']:.1f} +- {a['LinTS']['final_se']:.1f}, dTS "
            f"{a['dTS (identity)']['final_mean']:.1f} +- {a['dTS (identity)']['final_se']:.1f}, ratio "
            f"{out['ratio']:.2f} +- {out['ratio_se']:.2f} ({time.time() - t:.0f}s)",
            flush=True,
        )


def linearisations(args):
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "linearisations-swissroll.json"
    if not path.exists() or args.force:
        t = time.time()
        out = run_swissroll_preset(
            "swissroll-depth-40",
            args.actions,
            args.rounds,
            args.runs,
            linearisations=("identity", "jacobian", "iterated"),
            progress=False,
        )
        path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
        print(f"swiss roll done ({time.time() - t:.0f}s)", flush=True)
    for name in FIGURE1_MLP:
        path = RESULTS / f"linearisations-{name}.json"
        if path.exists() and not args.force:
            continue
        t = time.time()
        runs = args.runs if FIGURE1_MLP[name][2] == 5 else max(args.runs // 2, 10)
        out = figure1_linearisations(name, args.rounds, runs)
        path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
        print(f"{name} done ({time.time() - t:.0f}s)", flush=True)


#: The nonlinear (MLP-diffusion) problems of the paper's Figure 1: (reward, K, d, active_dims, hidden).
FIGURE1_MLP = {
    "fig1-mlp-linear-d5": ("linear", 100, 5, (5, 2), 20),
    "fig1-mlp-logistic-d5": ("logistic", 100, 5, (5, 2), 20),
    "fig1-mlp-linear-d20": ("linear", 1000, 20, (20, 10, 5, 2), 60),
}


def figure1_linearisations(name, rounds, runs, seed=0):
    """Regret of dTS per linearisation and of LinTS / GLM-TS (prior marginal) on one MLP problem."""
    import jax

    from dts_ppl.agents import dts, lin_ts, theta_marginal
    from dts_ppl.bandits.simulation import simulate
    from dts_ppl.experiments.synthetic import paper_environment

    reward, K, d, active, hidden = FIGURE1_MLP[name]
    key = jax.random.PRNGKey(seed)
    k_env, k_marg, k_sim = jax.random.split(key, 3)
    env, prior = paper_environment(k_env, "mlp", reward, K, d, active, hidden)
    lik = env.likelihood
    agents = {
        ("GLM-TS" if reward == "logistic" else "LinTS"): lin_ts(theta_marginal(prior, k_marg), lik, K, history=rounds)
    }
    for lin in ("identity", "jacobian", "iterated"):
        agents[f"dTS ({lin})"] = dts(prior, lik, K, linearisation=lin, history=rounds)
    results = {k: simulate(k_sim, env, a, rounds, runs, progress=False) for k, a in agents.items()}
    return dict(
        preset=name,
        num_actions=K,
        dim=d,
        num_levels=len(active),
        hidden=hidden,
        reward=reward,
        num_rounds=rounds,
        num_runs=runs,
        seed=seed,
        results=results,
    )


def action_cov(args):
    """dTS (identity) vs LinTS on swissroll-depth-40 for several S_1 choices."""
    RESULTS.mkdir(exist_ok=True)
    for s1 in ("beta", 0.1, 0.3):
        path = RESULTS / f"s1-{s1}.json"
        if path.exists() and not args.force:
            continue
        t = time.time()
        out = run_swissroll_preset(
            "swissroll-depth-40", args.actions, args.rounds, args.runs, progress=False, action_cov=s1
        )
        path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
        print(f"S_1 = {s1}: ratio {out['ratio']:.2f} +- {out['ratio_se']:.2f} ({time.time() - t:.0f}s)", flush=True)


def control(args, spread=0.3):
    """Control: one roll point per run, theta_a = c + spread N(0, I); dTS with S_1 = spread^2 I."""
    import jax
    import jax.numpy as jnp

    from dts_ppl.agents import GaussianPrior, dts, lin_ts
    from dts_ppl.bandits.simulation import simulate
    from dts_ppl.core.likelihoods import Gaussian
    from dts_ppl.ddpm import action_covariance
    from dts_ppl.experiments.swissroll import swiss_roll, swiss_roll_prior, swissroll_environment

    path = RESULTS / "control-shared-point.json"
    if path.exists() and not args.force:
        return
    t = time.time()
    prior, meta = swiss_roll_prior(10_000, 40, progress=False)
    s1 = action_covariance(spread**2, np.asarray(meta["betas"]), np.asarray(meta["standardisation"]["scale"]), 2)
    prior = prior._replace(cov1=jnp.asarray(s1, prior.cov1.dtype))
    data = swiss_roll(10_000, seed=0)
    gauss = GaussianPrior(jnp.asarray(data.mean(0)), jnp.asarray(np.cov(data.T) + spread**2 * np.eye(2)))
    env = swissroll_environment(args.actions, shared_point_spread=spread)
    agents = {
        "LinTS": lin_ts(gauss, Gaussian(1.0), args.actions),
        "dTS (identity)": dts(prior, Gaussian(1.0), args.actions),
    }
    key = jax.random.PRNGKey(0)
    results = {k: simulate(key, env, a, args.rounds, args.runs, progress=False) for k, a in agents.items()}
    ratio, se = regret_ratio(results["LinTS"], results["dTS (identity)"])
    out = dict(
        preset="control-shared-point",
        spread=spread,
        num_actions=args.actions,
        num_rounds=args.rounds,
        num_runs=args.runs,
        results=results,
        ratio=ratio,
        ratio_se=se,
    )
    path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
    print(f"control: ratio {ratio:.2f} +- {se:.2f} ({time.time() - t:.0f}s)", flush=True)


def pooling(args, s1=0.1):
    """Control: a one-level Gaussian hierarchical prior (no diffusion) with the same S_1, on the i.i.d. roll."""
    import jax
    import jax.numpy as jnp

    from dts_ppl.agents import dts
    from dts_ppl.bandits.simulation import simulate
    from dts_ppl.core.likelihoods import Gaussian
    from dts_ppl.core.prior import DiffusionPrior
    from dts_ppl.experiments.swissroll import swiss_roll, swissroll_environment

    path = RESULTS / "control-gaussian-hierarchy.json"
    if path.exists() and not args.force:
        return
    t = time.time()
    data = swiss_roll(10_000, seed=0)
    scale2 = np.diag(data.std(0) ** 2)
    # psi ~ N(0, Cov(data)), theta_a | psi ~ N(psi + mean, s1 diag(scale^2)): dTS's S_1 = 0.1 I, no roll
    hier = DiffusionPrior.linear([jnp.eye(2)], [s1 * scale2, np.cov(data.T)], offsets=[jnp.asarray(data.mean(0))])
    env = swissroll_environment(args.actions)
    lin_path = RESULTS / "swissroll-depth-40@s1=0.1.json"
    key = jax.random.PRNGKey(0)
    res = simulate(key, env, dts(hier, Gaussian(1.0), args.actions), args.rounds, args.runs, progress=False)
    from dts_ppl.agents import GaussianPrior, lin_ts

    gauss = GaussianPrior(jnp.asarray(data.mean(0)), jnp.asarray(np.cov(data.T)))
    lints = simulate(key, env, lin_ts(gauss, Gaussian(1.0), args.actions), args.rounds, args.runs, progress=False)
    ratio, se = regret_ratio(lints, res)
    out = dict(
        preset="control-gaussian-hierarchy",
        s1=s1,
        num_actions=args.actions,
        num_rounds=args.rounds,
        num_runs=args.runs,
        results={"LinTS": lints, "dTS (identity)": res},
        ratio=ratio,
        ratio_se=se,
        compare_with=lin_path.name,
    )
    path.write_text(json.dumps(_summary(out, dict(wall_s=time.time() - t)), indent=1))
    print(f"gaussian hierarchy: ratio {ratio:.2f} +- {se:.2f} ({time.time() - t:.0f}s)", flush=True)


def tables(args):
    def row(name):
        path = RESULTS / f"{name}.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())

    for kind, title in (("pretrain", "pre-training size N (L = 40)"), ("depth", "depth L (N = 10^4)")):
        print(
            f"\n| {title} | LinTS regret | dTS regret | LinTS / dTS | dTS, S_1 = 0.1 I | LinTS / dTS, S_1 = 0.1 I "
            "| paper |"
        )
        print("|---|---|---|---|---|---|---|")
        for name in (n for n in STUDY_PRIORS if f"-{kind}-" in n):
            out = row(name)
            value = name.rsplit("-", 1)[1]
            if out is None:
                print(f"| {value} | not run | | | | | {PAPER_RATIOS[name]} |")
                continue
            a = out["agents"]
            lin, dts = a["LinTS"], a["dTS (identity)"]
            alt = row(f"{name}@s1=0.1")
            extra = "| |"
            if alt:
                d2 = alt["agents"]["dTS (identity)"]
                extra = (
                    f"{d2['final_mean']:.1f} +- {d2['final_se']:.1f} | {alt['ratio']:.2f} +- {alt['ratio_se']:.2f} |"
                )
            print(
                f"| {value} | {lin['final_mean']:.1f} +- {lin['final_se']:.1f} | {dts['final_mean']:.1f} +- "
                f"{dts['final_se']:.1f} | {out['ratio']:.2f} +- {out['ratio_se']:.2f} | {extra} {PAPER_RATIOS[name]} |"
            )
    some = next((row(n) for n in STUDY_PRIORS if row(n)), None)
    if some:
        print(
            f"\nK = {some['num_actions']}, n = {some['num_rounds']} rounds, {some['num_runs']} runs, "
            f"Gaussian rewards sd {some['noise']}"
        )
    print("\n| problem | K, d, L, n, runs | LinTS (GLM-TS) | dTS identity | dTS jacobian | dTS iterated |")
    print("|---|---|---|---|---|---|")
    for name in ["swissroll", *FIGURE1_MLP]:
        out = row(f"linearisations-{name}")
        if out is None:
            continue
        a = out["agents"]
        cells = [f"{v['final_mean']:.1f} +- {v['final_se']:.1f}" for v in a.values()]
        size = f"{out['num_actions']}, {out.get('dim', 2)}, {out['num_levels']}, {out['num_rounds']}, {out['num_runs']}"
        print(f"| {out['preset']} | {size} | {' | '.join(cells)} |")
    print("\n| S_1 (standardised units) | LinTS regret | dTS regret | LinTS / dTS |")
    print("|---|---|---|---|")
    for s1, name in (
        ("beta_1 I", "s1-beta"),
        ("0.1 I", "s1-0.1"),
        ("0.3 I", "s1-0.3"),
        ("I (default)", "swissroll-depth-40"),
    ):
        out = row(name)
        if out is None:
            continue
        a = out["agents"]
        lin, dts = a["LinTS"], a["dTS (identity)"]
        print(
            f"| {s1} | {lin['final_mean']:.1f} +- {lin['final_se']:.1f} | {dts['final_mean']:.1f} +- "
            f"{dts['final_se']:.1f} | {out['ratio']:.2f} +- {out['ratio_se']:.2f} |"
        )
    out = row("control-gaussian-hierarchy")
    if out:
        lin, dts = out["agents"]["LinTS"], out["agents"]["dTS (identity)"]
        print(
            f"\ncontrol (i.i.d. roll, one-level Gaussian hierarchy, S_1 = {out['s1']} I, no diffusion): LinTS "
            f"{lin['final_mean']:.1f} +- {lin['final_se']:.1f}, dTS {dts['final_mean']:.1f}"
            f" +- {dts['final_se']:.1f}, ratio {out['ratio']:.2f} +- {out['ratio_se']:.2f}"
        )
    out = row("control-shared-point")
    if out:
        lin, dts = out["agents"]["LinTS"], out["agents"]["dTS (identity)"]
        print(
            f"\ncontrol (one roll point per run + N(0, {out['spread']}^2 I) per action): LinTS "
            f"{lin['final_mean']:.1f} +- {lin['final_se']:.1f}, dTS {dts['final_mean']:.1f}"
            f" +- {dts['final_se']:.1f}, ratio {out['ratio']:.2f} +- {out['ratio_se']:.2f}"
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["ratios", "linearisations", "action_cov", "control", "pooling", "tables"])
    p.add_argument("--presets", nargs="*")
    p.add_argument("--actions", type=int, default=STUDY.num_actions)
    p.add_argument("--rounds", type=int, default=STUDY.num_rounds)
    p.add_argument("--runs", type=int, default=STUDY.num_runs)
    p.add_argument("--force", action="store_true")
    p.add_argument("--action-cov", default=None, help="S_1 (standardised units) instead of the prior's")
    args = p.parse_args()
    run = {"ratios": ratios, "linearisations": linearisations, "action_cov": action_cov, "control": control}
    run.update(tables=tables, pooling=pooling)
    run[args.what](args)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
