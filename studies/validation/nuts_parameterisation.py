"""NUTS on a validation preset, centred vs non-centred: wall time, R-hat, ESS, leapfrog steps.

    PYTHONPATH=. python studies/validation/nuts_parameterisation.py ddpm 300 300 1 centred noncentred
    PYTHONPATH=. python studies/validation/nuts_parameterisation.py ddpm 1000 500 2 noncentred

Arguments: PRESET NUM_SAMPLES NUM_WARMUP NUM_CHAINS PARAMETERISATION... (float64, chains
sequential unless devices cover them). docs/results.md: the ddpm rows of the validation study.
"""

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

from dts_ppl.experiments.validation import make_problem  # noqa: E402
from dts_ppl.ppl.nuts import NutsSettings, nuts_diagnostics, run_nuts  # noqa: E402

preset, num_samples, num_warmup, num_chains = sys.argv[1], *(int(v) for v in sys.argv[2:5])
problem = make_problem(preset, jax.random.PRNGKey(0))
for parameterisation in sys.argv[5:]:
    start = time.time()
    settings = NutsSettings(
        num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains, parameterisation=parameterisation
    )
    result = run_nuts(
        problem.model, (problem.X, problem.A, problem.y), settings, jax.random.PRNGKey(1), progress_bar=False
    )
    print(
        f"{preset} {parameterisation}: {time.time() - start:.1f} s, {nuts_diagnostics(result)}, "
        f"mean leapfrog steps {float(result.sample_stats['num_steps'].mean()):.0f}",
        flush=True,
    )
