# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How good is the dTS posterior? Validation against NUTS
#
# dTS replaces the exact posterior of a diffusion prior by a closed form. It is exact for linear
# links with Gaussian rewards, and approximate otherwise: nonlinear links are linearised in the
# upward pass (MATH.md section 4) and GLM rewards are Gaussianised around the MLE (section 2).
# Here NUTS on the same NumPyro model is the reference, and `dts_ppl.ppl.validate` measures the gap
# per latent site: the error of the posterior mean in NUTS standard deviations (next to its
# Monte-Carlo error), the ratio of standard deviations, and the energy distance next to the
# distance between two halves of the NUTS run (its noise floor).
#
# Set `DTS_PPL_FAST=1` to run everything at toy sizes (the tests do).

# %%
import os

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

jax.config.update("jax_enable_x64", True)

from dts_ppl.experiments.study import approximation_study, study_problem, study_table  # noqa: E402
from dts_ppl.experiments.validation import NUTS_SETTINGS  # noqa: E402
from dts_ppl.ppl.inspection import plot_comparison, to_inference_data  # noqa: E402

SMALL = os.environ.get("DTS_PPL_FAST") == "1"
NUTS = dict(num_samples=60, num_warmup=60) if SMALL else dict(num_samples=800, num_warmup=400)  # NutsSettings fields
PRESETS = ("linear",) if SMALL else ("linear", "mlp", "logistic")
NUM_OBS = (5,) if SMALL else (10, 50, 200)

# %% [markdown]
# ## Error as the number of observations grows
#
# For each preset and sample size one NUTS run is the reference and the guide under the paper's
# rules ("identity" linearisation, near-MLE GLM expansion) and under the new defaults (iterated
# linearisation, prior-regularised expansion) is compared with it. `dts-ppl validation-study`
# runs the same function and writes studies/validation/results/validation_study.* (docs/validation.md).

# %%
reports = {}
settings = {p: NUTS_SETTINGS[p]._replace(**NUTS) for p in PRESETS}
rows = approximation_study(
    PRESETS, NUM_OBS, key=jax.random.PRNGKey(0), progress=False, reports=reports, settings=settings, max_attempts=1
)
print(study_table(rows))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
for preset, lin in dict.fromkeys((r["preset"], r["rule"]) for r in rows):
    sel = [r for r in rows if r["preset"] == preset and r["rule"] == lin]
    n = [r["num_obs"] for r in sel]
    for ax, site in zip(axes, ("psi", "theta"), strict=True):
        ax.plot(n, [r[f"{site}_max_std_mean_error"] for r in sel], "o-", label=f"{preset} / {lin}")
for ax, site in zip(axes, ("psi", "theta"), strict=True):
    ax.set(xscale="log", yscale="log", xlabel="observations n", title=f"{site}: max |E_dTS - E_NUTS| / sd_NUTS")
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig("validation_study.png", dpi=110)

# %% [markdown]
# ## One problem in detail: random MLP links
#
# The `mlp` preset with 50 observations: a two-level diffusion prior whose links are random
# two-layer ReLU networks, five actions, Gaussian rewards, and the guide under the new defaults
# (iterated linearisation). (At toy size: the linear preset.)

# %%
preset, n, lin = ("linear", NUM_OBS[0], "new") if SMALL else ("mlp", 50, "new")
report = reports[(preset, n, lin)]
print(report)

# %% [markdown]
# Forest plot of every coordinate (90% intervals) under the guide and under NUTS, and the joint
# draws of the top latent's first coordinate against theta[0, 0].

# %%
problem = study_problem(preset, jax.random.PRNGKey(0), max(NUM_OBS))
data = (problem.X[:n], problem.A[:n], problem.y[:n])  # the study's first n observations
sets = {
    f"dTS guide ({lin})": to_inference_data(problem.model, report.guide_samples, *data, key=jax.random.PRNGKey(2)),
    "NUTS": to_inference_data(problem.model, report.nuts_result, *data, key=jax.random.PRNGKey(2)),
}
fig = plot_comparison(sets, "validation_detail.png", title=f"{preset} preset, n = {n}: dTS guide vs NUTS")
