"""The experiment report's figures: the few-shot curve (TCM paper Fig. 5)
and the ablation bars (Table 6), drawn with matplotlib into PNG bytes.

matplotlib is optional (the ``experiment`` / ``report`` extras): it is
imported here on first use, on the Agg backend (no display). Every figure
carries the same facts as the markdown (grid, paper figure, tiny or full,
protocol, test images, steps, versions) in its title and footer, so a PNG
copied out of its folder still says what it is.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment.results import Experiment
from tcmbench.experiment.shaping import (
    EDITED_MARK,
    METRIC_SHORT,
    TINY_LABEL,
    curve_points,
    dataset_infos,
    figure_names,
    header_lines,
    is_percent_axis,
    paper_value_for,
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


def _figure(exp: Experiment, metric: str, subject: str) -> tuple[Any, Any]:
    """A figure with the title block (what it is) and a footer panel (how
    it was measured) laid out by matplotlib's constrained layout, so long
    tick labels never run into the footer; returns (figure, axes)."""
    plt = _pyplot()
    footer = [
        line
        for line in header_lines(exp, metric)
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


def _png(fig: Any) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _top(values: list[float]) -> float:
    """The y axis' top: headroom above the largest figure; a run whose
    figures are all near 0 keeps a readable 0-10 % axis."""
    return min(100.0, max(10.0, max(values, default=0.0) * 1.15 + 2.0))


def _y_limits(ax: Any, values: list[float]) -> None:
    """0 at the bottom, as the paper's axes."""
    top = _top(values)
    ax.set_ylim(-0.02 * top, top)


def curve_png(exp: Experiment, column: str, metric: str) -> bytes:
    """Metric (%) against x, one line per series, for one test set."""
    x_key = str(exp.spec["x"])
    points = curve_points(exp, column, metric)
    fig, ax = _figure(exp, metric, f"test set: {column}")
    values: list[float] = []
    xs_all: set[float] = set()
    last_x = max((x for pts in points.values() for x, _, _ in pts), default=None)
    for i, (name, pts) in enumerate(points.items()):
        colour, marker = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
        done = [(x, 100.0 * v) for x, cell, v in pts if cell.done and v is not None]
        xs_all.update(x for x, _, _ in pts)
        if done:
            # Several cells at one x (seeds): the line joins their means and
            # every value is drawn as a small dot.
            at_x: dict[float, list[float]] = {}
            for x, v in done:
                at_x.setdefault(x, []).append(v)
            line = [(x, sum(vs) / len(vs)) for x, vs in sorted(at_x.items())]
            ax.plot(*zip(*line), marker=marker, color=colour, lw=2, ms=7, label=name)
            if any(len(vs) > 1 for vs in at_x.values()):
                ax.plot(*zip(*done), ls="none", marker=".", color=colour, ms=5)
            values += [v for _, v in done]
            edited = [(x, 100.0 * v) for x, cell, v in pts if cell.edited and v is not None]
            if edited:
                ax.plot(*zip(*edited), ls="none", marker="x", color=EDITED_COLOUR, ms=14, mew=3,
                        label=f"{name}: {EDITED_MARK} record (not the run's figure)")  # fmt: skip
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
    return _png(fig)


def bars_png(exp: Experiment, metric: str) -> bytes:
    """The metric (%) per cell label, one bar per test set, the paper's
    figure as a black tick where the grid gives one."""
    infos = dataset_infos(exp)
    names = ", ".join(info.column for info in infos) or "not known yet"
    fig, ax = _figure(exp, metric, f"test set{'s' if len(infos) > 1 else ''}: {names}")
    n = max(1, len(infos))
    width = 0.8 / n
    values: list[float] = []
    labels = [c.label + (f"\n[{EDITED_MARK}]" if c.edited else "") for c in exp.cells]
    paper_labelled = False
    labelled: set[str] = set()
    top = _top(
        [
            100.0 * v
            for c in exp.cells
            for r in c.results
            for v in [r.metric(metric)]
            if v is not None
        ]
        + [100.0 * v for pv in exp.paper_values for k, v in pv.values.items() if k == metric]
    )
    for j, info in enumerate(infos):
        colour = COLOURS[j % len(COLOURS)]
        offset = (j - (n - 1) / 2) * width
        for i, cell in enumerate(exp.cells):
            x = i + offset
            if not cell.tested_on(info.column):
                continue
            res = cell.result(info.column) if cell.done else None
            value = res.metric(metric) if res is not None else None
            if value is None:
                ax.text(
                    x, 0.5, cell.status, rotation=90, ha="center", va="bottom",
                    fontsize=8, color="#777777",
                )  # fmt: skip
            else:
                v = 100.0 * value
                values.append(v)
                inside = v >= 0.12 * top
                label = info.column if n > 1 and info.column not in labelled else None
                labelled.add(info.column)
                ax.bar(x, v, width * 0.92, color=colour, label=label,
                       hatch="xx" if cell.edited else None,
                       edgecolor=EDITED_COLOUR if cell.edited else None)  # fmt: skip
                # Inside the bar's top when it is tall enough: the paper's tick
                # above the bar then never covers the figure.
                ax.annotate(
                    f"{v:.1f}", (x, v), xytext=(0, -3 if inside else 2),
                    textcoords="offset points", ha="center", va="top" if inside else "bottom",
                    fontsize=8, color="white" if inside else "black",
                )  # fmt: skip
            pv = paper_value_for(exp, cell, info.column)
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
    if n > 1 or paper_labelled:
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
    return _png(fig)


def draw(exp: Experiment, metric: str) -> dict[str, bytes]:
    """File name -> PNG bytes for every figure of this experiment's kind."""
    names = figure_names(exp)
    _pyplot()
    import matplotlib

    # Labels and titles come from the grid: a "$" must not start TeX math
    # (an unbalanced one would stop the report with a parse error).
    with matplotlib.rc_context({"text.parse_math": False}):
        if exp.kind == "curve":
            return {
                name: curve_png(exp, column, metric) for name, column in zip(names, exp.columns())
            }
        if exp.kind == "bars":
            return {names[0]: bars_png(exp, metric)}
    return {}
