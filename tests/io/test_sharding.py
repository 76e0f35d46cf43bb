"""The action axis of agent states split across devices: same actions and states as one device.

Runs workers in subprocesses (the number of host devices is fixed when JAX starts): 4 forced host
devices in one process, and two localhost processes joined by jax.distributed (2 devices each). The
default run starts one worker that runs each agent on one device and then on the 4 devices (one
JAX start-up and import instead of two); the single-device state is checked to sit on one device.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).parent / "sharding_workers" / "run_agent.py"
ROOT = Path(__file__).resolve().parents[2]
# the default run: one agent per update family (dTS's DTSState, LinTS's LinearState, GLM-TS's
# history); the slow test below adds dTS with MLP links, exact TS (its own state class), HierTS
# and LinUCB
AGENTS = "dts,glm_ts"  # one exact and one GLM agent by default; the others in the slow run
SLOW_AGENTS = "dts_mlp,exact_ts,hier_ts,lin_ts,lin_ucb"
DISTRIBUTED_AGENTS = "dts,glm_ts"  # two processes cost more; one exact and one GLM agent
PER_ACTION = {"dts", "dts_mlp", "hier_ts", "lin_ts", "lin_ucb", "glm_ts"}


def _env(devices):
    env = dict(
        os.environ,
        XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}",
        JAX_ENABLE_X64="0",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _result(out: str) -> dict:
    (line,) = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def _run(mode, devices=4, extra=(), agents=AGENTS):
    proc = subprocess.run(
        [sys.executable, str(WORKER), agents, mode, *extra],
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def both():
    """One worker with 4 host devices: the agents on one device, then split across the 4."""
    return _result(_run("both"))


@pytest.fixture(scope="module")
def single(both):
    result = both["single"]
    for name, got in result["agents"].items():
        assert got["devices_used"] == 1, f"{name}: the single-device run used {got['devices_used']} devices"
        assert got["sharded_leaves"] == 0, name
    return result


def _same(reference, other):
    for name, got in other["agents"].items():
        ref = reference["agents"][name]
        assert got["actions"] == ref["actions"], name
        for a, b in zip(ref["leaves"], got["leaves"], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
        assert got["devices_used"] == other["devices"], f"{name}: the state sits on {got['devices_used']} devices"
        if name in PER_ACTION:
            assert got["sharded_leaves"] > 0, f"{name}: nothing was split across devices"


def test_four_host_devices_match_one_device(single, both):
    sharded = both["sharded"]
    assert sharded["devices"] == 4
    _same(single, sharded)


@pytest.mark.slow
def test_four_host_devices_match_one_device_other_agents():
    result = _result(_run("both", agents=SLOW_AGENTS))
    assert result["sharded"]["devices"] == 4
    assert all(got["devices_used"] == 1 for got in result["single"]["agents"].values())
    _same(result["single"], result["sharded"])


@pytest.mark.slow
def test_two_localhost_processes_match_one_process(single):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), DISTRIBUTED_AGENTS, "distributed", str(pid), "2", port],
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in range(2)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
            outs.append(out)
    finally:
        for p in procs:
            p.kill()
    distributed = _result(outs[0])
    assert distributed["devices"] == 4
    _same(single, distributed)
