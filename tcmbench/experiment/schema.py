"""The documents of an experiment, declared once: grid files, ``experiment.json``
and cell records (``record.json``), with their limits and the records' checksum.

Why here and not in the code that reads them: a grid, an experiment folder
and its records are files anyone can edit, and the grid runner, the report
and the tests must agree on what is valid. Every type, range and known key
is a :mod:`tcmbench.safety.validation` schema (``Section`` / ``Opt`` / ``Text``...);
the few rules that relate two keys (a curve needs ``x``, a match cannot
outnumber its GTs) are small functions beside them. Errors are one
:class:`~tcmbench.safety.validation.DocumentError` line naming the file, the key
and what is allowed.

Limits (documented in docs/experiments.md):

- a grid file is at most :data:`MAX_GRID_BYTES` and expands to at most
  :data:`MAX_CELLS` cells (counted from the axis lengths before anything is
  expanded: ten axes of ten values would otherwise build 10^10 cells);
- ``steps`` <= :data:`MAX_STEPS`, ``epochs`` <= :data:`MAX_EPOCHS`,
  ``batch_size`` <= :data:`MAX_BATCH_SIZE`, ``lr`` in (0, :data:`MAX_LR`],
  ``seed`` in [0, :data:`MAX_SEED`]: a cell that would train for ever or
  allocate until it fails is refused when the grid is read.

Records carry ``checksum``: ``sha256:`` + the SHA-256 of the record's
canonical JSON without that key (:func:`record_checksum`). It is not a
signature (whoever edits a record can recompute it), it makes an edit
visible: ``experiment report`` marks a record whose checksum does not match
as *edited* (:func:`record_integrity`).

Torch-free, so the report and the fuzz suite import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tcmbench.contract.options import Opt
from tcmbench.contract.spec import AUX_LOSS_BATCHINGS
from tcmbench.safety.run_limits import RUN_BOUNDS
from tcmbench.safety.validation import (
    Anything,
    DocumentError,
    Field,
    ListOf,
    MapOf,
    OneOf,
    Section,
    Text,
    check_document,
)

# --------------------------------------------------------------------------- limits

#: Size of a grid file (shipped grids are a few kB).
MAX_GRID_BYTES = 1024 * 1024
#: Cells one grid may expand to: ``cells`` x the product of the axis lengths.
MAX_CELLS = 10_000
#: Steps, epochs and batch size of one cell: the bounds `train` applies
#: (tcmbench.safety.run_limits), so a grid and the command line agree.
MAX_STEPS = RUN_BOUNDS["MAX_STEPS"][0]
MAX_EPOCHS = RUN_BOUNDS["MAX_EPOCHS"][0]
MAX_BATCH_SIZE = RUN_BOUNDS["MAX_BATCH_SIZE"][0]
#: Learning rate (the recipes use 1e-4 to 7e-3).
MAX_LR = 10.0
#: Seeds: numpy's generators take 0 .. 2^32 - 1.
MAX_SEED = 2**32 - 1
#: Test images of one cell (``eval_limit``).
MAX_IMAGES = 100_000_000
#: Size of ``record.json`` / ``cell.json`` and of ``experiment.json``.
MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_EXPERIMENT_BYTES = 64 * 1024 * 1024

# --------------------------------------------------------------------------- the grid

OPTIMIZERS = ("adam", "adamw", "sgd", "ranger")
REPORT_KINDS = ("curve", "table", "bars")
METRICS = ("hmean", "precision", "recall")
#: ``${name}``: a grid variable, checked once substituted.
VARIABLE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
GRID_NAME = Text(1, 100, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*", words="letters, digits, . _ -")
VARIABLE_NAME = Text(
    1, 100, pattern=r"[A-Za-z_][A-Za-z0-9_]*", words="letters, digits and _, not a digit first"
)
#: A cell id: a name (it becomes the folder OUT/cells/<id>).
CELL_ID = Text(1, 255, name=True)

_NAME = Text(1, 200)
_FRACTION = Opt(None, "float", ge=0.0, le=1.0, nullable=True)
_COUNT = Opt(None, "int", ge=0, nullable=True)
_SECONDS = Opt(None, "float", ge=0.0, nullable=True)
_DATASETS = OneOf((_NAME, ListOf(_NAME, max_len=100)), help="a dataset name or a list of them")

#: TCMConfig fields a grid's ``tcm`` mapping may set (tcmbench.contract.spec).
TCM = Section(
    {
        "context_length": Opt(4, "int", ge=0, le=77, help="learnable context tokens (LP)"),
        "predefined_prompt": Opt(True, "bool"),
        "language_generator": Opt(True, "bool"),
        "visual_generator": Opt(True, "bool"),
        "text_context_decoder": Opt(True, "bool"),
        "prompt": Text(1, 1000),
        "clip_model": Text(1, 200),
        "clip_pretrained": Text(1, 200, nullable=True),
        "clip_weights": Text(1, 4096, nullable=True),
        "tau": Opt(0.07, "float", gt=0.0, le=100.0),
        "input_resolution": Opt(None, "int", ge=32, le=4096, nullable=True),
        "aux_weight": Opt(1.0, "float", ge=0.0, le=1000.0),
        "lr_factor_image": Opt(0.1, "float", ge=0.0, le=1000.0),
        "lr_factor_text": Opt(0.0, "float", ge=0.0, le=1000.0),
        "aux_loss_batching": Opt(None, "str", choices=AUX_LOSS_BATCHINGS, nullable=True),
    },
    help="TCM settings",
)

#: TrainConfig fields a cell's ``train_options`` may set: the others are the
#: cell keys' or the runner's (:data:`RUNNER_OWNED`).
TRAIN_OPTIONS = Section(
    {
        "weight_decay": Opt(None, "float", ge=0.0, le=1.0, nullable=True),
        "accumulate": Opt(1, "int", ge=1, le=1024),
        "lr_schedule": Opt(None, "str", choices=("step", "epoch"), nullable=True),
        "eval_every": Opt(None, "int", ge=0, le=MAX_STEPS, nullable=True),
        "eval_batch_size": Opt(1, "int", ge=1, le=MAX_BATCH_SIZE),
        "save_every": Opt(None, "int", ge=0, le=MAX_STEPS, nullable=True),
        "keep_checkpoints": Opt(2, "int", ge=0, le=10_000),
        "workers": Opt(None, "int", ge=0, le=256, nullable=True),
        "data_root": Text(1, 4096, nullable=True),
        "amp": Opt(True, "bool"),
        "log_every": Opt(10, "int", ge=1, le=MAX_STEPS),
        "cache_images": Opt(None, "bool", nullable=True),
        "progress": Opt(True, "bool"),
        "val_fraction": Opt(0.0, "float", ge=0.0, lt=1.0),
        "no_decay": ListOf(Text(1, 100), max_len=20, nullable=True),
        "tensorboard": Opt(True, "bool"),
        "allow_partial_init": Opt(False, "bool"),
        "norm_eval": Opt(None, "bool", nullable=True),
    },
    help="TrainConfig fields",
)
#: TrainConfig fields that cell keys (or the runner) set; train_options may
#: not set them a second time.
RUNNER_OWNED = (
    "plugin",
    "datasets",
    "recipe",
    "output",
    "backbone",
    "pretrained_backbone",
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "train_fraction",
    "seed",
    "device",
    "tcm",
    "resume",
    "init_from",
    "eval_datasets",
    "eval_split",
    "eval_limit",
)

#: The keys a cell may set, in the order records list them.
CELL_FIELDS: dict[str, Field] = {
    "label": Text(1, 200),
    "plugin": _NAME,
    "backbone": Text(1, 200, nullable=True),
    "recipe": Text(1, 4096, nullable=True),
    "tcm": OneOf((Opt(False, "bool"), TCM)),
    "init_from": Text(1, 4096, nullable=True),
    "train_datasets": _DATASETS,
    "train_fraction": Opt(1.0, "float", ge=0.0, le=1.0),
    "test_datasets": _DATASETS,
    "eval_split": _NAME,
    "eval_limit": Opt(None, "int", ge=1, le=MAX_IMAGES, nullable=True),
    "steps": Opt(None, "int", ge=1, le=MAX_STEPS, nullable=True),
    "epochs": Opt(None, "float", gt=0.0, le=MAX_EPOCHS, nullable=True),
    "batch_size": Opt(None, "int", ge=1, le=MAX_BATCH_SIZE, nullable=True),
    "lr": Opt(None, "float", gt=0.0, le=MAX_LR, nullable=True),
    "optimizer": Opt(None, "str", choices=OPTIMIZERS, nullable=True),
    "seed": Opt(0, "int", ge=0, le=MAX_SEED),
    "pretrained_backbone": Opt(None, "bool", nullable=True),
    "train_options": TRAIN_OPTIONS,
}
CELL = Section(CELL_FIELDS, help="cell keys")

REPORT = Section(
    {
        "kind": Opt("table", "str", choices=REPORT_KINDS),
        "x": Text(1, 200),
        "series": OneOf((_NAME, ListOf(_NAME, max_len=20))),
        "rows": OneOf((_NAME, ListOf(_NAME, max_len=20))),
        "columns": OneOf((_NAME, ListOf(_NAME, max_len=20))),
        "metric": Opt("hmean", "str", choices=METRICS),
    },
    help="kind, x, series, rows, columns, metric",
)
PAPER_VALUE = Section(
    {
        "match": Opt({}, "dict", help="cell keys the figure belongs to"),
        "dataset": _NAME,
        "hmean": _FRACTION,
        "precision": _FRACTION,
        "recall": _FRACTION,
        # A published figure without its source is never reported.
        "source": Text(1, 2000, pattern=r"(?s).*\S.*", words="where the figure is published"),
        "note": Text(0, 10_000),
    },
    required=("dataset", "source"),
    help="a published figure: match, dataset, hmean (a fraction), source",
)
VARIABLE = Section({"help": Text(0, 10_000), "default": Anything()}, help="help, default")


def _grid_sections(cell: Field) -> tuple[Section, Section]:
    """(the grid, its ``tiny`` section) with ``cell`` for each mapping of
    cell keys (``base``, ``cells``)."""
    common: dict[str, Field] = {
        "title": Text(0, 1000),
        "paper": Text(0, 1000),
        "description": Text(0, 100_000),
        "report": REPORT,
        "variables": MapOf(VARIABLE, key=VARIABLE_NAME, max_len=1000),
        "base": cell,
        "axes": MapOf(ListOf(Anything(), min_len=1, max_len=MAX_CELLS), max_len=100),
        "cells": ListOf(cell, min_len=1, max_len=MAX_CELLS),
        "paper_values": ListOf(PAPER_VALUE, max_len=1000),
    }
    tiny = Section(common, help="the --tiny form's overrides: the top-level keys but name, tiny")
    return Section({"name": GRID_NAME, **common, "tiny": tiny}, required=("name",)), tiny


#: A grid file (``TINY``: its ``tiny`` section). Axes are checked by
#: :func:`check_axes` (an axis named after a cell key lists its values).
GRID, TINY = _grid_sections(CELL)
#: The grid's structure, checked first without variables: ``${name}`` is
#: only allowed inside cell keys (:func:`check_grid_document`).
_GRID_SHAPE, _ = _grid_sections(Opt({}, "dict", help="cell keys"))


def is_placeholder(value: Any) -> bool:
    """A string holding a ``${variable}``: checked once substituted."""
    return isinstance(value, str) and VARIABLE_REF.search(value) is not None


def _refuse_owned(options: Any, source: str, where: str) -> None:
    """train_options (at ``where``) may not set what the cell keys or the
    runner set."""
    if isinstance(options, Mapping):
        for key in options:
            if key in RUNNER_OWNED:
                raise DocumentError(
                    f"{source}: {where}.{key} is set by the cell keys or the runner, not by "
                    "train_options"
                )


def _train_options(raw: Mapping[str, Any], prefix: str) -> Iterable[tuple[str, Any]]:
    """(where, value) of every ``train_options`` a grid (or its tiny
    section) sets: in base, in each cell, in an axis of bundles, as an axis."""
    mappings: list[tuple[str, Any]] = [(f"{prefix}base", raw.get("base"))]
    cells = raw.get("cells")
    if isinstance(cells, list):
        mappings += [(f"{prefix}cells[{i}]", cell) for i, cell in enumerate(cells)]
    axes = raw.get("axes")
    for name, values in axes.items() if isinstance(axes, Mapping) else ():
        if not isinstance(values, list):
            continue
        for i, value in enumerate(values):
            if name == "train_options":
                yield f"{prefix}axes.train_options[{i}]", value
            elif name not in CELL_FIELDS:
                mappings.append((f"{prefix}axes.{name}[{i}]", value))
    for where, cell in mappings:
        if isinstance(cell, Mapping):
            yield f"{where}.train_options", cell.get("train_options")


def check_axes(axes: Any, source: str, where: str) -> dict[str, Any]:
    """An axis named after a cell key lists values of that key; an axis of
    another name lists mappings of cell keys (a bundle). Returns the axes
    normalised."""
    out: dict[str, Any] = {}
    for name, values in (axes or {}).items():
        field = CELL_FIELDS.get(str(name))
        w = f"{where}.{name}"
        if field is not None:
            out[name] = [_cell_check(v, field, source, f"{w}[{i}]") for i, v in enumerate(values)]
            continue
        for value in values:
            if not isinstance(value, Mapping):
                raise DocumentError(
                    f"{source}: {w} is not a cell key (known: {', '.join(CELL_FIELDS)}); an axis "
                    "of another name lists mappings of cell keys"
                )
        out[name] = [_cell_check(v, CELL, source, f"{w}[{i}]") for i, v in enumerate(values)]
    return out


def _cell_check(value: Any, field: Field, source: str, where: str) -> Any:
    """Cell keys: ``${variables}`` are kept, checked once substituted."""
    return check_document(value, field, source, where, defer=is_placeholder)


def check_paper_values(values: Any, source: str, where: str) -> None:
    """Each published figure gives at least one of hmean, precision, recall."""
    for i, item in enumerate(values or []):
        if not any(item.get(k) is not None for k in METRICS):
            raise DocumentError(
                f"{source}: {where}[{i}] has no figure (hmean, precision or recall, a fraction)"
            )


def _check_report(report: Any, source: str, where: str) -> None:
    if isinstance(report, Mapping) and report.get("kind") == "curve" and "x" not in report:
        raise DocumentError(f"{source}: {where}.x is required: a curve needs the cell key on x")


def cell_count(raw: Mapping[str, Any]) -> int:
    """Cells a grid expands to: ``cells`` (or one) x the product of the
    axis lengths; counting stops just over :data:`MAX_CELLS`."""
    cells = raw.get("cells")
    count = max(1, len(cells) if isinstance(cells, list) else 1)
    axes = raw.get("axes")
    for values in axes.values() if isinstance(axes, Mapping) else ():
        count *= len(values) if isinstance(values, list) else 1
        if count > MAX_CELLS:
            return count
    return count


def check_cell_count(raw: Mapping[str, Any], source: str, what: str = "the grid") -> None:
    """A grid over :data:`MAX_CELLS` cells is refused before it is expanded."""
    count = cell_count(raw)
    if count > MAX_CELLS:
        cells = raw.get("cells")
        axes = raw.get("axes")
        lengths = " x ".join(
            [str(max(1, len(cells) if isinstance(cells, list) else 1))]
            + [str(len(v)) for v in (axes or {}).values() if isinstance(v, list)]
        )
        raise DocumentError(
            f"{source}: {what} expands to more than {MAX_CELLS} cells (cells x axis lengths: "
            f"{lengths}); the limit is {MAX_CELLS}: split it into several grids"
        )


def check_grid_document(raw: Any, source: str) -> dict[str, Any]:
    """A parsed grid file checked against :data:`GRID` (types, ranges,
    known keys; ``${variables}`` are checked once substituted) and the rules
    between keys; returns it normalised."""
    if not isinstance(raw, Mapping):
        raise DocumentError(
            f"{source}: a grid is a YAML mapping (name, base, axes, cells, ...), got "
            f"{type(raw).__name__}"
        )
    for prefix, part in (("", raw), ("tiny.", raw.get("tiny"))):
        if isinstance(part, Mapping):
            # Counted first: 100 axes of 10,000 values would take long to check.
            check_cell_count(part, source, "the grid" if not prefix else "the tiny form")
            for where, options in _train_options(part, prefix):
                _refuse_owned(options, source, where)
    grid: dict[str, Any] = check_document(raw, _GRID_SHAPE, source)
    for prefix, part in (("", grid), ("tiny.", grid.get("tiny") or {})):
        if "base" in part:
            part["base"] = _cell_check(part["base"], CELL, source, f"{prefix}base")
        if "cells" in part:
            part["cells"] = [
                _cell_check(c, CELL, source, f"{prefix}cells[{i}]")
                for i, c in enumerate(part["cells"])
            ]
        if "axes" in part:
            part["axes"] = check_axes(part["axes"], source, f"{prefix}axes")
        _check_report(part.get("report"), source, f"{prefix}report")
        check_paper_values(part.get("paper_values"), source, f"{prefix}paper_values")
    return grid


def check_cell_value(key: str, value: Any, source: str, where: str) -> Any:
    """One cell key's value (after ``${variable}`` substitution)."""
    field = CELL_FIELDS.get(key)
    if field is None:
        raise DocumentError(
            f"{source}: {where} is not a cell key (known: {', '.join(CELL_FIELDS)})"
        )
    if key == "train_options":
        _refuse_owned(value, source, where)
    return check_document(value, field, source, where, defer=is_placeholder)


# --------------------------------------------------------------------------- the folder

EXPERIMENT_SCHEMA = 1
#: Records written by this tcmbench: schema 2 carries ``checksum``.
RECORD_SCHEMA = 2
#: Record schemas the report reads (1: before checksums).
RECORD_SCHEMAS = (1, 2)

_CELL_ENTRY = OneOf(
    (
        CELL_ID,
        Section(
            {
                "id": CELL_ID,
                "label": Text(0, 1000, nullable=True),
                "params": Opt(None, "dict", nullable=True),
            },
            required=("id",),
            help="id, label, params",
        ),
    )
)
EXPERIMENT = Section(
    {
        "schema": Opt(EXPERIMENT_SCHEMA, "int", choices=(EXPERIMENT_SCHEMA,)),
        "grid": GRID_NAME,
        "title": Text(0, 1000, nullable=True),
        "paper": Text(0, 1000, nullable=True),
        "description": Text(0, 100_000, nullable=True),
        "tiny": Opt(False, "bool"),
        "report": Section(REPORT.fields, nullable=True, help=REPORT.help),
        "grid_file": Text(0, 4096, nullable=True),
        "paper_values": ListOf(PAPER_VALUE, max_len=1000, nullable=True),
        "cells": ListOf(_CELL_ENTRY, max_len=MAX_CELLS),
    },
    required=("schema", "grid", "cells"),
    help="experiment.json of `tcmbench experiment run`",
)
#: ``OUT/grid.yaml`` as the report reads it: the grid as run (its ``tiny``
#: is a flag there, its variables hold the --set values).
GRID_AS_RUN = Section(
    {
        "base": Opt({}, "dict", nullable=True),
        "description": Text(0, 100_000, nullable=True),
        "paper_values": ListOf(PAPER_VALUE, max_len=1000, nullable=True),
    },
    strict=False,
)

#: A figure's label (``tcmbench.eval.sweep``: the official protocol's / the
#: papers' best-threshold figure).
_FIGURE_LABEL = Text(0, 500, nullable=True)
_SWEEP = Section(
    {
        "label": _FIGURE_LABEL,
        "protocol": Text(0, 200, nullable=True),  # mmocr-hmean-iou (tcmbench.eval.mmocr_iou)
        **dict.fromkeys(
            ("best_hmean", "best_threshold", "best_precision", "best_recall"), _FRACTION
        ),
    },
    nullable=True,
)
RESULT = Section(
    {
        "dataset": _NAME,
        "split": Text(1, 200, nullable=True),
        "protocol": Text(0, 200, nullable=True),
        "precision": _FRACTION,
        "recall": _FRACTION,
        "hmean": _FRACTION,
        "figure": _FIGURE_LABEL,
        "images": _COUNT,
        "test": Opt(None, "dict", nullable=True),
        "weights": Text(0, 4096, nullable=True),
        "sweep": _SWEEP,
    },
    required=("dataset",),
    help="dataset, split, protocol, precision, recall, hmean, images",
)
TRAIN_RECORD = Section(
    {
        "run_dir": Text(0, 4096, nullable=True),
        "steps": _COUNT,
        "seconds": _SECONDS,
        "resumed_from_step": _COUNT,
        "final": Text(0, 4096, nullable=True),
        "train_images": _COUNT,
        "losses": MapOf(Opt(None, "float", nullable=True), max_len=1000, nullable=True),
        "init_from": Anything(),
        "save_every": _COUNT,
    },
    nullable=True,
)
#: How a cell was run: the launcher (local, torchrun, slurm), the SLURM
#: job and its logs, the processes it trained with. Not a figure: records of
#: the same cell run by different launchers differ here and in their times.
LAUNCHERS = ("local", "torchrun", "slurm")
_JOB_ID = Text(1, 200, pattern=r"[0-9A-Za-z_.+-]+", words="a scheduler's job id", nullable=True)
_PATH = Text(0, 4096, nullable=True)
_TIME = Text(0, 100, nullable=True)
LAUNCH = Section(
    {
        "launcher": Opt("local", "str", choices=LAUNCHERS),
        "job_id": _JOB_ID,
        "stdout": _PATH,
        "stderr": _PATH,
        "host": Text(0, 255, nullable=True),
        "world_size": Opt(1, "int", ge=1, le=1_000_000),
        "restarts": _COUNT,
    },
    nullable=True,
    help="launcher, job_id, stdout, stderr, host, world_size, restarts",
)
RECORD = Section(
    {
        "schema": Opt(RECORD_SCHEMA, "int", choices=RECORD_SCHEMAS),
        "grid": Text(0, 200, nullable=True),
        "cell": Text(1, 255, name=True, nullable=True),
        "label": Text(0, 1000, nullable=True),
        "tiny": Opt(False, "bool"),
        "params": Opt({}, "dict"),
        "status": Text(1, 100),
        "init": Opt(None, "dict", nullable=True),
        "train": TRAIN_RECORD,
        "results": ListOf(RESULT, max_len=1000, nullable=True),
        "seconds": _SECONDS,
        "started": Text(0, 100, nullable=True),
        "finished": Text(0, 100, nullable=True),
        "versions": MapOf(Text(0, 200), max_len=100, nullable=True),
        "device": Text(0, 200, nullable=True),
        "launch": LAUNCH,
        "checksum": Text(pattern=r"sha256:[0-9a-f]{64}", words="sha256: and 64 hex digits"),
    },
    required=("schema", "status", "params"),
    help="a cell record of `tcmbench experiment run`",
)

#: ``cells/<id>/state.json``: what the process running a cell last said
#: (tcmbench.experiment.cellstate); ``record.json`` still decides "done".
CELL_STATES = ("running", "failed", "preempted", "done")
CELL_STATE = Section(
    {
        "schema": Opt(1, "int", choices=(1,)),
        "cell": CELL_ID,
        "state": Opt("running", "str", choices=CELL_STATES),
        "started": _TIME,
        "ended": _TIME,
        "pid": Opt(None, "int", ge=0, nullable=True),
        "error": Text(0, 100_000, nullable=True),
        "launch": LAUNCH,
    },
    required=("schema", "cell", "state"),
    help="cells/<id>/state.json of `tcmbench experiment run`",
)
#: ``cells/<id>/launch.json``: the submission of a cell as a scheduler job.
CELL_LAUNCH = Section(
    {
        "schema": Opt(1, "int", choices=(1,)),
        "cell": CELL_ID,
        "submitted": _TIME,
        "launch": LAUNCH,
        "resources": Opt({}, "dict", nullable=True),
    },
    required=("schema", "cell", "launch"),
    help="cells/<id>/launch.json of `tcmbench experiment run --launcher slurm`",
)

VERIFIED = "verified"
EDITED = "edited"
UNVERIFIED = "unverified"


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no
    NaN; a diverged loss is recorded as null), tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def record_checksum(record: Mapping[str, Any]) -> str:
    """``sha256:`` + the SHA-256 of the record's canonical JSON (keys
    sorted, no spaces, ASCII escapes, no NaN) without its ``checksum`` key."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def with_checksum(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as written: JSON values only (``str`` for the rest, null
    for non-finite numbers), schema :data:`RECORD_SCHEMA`, its checksum last."""
    plain = finite_json(json.loads(json.dumps(dict(record), default=str)))
    plain["schema"] = RECORD_SCHEMA
    plain.pop("checksum", None)
    plain["checksum"] = record_checksum(plain)
    return dict(plain)


def record_integrity(record: Mapping[str, Any]) -> str:
    """:data:`VERIFIED` (the checksum matches), :data:`EDITED` (it does not,
    or a schema-2 record has none) or :data:`UNVERIFIED` (a schema-1 record,
    written before records carried checksums)."""
    given = record.get("checksum")
    if given is None:
        return UNVERIFIED if record.get("schema") == 1 else EDITED
    try:
        return VERIFIED if given == record_checksum(record) else EDITED
    except (TypeError, ValueError):
        return EDITED
