"""Bandit agents as NamedTuples of pure functions: ``Agent(init, act, update)``.

- :func:`dts`: diffusion Thompson sampling (incremental, docs/math.md section 6).
- :func:`hier_ts`: HierTS-1 (dTS on a one-level hierarchical prior).
- :func:`lin_ts`, :func:`lin_ucb`, :func:`glm_ts`, :func:`ucb_glm`: independent Gaussian
  baselines, given the diffusion prior's marginal (:func:`theta_marginal`).
- :func:`exact_ts`: Thompson sampling from the exact joint posterior (small K).
"""

from dts_ppl.agents.base import ActInfo, Agent
from dts_ppl.agents.dts import DTSState, dts, dts_posterior, hier_ts, hierarchical_prior
from dts_ppl.agents.exact import JointState, exact_ts
from dts_ppl.agents.linear import GaussianPrior, LinearState, glm_ts, lin_ts, lin_ucb, theta_marginal, ucb_glm

__all__ = [
    "ActInfo",
    "Agent",
    "DTSState",
    "GaussianPrior",
    "JointState",
    "LinearState",
    "dts",
    "dts_posterior",
    "exact_ts",
    "glm_ts",
    "hier_ts",
    "hierarchical_prior",
    "lin_ts",
    "lin_ucb",
    "theta_marginal",
    "ucb_glm",
]
