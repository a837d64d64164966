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

#: Keys a cell may set, in the order records list them.
CELL_KEYS = (
    "label",
    "plugin",
    "backbone",
    "recipe",
    "tcm",
    "init_from",
    "train_datasets",
    "train_fraction",
    "test_datasets",
    "eval_split",
    "eval_limit",
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "seed",
    "pretrained_backbone",
    "train_options",
)
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
TOP_KEYS = (
    "name",
    "title",
    "paper",
    "description",
    "report",
    "variables",
    "base",
    "axes",
    "cells",
    "paper_values",
    "tiny",
)
REPORT_KEYS = ("kind", "x", "series", "rows", "columns", "metric")
REPORT_KINDS = ("curve", "table", "bars")
PAPER_VALUE_KEYS = ("match", "dataset", "hmean", "precision", "recall", "source", "note")
VARIABLE_KEYS = ("help", "default")
OPTIMIZERS = ("adam", "adamw", "sgd", "ranger")
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
#: ``init_from: embedded`` = the weights shipped inside the plugin package.
EMBEDDED = "embedded"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
    """A grid file from a path or a shipped grid's name."""
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    shipped = shipped_grids()
    if ref in shipped:
        return shipped[ref]
    names = ", ".join(shipped) or "none"
    if p.suffix in (".yaml", ".yml") or "/" in ref or p.exists():
        raise GridError(f"{ref}: grid file not found (shipped grids: {names})")
    raise GridError(f"unknown grid {ref!r}: not a file and not a shipped grid ({names})")


def load_grid(ref: str | Path) -> Grid:
    """Read and check a grid file (or shipped grid name); every problem is
    a :class:`GridError` naming the file and the key."""
    import yaml

    path = resolve_grid_path(str(ref))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{path}: cannot read the grid ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GridError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise GridError(f"{path}: a grid is a YAML mapping (name, base, axes, cells, ...)")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    check_grid(raw, str(path))
    return Grid(name=str(raw["name"]), source=str(path), raw=raw)


# --------------------------------------------------------------------------
# Checking


def _err(source: str, where: str, message: str) -> GridError:
    return GridError(f"{source}: {where}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _placeholder(v: Any) -> bool:
    return isinstance(v, str) and _VAR.search(v) is not None


def check_grid(raw: Mapping[str, Any], source: str, *, tiny_section: bool = False) -> None:
    """Check the top level of a grid (or of its ``tiny`` section)."""
    allowed = [k for k in TOP_KEYS if not (tiny_section and k in ("name", "tiny"))]
    prefix = "tiny." if tiny_section else ""
    for key in raw:
        if key not in allowed:
            raise _err(source, f"{prefix}{key}", f"unknown grid key; known: {', '.join(allowed)}")
    if not tiny_section:
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _err(source, "name", f"{name!r} is not a grid name (letters, digits, . _ -)")
    for key in ("title", "paper", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise _err(source, f"{prefix}{key}", "expected a string")
    if "report" in raw:
        _check_report(raw["report"], source, f"{prefix}report")
    variables = raw.get("variables")
    if variables is not None:
        _check_variables(variables, source, f"{prefix}variables")
    if "base" in raw:
        check_keys(raw["base"], source, f"{prefix}base")
    if "axes" in raw:
        _check_axes(raw["axes"], source, f"{prefix}axes")
    if "cells" in raw:
        cells = raw["cells"]
        if not isinstance(cells, list) or not cells:
            raise _err(source, f"{prefix}cells", "expected a non-empty list of cell mappings")
        for i, cell in enumerate(cells):
            check_keys(cell, source, f"{prefix}cells[{i}]")
    if "paper_values" in raw:
        _check_paper_values(raw["paper_values"], source, f"{prefix}paper_values")
    if not tiny_section and "tiny" in raw:
        tiny = raw["tiny"]
        if not isinstance(tiny, dict):
            raise _err(source, "tiny", "expected a mapping (the --tiny form's overrides)")
        check_grid(tiny, source, tiny_section=True)
    if not tiny_section:
        used = _variables_used(raw)
        declared = set((raw.get("variables") or {}).keys())
        declared |= set(((raw.get("tiny") or {}).get("variables") or {}).keys())
        for name in sorted(used - declared):
            raise _err(source, f"${{{name}}}", "variable used but not declared under variables")


def _check_report(report: Any, source: str, where: str) -> None:
    if not isinstance(report, dict):
        raise _err(source, where, "expected a mapping (kind, x, series, rows, columns, metric)")
    for key in report:
        if key not in REPORT_KEYS:
            raise _err(
                source, f"{where}.{key}", f"unknown report key; known: {', '.join(REPORT_KEYS)}"
            )
    kind = report.get("kind", "table")
    if kind not in REPORT_KINDS:
        raise _err(source, f"{where}.kind", f"{kind!r}; expected one of {', '.join(REPORT_KINDS)}")
    if kind == "curve" and not isinstance(report.get("x"), str):
        raise _err(source, f"{where}.x", "a curve needs x: the cell key on the x axis")
    metric = report.get("metric", "hmean")
    if metric not in ("hmean", "precision", "recall"):
        raise _err(source, f"{where}.metric", f"{metric!r}; expected hmean, precision or recall")


def _check_variables(variables: Any, source: str, where: str) -> None:
    if not isinstance(variables, dict):
        raise _err(source, where, "expected a mapping NAME: {help: ..., default: ...}")
    for name, spec in variables.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise _err(source, f"{where}.{name}", "not a variable name (letters, digits, _)")
        if not isinstance(spec, dict):
            raise _err(source, f"{where}.{name}", "expected a mapping {help: ..., default: ...}")
        for key in spec:
            if key not in VARIABLE_KEYS:
                raise _err(
                    source,
                    f"{where}.{name}.{key}",
                    f"unknown variable key; known: {', '.join(VARIABLE_KEYS)}",
                )


def _check_axes(axes: Any, source: str, where: str) -> None:
    if not isinstance(axes, dict):
        raise _err(source, where, "expected a mapping KEY: [values]")
    for name, values in axes.items():
        w = f"{where}.{name}"
        if not isinstance(values, list) or not values:
            raise _err(source, w, "expected a non-empty list of values")
        if name in CELL_KEYS:
            for i, v in enumerate(values):
                check_value(name, v, source, f"{w}[{i}]")
        else:
            for i, v in enumerate(values):
                if not isinstance(v, dict):
                    raise _err(
                        source,
                        w,
                        f"not a cell key (known: {', '.join(CELL_KEYS)}); an axis of another "
                        "name lists mappings of cell keys",
                    )
                check_keys(v, source, f"{w}[{i}]")


def _check_paper_values(values: Any, source: str, where: str) -> None:
    if not isinstance(values, list):
        raise _err(source, where, "expected a list of {match, dataset, hmean, source}")
    for i, item in enumerate(values):
        w = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _err(source, w, "expected a mapping {match, dataset, hmean, source}")
        for key in item:
            if key not in PAPER_VALUE_KEYS:
                raise _err(
                    source, f"{w}.{key}", f"unknown key; known: {', '.join(PAPER_VALUE_KEYS)}"
                )
        if not isinstance(item.get("match", {}), dict):
            raise _err(source, f"{w}.match", "expected a mapping of cell keys")
        if not isinstance(item.get("dataset"), str):
            raise _err(source, f"{w}.dataset", "expected a dataset name")
        if not isinstance(item.get("source"), str) or not item["source"].strip():
            raise _err(source, f"{w}.source", "a published figure needs its source")
        figures = [k for k in ("hmean", "precision", "recall") if k in item]
        if not figures:
            raise _err(source, w, "no figure (hmean, precision or recall)")
        for k in figures:
            v = item[k]
            if not _is_number(v) or not 0.0 <= float(v) <= 1.0:
                raise _err(source, f"{w}.{k}", f"{v!r}; expected a fraction (0.887 for 88.7)")


def check_keys(cell: Any, source: str, where: str) -> None:
    """A mapping of cell keys (base, one cell, an axis bundle)."""
    if not isinstance(cell, dict):
        raise _err(source, where, "expected a mapping of cell keys")
    for key, value in cell.items():
        if key not in CELL_KEYS:
            raise _err(source, f"{where}.{key}", f"unknown cell key; known: {', '.join(CELL_KEYS)}")
        check_value(key, value, source, f"{where}.{key}")


def check_value(key: str, v: Any, source: str, where: str) -> None:
    """One cell key's value (a ``${variable}`` is checked once substituted)."""
    if _placeholder(v):
        return

    def bad(expected: str) -> GridError:
        return _err(source, where, f"{v!r}; expected {expected}")

    if key in ("label", "plugin", "eval_split"):
        if not isinstance(v, str) or not v:
            raise bad("a non-empty string")
    elif key in ("backbone", "recipe", "init_from"):
        if v is not None and (not isinstance(v, str) or not v):
            raise bad("a string or null")
    elif key == "optimizer":
        if v is not None and v not in OPTIMIZERS:
            raise bad(f"one of {', '.join(OPTIMIZERS)} or null")
    elif key in ("train_datasets", "test_datasets"):
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not all(isinstance(d, str) and d for d in items):
            raise bad("a dataset name or a list of them")
    elif key == "train_fraction":
        if not _is_number(v) or not 0.0 <= float(v) <= 1.0:
            raise bad("a number from 0.0 (no training) to 1.0")
    elif key in ("steps", "batch_size", "eval_limit"):
        if v is not None and (not _is_int(v) or v < 1):
            raise bad("a positive integer or null")
    elif key in ("epochs", "lr"):
        if v is not None and (not _is_number(v) or v <= 0):
            raise bad("a positive number or null")
    elif key == "seed":
        if not _is_int(v):
            raise bad("an integer")
    elif key == "pretrained_backbone":
        if v is not None and not isinstance(v, bool):
            raise bad("true, false or null")
    elif key == "tcm":
        _check_tcm(v, source, where)
    elif key == "train_options":
        _check_train_options(v, source, where)


def _check_tcm(v: Any, source: str, where: str) -> None:
    from tcmbench.models.spec import TCMConfig

    if isinstance(v, bool):
        return
    if not isinstance(v, dict):
        raise _err(source, where, f"{v!r}; expected true, false or a mapping of TCM settings")
    known = list(TCMConfig.__dataclass_fields__)
    for k in v:
        if k not in known:
            raise _err(source, f"{where}.{k}", f"unknown TCM setting; known: {', '.join(known)}")


def _check_train_options(v: Any, source: str, where: str) -> None:
    from tcmbench.train.trainer import TrainConfig

    if not isinstance(v, dict):
        raise _err(source, where, f"{v!r}; expected a mapping of TrainConfig fields")
    known = [k for k in TrainConfig.__dataclass_fields__ if k not in RUNNER_OWNED]
    for k in v:
        if k in RUNNER_OWNED:
            raise _err(
                source,
                f"{where}.{k}",
                "set by the cell keys or the runner, not by train_options",
            )
        if k not in known:
            raise _err(
                source, f"{where}.{k}", f"unknown training option; known: {', '.join(known)}"
            )


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


def parse_sets(items: Sequence[str], grid: Grid) -> dict[str, Any]:
    """``--set NAME=VALUE`` (VALUE read as YAML: null, numbers, strings)."""
    import yaml

    out: dict[str, Any] = {}
    declared = grid.variables
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise GridError(f"--set {item!r}: expected NAME=VALUE")
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise GridError(
                f"--set {name}: grid {grid.name!r} ({grid.source}) has no such variable; "
                f"its variables: {known}"
            )
        try:
            out[name] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[name] = text
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
            check_value(k, v, source, f"cell {cell_id}: {k}")
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
    from tcmbench.data.dataset import list_dataset_configs
    from tcmbench.plugins import detectors

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
