"""Threshold labels on the report's precision-recall plot that never collide.

Why: points of a threshold sweep often coincide. A model never outputs a
detection below its own box threshold, so every threshold up to it gives
the same precision and recall (13 of 20 points for PP-OCRv3 when a sweep
starts at 0); near the high end a few detections more or less barely move
the point. Labelled one by one at a fixed offset, "0.0", "0.2", "0.4" and
"0.6" were printed on top of each other, and on the official star.

Two steps, both in display (pixel) space, after the figure's layout is
final:

1. :func:`group_points`: consecutive points closer than a few pixels form
   one group, labelled once with its threshold range ("0.0-0.6"). A group
   is labelled when it holds a round threshold (a multiple of the label
   step, chosen from the sweep's span) or starts the sweep.
2. :func:`place_annotations`: each label tries offsets around its point
   (right-above first, then the other sides, then farther out) and takes
   the first whose text box stays inside the axes and overlaps no label
   placed before it and none of the obstacles (the iso-hmean labels, the
   official and best-sweep markers). Overlapping a curve marker is avoided
   when possible. A label with no free place is left out: a missing label
   is better than two unreadable ones, and the points stay drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LABEL_GID = "threshold-label"  # so tests (and readers of the figure) find them
MERGE_PX = 4.0  # points closer than this on screen are one group
PAD_PX = 1.5  # clearance kept around every label's text box
# (dx, dy) offsets in points, as unit directions scaled by the rings below;
# right-above first (the old fixed place), then the other diagonals and sides.
_DIRECTIONS: tuple[tuple[float, float, str, str], ...] = (
    (1, 0.6, "left", "bottom"),
    (1, -0.6, "left", "top"),
    (-1, 0.6, "right", "bottom"),
    (-1, -0.6, "right", "top"),
    (1.2, 0, "left", "center"),
    (-1.2, 0, "right", "center"),
    (0, 1.2, "center", "bottom"),
    (0, -1.2, "center", "top"),
)
_RINGS_PT = (4.0, 9.0, 15.0)


@dataclass(frozen=True)
class PointLabel:
    """One label: its text and the data point it belongs to."""

    text: str
    x: float
    y: float


def format_threshold(t: float) -> str:
    """0.6 -> "0.6", 0.625 -> "0.625", 0 -> "0.0": as many decimals as needed."""
    s = f"{t:.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def label_step(thresholds: Sequence[float]) -> float:
    """The spacing of labelled thresholds: about four to six labels."""
    span = max(thresholds) - min(thresholds) if thresholds else 1.0
    return 0.2 if span > 0.5 else 0.1 if span > 0.2 else 0.05


def group_points(
    thresholds: Sequence[float],
    xs: Sequence[float],
    ys: Sequence[float],
    to_display: Callable[[np.ndarray], np.ndarray],
    merge_px: float = MERGE_PX,
) -> list[PointLabel]:
    """The labels of a sweep's points (see the module doc, step 1).

    ``to_display`` maps (N, 2) data points to pixels (``ax.transData.transform``).
    """
    if not thresholds:
        return []
    step = label_step(thresholds)
    pix = to_display(np.column_stack([xs, ys]).astype(np.float64))
    groups: list[list[int]] = [[0]]
    for i in range(1, len(thresholds)):
        if np.hypot(*(pix[i] - pix[groups[-1][0]])) <= merge_px:
            groups[-1].append(i)
        else:
            groups.append([i])
    out = []
    for n, g in enumerate(groups):
        ts = [thresholds[i] for i in g]
        if n and not any(abs(t / step - round(t / step)) < 1e-6 for t in ts):
            continue
        lo, hi = min(ts), max(ts)
        text = (
            format_threshold(lo)
            if len(g) == 1
            else f"{format_threshold(lo)}-{format_threshold(hi)}"
        )
        out.append(PointLabel(text, float(xs[g[0]]), float(ys[g[0]])))
    return out


def marker_box(ax: Any, x: float, y: float, size_pt: float) -> Any:
    """The display-space box a marker of ``size_pt`` points covers at (x, y)."""
    from matplotlib.transforms import Bbox

    px, py = ax.transData.transform((x, y))
    half = size_pt * ax.figure.dpi / 72 / 2
    return Bbox.from_extents(px - half, py - half, px + half, py + half)


def place_annotations(
    ax: Any,
    labels: Sequence[PointLabel],
    *,
    obstacles: Sequence[Any] = (),
    soft: Sequence[Any] = (),
    fontsize: float = 7,
) -> list[Any]:
    """Annotate ``ax`` with ``labels`` where they collide with nothing (see
    the module doc, step 2); the annotations placed, in order.

    ``obstacles`` and ``soft`` are display-space Bboxes; a label never
    overlaps an obstacle and avoids a soft one (a curve marker) when it can.
    The figure's layout must be final (its size and the axes' position).
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    boxes: list[Any] = []
    for label in labels:
        chosen = None
        for avoid_soft in (True, False):
            for r in _RINGS_PT:
                for dx, dy, ha, va in _DIRECTIONS:
                    ann = ax.annotate(
                        label.text,
                        (label.x, label.y),
                        textcoords="offset points",
                        xytext=(dx * r, dy * r),
                        ha=ha,
                        va=va,
                        fontsize=fontsize,
                        gid=LABEL_GID,
                        annotation_clip=False,
                    )
                    box = ann.get_window_extent(renderer).padded(PAD_PX)
                    hard = [*boxes, *obstacles]
                    ok = _within(box, frame) and not any(box.overlaps(b) for b in hard)
                    if ok and avoid_soft:
                        ok = not any(box.overlaps(b) for b in soft)
                    if ok:
                        chosen = (ann, box)
                        break
                    ann.remove()
                if chosen:
                    break
            if chosen:
                break
        if chosen is None:
            log.debug("no free place for threshold label %s: left out", label.text)
            continue
        placed.append(chosen[0])
        boxes.append(chosen[1])
    return placed


def _within(box: Any, frame: Any) -> bool:
    return bool(
        box.x0 >= frame.x0 and box.y0 >= frame.y0 and box.x1 <= frame.x1 and box.y1 <= frame.y1
    )
