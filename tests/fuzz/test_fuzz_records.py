"""Experiment folders and ``compare`` per-image files against hostile input
(issue 15).

* ``experiment report``: an experiment folder whose ``experiment.json``,
  ``record.json`` files and ``grid.yaml`` are hostile (values replaced by
  NaN, huge or deep JSON, wrong types; cell ids that are paths; a YAML
  alias bomb), beside a canary folder. The report is read and written
  (markdown, CSV, JSON; sometimes the plots). Contract (conftest.py): the
  outputs are written and every figure is a fraction, an edited record is
  marked, nothing outside the folder is read or written -- or one
  TcmbenchError line.
* ``compare`` per-image files (``score --per-image``): lines whose counts
  are hostile. Contract: accumulators whose figures are fractions (counts
  consistent: matched <= care GTs and detections) or one TcmbenchError line.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.commands.compare import _Run, read_per_image_file
from tcmbench.experiment import schema
from tcmbench.experiment.report import write_report
from tcmbench.experiment.results import load_experiment
from tcmbench.experiment.shaping import EDITED_MARK

from .conftest import contract, fuzz_settings
from .fuzz_strategies import hostile_json_text

CANARY_FIGURE = 0.987654


def _record(cell: str, h: float, checksum: bool) -> dict[str, Any]:
    rec = {
        "schema": 1,
        "grid": "g",
        "cell": cell,
        "label": f"cell {cell}",
        "tiny": False,
        "params": {"plugin": "dbnet", "steps": 3, "tcm": True, "label": f"cell {cell}"},
        "status": "done",
        "init": None,
        "train": {"steps": 3, "train_images": 4, "losses": {"loss": 1.5}},
        "results": [
            {
                "dataset": "icdar2015",
                "split": "test",
                "protocol": "icdar2015",
                "precision": h,
                "recall": h,
                "hmean": h,
                "images": 5,
                "sweep": {"best_hmean": h, "best_threshold": 0.5},
            }
        ],
        "seconds": 2.0,
        "versions": {"tcmbench": "0.1.0"},
        "device": "cpu",
    }
    return schema.with_checksum(rec) if checksum else rec


CELL_IDS = st.one_of(
    st.sampled_from(
        [
            "000-a",
            "001-b",
            "002-pending",
            "../canary/victim",
            "../../canary/victim",
            "/tmp",
            "..",
            ".",
            "",
            "a/b",
            "a\\b",
            "a\x00b",
            "x" * 300,
            "003-label=$\\frac{$-train_fraction=0.5",
            '004-=HYPERLINK("x")',
        ]
    ),
    st.text(max_size=12),
)
KINDS = st.sampled_from(
    [
        {"kind": "bars"},
        {"kind": "table", "rows": ["label"]},
        {"kind": "curve", "x": "steps", "series": "tcm"},
        {"kind": "curve"},
        {"kind": "pie"},
    ]
)


@st.composite
def experiment_folder(draw: st.DrawFn) -> dict[str, Any]:
    """Files (relative path -> bytes) of an experiment folder, hostile."""
    good = st.sampled_from(["000-a", "001-b", "002-c", "003-steps=3-tcm=true"])
    ids = draw(st.lists(good if draw(st.integers(0, 3)) else CELL_IDS, min_size=1, max_size=4))
    meta = {
        "schema": 1,
        "grid": draw(st.sampled_from(["g", "g", "g", "g", "../g", ""])),
        "title": "fuzz",
        "tiny": False,
        "report": draw(KINDS),
        "cells": ids,
        "paper_values": [
            {"match": {"tcm": True}, "dataset": "icdar2015", "hmean": 0.8, "source": "t"}
        ],
    }
    files: dict[str, bytes] = {}
    raw_meta = json.dumps(meta) if draw(st.integers(0, 3)) else draw(hostile_json_text(meta))
    files["experiment.json"] = raw_meta.encode("utf-8", "surrogatepass")
    for cell in ids:
        if not cell or "/" in cell or "\\" in cell or "\x00" in cell or cell in (".", ".."):
            continue
        if len(cell) > 200 or draw(st.integers(0, 4)) == 0:
            continue  # pending
        rec = _record(cell, draw(st.floats(0, 1)), checksum=draw(st.booleans()))
        how = draw(st.sampled_from(["as-is", "as-is", "edited", "hostile"]))
        if how == "edited":
            rec["results"][0]["hmean"] = 0.999
            text = json.dumps(rec)
        elif how == "hostile":
            text = draw(hostile_json_text(rec))
        else:
            text = json.dumps(rec)
        files[f"cells/{cell}/record.json"] = text.encode("utf-8", "surrogatepass")
    grid_yaml = draw(st.sampled_from(["none", "none", "plain", "plain", "bomb", "deep", "bytes"]))
    if grid_yaml == "plain":
        files["grid.yaml"] = yaml.safe_dump({"name": "g", "base": {"plugin": "dbnet"}}).encode()
    elif grid_yaml == "bomb":
        lines = ["a: &a [x, x]"] + [f"b{i}: &b{i} [*a, *a, *a]" for i in range(9)]
        files["grid.yaml"] = ("\n".join(lines) + "\n").encode()
    elif grid_yaml == "deep":
        files["grid.yaml"] = ("base: " + "[" * 5000 + "]" * 5000 + "\n").encode()
    elif grid_yaml == "bytes":
        files["grid.yaml"] = draw(st.binary(max_size=40))
    return files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _report(root: Path, png: bool) -> int:
    exp = load_experiment(root)
    formats = ("md", "csv", "json", "png") if png else ("md", "csv", "json")
    out = write_report(exp, root / "report", formats)
    for cell in exp.cells:
        assert cell.integrity in ("", schema.VERIFIED, schema.EDITED, schema.UNVERIFIED)
        for res in cell.results:
            for value in (res.precision, res.recall, res.hmean, res.best_hmean):
                assert value is None or (math.isfinite(value) and 0.0 <= value <= 1.0)
        if cell.edited:
            assert f"[{EDITED_MARK}]" in out.markdown
    assert str(CANARY_FIGURE * 100)[:4] not in out.markdown
    return len(exp.cells)


@fuzz_settings(fast_examples=60)
@given(files=experiment_folder(), png=st.integers(0, 19).map(lambda n: n == 0))
def test_experiment_folders(files: dict[str, bytes], png: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        canary = base / "canary" / "victim"
        canary.mkdir(parents=True)
        (canary / "record.json").write_text(json.dumps(_record("victim", CANARY_FIGURE, True)))
        before = _snapshot(base / "canary")
        root = base / "exp"
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        contract("experiment report", lambda: _report(root, png))
        assert _snapshot(base / "canary") == before
        assert sorted(p.name for p in base.iterdir()) == ["canary", "exp"]


# ------------------------------------------------------------------ compare


PER_IMAGE_SEEDS = [
    {"id": "img_1", "num_gt_care": 4, "num_det_care": 3, "num_matched": 2, "precision": 0.66},
    {
        "id": "img_1",
        "num_gt_care": 3,
        "num_det_care": 2,
        "recall_credit": 2.4,
        "precision_credit": 1.6,
    },
    {"id": "img_1", "num_gt_care": 2, "num_det_care": 2, "tiou_recall": 0.5, "tiou_precision": 0.7},
    {"id": "img_1", "skipped": "no prediction file", "num_gt_care": 3},
]


@st.composite
def per_image_file(draw: st.DrawFn) -> bytes:
    lines = []
    for i in range(draw(st.integers(1, 6))):
        seed = dict(draw(st.sampled_from(PER_IMAGE_SEEDS)))
        seed["id"] = f"img_{i + 1}" if draw(st.integers(0, 9)) else "img_1"
        if draw(st.booleans()):
            for key in ("num_gt_care", "num_det_care", "num_matched"):
                if key in seed and draw(st.booleans()):
                    seed[key] = draw(
                        st.one_of(
                            st.integers(-5, 60),
                            st.floats(allow_nan=False, allow_infinity=False),
                            st.sampled_from([0.25, 1e-300, 2.5, 2**41, 10**400 // 10**399]),
                        )
                    )
            lines.append(draw(hostile_json_text(seed)) if draw(st.booleans()) else json.dumps(seed))
        else:
            lines.append(json.dumps(seed))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _read(path: Path, tiou: bool) -> tuple[float, float, float]:
    acc = read_per_image_file(_Run("A", path, "per-image"), tiou)
    m = acc.matrix()
    assert np.isfinite(m).all() and (m >= 0).all()
    assert (m[:, 0] <= m[:, 1] + 1e-6).all() and (m[:, 2] <= m[:, 3] + 1e-6).all()
    figures = acc.figures()
    assert all(0.0 <= f <= 1.0 for f in figures), figures
    return figures


@fuzz_settings(fast_examples=100)
@given(data=per_image_file(), tiou=st.booleans())
def test_compare_per_image_files(data: bytes, tiou: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.jsonl"
        path.write_bytes(data)
        contract("compare per-image", lambda: _read(path, tiou))
