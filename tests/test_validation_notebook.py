import os
import runpy
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "validation_study.py"


def test_validation_notebook_runs_at_toy_size(tmp_path, monkeypatch):
    monkeypatch.setenv("DTS_PPL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("CI", "1")  # no progress bars
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(os.fspath(NOTEBOOK))
    assert (tmp_path / "validation_detail.png").stat().st_size > 0
    assert (tmp_path / "validation_study.png").stat().st_size > 0
    assert ns["rows"] and ns["rows"][0]["preset"] == "linear"
