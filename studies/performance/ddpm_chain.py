"""The DDPM chain's cost: one draw of the whole chain, a dTS round beside it, and the chain before
the fast chain (A/B), interleaved in one process, float32.

Rows (medians over interleaved blocks; every block is a compiled ``lax.scan``):

- ``draw``: one draw of the whole chain from the prior (its L sequential network evaluations),
  new (core.sample) against the chain before the change (studies/performance/common.py), on the
  shipped Swiss-roll prior (L = 40, d = 2) and, with ``--data-dir``, the DDPM prior the MovieLens
  preset trains on ALS item vectors (L = 40, d = 5);
- ``per_level``: the same at L = 10, 20, 40, 80 on DDPM priors of the shipped architecture with
  random weights (time per level = draw / L);
- ``rounds``: a dTS round (act + update, default "identity" rule) beside one chain draw and a
  LinTS round, at each K; the dTS round before the change; at K = 100 dTS's act alone and update
  alone ("dTS act", "dTS update": where a round's time beyond the draw goes) (``movielens``: the
  same rows on the MovieLens prior).

    python studies/performance/ddpm_chain.py                 # writes results/ddpm_chain_<backend>.json
    python studies/performance/ddpm_chain.py --data-dir ml-100k   # adds the MovieLens rows
    python studies/performance/ddpm_chain.py --quick         # tiny sizes (a smoke test)
    python studies/performance/ddpm_chain.py --data-dir ml-100k --clock cpu --reps 9 --small-max-size 8 \
        --json studies/performance/results/ddpm_chain_cpu_unrolled8.json    # the 8 x 8 option
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from dts_ppl.agents import GaussianPrior, dts, lin_ts  # noqa: E402
from dts_ppl.core import inference as core  # noqa: E402
from dts_ppl.core import (
    linalg,  # noqa: E402
    prng,  # noqa: E402
)
from dts_ppl.core.likelihoods import Gaussian  # noqa: E402
from studies.performance.common import (  # noqa: E402
    RESULTS,
    device,
    interleaved,
    movielens_prior,
    random_ddpm_prior,
    ratio_summary,
    reference_chain,
    reference_sample,
    save_json,
    summary,
    swissroll_prior,
    use_clock,
)


def draw_block(sample, prior, draws: int):
    """jit(key) -> a block of ``draws`` sequential single draws of the chain (a carried sum keeps
    the draws alive and in order)."""
    post = core.prior_conditionals(prior, 1)

    def body(acc, key):
        psi, theta = sample(key, prior, post)
        return acc + psi[-1, 0] + theta[0, 0], None

    f = jax.jit(lambda key: jax.lax.scan(body, jnp.zeros((), prior.cov1.dtype), jax.random.split(key, draws))[0])
    return lambda: f(jax.random.PRNGKey(1))


def draw_ab(prior, draws: int, reps: int) -> dict:
    """New against old chain draws, interleaved: {"new": summary, "old": summary, "speedup": ratios}."""
    fns = {"new": draw_block(core.sample, prior, draws), "old": draw_block(reference_sample, prior, draws)}
    times = interleaved(fns, reps, per=draws)
    return {
        "new": summary(times["new"]),
        "old": summary(times["old"]),
        "speedup_old_over_new": ratio_summary(times["old"], times["new"]),
    }


def round_block(agent, K: int, d: int, rounds: int):
    """f() -> the agent's state after ``rounds`` more rounds (act + update) with random contexts,
    compiled once; the state is carried and donated between calls."""

    def step(state, key):  # the contexts' and rewards' draws: the same bits as jax.random, unrolled
        kx, ka, ky = prng.split(key, 3)
        x = prng.uniform(kx, (d,), minval=-1.0, maxval=1.0)
        a, _ = agent.act(ka, state, x)
        return agent.update(state, x, a, prng.normal(ky)), None

    run = jax.jit(lambda state, key: jax.lax.scan(step, state, jax.random.split(key, rounds))[0], donate_argnums=(0,))
    box = {"state": agent.init(), "i": 0}

    def f():
        box["i"] += 1
        box["state"] = run(box["state"], jax.random.PRNGKey(box["i"]))
        return box["state"]

    return f


def act_block(agent, K: int, d: int, rounds: int):
    """f() -> ``rounds`` actions of the agent on one state (act alone: the chain draw and the scoring)."""

    def step(state, key):
        kx, ka = prng.split(key)
        x = prng.uniform(kx, (d,), minval=-1.0, maxval=1.0)
        return state, agent.act(ka, state, x)[0]

    run = jax.jit(lambda state, key: jax.lax.scan(step, state, jax.random.split(key, rounds))[1])
    state = agent.init()
    return lambda: run(state, jax.random.PRNGKey(3))


def update_block(agent, K: int, d: int, rounds: int):
    """f() -> the state after ``rounds`` more updates with random contexts, actions and rewards
    (update alone: no act), compiled once, the state carried and donated as in :func:`round_block`."""

    def step(state, key):
        kx, ka, ky = prng.split(key, 3)
        x = prng.uniform(kx, (d,), minval=-1.0, maxval=1.0)
        a = jnp.minimum(jnp.floor(prng.uniform(ka, (), minval=0.0, maxval=float(K))), K - 1).astype(jnp.int32)
        return agent.update(state, x, a, prng.normal(ky)), None

    run = jax.jit(lambda state, key: jax.lax.scan(step, state, jax.random.split(key, rounds))[0], donate_argnums=(0,))
    box = {"state": agent.init(), "i": 0}

    def f():
        box["i"] += 1
        box["state"] = run(box["state"], jax.random.PRNGKey(box["i"]))
        return box["state"]

    return f


def rounds_at(prior, K: int, rounds: int, draws: int, reps: int, old: bool = True, parts: bool = False) -> dict:
    """dTS (and, when ``old``, dTS with the chain before the change) and LinTS rounds beside one
    chain draw, interleaved; with ``parts``, dTS's act and update alone too ("dTS act", "dTS update")."""
    d = prior.dim
    lik = Gaussian(1.0)
    theta = core.sample(jax.random.PRNGKey(0), prior, core.prior_conditionals(prior, 1), (4000,))[1][:, 0]
    gauss = GaussianPrior(jnp.mean(theta, 0), jnp.cov(theta.T) + 1e-6 * jnp.eye(d, dtype=theta.dtype))
    fns = {
        "dTS": round_block(dts(prior, lik, K), K, d, rounds),
        "LinTS": round_block(lin_ts(gauss, lik, K), K, d, rounds),
        "draw": draw_block(core.sample, prior, draws),
    }
    per = {"dTS": rounds, "LinTS": rounds, "draw": draws, "dTS old": rounds}
    if parts:
        agent = dts(prior, lik, K)
        fns["dTS act"], fns["dTS update"] = act_block(agent, K, d, rounds), update_block(agent, K, d, rounds)
        per.update({"dTS act": rounds, "dTS update": rounds})
    if old:
        with reference_chain():  # built and compiled with the chain before the change
            fns["dTS old"] = round_block(dts(prior, lik, K), K, d, rounds)
            jax.block_until_ready(fns["dTS old"]())
    times = interleaved(fns, reps, per=per)
    out = {
        "K": K,
        "us": {n: summary(t) for n, t in times.items()},
        "dts_over_draw": ratio_summary(times["dTS"], times["draw"]),
        "dts_over_lints": ratio_summary(times["dTS"], times["LinTS"]),
    }
    if old:
        out["old_dts_over_new_dts"] = ratio_summary(times["dTS old"], times["dTS"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    p.add_argument("--levels", default="10,20,40,80")
    p.add_argument("--K", default="100,10000")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--json", default=None)
    p.add_argument("--data-dir", default=None, help="MovieLens files: adds the rows of the MovieLens DDPM prior")
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall time, or the process's CPU time (leaves out waiting for a core on a loaded machine)",
    )
    p.add_argument(
        "--small-max-size",
        type=int,
        default=None,
        help="core.linalg.SMALL_MAX_SIZE for every row (default: the package's); e.g. 8 with --json",
    )
    args = p.parse_args(argv)
    if args.small_max_size is not None:
        linalg.SMALL_MAX_SIZE = args.small_max_size  # before any agent is built or traced
    levels = [int(v) for v in args.levels.split(",")]
    Ks = [int(v) for v in args.K.split(",")]
    draws, rounds, reps = (200, 100, args.reps) if not args.quick else (10, 5, 2)
    if args.quick:
        levels, Ks = levels[:2], Ks[:1]
    use_clock(args.clock)
    info = device()
    print("device:", info["backend"], info["devices"])
    out = {
        "device": info,
        "dtype": "float32",
        "clock": args.clock,
        "draws_per_block": draws,
        "rounds_per_block": rounds,
        "small_max_size": linalg.SMALL_MAX_SIZE,  # the unrolled small-matrix paths' limit (core.linalg)
    }
    out["reps"] = reps

    prior = swissroll_prior(jnp.float32)
    out["draw_swissroll_L40"] = draw_ab(prior, draws, reps)
    print("chain draw (L = 40):", out["draw_swissroll_L40"])

    out["per_level"] = {}
    for L in levels:
        res = draw_ab(random_ddpm_prior(L), draws, reps)
        res["new_us_per_level"] = res["new"]["median_us"] / L
        res["old_us_per_level"] = res["old"]["median_us"] / L
        out["per_level"][str(L)] = res
        print(f"L = {L}: {res['new_us_per_level']:.2f} us/level (old {res['old_us_per_level']:.2f})")

    out["rounds"] = {}
    for K in Ks:
        res = rounds_at(prior, K, rounds, draws, reps, parts=K == 100)
        out["rounds"][str(K)] = res
        med = {n: v["median_us"] for n, v in res["us"].items()}
        ratios = f"dTS/draw {res['dts_over_draw']['median']:.2f} dTS/LinTS {res['dts_over_lints']['median']:.2f}"
        print(f"K = {K}: {med} us; {ratios}")

    if args.data_dir is not None:
        ml = movielens_prior(args.data_dir, jnp.float32)
        out["movielens"] = {"dim": ml.dim, "num_levels": ml.num_levels, "draw": draw_ab(ml, draws, reps), "rounds": {}}
        print("MovieLens chain draw:", out["movielens"]["draw"])
        for K in Ks:
            res = rounds_at(ml, K, rounds, draws, reps, parts=K == 100)
            out["movielens"]["rounds"][str(K)] = res
            med = {n: v["median_us"] for n, v in res["us"].items()}
            print(f"MovieLens K = {K}: {med} us; dTS/draw {res['dts_over_draw']['median']:.2f}")

    name = f"ddpm_chain_{info['backend']}{'_quick' if args.quick else ''}.json"
    save_json(args.json or RESULTS / name, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
