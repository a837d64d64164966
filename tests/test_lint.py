"""Lint, format and types are part of the test command.

ruff (lint and format check) and mypy run with the settings in
pyproject.toml, on the whole tree, as subprocesses of this interpreter: the
versions pinned in the ``test`` extra, so a finding here is the same one
``pre-commit`` and a contributor's editor report. A failure prints the
tool's own output (file, line, rule).

mypy keeps its cache in ``.mypy_cache``: the first run on a fresh clone
checks everything (tens of seconds), later runs only what changed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str, timeout: float) -> None:
    if importlib.util.find_spec(tool) is None:
        pytest.fail(f"{tool} is not installed in {sys.executable}: pip install -e '.[test]'")
    done = subprocess.run(
        [sys.executable, "-m", tool, *args],
        cwd=ROOT,
        check=False,  # the exit status is asserted below, with the output
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        command = " ".join([tool, *args])
        pytest.fail(f"`{command}` failed:\n{(done.stdout + done.stderr).strip()}", pytrace=False)


def test_ruff_check() -> None:
    _run("ruff", "check", "--no-fix", ".", timeout=120)


def test_ruff_format() -> None:
    _run("ruff", "format", "--check", ".", timeout=120)


def test_mypy() -> None:
    # files, strictness and the untyped third-party modules: [tool.mypy]
    _run("mypy", timeout=300)
