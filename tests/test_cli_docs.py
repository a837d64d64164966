"""docs/cli.md documents every command and option, generated from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_cli_reference_is_up_to_date() -> None:
    # The built-in plugins only (a locally installed third-party plugin would
    # add its commands): the onnx plugin contributes `export`.
    env = dict(os.environ, COLUMNS="100", TCMBENCH_LOAD_PLUGINS="dbnet,pan,fcenet,onnx")
    out = subprocess.run(
        [sys.executable, "-m", "tcmbench.docgen.cli_reference"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    doc = (REPO / "docs" / "cli.md").read_text()
    assert doc == out, (
        "docs/cli.md is stale: run `python -m tcmbench.docgen.cli_reference > docs/cli.md`"
    )
    for command in (
        "datasets stats",
        "score",
        "evaluate",
        "train",
        "predict",
        "bench",
        "hub push",
        "plugins",
    ):
        assert f"## `tcmbench {command}`" in doc
