"""dTS vs NUTS on the trained Swiss-roll DDPM prior, for each linearisation (README numbers).

    PYTHONPATH=. python benchmarks/validation_ddpm.py [NUM_SAMPLES]   # default 300 (and as many warm-up)

One NUTS run (2 chains, vectorized) on the ``ddpm`` preset (n = 30) and the three linearisations
compared with it. NUTS runs on the non-centred model (``BanditModel.noncentred``).
"""

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

from dts_ppl import DTSGuide  # noqa: E402
from dts_ppl.validate import compare, validate  # noqa: E402
from dts_ppl.validation_presets import make_problem  # noqa: E402

num = int(sys.argv[1]) if len(sys.argv) > 1 else 300
p = make_problem("ddpm", jax.random.PRNGKey(0))
print(p.model)
t = time.time()
report = validate(
    p.model,
    DTSGuide(p.model),
    p.X,
    p.A,
    p.y,
    key=jax.random.PRNGKey(1),
    num_samples=num,
    num_warmup=num,
    progress_bar=False,
    chain_method="vectorized",
    nuts_parameterisation="noncentred",
)
print(f"NUTS + comparison: {time.time() - t:.0f} s\nidentity\n{report}", flush=True)
for lin in ("jacobian", "iterated"):
    other = compare(p.model, DTSGuide(p.model, lin), p.X, p.A, p.y, report.nuts_result, key=jax.random.PRNGKey(2))
    print(f"{lin}\n{other}", flush=True)
