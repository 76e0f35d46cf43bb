"""Policies on the learned posterior (issue 27): every agent of a real or real-like preset, incl. Bayes-UCB
and UCB on the dTS, HierTS and LinTS posteriors, and the paired comparison with LinUCB-with-the-fitted-Gaussian.

    PYTHONPATH=. python studies/realdata/policy_study.py --presets ring-shared,roll-shared --runs 40
    DTS_MOVIELENS_DIR=DIR PYTHONPATH=. python studies/realdata/policy_study.py --presets movielens --runs 20
    PYTHONPATH=. python studies/realdata/policy_study.py --tables     # merge parts, markdown from the JSON
    PYTHONPATH=. python studies/realdata/policy_study.py --presets ring-shared --agents LinTS --tag rerun
    PYTHONPATH=. python studies/realdata/policy_study.py --presets ring-shared --tables --replace  # splice it in

Writes studies/realdata/results/policies-<preset>.json (the `dts-ppl bench regret` JSON, written
again after every agent so a partial run keeps what it measured, plus "comparison"). All agents of
a preset run on the same runs (common random numbers: the bench's seed and key split), so agents
run in separate processes (``--agents A,B --tag T``, written to policies-<preset>--T.json) are
paired too; ``--tables`` merges such parts into policies-<preset>.json (adding agents it lacks;
with ``--replace`` the parts' rows also replace the agents it has: a re-run of changed agents).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from dts_ppl.bandits.simulation import simulate
from dts_ppl.commands.bench import to_json
from dts_ppl.experiments.registry import get_preset
from dts_ppl.experiments.regret import default_chunk_size
from studies.common import results_dir, save_json

OUT = results_dir("realdata")
#: The posterior policies with the learned prior (dTS's posterior) among which the best is taken.
LEARNED = ("dTS", "dTS Bayes-UCB", "dTS UCB")
REFERENCE = "LinUCB"


def paired(finals: dict, a: str, b: str) -> tuple[float, float]:
    """Mean and s.e. of the paired per-run difference of final regrets a - b."""
    d = np.asarray(finals[a]) - np.asarray(finals[b])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def comparison(data: dict) -> dict:
    """Every agent against LinUCB (paired), the best learned-prior policy and the check, HierTS vs dTS."""
    finals = {n: r["final_regrets"] for n, r in data["algorithms"].items()}
    out = (
        {"vs_linucb": {n: paired(finals, n, REFERENCE) for n in finals if n != REFERENCE}}
        if REFERENCE in finals
        else {}
    )
    learned = [n for n in LEARNED if n in finals]
    if learned and REFERENCE in finals:
        best = min(learned, key=lambda n: np.mean(finals[n]))
        diff, se = paired(finals, best, REFERENCE)
        out.update(best_learned=best, best_minus_linucb=[diff, se], at_most_linucb_within_1se=bool(diff <= se))
    for pol in ("", " Bayes-UCB", " UCB"):
        if f"HierTS{pol}" in finals and f"dTS{pol}" in finals:
            out.setdefault("hierts_minus_dts", {})[pol.strip() or "TS"] = paired(finals, f"HierTS{pol}", f"dTS{pol}")
    if "LinTS" in finals and "dTS" in finals:
        out["lints_minus_dts"] = paired(finals, "LinTS", "dTS")
    return out


def run(name: str, runs, rounds, seed: int, agents=None, tag: str = "") -> dict:
    preset = get_preset(name)
    runs = preset.runs if runs is None else runs
    rounds = preset.rounds if rounds is None else rounds
    k_build, k_sim = jax.random.split(jax.random.PRNGKey(seed))  # the bench's keys
    env, algos = preset.build(k_build, rounds)
    if agents:
        algos = {n: algos[n] for n in agents}
    chunk = min(runs, default_chunk_size(env.num_actions, env.dim))
    print(f"{name}: {env.name}; {runs} runs x {rounds} rounds", flush=True)
    results, seconds = {}, {}
    for agent_name, agent in algos.items():
        start = time.perf_counter()
        results[agent_name] = simulate(k_sim, env, agent, rounds, runs, chunk_size=chunk, progress=False)
        seconds[agent_name] = time.perf_counter() - start
        res = results[agent_name]
        print(f"  {agent_name}: {res.final_mean:.1f} +- {res.final_se:.1f} ({seconds[agent_name]:.0f} s)", flush=True)
        data = to_json(name, results, rounds, runs, seed)
        data.update(environment=env.name, seconds=seconds, comparison=comparison(data))
        save_json(OUT / f"policies-{name}{'-' + tag if tag else ''}.json", data)
    return data


def merged(name: str, replace: bool = False) -> dict:
    """policies-<name>.json with the agents of its parts policies-<name>--<tag>.json (same runs, seed) merged in
    (``replace``: a part's row also replaces the agent's row already there)."""
    data = json.loads((OUT / f"policies-{name}.json").read_text())
    for part in sorted(OUT.glob(f"policies-{name}--*.json")):
        more = json.loads(part.read_text())
        if [more[k] for k in ("rounds", "runs", "seed")] != [data[k] for k in ("rounds", "runs", "seed")]:
            raise ValueError(f"{part.name}: other runs, rounds or seed than policies-{name}.json")
        for k, v in more["algorithms"].items():
            if replace or k not in data["algorithms"]:
                data["algorithms"][k] = v
                data.setdefault("seconds", {})[k] = more.get("seconds", {}).get(k)
        if replace:
            data.setdefault("rerun", []).append(dict(part=part.name, agents=sorted(more["algorithms"])))
        part.unlink()
    data["comparison"] = comparison(data)
    save_json(OUT / f"policies-{name}.json", data)
    return data


def table(data: dict) -> str:
    """The preset's regret table (mean +- s.e., and paired difference to LinUCB) in markdown."""
    cmp_ = data["comparison"]
    lines = [
        f"**{data['preset']}** ({data['runs']} runs x {data['rounds']} rounds)",
        "",
        f"| agent | final regret (mean +- s.e.) | - {REFERENCE} (paired) |",
        "|---|---:|---:|",
    ]
    for n, r in data["algorithms"].items():
        d = cmp_.get("vs_linucb", {}).get(n)
        diff = f"{d[0]:+.1f} +- {d[1]:.1f}" if d else "0"
        lines.append(f"| {n} | {r['final_regret_mean']:.1f} +- {r['final_regret_se']:.1f} | {diff} |")
    if "best_learned" in cmp_:
        d, se = cmp_["best_minus_linucb"]
        verdict = "yes" if cmp_["at_most_linucb_within_1se"] else "**no**"
        lines += ["", f"Best policy with the learned prior: {cmp_['best_learned']}, {d:+.1f} +- {se:.1f} against "
                  f"{REFERENCE} (paired): at most {REFERENCE}'s regret within 1 s.e.: {verdict}."]  # fmt: skip
    if "hierts_minus_dts" in cmp_:
        parts = [f"{k} {v[0]:+.1f} +- {v[1]:.1f}" for k, v in cmp_["hierts_minus_dts"].items()]
        lines += ["", "HierTS - dTS (same S_1; Gaussian hierarchy against the DDPM, paired): " + "; ".join(parts) + "."]
    return "\n".join(lines)


def summary(datas) -> str:
    """One line per preset: the best learned-prior policy, LinUCB, their paired difference and the check."""
    lines = [
        f"| preset | runs x rounds | best policy, learned prior | its regret | {REFERENCE} | best - {REFERENCE} (paired) "
        "| within 1 s.e. | best policy overall |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for data in datas:
        alg, cmp_ = data["algorithms"], data["comparison"]
        if "best_learned" not in cmp_:
            continue
        best = cmp_["best_learned"]
        overall = min(alg, key=lambda n: alg[n]["final_regret_mean"])
        d, se = cmp_["best_minus_linucb"]
        lines.append(
            f"| {data['preset']} | {data['runs']} x {data['rounds']} | {best} | {alg[best]['final_regret_mean']:.1f} "
            f"+- {alg[best]['final_regret_se']:.1f} | {alg[REFERENCE]['final_regret_mean']:.1f} +- "
            f"{alg[REFERENCE]['final_regret_se']:.1f} | {d:+.1f} +- {se:.1f} | "
            f"{'yes' if cmp_['at_most_linucb_within_1se'] else '**no**'} | {overall} |"
        )
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="ring-shared,roll-shared")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="write policies-<preset>--TAG.json (a part that --tables merges in)")
    p.add_argument("--agents", default=None, help="comma-separated subset of the preset's agents (default: all)")
    p.add_argument("--tables", action="store_true", help="print the markdown tables of the JSON already written")
    p.add_argument("--replace", action="store_true", help="with --tables: the parts' rows replace existing ones")
    args = p.parse_args()
    datas = []
    for name in args.presets.split(","):
        name = name.strip()
        data = merged(name, args.replace) if args.tables else None
        if data is None:
            agents = [a.strip() for a in args.agents.split(",")] if args.agents else None
            data = run(name, args.runs, args.rounds, args.seed, agents, "-" + args.tag if args.tag else "")
        print(table(data), flush=True)
        datas.append(data)
    print(summary(datas))


if __name__ == "__main__":
    main()
