"""The package's layers: no import cycles, a NumPyro-free core, imports at module level."""

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "dts_ppl"


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules=frozenset()) -> tuple[set, list]:
    """Top-level imported modules, and the imports found inside functions.

    ``from pkg import sub`` counts as importing the submodule ``pkg.sub`` only (Python runs
    ``pkg/__init__`` first either way; a package importing its own submodules is no cycle).
    """
    tree = ast.parse(path.read_text())
    top, nested = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                names = subs or [node.module or ""]
            if node.col_offset == 0:
                top.update(names)
            else:
                nested.append((path.name, node.lineno))
    return top, nested


def _graph():
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        top, _ = _imports(path, frozenset(modules))
        graph[name] = {m for m in top if m in modules and m != name}
    return graph


def test_no_import_cycles():
    graph, state = _graph(), {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, dep])}")
            if dep not in state:
                visit(dep, [*stack, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_core_imports_neither_numpyro_nor_the_other_layers():
    for path in (PKG / "core").rglob("*.py"):
        top, _ = _imports(path)
        bad = {
            m for m in top if m.split(".")[0] in ("numpyro", "arviz") or m.startswith(("dts_ppl.ppl", "dts_ppl.agents"))
        }
        assert not bad, f"{path.name} imports {bad}"


def test_function_level_imports_are_only_the_lazy_heavy_ones():
    nested = [n for p in PKG.rglob("*.py") for n in _imports(p)[1]]
    # arviz (slow, noisy import; 0.2x or 1.x) in its adapter, pyplot (the backend must be chosen
    # first), and the command line (``dts-ppl --version`` answers without importing JAX)
    assert {name for name, _ in nested} <= {"arviz_adapter.py", "plotting.py", "cli.py"}, nested


ARVIZ_PACKAGES = ("arviz", "arviz_base", "arviz_stats", "arviz_plots")


def test_arviz_is_imported_only_by_its_adapter():
    for path in PKG.rglob("*.py"):
        if path.name != "arviz_adapter.py":
            top, _ = _imports(path)
            assert not any(m.split(".")[0] in ARVIZ_PACKAGES for m in top), path
            # inside functions too
            pattern = rf"^\s*(import|from)\s+({'|'.join(ARVIZ_PACKAGES)})\b"
            assert not re.search(pattern, path.read_text(), re.MULTILINE), path
