"""The paper's remaining experiments: builders of the regret presets named in :mod:`~dts_ppl.experiments.registry`.

- ``fig2b-d{5,10,15,20}``, ``fig2b-L{2,4,5,6}``: Figure 2b, dTS (and LinTS) on linear diffusion,
  linear rewards, one parameter varied at a time around the base of Figure 1's K = 100 panels:
  K = 100, d = 5, L = 2, n = 5000, active columns (d_1, ..., d_L) = (d, 2, ..., 2) (the base's
  (5, 2) with d_1 = d and every level above keeping 2 active columns), S_l = I, noise 1.
  ``fig2b-full-L*`` repeats the L sweep with every column active (d_l = d, MATH.md section 1).
- ``fig2c-paper-v{0.5,1,1.5}``: Figure 2c as printed: dTS gets W_l + eps_1 and S_l + eps_2 with
  eps ~ U[v, v + 0.5]^{d x d} on every entry (zeroed columns included), S_l + eps_2 symmetrised
  and its eigenvalues clipped at ``EIG_FLOOR`` (:func:`paper_perturbation`). LinTS is run twice:
  with the true marginal ("LinTS") and with the perturbed prior's marginal ("LinTS (perturbed)").
  The problem is the one of the existing ``fig2c-v*`` presets (same key split), whose v = 0 row
  is the unperturbed reference.
- ``lints-prior-*``: LinTS with the exact marginal of the diffusion prior (what the baselines
  get here, MATH.md section 8) against LinTS with N(0, I), on the problems of ``fig2a-k*`` and
  ``fig1-lindiff-lin-k10000`` (same key split, hence the same theta draws).
- ``fig6-k10000``: Figure 6's setting for the regret bound (d = 5, K = 10^4, L = 5, n = 1000),
  built to satisfy the bound's assumptions: W_l ~ U[-1, 1]^{d x d} rescaled to
  lambda_1(W_l^T W_l) = 1, contexts uniform on the unit sphere.
- ``table2-mcmc``: the paper's Table 2 comparison (dTS vs Thompson sampling with an MCMC
  posterior) at a scale a 2-core CPU runs: K = 20, d = 5, L = 2, n = 300 (``TABLE2``).
"""

from __future__ import annotations

import importlib
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dts_ppl import agents as ag
from dts_ppl.agents.mcmc import mcmc_ts
from dts_ppl.bandits.envs import Environment, diffusion_environment
from dts_ppl.core import checks as _checks
from dts_ppl.core.likelihoods import Gaussian
from dts_ppl.core.prior import DiffusionPrior
from dts_ppl.experiments.regret import SIZES, PaperSizes
from dts_ppl.experiments.synthetic import paper_environment, random_linear_prior


class Fig2bBase(NamedTuple):
    """The problem the Figure 2b sweeps vary one size of."""

    num_actions: int = 100
    dim: int = 5
    num_levels: int = 2


class Table2Config(NamedTuple):
    """The ``table2-mcmc`` problem and its run size."""

    num_actions: int = 20
    dim: int = 5
    active_dims: tuple[int, ...] = (5, 2)
    rounds: int = 300
    runs: int = 10
    refresh_every: int = 10


class McmcBudget(NamedTuple):
    """NUTS warm-up transitions and thinning per MCMC-TS refresh."""

    num_warmup: int
    thinning: int


class Fig6Config(NamedTuple):
    """Figure 6's setting for the regret bound."""

    num_actions: int = 10000
    dim: int = 5
    num_levels: int = 5
    rounds: int = 1000
    runs: int = 10


#: Figure 1's K = 100 base of the Figure 2b sweeps.
BASE = Fig2bBase()
FIG2B_D = (5, 10, 15, 20)
FIG2B_L = (2, 4, 5, 6)
FIG2C_V = ("0.5", "1", "1.5")
#: Smallest eigenvalue kept when repairing a perturbed covariance S_l + eps_2.
EIG_FLOOR = 1e-3
#: The Figure 1 / 2a problem sizes these presets rebuild (``experiments.regret.SIZES``).
K100 = SIZES[100]
K10000 = SIZES[10000]
FIG2A_K = (10, 100, 500, 5000, 50000)
#: Table 2 at this machine's scale, and the two MCMC budgets (warm-up, thinning) per refresh.
TABLE2 = Table2Config()
MCMC_FAST = McmcBudget(num_warmup=10, thinning=1)
MCMC_SLOW = McmcBudget(num_warmup=50, thinning=3)


def fig2b_active_dims(dim: int, num_levels: int) -> tuple:
    """(d, 2, ..., 2): the base's (5, 2) with d_1 = d and 2 active columns at every higher level."""
    return (dim,) + (min(2, dim),) * (num_levels - 1)


def fig2b(dim: int, num_levels: int, full: bool = False):
    """Builder of a Figure 2b point: d and L around :data:`BASE` (``full``: every column active)."""
    active = (dim,) * num_levels if full else fig2b_active_dims(dim, num_levels)
    K = BASE.num_actions

    def build(key, num_rounds):
        del num_rounds
        prior = random_linear_prior(jax.random.split(key)[0], dim, active)
        env = diffusion_environment(prior, K, Gaussian(1.0), name=f"linear/linear, K={K}, d={dim}, L={num_levels}")
        marginal = ag.theta_marginal(prior)
        return env, {"dTS": ag.dts(prior, Gaussian(1.0), K), "LinTS": ag.lin_ts(marginal, Gaussian(1.0), K)}

    return build


def repair_covariance(s, floor: float = EIG_FLOOR):
    """Nearest-in-spectrum PSD repair: symmetrise, then clip eigenvalues below ``floor``. s (n, n)."""
    s = 0.5 * (s + s.T)
    eig, vec = jnp.linalg.eigh(s)
    return (vec * jnp.maximum(eig, floor)) @ vec.T


def paper_perturbation(key, prior: DiffusionPrior, v: float) -> DiffusionPrior:
    """The paper's Figure 2c prior: W_l + eps_1, S_l + eps_2 (repaired), eps ~ U[v, v + 0.5]^{n x n}.

    Every entry is perturbed (the paper's W_l + eps_1; zeroed columns become active) and every
    S_1..S_{L+1}; each S_l + eps_2 goes through :func:`repair_covariance`.
    """
    key = _checks.check_key(key)
    weights = [prior.link(level).weight for level in range(1, prior.num_levels + 1)]
    covs = [prior.cov1] + list(prior.covs)
    k_w, k_s = jax.random.split(key)
    noisy_w = [
        w + jax.random.uniform(k, w.shape, w.dtype, v, v + 0.5)
        for k, w in zip(jax.random.split(k_w, len(weights)), weights, strict=True)
    ]
    noisy_s = [
        repair_covariance(s + jax.random.uniform(k, s.shape, s.dtype, v, v + 0.5))
        for k, s in zip(jax.random.split(k_s, len(covs)), covs, strict=True)
    ]
    return DiffusionPrior.linear(noisy_w, noisy_s)


def fig2c_paper(v: float):
    """Builder of Figure 2c as printed: dTS gets :func:`paper_perturbation` of the true prior."""

    def build(key, num_rounds):
        del num_rounds
        k_prior, k_noise, _ = jax.random.split(key, 3)  # the split of regret._misspecified: same problem
        env, prior = paper_environment(k_prior, "linear", "linear", 100, *K100)
        env = env._replace(name=f"Figure 2c as printed, v={v}: {env.name}")
        wrong = paper_perturbation(k_noise, prior, v)
        return env, {
            "dTS": ag.dts(wrong, Gaussian(1.0), 100),
            "LinTS": ag.lin_ts(ag.theta_marginal(prior), Gaussian(1.0), 100),
            "LinTS (perturbed)": ag.lin_ts(ag.theta_marginal(wrong), Gaussian(1.0), 100),
        }

    return build


def lints_prior(num_actions: int, sizes: PaperSizes):
    """Builder: LinTS with the exact marginal against LinTS with N(0, I) on a Figure 1 / 2a problem."""

    def build(key, num_rounds):
        del num_rounds
        env, prior = paper_environment(jax.random.split(key)[0], "linear", "linear", num_actions, *sizes)
        d = prior.dim
        unit = ag.GaussianPrior(jnp.zeros(d, prior.cov1.dtype), jnp.eye(d, dtype=prior.cov1.dtype))
        return env, {
            "LinTS": ag.lin_ts(ag.theta_marginal(prior), Gaussian(1.0), num_actions),
            "LinTS (N(0, I))": ag.lin_ts(unit, Gaussian(1.0), num_actions),
        }

    return build


def normalised_linear_prior(key, dim: int, num_levels: int) -> DiffusionPrior:
    """W_l ~ U[-1, 1]^{d x d} divided by its largest singular value (lambda_1(W^T W) = 1), S_l = I."""
    key = _checks.check_key(key)
    ws = []
    for k in jax.random.split(key, num_levels):
        w = jax.random.uniform(k, (dim, dim), minval=-1.0, maxval=1.0)
        ws.append(w / jnp.linalg.norm(w, ord=2))
    return DiffusionPrior.linear(ws, [1.0] * (num_levels + 1))


def sphere_contexts(dim: int, dtype=None):
    """Contexts uniform on the unit sphere in R^d (||x||_2 = 1, as the bound assumes)."""
    dtype = dtype or jnp.result_type(float)

    def sample(key):
        z = jax.random.normal(key, (dim,), dtype)
        return z / jnp.linalg.norm(z)

    return sample


FIG6 = Fig6Config()


def fig6_environment(key) -> tuple[Environment, DiffusionPrior]:
    """Figure 6's problem, built to meet the bound's assumptions (module docstring)."""
    key = _checks.check_key(key)
    prior = normalised_linear_prior(key, FIG6.dim, FIG6.num_levels)
    env = diffusion_environment(
        prior,
        FIG6.num_actions,
        Gaussian(1.0),
        contexts=sphere_contexts(FIG6.dim, prior.cov1.dtype),
        name="Figure 6: linear/linear, K=10^4, d=5, L=5, ||x||=1, lambda_1(W^T W)=1",
    )
    return env, prior


def fig6(key, num_rounds):
    """Builder of ``fig6-k10000``: dTS against LinTS on :func:`fig6_environment`."""
    key = _checks.check_key(key)
    del num_rounds
    env, prior = fig6_environment(jax.random.split(key)[0])
    K = FIG6.num_actions
    return env, {"dTS": ag.dts(prior, Gaussian(1.0), K), "LinTS": ag.lin_ts(ag.theta_marginal(prior), Gaussian(1.0), K)}


def table2_environment(key) -> tuple[Environment, DiffusionPrior]:
    """The small linear-diffusion problem of ``table2-mcmc`` (``TABLE2``)."""
    key = _checks.check_key(key)
    return paper_environment(key, "linear", "linear", TABLE2.num_actions, TABLE2.dim, TABLE2.active_dims, 20)


def table2(key, num_rounds):
    """Builder of ``table2-mcmc``: dTS, MCMC-TS (fast and slow budgets) and LinTS."""
    key = _checks.check_key(key)
    del num_rounds
    env, prior = table2_environment(jax.random.split(key)[0])
    K, m = TABLE2.num_actions, TABLE2.refresh_every
    return env, {
        "dTS": ag.dts(prior, Gaussian(1.0), K),
        "MCMC-TS (fast)": mcmc_ts(prior, Gaussian(1.0), K, refresh_every=m, **MCMC_FAST._asdict()),
        "MCMC-TS (slow)": mcmc_ts(prior, Gaussian(1.0), K, refresh_every=m, **MCMC_SLOW._asdict()),
        "LinTS": ag.lin_ts(ag.theta_marginal(prior), Gaussian(1.0), K),
    }


def presets() -> dict:
    """Deprecated: the presets of these builders, now declared in :mod:`dts_ppl.experiments.registry`."""
    registry = importlib.import_module("dts_ppl.experiments.registry")  # it imports this module
    warnings.warn("paper_extra.presets() is deprecated; use dts_ppl.experiments.registry", DeprecationWarning, 2)
    return {p.name: p for p in registry.paper_extra_presets()}
