"""The command line's surface: --version, help on every flag, output paths checked before a run."""

import argparse

import pytest

from dts_ppl import __version__
from dts_ppl.cli import build_parser, main


def _parsers(parser, name="dts-ppl"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"dts-ppl {__version__}"


def test_every_flag_of_every_command_has_help():
    parsers = dict(_parsers(build_parser()))
    assert {"dts-ppl demo", "dts-ppl bench regret", "dts-ppl validate", "dts-ppl validation-study"} <= set(parsers)
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, parser in parsers.items()
        for action in parser._actions
        if action.option_strings and not (action.help or "").strip()
    ]
    assert not missing, missing


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "regret", "--preset", "test-tiny", "--runs", "1", "--rounds", "3", "--json", "{bad}/out.json"],
        ["demo", "--runs", "1", "--rounds", "3", "--plot", "{bad}/out.png"],
        ["validate", "--preset", "linear", "--json", "{bad}/r.json"],
        ["validation-study", "--presets", "linear", "--markdown", "{bad}/t.md"],
        ["validate", "--preset", "linear", "--plot", "{tmp}"],
    ],
    ids=["bench-json", "demo-plot", "validate-json", "study-markdown", "plot-is-a-folder"],
)
def test_output_paths_are_checked_before_the_run(argv, tmp_path, capsys, monkeypatch):
    ran = []
    monkeypatch.setattr("dts_ppl.commands.bench.run_experiment", lambda *a, **k: ran.append(a))
    monkeypatch.setattr("dts_ppl.commands.demo.run_experiment", lambda *a, **k: ran.append(a))
    monkeypatch.setattr("dts_ppl.commands.validate.validate", lambda *a, **k: ran.append(a))
    monkeypatch.setattr("dts_ppl.commands.validation_study.approximation_study", lambda *a, **k: ran.append(a))
    bad = tmp_path / "no" / "such" / "dir"
    argv = [a.format(bad=bad, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dts-ppl: error: --") and "\n" not in err
    assert not ran


def test_version_imports_neither_jax_nor_the_commands():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\nfrom dts_ppl.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'numpy', 'numpyro')"
        " or m.startswith('dts_ppl.commands')))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"dts-ppl {__version__}", "[]"]


def test_bench_list_prints_two_aligned_columns(capsys):
    from dts_ppl.experiments.regret import get_preset, preset_names

    assert main(["bench", "regret", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = preset_names()
    assert len(lines) == len(names)
    start = max(len(n) for n in names) + 2  # where every description starts
    for line, name in zip(lines, names, strict=True):
        assert line[:start].rstrip() == name and line[start:] == get_preset(name).description.rstrip()
        assert line[start - 1] == " " and line[start] != " "
