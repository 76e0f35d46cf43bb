"""studies/common.py: the rerun command a study records, and resuming its results file."""

import argparse
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import studies.common

    return studies.common


def _parser(default_json):
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--cells", default="")
    p.add_argument("--baseline", action="store_true")
    p.add_argument("--json", default=str(default_json))
    return p


def test_command_line_names_what_differs_quoted_in_the_parsers_order(common, tmp_path):
    script = "studies/drift/bank.py"
    p = _parser(tmp_path / "bank.json")
    assert common.command_line(p, p.parse_args([]), script) == "PYTHONPATH=. python studies/drift/bank.py"
    args = p.parse_args(["--json", str(tmp_path / "x.json"), "--cells", "a, b; c", "--baseline", "--runs", "3"])
    assert common.command_line(p, args, script) == (
        "PYTHONPATH=. python studies/drift/bank.py --runs 3 --cells 'a, b; c' --baseline"
        " --json studies/drift/results/x.json"
    )


def test_resume_json_keeps_results_of_the_same_settings_only(common, tmp_path):
    path = tmp_path / "r.json"
    assert common.resume_json(path, {"runs": 2}) == {"settings": {"runs": 2}}  # no file
    path.write_text(json.dumps({"settings": {"runs": 2}, "cells": {"a": 1}}))
    assert common.resume_json(path, {"runs": 2})["cells"] == {"a": 1}
    assert common.resume_json(path, {"runs": 3}) == {"settings": {"runs": 3}}
    path.write_text("{not json")
    assert common.resume_json(path, {"runs": 2}) == {"settings": {"runs": 2}}
