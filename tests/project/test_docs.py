"""The documentation: every ```python block of README.md and docs/*.md runs as copied (blocks of one
file in order, in one namespace, in a temporary folder), and the pdoc API reference builds without
warnings."""

import importlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import matplotlib
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: pathlib.Path) -> list[str]:
    """The ```python blocks of a markdown file, in order."""
    return BLOCK.findall(path.read_text())


def test_the_readme_has_the_four_examples():
    assert len(python_blocks(ROOT / "README.md")) >= 4


def test_ci_runs_the_readme_test_command():
    """.ci/run runs the README's test command, which deselects the slow tests."""
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if 'pip install -e ".[test]"' in ln)
    command = line.split("#")[0].strip()
    assert '-m "not slow"' in command
    assert command in (ROOT / ".ci" / "run").read_text()


def test_the_ci_second_run_names_test_files_that_exist():
    """The fast Python 3.12 run of .ci/run selects files by path: a renamed file would select nothing."""
    text = (ROOT / ".ci" / "run").read_text()
    files = re.search(r'SECOND_RUN_TESTS="(.*?)"', text, re.S).group(1).split()
    assert len(files) >= 4 and all((ROOT / f).is_file() for f in files), files
    assert "tests/ppl/test_inspection.py" in files  # the ArviZ 1.x path of the adapter


def test_results_page_renders_from_the_json():
    """docs/make_results.py builds docs/results.md from the JSON; every regret preset JSON has its row."""
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "docs" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for path in (ROOT / "studies" / "paper" / "results").glob("fig*.json"):
        assert f"| {path.stem} |" in text, path.name
    study = json.loads((ROOT / "studies" / "validation" / "results" / "validation_study.json").read_text())
    rows = study["rows"] if isinstance(study, dict) else study
    for r in rows:  # every NUTS reference's divergences, as the study recorded them
        assert f"| {r['preset']} | {r['num_obs']} | {r['divergences']} |" in text


def test_performance_page_renders_from_the_json():
    """docs/make_performance.py builds docs/performance.md from the benchmark JSON, and it is current."""
    spec = importlib.util.spec_from_file_location("make_performance", ROOT / "docs" / "make_performance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert text == (ROOT / "docs" / "performance.md").read_text()
    for K, d, L in module.PAIRED:  # every deep-chain measurement has its row
        assert f"| {K} | {d} | {L} |" in text


def test_ope_page_renders_from_the_json(monkeypatch):
    """studies/ope/make_doc.py builds docs/ope.md from studies/ope/results/large_k*.json, and it is current."""
    monkeypatch.syspath_prepend(str(ROOT))  # make_doc imports studies.common
    spec = importlib.util.spec_from_file_location("ope_make_doc", ROOT / "studies" / "ope" / "make_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.page() == (ROOT / "docs" / "ope.md").read_text()


@pytest.mark.parametrize(
    "path",
    # the README's blocks (NUTS references, an SVI fit) take minutes: slow, and run by hand before a release
    [pytest.param(p, marks=pytest.mark.slow) if p.name == "README.md" else p for p in DOCS if python_blocks(p)],
    ids=lambda p: p.name,
)
def test_python_blocks_run_as_copied(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for i, block in enumerate(python_blocks(path)):
        try:
            exec(compile(block, f"{path.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - re-raised with the block's position
            raise AssertionError(f"{path.name}, python block {i + 1} fails: {type(e).__name__}: {e}") from e


# pdoc cannot resolve postponed annotations of a NamedTuple's generated __init__ (open pdoc bug,
# https://github.com/mitmproxy/pdoc/issues/765); those warnings, and only those, are allowed.
NAMEDTUPLE_INIT = re.compile(
    r"Error parsing type annotation ForwardRef\((?:'[^']+'|\"[^\"]+\")\) for (dts_ppl[\w.]*)\.(\w+)\.__init__\."
)


def _is_namedtuple(module: str, name: str) -> bool:
    cls = getattr(importlib.import_module(module), name, None)
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def test_api_reference_builds_without_warnings(tmp_path):
    """pdoc renders every module; any warning (e.g. a broken reference) fails, except pdoc's NamedTuple bug."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-m", "pdoc", "dts_ppl", "-o", str(tmp_path / "api"), "--docformat", "google"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    warnings = []
    for line in log.splitlines():
        if "warn" not in line.lower():
            continue
        known = NAMEDTUPLE_INIT.search(line)
        if not (known and _is_namedtuple(*known.groups())):
            warnings.append(line)
    assert not warnings, "\n".join(warnings)
    page = (tmp_path / "api" / "dts_ppl.html").read_text()
    for method in ("fit", "sample_posterior", "median", "quantiles", "get_posterior", "from_statistics"):
        assert f'id="DTSGuide.{method}"' in page, method
    assert 'id="to_inference_data"' in page
