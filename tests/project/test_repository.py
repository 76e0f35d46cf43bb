"""What git tracks: no transcripts, no plot that no page shows, nothing tied to one machine, an indexed lab."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Written so that this file does not match its own patterns.
SCHEDULERS = ("task" + "set", "nice" + " -n")
INTERPRETERS = re.compile(r"[/]root[/]|[/]home[/]|[/]usr[/](local[/])?bin[/]python|[/][.]?venv[/]bin[/]python")
PNG_TOKEN = re.compile(r"[\w./@=-]+\.png")


def tracked() -> list[str]:
    """Every path git tracks in this checkout (skips the test outside a git work tree)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def pages(files: list[str]) -> list[str]:
    """The docs pages and every README (the places a plot may be shown or cited)."""
    return [f for f in files if f.endswith(".md") and (f.startswith("docs/") or Path(f).name == "README.md")]


def test_no_log_transcripts_are_tracked():
    assert [f for f in tracked() if f.endswith(".log")] == []


def test_every_tracked_png_is_shown_or_cited_by_a_page():
    files = tracked()
    cited = set()
    for page in pages(files):
        for token in PNG_TOKEN.findall((ROOT / page).read_text()):
            for base in (ROOT, (ROOT / page).parent):  # a repository path or one relative to the page
                path = (base / token).resolve()
                if path.is_file():
                    cited.add(path.relative_to(ROOT).as_posix())
    orphans = [f for f in files if f.endswith(".png") and f not in cited]
    assert orphans == [], f"PNGs no docs page or README references (git rm them or cite them): {orphans}"


def test_no_tracked_file_holds_one_machines_interpreter_or_job_scheduling():
    bad = []
    for f in tracked():
        if f == "CHANGELOG.md" or f.startswith("changelog.d/") or f.endswith((".png", ".npz")):  # history
            continue
        try:
            text = (ROOT / f).read_text()
        except UnicodeDecodeError:
            continue
        for line_no, line in enumerate(text.splitlines(), 1):
            if INTERPRETERS.search(line) or any(s in line for s in SCHEDULERS):
                bad.append(f"{f}:{line_no}: {line.strip()[:100]}")
    assert bad == []


def test_the_studies_index_names_every_study_script():
    index = (ROOT / "studies" / "README.md").read_text()
    scripts = sorted(
        p.relative_to(ROOT / "studies").as_posix()
        for p in (ROOT / "studies").rglob("*.py")
        if p.name not in ("__init__.py", "common.py")
    )
    assert scripts, "studies/ holds no script"
    missing = [s for s in scripts if f"studies/{s}" not in index]
    assert missing == [], f"studies/README.md does not name: {missing}"


def test_study_scripts_do_not_import_each_other_as_top_level_modules():
    """Shared helpers live in studies/common.py, imported as a package module."""
    names = {p.stem for p in (ROOT / "studies").rglob("*.py")} - {"__init__"}
    bad = []
    for p in (ROOT / "studies").rglob("*.py"):
        for line in p.read_text().splitlines():
            m = re.match(r"\s*(?:from|import)\s+([\w.]+)", line)
            if m and m.group(1).split(".")[0] in names:
                bad.append(f"{p.relative_to(ROOT)}: {line.strip()}")
    assert bad == []
