"""An experiment folder read from disk: its cells, their results, the published figures.

Reads what ``tcmbench experiment run`` wrote (``OUT/experiment.json``, the
grid as run in ``OUT/grid.yaml`` and one ``OUT/cells/<id>/record.json`` per
finished cell; the contract is ``notes/experiment-schema.md``) into an
:class:`Experiment`, which every output of ``tcmbench experiment report``
is made from (:mod:`tcmbench.experiment.report`).

Every file is read through :mod:`tcmbench.safety.validation` with its
schema (:mod:`tcmbench.experiment.schema`); a malformed one stops the report
with one line naming the file. Cells that have not finished are kept as
pending, never dropped. Records keep fractions (0.887).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from tcmbench.errors import TcmbenchError
from tcmbench.experiment import schema
from tcmbench.safety.validation import (
    DocumentError,
    check_document,
    child_path,
    parse_json,
    parse_yaml,
    read_document,
)

log = logging.getLogger(__name__)

SCHEMA = 1
METRICS = ("precision", "recall", "hmean")
KINDS = ("curve", "table", "bars")
DONE = "done"
PENDING = "pending"
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
        names = [str(n) for n in as_list(self.params.get("test_datasets"))]
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


def _read_json(path: Path, what: str, max_bytes: int = schema.MAX_RECORD_BYTES) -> Any:
    """A JSON file of the folder, parsed under the size and depth limits of
    every document (tcmbench.safety.validation)."""
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


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool): a figure a record may carry."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: None is empty, a scalar one item."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_experiment(root: str | Path) -> Experiment:
    """Read an experiment folder; raise :class:`ExperimentReportError` (one
    line naming the file) when it is not one or a file in it is malformed.

    Every file is read through :mod:`tcmbench.safety.validation` with its schema
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
