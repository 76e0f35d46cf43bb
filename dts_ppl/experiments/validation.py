"""Small simulated bandit problems for validating guides against NUTS (``dts-ppl validate --preset``).

Each preset draws a prior, true action parameters from it, uniform contexts in [-1, 1]^d,
round-robin actions and rewards from the likelihood; sizes are chosen so that NUTS finishes
in about a minute on two CPU cores.

- ``linear``: linear links, Gaussian rewards (the guide is exact).
- ``mlp``: random two-layer ReLU links (:func:`dts_ppl.experiments.synthetic.random_mlp_prior`), Gaussian rewards.
- ``logistic``: linear links, Bernoulli rewards (``Bernoulli().regularised_for`` the prior of theta).
- ``ddpm``: the trained Swiss-roll DDPM prior shipped in ``dts_ppl/models/swissroll_L40.npz``
  (d = 2, L = 40 levels, :mod:`dts_ppl.experiments.swissroll`), Gaussian rewards. NUTS runs on the
  non-centred model with a dense mass matrix (:data:`NUTS_SETTINGS`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl.agents.linear import theta_marginal
from dts_ppl.core import inference as core
from dts_ppl.core.likelihoods import Bernoulli, Gaussian
from dts_ppl.experiments.swissroll import MODELS_DIR
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior
from dts_ppl.io.prior_files import load_prior
from dts_ppl.ppl.model import BanditModel
from dts_ppl.ppl.nuts import NutsSettings

PRESETS = ("linear", "mlp", "logistic", "ddpm")
DEFAULT_NUM_OBS = {"linear": 50, "mlp": 50, "logistic": 100, "ddpm": 30}
SWISSROLL_FILE = "swissroll_L40.npz"
# NUTS settings per preset, chosen so that the reference passes the quality gates
# (ReferenceGates: no divergences, R-hat <= 1.01, bulk and tail ESS >= 400) at n = 10, 50 and 200
# (docs/validation.md). The simple presets use NutsSettings' defaults. The DDPM chain's
# conditionals (variance beta_l, down to ~1e-4) are much narrower than its marginals, a geometry
# centred NUTS crawls through: it runs non-centred, with a dense mass matrix for the correlated
# raw sites.
NUTS_SETTINGS: dict[str, NutsSettings] = {
    "linear": NutsSettings(),
    "mlp": NutsSettings(),
    "logistic": NutsSettings(),
    "ddpm": NutsSettings(
        parameterisation="noncentred",
        dense_mass=True,
        target_accept_prob=0.95,  # 0.9 left divergences in the study's n = 50 reference
        num_warmup=1000,
        num_chains=4,
    ),
}
NUTS_PARAMETERISATION = {name: s.parameterisation for name, s in NUTS_SETTINGS.items()}


class Problem(NamedTuple):
    """A model with simulated data: X (n, d), A (n,), y (n,), and the theta (K, d) that made y."""

    name: str
    model: BanditModel
    X: jax.Array
    A: jax.Array
    y: jax.Array
    theta: jax.Array


def _prior(name: str, key):
    if name in ("linear", "logistic"):
        return random_linear_prior(key, 3, active_dims=(3, 2))
    if name == "mlp":
        return random_mlp_prior(key, 2, num_levels=2, hidden=10)
    if name == "ddpm":
        path = MODELS_DIR / SWISSROLL_FILE
        if not path.exists():
            raise ValueError(f"preset: 'ddpm' needs the trained prior {path}, which is missing")
        prior = load_prior(path)[0]  # stored in float32; compute in the default float type
        return jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(float)), prior)
    raise ValueError(f"preset: expected one of {PRESETS}, got {name!r}")


def make_problem(name: str, key, num_obs: int | None = None, num_actions: int = 5) -> Problem:
    """Simulate the preset ``name`` with ``num_obs`` observations (default :data:`DEFAULT_NUM_OBS`)."""
    prior = _prior(name, jax.random.fold_in(key, 0))
    num_obs = DEFAULT_NUM_OBS[name] if num_obs is None else num_obs
    if int(num_obs) != num_obs or num_obs < 0:
        raise ValueError(f"num_obs: expected a non-negative integer, got {num_obs!r}")
    likelihood = Gaussian(1.0)
    if name == "logistic":  # expand around the fit regularised at the prior's scale (likelihoods.py)
        likelihood = Bernoulli().regularised_for(theta_marginal(prior).cov)
    model = BanditModel(prior, num_actions, likelihood)
    k_theta, k_x, k_y = jax.random.split(jax.random.fold_in(key, 1), 3)
    _, theta = core.sample(k_theta, prior, core.prior_conditionals(prior, num_actions))
    X = jax.random.uniform(k_x, (num_obs, prior.dim), prior.cov1.dtype, minval=-1.0, maxval=1.0)
    A = jnp.arange(num_obs) % num_actions
    y = likelihood.sample(k_y, jnp.sum(X * theta[A], -1)).astype(X.dtype)
    return Problem(name, model, X, A, y, theta)
