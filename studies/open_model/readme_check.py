"""The README's own-model example, checked against NUTS: writes the validation report as JSON.

Runs the README section "Your own model" (a diffusion chain, sigma ~ HalfNormal(1), per-user
intercepts; AutoDTS fitted by SVI) and records, per site, how far AutoDTS's posterior means are
from NUTS's in NUTS posterior sd, with the NUTS reference's diagnostics and gates.

Run (a few minutes on one core):
    python studies/open_model/readme_check.py [--out studies/open_model/readme_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_block() -> str:
    """The README's python block that defines ``model`` with ``diffusion_chain`` and fits AutoDTS."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    return next(b for b in blocks if "AutoDTS(model)" in b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "studies" / "open_model" / "readme_check.json"))
    args = ap.parse_args()
    namespace = {"__name__": "__main__"}
    start = time.perf_counter()
    exec(compile(readme_block(), "README.md own-model block", "exec"), namespace)
    wall = time.perf_counter() - start
    report = namespace["report"]
    result = {
        "command": "python studies/open_model/readme_check.py",
        "n": int(namespace["n"]),
        "criterion": "max |E_AutoDTS - E_NUTS| / sd_NUTS < 0.15 for theta, sigma, u; NUTS passes the gates",
        "passes": bool(
            report.reliable and all(report.sites[s].max_std_mean_error < 0.15 for s in ("theta", "sigma", "u"))
        ),
        "wall_s_block": wall,
        **report.to_dict(),
    }
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(json.dumps({k: result[k] for k in ("passes", "sites", "psis_khat")}, indent=2))


if __name__ == "__main__":
    main()
