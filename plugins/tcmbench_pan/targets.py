"""PANet training targets, built per image with numpy / OpenCV / pyclipper.

- ``gt_text``: every cared-for polygon filled, *unshrunk*, with its
  instance id (1, 2, ...; 0 = background). The aggregation loss needs to
  know which text pixel belongs to which instance, so the map is labelled
  rather than binary.
- ``gt_kernel``: the same polygons shrunk by D = A (1 - r^2) / L (r =
  ``shrink_ratio``, 0.5 for IC15, 0.7 for CTW1500 in mmocr's configs; A
  area, L perimeter), filled with the same ids. ``kernel_shrink`` picks
  how D is applied:

  - ``official`` (mmocr 0.x ``BaseTextDetTargets.generate_kernels`` with
    PANetTargets' ``max_shrink=20``; pan_pp.pytorch ``shrink(max_shr=20)``):
    the polygon's coordinates are truncated to integers
    (``astype(np.int32)``), D = min(int(A (1 - r^2) / (L + 0.001) + 0.5),
    20) is computed on that integer polygon and pyclipper offsets it by -D;
    the text map is the same integer polygon filled, and the first piece
    pyclipper returns is the kernel. A long word's kernel stops 20 px
    inside its outline however tall it is;
  - ``float`` (tcmbench): D unrounded and uncapped, on the float polygon.

- ``gt_mask``: 1 everywhere except don't-care regions (ignored polygons,
  polygons whose minimum-area rectangle is thinner than ``min_text_size``
  -- 0 turns the rule off, as neither mmocr nor pan_pp has it --,
  degenerate polygons under one pixel of area and polygons whose kernel
  vanishes): 0 there, so no loss term rewards or punishes predictions on
  them. (A vanished kernel: mmocr draws the text without a kernel and
  pan_pp uses the whole word as its kernel; tcmbench makes it don't-care
  in both modes. With the 20 px cap and D rounded, it takes a word under
  about 3 px thick.)

All maps are float32 (H, W) at the augmented input resolution (ids up to
2^24 are exact in float32). The loss downsamples them to the head's 1/4
with nearest-neighbour sampling at pixel centres, which keeps every id a
real id (no blending of two instances' numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper

# pyclipper works on integers: coordinates are scaled by this factor so the
# offset polygons keep sub-pixel precision.
CLIPPER_SCALE = 16.0

KEYS = ("gt_text", "gt_kernel", "gt_mask")

#: ``kernel_shrink`` values (module doc).
KERNEL_SHRINKS = ("official", "float")
#: The official codes' cap on the shrink offset D, in input pixels (mmocr
#: PANetTargets ``max_shrink=20``; pan_pp ``shrink(..., max_shr=20)``).
OFFICIAL_MAX_SHRINK = 20


def area_perimeter(poly: np.ndarray) -> tuple[float, float]:
    """Unsigned shoelace area and perimeter of a closed (N, 2) polygon."""
    pts = np.ascontiguousarray(poly, dtype=np.float32).reshape(-1, 1, 2)
    return float(cv2.contourArea(pts)), float(cv2.arcLength(pts, True))


def offset_polygon(poly: np.ndarray, distance: float) -> np.ndarray | None:
    """``poly`` offset by ``distance`` pixels (outwards if positive,
    inwards if negative), round joins; the largest piece, or None when
    nothing is left."""
    pco = pyclipper.PyclipperOffset(arc_tolerance=0.25 * CLIPPER_SCALE)
    path = np.round(np.asarray(poly, dtype=np.float64) * CLIPPER_SCALE).astype(np.int64)
    pco.AddPath(path.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = [
        np.asarray(p, dtype=np.float64) / CLIPPER_SCALE
        for p in pco.Execute(distance * CLIPPER_SCALE)
        if len(p) >= 3
    ]
    if not pieces:
        return None
    return max(pieces, key=lambda p: area_perimeter(p)[0])


def kernel_polygon(poly: np.ndarray, shrink_ratio: float) -> np.ndarray | None:
    """The kernel of ``poly``: shrunk by D = A (1 - r^2) / L (PSENet /
    PANet's Vatti offset); ``poly`` itself when r >= 1."""
    if shrink_ratio >= 1.0:
        return poly
    area, perimeter = area_perimeter(poly)
    if perimeter <= 0 or area <= 0:
        return None
    return offset_polygon(poly, -area * (1.0 - shrink_ratio**2) / perimeter)


def official_shrink_offset(poly: np.ndarray, shrink_ratio: float) -> int:
    """D of the official codes for an integer polygon: min(int(A (1 - r^2)
    / (L + 0.001) + 0.5), 20)."""
    area, perimeter = area_perimeter(poly)
    d = int(area * (1.0 - shrink_ratio * shrink_ratio) / (perimeter + 0.001) + 0.5)
    return min(d, OFFICIAL_MAX_SHRINK)


def official_kernel(poly: np.ndarray, shrink_ratio: float) -> np.ndarray | None:
    """The official kernel of an integer polygon: offset by the integer
    -D (:func:`official_shrink_offset`) on integer coordinates, round
    joins, the first piece; None when nothing is left."""
    pts = np.asarray(poly, dtype=np.int64).reshape(-1, 2)
    d = official_shrink_offset(pts, shrink_ratio)
    if d == 0:
        return pts.astype(np.float64)
    pco = pyclipper.PyclipperOffset()
    pco.AddPath(pts.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = [p for p in pco.Execute(-d) if len(p) >= 3]
    if not pieces:
        return None
    return np.asarray(pieces[0], dtype=np.float64)


def _fill(canvas: np.ndarray, poly: np.ndarray, value: float) -> None:
    cv2.fillPoly(canvas, [np.round(poly).astype(np.int32).reshape(-1, 1, 2)], value)


@dataclass
class PANTargetBuilder:
    """Callable ``(polygons, ignores, height, width) -> dict`` of the maps in
    :data:`KEYS` (see the module doc)."""

    shrink_ratio: float = 0.5
    min_text_size: float = 8.0
    kernel_shrink: str = "float"

    KEYS = KEYS

    def __post_init__(self) -> None:
        if not 0.0 < float(self.shrink_ratio) <= 1.0:
            raise ValueError(f"shrink_ratio must be in (0, 1], got {self.shrink_ratio}")
        if float(self.min_text_size) < 0:
            raise ValueError(f"min_text_size must be >= 0, got {self.min_text_size}")
        if self.kernel_shrink not in KERNEL_SHRINKS:
            raise ValueError(
                f"kernel_shrink must be one of {', '.join(KERNEL_SHRINKS)}, "
                f"got {self.kernel_shrink!r}"
            )

    def __call__(
        self,
        polygons: Sequence[np.ndarray],
        ignores: Sequence[bool],
        height: int,
        width: int,
    ) -> dict[str, np.ndarray]:
        if len(polygons) != len(ignores):
            raise ValueError(f"{len(polygons)} polygons but {len(ignores)} ignore flags")
        text = np.zeros((height, width), dtype=np.float32)
        kernel = np.zeros((height, width), dtype=np.float32)
        mask = np.ones((height, width), dtype=np.float32)
        next_id = 1
        for raw, ignore in zip(polygons, ignores):
            poly = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
            if len(poly) < 3 or not np.isfinite(poly).all():
                continue  # nothing to draw (a degenerate annotation)
            if self.kernel_shrink == "official":
                poly = poly.astype(np.int32).astype(np.float64)  # truncated, as astype
            if ignore or self._too_small(poly):
                _fill(mask, poly, 0.0)
                continue
            if self.kernel_shrink == "official":
                shrunk = official_kernel(poly, float(self.shrink_ratio))
            else:
                shrunk = kernel_polygon(poly, float(self.shrink_ratio))
            if shrunk is None:
                _fill(mask, poly, 0.0)
                continue
            _fill(text, poly, float(next_id))
            _fill(kernel, shrunk, float(next_id))
            next_id += 1
        return {"gt_text": text, "gt_kernel": kernel, "gt_mask": mask}

    def _too_small(self, poly: np.ndarray) -> bool:
        area, _ = area_perimeter(poly)
        if area < 1.0:
            return True
        if float(self.min_text_size) <= 0:
            return False
        (_, _), (w, h), _ = cv2.minAreaRect(poly.astype(np.float32))
        return min(w, h) < float(self.min_text_size)
