"""What the fast chain costs at compile time: the first call (compilation + one run) of a dTS
agent's ``act`` and ``update`` on the shipped Swiss-roll prior, with the fast chain and with the
chain before it, alternated; and one chain draw's compile time and run time as ``core.sample``'s
loop is unrolled by 1 (rolled), 2, 5 or all levels. With ``--data-dir`` (the MovieLens files), also
the first calls of a dTS agent on the MovieLens DDPM prior (d = 5), with the small-matrix paths
unrolled up to ``core.linalg.DEFAULT_SMALL_MAX_SIZE`` and up to 3 x 3 (their earlier limit), alternated.

    python studies/performance/compile_time.py        # results/compile_time_<backend>.json
    python studies/performance/compile_time.py --data-dir DIR
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from dts_ppl.agents import dts  # noqa: E402
from dts_ppl.core import inference as core  # noqa: E402
from dts_ppl.core import linalg  # noqa: E402
from dts_ppl.core.likelihoods import Gaussian  # noqa: E402
from studies.performance.common import (  # noqa: E402
    RESULTS,
    device,
    interleaved,
    movielens_prior,
    reference_chain,
    save_json,
    summary,
    swissroll_prior,
)


def first_calls(prior, K: int) -> dict:
    """Seconds of the first jitted act and update of a fresh dTS agent (compilation included)."""
    agent = dts(prior, Gaussian(1.0), K)
    state = agent.init()
    x = jnp.full((prior.dim,), 0.3, prior.cov1.dtype)
    start = time.perf_counter()
    jax.block_until_ready(jax.jit(agent.act)(jax.random.PRNGKey(0), state, x))
    mid = time.perf_counter()
    jax.block_until_ready(jax.jit(agent.update)(state, x, 1, 0.5))
    return {"act_s": mid - start, "update_s": time.perf_counter() - mid}


def small_size_calls(prior, repeats: int) -> dict:
    """First calls of fresh dTS agents with the small-matrix paths unrolled up to the default size
    and up to 3 x 3, alternated (the setting is read when a call is traced)."""
    sizes = {"default": linalg.DEFAULT_SMALL_MAX_SIZE, "3": 3}
    calls = {name: [] for name in sizes}
    saved = linalg.SMALL_MAX_SIZE
    try:
        for _ in range(repeats):
            for name, size in sizes.items():
                linalg.SMALL_MAX_SIZE = size
                calls[name].append(first_calls(prior, 100))
    finally:
        linalg.SMALL_MAX_SIZE = saved
    return {"dim": prior.dim, "num_levels": prior.num_levels, "small_max_size": sizes, "first_calls": calls}


def draw_with_unroll(prior, unroll, draws: int):
    """(f, compile_s): a block of single draws through core.sample's loop with this ``unroll``."""
    saved = core.UNROLL_MAX_LEVELS
    core.UNROLL_MAX_LEVELS = prior.num_levels if unroll is True else 0
    post = core.prior_conditionals(prior, 1)

    def one(key):
        if unroll is True or unroll == 1:
            return core._sample_one(key, prior, post, unroll=unroll is True)[0][-1, 0]
        lat = post.latents  # the same loop as core._sample_one, partially unrolled
        noise = jax.random.normal(jax.random.split(key)[0], (prior.num_levels, prior.latent_dim), lat.shift.dtype)
        z = jnp.einsum("lij,lj->li", lat.scale_tril, noise)
        links = jax.tree.map(lambda a: jnp.flip(a, axis=0), prior.links)

        def step(parent, xs):
            gain, shift, z_row, link = xs
            psi = gain @ link(parent) + shift + z_row
            return psi, psi

        _, below = jax.lax.scan(step, lat.shift[0] + z[0], (lat.gain[1:], lat.shift[1:], z[1:], links), unroll=unroll)
        return below[-1, 0]

    try:
        f = jax.jit(lambda key: jax.lax.scan(lambda c, k: (c + one(k), None), 0.0, jax.random.split(key, draws))[0])
        start = time.perf_counter()
        jax.block_until_ready(f(jax.random.PRNGKey(0)))
        compile_s = time.perf_counter() - start
    finally:
        core.UNROLL_MAX_LEVELS = saved
    return (lambda: f(jax.random.PRNGKey(1))), compile_s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--json", default=None)
    p.add_argument("--data-dir", default=None, help="the MovieLens files: also time the d = 5 prior's first calls")
    args = p.parse_args(argv)
    info = device()
    print("device:", info["backend"], info["devices"])
    prior = swissroll_prior(jnp.float32)
    calls = {"new": [], "old": []}
    for _ in range(args.repeats):
        calls["new"].append(first_calls(prior, 100))
        with reference_chain():
            calls["old"].append(first_calls(prior, 100))
    print(calls)
    draws = 200
    fns, compile_s = {}, {}
    for unroll in (1, 2, 5, True):
        name = "all" if unroll is True else str(unroll)
        fns[name], compile_s[name] = draw_with_unroll(prior, unroll, draws)
    times = interleaved(fns, args.reps, per=draws)
    unrolls = {n: {"compile_s": compile_s[n], **summary(times[n])} for n in fns}
    print(unrolls)
    out = {"device": info, "dtype": "float32", "K": 100, "first_calls": calls, "draw_by_unroll": unrolls}
    if args.data_dir is not None:
        out["movielens"] = small_size_calls(movielens_prior(args.data_dir, jnp.float32), args.repeats)
        print(out["movielens"])
    save_json(args.json or RESULTS / f"compile_time_{info['backend']}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
