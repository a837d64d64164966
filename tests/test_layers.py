"""The core never imports a plugin: plugins import tcmbench, not the other
way round. A plugin adds what the core lacks through the hooks (detectors,
formats, protocols, commands: the dbnet plugin's ``import ppocr`` joins the
core ``import`` group through ``register_commands``)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = {p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").is_file()}
#: Known exceptions: none (issue 18 moved the onnxruntime runtime into the core).
KNOWN: set[str] = set()


def _imported_top_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_a_plugin() -> None:
    assert {"tcmbench_dbnet", "tcmbench_onnx"} <= PLUGIN_PACKAGES
    offenders = {
        str(path.relative_to(REPO))
        for path in (REPO / "tcmbench").rglob("*.py")
        if _imported_top_packages(path) & PLUGIN_PACKAGES
    }
    assert offenders <= KNOWN, sorted(offenders - KNOWN)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body,
    functions included: a lazy import still closes a cycle)."""
    files = {_module_name(p, REPO): p for p in (REPO / "tcmbench").rglob("*.py")}
    for package in PLUGIN_PACKAGES:
        files.update(
            {
                _module_name(p, REPO / "plugins"): p
                for p in (REPO / "plugins" / package).rglob("*.py")
            }
        )
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:
                    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + [node.module])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_inference_layer_and_the_onnx_plugin_are_in_no_import_cycle() -> None:
    """Runtimes live in tcmbench.inference and the onnx plugin imports it,
    never the reverse; a cycle through either (a package importing a
    module that imports the package back included) fails here."""
    mine = ("tcmbench.inference", "tcmbench_onnx")
    through = [sorted(c) for c in _cycles(_import_graph()) if any(m.startswith(mine) for m in c)]
    assert through == []


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
