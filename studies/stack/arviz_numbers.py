"""The numbers of to_inference_data, loo, compare and the README's ArviZ example on the installed stack.

Run under each interpreter (Python 3.11: jax 0.10, ArviZ 0.2x; Python 3.12: jax 0.12, ArviZ 1.x),
then compare the two JSON files:

    python studies/stack/arviz_numbers.py studies/stack/numbers-py311.json
    /path/to/py312/python studies/stack/arviz_numbers.py studies/stack/numbers-py312.json
    python studies/stack/arviz_numbers.py --compare studies/stack/numbers-py311.json studies/stack/numbers-py312.json
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_example() -> str:
    """The README's "Validate a guide against NUTS and inspect it with ArviZ" code block."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Validate a guide against NUTS") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def measure() -> dict:
    import io
    from contextlib import redirect_stdout

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from dts_ppl import DTSGuide, to_inference_data
    from dts_ppl.experiments.validation import make_problem
    from dts_ppl.ppl.inspection import compare, group_names, loo

    out = {
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("jax", "jaxlib", "numpyro", "arviz", "numpy")},
    }
    # 1. fixed arrays (no sampling): the two ArviZ versions on identical input
    rng = np.random.default_rng(1)
    y = rng.normal(size=20)
    mu = y.mean() + rng.normal(size=(2, 2000)) / np.sqrt(20)
    from dts_ppl.ppl.arviz_adapter import inference_data

    ll = -0.5 * (y[None, None] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    a = inference_data({"mu": mu}, log_likelihood={"y": ll}, observed_data={"y": y})
    b = inference_data({"mu": mu}, log_likelihood={"y": ll - 0.05}, observed_data={"y": y})
    r = loo(a)
    table = compare({"a": a, "b": b})
    out["fixed_arrays"] = {
        "elpd_loo": r.elpd_loo,
        "se": r.se,
        "p_loo": r.p_loo,
        "max_pareto_k": float(r.pareto_k.max()),
        "compare": table.round(6).to_dict(orient="index"),
    }
    # 2. to_inference_data of guide draws on the linear validation problem (jax draws)
    p = make_problem("linear", jax.random.PRNGKey(3), num_obs=12, num_actions=3)
    guide = DTSGuide(p.model)
    draws = guide.sample_posterior(jax.random.PRNGKey(0), guide.fit(p.X, p.A, p.y), sample_shape=(400,))
    idata = to_inference_data(p.model, draws, p.X, p.A, p.y, key=jax.random.PRNGKey(1))
    r = loo(idata)
    out["linear_guide"] = {
        "groups": sorted(group_names(idata)),
        "theta_mean": float(idata.posterior["theta"].values.mean()),
        "elpd_loo": r.elpd_loo,
        "se": r.se,
        "p_loo": r.p_loo,
        "max_pareto_k": float(r.pareto_k.max()),
    }
    # 3. the README example as printed
    ns: dict = {}
    start = time.perf_counter()
    with redirect_stdout(io.StringIO()) as printed:
        exec(compile(_readme_example(), "README.md", "exec"), ns)
    report, ig, inu = ns["report"], ns["idata_guide"], ns["idata_nuts"]
    lg, ln = loo(ig), loo(inu)
    table = compare({"dTS": ig, "NUTS": inu})
    out["readme"] = {
        "seconds": round(time.perf_counter() - start, 1),
        "printed": printed.getvalue(),
        "psis_khat": float(report.psis_khat),
        "sites": {
            name: {"max_std_mean_error": s.max_std_mean_error, "sd_ratio_min": float(np.min(s.sd_ratio))}
            for name, s in report.sites.items()
        },
        "nuts_rhat_max": float(report.nuts.rhat_max),
        "elpd_loo_guide": lg.elpd_loo,
        "elpd_loo_nuts": ln.elpd_loo,
        "se_guide": lg.se,
        "se_nuts": ln.se,
        "elpd_diff": float(table["elpd_diff"].max()),
        "dse": float(table["dse"].max()),
    }
    return out


def compare_files(first: str, second: str) -> None:
    """Print each number of the two files side by side with its difference."""
    a, b = (json.loads(Path(f).read_text()) for f in (first, second))
    print(f"{a['python']} {a['versions']}\n{b['python']} {b['versions']}")

    def walk(x, y, path=""):
        if isinstance(x, dict):
            for k in x:
                if k in y:
                    walk(x[k], y[k], f"{path}.{k}" if path else k)
        elif isinstance(x, int | float) and not isinstance(x, bool):
            print(f"{path:55s} {x:12.4f} {y:12.4f} {y - x:+10.4f}")

    walk(a, b)


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare_files(sys.argv[2], sys.argv[3])
    else:
        Path(sys.argv[1]).write_text(json.dumps(measure(), indent=1, sort_keys=True) + "\n")
