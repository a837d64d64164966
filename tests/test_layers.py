"""One-way layers, checked on every test run.

The arrows between the core's packages, the core's independence from the
plugins and the plugins' from each other are import-linter contracts in
pyproject.toml (``[tool.importlinter]``; docs/ARCHITECTURE.md draws them).
import-linter's sibling rule cannot see a package importing a module that
imports the package back, so a module-level cycle search over every file
(function-level imports included: a lazy import still closes a cycle) runs
beside it. Both are shown to fail on a copy of the tree with a planted
plugin import and a planted cycle."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
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


def _import_graph(repo: Path = REPO) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body,
    functions included: a lazy import still closes a cycle)."""
    files = {_module_name(p, repo): p for p in (repo / "tcmbench").rglob("*.py")}
    for package in PLUGIN_PACKAGES:
        files.update(
            {
                _module_name(p, repo / "plugins"): p
                for p in (repo / "plugins" / package).rglob("*.py")
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


def test_no_import_cycle_anywhere() -> None:
    """No module of the core or of a built-in plugin is in an import cycle
    (a package importing a module that imports the package back included)."""
    assert [sorted(c) for c in _cycles(_import_graph())] == []


def _lint_imports(repo: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the tree at ``repo`` (its own pyproject.toml), with
    that tree first on the import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "plugins")])}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            str(repo / "pyproject.toml"),
            "--no-cache",
        ],
        check=False,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in done.stdout


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "weights", "*.onnx", "*.safetensors")
    shutil.copytree(REPO / "tcmbench", root / "tcmbench", ignore=ignore)
    shutil.copytree(REPO / "plugins", root / "plugins", ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", root)
    return root


def test_a_planted_plugin_import_in_the_core_breaks_the_contracts(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    (root / "tcmbench" / "eval" / "planted.py").write_text("import tcmbench_onnx\n")
    done = _lint_imports(root)
    assert done.returncode != 0
    assert "The core never imports a plugin" in done.stdout
    assert "tcmbench.eval.planted -> tcmbench_onnx" in done.stdout
    offenders = [
        p for p in (root / "tcmbench").rglob("*.py") if _imported_top_packages(p) & PLUGIN_PACKAGES
    ]
    assert offenders == [root / "tcmbench" / "eval" / "planted.py"]


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    root = _copy_tree(tmp_path)
    # A plugin package importing a module that imports the package back:
    # invisible to import-linter's sibling rule, found by the module search.
    (root / "plugins" / "tcmbench_onnx" / "planted.py").write_text("import tcmbench_onnx\n")
    init = root / "plugins" / "tcmbench_onnx" / "__init__.py"
    init.write_text(init.read_text() + "\nfrom tcmbench_onnx import planted  # noqa\n")
    # Two sibling modules of the core importing each other (lazily).
    (root / "tcmbench" / "eval" / "planted_a.py").write_text(
        "def f():\n    from tcmbench.eval import planted_b\n"
    )
    (root / "tcmbench" / "eval" / "planted_b.py").write_text(
        "from tcmbench.eval import planted_a\n"
    )
    cycles = [sorted(c) for c in _cycles(_import_graph(root))]
    assert ["tcmbench_onnx", "tcmbench_onnx.planted"] in cycles
    assert ["tcmbench.eval.planted_a", "tcmbench.eval.planted_b"] in cycles
    done = _lint_imports(root)
    assert done.returncode != 0
    assert "No cycles are allowed in tcmbench.eval" in done.stdout


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
