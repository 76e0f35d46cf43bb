"""Shared pieces of the performance scripts: device report, JSON output, interleaved A/B timing,
the DDPM priors they time, and the chain as it was before the fast chain (the A of every A/B).

Every script in this folder runs unchanged on CPU or GPU and records ``device()`` in its JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from dts_ppl.core import inference as core

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def device() -> dict:
    """The backend, its devices, the JAX version and the host load (1-minute average, when known)."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "x64": bool(jax.config.jax_enable_x64),
    }


def save_json(path, data: dict) -> None:
    """Write ``data`` as indented JSON atomically (a crash never leaves half a file)."""
    from dts_ppl.io.serialization import atomic_write

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1).encode())
    print(f"wrote {path}")


#: The clocks :func:`interleaved` can time with: "wall" (time.perf_counter) or "cpu"
#: (time.process_time: the CPU time of this process, all its threads; on a machine shared with
#: other jobs it leaves out the time spent waiting for a core).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"name": "wall"}


def use_clock(name: str) -> str:
    """Time every later :func:`interleaved` call with the clock ``name`` (a key of :data:`CLOCKS`)."""
    if name not in CLOCKS:
        raise ValueError(f"clock: expected one of {sorted(CLOCKS)}, got {name!r}")
    _clock["name"] = name
    return name


def interleaved(fns: dict, reps: int, per: dict | float = 1.0) -> dict:
    """Call each compiled function in turn, ``reps`` rounds (A, B, A, B, ...), so all see the same load.

    Args:
        fns: {name: f()}, each returning arrays (blocked on).
        reps: rounds of calls.
        per: divide each wall time by this (the work units in one call), per name or for all.
    Returns:
        {name: [seconds per unit, one per round]}, on the clock of :func:`use_clock` (wall by default).
    """
    for f in fns.values():  # compile and warm up
        jax.block_until_ready(f())
    times = {n: [] for n in fns}
    now = CLOCKS[_clock["name"]]
    for _ in range(reps):
        for n, f in fns.items():
            start = now()
            jax.block_until_ready(f())
            units = per[n] if isinstance(per, dict) else per
            times[n].append((now() - start) / units)
    return times


def summary(times: list) -> dict:
    """Median and quartiles of a list of times (seconds) in microseconds."""
    q = np.percentile(np.asarray(times) * 1e6, [25, 50, 75])
    return {"median_us": float(q[1]), "q25_us": float(q[0]), "q75_us": float(q[2]), "n": len(times)}


def ratio_summary(a: list, b: list) -> dict:
    """Median and quartiles of the per-round ratios a / b (paired rounds of :func:`interleaved`)."""
    r = np.asarray(a) / np.asarray(b)
    q = np.percentile(r, [25, 50, 75])
    return {"median": float(q[1]), "q25": float(q[0]), "q75": float(q[2])}


def swissroll_prior(dtype=jnp.float32):
    """The shipped Swiss-roll DDPM prior (L = 40, d = 2) in ``dtype``."""
    from dts_ppl.experiments.swissroll import MODELS_DIR
    from dts_ppl.io.serialization import load_prior

    prior = load_prior(MODELS_DIR / "swissroll_L40.npz")[0]
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), prior)


def movielens_prior(data_dir, dtype=jnp.float32):
    """The DDPM prior the MovieLens preset trains on ALS item vectors (d = 5, L = 40) in ``dtype``.

    ``data_dir``: the MovieLens files (never copied into the repository); the trained prior is
    cached outside it after the first training (dts_ppl.experiments.realdata.trained_prior).
    """
    from dts_ppl.experiments.realdata import movielens_setup

    prior = movielens_setup(data_dir, progress=False)["prior"]
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), prior)


def random_ddpm_prior(num_levels: int, dim: int = 2, hidden: int = 128, seed: int = 0, dtype=jnp.float32):
    """A DDPM prior with the shipped prior's architecture and random weights (cosine schedule).

    Times do not depend on the weights; this gives chains of any depth without training.
    """
    from dts_ppl.ddpm import build_prior, noise_schedule
    from dts_ppl.ddpm.network import init_eps_net

    k_net, k_out = jax.random.split(jax.random.PRNGKey(seed))
    params = init_eps_net(k_net, dim, hidden)
    params = params._replace(w3=0.1 * jax.random.normal(k_out, params.w3.shape, jnp.float32) / np.sqrt(hidden))
    betas = noise_schedule("cosine", num_levels)
    return build_prior(params, betas, np.zeros(dim), np.ones(dim), action_cov=1.0, dtype=dtype)


# ------------------------------------------------------------------- the chain before the change


def _reference_sample_one(key, prior, post):
    """core.sample's per-draw body before the fast chain (commit 4d14ca2): a rolled scan with the
    top row masked by ``where``."""
    k_lat, k_theta = jax.random.split(key)
    noise = jax.random.normal(k_lat, (prior.num_levels, prior.latent_dim), prior.cov1.dtype)

    def step(psi_parent, xs):
        (cond, is_top, link), z = xs
        loc = core.conditional_loc(cond, core.parent_means(prior, psi_parent, is_top, link))
        psi = loc + cond.scale_tril @ z
        return psi, psi

    top = jnp.zeros(prior.latent_dim, prior.cov1.dtype)
    _, psi = jax.lax.scan(step, top, (core.chain_scan_inputs(prior, post.latents), noise))
    loc = core.conditional_loc(post.theta, prior.link1(psi[-1]))
    z = jax.random.normal(k_theta, loc.shape, loc.dtype)
    theta = loc + jnp.einsum("kij,kj->ki", jnp.broadcast_to(post.theta.scale_tril, loc.shape + loc.shape[-1:]), z)
    return psi, theta


def reference_sample(key, prior, post, sample_shape=()):
    """core.sample before the fast chain."""
    num = int(np.prod(sample_shape))
    keys = jax.random.split(key, num)
    psi, theta = jax.vmap(lambda k: _reference_sample_one(k, prior, post))(keys)
    shape = tuple(sample_shape)
    return psi.reshape(shape + psi.shape[1:]), theta.reshape(shape + theta.shape[1:])


_current_upward_pass = core.upward_pass


def reference_upward_pass(
    prior, evidence, method=None, tol=core.DEFAULT_TOL, max_passes=core.DEFAULT_MAX_PASSES, plan=None, start=None
):
    """core.upward_pass before the fast chain: "identity" and "jacobian" by the sequential recursion."""
    method = core.resolve_linearisation(prior, method)
    if method == "iterated" and not prior.is_linear:
        return _current_upward_pass(prior, evidence, method, tol, max_passes, start=start)
    lin = core.linearise(prior, "jacobian" if method == "iterated" else method)
    one = jnp.ones((), jnp.int32)
    return core.UpwardPass(core.latent_posteriors(prior, evidence, lin), lin, one, jnp.ones((), bool))


@contextlib.contextmanager
def reference_chain():
    """Agents built and traced inside this block use the chain as it was (no plan, rolled draws)."""
    saved = core.sample, core.upward_pass, core.upward_plan
    core.sample = reference_sample
    core.upward_pass = reference_upward_pass
    core.upward_plan = lambda prior, method=None: None
    try:
        yield
    finally:
        core.sample, core.upward_pass, core.upward_plan = saved
