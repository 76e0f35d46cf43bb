"""update_batch against the row loop (a jitted lax.scan of update), interleaved in one process.

For each batch size n (10, 1000, 10^5) and agent (dTS, LinTS; Gaussian rewards, K = 100,
d = 5, L = 2), both compiled functions are warmed up once, then timed alternately ``--repeats``
times (median of each; the row loop at 10^5 rows once per repeat). Also measured: the largest
relative difference between the two resulting states (Gaussian: rounding only), and for GLM
rewards (GLM-TS and dTS with logistic rewards, n = 1000, history 1000; the default ridge 1e-3
and the prior-scaled ridge of ``Bernoulli().regularised_for``) the difference between the
batch refit and the row loop's per-row Newton steps.

    python studies/performance/update_batch_speed.py [--repeats 3]
    -> studies/performance/results/update_batch_speed.json
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from dts_ppl import Bernoulli, Gaussian  # noqa: E402
from dts_ppl.agents import dts, glm_ts, lin_ts, theta_marginal  # noqa: E402
from dts_ppl.experiments.synthetic import random_linear_prior  # noqa: E402


def row_loop(agent):
    def step(s, row):
        return agent.update(s, *row), None

    return jax.jit(lambda s, X, A, y: jax.lax.scan(step, s, (X, A, y))[0])


def rel_diff(a, b):
    out = 0.0
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        u, v = np.asarray(u, float), np.asarray(v, float)
        if u.dtype.kind == "f" or v.size:
            out = max(out, float(np.abs(u - v).max() / max(np.abs(v).max(), 1e-300)))
    return out


def timed(fn, *args):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def data(key, n, K, d, binary=False):
    kx, ka, ky = jax.random.split(key, 3)
    X = jax.random.uniform(kx, (n, d), minval=-1, maxval=1)
    A = jax.random.randint(ka, (n,), 0, K)
    y = jax.random.bernoulli(ky, 0.4, (n,)).astype(X.dtype) if binary else X[:, 0] + jax.random.normal(ky, (n,))
    return X, A, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="studies/performance/results/update_batch_speed.json")
    parser.add_argument("--glm-only", action="store_true", help="rerun only the GLM part of an existing --out")
    args = parser.parse_args()
    K, d = 100, 5
    prior = random_linear_prior(jax.random.PRNGKey(0), d, (d, d))
    agents = {"dts": dts(prior, Gaussian(1.0), K), "lin_ts": lin_ts(theta_marginal(prior), Gaussian(1.0), K)}
    rows = []
    for n in () if args.glm_only else (10, 1000, 100_000):
        X, A, y = data(jax.random.PRNGKey(n), n, K, d)
        for name, agent in agents.items():
            s0 = agent.init()
            loop, batch = row_loop(agent), jax.jit(agent.update_batch)
            diff = rel_diff(batch(s0, X, A, y), loop(s0, X, A, y))  # also the warm-up (compiles)
            t_loop, t_batch = [], []
            for _ in range(args.repeats):
                t_loop.append(timed(loop, s0, X, A, y))
                t_batch.append(timed(batch, s0, X, A, y))
            row = dict(
                agent=name,
                n=n,
                loop_s=float(np.median(t_loop)),
                batch_s=float(np.median(t_batch)),
                speedup=float(np.median(t_loop) / np.median(t_batch)),
                max_rel_state_diff=diff,
            )
            rows.append(row)
            print(json.dumps(row))
    glm = []
    n = 1000
    X, A, y = data(jax.random.PRNGKey(7), n, K, d, binary=True)
    marg = theta_marginal(prior)
    likelihoods = {
        "ridge_1e-3_default": Bernoulli(),
        "ridge_regularised_for_prior": Bernoulli().regularised_for(marg.cov),
    }
    for (lik_name, lik), name in [(lk, a) for lk in likelihoods.items() for a in ("glm_ts", "dts_bernoulli")]:
        agent = glm_ts(marg, lik, K, history=n) if name == "glm_ts" else dts(prior, lik, K, history=n)
        s0 = agent.init()
        seq, bat = row_loop(agent)(s0, X, A, y), jax.jit(agent.update_batch)(s0, X, A, y)
        post = (lambda s: (s.mean, s.cov)) if name == "glm_ts" else (lambda s: (s.theta_cov, s.theta_shift, s.latents))
        glm.append(
            dict(
                agent=name,
                likelihood=lik_name,
                ridge=lik.ridge,
                n=n,
                max_rel_posterior_diff=rel_diff(post(bat), post(seq)),
                max_rel_stats_diff=rel_diff(bat.evidence.stats, seq.evidence.stats),
            )
        )
        print(json.dumps(glm[-1]))
    if args.glm_only:
        old = json.loads(Path(args.out).read_text())
        rows = old["gaussian"]
    out = dict(
        command=f"python studies/performance/update_batch_speed.py --repeats {args.repeats}",
        setup=dict(K=K, d=d, L=2, dtype="float64", device=str(jax.devices()[0])),
        gaussian=rows,
        glm=glm,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
