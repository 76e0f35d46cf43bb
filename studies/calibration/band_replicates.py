"""How often an exactly calibrated guide has every quantity inside the per-quantity 95% band.

The linear preset's exact guide (DTSGuide) is run on R independent replicates of 10,000 data sets
each (one ``sbc`` call over R x 10,000 data sets; replicate r is data sets r*10,000 ... r*10,000 +
9,999, so replicate 0 is the published ``linear-dts`` run). For each replicate it counts the
quantities outside their own simultaneous 95% ECDF band and the quantities rejected after the
Bonferroni correction over all Q quantities. Under exact calibration the first count has mean
about 0.05 Q; the second is non-zero in at most 5% of replicates. Writes
studies/calibration/results/linear-dts-replicates.json, read by docs/make_calibration.py.

    PYTHONPATH=. python studies/calibration/band_replicates.py [--replicates 30]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PER_REPLICATE, NUM_DRAWS, CHUNK = 10_000, 99, 2_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=30, help="R replicates of 10,000 data sets")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    from dts_ppl.experiments.validation import make_problem
    from dts_ppl.ppl import DTSGuide
    from dts_ppl.ppl.sbc import ecdf_band, rank_counts, sbc

    key = jax.random.PRNGKey(0)
    k_problem, k_sbc = jax.random.split(key)  # as `dts-ppl sbc --preset linear --seed 0`
    p = make_problem("linear", k_problem)
    load = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    report = sbc(
        p.model,
        DTSGuide(p.model),
        k_sbc,
        args.replicates * PER_REPLICATE,
        NUM_DRAWS,
        p.X,
        p.A,
        chunk_size=CHUNK,
        progress=True,
    )
    seconds = time.perf_counter() - start
    band = ecdf_band(PER_REPLICATE, NUM_DRAWS)
    q = len(report.names)
    outside, family, names_out = [], [], []
    for r in range(args.replicates):
        counts = rank_counts(report.ranks[r * PER_REPLICATE : (r + 1) * PER_REPLICATE], NUM_DRAWS)
        inside = band.inside(counts)
        pv = band.p_value(counts)
        outside.append(int(np.sum(~inside)))
        family.append(int(np.sum(pv * q <= 1.0 - band.prob)))
        names_out.append([report.names[i] for i in np.flatnonzero(~inside)])
    outside_arr = np.asarray(outside)
    result = {
        "command": f"PYTHONPATH=. python studies/calibration/band_replicates.py --replicates {args.replicates}",
        "preset": "linear",
        "guide": "DTSGuide (exact)",
        "replicates": args.replicates,
        "datasets_per_replicate": PER_REPLICATE,
        "num_draws": NUM_DRAWS,
        "num_quantities": q,
        "outside_per_replicate": outside,
        "outside_names_per_replicate": names_out,
        "family_rejected_per_replicate": family,
        "mean_outside": float(outside_arr.mean()),
        "se_mean_outside": float(outside_arr.std(ddof=1) / np.sqrt(len(outside))),
        "expected_outside_if_independent": 0.05 * q,
        "fraction_all_inside": float(np.mean(outside_arr == 0)),
        "probability_all_inside_if_independent": 0.95**q,
        "fraction_family_rejecting": float(np.mean(np.asarray(family) > 0)),
        "seconds": seconds,
        "load_average_at_start": load,
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "linear-dts-replicates.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    print(json.dumps({k: v for k, v in result.items() if "per_replicate" not in k}, indent=1))


if __name__ == "__main__":
    main()
