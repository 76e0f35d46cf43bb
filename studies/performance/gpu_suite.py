"""One-command performance suite for an accelerator (runs unchanged on CPU, with ``--quick``).

Sections, each written to the JSON as soon as it finishes (a section that fails records its error
and the suite goes on; sections that would start after ``--budget-s`` are skipped and say so):

- ``rounds``: per-round time (act + update, compiled blocks, interleaved) of dTS on the shipped
  Swiss-roll DDPM prior (L = 40, d = 2, "identity" rule) and LinTS, K = 10^4 .. 10^7, with one
  chain draw beside them;
- ``chain``: one draw of the whole chain, fast chain against the chain before it, L = 10 .. 80,
  and batched draws (draws per second);
- ``simulate``: ``simulate``'s compiled function with many runs on the Swiss-roll preset
  (run-rounds per second, dTS and LinTS, and dTS with the chain before the fast chain);
- ``nuts``: NUTS validation of the guide with ``chain_method="vectorized"`` on the small
  "linear" preset (wall time, reference gates, the guide's comparison).

    python studies/performance/gpu_suite.py --json results/gpu_suite_gpu.json
    python studies/performance/gpu_suite.py --quick --json /tmp/gpu_suite_quick.json   # CPU smoke test
"""

from __future__ import annotations

import argparse
import time
import traceback

import jax
import jax.numpy as jnp

from dts_ppl.core import inference as core  # noqa: E402
from studies.performance.common import RESULTS, device, random_ddpm_prior, save_json, swissroll_prior  # noqa: E402
from studies.performance.ddpm_chain import draw_ab, rounds_at  # noqa: E402
from studies.performance.simulate_throughput import throughput  # noqa: E402

FULL = dict(
    Ks=(10**4, 10**5, 10**6, 10**7),
    rounds=50,
    draws=100,
    reps=5,
    levels=(10, 20, 40, 80),
    batch=(10**3, 10**4, 10**5, 10**6),
    runs=(1000, 10000),
    sim_rounds=200,
    nuts=dict(num_warmup=500, num_samples=1000, num_chains=4),
)
QUICK = dict(
    Ks=(100, 1000),
    rounds=5,
    draws=5,
    reps=2,
    levels=(10, 20),
    batch=(10, 100),
    runs=(4,),
    sim_rounds=10,
    nuts=dict(num_warmup=50, num_samples=100, num_chains=2),
)


def section_rounds(cfg) -> dict:
    prior = swissroll_prior(jnp.float32)
    out = {}
    for K in cfg["Ks"]:
        res = rounds_at(prior, K, cfg["rounds"], cfg["draws"], cfg["reps"], old=K == cfg["Ks"][0])
        out[str(K)] = res
        med = {n: round(v["median_us"], 1) for n, v in res["us"].items()}
        print(f"  K = {K}: {med} us; dTS/LinTS {res['dts_over_lints']['median']:.2f}", flush=True)
    return out


def section_chain(cfg) -> dict:
    out = {"draw": {}, "batched_draws_per_s": {}}
    for L in cfg["levels"]:
        res = draw_ab(random_ddpm_prior(L), cfg["draws"], cfg["reps"])
        res["new_us_per_level"] = res["new"]["median_us"] / L
        res["old_us_per_level"] = res["old"]["median_us"] / L
        out["draw"][str(L)] = res
        print(f"  L = {L}: {res['new_us_per_level']:.2f} us/level (before: {res['old_us_per_level']:.2f})", flush=True)
    prior = swissroll_prior(jnp.float32)
    post = core.prior_conditionals(prior, 1)
    for n in cfg["batch"]:
        f = jax.jit(lambda key, n=n: core.sample(key, prior, post, (n,)))
        jax.block_until_ready(f(jax.random.PRNGKey(0)))
        times = []
        for r in range(cfg["reps"]):
            start = time.perf_counter()
            jax.block_until_ready(f(jax.random.PRNGKey(r + 1)))
            times.append(time.perf_counter() - start)
        out["batched_draws_per_s"][str(n)] = n / sorted(times)[len(times) // 2]
        print(f"  {n} draws at once: {out['batched_draws_per_s'][str(n)]:.3g} draws/s", flush=True)
    return out


def section_simulate(cfg) -> dict:
    out = {}
    for runs in cfg["runs"]:
        old = runs == cfg["runs"][0]
        res = throughput(runs, cfg["sim_rounds"], max(2, cfg["reps"] // 2), old=old, end_to_end=False)
        out[str(runs)] = res
        print(f"  {runs} runs: {res['run_rounds_per_s']} run-rounds/s", flush=True)
    return out


def section_nuts(cfg) -> dict:
    from dts_ppl import DTSGuide
    from dts_ppl.experiments.validation import NUTS_SETTINGS, make_problem
    from dts_ppl.ppl.validate import validate

    problem = make_problem("linear", jax.random.PRNGKey(0))
    settings = {k: v for k, v in NUTS_SETTINGS["linear"].items() if k != "parameterisation"}
    settings.update(cfg["nuts"])
    start = time.perf_counter()
    report = validate(
        problem.model,
        DTSGuide(problem.model),
        problem.X,
        problem.A,
        problem.y,
        key=jax.random.PRNGKey(1),
        chain_method="vectorized",
        progress_bar=False,
        nuts_parameterisation=NUTS_SETTINGS["linear"]["parameterisation"],
        **settings,
    )
    wall = time.perf_counter() - start
    out = {"preset": "linear", "chain_method": "vectorized", "wall_s": wall, "report": report.to_dict()}
    print(f"  NUTS (vectorized) + validation: {wall:.1f} s, reference reliable: {report.reliable}", flush=True)
    return out


SECTIONS = {"rounds": section_rounds, "chain": section_chain, "simulate": section_simulate, "nuts": section_nuts}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test (CPU)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--budget-s", type=float, default=float("inf"), help="start no section after this many seconds")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    info = device()
    print("device:", info["backend"], info["devices"], info["device_kind"], flush=True)
    path = args.json or RESULTS / f"gpu_suite_{info['backend']}{'_quick' if args.quick else ''}.json"
    out = {"device": info, "dtype": "float32", "quick": args.quick, "config": cfg, "sections": {}}
    start = time.perf_counter()
    for name in args.sections.split(","):
        if time.perf_counter() - start > args.budget_s:
            out["sections"][name] = {"skipped": f"time budget of {args.budget_s:.0f} s spent"}
            continue
        print(f"[{name}]", flush=True)
        t0 = time.perf_counter()
        try:
            out["sections"][name] = SECTIONS[name](cfg)
        except Exception as e:  # record it and run the other sections
            traceback.print_exc()
            out["sections"][name] = {"error": f"{type(e).__name__}: {e}"}
        out["sections"][name]["section_s"] = time.perf_counter() - t0
        out["total_s"] = time.perf_counter() - start
        save_json(path, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
