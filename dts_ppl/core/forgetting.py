"""Exponential forgetting of the evidence for rewards that drift (docs/math.md section 11).

With a discount gamma in (0, 1], every accepted round multiplies every group's statistics
(G_g, b_g) by gamma before the round's row is added (time-based forgetting: all groups decay,
played or not). An observation s rounds old then carries weight gamma^s: for Gaussian rewards
the statistics are exactly those of the same data with noise variance sigma^2 / gamma^s, so the
posterior is exact for that model (tests/core/test_forgetting.py checks it against weighted least
squares and the joint-Gaussian oracle). GLM rewards carry the same weights in their ring buffer
(:func:`dts_ppl.core.likelihoods.ring_weights`).

A group that is no longer played loses its evidence geometrically: its conditional tends to the
prior's, theta_g | psi_1 ~ N(f_1(psi_1), S_1) for dTS (the conditional prior, under a latent
posterior that the other groups' recent evidence still informs), N(m, Sigma) for the
independent-prior baselines. Since every group's statistics change each round, the agents
re-condition every group and re-sum the messages to psi_1 (:func:`condition_groups`), O(M d^3)
per round instead of O(d^3).

gamma = 1 is no forgetting and runs the plain updates bit for bit.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp

from dts_ppl.core import inference as _inference
from dts_ppl.core.likelihoods import ActionStats, Evidence, forgets
from dts_ppl.core.rows import write

__all__ = [
    "check_discount",
    "check_forgetting_likelihood",
    "condition_groups",
    "discount_for_window",
    "drift_window",
    "effective_window",
    "forgets",
    "observe",
    "observe_rows",
]


def check_discount(discount: float) -> float:
    """The discount gamma as a Python float in (0, 1] (1.0: no forgetting); ValueError otherwise."""
    if isinstance(discount, bool) or not isinstance(discount, int | float) and not hasattr(discount, "__float__"):
        raise ValueError(f"discount: expected a number in (0, 1] (1.0: no forgetting), got {discount!r}")
    try:
        value = float(discount)
    except (TypeError, ValueError):
        value = math.nan
    if not (0.0 < value <= 1.0):
        raise ValueError(f"discount: expected a number in (0, 1] (1.0: no forgetting), got {discount!r}")
    return value


def check_forgetting_likelihood(likelihood, discount: float) -> None:
    """ValueError when ``discount`` < 1 and the likelihood's updates take no ``discount`` (a custom likelihood)."""
    if not forgets(discount):
        return
    for method in ("propose_observation", "propose_observations"):
        fn = getattr(likelihood, method, None)
        if fn is None or "discount" not in inspect.signature(fn).parameters:
            raise ValueError(
                f"discount: {type(likelihood).__name__}.{method} takes no discount= (forgetting needs the "
                "likelihood to weigh its evidence; Gaussian, Bernoulli and Poisson do)"
            )


def effective_window(discount: float) -> float:
    """1 / (1 - gamma): the total weight sum_s gamma^s of a stream, the rounds it remembers (inf at 1)."""
    gamma = check_discount(discount)
    return math.inf if gamma == 1.0 else 1.0 / (1.0 - gamma)


def discount_for_window(window: float) -> float:
    """The discount 1 - 1 / window whose :func:`effective_window` is ``window`` (>= 1 rounds)."""
    if isinstance(window, bool) or not isinstance(window, int | float) or not (window >= 1.0):
        raise ValueError(f"window: expected a number of rounds >= 1, got {window!r}")
    return 1.0 - 1.0 / float(window)


def drift_window(
    noise_var: float, num_actions: int, context_second_moment: float, action_var: float, drift_rounds: float
) -> float:
    """The stated rule's window: W = sqrt(sigma^2 K tau / (E[x_i^2] v)) rounds (docs/math.md section 11).

    W balances an action's estimation variance per coordinate from the W / K pulls it gets in W
    rounds, sigma^2 K / (W E[x_i^2]), against the variance the drift adds over the window,
    W v / tau (the action's own parameter changes by variance v every tau rounds). For dTS, v is
    the mean diagonal of S_1, the covariance of an action given psi_1: the part of theta that only
    the action's own pulls teach and that decides which action is best (the shared part f_1(psi_1)
    moves every action's reward alike and is learnt from every round).

    Args:
        noise_var: sigma^2 > 0.   num_actions: K >= 1.   context_second_moment: E[x_i^2] > 0.
        action_var: v > 0.   drift_rounds: tau > 0.

    Returns:
        W in rounds (:func:`discount_for_window` gives gamma = 1 - 1 / W).
    """
    for name, value in (
        ("noise_var", noise_var),
        ("num_actions", num_actions),
        ("context_second_moment", context_second_moment),
        ("action_var", action_var),
        ("drift_rounds", drift_rounds),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return math.sqrt(noise_var * num_actions * drift_rounds / (context_second_moment * action_var))


def condition_groups(prior_prec: jax.Array, stats: ActionStats) -> tuple[_inference.Conditionals, _inference.Message]:
    """Condition every group on its statistics and sum their messages to the parent.

    Args:
        prior_prec: (d, d) the prior precision of each group's parameter given its parent.
        stats: (M, d, d), (M, d) statistics.

    Returns:
        (Conditionals with (M, d, d), (M, d), (M, d, d) fields from
        :func:`dts_ppl.core.inference.condition`, Message (d, d), (d,): the sum over groups).
    """
    cond, msgs = jax.vmap(_inference.condition, in_axes=(None, 0, 0))(prior_prec, stats.G, stats.b)
    return cond, jax.tree.map(lambda m: jnp.sum(m, axis=0), msgs)


def observe(
    likelihood,
    prior_prec: jax.Array,
    evidence: Evidence,
    phi: jax.Array,
    group: jax.Array,
    y: jax.Array,
    newton_steps: int,
    discount: float,
) -> tuple[Evidence, _inference.Conditionals, _inference.Message]:
    """One round with forgetting: every group decays by gamma, the row is added, every group re-conditioned.

    Args:
        likelihood: the agent's likelihood.   prior_prec: (d, d).   evidence: Evidence (M groups).
        phi: (d,) the played row.   group: () int.   y: () reward.   newton_steps: GLM refit steps.
        discount: gamma in (0, 1).

    Returns:
        (new Evidence (whole arrays, nothing written), Conditionals (M, ...), Message: the summed
        messages of all groups to the parent).
    """
    proposal, _, _ = likelihood.propose_observation(evidence, phi, group, y, newton_steps, discount=discount)
    ev = write(evidence, proposal)
    cond, total = condition_groups(prior_prec, ev.stats)
    return ev, cond, total


def observe_rows(
    likelihood,
    prior_prec: jax.Array,
    evidence: Evidence,
    phi: jax.Array,
    group: jax.Array,
    y: jax.Array,
    ok: jax.Array,
    discount: float,
) -> tuple[jax.Array, Evidence, _inference.Conditionals, _inference.Message]:
    """A batch with forgetting: its good rows are n_ok rounds in row order (:func:`observe` row by row).

    Args:
        phi: (n, d).   group: (n,).   y: (n,).   ok: (n,) bool.   Others as :func:`observe`.

    Returns:
        (n_ok () int32, new Evidence, Conditionals (M, ...), summed Message).
    """
    ev = likelihood.propose_observations(evidence, phi, group, y, ok, discount=discount)
    cond, total = condition_groups(prior_prec, ev.stats)
    return jnp.sum(ok, dtype=jnp.int32), ev, cond, total
