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
# # dts_ppl quickstart: a diffusion prior, its closed-form posterior, and a check against NUTS
#
# We declare a linear diffusion prior over the parameters of K actions, simulate a bandit
# log, condition on it with the closed-form dTS guide, and compare with NUTS on the same
# NumPyro model. Set `DTS_PPL_FAST=1` for a quick run (the tests do).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from numpyro.infer import MCMC, NUTS, Predictive

from dts_ppl import BanditModel, DTSGuide, Gaussian, psis_khat
from dts_ppl.experiments.synthetic import random_linear_prior

jax.config.update("jax_enable_x64", True)
FAST = os.environ.get("DTS_PPL_FAST") == "1"

# %% [markdown]
# The prior: d = 5, two latent levels with 5 and 2 active columns (the paper's small setting).
# Actions share psi_1, so what we learn about one action moves the others.

# %%
key = jax.random.PRNGKey(0)
k_prior, k_truth, k_data, k_post, k_nuts = jax.random.split(key, 5)
d, K, n = 5, 8, 40
prior = random_linear_prior(k_prior, d, active_dims=[5, 2])
model = BanditModel(prior, num_actions=K, likelihood=Gaussian(1.0))
guide = DTSGuide(model)

truth = Predictive(model, num_samples=1, return_sites=["theta"])(k_truth)["theta"][0]
kx, ka, ky = jax.random.split(k_data, 3)
X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
A = jax.random.randint(ka, (n,), 0, K)
y = jnp.sum(X * truth[A], -1) + jax.random.normal(ky, (n,))

# %% [markdown]
# The closed-form posterior: draws, and exact per-level moments.

# %%
draws = guide.sample_posterior(k_post, guide.fit(X, A, y), sample_shape=(4000,))
mo = guide.moments(X, A, y)
print("psi draws", draws["psi"].shape, "theta draws", draws["theta"].shape)
print("posterior sd of theta_0:", np.sqrt(np.diag(mo.theta_cov[0])).round(3))
print("PSIS k-hat of the guide against the model:", round(psis_khat(k_post, model, guide, X, A, y), 3))

# %% [markdown]
# NUTS on the very same model. With linear links and Gaussian rewards dTS is exact, so the two
# must agree up to Monte-Carlo error.

# %%
mcmc = MCMC(NUTS(model), num_warmup=200 if FAST else 1000, num_samples=400 if FAST else 2000, progress_bar=False)
mcmc.run(k_nuts, X, A, y)
nuts = mcmc.get_samples()
err = np.abs(nuts["theta"].mean(0) - mo.theta_mean) / np.sqrt(np.diagonal(mo.theta_cov, axis1=1, axis2=2))
print(f"max |E_nuts - E_dTS| / sd over theta coordinates: {err.max():.3f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(9, 4))
for a, (i, j) in enumerate([(0, 1), (2, 3)]):
    ax[a].scatter(nuts["theta"][:, i, 0], nuts["theta"][:, j, 0], s=3, alpha=0.3, label="NUTS")
    ax[a].scatter(draws["theta"][:1000, i, 0], draws["theta"][:1000, j, 0], s=3, alpha=0.3, label="dTS guide")
    ax[a].set_xlabel(f"theta[{i}, 0]")
    ax[a].set_ylabel(f"theta[{j}, 0]")
ax[0].legend()
fig.suptitle("Two actions' first coordinates: correlated through the shared latent")
fig.tight_layout()
