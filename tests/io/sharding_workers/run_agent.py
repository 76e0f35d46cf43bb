"""Worker for tests/io/test_sharding.py: run an agent for some rounds, sharded or not; print a JSON summary.

Usage: python run_agent.py AGENTS MODE [PROCESS_ID NUM_PROCESSES PORT]   (AGENTS comma-separated)
MODE: "single" (one device), "sharded" (all local devices), "both" (single then sharded in this one
process: one JAX start-up instead of two; prints {"single": ..., "sharded": ...}), "distributed"
(jax.distributed over processes). XLA_FLAGS (the number of forced host devices) is set by the caller.
"""

import json
import sys

import jax

agent_names, mode = sys.argv[1].split(","), sys.argv[2]
if mode == "distributed":
    pid, nproc, port = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)

import numpy as np  # noqa: E402

from dts_ppl import agents as ag  # noqa: E402
from dts_ppl.core.likelihoods import Bernoulli, Gaussian  # noqa: E402
from dts_ppl.experiments.synthetic import random_linear_prior, random_mlp_prior  # noqa: E402
from dts_ppl.io.sharding import action_mesh, gather_state, replicate, shard_state  # noqa: E402

K, d, ROUNDS = 16, 3, 20
key = jax.random.PRNGKey(0)
linear = random_linear_prior(key, d, (3, 2))
mlp = random_mlp_prior(key, d, num_levels=2, hidden=8)
marginal = ag.theta_marginal(linear)
build = {
    "dts": lambda: ag.dts(linear, Gaussian(1.0), K),
    "dts_mlp": lambda: ag.dts(mlp, Gaussian(1.0), K),
    "hier_ts": lambda: ag.hier_ts(linear, Gaussian(1.0), K),
    "lin_ts": lambda: ag.lin_ts(marginal, Gaussian(1.0), K),
    "lin_ucb": lambda: ag.lin_ucb(marginal, Gaussian(1.0), K),
    "glm_ts": lambda: ag.glm_ts(marginal, Bernoulli(), K, history=64),
    "exact_ts": lambda: ag.exact_ts(linear, Gaussian(1.0), K),
}


_built = {}


def built(agent_name):
    """The agent and its initial state, built once per process ("both" runs them in two modes)."""
    if agent_name not in _built:
        agent = build[agent_name]()
        _built[agent_name] = agent, agent.init()
    return _built[agent_name]


def run(agent_name, mode):
    agent, state = built(agent_name)
    mesh = None
    if mode != "single":
        mesh = action_mesh()
        state = shard_state(state, mesh, K)
    act, update = jax.jit(agent.act), jax.jit(agent.update)
    theta = jax.random.normal(jax.random.PRNGKey(1), (K, d))
    actions = []
    for t in range(ROUNDS):
        k_act, k_x, k_y = jax.random.split(jax.random.fold_in(key, t), 3)
        x = jax.random.uniform(k_x, (d,), minval=-1, maxval=1)
        eta = theta @ x
        if mode != "single":
            k_act, x = replicate(np.asarray(k_act), mesh), replicate(np.asarray(x), mesh)
        a, _ = act(k_act, state, x)
        a = int(np.asarray(a.addressable_data(0)) if mode == "distributed" else np.asarray(a))
        if agent_name == "glm_ts":
            r = float(jax.random.bernoulli(k_y, jax.nn.sigmoid(eta[a])))
        else:
            r = float(eta[a] + jax.random.normal(k_y))
        a_in, r_in = (replicate(np.int32(a), mesh), replicate(np.float32(r), mesh)) if mesh else (a, r)
        state = update(state, x, a_in, r_in)
        actions.append(a)
    leaves = jax.tree.leaves(gather_state(state) if mesh else jax.tree.map(np.asarray, state))
    sharded = (
        0
        if mesh is None
        else sum(1 for v in jax.tree.leaves(state) if hasattr(v, "sharding") and not v.sharding.is_fully_replicated)
    )
    used = set().union(*(v.sharding.device_set for v in jax.tree.leaves(state) if hasattr(v, "sharding")))
    return {
        "devices_used": len(used),
        "actions": actions,
        "leaves": [np.asarray(v, np.float64).ravel().tolist() for v in leaves],
        "sharded_leaves": sharded,
    }


def summary(mode):
    return {"devices": jax.device_count(), "agents": {name: run(name, mode) for name in agent_names}}


if mode == "both":
    # the single-device run never touches the other devices: its arrays are uncommitted, on device 0
    result = {"single": summary("single"), "sharded": summary("sharded")}
else:
    result = summary(mode)
if mode != "distributed" or jax.process_index() == 0:
    print("RESULT " + json.dumps(result))
