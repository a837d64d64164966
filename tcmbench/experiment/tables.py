"""The experiment report's markdown: the cells table and, for a curve, Fig. 5 as a table.

``results.md`` states what the run is before any figure (the header lines
of :mod:`tcmbench.experiment.shaping`), marks figures scored with another
protocol than the dataset's official one (†) and edited records, and shows
pending cells as pending. Cells that differ only in their seed (repeats)
are also summarised as mean ± sample std with their n; the figures are
embedded as PNG with links to their SVG and PDF forms. Every path in it is
relative to the report's folder.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tcmbench.experiment.results import METRICS, Cell, DatasetResult, Experiment, as_list
from tcmbench.experiment.shaping import (
    EDITED_MARK,
    EDITED_NOTE,
    METRIC_SHORT,
    OFFICIAL_COLUMN,
    PAPERS_COLUMN,
    SPREAD_NOTE,
    SWEEP_NOTE,
    TINY_LABEL,
    DatasetInfo,
    Spread,
    are_repeats,
    curve_points,
    dataset_infos,
    group_label,
    header_lines,
    paper_value_for,
    pct,
    plain,
    repeat_groups,
    row_label,
    seeds_text,
    series_keys,
    series_label,
    x_text,
    x_value,
)

#: Under the figures when some cells repeat seeds: what the error bars are.
FIGURE_CAPTION = (
    "Error bars: the mean of cells that differ only in their seed ± 1 sample standard "
    "deviation (n - 1); n is in the legend (curve) or under the bar's label (bars); each "
    "seed's figure is a dot. A cell run once has no error bar."
)


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
    keys = [str(k) for k in as_list(exp.spec.get("rows"))] or ["label"]
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


def curve_table(exp: Experiment, column: str, metric: str) -> list[str]:
    """Rows = series (and the paper's figures per series, where the grid
    gives them), columns = the x values: Fig. 5 as a table. Several cells
    at one point are all shown, separated by " / "; when they differ only
    in seed, after their mean ± sample std and n: ``40.0 ± 7.1 (n=2: 35.0 / 45.0)``."""
    x_key = str(exp.spec["x"])
    points = curve_points(exp, column, metric)
    xs = sorted({x for pts in points.values() for x, _, _ in pts})
    head = [", ".join(series_keys(exp)) or "series"] + [x_text(x, x_key) for x in xs]
    rows = []
    for name, pts in points.items():
        measured, paper = [name], [f"{name} (paper)"]
        for x in xs:
            here = [(cell, value) for px, cell, value in pts if px == x]
            each = " / ".join(
                (pct(value) + (f" [{EDITED_MARK}]" if cell.edited else ""))
                if cell.done and value is not None
                else cell.status
                for cell, value in here
            )
            done = [(c, v) for c, v in here if c.done and v is not None]
            if are_repeats([c for c, _ in done]):
                spread = Spread(tuple(v for _, v in done))
                each = f"{spread.text()} (n={spread.n}: {each})"
            measured.append(each)
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


def repeats_table(exp: Experiment) -> list[str]:
    """Rows = groups of repeats (cells that differ only in seed), columns =
    n, the seeds, then P / R / F per test set as mean ± sample std over the
    seeds with a figure; [] when no cell is repeated."""
    groups = [g for g in repeat_groups(exp.cells) if len(g) > 1]
    if not groups:
        return []
    infos = dataset_infos(exp)
    keys = [str(k) for k in as_list(exp.spec.get("rows"))] or ["label"]
    multi = len(infos) > 1
    head = ["cell", "n", "seeds"]
    for info in infos:
        prefix = f"{info.column} " if multi else ""
        head += [f"{prefix}{METRIC_SHORT[m]}" for m in METRICS]
    rows = []
    for group in groups:
        label = group_label(group, [row_label(c, keys) for c in group])
        if exp.kind == "curve":
            x_key = str(exp.spec["x"])
            x = x_value(group[0], x_key)
            label = group_label(group, [series_label(c, series_keys(exp)) for c in group]) + (
                f", {x_text(x, x_key)}" if x is not None else ""
            )
        if any(c.edited for c in group):
            label += f" [{EDITED_MARK}]"
        done = [c for c in group if c.done]
        n = f"{len(done)}" + (
            f" ({len(group) - len(done)} not done)" if len(done) < len(group) else ""
        )
        row = [label, n, seeds_text(group)]
        for info in infos:
            results = [r for c in done if (r := c.result(info.column)) is not None]
            flag = " †" if any(r.protocol in info.unofficial for r in results) else ""
            for m in METRICS:
                spread = Spread(tuple(v for r in results if (v := r.metric(m)) is not None))
                text = spread.text()
                if text and spread.n < len(done):
                    text += f" (n={spread.n})"
                row.append(text + flag if text else "")
        rows.append(row)
    return _md_table(head, rows)


def figure_lines(figures: Sequence[str]) -> list[str]:
    """Each figure once: the PNG embedded (the SVG where no PNG was written)
    and links to its vector forms, for a paper."""
    by_stem: dict[str, dict[str, str]] = {}
    for name in figures:
        path = PurePosixPath(name)
        by_stem.setdefault(path.stem, {})[path.suffix.lstrip(".")] = name
    lines = []
    for stem, files in by_stem.items():
        shown = files.get("png") or files.get("svg")
        if shown:
            lines += [f"![{stem}]({shown})", ""]
        vector = [f"[{fmt.upper()}]({files[fmt]})" for fmt in ("svg", "pdf") if fmt in files]
        if vector:
            lines += [f"{stem}, vector forms for a paper: " + " · ".join(vector), ""]
    return lines


def unplaced_pending(exp: Experiment) -> list[Cell]:
    """Pending cells a curve cannot place (their id names no x value)."""
    if exp.kind != "curve":
        return []
    x_key = str(exp.spec["x"])
    return [c for c in exp.cells if not c.done and x_value(c, x_key) is None]


def render_markdown(
    exp: Experiment,
    metric: str,
    figures: Sequence[str] = (),
    report_dir: str | Path | None = None,
) -> str:
    """``results.md``; ``figures`` are the plot files written beside it and
    paths are relative to ``report_dir`` (default ``DIR/report``)."""
    lines = [f"# {exp.title}", ""]
    if exp.tiny:
        lines += [f"**{TINY_LABEL}**", ""]
    lines += [f"- {line}" for line in header_lines(exp, metric, report_dir)]
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
    repeats = repeats_table(exp)
    if repeats:
        lines += ["## Repeated seeds (mean ± sample std)", "", SPREAD_NOTE, "", *repeats, ""]
    if figures:
        lines += ["## Figures", ""]
        if repeats:
            lines += [FIGURE_CAPTION, ""]
        lines += figure_lines(figures)
    if exp.paper_values:
        note = " (for the full run: this tiny run is not comparable)" if exp.tiny else ""
        lines += [f"## Published figures the grid compares against{note}", ""]
        for pv in exp.paper_values:
            figs = ", ".join(f"{METRIC_SHORT[m]} {pct(v)}" for m, v in pv.values.items())
            match = ", ".join(f"{k}={plain(v)}" for k, v in pv.match.items()) or "every cell"
            lines.append(f"- {pv.dataset}, {match}: {figs} ({pv.source})")
        lines.append("")
    lines.append(
        f"Generated by `tcmbench experiment report` on "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}."
    )
    return "\n".join(lines) + "\n"
