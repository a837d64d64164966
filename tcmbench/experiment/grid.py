"""Experiment grids: a YAML file that names train/evaluate cells.

A grid is ``base`` (keys every cell shares) combined with explicit
``cells`` and the cartesian product of ``axes``; ``--tiny`` merges the
grid's ``tiny`` section over it (the CPU-sized machinery check). The format
is in docs/experiments.md and the contract with ``experiment report`` in
notes/experiment-schema.md.

Why everything is checked when the grid is read: a grid can run for days,
so a misspelt key, a dataset name that does not exist or an unset
checkpoint variable must fail in the first second, in one line naming the
file and the key, not when the cell that uses it comes up.

Cell ids (``NNN-<slug>``) are made from the grid as written, before
``--set`` variables are substituted, so the same grid gives the same ids
whatever checkpoints it is pointed at (the runner checks a finished cell's
parameters against the current ones instead).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment import schema
from tcmbench.safety.validation import DocumentError, DocumentLimitError, parse_yaml, read_document

#: Keys a cell may set, in the order records list them (their types and
#: ranges: tcmbench.experiment.schema.CELL_FIELDS).
CELL_KEYS = tuple(schema.CELL_FIELDS)
#: Values of the keys a cell leaves out (None = the plugin's recipe decides).
DEFAULTS: dict[str, Any] = {
    "label": None,
    "plugin": None,
    "backbone": None,
    "recipe": None,
    "tcm": False,
    "init_from": None,
    "train_datasets": [],
    "train_fraction": 1.0,
    "test_datasets": [],
    "eval_split": "test",
    "eval_limit": None,
    "steps": None,
    "epochs": None,
    "batch_size": None,
    "lr": None,
    "optimizer": None,
    "seed": 0,
    "pretrained_backbone": None,
    "train_options": {},
}
OPTIMIZERS = schema.OPTIMIZERS
#: TrainConfig fields that cell keys (or the runner) set; train_options may
#: not set them a second time.
RUNNER_OWNED = schema.RUNNER_OWNED
#: ``init_from: embedded`` = the weights shipped inside the plugin package.
EMBEDDED = "embedded"

_VAR = schema.VARIABLE_REF
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._+=-]+")
SLUG_MAX = 120


class GridError(TcmbenchError):
    """A grid file is missing, not YAML, or names something unknown."""


# --------------------------------------------------------------------------
# Data


@dataclass
class Cell:
    """One train/evaluate unit of a grid."""

    index: int
    id: str
    label: str
    params: dict[str, Any]
    #: The keys as written (variables not substituted), for ids and display.
    raw: dict[str, Any] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        """The cell as ``experiment.json`` lists it."""
        return {"id": self.id, "label": self.label, "params": self.params}


@dataclass
class Grid:
    """A grid as read (``raw``) plus where it came from."""

    name: str
    source: str
    raw: dict[str, Any]
    tiny: bool = False
    sets: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.raw.get("title") or self.name)

    @property
    def paper(self) -> str:
        return str(self.raw.get("paper") or "")

    @property
    def description(self) -> str:
        return str(self.raw.get("description") or "").strip()

    @property
    def report(self) -> dict[str, Any]:
        return dict(self.raw.get("report") or {})

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in (self.raw.get("variables") or {}).items()}

    @property
    def has_tiny(self) -> bool:
        return isinstance(self.raw.get("tiny"), dict)

    def as_run(self) -> dict[str, Any]:
        """The grid after ``--tiny`` and ``--set`` (written to OUT/grid.yaml)."""
        out = {k: copy.deepcopy(v) for k, v in self.raw.items() if k != "tiny"}
        if self.sets:
            variables = out.setdefault("variables", {})
            for name, value in self.sets.items():
                variables.setdefault(name, {})["default"] = value
        out["tiny"] = self.tiny
        return out


# --------------------------------------------------------------------------
# Finding and reading


def shipped_grids() -> dict[str, Path]:
    """Grid name -> YAML file of the grids shipped in the package."""
    folder = resources.files("tcmbench.experiment") / "grids"
    out: dict[str, Path] = {}
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.endswith(".yaml"):
                out[item.name[: -len(".yaml")]] = Path(str(item))
    return dict(sorted(out.items()))


def resolve_grid_path(ref: str) -> Path:
    """A grid file from a path or a shipped grid's name (a regular file:
    a FIFO or a device would block or never end)."""
    shipped = shipped_grids()
    names = ", ".join(shipped) or "none"
    try:
        p = Path(ref).expanduser()
        if p.is_file():
            return p
        exists = p.exists()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, ~nobody, NUL
        raise GridError(f"{ref[:200]!r}: not a grid file ({exc})") from None
    if ref in shipped:
        return shipped[ref]
    if exists:
        raise GridError(f"{ref}: not a regular file (a grid is a YAML file)")
    if p.suffix in (".yaml", ".yml") or "/" in ref:
        raise GridError(f"{ref}: grid file not found (shipped grids: {names})")
    raise GridError(f"unknown grid {ref!r}: not a file and not a shipped grid ({names})")


def load_grid(ref: str | Path) -> Grid:
    """Read and check a grid file (or shipped grid name); every problem is
    a :class:`GridError` naming the file and the key. The file is read under
    :data:`~tcmbench.experiment.schema.MAX_GRID_BYTES` and parsed without
    YAML anchors and aliases (an alias bomb would hang even ``--dry-run``)."""
    path = resolve_grid_path(str(ref))
    try:
        data = read_document(path, max_bytes=schema.MAX_GRID_BYTES)
        raw = parse_yaml(data, str(path), max_bytes=schema.MAX_GRID_BYTES)
    except DocumentError as exc:
        raise GridError(str(exc)) from None
    if not isinstance(raw, dict):
        raise GridError(f"{path}: a grid is a YAML mapping (name, base, axes, cells, ...)")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    raw = check_grid(raw, str(path))
    return Grid(name=str(raw["name"]), source=str(path), raw=raw)


# --------------------------------------------------------------------------
# Checking


def check_grid(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A parsed grid checked against its schema
    (:func:`tcmbench.experiment.schema.check_grid_document`: types, ranges,
    known keys, at most ``MAX_CELLS`` cells) and every ``${variable}`` it
    uses declared; returns it normalised (``steps: 10.0`` -> 10)."""
    try:
        grid = schema.check_grid_document(raw, source)
    except DocumentError as exc:
        raise GridError(str(exc)) from None
    used = _variables_used(grid)
    declared = set((grid.get("variables") or {}).keys())
    declared |= set(((grid.get("tiny") or {}).get("variables") or {}).keys())
    for name in sorted(used - declared):
        raise GridError(f"{source}: ${{{name}}}: variable used but not declared under variables")
    return grid


def check_value(key: str, v: Any, source: str, where: str) -> Any:
    """One cell key's value, normalised (a ``${variable}`` is kept: it is
    checked once substituted)."""
    try:
        return schema.check_cell_value(key, v, source, where)
    except DocumentError as exc:
        raise GridError(str(exc)) from None


# --------------------------------------------------------------------------
# Variables and --tiny


def _variables_used(node: Any) -> set[str]:
    if isinstance(node, str):
        return set(_VAR.findall(node))
    if isinstance(node, dict):
        return set().union(*(_variables_used(v) for k, v in node.items() if k != "variables"))
    if isinstance(node, list):
        return set().union(*(_variables_used(v) for v in node))
    return set()


def merge_value(key: str, old: Any, new: Any) -> Any:
    """``new`` over ``old``: mappings merge key by key, anything else is
    replaced; ``tcm: true`` over a TCM mapping keeps the mapping (it says
    "TCM on", the mapping says how)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for k, v in new.items():
            out[k] = merge_value(k, out.get(k), v)
        return out
    if key == "tcm" and new is True and isinstance(old, dict):
        return dict(old)
    return copy.deepcopy(new)


def merge_keys(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        out[k] = merge_value(k, out.get(k), v)
    return out


def apply_tiny(grid: Grid) -> Grid:
    """The ``--tiny`` form: the ``tiny`` section merged over the grid
    (``base`` and ``variables`` key by key, ``axes`` axis by axis;
    ``cells``, ``paper_values`` and the texts replaced)."""
    if not grid.has_tiny:
        raise GridError(f"{grid.source}: grid {grid.name!r} has no tiny section (--tiny)")
    tiny = grid.raw["tiny"]
    raw = {k: copy.deepcopy(v) for k, v in grid.raw.items() if k != "tiny"}
    for key, value in tiny.items():
        if key in ("base", "variables", "axes", "report") and isinstance(raw.get(key), dict):
            merged = dict(raw[key])
            for k, v in value.items():
                merged[k] = merge_value(k, merged.get(k), v) if key in ("base", "variables") else v
            raw[key] = merged
        else:
            raw[key] = copy.deepcopy(value)
    return Grid(name=grid.name, source=grid.source, raw=raw, tiny=True, sets=dict(grid.sets))


#: Size of one ``--set`` value.
MAX_SET_BYTES = 64 * 1024


def set_value(name: str, text: str) -> Any:
    """A ``--set`` VALUE read as YAML (null, numbers, strings, lists) under
    the limits of every document (no anchors or aliases, 64 levels); text
    that is not YAML at all is kept as text."""
    if not text.strip():
        return ""
    try:
        return parse_yaml(text, f"--set {name}", max_bytes=MAX_SET_BYTES)
    except DocumentLimitError as exc:  # too big, too deep, anchors / aliases
        raise GridError(str(exc)) from None
    except DocumentError:
        return text  # not YAML: the text itself


def parse_sets(items: Sequence[str], grid: Grid) -> dict[str, Any]:
    """``--set NAME=VALUE`` (VALUE read as YAML: null, numbers, strings)."""
    out: dict[str, Any] = {}
    declared = grid.variables
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise GridError(f"--set {item[:80]!r}: expected NAME=VALUE")
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise GridError(
                f"--set {name[:80]}: grid {grid.name!r} ({grid.source}) has no such variable; "
                f"its variables: {known}"
            )
        out[name] = set_value(name, text)
    return out


def with_sets(grid: Grid, sets: Mapping[str, Any]) -> Grid:
    return Grid(
        name=grid.name, source=grid.source, raw=grid.raw, tiny=grid.tiny, sets={**grid.sets, **sets}
    )


def variable_values(grid: Grid) -> dict[str, Any]:
    """Variable -> value (``--set`` over the grid's default); unset
    required variables are absent."""
    out: dict[str, Any] = {}
    for name, spec in grid.variables.items():
        if name in grid.sets:
            out[name] = grid.sets[name]
        elif "default" in spec:
            out[name] = spec["default"]
    return out


def _substitute(node: Any, values: Mapping[str, Any], missing: set[str]) -> Any:
    if isinstance(node, str):
        whole = _VAR.fullmatch(node)
        if whole:
            name = whole.group(1)
            if name in values:
                return copy.deepcopy(values[name])
            missing.add(name)
            return node

        def repl(m: re.Match[str]) -> str:
            if m.group(1) in values:
                return str(values[m.group(1)])
            missing.add(m.group(1))
            return m.group(0)

        return _VAR.sub(repl, node)
    if isinstance(node, dict):
        return {k: _substitute(v, values, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values, missing) for v in node]
    return node


# --------------------------------------------------------------------------
# Expansion


def _combos(raw: Mapping[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """(keys set by the axes, those keys in axes order) for each point of
    the product."""
    axes = raw.get("axes") or {}
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)) if names else [()]:
        point: dict[str, Any] = {}
        keys: list[str] = []
        for name, value in zip(names, values):
            if name in CELL_KEYS:
                point[name] = merge_value(name, point.get(name), value)
                keys.append(name)
            else:
                point = merge_keys(point, value)
                # a bundle with a label is named by it, not by its keys
                keys += ["label"] if "label" in value else list(value)
        out.append((point, list(dict.fromkeys(keys))))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "+".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "+".join(f"{k}~{_fmt(x)}" for k, x in v.items())
    return _VAR.sub(lambda m: m.group(1), str(v))


def _slug(text: str) -> str:
    return _SLUG_BAD.sub("_", text).strip("_")


def _label_slug(label: str) -> str:
    text = re.sub(r"\s*\+\s*", "+", label.lower())
    return re.sub(r"[^a-z0-9+.]+", "-", text).strip("-")


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def expand(grid: Grid, *, strict: bool = True) -> list[Cell]:
    """The grid's cells in order: each of ``cells`` (or one empty cell)
    with each point of the ``axes`` product, over ``base``.

    ``strict``: every variable a cell uses must have a value and every cell
    must name a plugin and its datasets (False for ``--dry-run``, which
    shows unset variables as ``${name}``)."""
    raw = grid.raw
    source = grid.source
    try:  # --tiny merges axes: count again, before anything is expanded
        schema.check_cell_count(raw, source, "the tiny form" if grid.tiny else "the grid")
    except DocumentError as exc:
        raise GridError(str(exc)) from None
    base = dict(raw.get("base") or {})
    cell_list = [dict(c) for c in (raw.get("cells") or [{}])]
    combos = _combos(raw)
    written: list[tuple[dict[str, Any], list[str]]] = []
    for cell in cell_list:
        for point, axis_keys in combos:
            merged = merge_keys(merge_keys(base, cell), point)
            written.append((merged, axis_keys))
    if not written:
        raise GridError(f"{source}: the grid has no cells")
    varying = {k for k in CELL_KEYS if len({_canon(w.get(k, DEFAULTS[k])) for w, _ in written}) > 1}
    labelled = "label" in varying or any("label" in c for c in cell_list)
    values = variable_values(grid)
    cells: list[Cell] = []
    width = max(3, len(str(len(written) - 1)))
    for index, (w, axis_keys) in enumerate(written):
        # The keys that tell this cell from the others: the axes' in axes
        # order, then (without labels) the other varying keys.
        order = [k for k in axis_keys if k in varying and k != "label"]
        parts: list[str] = []
        if labelled and w.get("label"):
            parts.append(_label_slug(str(w["label"])))
        else:
            order += [k for k in CELL_KEYS if k in varying and k not in order and k != "label"]
        parts += [f"{k}={_fmt(w.get(k, DEFAULTS[k]))}" for k in order]
        slug = _slug("-".join(p for p in parts if p))[:SLUG_MAX].rstrip("-_") or grid.name
        cell_id = f"{index:0{width}d}-{slug}"
        missing: set[str] = set()
        params = _substitute(w, values, missing)
        if missing and strict:
            name = sorted(missing)[0]
            helptext = grid.variables.get(name, {}).get("help")
            raise GridError(
                f"{source}: cell {cell_id} uses ${{{name}}}, which is not set; pass --set "
                f"{name}=VALUE" + (f" ({helptext})" if helptext else "")
            )
        for k, v in params.items():  # substituted values get the same checks
            params[k] = check_value(k, v, source, f"cell {cell_id}: {k}")
        full = {k: copy.deepcopy(params.get(k, DEFAULTS[k])) for k in CELL_KEYS}
        for k in ("train_datasets", "test_datasets"):
            if isinstance(full[k], str):
                full[k] = [full[k]]
        label = full["label"] or (
            ", ".join(f"{k}={_fmt(w.get(k, DEFAULTS[k]))}" for k in order) or grid.name
        )
        full["label"] = label
        if strict:
            _check_complete(full, source, cell_id)
        cells.append(Cell(index=index, id=cell_id, label=label, params=full, raw=w))
    return cells


def _check_complete(p: Mapping[str, Any], source: str, cell_id: str) -> None:
    if not p["plugin"]:
        raise GridError(f"{source}: cell {cell_id}: no plugin (set it in base or the cell)")
    if not p["test_datasets"]:
        raise GridError(f"{source}: cell {cell_id}: no test_datasets")
    if float(p["train_fraction"]) > 0 and not p["train_datasets"]:
        raise GridError(
            f"{source}: cell {cell_id}: train_fraction {p['train_fraction']} but no train_datasets"
        )
    if p["steps"] is not None and p["epochs"] is not None:
        raise GridError(f"{source}: cell {cell_id}: give steps or epochs, not both")


def check_names(cells: Sequence[Cell], source: str) -> None:
    """Plugins and datasets the cells name exist (before anything runs)."""
    from tcmbench.contract.registry import detectors
    from tcmbench.data.dataset import list_dataset_configs

    datasets = list_dataset_configs()
    plugins = detectors()
    for cell in cells:
        p = cell.params
        if p["plugin"] not in plugins:
            raise GridError(
                f"{source}: cell {cell.id}: plugin {p['plugin']!r} is not installed; "
                f"detector plugins: {', '.join(plugins) or 'none'}"
            )
        for key in ("train_datasets", "test_datasets"):
            for name in p[key]:
                if name not in datasets:
                    raise GridError(
                        f"{source}: cell {cell.id}: {key}: unknown dataset {name!r}; "
                        f"known: {', '.join(datasets)}"
                    )
