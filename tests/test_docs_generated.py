"""Docs generated from the program (tcmbench/docgen/__init__.py) stay in step with it.

Every ``<!-- generated: KIND ARGS -->`` block under docs/ must equal what
``python -m tcmbench.docgen`` writes today: the recipe and option tables
from the plugin's own declarations (fast), the sample output of a command
by running that command (slow). A stale block fails with the command that
fixes it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from tcmbench import docgen
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl

DOCS = REPO / "docs"
FIX = "run `python -m tcmbench.docgen` and commit the result"


def _docs_with_blocks() -> list[Path]:
    return [p for p in sorted(DOCS.glob("*.md")) if docgen.blocks(p.read_text())]


def _blocks(kind_filter: Callable[[str], bool]) -> list[tuple[Path, str, str]]:
    """(file, block spec, current body) of the generated blocks under docs/."""
    out = []
    for path in _docs_with_blocks():
        for m in docgen.BLOCK.finditer(path.read_text()):
            if kind_filter(shlex.split(m["spec"])[0]):
                out.append((path, m["spec"], m["body"]))
    return out


def test_docs_declare_the_expected_generated_blocks() -> None:
    specs = {(p.name, s) for p, s, _ in _blocks(lambda k: True)}
    assert ("dbnet.md", "recipes dbnet") in specs
    assert ("dbnet.md", "options tcmbench_dbnet.options:OPTIONS") in specs
    assert any(name == "evaluate.md" and s.startswith("command evaluate") for name, s in specs)


@pytest.mark.parametrize(
    ("path", "spec", "body"),
    _blocks(lambda kind: kind != "command"),
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_generated_block_is_up_to_date(path: Path, spec: str, body: str) -> None:
    assert body == docgen.render(spec), f"{path.name}: block `{spec}` is stale; {FIX}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "spec", "body"),
    _blocks(lambda kind: kind == "command"),
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_sample_output_is_what_the_command_prints(path: Path, spec: str, body: str) -> None:
    """The sample output shown in the docs comes from really running it."""
    assert body == docgen.render(spec), f"{path.name}: output of `{spec}` changed; {FIX}"


def test_synthtext_mini_recipe_row_says_what_the_code_trains() -> None:
    """The row a new user reads for the embedded weights' recipe: the
    figures come from RECIPES (lr 3e-3, 224-px crops, 800 steps)."""
    from tcmbench_dbnet.recipes import RECIPES

    r = RECIPES["synthtext-mini"]
    row = next(
        line for line in docgen.recipes_table("dbnet").splitlines() if "`synthtext-mini`" in line
    )
    assert f"Adam lr {r['optimizer']['lr']:g}," in row
    assert f"{r['steps']} steps, batch {r['batch_size']}, {r['train']['crop_size']}-px crops" in row
    assert "60 epochs" not in row and "256-px" not in row


def test_check_reports_a_stale_block_and_regeneration_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "dbnet.md"
    # Fresh blocks first: whether docs/ itself is up to date is the test above's.
    text = docgen.regenerate((DOCS / "dbnet.md").read_text(), skip=("command",))
    stale = text.replace("Adam lr 0.003", "Adam lr 0.001", 1)
    assert stale != text
    doc.write_text(stale)
    assert docgen.main(["--check", "--skip-commands", str(doc)]) == 1
    assert f"stale: {doc}" in capsys.readouterr().err
    assert doc.read_text() == stale  # --check writes nothing
    assert docgen.main(["--skip-commands", str(doc)]) == 0
    assert doc.read_text() == text


# Generic over any DetectorSpec (PANet / FCENet docs reuse the generator) ----


@pytest.fixture
def tiny_detector() -> Iterator[Any]:
    from tiny_data import TINY_SPEC

    class Tiny:
        @hookimpl
        def register_detectors(self, register: Callable[[Any], None]) -> None:
            register(TINY_SPEC)

    pm = plugins.get_plugin_manager()
    plugin = Tiny()
    pm.register(plugin, name="docgen-tiny")
    try:
        yield TINY_SPEC
    finally:
        pm.unregister(plugin)


def test_recipe_tables_for_another_plugin(tiny_detector: Any) -> None:
    table = docgen.recipes_table(tiny_detector.name).splitlines()
    assert len(table) == 2 + len(tiny_detector.recipes)
    (row,) = table[2:]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # recipe, model (none declared), optimizer, training, test, postprocess, tcm, source
    assert cells[0] == "`default` (fallback)" and cells[1] == "-"
    assert cells[2] == "SGD lr 0.05, weight_decay 0, momentum 0.9"
    assert cells[3] == "batch 2, poly 0.9 per step"
    assert cells[4] == "short 96"
    augment = docgen.augment_table(tiny_detector.name)
    assert "random_scale (range [0.75, 1.25]); random_crop (size [64, 64])" in augment
