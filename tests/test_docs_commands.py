"""The command lines the docs show are ones the program accepts.

docs/training.md and docs/experiments.md tell a researcher which
``tcmbench train / evaluate / experiment run`` lines reproduce each paper
table. A renamed recipe, dataset, grid or grid variable would leave them
showing commands that fail (or, before ``--recipe`` was checked, silently
train with other settings): each line is parsed with the commands' own
click parsers and its names are checked against the plugins, dataset
configs and shipped grids.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["training.md", "experiments.md", "dbnet.md", "pan.md", "fcenet.md"]


def _command_lines(page: str) -> list[str]:
    """Complete ``tcmbench train|evaluate|experiment run`` lines: those of
    fenced code blocks (continuation lines joined, comments dropped) and of
    table cells; prose fragments and lines with placeholders (NAME, OUT,
    ``...``, ``[--tcm]``) are not commands to run."""
    path = DOCS / page
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    chunks = [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)]
    chunks += re.findall(r"^\|.*\| `(tcmbench [^`]+)` \|$", text, re.MULTILINE)
    found = []
    for chunk in chunks:
        for m in re.finditer(r"tcmbench (?:train|evaluate|experiment run) [^\n]*", chunk):
            line = m.group(0).split(" #")[0].strip()
            if "--resume" in line:  # names a run folder, no recipe / dataset / grid
                continue
            if "..." in line or "[" in line or re.search(r"\b[A-Z]{3,}\b", line):
                continue
            found.append(line)
    return found


def _parse(command: click.Command, args: list[str]) -> dict[str, Any]:
    ctx = command.make_context("tcmbench", list(args), resilient_parsing=False)
    return dict(ctx.params)


LINES = [(page, line) for page in PAGES for line in _command_lines(page)]


def test_the_docs_show_the_paper_commands() -> None:
    """The pages this test guards do hold such lines (else it guards nothing)."""
    assert sum(1 for page, _ in LINES if page == "training.md") >= 20
    assert any("--recipe dbnet-paper-" in line for _, line in LINES)
    assert any("experiment run few-shot" in line for _, line in LINES)


@pytest.mark.parametrize(
    ("page", "line"), LINES, ids=[f"{p}:{i}" for i, (p, _) in enumerate(LINES)]
)
def test_documented_command_names_exist(page: str, line: str) -> None:
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.dataset import get_dataset_config

    words = shlex.split(line)[1:]  # drop "tcmbench"
    if words[0] == "experiment":
        from tcmbench.commands.experiment import run
        from tcmbench.experiment.grid import load_grid, parse_sets

        params = _parse(run, words[2:])
        grid = load_grid(params["grid_ref"])  # a shipped grid's name
        parse_sets(list(params.get("sets") or ()), grid)  # declared variables only
        return
    if words[0] == "train":
        from tcmbench.commands.train import train as command
    else:
        from tcmbench.commands.evaluate import evaluate as command
    params = _parse(command, words[1:])
    spec = get_detector(params["plugin"])
    if params.get("recipe"):
        spec.require_recipe(params["recipe"])
    names = params.get("datasets") if words[0] == "train" else params.get("dataset")
    for name in str(names or "").split(","):
        if name:
            get_dataset_config(name)  # raises for an unknown dataset
