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
    plt = require_matplotlib()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
    grid = np.linspace(0.01, 1, 200)
    for h in (0.2, 0.4, 0.6, 0.8):
        # the iso-hmean line H: precision as a function of recall
        iso_r = grid[grid > h / 2 + 1e-9]
        iso_p = h * iso_r / (2 * iso_r - h)
        ok = (iso_p > 0) & (iso_p <= 1)
        ax.plot(iso_r[ok], iso_p[ok], color="#cccccc", lw=0.8, zorder=0)
        ax.annotate(f"H={h}", (iso_r[ok][-1], iso_p[ok][-1]), fontsize=7, color="#999999")
    ax.plot(
        curve.recall,
        curve.precision,
        "-o",
        ms=3,
        color=LINE_COLOURS["precision"],
        label="score >= t (re-scored by the protocol)",
    )
    for t, r, p in zip(curve.thresholds, curve.recall, curve.precision):
        if round(t * 100) % 20 == 0:
            ax.annotate(f"{t:.1f}", (r, p), textcoords="offset points", xytext=(4, 3), fontsize=7)
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
    return _png(fig)


def threshold_png(curve: Curve, sweep_best: tuple[float, float, float] | None = None) -> bytes:
    """Precision, recall and hmean against the score threshold."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
    for name in ("precision", "recall", "hmean"):
        ax.plot(
            curve.thresholds, getattr(curve, name), "-o", ms=3, color=LINE_COLOURS[name], label=name
        )
    if sweep_best is not None:
        ax.axvline(
            sweep_best[2],
            color=SWEEP_COLOUR,
            ls="--",
            lw=1,
            label=f"best-threshold sweep t={sweep_best[2]:g} (not official)",
        )
    ax.set_xlim(-0.02, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("score threshold t (detections with score < t dropped)")
    ax.set_ylabel("figure")
    ax.set_title("threshold sweep (t = 0: the official figure)")
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
