"""A stateful wrapper for people who would rather not thread keys and states: ``Bandit``.

    bandit = Bandit(agents.dts(prior, num_actions=K), jax.random.PRNGKey(0))
    a = bandit.choose(x)                # one context (d,)  -> int
    A = bandit.choose(X)                # a batch (n, d)    -> (n,) actions, all on the current state
    bandit.partial_fit(X, A, y)         # rewards, in batches, late, in any order
    bandit.partial_fit(x, a, r)         # or one row: x (d,), a and r scalars
    p = bandit.propensities(x)          # P(A = a | x, state), (K,)
    bandit.save("bandit.npz"); bandit = Bandit.load("bandit.npz", agent)

A catalogue that changes: wrap the agent factory in :func:`dts_ppl.agents.catalogue.catalogue`;
actions are then stable ids, ``new_id = bandit.add_action()`` (grows the capacity, doubling it,
when no slot is free: one recompilation), ``bandit.retire([id])`` and ``bandit.action_ids``.

A thin layer over the functional agents: ``choose`` is :func:`dts_ppl.agents.policy.act`
(masks) or :func:`~dts_ppl.agents.policy.act_top_k`, ``partial_fit`` is ``agent.update_batch``,
``propensities`` is :func:`dts_ppl.agents.policy.propensities`, ``save`` / ``load`` are
:func:`dts_ppl.io.state_files.save_state` / ``load_state`` with the PRNG key in the metadata, so
a loaded bandit continues bit-identically; ``load`` refuses a checkpoint whose agent had another
model (prior arrays, likelihood parameters, options) unless ``allow_mismatch=True``. Inputs are
validated eagerly, then the jitted agent functions run (one compilation per input shape).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dts_ppl.agents import batch as _batch
from dts_ppl.agents import policy
from dts_ppl.agents.base import Agent, check_context
from dts_ppl.agents.catalogue import Catalogue, grow, slots_of
from dts_ppl.core.likelihoods import Bernoulli, Gaussian, Poisson
from dts_ppl.io.state_files import load_state, read_state_header, save_state

_LIKELIHOOD_CHECKS = {"gaussian": Gaussian(), "bernoulli": Bernoulli(), "poisson": Poisson()}
_KEY = "bandit_key"


def _check_key(key):
    arr = jnp.asarray(key)
    if arr.shape != (2,) or arr.dtype != jnp.uint32:
        raise ValueError(f"key: expected a jax.random.PRNGKey (shape (2,), uint32), got {arr.shape} {arr.dtype}")
    return arr


def _numeric(name: str, value, expected: str) -> np.ndarray:
    """``value`` as a numpy array of numbers (bool, int or float), else ValueError naming ``name``."""
    if value is None or isinstance(value, str | bytes):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: expected {expected} ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected {expected}, got an array of dtype {arr.dtype}")
    return arr


class Bandit:
    """A dts_ppl agent with its state and PRNG key (see the module docstring).

    Args:
        agent: an Agent from a dts_ppl factory (``agents.dts``, ``agents.lin_ts``, ...).
        key: a ``jax.random.PRNGKey``; every call that needs randomness splits it.
        state: a starting state (default ``agent.init()``; e.g. from ``agents.warm_start``).
    """

    def __init__(self, agent: Agent | Catalogue, key: jax.Array, state: Any = None) -> None:
        is_cat = isinstance(agent, Catalogue)
        if not is_cat and (not isinstance(agent, Agent) or agent.spec is None or agent.update_batch is None):
            raise ValueError(
                f"agent: expected an Agent from a dts_ppl factory or a Catalogue, got {type(agent).__name__}"
            )
        self.key = _check_key(key)
        self.metadata: dict = {}
        self._bind(agent, agent.init() if state is None else state)

    def _bind(self, agent, state) -> None:
        """Use ``agent`` (an Agent or a Catalogue) with ``state``; (re)build the jitted functions."""
        self.agent = agent
        self.state = state
        self._catalogue = isinstance(agent, Catalogue)
        spec = agent.spec
        self._single_ndim = 2 if spec.shared else 1
        if self._catalogue:
            self._act = jax.jit(lambda k, s, x, m: agent.act(k, s, x)[0])
            self._act_many = jax.jit(jax.vmap(lambda k, s, x, m: agent.act(k, s, x)[0], (0, None, 0, None)))
        else:
            self._act = jax.jit(lambda k, s, x, m: policy.act(agent, k, s, x, m)[0])
            self._act_many = jax.jit(jax.vmap(lambda k, s, x, m: policy.act(agent, k, s, x, m)[0], (0, None, 0, None)))
        self._update = jax.jit(agent.update_batch)

    @property
    def action_ids(self) -> np.ndarray:
        """The ids of the actions that can be chosen, ascending: (n,) int (0..K-1 without a catalogue)."""
        if not self._catalogue:
            return np.arange(self.agent.spec.num_actions)
        return np.sort(np.asarray(self.state.ids)[np.asarray(self.state.active)])

    def _need_catalogue(self, what: str) -> None:
        if not self._catalogue:
            raise ValueError(
                f"agent: {what} needs a catalogue; build the bandit on "
                "dts_ppl.agents.catalogue.catalogue(lambda K: factory(..., num_actions=K), capacity)"
            )

    def add_action(self, prior_mean: ArrayLike | None = None, prior_cov: ArrayLike | None = None) -> int:
        """Add one action; returns its new stable id.

        It starts from the agent's prior for one action (for dTS: its conditional prior given the
        latent posterior), times the Gaussian pseudo-observation ``prior_mean`` (d,) with covariance
        ``prior_cov`` (d, d) when given (:mod:`dts_ppl.agents.catalogue`). When every slot is
        taken the capacity doubles (:func:`~dts_ppl.agents.catalogue.grow`; one recompilation).
        """
        self._need_catalogue("add_action")
        if not bool(np.any(np.asarray(self.state.ids) < 0)):
            self._bind(*grow(self.agent, self.state, 2 * self.agent.spec.num_actions))
        if prior_mean is not None:
            prior_mean = jnp.asarray(_numeric("prior_mean", prior_mean, "a mean vector (d,)"))[None]
        state, new = self.agent.add_actions(self.state, 1, prior_mean, prior_cov)
        self.state = state
        return int(new[0])

    def retire(self, ids: ArrayLike, forget: bool = False) -> Bandit:
        """Retire actions by id (never chosen again; their slots are freed); returns self.

        ``forget=False`` (default): a retired action's evidence keeps informing the latents of
        dTS / HierTS; ``forget=True`` removes it (:mod:`dts_ppl.agents.catalogue`).
        """
        self._need_catalogue("retire")
        ids = _numeric("ids", ids, "integer action ids")
        self.state = self.agent.retire_actions(self.state, np.atleast_1d(ids), forget)
        return self

    def _mask(self, mask):
        """``mask`` as a (K,) bool array (None: every action available); ValueError on anything else."""
        if mask is None:
            return None
        if self._catalogue:
            raise ValueError("mask: a catalogue bandit chooses among its active actions; retire actions instead")
        K = self.agent.spec.num_actions
        return policy.check_mask(_numeric("mask", mask, f"a boolean mask of shape ({K},)"), K)

    def _next_key(self):
        self.key, sub = jax.random.split(self.key)
        return sub

    def _context(self, x):
        spec = self.agent.spec
        shape = (spec.num_actions, spec.dim) if spec.shared else (spec.dim,)
        x = jnp.asarray(_numeric("x", x, f"one context of shape {shape} or a batch (n, *{shape}) of numbers"))
        if x.ndim == self._single_ndim:
            return check_context(x, spec.num_actions, spec.dim, spec.shared), False
        if x.ndim == self._single_ndim + 1 and x.shape[0] >= 1:
            for row in (x[0],):  # shapes of a row; values of all rows below
                check_context(row, spec.num_actions, spec.dim, spec.shared)
            if not np.all(np.isfinite(np.asarray(x))):
                raise ValueError("x: contains NaN or inf")
            return x, True
        raise ValueError(f"x: expected one context of shape {shape} or a batch (n, *{shape}), got {tuple(x.shape)}")

    def choose(self, x: ArrayLike, mask: ArrayLike | None = None) -> int | np.ndarray:
        """The action for one context (an int), or for each row of a batch ((n,) int array).

        A batch is decided on the current state (feedback for it comes later via partial_fit).
        ``mask``: (K,) bool, True = available; masked actions are never chosen.
        """
        x, many = self._context(x)
        mask = policy.check_mask(self._mask(mask), self.agent.spec.num_actions)
        if many:
            keys = jax.random.split(self._next_key(), x.shape[0])
            return np.asarray(self._act_many(keys, self.state, x, mask))
        return int(self._act(self._next_key(), self.state, x, mask))

    def choose_top_k(self, x: ArrayLike, k: int, mask: ArrayLike | None = None) -> np.ndarray:
        """The k best available actions of one Thompson draw for one context, best first: (k,) ints."""
        x, many = self._context(x)
        if many:
            raise ValueError("x: choose_top_k takes one context, not a batch")
        if self._catalogue:
            self._mask(mask)
            n = int(np.asarray(self.state.active).sum())
            if not isinstance(k, int | np.integer) or not 1 <= k <= n:
                raise ValueError(f"k: expected an integer in [1, {n}] (the active actions), got {k!r}")
            inner, active = self.agent.agent, self.state.active
            idx, _ = policy.act_top_k(inner, self._next_key(), self.state.inner, x, k, active)
            return np.asarray(self.state.ids)[np.asarray(idx)]
        idx, _ = policy.act_top_k(self.agent, self._next_key(), self.state, x, k, self._mask(mask))
        return np.asarray(idx)

    def partial_fit(self, X: ArrayLike, A: ArrayLike, y: ArrayLike) -> Bandit:
        """Add feedback in any order; returns self.

        Args:
            X: (n, d) contexts, or (n, K, d) action features for a shared agent; or one row
                (d,) / (K, d).
            A: (n,) integer actions (a scalar with one row).
            y: (n,) rewards (a scalar with one row).
        """
        spec = self.agent.spec
        lik = _LIKELIHOOD_CHECKS[spec.likelihood]
        X = _numeric("X", X, "contexts (n, d), action features (n, K, d) or one row, as numbers")
        A = _numeric("A", A, f"integer actions in [0, {spec.num_actions})")
        y = _numeric("y", y, "rewards (numbers)")
        if X.ndim == self._single_ndim:  # one row
            if A.ndim != 0 or y.ndim != 0:
                raise ValueError(
                    f"A, y: with one row X of shape {X.shape}, expected a scalar action and a scalar reward, "
                    f"got shapes {A.shape} and {y.shape}"
                )
            X, A, y = X[None], A[None], y[None]
        if self._catalogue:
            if A.ndim != 1 or A.dtype.kind not in "iu":
                raise ValueError(f"A: expected (n,) integer action ids, got shape {A.shape} dtype {A.dtype}")
            slots = np.asarray(slots_of(self.state, A))
            if np.any(slots < 0):
                bad = int(A[np.flatnonzero(slots < 0)[0]])
                raise ValueError(f"A: id {bad} is not an active action (retired or never added)")
            phi, _, _ = _batch.check_batch(X, slots, y, spec.num_actions, spec.dim, spec.shared, lik)
        else:
            phi, _, _ = _batch.check_batch(X, A, y, spec.num_actions, spec.dim, spec.shared, lik)
        if phi.shape[0] > 0:
            self.state = self._update(self.state, jnp.asarray(X), jnp.asarray(A), jnp.asarray(y))
        return self

    def propensities(self, x: ArrayLike, num_samples: int = 1000, mask: ArrayLike | None = None) -> policy.Propensities:
        """P(A = a | x, state) over ``num_samples`` Thompson draws, with its MC s.e.: (K,), (K,).

        With a catalogue: one entry per active action, in the order of :attr:`action_ids`."""
        x, many = self._context(x)
        if many:
            raise ValueError("x: propensities takes one context, not a batch")
        if self._catalogue:
            self._mask(mask)
            p = policy.propensities(
                self.agent.agent, self._next_key(), self.state.inner, x, num_samples, self.state.active
            )
            slots = np.asarray(slots_of(self.state, self.action_ids))
            return policy.Propensities(p.probs[slots], p.se[slots])
        return policy.propensities(self.agent, self._next_key(), self.state, x, num_samples, self._mask(mask))

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Checkpoint the state and the PRNG key to ``path`` (atomic; see :func:`save_state`)."""
        meta = dict(metadata or {})
        if _KEY in meta:
            raise ValueError(f"metadata: the key {_KEY!r} is reserved for the bandit's PRNG key")
        meta[_KEY] = [int(v) for v in np.asarray(self.key)]
        save_state(path, self.state, meta, agent=self.agent)

    @classmethod
    def load(cls, path: str | os.PathLike, agent: Agent | Catalogue, allow_mismatch: bool = False) -> Bandit:
        """A bandit from a checkpoint of :meth:`save`; ``agent`` must match the saved one.

        Args:
            path: the file :meth:`save` wrote.
            agent: the Agent (or Catalogue) to continue with: its kind, K, d, L, shared, likelihood,
                state shapes and model fingerprint are checked against the file's (:func:`load_state`).
                A Catalogue built for a smaller capacity than the saved one is grown to it first.
            allow_mismatch: load even when the fingerprint differs (other prior arrays,
                likelihood parameters or options), with a RuntimeWarning naming the differences.
        """
        if isinstance(agent, Catalogue):  # a catalogue that grew after it was built: grow this one alike
            saved = read_state_header(path).get("num_actions")
            if isinstance(saved, int) and saved > agent.spec.num_actions:
                agent = grow(agent, agent.init(), saved)[0]
        state, meta = load_state(path, expect=agent, allow_mismatch=allow_mismatch)
        if _KEY not in meta:
            raise ValueError(f"path: {path!r} is a state file without a bandit key (written by save_state?)")
        key = jnp.asarray(np.array(meta.pop(_KEY), dtype=np.uint32))
        bandit = cls(agent, key, state)
        bandit.metadata = meta
        return bandit
