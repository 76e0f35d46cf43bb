"""Every notebook in notebooks/ runs top to bottom (small sizes via DTS_PPL_FAST=1)."""

import pathlib
import runpy

import matplotlib
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("*.py"))
# the validation study runs NUTS for every preset even at toy sizes, and the quickstart repeats the
# README examples (tests/project/test_docs.py runs those): both slow (pytest -m slow)
SLOW = {"validation_study.py", "quickstart.py"}
CASES = [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in NOTEBOOKS]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch, tmp_path):
    matplotlib.use("Agg")
    monkeypatch.setenv("DTS_PPL_FAST", "1")
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(path), run_name="__main__")
    if path.name == "validation_study.py":  # toy sizes: the full study is `dts-ppl validation-study`
        assert (tmp_path / "validation_detail.png").stat().st_size > 0
        assert (tmp_path / "validation_study.png").stat().st_size > 0
        assert ns["rows"] and ns["rows"][0]["preset"] == "linear"
