"""The real-data study (issue 14): regret of dTS vs LinTS, LinUCB, HierTS, bank TS, random per preset,
the paired ratios, the issue's three targets, and the measured prior fit.

    PYTHONPATH=. python studies/realdata/realdata_study.py --presets ring-shared,roll-shared,digits-multitask
    DTS_MOVIELENS_DIR=~/ml-100k PYTHONPATH=. python studies/realdata/realdata_study.py --presets movielens

Writes studies/realdata/results/<preset>.json (the `dts-ppl bench regret` JSON plus "study": ratios,
targets, prior fit, S_1) and <preset>.png, and prints one markdown table per preset.

    PYTHONPATH=. python studies/realdata/realdata_study.py --presets ring-shared --runs 40 --agents LinTS --agents "bank TS"

``--agents NAME`` (repeatable) re-runs only those agents on the same runs (the bench's seed and key
split) and splices their rows into the existing <preset>.json; the ratios and targets are computed
again from per-run final regrets, taken for the agents not re-run from the JSON or, where it has
none, from policies-<preset>.json (the same runs; its mean must equal the JSON's). The plot is then
drawn from the JSON's mean curves (no bands).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from dts_ppl.bandits.simulation import RegretResult, plot_regret, regret_ratio
from dts_ppl.commands.bench import run_experiment, to_json
from dts_ppl.experiments import realdata
from studies.common import paired_difference, prior_fit, results_dir, save_json

OUT = results_dir("realdata")
SETUPS = {
    "ring-shared": realdata.ring_setup,
    "roll-shared": realdata.roll_setup,
    "digits-multitask": lambda progress=False: realdata.digits_setup("linear", progress),
    "digits-multitask-bernoulli": lambda progress=False: realdata.digits_setup("logistic", progress),
    "movielens": lambda progress=False: realdata.movielens_setup(None, progress),
}


def targets(results) -> dict:
    """The issue's targets, each with its numbers and met / not met."""
    dts, lin, bank = results["dTS"], results["LinTS"], results["bank TS"]
    diff, diff_se = paired_difference(dts, lin)
    r_dts_bank, r_dts_bank_se = regret_ratio(dts, bank)
    gain_bank = lin.final_mean - bank.final_mean
    out = {
        "dts_minus_lints": diff,
        "dts_minus_lints_se": diff_se,
        "t1_dts_not_above_lints_by_2se": bool(diff <= 2 * diff_se),
        "dts_over_bank": r_dts_bank,
        "dts_over_bank_se": r_dts_bank_se,
        "t2_dts_within_5pct_of_bank": bool(r_dts_bank <= 1.05),
        "bank_gain_over_lints": gain_bank / lin.final_mean,
    }
    if lin.final_mean >= 1.1 * bank.final_mean:  # bank TS beats LinTS by >= 10%
        share = (lin.final_mean - dts.final_mean) / gain_bank
        out.update(dts_share_of_bank_gain=share, t3_dts_gets_80pct_of_bank_gain=bool(share >= 0.8))
    else:
        out.update(dts_share_of_bank_gain=None, t3_dts_gets_80pct_of_bank_gain="not applicable (bank gain < 10%)")
    return out


def s1_summary(setup) -> dict:
    """S_1 of the dTS prior next to the Gaussian fit's covariance (traces and the S_1 matrix)."""
    s1 = np.asarray(setup["prior"].cov1)
    cov = np.asarray(setup["gauss"].cov)
    return dict(s1=s1.round(6).tolist(), trace_s1=float(np.trace(s1)), trace_fit_cov=float(np.trace(cov)))


def table(name, data) -> str:
    res, st = data["algorithms"], data["study"]
    lines = [
        f"**{name}** ({data['runs']} runs x {data['rounds']} rounds)",
        "",
        "| agent | final regret (mean +- s.e.) |",
        "|---|---:|",
    ]
    lines += [f"| {a} | {r['final_regret_mean']:.1f} +- {r['final_regret_se']:.1f} |" for a, r in res.items()]
    lines += ["", "| paired ratio | value +- s.e. |", "|---|---:|"]
    lines += [f"| {k} | {v[0]:.3f} +- {v[1]:.3f} |" for k, v in st["ratios"].items()]
    return "\n".join(lines)


def run(name, runs, rounds, seed):
    start = time.perf_counter()
    results, runs, rounds = run_experiment(name, runs, rounds, seed, progress=False)
    data = to_json(name, results, rounds, runs, seed)
    ratios = {f"{b} / dTS": regret_ratio(results[b], results["dTS"]) for b in results if b != "dTS"}
    ratios["LinTS / bank TS"] = regret_ratio(results["LinTS"], results["bank TS"])
    setup = SETUPS[name](progress=False)
    held = setup.get("heldout", setup["bank"])  # true-prior draws where known, else held-out thetas
    fit = prior_fit(jax.random.PRNGKey(seed + 7), setup["prior"], setup["gauss"], held, setup["pretrain"])
    data["study"] = dict(
        ratios=ratios,
        targets=targets(results),
        prior_fit=fit,
        s1=s1_summary(setup),
        ddpm=dict((k, setup["meta"].get(k)) for k in ("num_levels", "hidden", "steps", "action_cov", "final_loss")),
        seconds=time.perf_counter() - start,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=1))
    plot_regret(results, OUT / f"{name}.png", title=name)
    return data


def _finals(name: str, data: dict, agent: str) -> np.ndarray:
    """Per-run final regrets of ``agent`` in <name>.json, else in policies-<name>.json (checked: same runs and mean)."""
    row = data["algorithms"][agent]
    if "final_regrets" in row:
        return np.asarray(row["final_regrets"], float)
    other = json.loads((OUT / f"policies-{name}.json").read_text())
    same = [other[k] for k in ("rounds", "runs", "seed")] == [data[k] for k in ("rounds", "runs", "seed")]
    orow = other["algorithms"].get(agent)
    if not same or orow is None or not np.isclose(orow["final_regret_mean"], row["final_regret_mean"], rtol=1e-6):
        raise ValueError(f"{agent}: no per-run final regrets in {name}.json nor a matching row in policies-{name}.json")
    return np.asarray(orow["final_regrets"], float)


def splice(name: str, agents: list[str]) -> dict:
    """Re-run ``agents`` of preset ``name`` (same runs as <name>.json) and splice their rows in; ratios and targets again."""
    start = time.perf_counter()
    data = json.loads((OUT / f"{name}.json").read_text())
    results, runs, rounds = run_experiment(name, data["runs"], data["rounds"], data["seed"], agents, progress=False)
    new = to_json(name, results, rounds, runs, data["seed"])
    if new["curve_rounds"] != data["curve_rounds"]:
        raise ValueError(f"{name}: the re-run's curve rounds differ from the JSON's")
    for a in new["algorithms"]:
        old, now = data["algorithms"][a]["final_regret_mean"], new["algorithms"][a]["final_regret_mean"]
        print(f"  {a}: final regret {old:.4f} -> {now:.4f}", flush=True)
    data["algorithms"].update({a: new["algorithms"][a] for a in data["algorithms"] if a in new["algorithms"]})
    finals = {a: _finals(name, data, a) for a in data["algorithms"]}
    for a, f in finals.items():  # keep the per-run regrets used, so the next splice needs no other file
        data["algorithms"][a].setdefault("final_regrets", [float(f"{v:.6g}") for v in f])
    res = {a: RegretResult(f[:, None], 0.0) for a, f in finals.items()}
    st = data["study"]
    st["ratios"] = {f"{b} / dTS": regret_ratio(res[b], res["dTS"]) for b in res if b != "dTS"}
    st["ratios"]["LinTS / bank TS"] = regret_ratio(res["LinTS"], res["bank TS"])
    st["targets"] = targets(res)
    st.setdefault("rerun", []).append(
        dict(agents=list(agents), seconds=time.perf_counter() - start, rows_from="per-run final regrets")
    )
    save_json(OUT / f"{name}.json", data)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for a, row in data["algorithms"].items():
        ax.plot(data["curve_rounds"], row["curve"], label=a)
    ax.set(xlabel="round", ylabel="cumulative regret")
    ax.set_title(f"{name} ({data['runs']} runs, mean curves)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=120)
    plt.close(fig)
    return data


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="ring-shared,roll-shared,digits-multitask")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agents", action="append", default=None, help="re-run only this agent and splice it in")
    args = p.parse_args()
    for name in args.presets.split(","):
        if args.agents:
            data = splice(name.strip(), args.agents)
        else:
            data = run(name.strip(), args.runs, args.rounds, args.seed)
        print(table(name, data))
        print(json.dumps({k: data["study"][k] for k in ("targets", "prior_fit")}, indent=1))
        print(f"({data['study']['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
