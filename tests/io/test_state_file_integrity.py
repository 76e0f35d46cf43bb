"""State files: every changed or appended byte is refused; a writer killed mid-save leaves nothing behind."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior, Gaussian, load_state, save_state
from dts_ppl.agents import dts
from dts_ppl.io import npz

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saved(tmp_path):
    agent = dts(DiffusionPrior.linear([jnp.eye(2)], [0.5, 1.0]), Gaussian(1.0), 2)
    path = tmp_path / "s.npz"
    save_state(path, agent.init(), {"n": 1}, agent=agent)
    return agent, path


def _loads(path, agent) -> bool:
    try:
        load_state(path, expect=agent)
    except ValueError:
        return False
    return True


def _zip_metadata(path) -> set:
    """Byte offsets of the zip structure: local file headers with names, central directory, end record."""
    with zipfile.ZipFile(path) as z:
        where = {i for info in z.infolist() for i in range(info.header_offset, info.header_offset + 30 + 64)}
        return {i for i in where if i < z.start_dir} | set(range(z.start_dir, path.stat().st_size))


def test_single_byte_changes_are_refused(saved, tmp_path):
    """Every byte of the zip structure and every 7th byte elsewhere (the arrays, the header)."""
    agent, path = saved
    raw = path.read_bytes()
    assert raw[-79:].startswith(b"dts_ppl-sha256:")
    bad = tmp_path / "bad.npz"
    silent = []
    positions = sorted(_zip_metadata(path) | set(range(0, len(raw), 7)))
    assert len(positions) > len(raw) // 3
    for i in positions:
        b = bytearray(raw)
        b[i] ^= 0x01 if i % 2 else 0xFF  # a low bit (a zip timestamp, a version field) or a whole byte
        bad.write_bytes(bytes(b))
        if _loads(bad, agent):
            silent.append(i)
    assert silent == [], f"{len(silent)} of {len(positions)} changed bytes loaded"


@pytest.mark.parametrize(
    "garbage",
    [b"\x00", b"\x00" * 100, b"garbage", b"PK\x05\x06" + b"\x00" * 18, None, bytes(range(256))],
    ids=["one zero byte", "zeros", "text", "an empty zip end record", "the file again", "all byte values"],
)
def test_appended_garbage_is_refused(saved, tmp_path, garbage):
    agent, path = saved
    raw = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(raw + (raw if garbage is None else garbage))
    with pytest.raises(ValueError, match="path: "):
        load_state(bad, expect=agent)


def test_a_zip_timestamp_change_is_refused(saved, tmp_path):
    agent, path = saved
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"PK\x03\x04"
    raw[10] ^= 0x01  # the first member's modification time: the content is unchanged
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match its stored SHA-256"):
        load_state(tmp_path / "bad.npz", expect=agent)


# A process that saves a large state in a loop (forked from one that imported dts_ppl once), killed
# with SIGKILL at random moments while a temporary file of the target exists.
KILLER = r"""
import json, os, random, signal, sys, time
import jax, numpy as np
from dts_ppl import DiffusionPrior, save_state
from dts_ppl.agents import dts
from dts_ppl.io import npz

path, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
K, d = 4000, 16  # a 16 MB state
agent = dts(DiffusionPrior.linear([np.eye(d, dtype=np.float32)], [0.5, 1.0]), num_actions=K)
state = jax.tree.map(np.asarray, agent.init())
save_state(path, state, agent=agent)  # also caches the agent's state shapes: the children run no JAX
rng, left = random.Random(seed), 0
for i in range(kills):
    pid = os.fork()
    if pid == 0:
        try:
            while True:
                save_state(path, state, {"writer": i}, agent=agent)
        finally:
            os._exit(1)
    time.sleep(rng.uniform(0.0, 0.3))
    deadline = time.monotonic() + 20
    while not any(f".tmp-{pid}-" in t for t in npz.temporary_files(path)) and time.monotonic() < deadline:
        time.sleep(0.0005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    left += any(f".tmp-{pid}-" in t for t in npz.temporary_files(path))
print(json.dumps({"kills": kills, "left_a_temporary_file": left, "present": len(npz.temporary_files(path))}))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL")
def test_kill_during_save_leaves_no_temporary_file_after_the_next_save(tmp_path):
    path = tmp_path / "big.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", KILLER, str(path), "10", "0"], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    # the kills hit writes in progress (each one leaves a temporary file until the next save)
    assert report["kills"] == 10 and report["left_a_temporary_file"] >= 5 and report["present"] >= 1, report
    # the target is always a complete file: the last good save
    state, meta = load_state(path)
    assert "writer" in meta and np.asarray(state.theta_cov).shape == (4000, 16, 16)
    # one more save (any state) removes the stale temporary files of the target
    save_state(path, dts(DiffusionPrior.linear([jnp.eye(2)], [0.5, 1.0]), Gaussian(1.0), 2).init())
    assert npz.temporary_files(path) == [] and os.listdir(tmp_path) == ["big.npz"]


def test_temporary_files_of_live_writers_and_other_targets_are_kept(tmp_path):
    path = tmp_path / "a.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    names = [
        f".a.npz.tmp-{dead_pid}-0123abcd",  # a killed writer of a.npz: removed
        f".a.npz.tmp-{os.getppid()}-0123abcd",  # a live process: kept
        f".b.npz.tmp-{dead_pid}-0123abcd",  # another target: kept
        ".a.npz.tmp-notapid",  # not one of ours: kept
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    npz.atomic_write(path, b"data")
    assert sorted(os.listdir(tmp_path)) == sorted(["a.npz"] + names[1:])
    assert path.read_bytes() == b"data"
