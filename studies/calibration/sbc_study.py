"""Simulation-based calibration study: writes studies/calibration/results/*.json (and two plots), read by docs/make_calibration.py.

Each job is one ``dts-ppl sbc`` command (run as ``python -m dts_ppl.cli``), except ``vsbc``:
NumPyro's ``vsbc_diagnostic`` with AutoNormal on the linear preset, timed, and its output turned
into our report (:func:`dts_ppl.ppl.sbc.report_from_vsbc`). Jobs whose JSON exists are skipped
(``--force`` reruns them). The jobs run one after another.

    PYTHONPATH=. python studies/calibration/sbc_study.py [JOB ...] [--force]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BIG = ["--num-datasets", "10000", "--chunk-size", "2000"]
MID = ["--num-datasets", "2000", "--chunk-size", "500"]
DDPM = ["--num-datasets", "1000", "--chunk-size", "250"]
BANDIT = ["--num-runs", "1000", "--num-rounds", "200", "--chunk-size", "250"]

JOBS = {
    "linear-dts": ["--preset", "linear", *BIG, "--plot", "linear-dts.png"],
    "linear-distorted": ["--preset", "linear", "--guide", "distorted", *BIG, "--plot", "linear-distorted.png"],
    # NumPyro's AutoNormal through our SVI path: the same preset, design, sizes and steps as the vsbc job
    "linear-autonormal": [
        "--preset",
        "linear",
        "--guide",
        "autonormal",
        "--num-datasets",
        "100",
        "--num-steps",
        "1000",
    ],
    **{f"mlp-{r}": ["--preset", "mlp", "--linearisation", r, *MID] for r in ("identity", "jacobian", "iterated")},
    **{f"logistic-{e}": ["--preset", "logistic", "--expansion", e, *MID] for e in ("prior", "mle")},
    **{f"ddpm-{r}": ["--preset", "ddpm", "--linearisation", r, *DDPM] for r in ("identity", "jacobian", "iterated")},
    **{
        f"bandit-{p}": ["--preset", p, *BANDIT]
        for p in ("fig1-lindiff-lin-k100", "fig1-nonlindiff-lin-k100", "fig1-lindiff-logistic-k100")
    },
}
NUM_VSBC, VSBC_STEPS, VSBC_DRAWS = 100, 1000, 99


def run_cli(name: str, argv: list) -> None:
    argv = list(argv)
    if "--plot" in argv:
        i = argv.index("--plot")
        argv[i + 1] = os.path.join(OUT, argv[i + 1])
    cmd = [
        sys.executable,
        "-m",
        "dts_ppl.cli",
        "sbc",
        *argv,
        "--json",
        os.path.join(OUT, name + ".json"),
        "--no-progress",
    ]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def run_vsbc() -> None:
    """vsbc_diagnostic with AutoNormal on the linear preset: time it and build the report from its output."""
    import jax
    import numpyro
    from numpyro.infer import Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.infer.calibration import vsbc_diagnostic

    from dts_ppl.experiments.validation import make_problem
    from dts_ppl.ppl.sbc import report_from_vsbc

    jax.config.update("jax_enable_x64", True)
    key = jax.random.PRNGKey(0)
    k_problem, k_sbc = jax.random.split(key)
    p = make_problem("linear", k_problem)  # the same design as dts-ppl sbc --preset linear --seed 0
    start = time.perf_counter()
    res = vsbc_diagnostic(
        k_sbc,
        p.model,
        AutoNormal(p.model),
        numpyro.optim.Adam(0.01),
        Trace_ELBO(),
        p.X,
        p.A,
        observed_sites=["y"],
        num_simulations=NUM_VSBC,
        num_svi_steps=VSBC_STEPS,
        num_samples=VSBC_DRAWS,
    )
    seconds = time.perf_counter() - start
    meta = {
        "preset": "linear",
        "guide": "AutoNormal (SVI, Adam(0.01), Trace_ELBO)",
        "num_svi_steps": VSBC_STEPS,
        "command": "PYTHONPATH=. python studies/calibration/sbc_study.py vsbc",
        "ks_pvalue_below_0.05": int(sum((res.ks_pvalues[s] < 0.05).sum() for s in res.param_names)),
    }
    report = report_from_vsbc(res, VSBC_DRAWS, meta=meta)
    report.seconds = seconds
    report.to_json(os.path.join(OUT, "vsbc-autonormal-linear.json"))
    print(report)
    print(f"vsbc_diagnostic: {NUM_VSBC} data sets in {seconds:.1f} s (compilation included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", help=f"jobs to run (default all): {', '.join([*JOBS, 'vsbc'])}")
    parser.add_argument("--force", action="store_true", help="rerun jobs whose JSON exists")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in args.jobs or [*JOBS, "vsbc"]:
        path = os.path.join(OUT, ("vsbc-autonormal-linear" if name == "vsbc" else name) + ".json")
        if os.path.exists(path) and not args.force:
            print(f"skip {name}: {path} exists")
            continue
        start = time.perf_counter()
        run_vsbc() if name == "vsbc" else run_cli(name, JOBS[name])
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
