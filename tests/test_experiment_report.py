"""``tcmbench experiment report``: experiment folders (built here as the
schema in notes/experiment-schema.md describes them) in, tables and plots
out. The records are made in the test: what is checked is that the report
carries the records' figures unchanged, shows unfinished cells, puts the
paper's figures beside the right cell only, labels tiny runs, and stops on
a malformed record with one line naming it."""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from PIL import Image

from tcmbench.commands.experiment_report import report
from tcmbench.eval.sweep import LABEL as SWEEP_LABEL
from tcmbench.eval.sweep import OFFICIAL_LABEL
from tcmbench.experiment import plots
from tcmbench.experiment.results import load_experiment, params_from_id
from tcmbench.experiment.shaping import TINY_LABEL

FEWSHOT_BASE = {
    "plugin": "dbnet",
    "train_datasets": ["synthtext-mini"],
    "test_datasets": ["synthtext-mini"],
    "steps": 2,
}
RATIOS = [0.0, 0.1, 0.5, 1.0]


def _record(
    name: str, cell: str, params: dict[str, Any], results: list[dict[str, Any]], tiny: bool
) -> dict[str, Any]:
    trained = params.get("train_fraction") != 0.0
    return {
        "schema": 1,
        "grid": name,
        "cell": cell,
        "label": params.get("label", cell.split("-", 1)[1]),
        "tiny": tiny,
        "params": params,
        "status": "done",
        "train": (
            {
                "run_dir": f"cells/{cell}/run",
                "steps": params.get("steps", 2),
                "seconds": 1.5,
                "final": f"cells/{cell}/run/final",
                "train_images": 40,
                "losses": {"loss": 1.2},
            }
            if trained
            else None
        ),
        "results": results,
        "seconds": 2.0,
        "started": "2025-01-01T00:00:00+00:00",
        "finished": "2025-01-01T00:00:02+00:00",
        "versions": {"tcmbench": "0.1.0", "torch": "2.5.1"},
        "device": "cpu",
    }


def _result(
    dataset: str, p: float, r: float, protocol: str, images: int = 12, best: float | None = None
) -> dict[str, Any]:
    h = 2 * p * r / (p + r) if p + r else 0.0
    sweep = {"best_hmean": best, "best_threshold": 0.6} if best is not None else {}
    if sweep:  # labelled as tcmbench.experiment.runner.evaluate_model writes them
        sweep["label"] = SWEEP_LABEL
    return {
        **({"sweep": sweep, "figure": OFFICIAL_LABEL} if sweep else {}),
        "dataset": dataset,
        "split": "test",
        "protocol": protocol,
        "precision": p,
        "recall": r,
        "hmean": h,
        "images": images,
        "weights": "final",
    }


def _write_experiment(
    out: Path,
    name: str,
    spec: dict[str, Any],
    cells: list[tuple[str, dict[str, Any], list[dict[str, Any]] | None]],
    base: dict[str, Any],
    tiny: bool,
    paper_values: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """experiment.json, grid.yaml and a record per cell whose results are
    given (None = pending: no record). Returns the records by cell id."""
    (out / "cells").mkdir(parents=True)
    meta = {
        "schema": 1,
        "grid": name,
        "title": f"{name} test grid",
        "paper": "TCM paper, Fig. 5" if spec["kind"] == "curve" else "TCM paper, Table 6",
        "tiny": tiny,
        "report": spec,
        "grid_file": f"/somewhere/{name}.yaml",
        "cells": [c[0] for c in cells],
    }
    (out / "experiment.json").write_text(json.dumps(meta))
    grid: dict[str, Any] = {"name": name, "base": base}
    if paper_values is not None:
        grid["paper_values"] = paper_values
    # as the runner writes it: without YAML aliases (the report refuses them)
    (out / "grid.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(grid))))
    records = {}
    for cell, params, results in cells:
        if results is None:
            continue
        rec = _record(name, cell, params, results, tiny)
        (out / "cells" / cell).mkdir()
        (out / "cells" / cell / "record.json").write_text(json.dumps(rec))
        records[cell] = rec
    return records


@pytest.fixture()
def fewshot(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]], list[str]]:
    """A tiny few-shot grid: 4 ratios x (DBNet, TCM-DBNet); the last cell
    has no record (pending). Figures differ per cell so a swap would show."""
    cells = []
    i = 0
    for ratio in RATIOS:
        for tcm in (False, True):
            cell = f"{i:03d}-train_fraction={ratio}-tcm={'true' if tcm else 'false'}"
            p, r = 0.11 + 0.6 * ratio + 0.07 * tcm, 0.05 + 0.5 * ratio + 0.03 * tcm + 0.001 * i
            results = [_result("synthtext-mini", p, r, "icdar2015")]
            pending = ratio == 1.0 and tcm
            cells.append(
                (
                    cell,
                    {**FEWSHOT_BASE, "train_fraction": ratio, "tcm": tcm},
                    None if pending else results,
                )
            )
            i += 1
    out = tmp_path / "fewshot"
    spec = {"kind": "curve", "x": "train_fraction", "series": "tcm", "metric": "hmean"}
    records = _write_experiment(out, "few-shot", spec, cells, FEWSHOT_BASE, tiny=True)
    return out, records, [c[0] for c in cells]


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(report, list(args), catch_exceptions=False)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.size == plots.FIGURE_PIXELS
        return np.asarray(im.convert("RGB"))


def _count_colour(px: np.ndarray, hex_colour: str) -> int:
    rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return int(np.all(px == np.array(rgb, dtype=px.dtype), axis=-1).sum())


def test_curve_report_tables_equal_the_records(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, records, ids = fewshot
    monkeypatch.chdir(tmp_path)
    res = _invoke(str(out))
    assert res.exit_code == 0, res.output
    folder = out / "report"
    written = {
        line.split(" ", 1)[1] for line in res.output.splitlines() if line.startswith("wrote ")
    }
    stem = "fewshot_synthtext-mini"
    expected = {"results.md", "results.csv", "results.json"} | {
        f"{stem}.{ext}" for ext in ("png", "svg", "pdf")
    }
    # printed relative to the current directory, never as absolute paths
    assert written == {str((folder / name).relative_to(tmp_path)) for name in expected}
    assert all((tmp_path / name).is_file() for name in written)

    # CSV and JSON: the records' own values, every cell, the pending one too.
    with (folder / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["cell"] for r in rows] == ids
    data = json.loads((folder / "results.json").read_text())
    assert [r["cell"] for r in data["rows"]] == ids
    assert data["tiny"] is True and data["run"] == TINY_LABEL
    assert data["pending"] == [ids[-1]]
    for row, jrow in zip(rows, data["rows"]):
        if row["cell"] not in records:
            assert row["status"] == jrow["status"] == "pending"
            assert row["hmean"] == "" and jrow["hmean"] is None
            continue
        want = records[row["cell"]]["results"][0]
        for key in ("precision", "recall", "hmean"):
            assert float(row[key]) == want[key] == jrow[key]
        assert row["protocol"] == "icdar2015" and row["official_protocol"] == "icdar2015"
        assert int(row["images"]) == want["images"]
        assert json.loads(row["params"]) == records[row["cell"]]["params"]

    # Markdown: tiny label, the curve as a table (series x ratio, in %).
    md = (folder / "results.md").read_text()
    assert TINY_LABEL in md and "TCM paper, Fig. 5" in md
    assert "protocol icdar2015 (official), 12 test images" in md
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| tcm |"))
    assert head == "| tcm | 0% | 10% | 50% | 100% |"
    for name, tcm in (("DBNet", False), ("TCM-DBNet", True)):
        line = next(text for text in lines if text.startswith(f"| {name} |"))
        values = []
        for ratio in RATIOS:
            cell = f"train_fraction={ratio}-tcm={'true' if tcm else 'false'}"
            rec = next((r for c, r in records.items() if c.endswith(cell)), None)
            values.append(f"{100 * rec['results'][0]['hmean']:.1f}" if rec else "pending")
        assert line == f"| {name} | " + " | ".join(values) + " |"
    assert md in res.output  # printed as well

    # The PNG: decodes, the expected size, both series and the tiny label drawn.
    px = _pixels(folder / "fewshot_synthtext-mini.png")
    assert px.std() > 10
    assert _count_colour(px, plots.COLOURS[0]) > 200
    assert _count_colour(px, plots.COLOURS[1]) > 200
    assert _count_colour(px, plots.TINY_COLOUR) > 50


def test_metric_option_and_formats(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]], tmp_path: Path
) -> None:
    out, records, _ = fewshot
    dest = tmp_path / "elsewhere"
    res = _invoke(str(out), "--out", str(dest), "--format", "md,csv", "--metric", "precision")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in dest.iterdir()) == ["results.csv", "results.md"]
    assert not (out / "report").exists()
    md = (dest / "results.md").read_text()
    first = records[next(iter(records))]["results"][0]
    dbnet = next(line for line in md.splitlines() if line.startswith("| DBNet |"))
    assert dbnet.split(" | ")[1] == f"{100 * first['precision']:.1f}"
    bad = CliRunner().invoke(report, [str(out), "--format", "md,gif"])
    assert bad.exit_code == 2 and "--format" in bad.output and "svg, pdf" in bad.output


def _ablation(tmp_path: Path, paper_values: list[dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    base = {"plugin": "dbnet", "tcm": True, "train_datasets": ["icdar2015"]}
    labels = ["PP only", "PP + LP(4)", "LP(18) only", "PP + LP(4) + LG + VG"]
    cells = []
    for i, label in enumerate(labels):
        results = [
            _result("icdar2015", 0.8 + 0.01 * i, 0.7 + 0.02 * i, "icdar2015", 500, 0.8 + 0.02 * i),
            _result("msra-td500", 0.6 + 0.01 * i, 0.5, "tiou", images=200),
        ]
        cells.append(
            (f"{i:03d}-label={label}", {**base, "label": label}, None if i == 2 else results)
        )
    out = tmp_path / "ablation"
    spec = {"kind": "bars", "rows": ["label"], "metric": "hmean"}
    records = _write_experiment(out, "ablations", spec, cells, base, False, paper_values)
    return out, records


PAPER_VG = {
    "match": {"label": "PP + LP(4) + LG + VG"},
    "dataset": "icdar2015",
    "hmean": 0.887,
    "source": "a published table",
}


def test_report_shows_the_official_and_the_papers_figure_each_labelled(tmp_path: Path) -> None:
    """Issue 17: a grid reports the papers' figure (mmocr 0.x best
    threshold) beside the official protocol's, each labelled, in every
    format; a test set without a sweep keeps its plain F."""
    from tcmbench.experiment.shaping import OFFICIAL_COLUMN, PAPERS_COLUMN, SWEEP_NOTE

    out, records = _ablation(tmp_path, [])
    res = _invoke(str(out), "--format", "md,csv,json")
    assert res.exit_code == 0, res.output
    md = (out / "report" / "results.md").read_text()
    assert SWEEP_NOTE in md and "papers' figure" in SWEEP_NOTE and "official" in SWEEP_NOTE
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| cell |")).split(" | ")
    official = head.index(f"icdar2015 {OFFICIAL_COLUMN}")
    papers = head.index(f"icdar2015 {PAPERS_COLUMN}")
    assert papers == official + 1 and "msra-td500 F" in head
    rec = records["000-label=PP only"]["results"][0]
    row = next(line for line in lines if line.startswith("| PP only |")).split(" | ")
    assert row[official] == f"{100 * rec['hmean']:.1f}"
    assert row[papers] == f"{100 * rec['sweep']['best_hmean']:.1f} @0.6"
    with (out / "report" / "results.csv").open() as f:
        csv_rows = [r for r in csv.DictReader(f) if r["cell"] == "000-label=PP only"]
    doc = json.loads((out / "report" / "results.json").read_text())
    json_rows = [r for r in doc["rows"] if r["cell"] == "000-label=PP only"]
    for rows in (csv_rows, json_rows):
        by_set = {r["dataset"]: r for r in rows}
        assert by_set["icdar2015"]["figure"] == OFFICIAL_LABEL
        assert by_set["icdar2015"]["sweep_label"] == SWEEP_LABEL
        assert float(by_set["icdar2015"]["hmean"]) == rec["hmean"]
        assert float(by_set["icdar2015"]["sweep_best_hmean"]) == rec["sweep"]["best_hmean"]
        assert not by_set["msra-td500"]["sweep_label"]  # no sweep, no papers' figure


def test_bars_table_paper_column_only_for_the_matching_cell(tmp_path: Path) -> None:
    other_dataset = {**PAPER_VG, "dataset": "ctw1500", "hmean": 0.5}  # no cell tested on it
    out, records = _ablation(tmp_path, [PAPER_VG, other_dataset])
    res = _invoke(str(out))
    assert res.exit_code == 0, res.output
    md = (out / "report" / "results.md").read_text()
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| cell |")).split(" | ")
    assert head[1:6] == [
        "icdar2015 P",
        "icdar2015 R",
        "icdar2015 F (official protocol)",
        "icdar2015 F (papers' figure)",
        "icdar2015 F (paper)",
    ]
    assert "msra-td500 F (papers' figure)" not in head  # no sweep there
    assert "ctw1500" not in " ".join(head)
    paper_col = head.index("icdar2015 F (paper)")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines if line.startswith("| ")}
    assert rows["PP + LP(4) + LG + VG"][paper_col] == "88.7"
    for label in ("PP only", "PP + LP(4)", "LP(18) only"):
        assert rows[label][paper_col] == ""
    assert rows["LP(18) only"][1] == "pending"
    vg = records["003-label=PP + LP(4) + LG + VG"]["results"][0]
    assert rows["PP + LP(4) + LG + VG"][3] == f"{100 * vg['hmean']:.1f}"
    assert rows["PP + LP(4) + LG + VG"][4] == f"{100 * vg['sweep']['best_hmean']:.1f} @0.6"
    # msra-td500 was scored with TIoU, not its official protocol: flagged.
    assert "protocol tiou: NOT the official protocol (msra-td500)" in md
    assert rows["PP only"][head.index("msra-td500 F")].endswith(" †")
    assert TINY_LABEL not in md and "full (" in md

    with (out / "report" / "results.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    for r in csv_rows:
        rec = records.get(r["cell"])
        want = next((x for x in rec["results"] if x["dataset"] == r["dataset"]), {}) if rec else {}
        got = float(r["sweep_best_hmean"]) if r["sweep_best_hmean"] else None
        assert got == (want.get("sweep") or {}).get("best_hmean")
    with_paper = [(r["label"], r["dataset"]) for r in csv_rows if r["paper_hmean"]]
    assert with_paper == [("PP + LP(4) + LG + VG", "icdar2015")]
    assert float(next(r for r in csv_rows if r["paper_hmean"])["paper_hmean"]) == 0.887

    px = _pixels(out / "report" / "bars.png")
    assert _count_colour(px, plots.COLOURS[0]) > 2000  # icdar2015 bars
    assert _count_colour(px, plots.COLOURS[1]) > 2000  # msra-td500 bars
    assert _count_colour(px, "#000000") > 50  # the paper's tick (and text)
    assert _count_colour(px, plots.TINY_COLOUR) == 0  # a full run: no tiny label


BAD_HMEAN = {
    "schema": 1,
    "status": "done",
    "params": {},
    "results": [{"dataset": "x", "precision": 0.5, "recall": 0.5, "hmean": 1.7}],
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps(BAD_HMEAN), "results[0].hmean must be a number >= 0 and <= 1 or null, got 1.7"),
        ('{"schema": 1, "status": "done", "params": []}', "params must be a mapping"),
        ('{"schema": 7}', "schema 7"),
    ],
)
def test_malformed_record_is_one_line_naming_the_file(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]], content: str, message: str
) -> None:
    out, _, ids = fewshot
    bad = out / "cells" / ids[3] / "record.json"
    bad.write_text(content)
    res = CliRunner().invoke(report, [str(out)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}") and message in lines[0]
    assert not (out / "report").exists()


def test_not_an_experiment_folder_and_sourceless_paper_value(tmp_path: Path) -> None:
    res = CliRunner().invoke(report, [str(tmp_path)])
    assert res.exit_code == 2
    assert f"{tmp_path / 'experiment.json'}: not found" in res.output
    out, _ = _ablation(tmp_path, [{**PAPER_VG, "source": ""}])
    res = CliRunner().invoke(report, [str(out)])
    assert res.exit_code == 2
    assert f"{out / 'grid.yaml'}: paper_values[0].source must be a string" in res.output


def test_pending_cells_placed_from_their_ids(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]],
) -> None:
    """No record yet: a pending cell's keys come from the grid's base and
    what its id names, so the curve table puts it in its place."""
    out, _, ids = fewshot
    assert params_from_id("003-train_fraction=0.5-tcm=true") == {"train_fraction": 0.5, "tcm": True}
    assert params_from_id("001-test_datasets=synthtext-mini") == {"test_datasets": "synthtext-mini"}
    assert params_from_id("007-cell") == {}
    exp = load_experiment(out)
    pending = [c for c in exp.cells if not c.done]
    assert [c.id for c in pending] == [ids[-1]]
    assert pending[0].status == "pending"
    assert pending[0].params == {**FEWSHOT_BASE, "train_fraction": 1.0, "tcm": True}
    assert not pending[0].params_known

    # experiment.json may list the cells as {id, label, params}: those win.
    meta = json.loads((out / "experiment.json").read_text())
    params = {**FEWSHOT_BASE, "train_fraction": 1.0, "tcm": True, "label": "the last one"}
    meta["cells"] = [{"id": i, "label": i, "params": {}} for i in ids[:-1]]
    meta["cells"].append({"id": ids[-1], "label": "the last one", "params": params})
    (out / "experiment.json").write_text(json.dumps(meta))
    last = load_experiment(out).cells[-1]
    assert (last.label, last.params, last.params_known) == ("the last one", params, True)
    res = _invoke(str(out))
    assert res.exit_code == 0, res.output
    assert "| the last one, 100% | pending | pending | pending |  |" in res.output


def test_without_matplotlib_tables_still_written(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _, _ = fewshot
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    res = CliRunner().invoke(report, [str(out)])
    assert res.exit_code == 0, res.output
    assert "pip install 'tcmbench[experiment]'" in res.output
    assert sorted(p.name for p in (out / "report").iterdir()) == [
        "results.csv",
        "results.json",
        "results.md",
    ]


def test_curve_cells_sharing_a_point_are_all_shown(tmp_path: Path) -> None:
    """Two seeds at one ratio: both figures in the table (none overwritten),
    after their mean ± sample std and n."""
    cells = []
    for i, (ratio, seed) in enumerate([(0.0, 0), (0.5, 0), (0.5, 1)]):
        params = {**FEWSHOT_BASE, "train_fraction": ratio, "tcm": False, "seed": seed}
        p = 0.2 + 0.3 * ratio + 0.1 * seed
        cell = f"{i:03d}-train_fraction={ratio}-seed={seed}"
        cells.append((cell, params, [_result("synthtext-mini", p, p, "icdar2015")]))
    out = tmp_path / "seeds"
    spec = {"kind": "curve", "x": "train_fraction", "series": "tcm"}
    records = _write_experiment(out, "seeds", spec, cells, FEWSHOT_BASE, tiny=True)
    res = _invoke(str(out), "--format", "md,png")
    assert res.exit_code == 0, res.output
    h = [100 * rec["results"][0]["hmean"] for rec in records.values()]
    mean, std = statistics.fmean(h[1:]), statistics.stdev(h[1:])
    row = f"| DBNet | {h[0]:.1f} | {mean:.1f} ± {std:.1f} (n=2: {h[1]:.1f} / {h[2]:.1f}) |"
    assert row in (out / "report" / "results.md").read_text()
    assert (
        _count_colour(_pixels(out / "report" / "curve_synthtext-mini.png"), plots.COLOURS[0]) > 100
    )


def test_table_cells_only_in_their_own_test_sets(tmp_path: Path) -> None:
    """Domain transfer: each cell has its own targets; a cell is pending (or
    has figures) only in the columns of its test sets, blank elsewhere."""
    base = {"plugin": "dbnet"}
    a = {**base, "label": "from SynthText", "test_datasets": ["icdar2013", "icdar2015"]}
    b = {**base, "label": "from ICDAR 2013", "test_datasets": ["icdar2015", "msra-td500"]}
    res_a = [
        _result("icdar2013", 0.7, 0.6, "icdar2013"),
        _result("icdar2015", 0.5, 0.4, "icdar2015"),
    ]
    out = tmp_path / "transfer"
    spec = {"kind": "table", "rows": ["label"], "columns": "test_datasets"}
    cells = [("000-from-synthtext", a, res_a), ("001-from-icdar-2013", b, None)]
    records = _write_experiment(out, "domain-transfer", spec, cells, base, tiny=False)
    meta = json.loads((out / "experiment.json").read_text())
    meta["cells"] = [{"id": c, "label": p["label"], "params": p} for c, p, _ in cells]
    (out / "experiment.json").write_text(json.dumps(meta))
    res = _invoke(str(out), "--format", "md")
    assert res.exit_code == 0, res.output
    h13 = records["000-from-synthtext"]["results"][0]["hmean"]
    h15 = records["000-from-synthtext"]["results"][1]["hmean"]
    lines = (out / "report" / "results.md").read_text().splitlines()
    assert lines[lines.index("## Results") + 2].startswith(
        "| cell | icdar2013 P | icdar2013 R | icdar2013 F | icdar2015 P"
    )
    row_a = next(line for line in lines if line.startswith("| from SynthText |")).split(" | ")
    assert row_a[3] == f"{100 * h13:.1f}" and row_a[6] == f"{100 * h15:.1f}"
    assert row_a[7:10] == ["", "", ""]  # msra-td500: not a target of this cell
    row_b = next(line for line in lines if line.startswith("| from ICDAR 2013 |")).split(" | ")
    assert row_b[1:4] == ["", "", ""] and row_b[4:10] == ["pending"] * 6


def test_experiment_run_then_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through `experiment run` (the real runner: a 2-cell grid,
    DBNet untrained and after 2 steps, 2 test images) and `experiment
    report` as the group registers it: the report's figures are the records'."""
    import torch
    from tiny_data import make_ic15_folder

    from tcmbench.commands.experiment import experiment

    make_ic15_folder(tmp_path / "data" / "icdar2015", n_train=4, n_test=2)
    grid = {
        "name": "two-cells",
        "title": "two cells",
        "paper": "TCM paper, Fig. 5",
        "report": {"kind": "curve", "x": "train_fraction", "series": "tcm"},
        "base": {
            "plugin": "dbnet",
            "recipe": "synthtext-mini",
            "train_datasets": ["icdar2015"],
            "test_datasets": ["icdar2015"],
            "steps": 2,
            "batch_size": 2,
            "lr": 0.001,
            "eval_limit": 2,
            "train_options": {"workers": 0, "cache_images": False, "tensorboard": False},
        },
        "axes": {"train_fraction": [0.0, 1.0]},
    }
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    monkeypatch.setenv("TCMBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["run", str(tmp_path / "two.yaml"), "--out", str(out), "--no-progress"]
        ran = CliRunner().invoke(experiment, args)
    finally:
        torch.set_num_threads(threads)
    assert ran.exit_code == 0, ran.output
    records = {p.parent.name: json.loads(p.read_text()) for p in out.glob("cells/*/record.json")}
    assert len(records) == 2

    res = CliRunner().invoke(experiment, ["report", str(out)])
    assert res.exit_code == 0, res.output
    with (out / "report" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["cell"] for r in rows) == sorted(records)
    for row in rows:
        want = records[row["cell"]]["results"][0]
        assert row["status"] == "done" and row["protocol"] == want["protocol"] == "icdar2015"
        assert [float(row[k]) for k in ("precision", "recall", "hmean")] == [
            want[k] for k in ("precision", "recall", "hmean")
        ]
        steps = records[row["cell"]]["train"]["steps"] if records[row["cell"]]["train"] else 0
        assert int(row["steps"]) == steps
    assert {int(r["steps"]) for r in rows} == {0, 2}
    h = {r["params"] and json.loads(r["params"])["train_fraction"]: float(r["hmean"]) for r in rows}
    md = (out / "report" / "results.md").read_text()
    assert f"| DBNet | {100 * h[0.0]:.1f} | {100 * h[1.0]:.1f} |" in md
    assert "protocol icdar2015 (official), 2 test images" in md
    assert "full (" in md and TINY_LABEL not in md
    px = _pixels(out / "report" / "curve_icdar2015.png")
    assert _count_colour(px, plots.COLOURS[0]) > 100


# ----------------------------------------------------------------- issue 19: plots for a paper

PLOT_EXTS = ("png", "svg", "pdf")


def _seeded_curve(tmp_path: Path, seeds_at: dict[float, int]) -> tuple[Path, dict[str, Any]]:
    """A curve grid whose ratio r is run with seeds 0..seeds_at[r]-1, for
    DBNet and TCM-DBNet; figures differ per seed so a spread shows."""
    cells = []
    i = 0
    for ratio, n in seeds_at.items():
        for tcm in (False, True):
            for seed in range(n):
                params = {**FEWSHOT_BASE, "train_fraction": ratio, "tcm": tcm, "seed": seed}
                p = 0.2 + 0.4 * ratio + 0.05 * tcm + 0.03 * seed * (1 + i % 3)
                cell = f"{i:03d}-train_fraction={ratio}-tcm={str(tcm).lower()}-seed={seed}"
                cells.append((cell, params, [_result("synthtext-mini", p, p - 0.02, "icdar2015")]))
                i += 1
    out = tmp_path / "seeded"
    spec = {"kind": "curve", "x": "train_fraction", "series": "tcm", "metric": "hmean"}
    records = _write_experiment(out, "few-shot", spec, cells, FEWSHOT_BASE, tiny=True)
    return out, records


def _errorbars(fig: Any) -> list[tuple[float, float, float]]:
    """(x, low, high) of every error bar drawn on the figure's plot axes."""
    from matplotlib.container import ErrorbarContainer

    bars = []
    for container in fig.axes[0].containers:
        if isinstance(container, ErrorbarContainer):
            for collection in container.lines[2]:
                for seg in collection.get_segments():
                    (x0, y0), (x1, y1) = seg
                    assert x0 == x1
                    bars.append((float(x0), float(min(y0, y1)), float(max(y0, y1))))
    return sorted(bars)


def test_plots_in_png_svg_pdf_linked_and_identical_on_rerun(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]],
) -> None:
    import xml.etree.ElementTree as ET

    out, _, _ = fewshot
    folder = out / "report"
    stem = "fewshot_synthtext-mini"
    assert _invoke(str(out)).exit_code == 0
    first = {ext: (folder / f"{stem}.{ext}").read_bytes() for ext in PLOT_EXTS}
    svg = ET.fromstring(first["svg"])
    assert svg.tag.endswith("svg") and b"<svg" in first["svg"]
    assert len(list(svg.iter())) > 100  # drawn, not an empty canvas
    assert first["pdf"].startswith(b"%PDF-") and first["pdf"].rstrip().endswith(b"%%EOF")
    assert b"CreationDate" not in first["pdf"]
    md = (folder / "results.md").read_text()
    assert f"![{stem}]({stem}.png)" in md
    assert f"[SVG]({stem}.svg)" in md and f"[PDF]({stem}.pdf)" in md
    assert json.loads((folder / "results.json").read_text())["figures"] == [
        f"{stem}.{ext}" for ext in PLOT_EXTS
    ]
    # written again from the same records: the same bytes in every format
    assert _invoke(str(out)).exit_code == 0
    again = {ext: (folder / f"{stem}.{ext}").read_bytes() for ext in PLOT_EXTS}
    assert again == first

    # only the vector form asked for: the markdown shows the SVG
    dest = out.parent / "svg-only"
    assert _invoke(str(out), "--out", str(dest), "--format", "md,svg").exit_code == 0
    assert sorted(p.name for p in dest.iterdir()) == [f"{stem}.svg", "results.md"]
    assert f"![{stem}]({stem}.svg)" in (dest / "results.md").read_text()


def test_repeated_seeds_get_error_bars_on_the_curve_and_mean_std_in_tables(
    tmp_path: Path,
) -> None:
    seeds_at = {0.0: 1, 0.5: 3, 1.0: 2}
    out, records = _seeded_curve(tmp_path, seeds_at)
    exp = load_experiment(out)
    fig = plots.curve_figure(exp, "synthtext-mini", "hmean")
    try:
        got = _errorbars(fig)
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    want = []
    for tcm in (False, True):
        for ratio, n in seeds_at.items():
            h = [
                100 * rec["results"][0]["hmean"]
                for rec in records.values()
                if rec["params"]["train_fraction"] == ratio and rec["params"]["tcm"] is tcm
            ]
            assert len(h) == n
            if n > 1:  # a single seed has no error bar
                m, s = statistics.fmean(h), statistics.stdev(h)
                want.append((100 * ratio, m - s, m + s))
    assert len(got) == len(want) == 4
    for g, w in zip(got, sorted(want)):
        assert g == pytest.approx(w)
    assert all("n=2-3 seeds" in text and "std" in text for text in legend[:2])

    res = _invoke(str(out), "--format", "md,png")
    assert res.exit_code == 0, res.output
    md = (out / "report" / "results.md").read_text()
    dbnet_50 = [
        r["results"][0]
        for r in records.values()
        if r["params"]["train_fraction"] == 0.5 and not r["params"]["tcm"]
    ]
    h = [100 * r["hmean"] for r in dbnet_50]
    cell = f"{statistics.fmean(h):.1f} ± {statistics.stdev(h):.1f} (n=3: "
    assert cell + " / ".join(f"{v:.1f}" for v in h) + ")" in md
    assert "## Repeated seeds (mean ± sample std)" in md and "sample standard deviation" in md
    p = [100 * r["precision"] for r in dbnet_50]
    row = next(line for line in md.splitlines() if line.startswith("| DBNet, 50% |"))
    spread = f"{statistics.fmean(p):.1f} ± {statistics.stdev(p):.1f}"
    assert row.split(" | ")[1:4] == ["3", "0, 1, 2", spread]
    assert "| DBNet, 0% |" not in md  # one seed: not a repeat


def test_single_seed_cells_have_no_error_bars(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]], tmp_path: Path
) -> None:
    out, _, _ = fewshot
    fig = plots.curve_figure(load_experiment(out), "synthtext-mini", "hmean")
    assert _errorbars(fig) == []
    import matplotlib.pyplot as plt

    plt.close(fig)
    bars_out, _ = _ablation(tmp_path, [PAPER_VG])
    fig = plots.bars_figure(load_experiment(bars_out), "hmean")
    assert _errorbars(fig) == []
    assert len(fig.axes[0].patches) == 6  # 3 finished cells x 2 test sets, one bar each
    plt.close(fig)
    assert _invoke(str(out), "--format", "md").exit_code == 0
    md = (out / "report" / "results.md").read_text()
    assert "±" not in md and "Repeated seeds" not in md


def test_repeated_seeds_share_one_bar_with_an_error_bar(tmp_path: Path) -> None:
    base = {"plugin": "dbnet", "tcm": True, "train_datasets": ["icdar2015"]}
    cells = []
    for i, (label, seed) in enumerate([("PP only", 0), ("PP only", 1), ("PP only", 2), ("VG", 0)]):
        results = [
            _result("icdar2015", 0.7 + 0.05 * seed + 0.1 * (label == "VG"), 0.6, "icdar2015")
        ]
        cells.append((f"{i:03d}-label={label}-seed={seed}", {**base, "label": label, "seed": seed},
                      results))  # fmt: skip
    out = tmp_path / "bars"
    spec = {"kind": "bars", "rows": ["label"], "metric": "hmean"}
    records = _write_experiment(out, "ablations", spec, cells, base, False)
    fig = plots.bars_figure(load_experiment(out), "hmean")
    ax = fig.axes[0]
    h = [100 * r["results"][0]["hmean"] for r in records.values()]
    m, s = statistics.fmean(h[:3]), statistics.stdev(h[:3])
    assert _errorbars(fig) == [pytest.approx((0.0, m - s, m + s))]
    assert [p.get_height() for p in ax.patches] == pytest.approx([m, h[3]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["PP only\n(3 seeds)", "VG"]
    assert any(t.get_text() == plots.ERRORBAR_LEGEND for t in ax.get_legend().get_texts())
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert _invoke(str(out), "--format", "md").exit_code == 0
    md = (out / "report" / "results.md").read_text()
    p = [100 * r["results"][0]["precision"] for r in records.values()][:3]
    p_spread = f"{statistics.fmean(p):.1f} ± {statistics.stdev(p):.1f}"
    assert f"| PP only | 3 | 0, 1, 2 | {p_spread} | 60.0 ± 0.0 | {m:.1f} ± {s:.1f} |" in md
    assert "| VG |" not in md.split("## Repeated seeds")[1]  # one seed: not a repeat


def test_nothing_written_or_printed_names_an_absolute_path(
    fewshot: tuple[Path, dict[str, dict[str, Any]], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report's footer named the absolute path of the checkout the grid
    was read from; the paths in the outputs are now relative to the report's
    folder, those printed relative to the current directory."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    import tcmbench
    from tcmbench.experiment.grid import shipped_grids

    out, _, _ = fewshot
    checkout = str(Path(tcmbench.__file__).resolve().parent.parent)
    user_grid = tmp_path / "grids" / "mine.yaml"
    user_grid.parent.mkdir()
    user_grid.write_text("name: few-shot\n")
    meta_path = out / "experiment.json"
    meta = json.loads(meta_path.read_text())
    started_in = str(Path.cwd())
    monkeypatch.chdir(tmp_path)
    for grid_file, shown in (
        (str(shipped_grids()["few-shot"]), "shipped grid file few-shot.yaml"),
        (str(user_grid), "from ../../grids/mine.yaml"),
    ):
        meta["grid_file"] = grid_file
        meta_path.write_text(json.dumps(meta))
        for dest in (out / "report", tmp_path / "paper" / "fig5"):
            # the plots' footers are checked on the figure (its text), the rest as written
            res = _invoke(str(out), "--out", str(dest), "--format", "md,csv,json")
            assert res.exit_code == 0, res.output
            texts = {"output": res.output}
            texts |= {p.name: p.read_text() for p in dest.iterdir()}
            fig = plots.curve_figure(load_experiment(out), "synthtext-mini", "hmean", dest)
            texts["figure"] = "\n".join(t.get_text() for t in fig.findobj(Text))
            plt.close(fig)
            for name, text in texts.items():
                for absolute in (str(tmp_path), checkout, started_in):
                    assert absolute not in text, (name, absolute)
            md = texts["results.md"]
            assert "as run: " + os.path.relpath(out / "grid.yaml", dest) in md
            assert "as run: " + os.path.relpath(out / "grid.yaml", dest) in texts["figure"]
            if dest == out / "report":
                assert shown in md and shown in texts["figure"]
                if shown.startswith("from "):  # the relative path leads to the grid file
                    assert (dest / shown[len("from ") :]).resolve() == user_grid.resolve()
