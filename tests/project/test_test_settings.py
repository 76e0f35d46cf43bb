"""The test settings of tests/conftest.py: XLA flags that the installed jaxlib does not know are never set."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import conftest


def test_an_unknown_xla_flag_is_left_out_and_the_known_ones_kept():
    known = "--xla_cpu_enable_fast_math=false"  # a flag jaxlib 0.4 to 0.12 all know
    bogus = "--xla_dts_ppl_no_such_flag=true"
    assert conftest.accepted_xla_flags([bogus, known]) == [known]


def test_the_flags_this_session_set_start_xla_in_a_subprocess():
    """What the tests' subprocesses (CLI, README commands, sharding workers) inherit must start."""
    set_now = os.environ.get("XLA_FLAGS", "").split()
    assert not set(set_now) & set(conftest.SKIPPED_XLA_FLAGS)
    run = subprocess.run([sys.executable, "-c", conftest._PROBE], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_default_run_deals_each_worker_contiguous_tests():
    """pytest-xdist's worksteal mode (a file's tests, and the XLA programs they share, compile in one
    worker), set in pyproject.toml's addopts so that the README's command uses it."""
    root = Path(__file__).resolve().parents[2]
    settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--dist worksteal" in settings["addopts"]


def test_compiled_code_is_freed_with_headroom_below_the_kernels_mapping_limit():
    """A worker that reaches vm.max_map_count segfaults inside XLA: release_compiled_code frees
    compiled programs early enough that one test's growth cannot reach the limit."""
    limit = conftest.kernel_map_limit()
    assert limit > 0
    assert conftest.MAX_MAPPINGS < limit
    assert limit - conftest.MAX_MAPPINGS >= min(conftest.MAP_HEADROOM, limit // 2)
    assert conftest.MAP_HEADROOM >= 5 * 2_200  # five times the largest one-test growth measured
