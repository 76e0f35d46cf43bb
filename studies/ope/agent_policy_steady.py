"""agent_policy's draws, steady state (compiled once, timed on the second call), in one process.

K = 500, d = 5, S = 1000 Thompson draws per row, a dTS agent trained on n uniform rounds (the
k500_case problem); "per_row": one set of keys per row (the implementation before), "shared":
every row of the batch uses the same keys (one block of ope.agent_policy).

    PYTHONPATH=. python studies/ope/agent_policy_steady.py 100
    -> studies/ope/agent_policy_steady.json
"""

import json
import sys
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
from dts_ppl import Gaussian  # noqa: E402
from dts_ppl.agents import dts  # noqa: E402
from dts_ppl.agents import policy as _policy  # noqa: E402
from studies.ope.k500_case import problem  # noqa: E402

K, d, n, S = 500, 5, int(sys.argv[1]), 1000
prior, theta, X, A, y = problem(0, K, d, 2 * n, noise=1.0)
agent = dts(prior, Gaussian(1.0), K)
state = jax.jit(agent.update_batch)(agent.init(), jnp.asarray(X[:n]), jnp.asarray(A[:n]), jnp.asarray(y[:n]))
X = jnp.asarray(X[n:])
mask = jnp.ones(K, bool)
old = jax.jit(jax.vmap(lambda k, x: _policy.propensities(agent, k, state, x, S, mask).probs))


def new_fn(keys, xs):
    def row(x):
        scores = jax.vmap(lambda kk: _policy.masked_scores(agent, kk, state, x, mask))(keys)
        return jnp.zeros(K, scores.dtype).at[jnp.argmax(scores, axis=1)].add(1.0) / S

    return jax.vmap(row)(xs)


new = jax.jit(new_fn)
keys_row = jax.random.split(jax.random.PRNGKey(0), n)
keys_s = jax.random.split(jax.random.PRNGKey(1), S)
out = {"command": f"PYTHONPATH=. python studies/ope/agent_policy_steady.py {n}", "K": K, "rows": n, "S": S}
for name, f, a in (("per_row", old, (keys_row, X)), ("shared", new, (keys_s, X))):
    start = time.perf_counter()
    f(*a).block_until_ready()
    first = time.perf_counter() - start
    start = time.perf_counter()
    f(*a).block_until_ready()
    out[name] = {"first_call_seconds": first, "second_call_seconds": time.perf_counter() - start}
out["speedup_second_call"] = out["per_row"]["second_call_seconds"] / out["shared"]["second_call_seconds"]
with open("studies/ope/agent_policy_steady.json", "w") as f:
    f.write(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
