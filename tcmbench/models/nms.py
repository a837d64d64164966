"""Polygon non-maximum suppression, shared by the detector plugins.

Detectors that regress one polygon per pixel (FCENet) produce many
overlapping candidates per word; greedy NMS keeps the best-scoring one and
drops every remaining candidate whose IoU with it exceeds a threshold.

Why it is fast enough in Python: the greedy loop runs once per *kept*
polygon (a few per word), not once per candidate, and each iteration is
vectorised:

1. candidates are sorted by score once;
2. the kept polygon's axis-aligned bounding box is compared with those of
   all still-alive candidates in numpy (pairs whose boxes do not meet have
   IoU 0 and never reach shapely);
3. the exact IoU with the remaining ones is one shapely 2 call over arrays
   (``shapely.intersection(a, array).area``, GEOS in C).

Invalid candidate polygons (a regressed contour may cross itself) are
repaired once with ``shapely.make_valid(method="structure")`` so GEOS never
raises on them;
their area is that of the repaired shape. Polygons with fewer than 3
points or non-finite coordinates are dropped (never kept).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely


def _as_list(polygons: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(polygons, np.ndarray) and polygons.ndim == 3:
        return list(polygons.astype(np.float64))
    return [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]


def make_geometries(polygons: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """shapely polygons (object array, invalid ones repaired) and a bool
    array saying which inputs are usable (>= 3 finite points, area > 0)."""
    polys = _as_list(polygons)
    n = len(polys)
    usable = np.array([len(p) >= 3 and bool(np.isfinite(p).all()) for p in polys], dtype=bool)
    geoms = np.empty(n, dtype=object)
    if not n:
        return geoms, usable
    if isinstance(polygons, np.ndarray) and polygons.ndim == 3 and usable.all():
        geoms[:] = shapely.polygons(np.asarray(polygons, dtype=np.float64))
    else:
        for i in np.flatnonzero(usable):
            geoms[i] = shapely.Polygon(polys[i])
    idx = np.flatnonzero(usable)
    if idx.size:
        sub = geoms[idx]
        bad = ~shapely.is_valid(sub)
        if bad.any():
            # "structure": polygonal output, and an order of magnitude faster
            # than the default "linework" on wildly self-intersecting contours
            # (an untrained regressor's), which matters when every pixel is
            # a candidate.
            sub[bad] = shapely.make_valid(sub[bad], method="structure", keep_collapsed=False)
            geoms[idx] = sub
        usable[idx] = shapely.area(geoms[idx]) > 0
    return geoms, usable


def polygon_iou(a: shapely.Geometry, others: np.ndarray) -> np.ndarray:
    """IoU of polygon ``a`` with each geometry of ``others`` (vectorised)."""
    if len(others) == 0:
        return np.zeros(0, dtype=np.float64)
    inter = shapely.area(shapely.intersection(a, others))
    union = shapely.area(a) + shapely.area(others) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def polygon_nms(
    polygons: Sequence[np.ndarray] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Indices of the polygons greedy NMS keeps, best score first.

    ``polygons``: a sequence of (N_i, 2) arrays, or one (M, N, 2) array
    (fast path: built in one shapely call). A candidate is suppressed when
    its IoU with an already kept polygon is *greater than*
    ``iou_threshold``. Ties in score keep the earlier index.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(polygons)
    if n != len(scores):
        raise ValueError(f"{n} polygons but {len(scores)} scores")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    geoms, usable = make_geometries(polygons)
    order = np.argsort(-scores, kind="stable")
    order = order[usable[order] & np.isfinite(scores[order])]
    if order.size == 0:
        return np.zeros(0, dtype=np.int64)
    bounds = shapely.bounds(geoms[order])  # (m, 4): x0, y0, x1, y1
    alive = np.ones(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if not alive[i]:
            continue
        keep.append(int(order[i]))
        alive[i] = False
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        if rest.size == 0:
            break
        b = bounds[i]
        meets = (
            (bounds[rest, 0] <= b[2])
            & (bounds[rest, 2] >= b[0])
            & (bounds[rest, 1] <= b[3])
            & (bounds[rest, 3] >= b[1])
        )
        rest = rest[meets]
        if rest.size == 0:
            continue
        iou = polygon_iou(geoms[order[i]], geoms[order[rest]])
        alive[rest[iou > iou_threshold]] = False
    return np.asarray(keep, dtype=np.int64)
