"""Property-based fuzz of every public entry point, eager calls (issue 16).

Each test draws an input that is valid (often an edge case) or invalid in one named argument,
calls the entry point and sorts the outcome (tests/support/fuzz.py). It fails on any silent NaN, any
invalid input silently accepted, a ValueError that does not name the argument, another
exception type, or a valid input rejected. Sizes are small and ``max_examples`` bounded so the
whole fuzz suite adds about a minute; ``derandomize=True`` makes the case lists reproducible.
"""

import argparse
import io
import json
import os
import tempfile
import zipfile
from contextlib import redirect_stderr

import fuzz
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dts_ppl import (
    BanditModel,
    Bernoulli,
    DiffusionPrior,
    DTSGuide,
    Gaussian,
    Poisson,
    load_prior,
    load_state,
    save_prior,
    save_state,
    simulate,
)
from dts_ppl.agents import bank_ts, dts, exact_ts, glm_ts, hier_ts, lin_ts, lin_ucb, theta_marginal, ucb_glm
from dts_ppl.bandits.envs import Environment, diffusion_environment
from dts_ppl.cli import build_parser
from dts_ppl.commands import positive_int
from dts_ppl.core import inference as core
from dts_ppl.experiments.swissroll import make_swiss_roll
from dts_ppl.io.serialization import _digest
from dts_ppl.ppl.nuts import NutsSettings
from dts_ppl.ppl.validate import validate

# examples per fuzz test in the default run (the full 419-case run: studies/reliability/results/fuzz.json);
# DTS_PPL_FUZZ_EXAMPLES raises it
FUZZ = settings(
    max_examples=int(os.environ.get("DTS_PPL_FUZZ_EXAMPLES", 25)),
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
D, K = 2, 3


def _bad_case(outcome):
    assert outcome not in fuzz.BAD, f"{outcome}: {dict(fuzz.EXAMPLES)}"


def _prior(L=2, dtype=None):
    ws = [jnp.array([[1.0, 0.5], [0.2, -0.7]]), jnp.array([[0.8, 0.1], [-0.2, 0.9]])][:L]
    return DiffusionPrior.linear(ws, [0.5] + [1.0] * L, dtype=dtype)


# ----------------------------------------------------------------------------------- priors

PRIOR_MUTATIONS = [
    (None, "valid"),
    (None, "stacked array weights"),
    (None, "integer weights"),
    (None, "diagonal covariances"),
    (None, "huge finite weights (float64)"),
    (None, "zero weights"),
    ("weights", "None"),
    ("weights", "empty"),
    ("weights", "string"),
    ("weights[0]", "nan"),
    ("weights[0]", "inf"),
    ("weights[0]", "zero-size"),
    ("weights[1]", "wrong shape"),
    ("weights[0]", "1e38 in float32"),
    ("weights[0]", "boolean"),
    ("covariances", "None"),
    ("covariances", "too few"),
    ("covariances[0]", "negative"),
    ("covariances[0]", "nan"),
    ("covariances[1]", "not symmetric"),
    ("covariances[0]", "string"),
    ("covariances[2]", "wrong length diagonal"),
    ("offsets", "wrong count"),
    ("offsets[0]", "nan"),
    ("offsets", "scalar"),
]


def _linear_prior_case(mutation, value):
    arg, what = mutation
    ws = [np.array([[1.0, 0.5], [0.2, -0.7]]), np.array([[0.8, 0.1], [-0.2, 0.9]])]
    covs = [0.5, 1.0, 1.0]
    offsets = None
    dtype = None
    x64 = True
    if what == "stacked array weights":
        ws = np.stack(ws)
    elif what == "integer weights":
        ws = [np.array([[1, 0], [2, 1]]), np.eye(2, dtype=int)]
    elif what == "diagonal covariances":
        covs = [np.array([0.5, value + 0.1]), np.array([1.0, 2.0]), 1.0]
    elif what == "huge finite weights (float64)":
        ws[0] = ws[0] * 1e100
    elif what == "zero weights":
        ws = [np.zeros((2, 2)), np.zeros((2, 2))]
    elif arg == "weights":
        ws = {"None": None, "empty": [], "string": "W"}[what]
    elif what == "nan" and arg.startswith("weights"):
        ws[0][0, 1] = np.nan
    elif what == "inf" and arg.startswith("weights"):
        ws[0][1, 0] = np.inf
    elif what == "zero-size":
        ws[0] = np.zeros((2, 0))
    elif what == "wrong shape":
        ws[1] = np.eye(3)
    elif what == "1e38 in float32":
        ws[0] = ws[0] * 1e38
        x64 = False
    elif what == "boolean":
        ws[0] = np.ones((2, 2), bool)
    elif arg == "covariances":
        covs = None if what == "None" else [1.0, 1.0]
    elif arg == "covariances[0]":
        covs[0] = {"negative": -value - 0.1, "nan": np.nan, "string": "1.0"}[what]
    elif what == "not symmetric":
        covs[1] = np.array([[1.0, 0.5], [0.0, 1.0]])
    elif what == "wrong length diagonal":
        covs[2] = np.ones(3)
    elif arg == "offsets":
        offsets = [np.zeros(2)] if what == "wrong count" else 1.0
    elif arg == "offsets[0]":
        offsets = [np.array([np.nan, 0.0]), np.zeros(2)]

    def call():
        with jax.enable_x64(x64):
            prior = DiffusionPrior.linear(ws, covs, offsets, dtype=dtype)
            return core.moments(prior, core.prior_conditionals(prior, 2))

    return arg, call


@FUZZ
@given(st.sampled_from(PRIOR_MUTATIONS), st.floats(0.0, 10.0))
def test_fuzz_linear_prior(mutation, value):
    arg, call = _linear_prior_case(mutation, value)
    _bad_case(fuzz.run_case("DiffusionPrior.linear", call, arg))


MLP_MUTATIONS = [
    (None, "valid"),
    (None, "two levels"),
    ("layers", "None"),
    ("layers", "empty"),
    ("layers[0]", "three arrays"),
    ("layers[0]", "not a tuple"),
    ("layers[0].b1", "wrong shape"),
    ("layers[0].w1", "nan"),
    ("layers[1]", "wrong latent dim"),
    ("covariances", "None"),
    ("covariances[0]", "zero"),
]


@FUZZ
@given(st.sampled_from(MLP_MUTATIONS), st.integers(1, 4))
def test_fuzz_mlp_prior(mutation, hidden):
    arg, what = mutation
    rng = np.random.default_rng(hidden)

    def layer(dout):
        return rng.normal(size=(hidden, D)), np.zeros(hidden), rng.normal(size=(dout, hidden)), np.zeros(dout)

    layers = [layer(D)]
    covs = [1.0, 1.0]
    if what == "two levels":
        layers, covs = [layer(D), layer(D)], [1.0, 1.0, 1.0]
    elif arg == "layers":
        layers = None if what == "None" else []
    elif what == "three arrays":
        layers = [layer(D)[:3]]
    elif what == "not a tuple":
        layers = [np.ones(3)]
    elif what == "wrong shape":
        w1, _, w2, b2 = layer(D)
        layers = [(w1, np.zeros(hidden + 1), w2, b2)]
    elif what == "nan":
        w1, b1, w2, b2 = layer(D)
        w1[0, 0] = np.nan
        layers = [(w1, b1, w2, b2)]
    elif what == "wrong latent dim":
        layers, covs = [layer(D), layer(D + 1)], [1.0, 1.0, 1.0]
    elif arg == "covariances":
        covs = None
    elif what == "zero":
        covs = [0.0, 1.0]

    def call():
        prior = DiffusionPrior.mlp(layers, covs)
        return core.moments(prior, core.prior_conditionals(prior, 2))

    _bad_case(fuzz.run_case("DiffusionPrior.mlp", call, arg))


# ------------------------------------------------------------------------------ likelihoods

LIK_VALUES = [
    (None, 1.0),
    (None, 1e-6),
    (None, 3),
    (None, np.float32(0.5)),
    (None, jnp.array(2.0)),
    ("scale", "1.0"),
    ("scale", jnp.array([1.0, 2.0])),
    ("scale", 0.0),
    ("scale", -1.0),
    ("scale", np.nan),
    ("scale", np.inf),
    ("scale", None),
    ("scale", True),
]


@FUZZ
@given(st.sampled_from(LIK_VALUES), st.sampled_from(["gaussian", "bernoulli", "poisson"]), st.integers(-2, 40))
def test_fuzz_likelihoods(case, family, newton_steps):
    arg, value = case
    if family == "gaussian":
        call = lambda: Gaussian(value).log_prob(jnp.ones(3), jnp.zeros(3))  # noqa: E731
    else:
        cls = Bernoulli if family == "bernoulli" else Poisson
        arg = None if arg is None or value is None else "ridge"  # ridge=None: the default expansion
        if newton_steps < 1:
            arg = "newton_steps"
        kwargs = {"ridge": value, "newton_steps": newton_steps}

        def call():
            lik = cls(**kwargs)
            X = jnp.array([[0.5, -0.2], [0.1, 0.3], [1.0, 1.0]])
            return lik.statistics(X, jnp.array([0, 1, 1]), jnp.array([1.0, 0.0, 1.0]), 2)

    _bad_case(fuzz.run_case(f"{family} likelihood", call, arg))


# --------------------------------------------------------------------------- model and guide

MODEL_CASES = [
    (None, "valid"),
    (None, "no data"),
    (None, "shared"),
    (None, "one action"),
    ("num_actions", True),
    ("num_actions", 0),
    ("num_actions", 2.5),
    ("num_actions", "3"),
    ("num_actions", None),
    ("prior", "dict"),
    ("likelihood", "string"),
    ("shared", "yes"),
    ("parameterisation", "centered"),
    ("X", "nan"),
    ("X", "wrong dim"),
    ("X", "string"),
    ("A", "out of range"),
    ("A", "float"),
    ("A", "None"),
    ("y", "inf"),
    ("y", "wrong length"),
    ("linearisation", "laplace"),
    ("max_passes", 0),
    ("max_passes", "3"),
    ("model", "not a model"),
]


@FUZZ
@given(st.sampled_from(MODEL_CASES), st.integers(1, 6))
def test_fuzz_model_and_guide(case, n):
    arg, what = case
    prior = _prior()
    X = jnp.linspace(-1, 1, n * D).reshape(n, D)
    A, y = jnp.arange(n) % K, jnp.linspace(0, 1, n)
    margs = dict(num_actions=K)
    gargs = {}
    call_args = (X, A, y)
    if what == "no data":
        call_args = ()
    elif what == "shared":
        margs = dict(shared=True)
        call_args = (X, None, y)
    elif what == "one action":
        margs = dict(num_actions=1)
        call_args = (X, jnp.zeros(n, int), y)
    elif arg in ("num_actions", "likelihood", "shared", "parameterisation"):
        margs[arg] = {"string": "gaussian", "yes": "yes"}.get(what, what)
    elif arg == "prior":
        prior = {"W": 1}
    elif arg == "X":
        call_args = ({"nan": X.at[0, 0].set(jnp.nan), "wrong dim": X[:, :1], "string": "X"}[what], A, y)
    elif arg == "A":
        call_args = (X, {"out of range": A.at[0].set(K), "float": A + 0.5, "None": None}[what], y)
    elif arg == "y":
        call_args = (X, A, y.at[0].set(jnp.inf) if what == "inf" else y[:-1] if n > 1 else jnp.ones(2))
    elif arg in ("linearisation", "max_passes"):
        gargs[arg] = what

    def call():
        model = BanditModel(prior, **margs)
        guide = DTSGuide("model" if arg == "model" else model, **gargs)
        return guide.moments(*call_args)

    _bad_case(fuzz.run_case("BanditModel + DTSGuide", call, arg))


# ----------------------------------------------------------------------------------- agents

_AGENTS = {}


def _agent(name, num_actions=K):
    if (name, num_actions) not in _AGENTS:
        prior = _prior()
        m = theta_marginal(prior)
        make = {
            "dts": lambda: dts(prior, Gaussian(1.0), num_actions),
            "hier_ts": lambda: hier_ts(prior, Gaussian(1.0), num_actions),
            "lin_ts": lambda: lin_ts(m, Gaussian(1.0), num_actions),
            "lin_ucb": lambda: lin_ucb(m, Gaussian(1.0), num_actions),
            "exact_ts": lambda: exact_ts(prior, Gaussian(1.0), num_actions),
            "glm_ts": lambda: glm_ts(m, Bernoulli(), num_actions, history=16),
            "ucb_glm": lambda: ucb_glm(m, Bernoulli(), num_actions, history=16),
        }[name]
        _AGENTS[(name, num_actions)] = make()
    return _AGENTS[(name, num_actions)]


AGENT_NAMES = ["dts", "hier_ts", "lin_ts", "lin_ucb", "exact_ts", "glm_ts", "ucb_glm"]
UPDATE_CASES = [
    (None, "valid"),
    (None, "zero context"),
    (None, "large context 1e6"),
    (None, "integer context"),
    (None, "int reward 10**12"),
    (None, "numpy int action"),
    ("x", "nan"),
    ("x", "inf"),
    ("x", "wrong shape"),
    ("x", "None"),
    ("x", "string"),
    ("x", "1e30 in float32"),
    ("action", "K"),
    ("action", "-1"),
    ("action", "1.5"),
    ("action", "True"),
    ("action", "10**12"),
    ("action", "vector"),
    ("reward", "nan"),
    ("reward", "inf"),
    ("reward", "string"),
    ("reward", "None"),
    ("reward", "vector"),
    ("reward", "0.5 for Bernoulli"),
    ("state", "another K"),
    ("state", "another agent"),
]


def _update_case(name, case, u):
    arg, what = case
    agent = _agent(name)
    binary = name in ("glm_ts", "ucb_glm")
    x, action, reward = jnp.array([u, 1.0 - u]), 1, 1.0 if binary else u
    state = agent.init()
    x64 = True
    if what == "zero context":
        x = jnp.zeros(D)
    elif what == "large context 1e6":
        x = x * 1e6
    elif what == "integer context":
        x = jnp.array([1, 0])
    elif what == "int reward 10**12":
        reward = 1 if binary else 10**12
    elif what == "numpy int action":
        action = np.int64(2)
    elif arg == "x":
        x = {
            "nan": x.at[0].set(jnp.nan),
            "inf": x.at[1].set(-jnp.inf),
            "wrong shape": jnp.ones(D + 1),
            "None": None,
            "string": "x",
            "1e30 in float32": None,
        }[what]
        if what == "1e30 in float32":
            x64 = False
    elif arg == "action":
        action = {"K": K, "-1": -1, "1.5": 1.5, "True": True, "10**12": 10**12, "vector": jnp.array([0, 1])}[what]
    elif arg == "reward":
        reward = {
            "nan": jnp.nan,
            "inf": jnp.inf,
            "string": "1.0",
            "None": None,
            "vector": jnp.ones(2),
            "0.5 for Bernoulli": 0.5 if binary else None,
        }[what]
        if what == "0.5 for Bernoulli" and not binary:
            reward = "1.0"
    elif what == "another K":
        state = _agent(name, K + 2).init()
    elif what == "another agent":
        state = _agent("exact_ts" if name != "exact_ts" else "dts").init()

    def call():
        with jax.enable_x64(x64):
            if what == "1e30 in float32":
                ag = {"dts": dts, "hier_ts": hier_ts, "exact_ts": exact_ts}.get(name)
                prior = _prior()
                if ag is not None:
                    a32 = ag(prior, Gaussian(1.0), K)
                else:
                    lik = Bernoulli() if binary else Gaussian(1.0)
                    mk = {"lin_ts": lin_ts, "lin_ucb": lin_ucb, "glm_ts": glm_ts, "ucb_glm": ucb_glm}[name]
                    a32 = mk(theta_marginal(prior), lik, K)
                return a32.update(a32.init(), jnp.array([1e30, 1e30], jnp.float32), 1, 1.0)
            return agent.update(state, x, action, reward)

    return arg, call


@FUZZ
@given(st.sampled_from(AGENT_NAMES), st.sampled_from(UPDATE_CASES), st.floats(-2.0, 2.0))
def test_fuzz_agent_update(name, case, u):
    arg, call = _update_case(name, case, u)
    _bad_case(fuzz.run_case(f"{name}.update", call, arg))


BATCH_CASES = [
    (None, "valid"),
    (None, "no rows"),
    ("X", "string"),
    ("X", "None"),
    ("X", "wrong width"),
    ("X", "NaN row"),
    ("A", "string"),
    ("A", "None"),
    ("A", "out of range"),
    ("A", "non-integer floats"),
    ("y", "string"),
    ("y", "None"),
    ("y", "too short"),
    ("y", "inf"),
]


@FUZZ
@given(st.sampled_from(AGENT_NAMES), st.sampled_from(BATCH_CASES))
def test_fuzz_agent_update_batch(name, case):
    arg, what = case
    agent = _agent(name)
    binary = name in ("glm_ts", "ucb_glm")
    X = jnp.linspace(-1.0, 1.0, 5 * D).reshape(5, D)
    A = jnp.arange(5) % K
    y = (jnp.arange(5) % 2).astype(X.dtype) if binary else jnp.linspace(-1.0, 1.0, 5)
    bad = {
        "string": "text",
        "None": None,
        "wrong width": X[:, :-1],
        "NaN row": X.at[2, 0].set(jnp.nan),
        "out of range": A.at[1].set(K),
        "non-integer floats": A.astype(X.dtype) + 0.5,
        "too short": y[:3],
        "inf": y.at[0].set(jnp.inf),
    }
    if what == "no rows":
        X, A, y = X[:0], A[:0], y[:0]
    elif arg is not None:
        X, A, y = [bad[what] if arg == n else v for n, v in (("X", X), ("A", A), ("y", y))]
    _bad_case(fuzz.run_case(f"{name}.update_batch", lambda: agent.update_batch(agent.init(), X, A, y), arg))


ACT_CASES = [
    (None, "valid"),
    (None, "after updates"),
    (None, "typed key"),
    ("x", "nan"),
    ("x", "inf"),
    ("x", "wrong shape"),
    ("x", "1e38 in float32"),
    ("key", "int"),
    ("key", "None"),
    ("key", "wrong shape"),
    ("state", "another K"),
    ("state", "None"),
]


def _act_ok(out):
    action, info = out
    return fuzz.all_finite(info.scores) and 0 <= int(action) < K and bool(info.valid)


@FUZZ
@given(st.sampled_from(AGENT_NAMES), st.sampled_from(ACT_CASES), st.floats(-2.0, 2.0))
def test_fuzz_agent_act(name, case, u):
    arg, what = case
    agent = _agent(name)
    binary = name in ("glm_ts", "ucb_glm")
    x, key, state = jnp.array([u, 0.5]), jax.random.PRNGKey(0), agent.init()
    x64 = True
    if what == "after updates":
        for a in range(K):
            state = agent.update(state, x, a, 1.0 if binary else u)
    elif what == "typed key":
        key = jax.random.key(1)
    elif arg == "x":
        x = {"nan": x.at[0].set(jnp.nan), "inf": x.at[0].set(jnp.inf), "wrong shape": jnp.ones((K, D))}.get(what)
        x64 = what != "1e38 in float32"
    elif arg == "key":
        key = {"int": 0, "None": None, "wrong shape": jnp.zeros(3, jnp.uint32)}[what]
    elif what == "another K":
        state = _agent(name, K + 1).init()
    elif what == "None":
        state = None

    def call():
        if not x64:
            with jax.enable_x64(False):
                ag = {
                    "dts": lambda p: dts(p, None, K),
                    "hier_ts": lambda p: hier_ts(p, None, K),
                    "exact_ts": lambda p: exact_ts(p, None, K),
                }.get(name)
                prior = _prior()
                if ag is None:
                    mk = {"lin_ts": lin_ts, "lin_ucb": lin_ucb, "glm_ts": glm_ts, "ucb_glm": ucb_glm}[name]
                    a32 = mk(theta_marginal(prior), Bernoulli() if binary else Gaussian(1.0), K)
                else:
                    a32 = ag(prior)
                return a32.act(jax.random.PRNGKey(0), a32.init(), jnp.array([1e38, 1e38], jnp.float32))
        return agent.act(key, state, x)

    _bad_case(fuzz.run_case(f"{name}.act", call, arg, check=_act_ok))


FACTORY_CASES = [
    (None, "valid"),
    (None, "one action"),
    ("num_actions", True),
    ("num_actions", 0),
    ("num_actions", 2.0),
    ("num_actions", None),
    ("prior", "dict"),
    ("theta_prior", "nan mean"),
    ("theta_prior", "diffusion prior"),
    ("likelihood", "string"),
    ("history", 0),
    ("newton_steps", True),
    ("linearisation", "newton"),
    ("max_passes", 0),
    ("alpha", -1.0),
    ("shared", "yes"),
]


@FUZZ
@given(st.sampled_from(AGENT_NAMES), st.sampled_from(FACTORY_CASES))
def test_fuzz_agent_factories(name, case):
    arg, what = case
    prior, m = _prior(), None
    kwargs = {"num_actions": K}
    lik = Bernoulli() if name in ("glm_ts", "ucb_glm") else Gaussian(1.0)
    if what == "one action":
        kwargs["num_actions"] = 1
    elif arg == "num_actions":
        kwargs["num_actions"] = what
    elif arg == "prior":
        prior = {"W": 1}
    elif arg == "likelihood":
        lik = "gaussian"
    elif arg in ("history", "newton_steps"):
        lik = Bernoulli()
        kwargs[arg] = what
    elif arg == "shared":
        kwargs[arg] = what
    uses_prior = name in ("dts", "hier_ts", "exact_ts")
    if arg == "prior" and not uses_prior:
        arg, m = "theta_prior", "dict"
    if arg == "theta_prior":
        if uses_prior:
            arg, prior = "prior", ({"W": 1} if what == "nan mean" else "prior")
        else:
            m = "dp" if what == "diffusion prior" else "nan"
    if arg in ("linearisation", "max_passes") and name in ("dts", "hier_ts"):
        kwargs[arg] = what
    elif arg in ("linearisation", "max_passes"):
        arg = None  # not an option of this agent: a valid call
    if arg == "alpha":
        if name in ("lin_ucb", "ucb_glm"):
            kwargs["alpha"] = what
        else:
            arg = None
    if name == "exact_ts" and arg in ("history", "newton_steps", "shared"):
        arg, lik = "likelihood", Bernoulli()
        kwargs.pop("history", None), kwargs.pop("newton_steps", None), kwargs.pop("shared", None)

    def call():
        if uses_prior:
            make = {"dts": dts, "hier_ts": hier_ts, "exact_ts": exact_ts}[name]
            agent = make(prior, lik, **kwargs)
        else:
            tp = theta_marginal(_prior())
            if m == "dp":
                tp = _prior()
            elif m == "dict":
                tp = {"W": 1}
            elif m == "nan":
                tp = tp._replace(mean=tp.mean.at[0].set(jnp.nan))
            make = {"lin_ts": lin_ts, "lin_ucb": lin_ucb, "glm_ts": glm_ts, "ucb_glm": ucb_glm}[name]
            agent = make(tp, lik, **kwargs)
        return agent.init()

    _bad_case(fuzz.run_case(f"{name} factory", call, arg))


# --------------------------------------------------------------------------------- simulate

SIM_CASES = [
    (None, "valid"),
    ("agent", "agent K != env K"),
    ("agent", "agent d != env d"),
    ("agent", "not an agent"),
    ("env", "nan contexts"),
    ("env", "inf theta"),
    ("env", "wrong theta shape"),
    ("env", "not an env"),
    ("num_rounds", 0),
    ("num_rounds", True),
    ("num_runs", 2.5),
    ("chunk_size", 0),
    ("key", "int"),
]


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(SIM_CASES))
def test_fuzz_simulate(case):
    arg, what = case
    prior = _prior()
    env = diffusion_environment(prior, K)
    agent = _agent("lin_ts")
    kwargs = dict(num_rounds=5, num_runs=2)
    key = jax.random.PRNGKey(0)
    if what == "agent K != env K":
        agent = _agent("lin_ts", K + 4)
    elif what == "agent d != env d":
        big = DiffusionPrior.linear([jnp.ones((3, 2))], [1.0, 1.0])
        agent = lin_ts(theta_marginal(big), None, K)
    elif what == "not an agent":
        agent = lambda: None  # noqa: E731
    elif what == "nan contexts":
        env = env._replace(sample_context=lambda k: jnp.full(D, jnp.nan))
    elif what == "inf theta":
        env = env._replace(sample_theta=lambda k: jnp.full((K, D), jnp.inf))
    elif what == "wrong theta shape":
        env = env._replace(sample_theta=lambda k: jnp.ones((K + 1, D)))
    elif what == "not an env":
        env = prior
    elif arg == "key":
        key = 0
    elif arg is not None:
        kwargs[arg] = what
    assert isinstance(env, Environment) or what == "not an env"

    def call():
        return simulate(key, env, agent, progress=False, **kwargs).cumulative

    _bad_case(fuzz.run_case("simulate", call, arg))


# ------------------------------------------------------------------------------- validate

VALIDATE_CASES = [
    ("key", 0),
    ("key", None),
    ("num_samples", 0),
    ("num_samples", True),
    ("num_warmup", -1),
    ("num_chains", 0),
    ("y", None),
    ("model", "string"),
    ("X", "nan"),
    ("guide", "string"),
]


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(VALIDATE_CASES))
def test_fuzz_validate(case):
    arg, what = case
    model = BanditModel(_prior(), K)
    guide = DTSGuide(model)
    X, A, y = jnp.ones((4, D)), jnp.arange(4) % K, jnp.ones(4)
    settings = NutsSettings(num_samples=10, num_warmup=10, num_chains=1)
    kwargs = dict(key=jax.random.PRNGKey(0), settings=settings, progress_bar=False)
    if arg == "key":
        kwargs[arg] = what
    elif arg in ("num_samples", "num_warmup", "num_chains"):
        kwargs["settings"] = settings._replace(**{arg: what})
    elif arg == "y":
        y = None
    elif arg == "model":
        model = "model"
    elif arg == "X":
        X = X.at[0, 0].set(jnp.nan)
    elif arg == "guide":
        guide = "guide"
    _bad_case(fuzz.run_case("validate", lambda: validate(model, guide, X, A, y, **kwargs), arg))


# --------------------------------------------------------------------------- save and load

FILE_CASES = [
    (None, "roundtrip"),
    (None, "roundtrip mlp"),
    ("path", "byte flip"),
    ("path", "truncated"),
    ("path", "wrong num_levels in header"),
    ("path", "no num_levels in header"),
    ("path", "wrong dim in header"),
    ("path", "wrong link class"),
    ("path", "missing file"),
    ("path", "nan array, valid checksum"),
    ("prior", "not a prior"),
    ("metadata", "not JSON"),
]


def _rewrite_v1(src, dst, edit_header=None, edit_arrays=None):
    """Rewrite a prior file as a version-1 file (no whole-file checksum) with edits."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__meta__").tobytes().decode())
    header["format_version"] = 1
    if edit_arrays:
        edit_arrays(arrays)
    header["sha256"] = _digest(arrays)
    if edit_header:
        edit_header(header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dst, **arrays)


@FUZZ
@given(st.sampled_from(FILE_CASES), st.integers(0, 10**6))
def test_fuzz_save_load(case, where):
    arg, what = case
    tmp = tempfile.mkdtemp()
    path, bad = os.path.join(tmp, "p.npz"), os.path.join(tmp, "bad.npz")
    prior = _prior()
    if what == "roundtrip mlp":
        rng = np.random.default_rng(0)
        prior = DiffusionPrior.mlp(
            [(rng.normal(size=(3, D)), np.zeros(3), rng.normal(size=(D, 3)), np.zeros(D))] * 2, [1.0, 1.0, 1.0]
        )
    save_prior(path, prior, {"n": 1})
    raw = open(path, "rb").read()
    target, saver = bad, None
    if what.startswith("roundtrip"):
        target = path
    elif what == "byte flip":
        b = bytearray(raw)
        b[where % len(b)] ^= 1 << (where % 8)
        open(bad, "wb").write(bytes(b))
    elif what == "truncated":
        open(bad, "wb").write(raw[: where % len(raw)])
    elif what == "wrong num_levels in header":
        _rewrite_v1(path, bad, lambda h: h.update(num_levels=h["num_levels"] + 1 + where % 3))
    elif what == "no num_levels in header":
        _rewrite_v1(path, bad, lambda h: h.pop("num_levels"))
    elif what == "wrong dim in header":
        _rewrite_v1(path, bad, lambda h: h.update(dim=h["dim"] + 1))
    elif what == "wrong link class":
        _rewrite_v1(path, bad, lambda h: h.update(link_class="MLPLink"))
    elif what == "missing file":
        target = os.path.join(tmp, "missing.npz")
    elif what == "nan array, valid checksum":
        _rewrite_v1(path, bad, edit_arrays=lambda a: a["cov1"].__setitem__((0, 0), np.nan))
    elif arg == "prior":
        saver = lambda: save_prior(bad, {"W": 1})  # noqa: E731
    elif arg == "metadata":
        saver = lambda: save_prior(bad, prior, {"f": object()})  # noqa: E731

    def call():
        if saver is not None:
            saver()
            return None
        loaded, _ = load_prior(target)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(prior), strict=True):
            np.testing.assert_array_equal(a, b)  # a silent change would not be equal
        return loaded

    outcome = fuzz.run_case("save_prior / load_prior", call, arg)
    if what == "byte flip" and outcome == fuzz.OTHER:  # an AssertionError: the flip changed an array silently
        outcome = fuzz.ACCEPTED_INVALID
    _bad_case(outcome)


# ------------------------------------------------------------------------------ checkpoints

STATE_CASES = [
    (None, "roundtrip dts"),
    (None, "roundtrip glm_ts"),
    (None, "roundtrip bank_ts"),
    ("agent", "save with an agent of another K"),
    ("agent", "save with an agent of another kind"),
    ("state", "nan state"),
    ("state", "inf state"),
    ("state", "not a state"),
    ("metadata", "not JSON"),
    ("path", "zip metadata byte change"),
    ("path", "appended garbage"),
    ("path", "truncated"),
    ("path", "missing file"),
    ("path", "load with another K"),
    ("path", "load with other prior arrays"),
    ("path", "load with another likelihood parameter"),
    ("path", "load with another option"),
]
_CHECKPOINT_AGENTS: dict = {}


def _checkpoint_agents() -> dict:
    if not _CHECKPOINT_AGENTS:
        prior, other = _prior(), DiffusionPrior.linear([jnp.eye(D), 0.5 * jnp.eye(D)], [0.5, 1.0, 1.0])
        _CHECKPOINT_AGENTS.update(
            dts=dts(prior, Gaussian(1.0), K),
            glm_ts=glm_ts(theta_marginal(prior), Bernoulli(), K, history=8),
            bank_ts=bank_ts(jax.random.normal(jax.random.PRNGKey(0), (32, D)), Gaussian(1.0), K),
            K7=dts(prior, Gaussian(1.0), 7),
            lin_ts=lin_ts(theta_marginal(prior), Gaussian(1.0), K),
            other_prior=dts(other, Gaussian(1.0), K),
            other_likelihood=dts(prior, Gaussian(2.0), K),
            other_option=dts(prior, Gaussian(1.0), K, linearisation="identity"),
        )
        states = {name: _CHECKPOINT_AGENTS[name].init() for name in ("dts", "glm_ts", "bank_ts")}
        states["dts"] = states["dts"]._replace(
            theta_shift=states["dts"].theta_shift + 0.25, step=states["dts"].step + 3
        )
        _CHECKPOINT_AGENTS["states"] = states
    return _CHECKPOINT_AGENTS


def _zip_structure(raw: bytes) -> list:
    """Byte offsets of the zip structure (local headers with names, central directory, end record)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        local = {i for info in z.infolist() for i in range(info.header_offset, info.header_offset + 94)}
        return sorted({i for i in local if i < z.start_dir} | set(range(z.start_dir, len(raw))))


@FUZZ
@given(st.sampled_from(STATE_CASES), st.integers(0, 10**6))
def test_fuzz_checkpoints(case, where):
    arg, what = case
    agents = _checkpoint_agents()
    name = what.split()[-1] if what.startswith("roundtrip") else "dts"
    agent, state = agents[name], agents["states"][name]
    tmp = tempfile.mkdtemp()
    path, bad = os.path.join(tmp, "s.npz"), os.path.join(tmp, "bad.npz")
    save_state(path, state, {"n": 1}, agent=agent)
    raw = open(path, "rb").read()
    target, expect, saver = bad, agent, None
    if what.startswith("roundtrip"):
        target = path
    elif what.startswith("save with"):
        other = agents["K7" if "K" in what else "lin_ts"]
        saver = lambda: save_state(bad, state, agent=other)  # noqa: E731
    elif what in ("nan state", "inf state"):
        value = jnp.nan if what == "nan state" else jnp.inf
        poisoned = state._replace(theta_shift=state.theta_shift.at[where % K, 0].set(value))
        saver = lambda: save_state(bad, poisoned, agent=agent)  # noqa: E731
    elif what == "not a state":
        saver = lambda: save_state(bad, {"theta": state.theta_shift})  # noqa: E731
    elif what == "not JSON":
        saver = lambda: save_state(bad, state, {"f": object()}, agent=agent)  # noqa: E731
    elif what == "zip metadata byte change":
        structure = _zip_structure(raw)
        b = bytearray(raw)
        b[structure[where % len(structure)]] ^= 1 << (where % 8)
        open(bad, "wb").write(bytes(b))
    elif what == "appended garbage":
        open(bad, "wb").write(raw + np.random.default_rng(where).bytes(1 + where % 64))
    elif what == "truncated":
        open(bad, "wb").write(raw[: where % len(raw)])
    elif what == "missing file":
        target = os.path.join(tmp, "missing.npz")
    else:  # the file is good; the agent it is loaded into is not the one that saved it
        target = path
        expect = agents[
            {"K": "K7", "arrays": "other_prior", "parameter": "other_likelihood"}.get(what.split()[-1], "other_option")
        ]

    def call():
        if saver is not None:
            saver()
            return None
        loaded, meta = load_state(target, expect=expect)
        assert meta == {"n": 1}
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)  # a silent change would not be equal
        return loaded

    outcome = fuzz.run_case("save_state / load_state", call, arg)
    if outcome == fuzz.OTHER and arg == "path":  # an AssertionError: the change altered the state silently
        outcome = fuzz.ACCEPTED_INVALID
    _bad_case(outcome)


# ------------------------------------------------------------------------- CLI and loaders

CLI_CASES = [
    (None, ["bench", "regret", "--list"]),
    ("--chunk-size", ["bench", "regret", "linear", "--chunk-size", "0"]),
    ("--chunk-size", ["bench", "regret", "linear", "--chunk-size", "-3"]),
    ("--runs", ["bench", "regret", "linear", "--runs", "0"]),
    ("--rounds", ["bench", "regret", "linear", "--rounds", "x"]),
    ("--num-samples", ["validate", "linear", "--num-samples", "0"]),
    ("--num-chains", ["validate", "linear", "--num-chains", "0"]),
    ("--num-warmup", ["validate", "linear", "--num-warmup", "-1"]),
]


def _parse(argv, option):
    """parse_args; an argparse error (SystemExit 2) becomes a ValueError headed by the option it names."""
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            return vars(build_parser().parse_args(argv))
    except SystemExit as e:
        text = err.getvalue()
        if e.code == 2:
            named = option if option and option in text else "?"
            raise ValueError(f"{named}: {text.strip().splitlines()[-1]}") from None
        raise


@FUZZ
@given(st.sampled_from(CLI_CASES))
def test_fuzz_cli(case):
    option, argv = case
    outcome = fuzz.run_case("CLI arguments", lambda: _parse(argv, option), option, check=lambda out: True)
    _bad_case(outcome)


LOADER_CASES = [
    (None, 50, 0.0),
    (None, 1, 0.5),
    ("num_samples", 0, 0.0),
    ("num_samples", -5, 0.0),
    ("num_samples", 2.5, 0.0),
    ("num_samples", True, 0.0),
    ("noise", 10, -1.0),
    ("noise", 10, float("nan")),
]


@FUZZ
@given(st.sampled_from(LOADER_CASES))
def test_fuzz_data_loaders(case):
    arg, n, noise = case
    _bad_case(fuzz.run_case("make_swiss_roll", lambda: make_swiss_roll(n, noise), arg))


def test_argparse_types_are_argparse_errors():
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")
    assert positive_int("3") == 3
