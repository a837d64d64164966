"""Recall broken down by what the missed text looks like.

A single recall hides *which* text a detector fails on. Each care ground
truth is described by its minimum-area rectangle (``cv2.minAreaRect``):

* size: the rectangle's short side in pixels (the text height for a
  horizontal or rotated line; the character width for vertical text, which
  is what a detector's receptive field sees either way);
* orientation: the angle of the rectangle's long side to the horizontal,
  folded into [0, 90] degrees (a line rotated by +30 and one by -30 are both
  30 degrees off horizontal);
* curvature: a 4-point GT is a quadrilateral; a longer polygon is compared
  with its own minimum-area rectangle (IoU = polygon area / rectangle area,
  since the rectangle contains the polygon): close to 1 means a straight
  line drawn with many points, low means a curved one.

A breakdown whose care GTs all fall in one bin (curvature on a
quadrilateral-only dataset, orientation on horizontal text) says nothing
the overall recall does not: the report leaves it out and prints one line
saying which and why (:func:`left_out_reason`).

Recall per bin counts matched care GTs (any match kind) over care GTs in the
bin. It is a count, so the partial credits of DetEval's splits and merges
are not in it; the official recall is the one in the figures table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tcmbench.data.schema import Instance
from tcmbench.report.outcomes import FN, TP, ImageOutcome

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

# Bin edges (lower bound inclusive, upper exclusive; the last is open).
SIZE_EDGES_PX: tuple[float, ...] = (0, 8, 16, 32, 64, 128)
ANGLE_EDGES_DEG: tuple[float, ...] = (0, 5, 15, 30, 45, 60, 75)
# Polygon / min-area-rect IoU above which a many-point polygon counts as straight.
STRAIGHT_IOU = 0.85
CURVED_IOU = 0.6
CURVATURE_BINS: tuple[str, ...] = (
    "quadrilateral",
    "polygon, straight",
    "polygon, curved",
    "polygon, very curved",
)


@dataclass(frozen=True)
class Shape:
    """The measurements of one ground-truth polygon."""

    height: float  # short side of the min-area rectangle, pixels
    angle: float  # long side vs horizontal, degrees in [0, 90]
    points: int
    rect_iou: float  # polygon area / min-area-rectangle area, in [0, 1]


@dataclass
class Bin:
    label: str
    gt: int = 0
    matched: int = 0

    @property
    def recall(self) -> float | None:
        """None for an empty bin (no GT: recall is undefined, not 0)."""
        return None if self.gt == 0 else self.matched / self.gt


@dataclass
class Breakdown:
    """Recall per bin of one measurement."""

    name: str
    description: str
    bins: list[Bin] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "bins": [
                {"label": b.label, "gt": b.gt, "matched": b.matched, "recall": b.recall}
                for b in self.bins
            ],
        }


def left_out_reason(part: Breakdown) -> str | None:
    """Why ``part`` carries no information on this dataset (no care GT, or
    every care GT in one bin), as one sentence; None when it does."""
    filled = [b for b in part.bins if b.gt]
    if not filled:
        return f"{part.name}: left out, no care ground truth was scored"
    if len(filled) == 1:
        n = filled[0].gt
        every = "the one care GT is" if n == 1 else f"all {n} care GTs are"
        return (
            f"{part.name}: left out, {every} in one bin ({filled[0].label!r}), "
            "so its recall is the overall recall"
        )
    return None


def measure(polygon: np.ndarray) -> Shape:
    """Size, orientation and curvature of one polygon (see the module doc)."""
    import cv2
    import shapely

    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    rect = cv2.minAreaRect(pts.astype(np.float32))
    w, h = rect[1]
    box = cv2.boxPoints(rect).astype(np.float64)
    edges = [box[1] - box[0], box[2] - box[1]]
    long_edge = max(edges, key=lambda v: float(np.hypot(*v)))
    angle = math.degrees(math.atan2(abs(float(long_edge[1])), abs(float(long_edge[0]))))
    rect_area = float(w) * float(h)
    poly: BaseGeometry = shapely.Polygon(pts)
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    area = float(shapely.area(poly))
    iou = min(1.0, area / rect_area) if rect_area > 0 else 0.0
    return Shape(height=float(min(w, h)), angle=angle, points=len(pts), rect_iou=iou)


def _edge_labels(edges: Sequence[float], unit: str) -> list[str]:
    labels = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        labels.append(f"{lo:g}-{hi:g} {unit}" if hi is not None else f">= {lo:g} {unit}")
    return labels


def edge_bin(value: float, edges: Sequence[float]) -> int:
    """Index of the bin ``[edges[i], edges[i+1])`` holding ``value`` (the
    last bin is open; a value below the first edge goes to the first)."""
    return max(0, int(np.searchsorted(np.asarray(edges), value, side="right")) - 1)


def curvature_bin(shape: Shape) -> int:
    if shape.points <= 4:
        return 0
    if shape.rect_iou >= STRAIGHT_IOU:
        return 1
    if shape.rect_iou >= CURVED_IOU:
        return 2
    return 3


def angle_bin(angle: float) -> int:
    # 90 degrees exactly belongs to the last bin, as does 75..90.
    return edge_bin(min(angle, 90.0), ANGLE_EDGES_DEG)


def breakdowns(
    gt: Mapping[str, Sequence[Instance]], outcomes: Mapping[str, ImageOutcome]
) -> list[Breakdown]:
    """Recall per size, orientation and curvature bin over the care GTs of
    the scored images."""
    size = Breakdown(
        "size",
        "text height: short side of the GT's minimum-area rectangle, pixels",
        [Bin(x) for x in _edge_labels(SIZE_EDGES_PX, "px")],
    )
    angle = Breakdown(
        "orientation",
        "angle of the GT's minimum-area rectangle's long side to the horizontal",
        [Bin(x) for x in _edge_labels(ANGLE_EDGES_DEG, "deg")],
    )
    curve = Breakdown(
        "curvature",
        "quadrilateral: 4 points; a longer polygon is straight when its IoU with its own "
        f"minimum-area rectangle is >= {STRAIGHT_IOU}, curved from {CURVED_IOU}, very curved below",
        [Bin(x) for x in CURVATURE_BINS],
    )
    for shape, found in care_shapes(gt, outcomes):
        for target, index in (
            (size, edge_bin(shape.height, SIZE_EDGES_PX)),
            (angle, angle_bin(shape.angle)),
            (curve, curvature_bin(shape)),
        ):
            target.bins[index].gt += 1
            target.bins[index].matched += int(found)
    return [size, angle, curve]


def care_shapes(
    gt: Mapping[str, Sequence[Instance]], outcomes: Mapping[str, ImageOutcome]
) -> Iterable[tuple[Shape, bool]]:
    """(measurements, matched?) of every care GT of every scored image."""
    for sid, instances in gt.items():
        o = outcomes.get(sid)
        if o is None or not o.scored:
            continue
        for inst, label in zip(instances, o.gt):
            if label in (TP, FN):
                yield measure(inst.polygon), label == TP
