"""Registration of the built-in formats and the helpers every reader uses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tcmbench.contract.registry import dataset_formats, get_dataset_format
from tcmbench.data.formats.api import read_annotations
from tcmbench.data.formats.common import json_line_of, natural_key, to_polygon, unquote
from tcmbench.errors import PluginError

FORMATS = [
    "art",
    "coco-text",
    "ctw1500",
    "hust-tr400",
    "icdar2013",
    "icdar2015",
    "jsonl",
    "mlt17",
    "mmocr",
    "msra-td500",
    "nighttime-art",
    "synthtext",
    "totaltext",
]


def test_every_builtin_format_is_registered_with_a_summary() -> None:
    fmts = dataset_formats()
    assert set(FORMATS) <= set(fmts)
    for name in FORMATS:
        assert fmts[name].summary and fmts[name].pattern and callable(fmts[name].reader)
    with pytest.raises(PluginError, match=r"unknown dataset format 'icdar2051'.*icdar2015"):
        get_dataset_format("icdar2051")
    with pytest.raises(PluginError):
        read_annotations("icdar2051", ".")


def test_listing_formats_imports_no_reader_module() -> None:
    """Readers load lazily: listing formats (CLI start-up) stays cheap."""
    code = (
        "import sys; from tcmbench.contract.registry import dataset_formats; dataset_formats(); "
        "print(sorted(m for m in sys.modules if m.startswith('tcmbench.data.formats.') or m in ('scipy', 'PIL')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the registry module registers them; no reader module is loaded
    assert out.stdout.strip() == "['tcmbench.data.formats.registry']"


def test_natural_order() -> None:
    ids = ["img_10", "img_2", "img_1", "IMG_0100", "gt_1", "10/a", "8/b"]
    assert sorted(ids, key=natural_key) == [
        "8/b",
        "10/a",
        "gt_1",
        "img_1",
        "img_2",
        "img_10",
        "IMG_0100",
    ]


def test_to_polygon() -> None:
    p = to_polygon([1, 2, 3, 4, 5, 6])
    assert p.dtype == np.float32 and p.shape == (3, 2)
    assert to_polygon([[1, 2], [3, 4], [5, 7]]).shape == (3, 2)
    for bad, why in [
        ([1, 2, 3, 4], "at least 3"),
        ([1, 2, 3, 4, 5], "odd"),
        ([1, 2, 3, float("inf"), 5, 6], "non-finite"),
        ([[1, 2, 3]], "shape"),
    ]:
        with pytest.raises(ValueError, match=why):
            to_polygon(bad)


def test_unquote() -> None:
    assert unquote(' "a \\"b\\", c" ') == 'a "b", c'
    assert unquote('"back\\\\slash"') == "back\\slash"
    assert unquote("plain") == "plain" and unquote('"') == '"'


def test_json_line_of_finds_nested_records() -> None:
    doc = {"a": [1, {"x": "}]\n"}], "b": {"c": [0, [5, 6], {"d": None}]}}
    text = json.dumps(doc, indent=1)
    lines = text.splitlines()
    assert json_line_of(text, ["b", "c", 2]) == lines.index("   {") + 1
    assert json_line_of(text, ["b"]) == next(i for i, t in enumerate(lines, 1) if '"b"' in t)
    assert json_line_of(text, ["zz"]) is None
    assert json_line_of(text, ["a", 7]) is None
    assert json_line_of('{"a": [1, 2', ["a", 5]) is None  # truncated JSON: no crash
