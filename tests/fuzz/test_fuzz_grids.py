"""Experiment grid files and ``--set`` values against hostile YAML (issue 15).

Each input is a grid a user could hand ``experiment run GRID --dry-run``:
the shape of a real grid (base, cells, axes, variables, tiny, report,
paper_values) with hostile values in it (numbers out of range or not
finite, huge integers, wrong types, ``${variables}``, path-like and
formula-like strings, deep lists), then sometimes made hostile as text
(YAML anchors and aliases, a billion-laughs block, deep nesting, a cut, raw
bytes). The contract (conftest.py): the cells expand and print, every
value of every cell within its declared range, or one TcmbenchError line;
never another exception, never 5 s or more.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.commands.experiment import dry_run_table
from tcmbench.contract.options import Opt
from tcmbench.experiment import schema
from tcmbench.experiment.grid import (
    CELL_KEYS,
    apply_tiny,
    expand,
    load_grid,
    parse_sets,
    with_sets,
)
from tcmbench.safety.validation import check_document

from .conftest import contract, fuzz_settings
from .fuzz_strategies import HOSTILE_WORDS

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**23, -1, 0, 1, 2, 1024, 1025, 2**32, 2**63, 10**20, 10_000_001]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, 1e-300, -0.0, 0.5, 1.5, float("nan"), float("inf")]),
    st.sampled_from(
        [
            "",
            "x",
            "abc",
            "1e20",
            ".nan",
            "${v}",
            "${w}",
            "${undeclared}",
            "runs/${v}/final",
            "../../x",
            "/abs/victim",
            "embedded",
            "icdar2015",
            "dbnet",
            '=HYPERLINK("http://x","y")',
            "-0.5",
            "@SUM(A1)",
            "$\\frac{$",
            *HOSTILE_WORDS,
        ]
    ),
    st.text(max_size=16),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
#: Values a real grid would give each key (so the expansion is reached).
PLAUSIBLE: dict[str, Any] = {
    "label": st.text(min_size=1, max_size=20),
    "backbone": st.sampled_from([None, "resnet18", "resnet50"]),
    "recipe": st.sampled_from([None, "synthtext-mini", "icdar2015"]),
    "init_from": st.sampled_from([None, "embedded", "${v}", "runs/x/final"]),
    "eval_split": st.sampled_from(["test", "train"]),
    "eval_limit": st.one_of(st.none(), st.integers(1, 5)),
    "optimizer": st.sampled_from([None, "adam", "sgd"]),
    "pretrained_backbone": st.sampled_from([None, True, False]),
    "plugin": st.sampled_from(["dbnet", "pan", "fcenet", "nope"]),
    "tcm": st.one_of(
        st.booleans(),
        st.fixed_dictionaries(
            {},
            optional={
                "tau": st.floats(0.01, 1),
                "context_length": st.integers(0, 80),
                "clip_pretrained": st.none(),
            },
        ),
    ),
    "train_datasets": st.sampled_from([["icdar2015"], "icdar2015", [], ["synthtext-mini"]]),
    "test_datasets": st.sampled_from([["icdar2015"], "totaltext", ["icdar2015", "ctw1500"]]),
    "train_fraction": st.sampled_from([0.0, 0.01, 0.5, 1.0]),
    "steps": st.integers(1, 50),
    "epochs": st.floats(0.5, 10),
    "batch_size": st.integers(1, 16),
    "lr": st.floats(1e-5, 1e-2),
    "seed": st.integers(0, 5),
    "train_options": st.fixed_dictionaries(
        {}, optional={"workers": st.integers(0, 4), "save_every": st.integers(0, 9)}
    ),
}


#: True nine times in ten (hypothesis favours the first of a sampled_from,
#: so a plausible value is the first choice, the hostile one the rare).
OFTEN = st.sampled_from([True] * 9 + [False])


@st.composite
def cell_keys(draw: st.DrawFn) -> dict[str, Any]:
    """A mapping of cell keys: plausible values, hostile ones, unknown keys."""
    out: dict[str, Any] = {}
    keys = st.sampled_from(CELL_KEYS) if draw(OFTEN) else st.just("stepz")
    for key in draw(st.lists(keys, max_size=5, unique=True)):
        plausible = PLAUSIBLE.get(key)
        if plausible is not None and draw(OFTEN):
            out[key] = draw(plausible)
        else:
            out[key] = draw(VALUES)
    return out


@st.composite
def grid_document(draw: st.DrawFn) -> dict[str, Any]:
    names = st.sampled_from(["g"] * 8 + ["few-shot", "../g", "", 3])
    grid: dict[str, Any] = {"name": draw(names)}
    grid["base"] = {"plugin": "dbnet", "test_datasets": ["icdar2015"], **draw(cell_keys())}
    if draw(st.booleans()):
        grid["cells"] = draw(
            st.lists(cell_keys(), min_size=draw(st.sampled_from([0, 1, 1])), max_size=3)
        )
    if draw(st.booleans()):
        axes: dict[str, Any] = {}
        if draw(st.integers(0, 9)) == 0:  # a product far over the cell limit
            for i in range(draw(st.integers(5, 12))):
                axes[f"b{i}"] = [{"seed": j} for j in range(10)]
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from([*CELL_KEYS, "bundle", "other"]))
            plausible = PLAUSIBLE.get(name)
            values = (
                st.lists(plausible, min_size=1, max_size=6)
                if plausible is not None and draw(st.booleans())
                else st.lists(
                    cell_keys() if draw(st.integers(0, 3)) else VALUES, min_size=0, max_size=6
                )
            )
            axes[name] = draw(values)
        grid["axes"] = axes
    if draw(st.booleans()):
        grid["variables"] = {
            "v": {"help": "x", "default": draw(VALUES)},
            "w": draw(st.just({}) if draw(st.integers(0, 3)) else VALUES),
        }
    if draw(st.booleans()):
        grid["report"] = draw(
            st.one_of(
                st.just({"kind": "curve", "x": "train_fraction", "series": "tcm"}),
                st.just({"kind": "bars", "metric": "hmean"}),
                st.dictionaries(
                    st.sampled_from(["kind", "x", "series", "rows", "metric", "pie"]), VALUES
                ),
            )
        )
    if draw(st.booleans()):
        grid["paper_values"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "dataset": st.sampled_from(["icdar2015", "icdar2015", "", None]),
                        "source": st.one_of(st.just("a table"), st.just("t"), VALUES),
                    },
                    optional={
                        "match": st.one_of(st.just({}), st.just({}), VALUES),
                        "hmean": st.one_of(st.floats(0, 1), st.floats(0, 1), VALUES),
                    },
                ),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        grid["tiny"] = {"base": draw(cell_keys())}
        if draw(st.booleans()):
            grid["tiny"]["axes"] = {"seed": draw(st.lists(VALUES, min_size=1, max_size=4))}
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # unknown top-level keys
        grid[draw(st.sampled_from(["paper_note", "axis", "tiny", "title"]))] = draw(VALUES)
    return grid


def _laughs(levels: int) -> str:
    lines = ['lol0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@st.composite
def grid_text(draw: st.DrawFn) -> bytes:
    """A grid document as YAML text, sometimes made hostile as text."""
    text = yaml.safe_dump(draw(grid_document()), sort_keys=False, allow_unicode=True)
    edit = draw(
        st.sampled_from(["none"] * 6 + ["laughs", "self-alias", "deep", "cut", "insert", "bytes"])
    )
    if edit == "laughs":
        text += _laughs(draw(st.integers(1, 9)))
    elif edit == "self-alias":
        text = text.replace("base:", "base: &a", 1) + "loop: *a\n"
    elif edit == "deep":
        depth = draw(st.sampled_from([63, 65, 5_000, 100_000]))
        text += "deep: " + "[" * depth + "]" * depth + "\n"
    elif edit == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "insert":
        pos = draw(st.integers(0, len(text)))
        token = draw(
            st.sampled_from(["&a ", "*a", "!!python/object:os.system ", "{", "]", ": ", "\t"])
        )
        text = text[:pos] + token + text[pos:]
    data = text.encode("utf-8", "surrogatepass")
    if edit == "bytes":
        data += draw(st.binary(max_size=32))
    return data


def _check_cell(params: dict[str, Any]) -> None:
    """What an expanded cell may hold: every key declared and in range
    (a placeholder only where --dry-run shows an unset variable)."""
    assert set(params) == set(CELL_KEYS), sorted(params)
    for key, value in params.items():
        if schema.is_placeholder(value):
            continue
        if key in ("train_datasets", "test_datasets"):
            assert isinstance(value, list) and all(isinstance(d, str) and d for d in value)
            continue
        checked = check_document(value, schema.CELL_FIELDS[key], "expanded", key)
        if isinstance(schema.CELL_FIELDS[key], Opt) and isinstance(checked, float):
            assert math.isfinite(checked)


def _dry_run(path: Path, tiny: bool, sets: list[str]) -> int:
    grid = load_grid(path)
    if tiny and grid.has_tiny:
        grid = apply_tiny(grid)
    grid = with_sets(grid, parse_sets(sets, grid))
    cells = expand(grid, strict=False)
    assert 0 < len(cells) <= schema.MAX_CELLS
    for cell in cells:
        assert "/" not in cell.id and cell.id not in (".", "..")
        _check_cell(cell.params)
    dry_run_table(grid, cells, cells)
    return len(cells)


@fuzz_settings(fast_examples=60)
@given(data=grid_text(), tiny=st.booleans())
def test_grid_files(data: bytes, tiny: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.yaml"
        path.write_bytes(data)
        contract("grid yaml", lambda: _dry_run(path, tiny, []))


SET_TEXT = st.one_of(
    SCALARS.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...")),
    st.sampled_from(
        [
            "[" * 5000 + "]" * 5000,
            "[[[1]]]",
            "&a [*a]",
            "*a",
            "{a: " * 70 + "1" + "}" * 70,
            "a: [b",
            "1e20",
            "100000000000000000000",
            "-1",
            ".nan",
            "9" * 5000,
            "2020-13-45",
            "!!float x",
            "x" * 70_000,
            "",
        ]
    ),
    st.text(max_size=30),
)
GRID_WITH_VARIABLES = """\
name: g
variables:
  v: {{help: any cell key}}
  w: {{default: 1}}
base:
  plugin: dbnet
  test_datasets: [icdar2015]
  train_fraction: 0
  {key}: "${{v}}"
"""


@fuzz_settings(fast_examples=60)
@given(
    key=st.sampled_from([k for k in CELL_KEYS if k not in ("plugin", "test_datasets")]),
    value=SET_TEXT,
    name=st.sampled_from(["v", "v", "w", "nope", ""]),
)
def test_set_values(key: str, value: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.yaml"
        path.write_text(GRID_WITH_VARIABLES.format(key=key))
        contract("grid --set", lambda: _dry_run(path, False, [f"{name}={value}"]))
