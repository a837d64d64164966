"""What every output of an experiment report says, and how cells are placed.

The labels and facts the markdown, the CSV / JSON and the figures share:
what a run is (tiny or full, grid, steps, versions, devices, protocols,
test images), which published figure a cell is compared with, series and
row labels, curve points and the figures' file names. Records keep
fractions; :func:`pct` shows percentages as the papers do.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment import schema
from tcmbench.experiment.results import (
    Cell,
    Experiment,
    PaperValue,
    as_list,
    is_number,
)

TINY_LABEL = "tiny (machinery check on synthtext-mini; not comparable with the paper)"
FULL_LABEL = "full (the grid's own datasets and training length)"
METRIC_SHORT = {"precision": "P", "recall": "R", "hmean": "F"}
#: Column labels where a test set has both figures (tcmbench.eval.sweep).
OFFICIAL_COLUMN = "F (official protocol)"
PAPERS_COLUMN = "F (papers' figure)"
SWEEP_NOTE = (
    f"{OFFICIAL_COLUMN}: the official protocol's figure (every submitted detection). "
    f"{PAPERS_COLUMN}: the best-threshold hmean as mmocr 0.x reports it (score thresholds 0.3 "
    "to 0.9, step 0.1; how the TCM paper reports F) @ its threshold; not the official "
    "protocol's figure."
)
#: How an edited record (its checksum does not match) is marked everywhere.
EDITED_MARK = "EDITED"
EDITED_NOTE = (
    f"[{EDITED_MARK}]: the cell's record.json was changed after `tcmbench experiment run` wrote "
    "it (its checksum does not match its content): its figures are not the run's."
)
# Display names of the built-in plugins (series labels such as "TCM-DBNet").
PLUGIN_NAMES = {"dbnet": "DBNet", "pan": "PANet", "panet": "PANet", "fcenet": "FCENet"}


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
    if is_number(want) and is_number(have):
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
    return [str(k) for k in as_list(exp.spec.get("series"))]


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
            parts.append(f"{key}={plain(value)}")
    return ", ".join(parts) if parts else plugin_name(cell.params.get("plugin", "cells"))


def row_label(cell: Cell, keys: Sequence[str]) -> str:
    if not keys or list(keys) == ["label"]:
        return cell.label
    return series_label(cell, keys)


def is_percent_axis(key: str) -> bool:
    return key.endswith(("fraction", "ratio"))


def x_value(cell: Cell, key: str) -> float | None:
    value = cell.params.get(key)
    if not is_number(value):
        return None
    return float(value) * 100.0 if is_percent_axis(key) else float(value)


def x_text(value: float, key: str) -> str:
    text = f"{value:g}"
    return f"{text}%" if is_percent_axis(key) else text


def plain(value: Any) -> str:
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


def relative_to(path: str | Path, start: str | Path) -> str:
    """``path`` relative to the folder ``start`` (both absolute, or both
    relative to the current directory), with ``/`` separators: what a
    report writes must not carry the absolute path of the machine it was
    made on (a checkout, a home folder). The bare file name where no
    relative path exists (another drive on Windows)."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(start))
    except ValueError:
        return Path(path).name
    return rel.replace(os.sep, "/")


_FOREIGN_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|[\\/]{2}|/)")


def grid_origin(exp: Experiment, report_dir: str | Path | None = None) -> str:
    """Where the grid came from, with no absolute path in it: a shipped grid
    by its file name (the checkout or site-packages it was read from says
    nothing to a reader of the report), a user's grid file relative to the
    report's folder, and the copy as run (``DIR/grid.yaml``), which is what
    the report reads."""
    out = Path(report_dir) if report_dir is not None else exp.root / "report"
    parts = []
    source = exp.grid_file
    if source:
        pieces = [p for p in re.split(r"[\\/]+", source) if p]
        if pieces[-4:-1] == ["tcmbench", "experiment", "grids"]:
            parts.append(f"shipped grid file {pieces[-1]}")
        elif os.path.isabs(source):
            parts.append(f"from {relative_to(source, out)}")
        elif _FOREIGN_ABSOLUTE.match(source):  # written on another system
            parts.append(f"from {pieces[-1] if pieces else source}")
        else:  # as typed, relative to where `experiment run` ran
            parts.append(f"from {source}")
    as_run = exp.root / "grid.yaml"
    if as_run.is_file():
        parts.append(f"as run: {relative_to(as_run, out)}")
    return "; ".join(parts)


def header_lines(exp: Experiment, metric: str, report_dir: str | Path | None = None) -> list[str]:
    """One line each: what this is, as plain text (markdown list items and
    plot footers are made from these). Paths in them are relative to
    ``report_dir`` (default ``DIR/report``), where these outputs live."""
    facts = run_facts(exp)
    counts = ", ".join(f"{n} {s}" for s, n in facts["status_counts"].items())
    origin = grid_origin(exp, report_dir)
    lines = [
        f"Reproduces: {exp.paper or 'no paper figure named by the grid'}",
        f"Run: {facts['run']}",
        f"Grid: {exp.name}{f' ({origin})' if origin else ''}, {facts['cells']} cells: {counts}",
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


# --------------------------------------------------------------------------- repeats

#: The cell key that repeats a cell: cells whose parameters differ only in it
#: (their labels too, but for a ``seed=N`` part) are repeats of one
#: configuration.
SEED_KEY = "seed"
#: What the error bars and the "±" of the tables are, as every output says it.
SPREAD_NOTE = (
    "Cells that differ only in their seed are repeats: tables give mean ± sample standard "
    "deviation (n - 1 in the denominator) over the seeds and n, the number of seeds with a "
    "figure; plots draw the mean with an error bar of ± 1 sample standard deviation and each "
    "seed as a dot. A cell run once has no error bar."
)
_SEED_PART = re.compile(rf"\s*,?\s*\b{SEED_KEY}=\d+\b")


@dataclass(frozen=True)
class Spread:
    """The figures of repeated cells (fractions)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1), the usual one for a few seeds; 0 for one value."""
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def text(self) -> str:
        """``40.0 ± 7.1`` (percent); one value as it is, none as ""."""
        if not self.values:
            return ""
        if self.n == 1:
            return pct(self.values[0])
        return f"{pct(self.mean)} ± {pct(self.std)}"


def _unseeded(label: str) -> str:
    """A label without its ``seed=N`` part (the grid names cells by their
    varying keys when it gives no label)."""
    return _SEED_PART.sub("", label).strip(" ,")


def _repeat_key(cell: Cell) -> str:
    """The cell's parameters but the seed; its label without the seed, so
    two cells the grid labels apart are never taken for repeats."""
    rest = {k: v for k, v in cell.params.items() if k not in (SEED_KEY, "label")}
    return json.dumps([_unseeded(cell.label), rest], sort_keys=True, default=str)


def _seed(cell: Cell) -> str:
    return json.dumps(cell.params.get(SEED_KEY, 0), default=str)  # the grid's default seed is 0


def repeat_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """The cells in groups of repeats (same parameters but for the seed, each
    seed once), in the order of their first cell; every other cell alone. A
    cell whose parameters are not known (pending, not listed with params) is
    alone too: it cannot be told a repeat."""
    by: dict[str, list[Cell]] = {}
    for cell in cells:
        key = _repeat_key(cell) if cell.params_known else "\0" + cell.id
        by.setdefault(key, []).append(cell)
    groups: list[list[Cell]] = []
    for members in by.values():
        if len({_seed(m) for m in members}) == len(members):
            groups.append(members)
        else:  # the same seed twice: not repeats of one run, so kept apart
            groups += [[m] for m in members]
    first = {cell.id: i for i, cell in enumerate(cells)}
    return sorted(groups, key=lambda g: first[g[0].id])


def are_repeats(cells: Sequence[Cell]) -> bool:
    """Two or more cells that differ only in their seed."""
    return len(cells) > 1 and len(repeat_groups(cells)) == 1


def seeds_text(cells: Sequence[Cell]) -> str:
    return ", ".join(str(plain(c.params.get(SEED_KEY, 0))) for c in cells)


def group_label(cells: Sequence[Cell], labels: Sequence[str]) -> str:
    """One label for repeats: the one they share, else the first without its
    ``seed=N`` part (the label the grid made from the varying keys)."""
    if len(set(labels)) == 1:
        return labels[0]
    return _unseeded(labels[0]) or "seeds"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"


def figure_stems(exp: Experiment) -> list[str]:
    """The figures this experiment's kind draws, without their extension
    (each is written as ``.png``, ``.svg`` and ``.pdf``)."""
    if exp.kind == "curve":
        prefix = "fewshot" if "few" in exp.name.replace("-", "").replace("_", "") else "curve"
        return [f"{prefix}_{_safe_name(c)}" for c in exp.columns()]
    if exp.kind == "bars":
        return ["bars"]
    return []
