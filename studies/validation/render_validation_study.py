"""Merge partial `dts-ppl validation-study --json` files into studies/validation/results/validation_study.{json,md,png} (no sampling).

    PYTHONPATH=. python studies/validation/render_validation_study.py \
        studies/validation/results/validation_study_simple.json studies/validation/results/validation_study_ddpm.json
"""

import json
import math
import sys

from dts_ppl.experiments.study import plot_study, study_table

order = {"linear": 0, "mlp": 1, "logistic": 2, "ddpm": 3}
rows = []
for path in sys.argv[1:]:
    try:
        rows += json.load(open(path))
    except FileNotFoundError:
        pass
rows.sort(key=lambda r: (order[r["preset"]], r["num_obs"], r["rule"] != "paper"))
json.dump(rows, open("studies/validation/results/validation_study.json", "w"), indent=2)
for r in rows:
    r["psis_khat"] = -math.inf if r["psis_khat"] is None else r["psis_khat"]
open("studies/validation/results/validation_study.md", "w").write(study_table(rows) + "\n")
plot_study(rows, "studies/validation/results/validation_study.png")
print(study_table(rows))
