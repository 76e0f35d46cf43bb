"""Bandit agents as NamedTuples of pure functions: ``Agent(init, act, update)``.

- :func:`dts`: diffusion Thompson sampling (incremental, docs/math.md section 6).
- :func:`hier_ts`: HierTS-1 (dTS on a one-level hierarchical prior).
- :func:`lin_ts`, :func:`lin_ucb`, :func:`glm_ts`, :func:`ucb_glm`: independent Gaussian
  baselines, given the diffusion prior's marginal (:func:`theta_marginal`).
- :class:`Refit`: the option of :func:`dts`, :func:`hier_ts` and :func:`lin_ts` that re-fits the
  noise scale and S_1 by empirical Bayes every m rounds (:mod:`dts_ppl.agents.refit`).
- :func:`exact_ts`: Thompson sampling from the exact joint posterior (small K).
- :func:`bank_ts` (the exact posterior of an empirical prior), :func:`mcmc_ts` (NUTS on the
  model every m rounds), :func:`random_policy` (the regret reference).

Each module registers its state classes (:mod:`dts_ppl.agents.registry`) so checkpoints can
save and load them.
"""

from dts_ppl.agents.base import ActInfo, Agent, AgentSpec
from dts_ppl.agents.batch import warm_start
from dts_ppl.agents.dts import DTSState, dts, dts_posterior, hier_ts, hierarchical_prior
from dts_ppl.agents.exact import JointState, exact_ts
from dts_ppl.agents.linear import GaussianPrior, LinearState, glm_ts, lin_ts, lin_ucb, theta_marginal, ucb_glm
from dts_ppl.agents.policy import Propensities, act_top_k, propensities
from dts_ppl.agents.refit import HyperState, Refit

__all__ = [
    "ActInfo",
    "act_top_k",
    "Agent",
    "AgentSpec",
    "DTSState",
    "GaussianPrior",
    "HyperState",
    "JointState",
    "LinearState",
    "Propensities",
    "Refit",
    "dts",
    "dts_posterior",
    "exact_ts",
    "glm_ts",
    "hier_ts",
    "hierarchical_prior",
    "lin_ts",
    "lin_ucb",
    "propensities",
    "theta_marginal",
    "ucb_glm",
    "warm_start",
]

# real-data agents: the empirical-prior ceiling and the random reference
from dts_ppl.agents.bank import BankState, bank_moments, bank_ts, effective_sample_size  # noqa: E402
from dts_ppl.agents.mcmc import MCMCState, mcmc_ts  # noqa: E402
from dts_ppl.agents.random_policy import RandomState, random_policy  # noqa: E402

__all__ += ["BankState", "RandomState", "bank_moments", "bank_ts", "effective_sample_size", "random_policy"]
__all__ += ["MCMCState", "mcmc_ts"]

# optimistic policies (Bayes-UCB, UCB) on the dTS / HierTS / LinTS posteriors
from dts_ppl.agents.posterior_policy import posterior_policy  # noqa: E402

__all__ += ["posterior_policy"]

# LaplaceDPS / DiffTS (Kveton et al. 2024) on the same diffusion priors
from dts_ppl.agents.laplace_dps import LaplaceDPSState, laplace_dps  # noqa: E402

__all__ += ["LaplaceDPSState", "laplace_dps"]
