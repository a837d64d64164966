"""DB training targets (DBNet section 3.3), built per image with numpy.

- ``gt_shrink``: text polygons shrunk by D = A (1 - r^2) / L (r = 0.4,
  A area, L perimeter) with pyclipper, filled with 1.
- ``gt_shrink_mask``: 1 everywhere except don't-care regions: ignored
  polygons, polygons too small to learn from, and polygons whose shrink
  vanishes are filled with 0, so the probability loss neither rewards nor
  punishes predictions there.
- ``gt_thr``: in the band between the polygon dilated by D and the polygon,
  1 - (distance to the nearest polygon edge) / D, clipped to [0, 1] and
  rescaled to [thr_min, thr_max] = [0.3, 0.7]; thr_min elsewhere.
- ``gt_thr_mask``: 1 inside the dilated polygons (where L1 is applied).

All maps are float32 (H, W) at the (augmented) input resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Polygon offsetting is shared with DB post-processing (the core's).
from tcmbench.inference.db_postprocess import offset_polygon, polygon_area_perimeter


def shrink_distance(poly: np.ndarray, ratio: float) -> float:
    """DBNet's offset D = A (1 - r^2) / L (0 for a degenerate polygon)."""
    area, perimeter = polygon_area_perimeter(poly)
    if perimeter <= 0:
        return 0.0
    return area * (1.0 - ratio * ratio) / perimeter


def point_edge_distance(xs: np.ndarray, ys: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance of every grid point (ys x xs) to the nearest edge of the
    closed polygon ``poly``; one vectorised pass per edge (no per-pixel
    loops), keeping memory at one grid."""
    gx, gy = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
    best = np.full(gx.shape, np.inf, dtype=np.float32)
    starts = poly.astype(np.float32)
    ends = np.roll(starts, -1, axis=0)
    for (ax, ay), (bx, by) in zip(starts, ends):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        px, py = gx - ax, gy - ay
        if length2 > 0:
            t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
            px = px - t * dx
            py = py - t * dy
        np.minimum(best, np.sqrt(px * px + py * py), out=best)
    return best


def _fill(canvas: np.ndarray, poly: np.ndarray, value: float) -> None:
    cv2.fillPoly(canvas, [np.round(poly).astype(np.int32).reshape(-1, 1, 2)], value)


@dataclass
class DBTargetBuilder:
    """Callable ``(polygons, ignores, height, width) -> dict`` of DB maps.

    ``min_text_size``: polygons whose minimum-area rectangle has a shorter
    side below this (pixels at input resolution) become don't-care: a text
    a few pixels high shrinks to nothing useful.
    """

    shrink_ratio: float = 0.4
    thr_min: float = 0.3
    thr_max: float = 0.7
    min_text_size: float = 8.0

    KEYS = ("gt_shrink", "gt_shrink_mask", "gt_thr", "gt_thr_mask")

    def __call__(
        self,
        polygons: Sequence[np.ndarray],
        ignores: Sequence[bool],
        height: int,
        width: int,
    ) -> dict[str, np.ndarray]:
        if len(polygons) != len(ignores):
            raise ValueError(f"{len(polygons)} polygons but {len(ignores)} ignore flags")
        shrink = np.zeros((height, width), dtype=np.float32)
        shrink_mask = np.ones((height, width), dtype=np.float32)
        border = np.zeros((height, width), dtype=np.float32)
        thr_mask = np.zeros((height, width), dtype=np.float32)
        for raw, ignore in zip(polygons, ignores):
            poly = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
            if ignore or self._too_small(poly):
                _fill(shrink_mask, poly, 0.0)
                continue
            distance = shrink_distance(poly, self.shrink_ratio)
            shrunk = offset_polygon(poly, -distance) if distance > 0 else None
            if shrunk is None:
                _fill(shrink_mask, poly, 0.0)
                continue
            _fill(shrink, shrunk, 1.0)
            self._draw_border(poly, distance, border, thr_mask)
        thr = border * (self.thr_max - self.thr_min) + self.thr_min
        return {
            "gt_shrink": shrink,
            "gt_shrink_mask": shrink_mask,
            "gt_thr": thr,
            "gt_thr_mask": thr_mask,
        }

    def _too_small(self, poly: np.ndarray) -> bool:
        if len(poly) < 3 or not np.isfinite(poly).all():
            return True
        area, _ = polygon_area_perimeter(poly)
        if area < 1.0:
            return True
        (_, _), (w, h), _ = cv2.minAreaRect(poly.astype(np.float32))
        return min(w, h) < self.min_text_size

    @staticmethod
    def _draw_border(
        poly: np.ndarray, distance: float, border: np.ndarray, thr_mask: np.ndarray
    ) -> None:
        """Write 1 - dist/D into the dilated polygon's box (max with what is
        there, so neighbouring texts keep their own borders)."""
        dilated = offset_polygon(poly, distance)
        if dilated is None:
            return
        _fill(thr_mask, dilated, 1.0)
        height, width = border.shape
        x0 = max(int(np.floor(dilated[:, 0].min())), 0)
        x1 = min(int(np.ceil(dilated[:, 0].max())), width - 1)
        y0 = max(int(np.floor(dilated[:, 1].min())), 0)
        y1 = min(int(np.ceil(dilated[:, 1].max())), height - 1)
        if x1 < x0 or y1 < y0:
            return
        dist = point_edge_distance(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1), poly)
        value = 1.0 - np.clip(dist / distance, 0.0, 1.0)
        region = border[y0 : y1 + 1, x0 : x1 + 1]
        np.maximum(region, value, out=region)
