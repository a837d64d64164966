"""The experiment report's figures: the few-shot curve (TCM paper Fig. 5)
and the ablation bars (Table 6), drawn with matplotlib into PNG, SVG and
PDF bytes (the vector forms for a paper).

matplotlib is optional (the ``experiment`` / ``report`` extras): it is
imported here on first use, on the Agg backend (no display). Every figure
carries the same facts as the markdown (grid, paper figure, tiny or full,
protocol, test images, steps, versions) in its title and footer, so a file
copied out of its folder still says what it is; paths in the footer are
relative to the report's folder. Cells that differ only in their seed are
drawn as their mean with a ± 1 sample-std error bar, each seed a dot.

The files are byte-identical when the report is written again from the
same records: no dates in the metadata, a fixed SVG id salt.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment.results import Cell, Experiment
from tcmbench.experiment.shaping import (
    EDITED_MARK,
    METRIC_SHORT,
    TINY_LABEL,
    Spread,
    are_repeats,
    curve_points,
    dataset_infos,
    figure_stems,
    group_label,
    header_lines,
    is_percent_axis,
    paper_value_for,
    repeat_groups,
    x_text,
)

MISSING = (
    "the experiment report draws its plots with matplotlib, which is not installed: "
    "pip install 'tcmbench[experiment]'"
)
# Output size in pixels (inches x DPI); the layout below is tuned for it.
FIG_INCHES = (9.0, 6.0)
DPI = 100
FIGURE_PIXELS = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))
# Colour-blind safe (Okabe-Ito), in series order; markers differ too.
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
TINY_COLOUR = "#b00000"
#: The cross drawn over a figure whose record was edited after the run.
EDITED_COLOUR = "#ff0000"
#: The formats each figure is written in, in this order.
PLOT_FORMATS = ("png", "svg", "pdf")
#: Settings that make reruns byte-identical and the vector files fit for a
#: paper: no dates in the metadata, a fixed salt for the SVG's ids, fonts
#: embedded as TrueType (Type 3 fonts are refused by some publishers), text
#: in the SVG as paths (it looks the same without the fonts installed), and
#: a "$" in a label never starting TeX math (an unbalanced one would stop
#: the report with a parse error).
RC = {
    "text.parse_math": False,
    "svg.hashsalt": "tcmbench-experiment-report",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}
#: How far apart (points) the error bars of two series at one x are drawn.
DODGE_POINTS = 4.0
#: How the error bars are named in the legends (the markdown says it in full).
ERRORBAR_LEGEND = "error bar: ± 1 sample std over the seeds; dots: each seed"


class MatplotlibMissing(TcmbenchError):
    """matplotlib is not installed: the tables are written, the plots not."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MatplotlibMissing(MISSING) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _figure(
    exp: Experiment, metric: str, subject: str, report_dir: str | Path | None
) -> tuple[Any, Any]:
    """A figure with the title block (what it is) and a footer panel (how
    it was measured) laid out by matplotlib's constrained layout, so long
    tick labels never run into the footer; returns (figure, axes)."""
    plt = _pyplot()
    footer = [
        line
        for line in header_lines(exp, metric, report_dir)
        if not line.startswith(("Reproduces:", "Run:", "Metric:"))
    ]
    wrapped = "\n".join(textwrap.fill(line, 140, subsequent_indent="    ") for line in footer)
    footer_inches = 0.14 * (wrapped.count("\n") + 1) + 0.05
    fig = plt.figure(figsize=FIG_INCHES, dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(
        2, 1, height_ratios=[FIG_INCHES[1] - 1.0 - footer_inches, footer_inches]
    )
    ax = fig.add_subplot(grid[0])
    foot = fig.add_subplot(grid[1])
    foot.axis("off")
    foot.text(0.0, 1.0, wrapped, ha="left", va="top", fontsize=7, color="#444444",
              transform=foot.transAxes)  # fmt: skip
    paper = exp.paper or "(no paper figure named)"
    title = textwrap.fill(exp.title, 95)  # a long title wraps instead of running off the figure
    fig.suptitle(f"{title}\n{subject}  ·  reproduces {paper}", fontsize=11.5)
    run = TINY_LABEL if exp.tiny else "full run"
    ax.set_title(
        run,
        fontsize=9.5,
        color=TINY_COLOUR if exp.tiny else "#333333",
        weight="bold" if exp.tiny else "normal",
    )
    return fig, ax


def save(fig: Any, formats: Sequence[str] = PLOT_FORMATS) -> dict[str, bytes]:
    """The figure in each format (extension -> bytes), then closed. Call it
    inside :func:`settings` (the rc settings apply when saving)."""
    plt = _pyplot()
    out = {}
    try:
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=METADATA[fmt])
            out[fmt] = buf.getvalue()
    finally:
        plt.close(fig)
    return out


def settings() -> Any:
    """The rc context every figure is drawn and saved in (:data:`RC`)."""
    _pyplot()
    import matplotlib

    rc: Any = RC  # plain keys; matplotlib's stubs want its literal names
    return matplotlib.rc_context(rc)


def _by_x(pts: Sequence[tuple[float, Cell, float]]) -> dict[float, list[tuple[Cell, float]]]:
    at_x: dict[float, list[tuple[Cell, float]]] = {}
    for x, cell, v in pts:
        at_x.setdefault(x, []).append((cell, v))
    return dict(sorted(at_x.items()))


def _n_text(counts: Sequence[int]) -> str:
    lo, hi = min(counts), max(counts)
    return f"n={lo}" if lo == hi else f"n={lo}-{hi}"


def _top(values: list[float]) -> float:
    """The y axis' top: headroom above the largest figure; a run whose
    figures are all near 0 keeps a readable 0-10 % axis."""
    return min(100.0, max(10.0, max(values, default=0.0) * 1.15 + 2.0))


def _y_limits(ax: Any, values: list[float]) -> None:
    """0 at the bottom, as the paper's axes."""
    top = _top(values)
    ax.set_ylim(-0.02 * top, top)


def curve_figure(
    exp: Experiment, column: str, metric: str, report_dir: str | Path | None = None
) -> Any:
    """Metric (%) against x, one line per series, for one test set; where
    the cells at a point are repeats (they differ only in seed) the line
    goes through their mean and an error bar shows ± 1 sample std. Returns
    the matplotlib figure (:func:`save` writes it)."""
    x_key = str(exp.spec["x"])
    points = curve_points(exp, column, metric)
    fig, ax = _figure(exp, metric, f"test set: {column}", report_dir)
    values: list[float] = []
    xs_all: set[float] = set()
    last_x = max((x for pts in points.values() for x, _, _ in pts), default=None)
    from matplotlib.transforms import offset_copy

    for i, (name, pts) in enumerate(points.items()):
        colour, marker = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
        done = [(x, cell, 100.0 * v) for x, cell, v in pts if cell.done and v is not None]
        # The series' error bars and seed dots a few points aside of the
        # others' (the data stay where they are): overlapping bars of two
        # series at one x stay apart.
        dodge = (i - (len(points) - 1) / 2) * DODGE_POINTS
        aside = offset_copy(ax.transData, fig=fig, x=dodge, y=0.0, units="points")
        xs_all.update(x for x, _, _ in pts)
        if done:
            # Several cells at one x: the line joins their means and every
            # value is drawn as a small dot; repeats (seeds) get an error bar.
            at_x = _by_x(done)
            line = [(x, sum(v for _, v in here) / len(here)) for x, here in at_x.items()]
            bars = [
                (x, Spread(tuple(v for _, v in here)))
                for x, here in at_x.items()
                if are_repeats([c for c, _ in here])
            ]
            label = name
            if bars:
                label += f" (mean of {_n_text([s.n for _, s in bars])} seeds ± 1 sample std)"
            ax.plot(*zip(*line), marker=marker, color=colour, lw=2, ms=7, label=label)
            if bars:
                ax.errorbar(
                    [x for x, _ in bars], [s.mean for _, s in bars], yerr=[s.std for _, s in bars],
                    fmt="none", ecolor=colour, elinewidth=1.5, capsize=5, capthick=1.5, zorder=3,
                    transform=aside,
                )  # fmt: skip
                values += [s.mean + s.std for _, s in bars]
            dots = [(x, v) for x, _, v in done if len(at_x[x]) > 1]
            if dots:
                ax.plot(*zip(*dots), ls="none", marker=".", color=colour, ms=5,
                        transform=aside)  # fmt: skip
            values += [v for _, _, v in done]
            edited = [(x, v) for x, cell, v in done if cell.edited]
            marked = False
            for at in (ax.transData, aside):  # on the line's point / on a seed's dot
                crosses = [(x, v) for x, v in edited if (len(at_x[x]) > 1) == (at is aside)]
                if crosses:
                    ax.plot(*zip(*crosses), ls="none", marker="x", color=EDITED_COLOUR,
                            ms=14, mew=3, transform=at,
                            label=None if marked else
                            f"{name}: {EDITED_MARK} record (not the run's figure)")  # fmt: skip
                    marked = True
        pending = [(x, cell.status) for x, cell, _ in pts if not cell.done]
        if pending:
            # On the x axis (axes coordinates in y), never at a value of 0.
            along = ax.get_xaxis_transform()
            level = 0.04 + 0.055 * i
            ax.plot(
                [x for x, _ in pending],
                [level] * len(pending),
                ls="none",
                marker=marker,
                mfc="none",
                color=colour,
                ms=9,
                transform=along,
                label=f"{name}: not finished (no figure yet)",
            )
            for x, status in pending:
                left = x == last_x  # the rightmost point: the word on its left
                ax.annotate(status, (x, level), xycoords=along, xytext=(-7 if left else 7, 0),
                            textcoords="offset points", color=colour, fontsize=7.5,
                            va="center", ha="right" if left else "left")  # fmt: skip
        paper = []
        for x, cell, _ in pts:
            pv = paper_value_for(exp, cell, column)
            if pv is not None and metric in pv.values:
                paper.append((x, 100.0 * pv.values[metric]))
        if paper:
            ax.plot(
                *zip(*paper),
                ls=":",
                marker=marker,
                mfc="none",
                color=colour,
                label=f"{name} (paper)",
            )
            values += [v for _, v in paper]
    xs = sorted(xs_all)
    if xs:
        positive = [x for x in xs if x > 0]
        if positive and max(xs) / min(positive) >= 20:
            # Ratios such as 0, 1, 10, 100 %: a linear axis would crush the small ones.
            ax.set_xscale("symlog", linthresh=min(positive), linscale=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels([x_text(x, x_key) for x in xs])
        ax.minorticks_off()
        span = max(xs) - min(xs) or 1.0
        if ax.get_xscale() == "linear":
            ax.set_xlim(min(xs) - 0.04 * span, max(xs) + 0.04 * span)
    if is_percent_axis(x_key):
        ax.set_xlabel(f"training data used (% of the training set; {x_key})")
    else:
        ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel(f"{metric} {METRIC_SHORT[metric]} (%) on {column}")
    _y_limits(ax, values)
    ax.grid(True, color="#dddddd", lw=0.8)
    if points:
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
    else:
        ax.text(0.5, 0.5, "no cell has a value for x yet", ha="center", transform=ax.transAxes)
    return fig


def _bar_value(cells: Sequence[Cell], column: str, metric: str) -> Spread:
    """The figures (%) of a bar's finished cells on one test set."""
    values = []
    for cell in cells:
        res = cell.result(column) if cell.done else None
        value = res.metric(metric) if res is not None else None
        if value is not None:
            values.append(100.0 * value)
    return Spread(tuple(values))


def bars_figure(exp: Experiment, metric: str, report_dir: str | Path | None = None) -> Any:
    """The metric (%) per cell label, one bar per test set, the paper's
    figure as a black tick where the grid gives one. Repeats (cells that
    differ only in seed) share one bar: their mean, an error bar of ± 1
    sample std, each seed a dot, and the number of seeds under the label.
    Returns the matplotlib figure (:func:`save` writes it)."""
    infos = dataset_infos(exp)
    names = ", ".join(info.column for info in infos) or "not known yet"
    fig, ax = _figure(exp, metric, f"test set{'s' if len(infos) > 1 else ''}: {names}", report_dir)
    n = max(1, len(infos))
    width = 0.8 / n
    values: list[float] = []
    groups = repeat_groups(exp.cells)
    labels = []
    for group in groups:
        label = group_label(group, [c.label for c in group])
        if len(group) > 1:
            label += f"\n({len(group)} seeds)"
        if any(c.edited for c in group):
            label += f"\n[{EDITED_MARK}]"
        labels.append(label)
    paper_labelled = spread_labelled = False
    labelled: set[str] = set()
    spreads = {
        (g, info.column): _bar_value(group, info.column, metric)
        for g, group in enumerate(groups)
        for info in infos
    }
    top = _top(
        [v for s in spreads.values() for v in s.values]
        + [s.mean + s.std for s in spreads.values() if s.n > 1]
        + [100.0 * v for pv in exp.paper_values for k, v in pv.values.items() if k == metric]
    )
    for j, info in enumerate(infos):
        colour = COLOURS[j % len(COLOURS)]
        offset = (j - (n - 1) / 2) * width
        for g, group in enumerate(groups):
            x = g + offset
            tested = [c for c in group if c.tested_on(info.column)]
            if not tested:
                continue
            spread = spreads[(g, info.column)]
            if not spread.n:
                status = next((c.status for c in tested if not c.done), tested[0].status)
                ax.text(
                    x, 0.5, status, rotation=90, ha="center", va="bottom",
                    fontsize=8, color="#777777",
                )  # fmt: skip
            else:
                v = spread.mean
                values += list(spread.values)
                edited = any(c.edited for c in tested)
                legend = info.column if n > 1 and info.column not in labelled else None
                labelled.add(info.column)
                ax.bar(x, v, width * 0.92, color=colour, label=legend,
                       hatch="xx" if edited else None,
                       edgecolor=EDITED_COLOUR if edited else None)  # fmt: skip
                if spread.n > 1:
                    ax.errorbar(
                        [x], [v], yerr=[spread.std], fmt="none", ecolor="black", elinewidth=1.3,
                        capsize=5, capthick=1.3, zorder=3,
                        label=None if spread_labelled else ERRORBAR_LEGEND,
                    )  # fmt: skip
                    ax.plot([x] * spread.n, list(spread.values), ls="none", marker=".",
                            color="black", ms=5, zorder=4)  # fmt: skip
                    spread_labelled = True
                    values.append(v + spread.std)
                    # Above the error bar: "mean ± std" does not fit inside.
                    ax.annotate(
                        f"{v:.1f} ± {spread.std:.1f}", (x, v + spread.std), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7.5,
                    )  # fmt: skip
                else:
                    # Inside the bar's top when it is tall enough: the paper's
                    # tick above the bar then never covers the figure.
                    inside = v >= 0.12 * top
                    ax.annotate(
                        f"{v:.1f}", (x, v), xytext=(0, -3 if inside else 2),
                        textcoords="offset points", ha="center",
                        va="top" if inside else "bottom",
                        fontsize=8, color="white" if inside else "black",
                    )  # fmt: skip
            pv = next(
                (p for c in tested if (p := paper_value_for(exp, c, info.column)) is not None),
                None,
            )
            if pv is not None and metric in pv.values:
                pvalue = 100.0 * pv.values[metric]
                values.append(pvalue)
                ax.plot(
                    [x - width * 0.46, x + width * 0.46], [pvalue, pvalue], color="black", lw=2.5,
                    label=None if paper_labelled else "paper",
                )  # fmt: skip
                paper_labelled = True
    ax.set_xticks(range(len(labels)))
    long_labels = sum(len(s) for s in labels) > 70
    ax.set_xticklabels(
        labels, rotation=25 if long_labels else 0, ha="right" if long_labels else "center"
    )
    ax.set_xlim(-0.6, len(labels) - 0.4)
    test_sets = ", ".join(info.column for info in infos) or "no test set yet"
    ax.set_ylabel(
        f"{metric} {METRIC_SHORT[metric]} (%) on {test_sets}" if n == 1 else f"{metric} (%)"
    )
    _y_limits(ax, values)
    ax.grid(True, axis="y", color="#dddddd", lw=0.8)
    if n > 1 or paper_labelled or spread_labelled:
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
    return fig


def draw(
    exp: Experiment,
    metric: str,
    formats: Sequence[str] = PLOT_FORMATS,
    report_dir: str | Path | None = None,
) -> dict[str, bytes]:
    """File name -> bytes for every figure of this experiment's kind, in
    each of ``formats`` (png, svg, pdf); paths in the footers are relative
    to ``report_dir`` (default ``DIR/report``)."""
    stems = figure_stems(exp)
    bad = [f for f in formats if f not in PLOT_FORMATS]
    if bad:
        raise ValueError(f"plot formats {bad}: expected some of {', '.join(PLOT_FORMATS)}")
    out: dict[str, bytes] = {}
    with settings():
        figures: list[tuple[str, Any]] = []
        if exp.kind == "curve":
            figures = [
                (stem, lambda c=column: curve_figure(exp, c, metric, report_dir))
                for stem, column in zip(stems, exp.columns())
            ]
        elif exp.kind == "bars":
            figures = [(stems[0], lambda: bars_figure(exp, metric, report_dir))]
        for stem, make in figures:
            for fmt, data in save(make(), formats).items():
                out[f"{stem}.{fmt}"] = data
    return out
