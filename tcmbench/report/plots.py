"""The report's figures, drawn with matplotlib into PNG bytes.

matplotlib is an optional dependency (the ``report`` extra): only the
report needs it, and it is imported here, on demand, with the Agg backend
(no display, no GUI toolkit).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.report.breakdown import Breakdown
from tcmbench.report.curve import Curve

MISSING_MATPLOTLIB = (
    "the evaluation report draws its plots with matplotlib, which is not installed: "
    "pip install 'tcmbench[report]' (or pip install matplotlib)"
)
OFFICIAL_COLOUR = "#000000"
SWEEP_COLOUR = "#d55e00"
LINE_COLOURS = {"precision": "#0072b2", "recall": "#e69f00", "hmean": "#009e73"}


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a one-line error naming
    the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise TcmbenchError(MISSING_MATPLOTLIB) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = require_matplotlib()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def pr_curve_png(
    curve: Curve,
    official: tuple[float, float],
    sweep_best: tuple[float, float, float] | None = None,
) -> bytes:
    """Precision against recall along the threshold curve, with the official
    point (every detection) and the best-threshold sweep point marked.

    ``official`` is (precision, recall); ``sweep_best`` (precision, recall,
    threshold).
    """
    return _png(pr_curve_figure(curve, official, sweep_best))


def pr_curve_figure(
    curve: Curve,
    official: tuple[float, float],
    sweep_best: tuple[float, float, float] | None = None,
) -> Any:
    """The figure of :func:`pr_curve_png`, its layout final and its
    threshold labels placed (:mod:`tcmbench.report.plot_labels`)."""
    from tcmbench.report import plot_labels

    plt = require_matplotlib()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
    grid = np.linspace(0.01, 1, 200)
    iso_labels = []
    for h in (0.2, 0.4, 0.6, 0.8):
        # the iso-hmean line H: precision as a function of recall
        iso_r = grid[grid > h / 2 + 1e-9]
        iso_p = h * iso_r / (2 * iso_r - h)
        ok = (iso_p > 0) & (iso_p <= 1)
        ax.plot(iso_r[ok], iso_p[ok], color="#cccccc", lw=0.8, zorder=0)
        iso_labels.append(
            ax.annotate(f"H={h}", (iso_r[ok][-1], iso_p[ok][-1]), fontsize=7, color="#999999")
        )
    # A threshold above every score keeps no detection: its precision is
    # undefined (0 by the protocols' convention), not a point of the curve.
    kept = [i for i, n in enumerate(curve.detections) if n > 0]
    ts = [curve.thresholds[i] for i in kept]
    recall = [curve.recall[i] for i in kept]
    precision = [curve.precision[i] for i in kept]
    ax.plot(
        recall,
        precision,
        "-o",
        ms=3,
        color=LINE_COLOURS["precision"],
        label="score >= t (re-scored by the protocol)",
    )
    ax.plot(
        [official[1]],
        [official[0]],
        "*",
        ms=14,
        color=OFFICIAL_COLOUR,
        label="official figure (every detection)",
    )
    if sweep_best is not None:
        ax.plot(
            [sweep_best[1]],
            [sweep_best[0]],
            "D",
            ms=8,
            color=SWEEP_COLOUR,
            label=f"best-threshold sweep, t={sweep_best[2]:g} (not official)",
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall (labels: score threshold t)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    # Threshold labels are placed in pixels: lay the figure out first, then
    # freeze that layout so the labels' places stay true when it is saved.
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    markers = [plot_labels.marker_box(ax, official[1], official[0], 14)]
    if sweep_best is not None:
        markers.append(plot_labels.marker_box(ax, sweep_best[1], sweep_best[0], 8))
    points = plot_labels.group_points(ts, recall, precision, ax.transData.transform)
    plot_labels.place_annotations(
        ax,
        points,
        obstacles=[a.get_window_extent(renderer) for a in iso_labels] + markers,
        soft=[plot_labels.marker_box(ax, r, p, 4) for r, p in zip(recall, precision)],
    )
    return fig


def threshold_png(curve: Curve, sweep_best: tuple[float, float, float] | None = None) -> bytes:
    """Precision, recall and hmean against the score threshold."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
    for name in ("precision", "recall", "hmean"):
        ax.plot(
            curve.thresholds, getattr(curve, name), "-o", ms=3, color=LINE_COLOURS[name], label=name
        )
    start = curve.thresholds[0] if curve.thresholds else 0.0
    if curve.model_threshold is not None:  # the sweep starts at the model's own threshold
        ax.axvline(
            start,
            color=OFFICIAL_COLOUR,
            ls=":",
            lw=1.2,
            label=f"model's box threshold {start:g}: every detection (official)",
        )
    if sweep_best is not None:
        # below the start every threshold keeps every detection: drawn at the start
        below = sweep_best[2] < start
        ax.axvline(
            max(sweep_best[2], start),
            color=SWEEP_COLOUR,
            ls="--",
            lw=1,
            label=f"best-threshold sweep t={sweep_best[2]:g} (not official"
            + (f"; below {start:g}: every detection)" if below else ")"),
        )
    ax.set_xlim(start - 0.02, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("score threshold t (detections with score < t dropped)")
    ax.set_ylabel("figure")
    ax.set_title(f"threshold sweep (t = {start:g}: the official figure)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    return _png(fig)


def breakdown_png(parts: Sequence[Breakdown]) -> bytes:
    """One bar chart of recall per bin for each breakdown, GT counts on the bars."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(
        1, len(parts), figsize=(4.2 * len(parts), 3.6), squeeze=False, layout="constrained"
    )
    for ax, part in zip(axes[0], parts):
        labels = [b.label for b in part.bins]
        values = [b.recall or 0.0 for b in part.bins]
        bars = ax.bar(range(len(labels)), values, color=LINE_COLOURS["recall"])
        for bar, b in zip(bars, part.bins):
            text = f"n={b.gt}" if b.gt else "none"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("recall (matched / care GTs)")
        ax.set_title(f"recall by {part.name}")
    return _png(fig)
