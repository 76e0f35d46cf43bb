"""Prior files: the header is checked against the arrays and every corrupted byte is detected."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from dts_ppl import DiffusionPrior, load_prior, save_prior
from dts_ppl.io.serialization import FORMAT_VERSION, _digest


def _prior():
    return DiffusionPrior.linear([jnp.array([[1.0, 0.5], [0.2, -0.7]]), jnp.eye(2)], [0.5, 1.0, 1.0])


def test_every_single_byte_flip_is_detected(tmp_path):
    path = tmp_path / "p.npz"
    save_prior(path, _prior(), {"note": "x"})
    raw = path.read_bytes()
    assert FORMAT_VERSION == 2 and raw[-79:].startswith(b"dts_ppl-sha256:")
    silent = 0
    bad = tmp_path / "bad.npz"
    for i in range(len(raw)):
        b = bytearray(raw)
        b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
        try:
            load_prior(bad)
        except ValueError:
            continue
        silent += 1
    assert silent == 0, f"{silent} of {len(raw)} flipped bytes loaded"


def _as_v1(src, dst, edit):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__meta__").tobytes().decode())
    header["format_version"] = 1
    header["sha256"] = _digest(arrays)
    edit(header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dst, **arrays)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.update(num_levels=3), "arrays do not match its header|implies"),
        (lambda h: h.update(num_levels=1), "arrays do not match its header"),
        (lambda h: h.pop("num_levels"), "incomplete header \\(no 'num_levels'\\)"),
        (lambda h: h.update(dim=3), "implies"),
        (lambda h: h.update(latent_dim="2"), "should be a int"),
        (lambda h: h.update(link_class="MLPLink"), "arrays do not match its header"),
        (lambda h: h.update(shared_link_fields=["bogus"]), "unknown shared link fields"),
    ],
)
def test_header_is_checked_against_the_arrays(tmp_path, edit, match):
    path, bad = tmp_path / "p.npz", tmp_path / "bad.npz"
    save_prior(path, _prior())
    _as_v1(path, bad, lambda h: None)
    load_prior(bad)  # an unedited version-1 file still loads
    _as_v1(path, bad, edit)
    with pytest.raises(ValueError, match=match):
        load_prior(bad)


def test_v2_file_without_its_digest_is_corrupt(tmp_path):
    path = tmp_path / "p.npz"
    save_prior(path, _prior())
    raw = path.read_bytes()
    stripped = raw[: -79 - 2] + b"\x00\x00"  # drop the zip comment that holds the digest
    (tmp_path / "s.npz").write_bytes(stripped)
    with pytest.raises(ValueError, match="without its whole-file SHA-256"):
        load_prior(tmp_path / "s.npz")
