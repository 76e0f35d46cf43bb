import gc
import os
import sys

# One BLAS thread per test process: the suite runs in two pytest-xdist workers on two cores, and
# OpenBLAS's own threads on top of them wait on each other (scipy's L-BFGS-B inside the EL interval
# of dts_ppl.analysis.ope ran 100x slower with two BLAS threads per worker on a busy machine).
# Set before numpy is imported; a user's own setting is kept.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

# Tracing and lowering allocate millions of short-lived Python objects; with the default thresholds
# (700, 10, 10) the cyclic garbage collector runs thousands of times per test file (test_fast_chain.py
# and test_guard_protocol.py in one process: 74.5 CPU-s -> 70.5 CPU-s with these). Cycles are
# still collected, less often, and release_compiled_code below collects in full when it frees.
gc.set_threshold(50_000, 50, 1000)

# Tests are dominated by XLA compilation (backend compilation was 83% of test_agents.py's time),
# not by run time. Unless DTS_PPL_TEST_FULL_OPT=1, compile
# - without most of XLA's optimisation passes (20-28% less CPU time on test_exactness.py and
#   test_guards.py), and
# - with XLA's older CPU loop emitters, the ordinary scheduler and one codegen thread
#   (TEST_XLA_FLAGS: test_agents.py 74 s -> 24-29 s, test_batch.py + test_guide.py 214 s -> 94 s
#   on one core; the new fusion emitters spend the difference compiling).
# Set before jax is imported so that subprocesses started by tests (CLI, sharding workers,
# README commands) inherit them too.
#
# XLA aborts the process (a fatal log line, no Python exception) on a flag it does not know, and
# the flags come and go between jaxlib versions (jaxlib 0.12 has no --xla_cpu_use_fusion_emitters).
# So each flag is set only after a subprocess with this interpreter has started XLA with it
# (accepted_xla_flags); the answer is passed on to pytest-xdist workers and subprocesses in
# DTS_PPL_TEST_XLA_FLAGS_CHECKED, keyed by the jaxlib version, and the header of the test run
# names any flag left out.
TEST_XLA_FLAGS = (
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_parallel_codegen_split_count=1",
)
_CHECKED = "DTS_PPL_TEST_XLA_FLAGS_CHECKED"
_PROBE = "import jax.numpy as jnp; jnp.zeros(2).block_until_ready()"


def _jaxlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxlib")
    except PackageNotFoundError:
        return "unknown"


def accepted_xla_flags(flags, given=(), python=sys.executable, timeout=120.0):
    """The subset of ``flags`` that XLA starts with, next to the user's ``given`` flags.

    One subprocess per rejected flag at most: XLA names the first unknown flag in its fatal
    message, which is dropped before the next try; a failure that names none of ``flags`` (or a
    timeout) keeps none of them, so the tests run as users run them rather than die.
    """
    import subprocess

    keep = list(flags)
    while keep:
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
        env["XLA_FLAGS"] = " ".join(list(given) + keep)
        env["JAX_PLATFORMS"] = "cpu"
        try:
            run = subprocess.run([python, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return []
        if run.returncode == 0:
            return keep
        unknown = [f for f in keep if f"Unknown flag in XLA_FLAGS: {f}" in run.stderr + run.stdout]
        if not unknown:
            return []
        keep = [f for f in keep if f not in unknown]
    return keep


def _test_xla_flags(given):
    """TEST_XLA_FLAGS that the installed jaxlib accepts (checked once per test session), as a list."""
    stamp = _jaxlib_version()
    checked = os.environ.get(_CHECKED, "")
    if checked.startswith(stamp + ":"):
        return [f for f in checked[len(stamp) + 1 :].split(",") if f]
    flags = accepted_xla_flags(TEST_XLA_FLAGS, given)
    os.environ[_CHECKED] = f"{stamp}:{','.join(flags)}"
    return flags


SKIPPED_XLA_FLAGS: list = []
if os.environ.get("DTS_PPL_TEST_FULL_OPT") != "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    given = os.environ.get("XLA_FLAGS", "").split()
    named = {g.split("=")[0] for g in given}  # a flag the user set keeps the user's value
    wanted = [f for f in TEST_XLA_FLAGS if f.split("=")[0] not in named]
    accepted = _test_xla_flags(given) if wanted else []
    SKIPPED_XLA_FLAGS = [f for f in wanted if f not in accepted]
    os.environ["XLA_FLAGS"] = " ".join(given + [f for f in wanted if f in accepted])


def pytest_report_header(config):
    """The XLA settings of this run, with the flags this jaxlib does not accept."""
    line = f"dts_ppl tests: jaxlib {_jaxlib_version()}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    if SKIPPED_XLA_FLAGS:
        line += f"; not accepted by this jaxlib, left out: {' '.join(SKIPPED_XLA_FLAGS)}"
    return line


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "support"))  # fuzz.py, mc.py

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

# NumPyro before ArviZ: ArviZ 1.x loads numpyro through lazy_loader, and when arviz is imported
# first, numpyro's submodules are never set as attributes (arviz.from_numpyro then fails with
# "module 'numpyro.infer' has no attribute 'initialization'"); test modules import arviz first.
import numpyro  # noqa: E402, F401
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
if os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") == "1":  # in case a plugin imported jax first
    jax.config.update("jax_disable_most_optimizations", True)

from dts_ppl import DiffusionPrior  # noqa: E402
from dts_ppl.core import linalg as _linalg  # noqa: E402

# The unrolled small-matrix Cholesky (core.linalg.SMALL_MAX_SIZE, n <= 3 by default) is a runtime
# speed-up that compiles more slowly (test_agents.py + test_exactness.py: 57 s against 50 s). Tests
# trace the LAPACK path for every size; the tests of the unrolled path set it back themselves
# (tests/core/test_fast_chain.py::test_small_cholesky_and_triangular_inverse_match_lapack,
# tests/agents/test_dts_fast_round.py). DTS_PPL_TEST_SMALL_MAX_SIZE=3 runs the suite on the default.
_linalg.SMALL_MAX_SIZE = int(os.environ.get("DTS_PPL_TEST_SMALL_MAX_SIZE", "0"))


@pytest.fixture(autouse=True)
def float64():
    """Every test runs in float64, even after one that ran a CLI command which sets the global
    x64 flag (``dts-ppl bench regret`` without ``--x64`` switches it off)."""
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", True)


def kernel_map_limit() -> int:
    """The kernel's per-process limit on memory mappings (vm.max_map_count; Linux's default if unreadable)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):  # not Linux
        return 65_530


# Compiled code is freed once a worker holds this many mappings: the kernel's limit less MAP_HEADROOM,
# about seven times the most mappings one test added (2,200, measured on test_fast_chain.py and
# test_fuzz_api.py). Each clear costs CPU time (about 1 CPU-s per 5,000 mappings freed) and the
# recompilation of the programs the later tests share, so it is kept as late as is safe; on a
# machine with a higher limit (1,048,576 on several distributions) the clears come later still.
MAP_HEADROOM = 15_000
MAX_MAPPINGS = max(kernel_map_limit() - MAP_HEADROOM, kernel_map_limit() // 2)


def _mappings() -> int:
    try:
        with open(f"/proc/{os.getpid()}/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


@pytest.fixture(autouse=True)
def release_compiled_code():
    """Free the compiled XLA programs once the process holds MAX_MAPPINGS memory mappings. Every
    CPU executable keeps its own; a pytest worker running ~160 tests reached the kernel's limit
    (vm.max_map_count, 65,530 here; 20,700 mappings after the first 45 tests) and segfaulted
    inside an XLA compilation, a different test each run."""
    yield
    if _mappings() > MAX_MAPPINGS:
        jax.clear_caches()
        gc.collect()


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


def random_spd(key, n, jitter=0.3):
    """A random full (non-diagonal) SPD matrix."""
    a = jax.random.normal(key, (n, n))
    return a @ a.T / n + jitter * jnp.eye(n)


def random_linear_prior(key, d, d_psi, num_levels, offsets=True):
    """Linear prior with random weights, random offsets and full covariances."""
    kw, kc, ko = jax.random.split(key, 3)
    kws = jax.random.split(kw, num_levels)
    weights = [jax.random.normal(kws[0], (d, d_psi))]
    weights += [jax.random.normal(k, (d_psi, d_psi)) / jnp.sqrt(d_psi) for k in kws[1:]]
    kcs = jax.random.split(kc, num_levels + 1)
    covs = [random_spd(kcs[0], d)] + [random_spd(k, d_psi) for k in kcs[1:]]
    offs = None
    if offsets:
        kos = jax.random.split(ko, num_levels)
        offs = [jax.random.normal(kos[0], (d,))] + [jax.random.normal(k, (d_psi,)) for k in kos[1:]]
    return DiffusionPrior.linear(weights, covs, offs)


def random_data(key, d, num_actions, n, counts=None):
    """Contexts, actions and Gaussian rewards; ``counts`` fixes how often each action is played."""
    kx, ka, ky = jax.random.split(key, 3)
    if counts is not None:
        A = jnp.concatenate([jnp.full(c, a, jnp.int32) for a, c in enumerate(counts)])
        n = A.shape[0]
    else:
        A = jax.random.randint(ka, (n,), 0, num_actions)
    X = jax.random.normal(kx, (n, d))
    y = jax.random.normal(ky, (n,)) + X.sum(-1)
    return X, A, y


def pytest_terminal_summary(terminalreporter):
    """Print the fuzz suite's case counts (tests/support/fuzz.py) and write them to $DTS_PPL_FUZZ_JSON if set."""
    fuzz = sys.modules.get("fuzz")
    if fuzz is not None and fuzz.COUNTS:
        for line in fuzz.summary_lines():
            terminalreporter.write_line(line)
        fuzz.write_json()
