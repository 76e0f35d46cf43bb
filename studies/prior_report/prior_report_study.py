"""The prior report (``dts_ppl.analysis.prior_report``) on the Swiss roll, the ring, digits and MovieLens.

    PYTHONPATH=. python studies/prior_report/prior_report_study.py --datasets ring,roll,digits
    PYTHONPATH=. python studies/prior_report/prior_report_study.py --datasets movielens --data-dir DIR
    PYTHONPATH=. python studies/prior_report/prior_report_study.py --datasets roll --policies
    PYTHONPATH=. python studies/prior_report/prior_report_study.py --markdown docs/prior_report.md
    PYTHONPATH=. python studies/prior_report/prior_report_study.py --datasets ring --rerun LinTS  # splice a row

Each dataset reuses its real-data preset (dts_ppl.experiments.realdata): the preset's pre-training
samples are the report's training samples and its trained DDPM prior is loaded (the report's
"given prior" path; same S_1 rule), the bandit is the preset's (K, rounds, noise, contexts), and
the held-out samples are the preset's bandit parameters: fresh true-prior draws (ring, roll), the
held-out task thetas (digits), the held-out 30% of the items (MovieLens). Writes
studies/prior_report/results/<dataset>.json (the report's JSON plus the matching preset's verdict by
the same rule) and <dataset>.png. ``--markdown`` writes the docs page from those JSON files.
``--rerun NAME`` (repeatable) runs only those agents of the report (the same simulation key, so the
same runs as the other agents), replaces their rows in <dataset>.json (or -policies.json) and applies
the rule again to the per-run final regrets; the <dataset>.png is then not redrawn.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time

import jax
import numpy as np

from dts_ppl.analysis import prior_report as pr
from dts_ppl.bandits.simulation import RegretResult
from dts_ppl.data import digits as digits_data
from dts_ppl.experiments import realdata, swissroll
from dts_ppl.io.npz import atomic_write
from studies.common import ROOT, results_dir, save_json

OUT = results_dir("prior_report")
# dataset -> (its name on the page, the matching preset, the preset's regret tables in the repository:
# the first that exists is used; policies-<preset>.json (docs/realdata.md's policy tables, the same
# seed and key split as `dts-ppl bench regret`) keeps per-run regrets, so the rule is applied paired)
PRESETS = {
    "ring": (
        "the ring",
        "ring-shared",
        ("studies/realdata/results/policies-ring-shared.json", "studies/realdata/results/ring-shared.json"),
    ),
    "roll": (
        "the Swiss roll",
        "roll-shared",
        ("studies/realdata/results/policies-roll-shared.json", "studies/realdata/results/roll-shared.json"),
    ),
    "digits": (
        "digits",
        "digits-multitask",
        ("studies/realdata/results/policies-digits-multitask.json", "studies/realdata/results/digits-multitask.json"),
    ),
    "movielens": (
        "MovieLens item vectors",
        "movielens",
        ("studies/realdata/results/policies-movielens.json", "studies/realdata/results/movielens.json"),
    ),
}
# the report's own agents and the prior each stands for (bank TS and random take no part in the rule)
FAMILY = {"dTS": "ddpm", "HierTS": "hierarchy", "LinTS": "gaussian", "LinUCB": "gaussian"}
THOMPSON = ("dTS", "HierTS", "LinTS")
# the prefix of a preset table's agent name -> its prior (the posterior policies "dTS Bayes-UCB", ...)
PREFIX = (("HierTS", "hierarchy"), ("dTS", "ddpm"), ("LinTS", "gaussian"), ("LinUCB", "gaussian"))
# per-run final regrets closer than this (relative to the mean) are the same runs up to float32 rounding
SAME_RUNS = 1e-4


def dataset(name: str, data_dir=None) -> dict:
    """The report's inputs for one dataset, from its preset's setup."""
    if name == "ring":
        s = realdata.ring_setup(progress=False)
        held = np.asarray(realdata.sample_ring(jax.random.PRNGKey(303), 2000), np.float64)
        return dict(samples=s["pretrain"], heldout=held, prior=s["prior"], contexts=None, settings=_shared(40, 300))
    if name == "roll":
        s = realdata.roll_setup(progress=False)
        held = swissroll.swiss_roll(2000, seed=2)
        return dict(samples=s["pretrain"], heldout=held, prior=s["prior"], contexts=None, settings=_shared(40, 300))
    if name == "digits":
        s = realdata.digits_setup("linear", progress=False)
        tasks = digits_data.digits_tasks(dim=realdata.DIGITS.dim, kind="linear")
        cfg = realdata.DIGITS
        settings = pr.ReportSettings(
            True, num_actions=cfg.num_actions, rounds=cfg.rounds, runs=cfg.runs, noise=cfg.noise
        )
        return dict(
            samples=s["pretrain"], heldout=s["heldout"], prior=s["prior"], contexts=tasks.features, settings=settings
        )
    if name == "movielens":
        s = realdata.movielens_setup(data_dir, progress=False)
        cfg = realdata.MOVIELENS
        settings = pr.ReportSettings(
            False, num_actions=s["num_actions"], rounds=cfg.rounds, runs=cfg.runs, noise=cfg.noise
        )
        users = np.asarray(s["factorisation"].user_vectors, np.float64)
        return dict(samples=s["pretrain"], heldout=s["heldout"], prior=s["prior"], contexts=users, settings=settings)
    raise ValueError(f"datasets: unknown {name!r}; expected ring, roll, digits or movielens")


def _shared(runs, rounds):
    cfg = realdata.SHARED
    return pr.ReportSettings(True, num_actions=cfg.num_actions, rounds=rounds, runs=runs, noise=cfg.noise)


def table_family(name: str) -> str | None:
    """The prior a preset table's agent uses, from its name ("dTS Bayes-UCB" -> "ddpm"); None: no family."""
    return next((fam for prefix, fam in PREFIX if name == prefix or name.startswith(prefix + " ")), None)


def _rule(algos: dict, family: dict, z: float) -> dict:
    """The report's rule (``prior_report.verdict``) on a preset table: paired when every agent keeps its
    per-run final regrets, else with the unpaired s.e. sqrt(se_a^2 + se_b^2) (the bench JSON files keep
    only means and s.e.)."""
    if all("final_regrets" in algos[n] for n in family):
        results = {n: RegretResult(np.asarray(algos[n]["final_regrets"], np.float64)[:, None], 0.0) for n in family}
        text, comp = pr.verdict(results, family, z)
        return dict(
            verdict=text,
            best=comp["best"],
            best_family=comp["best_family"],
            differences=comp["differences"],
            paired=True,
        )
    best = {}
    for name, fam in family.items():
        mean = algos[name]["final_regret_mean"]
        if fam not in best or mean < algos[best[fam]]["final_regret_mean"]:
            best[fam] = name
    top = min(best, key=lambda f: algos[best[f]]["final_regret_mean"])
    diffs = {}
    for fam, name in best.items():
        a, b = algos[name], algos[best[top]]
        diffs[fam] = (
            [0.0, 0.0]
            if fam == top
            else [
                a["final_regret_mean"] - b["final_regret_mean"],
                math.hypot(a["final_regret_se"], b["final_regret_se"]),
            ]
        )
    chosen = next(f for f in pr.FAMILIES if f in best and diffs[f][0] <= z * diffs[f][1])
    return dict(verdict=pr.VERDICTS[chosen], best=best, best_family=top, differences=diffs, paired=False)


def same_runs(report: dict, algos: dict) -> float | None:
    """The largest per-run difference of final regrets between the report's agents and the table's
    agents of the same name, relative to the table's mean; None when either keeps no per-run regrets."""
    gaps = [
        np.max(np.abs(np.asarray(r["final_regrets"]) - np.asarray(algos[n]["final_regrets"])))
        / abs(algos[n]["final_regret_mean"])
        for n, r in report["regret"].items()
        if n in algos and "final_regrets" in r and "final_regrets" in algos[n]
    ]
    return float(max(gaps)) if gaps else None


def preset_verdict(paths, z: float = 2.0, report: dict | None = None) -> dict | None:
    """The report's rule on the matching preset's regret table (the first of ``paths`` in the
    repository): over the report's agents, over Thompson sampling only, and (where the table has them)
    over every agent incl. the posterior policies (Bayes-UCB, UCB); None when no table exists."""
    file = next((ROOT / p for p in paths if (ROOT / p).is_file()), None)
    if file is None:
        return None
    table = json.loads(file.read_text())
    algos = table["algorithms"]
    family = {n: f for n, f in FAMILY.items() if n in algos}
    ts = {n: f for n, f in family.items() if n in THOMPSON}
    every = {n: table_family(n) for n in algos if table_family(n) is not None}
    out = dict(
        file=str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file),
        size=f"{table['runs']} runs x {table['rounds']} rounds",
        all=_rule(algos, family, z),
        thompson=_rule(algos, ts, z),
        regrets={n: [algos[n]["final_regret_mean"], algos[n]["final_regret_se"]] for n in algos},
        same_runs=None if report is None else same_runs(report, algos),
    )
    if set(every) != set(family):
        out["policies"] = _rule(algos, every, z)
    return out


def rerun(name: str, names: list[str], data_dir=None, policies: bool = False) -> dict:
    """Re-run the report agents ``names`` of one dataset and splice their rows into its JSON; verdicts again."""
    start = time.perf_counter()
    stem = f"{name}-policies" if policies else name
    data = json.loads((OUT / f"{stem}.json").read_text())
    every = {a.name: a for a in pr.REPORT_AGENTS + pr.POLICY_AGENTS}
    unknown = set(names) - set(data["regret"])
    if unknown:
        raise ValueError(f"--rerun: {sorted(unknown)} not among the report's agents {sorted(data['regret'])}")
    inputs = dataset(name, data_dir)
    report = pr.prior_report(
        inputs["samples"],
        inputs["settings"],
        heldout=inputs["heldout"],
        contexts=inputs["contexts"],
        prior=inputs["prior"],
        agents=[every[n] for n in names],
        progress=False,
    )
    if report.settings != data["settings"] or report.energy != data["energy"]:
        raise ValueError(f"{stem}.json: other settings or held-out samples than this run's; cannot splice")
    new = pr.report_json(report)["regret"]
    for n in names:
        print(f"  {n}: {data['regret'][n]['final_regret_mean']:.4f} -> {new[n]['final_regret_mean']:.4f}", flush=True)
        data["regret"][n] = new[n]
    results = {
        n: RegretResult(np.asarray(r["final_regrets"], np.float64)[:, None], 0.0) for n, r in data["regret"].items()
    }
    kinds = {n: (r["prior"], r["policy"]) for n, r in data["regret"].items()}
    fam = {n: k[0] for n, k in kinds.items()}
    ts = {n: k[0] for n, k in kinds.items() if k[1] == "thompson"}
    data["verdict"], comp = pr.verdict(results, fam, data["settings"]["z"])
    data["verdict_thompson"], comp_ts = pr.verdict({n: results[n] for n in ts}, ts, data["settings"]["z"])
    data["comparisons"] = dict(all=comp, thompson=comp_ts)
    data.setdefault("rerun", []).append(
        dict(agents=list(names), seconds=time.perf_counter() - start, png="not redrawn")
    )
    save_json(OUT / f"{stem}.json", data)
    print(f"{stem}: {data['verdict']} | Thompson only: {data['verdict_thompson']}", flush=True)
    return data


def run(name: str, data_dir=None, policies: bool = False) -> dict:
    """One dataset's report (``policies``: with POLICY_AGENTS too, written to <name>-policies.json)."""
    start = time.perf_counter()
    inputs = dataset(name, data_dir)
    report = pr.prior_report(
        inputs["samples"],
        inputs["settings"],
        heldout=inputs["heldout"],
        contexts=inputs["contexts"],
        prior=inputs["prior"],
        agents=pr.REPORT_AGENTS + pr.POLICY_AGENTS if policies else None,
        progress=False,
    )
    print(pr.report_text(report), flush=True)
    data = pr.report_json(report)
    data["preset"] = PRESETS[name][1]
    data["seconds"] = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-policies" if policies else name
    save_json(OUT / f"{stem}.json", data)
    pr.plot_report(report, OUT / f"{stem}.png")
    return data


# -------------------------------------------------------------------------------- the docs page

HEADER = """# Is a learned prior worth it? The prior report

`dts-ppl prior-report SAMPLES.npy` (or `dts_ppl.analysis.prior_report.prior_report`) answers, before
deployment, whether training a diffusion prior on offline samples of theta pays: it splits the samples
(or takes a held-out set), trains a DDPM prior (or loads one), fits a Gaussian and (per-action
parameters) a one-level Gaussian hierarchy with the DDPM's S_1, reports energy distances to the
held-out samples, runs every agent of `REPORT_AGENTS` on a bandit built from the held-out samples
(paired runs) and gives a verdict.

**The rule.** Each prior (Gaussian fit, Gaussian hierarchy, DDPM) is represented by its best agent
(lowest mean final regret); the verdict is the simplest prior whose best agent's paired difference
of final regrets to the overall best, D +- s.e., has D <= 2 s.e.: "a fitted Gaussian is as good",
"a Gaussian hierarchy is as good" or "train the diffusion prior". The report gives it twice: over
all agents (the best policy for each prior: LinUCB competes for the Gaussian) and over Thompson
sampling only (dTS vs HierTS vs LinTS: the prior with the policy held fixed). bank TS (the exact
posterior of the training samples as an empirical prior) is shown as a reference, outside the rule.
With a shared parameter the one-level hierarchy is the fitted Gaussian itself, so it is not run.

**The hook.** `dts_ppl.analysis.prior_report.REPORT_AGENTS` is the list of agents every report runs
(`ReportAgent(name, prior, policy, build)`); a new posterior policy (e.g. Bayes-UCB on the dTS
posterior) joins by appending one entry with `prior="ddpm"`, and then competes for the DDPM in the verdict.
`POLICY_AGENTS` are such entries, ready made (Bayes-UCB and UCB on the dTS, HierTS and LinTS posteriors,
named as in docs/realdata.md): `agents=REPORT_AGENTS + POLICY_AGENTS`, or `--policies` on the command line.
The four reports below ran `REPORT_AGENTS` only; what the posterior policies do to each verdict is read
from the presets' tables (last column of the verdict table), which ran them on the same bandits.

Usage:

    dts-ppl prior-report thetas.npy --shared --runs 40 --rounds 300 --json report.json --plot report.png
    dts-ppl prior-report items.npy --contexts users.npy --num-actions 100 --rounds 3000 --prior prior.npz
    dts-ppl prior-report thetas.npy --shared --policies     # also Bayes-UCB and UCB on each posterior

**LinTS with a shared parameter (ring, roll, digits) was re-run.** It now draws one theta per round and
scores every action with x_a^T theta (Thompson sampling); before, each action's score was an independent
draw from its own marginal. Its rows in those reports were re-run on the same runs (`--rerun LinTS`,
recorded under "rerun" in each JSON; the per-dataset plots were not redrawn) and the rule applied again;
the command-line report on the roll (last section) was run again whole (its other rows reproduced
exactly). On the ring and the Swiss roll the Thompson-only verdict went from "train the diffusion prior"
to "a fitted Gaussian is as good"; on digits it stays.

## The four datasets

Command: `PYTHONPATH=. python studies/prior_report/prior_report_study.py --datasets ring,roll,digits`
and `... --datasets movielens --data-dir DIR` (MovieLens-100K, not shipped) -> `studies/prior_report/results/<dataset>.json`
and `.png`; this page: `... --markdown docs/prior_report.md`. Each dataset reuses its real-data preset
(docs/realdata.md): the preset's pre-training samples and trained DDPM prior (loaded, not retrained),
its bandit (K, rounds, noise, contexts); the held-out samples are the preset's bandit parameters (2,000
fresh true-prior draws for ring and roll, the held-out task thetas for digits, the held-out 30% of the
items for MovieLens). bank TS's bank is the training sample (the presets' ring and roll banks are
20,000 true-prior draws, so bank TS differs there). On digits and MovieLens the report's held-out pool,
contexts and simulation key are the preset's, so its runs are those of `dts-ppl bench regret --preset
NAME` (seed 0): its per-run final regrets equal the preset table's (float32 rounding aside). On the ring
and the Swiss roll (`roll`) the report draws its own held-out thetas, so its runs are other runs of the
same bandit.

**The check against the presets' tables.** Each verdict is set beside the regret table of the matching
preset in the repository: `studies/realdata/results/policies-<preset>.json`, the source of docs/realdata.md's
policy tables (per-run final regrets, so the rule is applied paired; the bench JSON `<preset>.json`,
means and s.e. only, is the fallback, unpaired). The report's rule is applied to that table three times:
over the report's own agents (dTS, HierTS, LinTS, LinUCB; agreement means both verdicts are the same),
over Thompson sampling only, and over every agent of the table, the posterior policies included
(Bayes-UCB and UCB on the dTS, HierTS and LinTS posteriors, which `REPORT_AGENTS` does not run).

Read each verdict with its energy distances: a verdict is about regret on this bandit, and a prior that
is closer to the held-out samples (smaller energy distance) need not win it, nor the reverse.
"""


def _agree(ref, d) -> str:
    """The preset table's verdicts by the same rule over the report's agents, and whether they agree."""
    if ref is None:
        return "no regret table in the repository | -"
    a, t = ref["all"]["verdict"], ref["thompson"]["verdict"]
    ok = a == d["verdict"] and t == d["verdict_thompson"]
    return f"{a} / {t} | {'yes' if ok else '**no**'}"


def _runs(ref: dict) -> str:
    """Whether the report's runs are the preset table's runs."""
    gap = ref["same_runs"]
    if gap is None:
        return "per-run regrets not kept, runs not compared"
    if gap <= SAME_RUNS:
        return (
            f"the same runs as the report: per-run final regrets equal within {gap:.1e} of the mean, float32 rounding"
        )
    return "other runs than the report's (its own held-out draws)"


CLI_RUN = (
    'python -c "import numpy as np; from dts_ppl.experiments.swissroll import swiss_roll; '
    "np.save('roll.npy', swiss_roll(10000, seed=0))\"\n"
    "dts-ppl prior-report roll.npy --shared --runs 40 --rounds 300 "
    "--json studies/prior_report/results/roll-cli.json --plot studies/prior_report/results/roll-cli.png"
)


def _section(d: dict) -> list[str]:
    """One report's numbers: sizes, energy distances, regrets, the paired differences behind each verdict."""
    s, e = d["settings"], d["energy"]
    seconds = f"; {d['seconds']:.0f} s" if "seconds" in d else ""
    sec = [
        f"{s['num_train']} training / {s['num_heldout']} held-out samples, d = {s['dim']}, "
        f"{'shared parameter' if s['shared'] else 'per-action parameters'}, K = {s['num_actions']}, "
        f"{s['runs']} runs x {s['rounds']} rounds, noise sd {s['noise']}, contexts {s['contexts']}; "
        f"prior: {s['prior_source']} (tr S_1 = {s['trace_s1']:.3g}, tr Cov = {s['trace_fit_cov']:.3g}){seconds}.",
        "",
        f"Energy distance to the held-out samples ({e['num_draws']} draws vs {e['num_heldout']}): "
        f"DDPM {e['ddpm']:.3f}, Gaussian fit {e['gaussian']:.3f}, sample floor {e['floor']:.3f}.",
        "",
        "| agent | prior | policy | final regret (mean +- s.e.) |",
        "|---|---|---|---:|",
    ]
    for n, r in d["regret"].items():
        mean, se = r["final_regret_mean"], r["final_regret_se"]
        sec.append(f"| {n} | {r['prior']} | {r['policy']} | {mean:.1f} +- {se:.1f} |")
    sec.append("")
    for key, label in (("all", "best agent per prior"), ("thompson", "Thompson sampling only")):
        c = d["comparisons"][key]
        diffs = c["differences"]
        parts = ", ".join(f"{f} ({c['best'][f]}) {diffs[f][0]:+.1f} +- {diffs[f][1]:.1f}" for f in c["best"])
        text = d["verdict" if key == "all" else "verdict_thompson"]
        sec.append(f"- {label}: paired difference to the best ({c['best'][c['best_family']]}): {parts} -> **{text}**.")
    return sec


def _reference(preset: str, ref: dict | None, paths) -> list[str]:
    """The matching preset table and its verdicts by the same rule."""
    if ref is None:
        return [f"- preset `{preset}`: no regret table in the repository ({', '.join(paths)}), so no comparison."]
    regrets = ", ".join(f"{n} {m:.1f} +- {e:.1f}" for n, (m, e) in ref["regrets"].items())
    out = [f"- preset `{preset}` table ({ref['file']}, {ref['size']}; {_runs(ref)}): {regrets}."]
    labels = (
        ("all", "the report's agents"),
        ("thompson", "Thompson sampling only"),
        ("policies", "every agent of the table, the posterior policies included"),
    )
    for key, label in labels:
        if key not in ref:
            continue
        r = ref[key]
        how = "paired" if r["paired"] else "unpaired s.e.: the table keeps no per-run regrets"
        parts = ", ".join(f"{f} ({r['best'][f]}) {v[0]:+.1f} +- {v[1]:.1f}" for f, v in r["differences"].items())
        out.append(f"  Same rule, {label} ({how}): {parts} -> {r['verdict']}.")
    return out


def _policy_note(name: str, d: dict, ref: dict | None) -> str | None:
    """Where the table's posterior policies change the all-agent verdict, and why."""
    if ref is None or "policies" not in ref or ref["policies"]["verdict"] == d["verdict"]:
        return None
    pol = ref["policies"]
    gauss = pol["best"].get("gaussian")
    diff, se = pol["differences"].get("gaussian", [0.0, 0.0])
    best = ", ".join(f"{f}: {n}" for f, n in pol["best"].items())
    return (
        f"- {PRESETS[name][0]}: with the table's posterior policies the best agent per prior is {best}, and the "
        f'verdict is "{pol["verdict"]}" where the report\'s (over its own agents) is "{d["verdict"]}". '
        "With its default agents (`REPORT_AGENTS`) the report runs Thompson sampling on the DDPM and the "
        "hierarchy and gives optimism (LinUCB) to the fitted Gaussian only, so its all-agent verdict compares "
        "policies as much as priors (`--policies` gives every prior its optimistic policies)"
        + (
            f"; with the table's policies the fitted Gaussian's best agent ({gauss}) is {diff:+.1f} +- {se:.1f} "
            f"above the best ({pol['best'][pol['best_family']]}), paired."
            if gauss is not None
            else "."
        )
    )


def markdown(paths) -> str:
    """The docs page: the rule, the verdicts next to the presets', one section per dataset, the CLI run."""
    summary = [
        "| dataset | verdict (best agent per prior) | verdict (Thompson sampling only) | preset | "
        "the preset table's verdicts by the same rule, the report's agents (all / Thompson only) | agree? | "
        "the table's verdict with its posterior policies (Bayes-UCB, UCB) |",
        "|---|---|---|---|---|---|---|",
    ]
    sections, notes = [], []
    for path in paths:
        d = json.loads(path.read_text())
        name = path.stem
        label, preset, files = PRESETS[name]
        ref = preset_verdict(files, d["settings"]["z"], report=d)
        policies = ref["policies"]["verdict"] if ref is not None and "policies" in ref else "-"
        summary.append(
            f"| {label} | {d['verdict']} | {d['verdict_thompson']} | {preset} | {_agree(ref, d)} | {policies} |"
        )
        note = _policy_note(name, d, ref)
        if note:
            notes.append(note)
        sec = [f"### {label} (`{name}`)", "", *_section(d), *_reference(preset, ref, files), ""]
        sections += sec
    lines = [HEADER, "## Verdicts", "", *summary, ""]
    lines += [
        f"![final regrets per report](../studies/prior_report/results/{FIGURE})",
        "",
        "Each report's agents, per-run final regrets (dots) and mean +- 2 s.e., coloured by prior (blue DDPM,",
        "orange Gaussian hierarchy, green fitted Gaussian, grey bank TS); drawn from the results JSON by",
        "`--markdown` (the reports' own plots, with regret curves and prior draws, are written beside each",
        "JSON by the runs but are not kept in the repository).",
        "",
    ]
    if notes:
        lines += ["Where the posterior policies of the preset tables (docs/realdata.md) change the verdict:", ""]
        lines += [*notes, ""]
    lines += sections
    with_policies = [
        (p.stem, json.loads((OUT / f"{p.stem}-policies.json").read_text()))
        for p in paths
        if (OUT / f"{p.stem}-policies.json").is_file()
    ]
    if with_policies:
        lines += [
            "## The report with the posterior policies (`--policies`)",
            "",
            "The same report run with `agents=REPORT_AGENTS + POLICY_AGENTS` (`... --datasets NAME --policies` ->",
            "`studies/prior_report/results/NAME-policies.json`): the same runs, and Bayes-UCB and UCB on every",
            "posterior competing for their prior in the all-agent verdict.",
            "",
        ]
        for name, d in with_policies:
            label, preset, files = PRESETS[name]
            ref = preset_verdict(files, d["settings"]["z"], report=d)
            table = ref["policies"]["verdict"] if ref is not None and "policies" in ref else None
            agree = "no table" if table is None else f"{table}: {'yes' if table == d['verdict'] else '**no**'}"
            lines += [f"### {label}, with the posterior policies", "", *_section(d)]
            lines += [f"- the preset `{preset}` table's verdict with its posterior policies, same rule: {agree}.", ""]
    cli = OUT / "roll-cli.json"
    if cli.is_file():
        lines += [
            "## The command line, training its own prior",
            "",
            "The Swiss roll again, as a user would run it: 10,000 roll samples in a file; the command splits them",
            "70 / 30, trains its DDPM prior on the 7,000 (the presets' training choices; S_1 = beta_1 for a shared",
            "parameter) and the bandit draws theta from the 3,000 held out:",
            "",
            *["    " + line for line in CLI_RUN.splitlines()],
            "",
            *_section(json.loads(cli.read_text())),
            "",
        ]
    return "\n".join(lines)


FIGURE = "prior-report-regrets.png"
COLOURS = {"ddpm": "C0", "hierarchy": "C1", "gaussian": "C2", "bank": "0.5"}


def figure(paths, path) -> None:
    """One panel per report: every agent's per-run final regrets (dots) and mean +- 2 s.e. (bar), coloured by
    prior, from the results JSON (the reports' own plots need the runs' curves, which the JSON does not keep)."""
    from dts_ppl.plotting import pyplot

    plt = pyplot(headless=True)
    data = [json.loads(p.read_text()) for p in paths]
    fig, axes = plt.subplots(1, len(data), figsize=(3.6 * len(data), 3.4), squeeze=False)
    for ax, p, d in zip(axes[0], paths, data, strict=True):
        names = list(d["regret"])
        for i, n in enumerate(names):
            r = d["regret"][n]
            c = COLOURS.get(r["prior"], "k")
            runs = np.asarray(r["final_regrets"])
            ax.scatter(runs, np.full(runs.size, i) + np.linspace(-0.15, 0.15, runs.size), s=6, c=c, alpha=0.4)
            ax.errorbar(r["final_regret_mean"], i, xerr=2 * r["final_regret_se"], fmt="o", c=c, capsize=3)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("final regret", fontsize=8)
        label = PRESETS[p.stem.removesuffix("-policies")][0] + (" (--policies)" if p.stem.endswith("-policies") else "")
        ax.set_title(f"{label}:\n{d['verdict']}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def page() -> str:
    """The docs page from every dataset's results JSON present."""
    paths = [OUT / f"{n}.json" for n in PRESETS if (OUT / f"{n}.json").is_file()]
    if not paths:
        raise ValueError(f"no results in {OUT}: run the datasets first")
    return markdown(paths).rstrip() + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="ring,roll,digits")
    p.add_argument("--data-dir", default=None, help="MovieLens files (or $DTS_MOVIELENS_DIR)")
    p.add_argument("--markdown", default=None, help="write the docs page here from the results JSON and exit")
    p.add_argument("--policies", action="store_true", help="also run POLICY_AGENTS -> <dataset>-policies.json")
    p.add_argument("--rerun", action="append", default=None, help="re-run only this agent and splice it in")
    args = p.parse_args()
    if args.markdown:
        atomic_write(args.markdown, page().encode())
        names = [*PRESETS, *(f"{n}-policies" for n in PRESETS)]
        figure([OUT / f"{n}.json" for n in names if (OUT / f"{n}.json").is_file()], OUT / FIGURE)
        return
    for name in args.datasets.split(","):
        if args.rerun:
            rerun(name.strip(), args.rerun, args.data_dir, args.policies)
            continue
        data = run(name.strip(), args.data_dir, args.policies)
        print(f"({data['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
