"""The core never imports a plugin: plugins import tcmbench, not the other
way round. A plugin adds what the core lacks through the hooks (detectors,
formats, protocols, commands: the dbnet plugin's ``import ppocr`` joins the
core ``import`` group through ``register_commands``)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = {p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").is_file()}
#: The one known exception, which issue 18 removes (loading -> onnx runtime).
KNOWN = {"tcmbench/loading.py"}


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
