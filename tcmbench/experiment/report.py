"""``tcmbench experiment report``: an experiment folder as paper-shaped tables.

Reads what ``tcmbench experiment run`` wrote (``OUT/experiment.json``, the
grid as run in ``OUT/grid.yaml`` and one ``OUT/cells/<id>/record.json`` per
finished cell; the contract is ``notes/experiment-schema.md``) and writes
``results.md``, ``results.csv``, ``results.json`` and the figures
(:mod:`tcmbench.experiment.plots`) into ``OUT/report/``.

Why it is strict about labels: a figure from a tiny machinery-check run, or
one scored with another protocol than the dataset's official one, must never
be mistaken for a reproduction of the paper, so every output carries what it
is (grid, paper figure/table, tiny or full, protocol, test images, steps,
versions). Cells that have not finished are shown as pending, never dropped,
and a malformed record stops the report with one line naming the file.

Records keep fractions (0.887); the markdown and the plots show percentages
(88.7) as the papers do; the CSV and JSON carry the records' values as they
are.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from tcmbench.errors import TcmbenchError
from tcmbench.experiment import schema
from tcmbench.paths import atomic_write_bytes, atomic_write_text
from tcmbench.validation import (
    DocumentError,
    check_document,
    child_path,
    parse_json,
    parse_yaml,
    read_document,
)

log = logging.getLogger(__name__)

SCHEMA = 1
TINY_LABEL = "tiny (machinery check on synthtext-mini; not comparable with the paper)"
FULL_LABEL = "full (the grid's own datasets and training length)"
METRICS = ("precision", "recall", "hmean")
METRIC_SHORT = {"precision": "P", "recall": "R", "hmean": "F"}
FORMATS = ("md", "csv", "json", "png")
#: Column labels where a test set has both figures (tcmbench.eval.sweep).
OFFICIAL_COLUMN = "F (official protocol)"
PAPERS_COLUMN = "F (papers' figure)"
SWEEP_NOTE = (
    f"{OFFICIAL_COLUMN}: the official protocol's figure (every submitted detection). "
    f"{PAPERS_COLUMN}: the best-threshold hmean as mmocr 0.x reports it (score thresholds 0.3 "
    "to 0.9, step 0.1; how the TCM paper reports F) @ its threshold; not the official "
    "protocol's figure."
)
KINDS = ("curve", "table", "bars")
#: How an edited record (its checksum does not match) is marked everywhere.
EDITED_MARK = "EDITED"
EDITED_NOTE = (
    f"[{EDITED_MARK}]: the cell's record.json was changed after `tcmbench experiment run` wrote "
    "it (its checksum does not match its content): its figures are not the run's."
)
DONE = "done"
PENDING = "pending"
# Display names of the built-in plugins (series labels such as "TCM-DBNet").
PLUGIN_NAMES = {"dbnet": "DBNet", "pan": "PANet", "panet": "PANet", "fcenet": "FCENet"}
# Cell-id slugs name the varying keys: ``003-train_fraction=0.5-tcm=true``.
_SLUG_PART = re.compile(r"-(?=[A-Za-z_][A-Za-z0-9_.]*=)")


class ExperimentReportError(TcmbenchError):
    """An experiment folder, its experiment.json, grid.yaml or a cell record
    is missing or malformed."""


def _malformed(path: Path, detail: str, expected: str) -> ExperimentReportError:
    return ExperimentReportError(f"{path}: malformed {detail}; expected {expected}")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class DatasetResult:
    """One evaluated test set of a cell (a ``results`` entry of record.json)."""

    dataset: str
    split: str
    protocol: str
    precision: float | None
    recall: float | None
    hmean: float | None
    images: int | None
    raw: Mapping[str, Any]
    # The labelled best-threshold sweep (mmocr 0.x, how the TCM paper
    # reports F: the papers' figure), when the protocol ran one: shown
    # beside, never instead. The labels are the record's (older records
    # have none).
    best_hmean: float | None = None
    best_threshold: float | None = None
    figure_label: str | None = None
    best_label: str | None = None

    @property
    def column(self) -> str:
        """The table column: the dataset, with its split when not ``test``."""
        return self.dataset if self.split == "test" else f"{self.dataset} ({self.split})"

    def metric(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


@dataclass(frozen=True)
class PaperValue:
    """A published figure a grid compares against (``paper_values``)."""

    match: Mapping[str, Any]
    dataset: str
    values: Mapping[str, float]
    source: str


@dataclass
class Cell:
    """One grid cell: finished (its record) or pending (only its id)."""

    id: str
    label: str
    status: str
    params: dict[str, Any]
    params_known: bool
    results: list[DatasetResult] = field(default_factory=list)
    steps: int | None = None
    train_images: int | None = None
    seconds: float | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    record_path: Path | None = None
    in_grid: bool = True
    record: Mapping[str, Any] | None = None
    # The record's checksum: "verified", "edited" or "unverified" (a
    # schema-1 record); "" while pending.
    integrity: str = ""

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def edited(self) -> bool:
        """The record was changed after the run wrote it: its figures are
        not the run's, and every output says so."""
        return self.integrity == schema.EDITED

    def result(self, column: str) -> DatasetResult | None:
        for res in self.results:
            if res.column == column:
                return res
        return None

    def planned_columns(self) -> list[str]:
        """The test-set columns this cell is (or will be) scored on: its
        results', else its params' test sets."""
        if self.results:
            return [res.column for res in self.results]
        split = str(self.params.get("eval_split") or "test")
        names = [str(n) for n in _as_list(self.params.get("test_datasets"))]
        return [n if split == "test" else f"{n} ({split})" for n in names]

    def tested_on(self, column: str) -> bool:
        """Does this cell belong in a column? A cell whose test sets are not
        known yet (pending, no params) belongs everywhere: shown, not lost."""
        planned = self.planned_columns()
        return column in planned or not planned


@dataclass
class Experiment:
    """An experiment folder as read from disk."""

    root: Path
    name: str
    title: str
    paper: str
    tiny: bool
    spec: dict[str, Any]
    grid_file: str
    cells: list[Cell]
    paper_values: list[PaperValue]
    # The grid's shared keys: a pending cell's params are these plus what its id names.
    base: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "table"))

    def columns(self) -> list[str]:
        """Test-set columns in the order they first appear."""
        seen: dict[str, None] = {}
        for cell in self.cells:
            for column in cell.planned_columns():
                seen.setdefault(column, None)
        return list(seen)


# --------------------------------------------------------------------------- reading


def _read_json(path: Path, what: str, max_bytes: int = schema.MAX_RECORD_BYTES) -> Any:
    """A JSON file of the folder, parsed under the size and depth limits of
    every document (tcmbench.validation)."""
    if not path.exists() and not path.is_symlink():
        raise ExperimentReportError(f"{path}: not found; expected {what}")
    if not path.is_file():  # a FIFO would block the read for ever
        raise ExperimentReportError(f"{path}: not a regular file; expected {what}")
    try:
        return parse_json(read_document(path, max_bytes=max_bytes), str(path))
    except DocumentError as exc:
        raise ExperimentReportError(f"{exc}; expected {what}") from None


def _checked(data: Any, declared: Any, path: Path) -> Any:
    """``data`` checked against its schema (tcmbench.experiment.schema);
    one line naming the file and the key when it does not fit."""
    try:
        return check_document(data, declared, str(path))
    except DocumentError as exc:
        raise ExperimentReportError(str(exc)) from None


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_experiment(root: str | Path) -> Experiment:
    """Read an experiment folder; raise :class:`ExperimentReportError` (one
    line naming the file) when it is not one or a file in it is malformed.

    Every file is read through :mod:`tcmbench.validation` with its schema
    (:mod:`tcmbench.experiment.schema`); cell ids are names, and each record
    read must resolve inside ``ROOT/cells`` (an id ``../x`` or ``/etc``, or a
    link planted in the folder, would read files outside it)."""
    root = Path(root)
    meta_path = root / "experiment.json"
    what = "experiment.json of `tcmbench experiment run` (schema 1)"
    meta = _read_json(meta_path, what, schema.MAX_EXPERIMENT_BYTES)
    if not isinstance(meta, dict):
        raise _malformed(meta_path, f"experiment file (a JSON {type(meta).__name__})", what)
    if meta.get("schema") != SCHEMA:
        raise ExperimentReportError(
            f"{meta_path}: experiment schema {_short(meta.get('schema'))}; this tcmbench reads "
            "schema 1"
        )
    meta = _checked(meta, schema.EXPERIMENT, meta_path)
    spec = meta.get("report") or {}
    if spec.get("kind", "table") == "curve" and not isinstance(spec.get("x"), str):
        raise _malformed(
            meta_path, "report spec (a curve without x)", "x: the cell key on the x axis"
        )
    name = meta["grid"]
    grid = _read_grid(root)
    paper_values = _paper_values(meta, grid, root)
    base = grid.get("base")
    exp = Experiment(
        root=root,
        name=name,
        title=str(meta.get("title") or name),
        paper=str(meta.get("paper") or ""),
        tiny=meta.get("tiny", False),
        spec=dict(spec),
        grid_file=str(meta.get("grid_file") or ""),
        cells=[],
        paper_values=paper_values,
        base=dict(base) if isinstance(base, dict) else {},
        description=str(meta.get("description") or grid.get("description") or "").strip(),
    )
    listed: list[str] = []
    cells_dir = root / "cells"
    for i, entry in enumerate(meta["cells"]):
        cell_id = entry if isinstance(entry, str) else entry["id"]
        listed.append(cell_id)
        cell_dir = _cell_dir(cells_dir, cell_id, meta_path, f"cells[{i}]")
        exp.cells.append(_load_cell(cell_dir, cell_id, entry, exp))
    if cells_dir.is_dir() and not cells_dir.is_symlink():
        for extra in sorted(p for p in cells_dir.iterdir() if p.is_dir()):
            if extra.name not in listed and (extra / "record.json").is_file():
                log.warning("%s is not in experiment.json's cell list; reported anyway", extra)
                cell_dir = _cell_dir(cells_dir, extra.name, cells_dir, extra.name)
                cell = _load_cell(cell_dir, extra.name, extra.name, exp)
                cell.in_grid = False
                exp.cells.append(cell)
    return exp


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cell_dir(cells_dir: Path, cell_id: str, source: Path, where: str) -> Path:
    """``ROOT/cells/<id>``, refused (one line) unless the id is a name and
    the folder and its record resolve inside ``ROOT/cells``."""
    try:
        cell_dir = child_path(cells_dir, cell_id, str(source), where)
        child_path(cell_dir, "record.json", str(source), f"{where} (its record.json)")
    except DocumentError as exc:
        raise ExperimentReportError(str(exc)) from None
    return cell_dir


def _read_grid(root: Path) -> dict[str, Any]:
    """The grid as run (``OUT/grid.yaml``), {} when absent."""
    grid_path = root / "grid.yaml"
    if not grid_path.is_file():
        return {}
    try:
        grid = parse_yaml(
            read_document(grid_path, max_bytes=4 * schema.MAX_GRID_BYTES),
            str(grid_path),
            max_bytes=4 * schema.MAX_GRID_BYTES,
        )
    except DocumentError as exc:
        raise ExperimentReportError(f"{exc}; expected the grid as run (YAML)") from None
    if not isinstance(grid, dict):
        raise _malformed(grid_path, "grid (not a mapping)", "the grid as run (YAML)")
    checked: dict[str, Any] = _checked(grid, schema.GRID_AS_RUN, grid_path)
    return checked


def _paper_values(meta: Mapping[str, Any], grid: Mapping[str, Any], root: Path) -> list[PaperValue]:
    """``paper_values`` of experiment.json, else of the grid as run (both
    already checked against the schema's PAPER_VALUE)."""
    source_path = root / "experiment.json"
    raw = meta.get("paper_values")
    if raw is None:
        raw, source_path = grid.get("paper_values"), root / "grid.yaml"
    if raw is None:
        return []
    try:
        schema.check_paper_values(raw, str(source_path), "paper_values")
    except DocumentError as exc:
        raise ExperimentReportError(str(exc)) from None
    return [
        PaperValue(
            match=dict(item.get("match") or {}),
            dataset=item["dataset"],
            values={m: float(item[m]) for m in METRICS if item.get(m) is not None},
            source=item["source"].strip(),
        )
        for item in raw
    ]


def params_from_id(cell_id: str) -> dict[str, Any]:
    """The keys a cell id's slug names (``003-train_fraction=0.5-tcm=true``),
    for pending cells, which have no record yet; {} when it names none."""
    _, _, slug = cell_id.partition("-")
    params: dict[str, Any] = {}
    for part in _SLUG_PART.split("-" + slug)[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            continue
        try:
            params[key] = parse_yaml(value, cell_id, max_depth=8) if value.strip() else value
        except DocumentError:
            params[key] = value
    return params


def _load_cell(cell_dir: Path, cell_id: str, entry: Any, exp: Experiment) -> Cell:
    path = cell_dir / "record.json"
    if not path.is_file():
        params: dict[str, Any] = {}
        known = False
        if isinstance(entry, dict) and isinstance(entry.get("params"), dict):
            params, known = dict(entry["params"]), True
        else:
            params = {**exp.base, **params_from_id(cell_id)}
        label = (entry.get("label") if isinstance(entry, dict) else None) or params.get("label")
        return Cell(
            id=cell_id,
            label=str(label or _slug_label(cell_id)),
            status=PENDING,
            params=params,
            params_known=known,
        )
    return parse_record(path, _read_json(path, "a cell record (record.json, schema 1 or 2)"), exp)


def _slug_label(cell_id: str) -> str:
    _, _, slug = cell_id.partition("-")
    return slug or cell_id


def parse_record(path: Path, rec: Any, exp: Experiment) -> Cell:
    """A cell from its record.json, checked against the record schema
    (tcmbench.experiment.schema.RECORD); its checksum says whether it is
    the run's (verified), changed since (edited) or older than checksums
    (unverified)."""
    what = "a cell record of `tcmbench experiment run` (schema 1 or 2)"
    if not isinstance(rec, dict):
        raise _malformed(path, f"cell record (a JSON {type(rec).__name__})", what)
    if rec.get("schema") not in schema.RECORD_SCHEMAS:
        raise ExperimentReportError(
            f"{path}: cell record schema {_short(rec.get('schema'))}; this tcmbench reads "
            "schemas 1 and 2"
        )
    integrity = schema.record_integrity(rec)
    rec = _checked(rec, schema.RECORD, path)
    cell_id = path.parent.name
    if rec.get("cell") not in (None, cell_id):
        raise _malformed(path, f"cell record (it names cell {rec.get('cell')!r})", repr(cell_id))
    if "tiny" in rec and rec["tiny"] is not exp.tiny:
        raise _malformed(
            path,
            f"cell record (tiny is {rec['tiny']!r}, experiment.json says {exp.tiny!r})",
            "a record of this experiment",
        )
    params = rec["params"]
    status = rec["status"]
    results = [
        _parse_result(path, i, r, status == DONE) for i, r in enumerate(rec.get("results") or [])
    ]
    train = rec.get("train")
    steps = train_images = None
    if train is not None:
        steps, train_images = train.get("steps"), train.get("train_images")
    elif status == DONE:
        steps = 0  # train: null = evaluated without training (e.g. 0 % of the data)
    label = rec.get("label") or params.get("label") or _slug_label(cell_id)
    return Cell(
        id=cell_id,
        label=str(label),
        status=status,
        params=dict(params),
        params_known=True,
        results=results,
        steps=steps,
        train_images=train_images,
        seconds=rec.get("seconds"),
        versions=rec.get("versions") or {},
        device=rec.get("device"),
        record_path=path,
        record=rec,
        integrity=integrity,
    )


def _parse_result(path: Path, i: int, raw: Mapping[str, Any], done: bool) -> DatasetResult:
    """One ``results`` entry (already checked against the schema)."""
    if done and raw.get("hmean") is None:
        raise ExperimentReportError(f"{path}: results[{i}].hmean is required in a finished cell")
    sweep = raw.get("sweep") or {}
    return DatasetResult(
        dataset=raw["dataset"],
        split=str(raw.get("split") or "test"),
        protocol=str(raw.get("protocol") or ""),
        precision=raw.get("precision"),
        recall=raw.get("recall"),
        hmean=raw.get("hmean"),
        images=raw.get("images"),
        raw=raw,
        best_hmean=sweep.get("best_hmean"),
        best_threshold=sweep.get("best_threshold"),
        figure_label=raw.get("figure"),
        best_label=sweep.get("label"),
    )


# --------------------------------------------------------------------------- shaping


def _truthy_tcm(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("enabled", True) is not False
    return bool(value)


def _same(want: Any, have: Any) -> bool:
    """Does a ``paper_values`` match value equal a cell's param?

    A mapping matches when its keys match (a subset of the cell's dict);
    ``tcm: true`` matches any enabled TCM (the runner may resolve it to the
    full TCMConfig dict), ``tcm: false`` matches none.
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_same(v, have.get(k)) for k, v in want.items())
    if isinstance(want, bool) or isinstance(have, bool):
        if isinstance(have, dict):
            return want is _truthy_tcm(have)
        return isinstance(want, bool) and isinstance(have, bool) and want is have
    if _is_number(want) and _is_number(have):
        return math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, list) and isinstance(have, list):
        return len(want) == len(have) and all(_same(a, b) for a, b in zip(want, have))
    return bool(want == have)


def paper_value_for(exp: Experiment, cell: Cell, column: str) -> PaperValue | None:
    """The published figure for this cell and test set, if the grid gives one."""
    if not cell.params_known:
        return None
    res = cell.result(column)
    dataset = res.dataset if res is not None else column.split(" (", 1)[0]
    for pv in exp.paper_values:
        if pv.dataset != dataset:
            continue
        params = {**cell.params, "label": cell.label}
        if all(_same(v, params.get(k)) for k, v in pv.match.items()):
            return pv
    return None


def plugin_name(plugin: Any) -> str:
    return PLUGIN_NAMES.get(str(plugin).lower(), str(plugin))


def series_keys(exp: Experiment) -> list[str]:
    return [str(k) for k in _as_list(exp.spec.get("series"))]


def series_label(cell: Cell, keys: Sequence[str]) -> str:
    """A curve line's name: ``TCM-DBNet`` / ``DBNet`` for the tcm key, as in
    the paper's figure; ``key=value`` for other keys."""
    parts = []
    for key in keys:
        value = cell.params.get(key)
        if key == "tcm":
            base = plugin_name(cell.params.get("plugin", "detector"))
            parts.append(f"TCM-{base}" if _truthy_tcm(value) else base)
        elif key == "label":
            parts.append(cell.label)
        else:
            parts.append(f"{key}={_plain(value)}")
    return ", ".join(parts) if parts else plugin_name(cell.params.get("plugin", "cells"))


def row_label(cell: Cell, keys: Sequence[str]) -> str:
    if not keys or list(keys) == ["label"]:
        return cell.label
    return series_label(cell, keys)


def is_percent_axis(key: str) -> bool:
    return key.endswith(("fraction", "ratio"))


def x_value(cell: Cell, key: str) -> float | None:
    value = cell.params.get(key)
    if not _is_number(value):
        return None
    return float(value) * 100.0 if is_percent_axis(key) else float(value)


def x_text(value: float, key: str) -> str:
    text = f"{value:g}"
    return f"{text}%" if is_percent_axis(key) else text


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def pct(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:.1f}"


@dataclass(frozen=True)
class DatasetInfo:
    """What the report says about one test set (from the records)."""

    column: str
    dataset: str
    split: str
    protocols: tuple[str, ...]
    official: str | None
    images: tuple[int, ...]

    @property
    def unofficial(self) -> tuple[str, ...]:
        if self.official is None:
            return ()
        return tuple(p for p in self.protocols if p != self.official)

    def describe(self) -> str:
        split = "test split" if self.split == "test" else f"{self.split} split, NOT the test split"
        if not self.protocols:
            official = self.official or "unknown"
            return f"{self.dataset} ({split}): no figures yet (official protocol {official})"
        protos = []
        for p in self.protocols:
            if self.official is None:
                protos.append(f"protocol {p} (official protocol unknown: dataset not registered)")
            elif p == self.official:
                protos.append(f"protocol {p} (official)")
            else:
                protos.append(f"protocol {p}: NOT the official protocol ({self.official})")
        images = "/".join(str(n) for n in self.images) if self.images else "?"
        return f"{self.dataset} ({split}): {'; '.join(protos)}, {images} test images"


def official_protocol(dataset: str) -> str | None:
    from tcmbench.data.dataset import get_dataset_config

    try:
        return get_dataset_config(dataset).protocol
    except TcmbenchError:
        return None


def dataset_infos(exp: Experiment) -> list[DatasetInfo]:
    infos = []
    for column in exp.columns():
        found = [c.result(column) for c in exp.cells if c.done]
        results = [r for r in found if r is not None]
        dataset = results[0].dataset if results else column.split(" (", 1)[0]
        split = results[0].split if results else "test"
        infos.append(
            DatasetInfo(
                column=column,
                dataset=dataset,
                split=split,
                protocols=tuple(dict.fromkeys(r.protocol for r in results if r.protocol)),
                official=official_protocol(dataset),
                images=tuple(sorted({r.images for r in results if r.images is not None})),
            )
        )
    return infos


def _distinct(values: Iterable[str]) -> str:
    seen = list(dict.fromkeys(v for v in values if v))
    return "; ".join(seen) if seen else "not recorded"


def run_facts(exp: Experiment) -> dict[str, Any]:
    """The facts every output states: run kind, cells, steps, versions, device."""
    done = [c for c in exp.cells if c.done]
    counts: dict[str, int] = {}
    for c in exp.cells:
        counts[c.status] = counts.get(c.status, 0) + 1
    steps = sorted({c.steps for c in done if c.steps is not None})
    versions = _distinct(", ".join(f"{k} {v}" for k, v in sorted(c.versions.items())) for c in done)
    return {
        "run": TINY_LABEL if exp.tiny else FULL_LABEL,
        "cells": len(exp.cells),
        "status_counts": counts,
        "steps": steps,
        "versions": versions,
        "devices": _distinct(c.device or "" for c in done),
    }


def _steps_text(steps: Sequence[int]) -> str:
    if not steps:
        return "none finished"
    text = []
    if 0 in steps:
        text.append("0 steps for cells evaluated without training")
    trained = [s for s in steps if s]
    if len(trained) == 1:
        text.append(f"{trained[0]} steps per trained cell")
    elif trained:
        text.append(f"{', '.join(map(str, trained))} steps (per cell: see the steps column)")
    return "; ".join(text)


def header_lines(exp: Experiment, metric: str) -> list[str]:
    """One line each: what this is, as plain text (markdown list items and
    plot footers are made from these)."""
    facts = run_facts(exp)
    counts = ", ".join(f"{n} {s}" for s, n in facts["status_counts"].items())
    lines = [
        f"Reproduces: {exp.paper or 'no paper figure named by the grid'}",
        f"Run: {facts['run']}",
        f"Grid: {exp.name} ({exp.grid_file or 'grid.yaml'}), {facts['cells']} cells: {counts}",
    ]
    lines += [f"Test set: {info.describe()}" for info in dataset_infos(exp)]
    lines += [
        f"Training: {_steps_text(facts['steps'])}",
        f"Versions: {facts['versions']}; device: {facts['devices']}",
        f"Metric: {metric} ({METRIC_SHORT[metric]}); figures in %",
    ]
    records = integrity_line(exp)
    if records:
        lines.append(records)
    return lines


def integrity_line(exp: Experiment) -> str:
    """What the records' checksums say, in one line ("" without records):
    an edited record is named, so its figures are never taken for the run's."""
    by: dict[str, list[str]] = {}
    for cell in exp.cells:
        if cell.integrity:
            by.setdefault(cell.integrity, []).append(cell.id)
    if not by:
        return ""
    parts = []
    if by.get(schema.EDITED):
        ids = by[schema.EDITED]
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        parts.append(
            f"{len(ids)} {EDITED_MARK} (changed after the run: the figures do not match the "
            f"record's checksum): {shown}"
        )
    if by.get(schema.UNVERIFIED):
        parts.append(
            f"{len(by[schema.UNVERIFIED])} unverified (written before records carried a checksum)"
        )
    if by.get(schema.VERIFIED):
        parts.append(f"{len(by[schema.VERIFIED])} verified by their checksum")
    return "Records: " + "; ".join(parts)


# --------------------------------------------------------------------------- tables


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _flag(info: DatasetInfo, res: DatasetResult | None) -> str:
    return " †" if res is not None and res.protocol in info.unofficial else ""


def unique_labels(exp: Experiment, keys: Sequence[str]) -> list[str]:
    """Row labels that tell the cells apart: a curve's cells share their
    series' label, so the x value is added; any label still shared gets the
    cell id."""
    labels = [row_label(cell, keys) for cell in exp.cells]
    if exp.kind == "curve":
        x_key = str(exp.spec["x"])
        for i, cell in enumerate(exp.cells):
            x = x_value(cell, x_key)
            if x is not None:
                labels[i] += f", {x_text(x, x_key)}"
    counts = {label: labels.count(label) for label in labels}
    return [
        f"{label} ({cell.id})" if counts[label] > 1 else label
        for label, cell in zip(labels, exp.cells)
    ]


def cells_table(exp: Experiment, metric: str) -> list[str]:
    """Rows = cells, columns = P / R / F per test set (+ the paper's figure
    where the grid gives one for the cell), then steps."""
    infos = dataset_infos(exp)
    keys = [str(k) for k in _as_list(exp.spec.get("rows"))] or ["label"]
    with_paper = {
        info.column: any(paper_value_for(exp, c, info.column) for c in exp.cells) for info in infos
    }
    with_sweep = {
        info.column: any(
            (r := c.result(info.column)) is not None and r.best_hmean is not None for c in exp.cells
        )
        for info in infos
    }
    multi = len(infos) > 1
    head = ["cell"]
    for info in infos:
        prefix = f"{info.column} " if multi else ""
        shorts = [METRIC_SHORT[m] for m in METRICS]
        if with_sweep[info.column]:  # both figures: each column says which it is
            shorts[METRICS.index("hmean")] = OFFICIAL_COLUMN
        head += [f"{prefix}{short}" for short in shorts]
        if with_sweep[info.column]:
            head.append(f"{prefix}{PAPERS_COLUMN}")
        if with_paper[info.column]:
            head.append(f"{prefix}{METRIC_SHORT[metric]} (paper)")
    head.append("steps")
    labels = unique_labels(exp, keys)
    rows = []
    for cell, label in zip(exp.cells, labels):
        row = [
            label
            + ("" if cell.in_grid else " (not in grid)")
            + (f" [{EDITED_MARK}]" if cell.edited else "")
        ]
        for info in infos:
            res = cell.result(info.column)
            n = len(METRICS) + with_sweep[info.column]
            if cell.done and res is not None:
                flag = _flag(info, res)
                row += [pct(res.metric(m)) + flag for m in METRICS]
                if with_sweep[info.column]:
                    best = res.best_hmean
                    row.append("" if best is None else f"{pct(best)} @{res.best_threshold:g}")
            elif cell.tested_on(info.column):
                row += [cell.status if not cell.done else "not evaluated"] * n
            else:
                row += [""] * n  # not a test set of this cell
            if with_paper[info.column]:
                pv = paper_value_for(exp, cell, info.column)
                row.append(pct(pv.values.get(metric)) if pv else "")
        row.append("" if cell.steps is None else str(cell.steps))
        rows.append(row)
    return _md_table(head, rows)


def curve_points(
    exp: Experiment, column: str, metric: str
) -> dict[str, list[tuple[float, Cell, float | None]]]:
    """series -> [(x, cell, metric or None when pending)] sorted by x, for
    the cells whose x is known."""
    x_key = str(exp.spec["x"])
    keys = series_keys(exp)
    out: dict[str, list[tuple[float, Cell, float | None]]] = {}
    for cell in exp.cells:
        x = x_value(cell, x_key)
        if x is None or not cell.tested_on(column):
            continue
        res = cell.result(column) if cell.done else None
        value = res.metric(metric) if res is not None else None
        out.setdefault(series_label(cell, keys), []).append((x, cell, value))
    for points in out.values():
        points.sort(key=lambda p: p[0])
    return out


def curve_table(exp: Experiment, column: str, metric: str) -> list[str]:
    """Rows = series (and the paper's figures per series, where the grid
    gives them), columns = the x values: Fig. 5 as a table. Several cells
    at one point (e.g. seeds) are all shown, separated by " / "."""
    x_key = str(exp.spec["x"])
    points = curve_points(exp, column, metric)
    xs = sorted({x for pts in points.values() for x, _, _ in pts})
    head = [", ".join(series_keys(exp)) or "series"] + [x_text(x, x_key) for x in xs]
    rows = []
    for name, pts in points.items():
        measured, paper = [name], [f"{name} (paper)"]
        for x in xs:
            here = [(cell, value) for px, cell, value in pts if px == x]
            measured.append(
                " / ".join(
                    (pct(value) + (f" [{EDITED_MARK}]" if cell.edited else ""))
                    if cell.done and value is not None
                    else cell.status
                    for cell, value in here
                )
            )
            figures = []
            for cell, _ in here:
                pv = paper_value_for(exp, cell, column)
                if pv is not None and metric in pv.values:
                    figures.append(pct(pv.values[metric]))
            paper.append(" / ".join(dict.fromkeys(figures)))
        rows.append(measured)
        if any(paper[1:]):
            rows.append(paper)
    return _md_table(head, rows)


def unplaced_pending(exp: Experiment) -> list[Cell]:
    """Pending cells a curve cannot place (their id names no x value)."""
    if exp.kind != "curve":
        return []
    x_key = str(exp.spec["x"])
    return [c for c in exp.cells if not c.done and x_value(c, x_key) is None]


def render_markdown(exp: Experiment, metric: str, figures: Sequence[str] = ()) -> str:
    lines = [f"# {exp.title}", ""]
    if exp.tiny:
        lines += [f"**{TINY_LABEL}**", ""]
    lines += [f"- {line}" for line in header_lines(exp, metric)]
    lines.append("")
    if exp.description:
        lines += [exp.description, ""]
    infos = dataset_infos(exp)
    if any(info.unofficial for info in infos):
        lines += ["† scored with a protocol that is not the dataset's official one.", ""]
    if any(r.best_hmean is not None for c in exp.cells for r in c.results):
        lines += [SWEEP_NOTE, ""]
    if any(c.edited for c in exp.cells):
        lines += [EDITED_NOTE, ""]
    if exp.kind == "curve":
        x_key = str(exp.spec["x"])
        for info in infos:
            heading = f"{METRIC_SHORT[metric]} ({metric}, %) on {info.column} against {x_key}"
            lines += [
                f"## {heading}",
                "",
                *curve_table(exp, info.column, metric),
                "",
            ]
        lost = unplaced_pending(exp)
        if lost:
            ids = ", ".join(c.id for c in lost)
            lines += [f"Pending cells whose x is not known yet: {ids}", ""]
        lines += ["## All cells", ""]
    else:
        lines += ["## Results", ""]
    lines += cells_table(exp, metric)
    lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    if exp.paper_values:
        note = " (for the full run: this tiny run is not comparable)" if exp.tiny else ""
        lines += [f"## Published figures the grid compares against{note}", ""]
        for pv in exp.paper_values:
            figs = ", ".join(f"{METRIC_SHORT[m]} {pct(v)}" for m, v in pv.values.items())
            match = ", ".join(f"{k}={_plain(v)}" for k, v in pv.match.items()) or "every cell"
            lines.append(f"- {pv.dataset}, {match}: {figs} ({pv.source})")
        lines.append("")
    lines.append(
        f"Generated by `tcmbench experiment report` on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}."
    )
    return "\n".join(lines) + "\n"


CSV_FIELDS = (
    "grid",
    "paper",
    "tiny",
    "cell",
    "label",
    "status",
    "integrity",
    "dataset",
    "split",
    "protocol",
    "official_protocol",
    "precision",
    "recall",
    "hmean",
    "images",
    "figure",
    "sweep_best_hmean",
    "sweep_best_threshold",
    "sweep_label",
    "steps",
    "train_images",
    "seconds",
    "paper_precision",
    "paper_recall",
    "paper_hmean",
    "paper_source",
    "params",
)


def result_rows(exp: Experiment) -> list[dict[str, Any]]:
    """One row per (cell, test set); a pending cell is one row with its
    status and no figures. Values are the records' own (fractions)."""
    infos = {info.column: info for info in dataset_infos(exp)}
    rows = []
    for cell in exp.cells:
        base = {
            "grid": exp.name,
            "paper": exp.paper,
            "tiny": exp.tiny,
            "cell": cell.id,
            "label": cell.label,
            "status": cell.status,
            "integrity": cell.integrity or None,
            "steps": cell.steps,
            "train_images": cell.train_images,
            "seconds": cell.seconds,
            "params": cell.params,
        }
        columns = [r.column for r in cell.results] or list(infos) or [""]
        for column in columns:
            res = cell.result(column)
            info = infos.get(column)
            pv = paper_value_for(exp, cell, column) if column else None
            rows.append(
                {
                    **base,
                    "dataset": res.dataset if res else (info.dataset if info else ""),
                    "split": res.split if res else (info.split if info else ""),
                    "protocol": res.protocol if res else "",
                    "official_protocol": info.official if info else None,
                    "precision": res.precision if res else None,
                    "recall": res.recall if res else None,
                    "hmean": res.hmean if res else None,
                    "images": res.images if res else None,
                    "figure": res.figure_label if res else None,
                    "sweep_best_hmean": res.best_hmean if res else None,
                    "sweep_best_threshold": res.best_threshold if res else None,
                    "sweep_label": res.best_label if res else None,
                    "test_settings": res.raw.get("test") if res else None,
                    "paper_precision": pv.values.get("precision") if pv else None,
                    "paper_recall": pv.values.get("recall") if pv else None,
                    "paper_hmean": pv.values.get("hmean") if pv else None,
                    "paper_source": pv.source if pv else None,
                }
            )
    return rows


#: First characters that make a spreadsheet read a cell as a formula (OWASP
#: "CSV injection"): such a text cell is written with a leading quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell: None as empty, text that a spreadsheet would run as a
    formula (``=HYPERLINK(...)`` from a label) prefixed with ``'``; numbers
    stay numbers (-0.5 is a number, not a formula)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def render_csv(exp: Experiment) -> str:
    buf = io.StringIO()
    # Text quoted, numbers bare: a carriage return inside a label (which
    # minimal quoting leaves bare with "\n" line ends) cannot split a row.
    writer = csv.DictWriter(
        buf, fieldnames=CSV_FIELDS, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writeheader()
    for row in result_rows(exp):
        out = {k: row.get(k) for k in CSV_FIELDS}
        out["params"] = json.dumps(row["params"], sort_keys=True)
        out["tiny"] = "true" if row["tiny"] else "false"
        writer.writerow({k: csv_cell(v) for k, v in out.items()})
    return buf.getvalue()


def render_json(exp: Experiment, metric: str, figures: Sequence[str] = ()) -> dict[str, Any]:
    facts = run_facts(exp)
    return {
        "schema": SCHEMA,
        "grid": exp.name,
        "title": exp.title,
        "paper": exp.paper,
        "tiny": exp.tiny,
        "run": facts["run"],
        "report": {**exp.spec, "metric": metric},
        "datasets": [
            {
                "column": i.column,
                "dataset": i.dataset,
                "split": i.split,
                "protocols": list(i.protocols),
                "official_protocol": i.official,
                "unofficial_protocols": list(i.unofficial),
                "images": list(i.images),
            }
            for i in dataset_infos(exp)
        ],
        "steps": facts["steps"],
        "versions": facts["versions"],
        "devices": facts["devices"],
        "status_counts": facts["status_counts"],
        "pending": [c.id for c in exp.cells if not c.done],
        "edited": [c.id for c in exp.cells if c.edited],
        "unverified": [c.id for c in exp.cells if c.integrity == schema.UNVERIFIED],
        "rows": result_rows(exp),
        "paper_values": [
            {"match": dict(pv.match), "dataset": pv.dataset, **pv.values, "source": pv.source}
            for pv in exp.paper_values
        ],
        "figures": list(figures),
    }


# --------------------------------------------------------------------------- writing


def parse_formats(text: str) -> tuple[str, ...]:
    """``md,csv,json,png`` -> a tuple; unknown names are a TcmbenchError."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ExperimentReportError(
            f"--format {text!r}: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return names


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"


def figure_names(exp: Experiment) -> list[str]:
    """The PNG files this experiment's kind draws."""
    if exp.kind == "curve":
        prefix = "fewshot" if "few" in exp.name.replace("-", "").replace("_", "") else "curve"
        return [f"{prefix}_{_safe_name(c)}.png" for c in exp.columns()]
    if exp.kind == "bars":
        return ["bars.png"]
    return []


@dataclass
class ReportOutput:
    markdown: str
    written: list[Path]
    plots_skipped: str | None = None


def write_report(
    exp: Experiment,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
) -> ReportOutput:
    """Write the tables and plots; return the markdown and the paths written.

    Without matplotlib the tables are still written and ``plots_skipped``
    says how to get the plots.
    """
    metric = metric or str(exp.spec.get("metric") or "hmean")
    if metric not in METRICS:
        raise ExperimentReportError(
            f"{exp.root / 'experiment.json'}: report metric {metric!r}; "
            f"expected one of {', '.join(METRICS)}"
        )
    out = Path(out_dir) if out_dir is not None else exp.root / "report"
    written: list[Path] = []
    figures: list[str] = []
    skipped = None
    if "png" in formats and figure_names(exp):
        from tcmbench.experiment import plots

        try:
            drawn = plots.draw(exp, metric)
        except plots.MatplotlibMissing as exc:
            skipped = str(exc)
        else:
            for name, data in drawn.items():
                atomic_write_bytes(out / name, data)
                written.append(out / name)
                figures.append(name)
    markdown = render_markdown(exp, metric, figures)
    if "md" in formats:
        atomic_write_text(out / "results.md", markdown)
        written.append(out / "results.md")
    if "csv" in formats:
        atomic_write_text(out / "results.csv", render_csv(exp))
        written.append(out / "results.csv")
    if "json" in formats:
        text = json.dumps(render_json(exp, metric, figures), indent=2, sort_keys=False)
        atomic_write_text(out / "results.json", text + "\n")
        written.append(out / "results.json")
    log.info("experiment report of %s: %s", exp.root, ", ".join(str(p) for p in written))
    return ReportOutput(markdown=markdown, written=written, plots_skipped=skipped)
