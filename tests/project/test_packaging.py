"""The wheel ships the trained models as package data, so they load after a plain `pip install .`."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_shipped_models(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("dts_ppl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"dts_ppl/models/{p.name}" for p in (ROOT / "dts_ppl" / "models").glob("*.npz")}
    assert "dts_ppl/models/swissroll_L40.npz" in shipped
    assert shipped <= names
    assert not any(n.startswith(("tests/", "studies/")) for n in names)


def test_shipped_prior_loads_from_the_installed_package():
    from dts_ppl.experiments.swissroll import MODELS_DIR
    from dts_ppl.io.serialization import load_prior

    prior, meta = load_prior(MODELS_DIR / "swissroll_L40.npz")
    assert prior.num_levels == 40 and prior.dim == 2 and meta["kind"] == "ddpm"
