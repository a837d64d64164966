"""Where to put a small label (a detection's score) so that it covers no
text, stays inside the image and reads as belonging to its box.

Why a module of its own: text lines on a sign or a page are stacked a few
pixels apart, so a label written at a box's top-left corner lands on the
line above it, on the label of that line, or, for a box at the top edge,
outside the image. A reader of ``predict``'s pictures then sees neither
the text nor the score.

The placement is greedy and exact at pixel level. The drawn polygons
(filled, grown by the outline width plus a gap) are painted into an
occupancy mask;
labels are placed one at a time, in the order given, each into a second
mask. For each label the candidates are tried in order: next to the
polygon's outermost corners (above its top corner, below its bottom one,
right of its right one, left of its left one: on a tilted box these hug
the text), next to its axis-aligned bounds (above, below, right, left:
each at both ends), inside the corners of those bounds (empty for a tilted
polygon), diagonally outside them, then the same bound positions in rings
farther out. Every candidate is first shifted into the image, so no label
ever leaves it.

A candidate is *free* when it covers no text pixel and no earlier label,
and *attached* when it lies within half its height of its own polygon and
every other polygon is half its height farther (a label in the gap between
two stacked lines would read as belonging to either). The first free and
attached candidate wins; failing that the first free one whose own polygon
is the nearest to its centre (level with its own line, not with the next
one); failing that the first free one; when none is free, the one that
covers the fewest pixels (:attr:`Placement.free` is then False). A label
not attached gets :attr:`Placement.anchor`, the point of its polygon's
outline nearest to its centre, for the caller's leader line. Cost: a few
hundred boxes on a 4000-pixel photo take well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Rings of candidates beyond the adjacent one: a label up to this many
# label heights away still reads as belonging to its box (with a leader).
FAR_RINGS = 3

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 with x1 and y1 exclusive


@dataclass(frozen=True)
class Placement:
    """One label's rectangle: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int
    free: bool  # covers no text polygon and no earlier label
    # A point of the label's polygon to draw a leader line to, when the
    # label is not clearly attached to it; None when it is.
    anchor: tuple[int, int] | None = None

    @property
    def rect(self) -> Rect:
        return (self.x0, self.y0, self.x1, self.y1)


def polygon_mask(
    shape: tuple[int, int], polygons: Sequence[np.ndarray], clearance: int = 1
) -> np.ndarray:
    """A bool (H, W) mask of the polygons' pixels, grown so that a pixel
    outside it lies at least ``clearance`` pixels (in x or y) from each
    polygon (a label must not touch the drawn line either)."""
    mask = np.zeros(shape, np.uint8)
    pts = [_int_points(p).astype(np.int32) for p in polygons if len(p)]
    for one in pts:  # one at a time: fillPoly of a list leaves overlaps as holes
        cv2.fillPoly(mask, [one], 1)
    if pts and clearance > 1:
        return cv2.dilate(mask, np.ones((2 * clearance - 1,) * 2, np.uint8)).astype(bool)
    return mask.astype(bool)


def place_labels(
    shape: tuple[int, int],
    boxes: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    *,
    obstacles: Sequence[np.ndarray] = (),
    gap: int = 2,
    outline: int = 1,
) -> list[Placement]:
    """A rectangle for each box's label (see the module doc).

    ``shape`` is the image's (height, width); ``boxes`` the polygons the
    labels belong to ((N, 2) x, y points), ``sizes`` each label's
    (width, height) in pixels; ``obstacles`` further polygons no label may
    cover (e.g. ground truth drawn beside the detections). ``gap`` is the
    space kept between a label and its box, ``outline`` the drawn line width.
    A label larger than the image is placed at its top-left corner (and
    cropped by the drawing): there is nowhere else it could go.
    """
    if len(boxes) != len(sizes):
        raise ValueError(f"{len(boxes)} boxes but {len(sizes)} label sizes")
    h, w = shape
    # label pixels stay this far from an outline's centre line
    clear = max(1, gap + (max(1, outline) + 1) // 2)
    text = polygon_mask(shape, [*boxes, *obstacles], clear)
    taken = np.zeros(shape, bool)
    polys = [_int_points(p) for p in boxes]
    # Points along every box's outline, to measure how near a label is to
    # each polygon (not to its bounding box: a tilted line's box is mostly air).
    samples = [_outline_points(p) for p in polys]
    extents = np.array(
        [[*s.min(axis=0), *s.max(axis=0)] if len(s) else [np.inf] * 4 for s in samples],
        np.float64,
    ).reshape(-1, 4)
    out: list[Placement] = []
    for i, (poly, (lw, lh)) in enumerate(zip(polys, sizes)):
        lw, lh = max(1, int(lw)), max(1, int(lh))
        # attached: within ``near`` of its polygon, others lh // 2 farther
        near = clear + lh // 2
        best: tuple[tuple[int, int], Rect] | None = None
        for rect in _candidates(poly, _bounds(poly, w, h), lw, lh, clear):
            rect = _inside(rect, w, h)
            overlap = _covered(text, rect) + _covered(taken, rect)
            # a covering candidate ranks by what it covers alone (cheaper)
            if overlap:
                rank = (overlap, 2)
            elif _attached(rect, i, samples, extents, near, lh // 2):
                rank = (0, 0)
            else:  # free but not attached: at least nearest to its own polygon
                rank = (0, 1 if _own_is_nearest(rect, i, samples) else 2)
            if best is None or rank < best[0]:
                best = (rank, rect)
            if rank == (0, 0):
                break
        assert best is not None  # _candidates always yields
        (overlap, _), (x0, y0, x1, y1) = best
        taken[y0:y1, x0:x1] = True
        detached = len(poly) > 0 and not _attached(best[1], i, samples, extents, near, lh // 2)
        anchor = _nearest_outline_point(samples[i], best[1]) if detached else None
        out.append(Placement(x0, y0, x1, y1, free=overlap == 0, anchor=anchor))
    return out


def _int_points(polygon: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(polygon, np.float64).reshape(-1, 2)).astype(np.int64)


def _outline_points(pts: np.ndarray, step: float = 4.0) -> np.ndarray:
    """Points every ``step`` pixels along a closed polygon's outline."""
    if len(pts) < 2:
        return pts.astype(np.float64).reshape(-1, 2)
    a = pts.astype(np.float64)
    b = np.roll(a, -1, axis=0)
    out = [a]
    for p, q in zip(a, b):
        n = int(np.hypot(*(q - p)) // step)
        if n > 1:
            f = np.arange(1, n)[:, None] / n
            out.append(p + f * (q - p))
    return np.concatenate(out)


def _attached(
    rect: Rect,
    own: int,
    samples: Sequence[np.ndarray],
    extents: np.ndarray,
    near: int,
    margin: int,
) -> bool:
    """Whether ``rect`` lies within ``near`` pixels of its own polygon
    (outline points ``samples[own]``) and every other polygon is ``margin``
    pixels farther. Only polygons whose extent (``extents``: x0, y0, x1, y1
    of each one's points) comes that close are measured point by point."""
    d_own = _rect_distance(rect, samples[own])
    if d_own > near:
        return False
    x0, y0, x1, y1 = rect
    dx = np.maximum(0.0, np.maximum(x0 - extents[:, 2], extents[:, 0] - (x1 - 1)))
    dy = np.maximum(0.0, np.maximum(y0 - extents[:, 3], extents[:, 1] - (y1 - 1)))
    close = np.flatnonzero(np.maximum(dx, dy) <= d_own + margin)
    return all(
        _rect_distance(rect, samples[j]) > d_own + margin for j in close.tolist() if j != own
    )


def _rect_distance(rect: Rect, points: np.ndarray) -> float:
    """The smallest gap, in x or y (Chebyshev), between ``rect``'s pixels and ``points``."""
    if not len(points):
        return float("inf")
    x0, y0, x1, y1 = rect
    dx = np.maximum(0.0, np.maximum(x0 - points[:, 0], points[:, 0] - (x1 - 1)))
    dy = np.maximum(0.0, np.maximum(y0 - points[:, 1], points[:, 1] - (y1 - 1)))
    return float(np.maximum(dx, dy).min())


def _bounds(pts: np.ndarray, w: int, h: int) -> Rect:
    """The polygon's axis-aligned bounds (x1, y1 exclusive), clipped to the image."""
    if not len(pts):
        return (0, 0, 1, 1)
    x0, y0 = np.clip(pts.min(axis=0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(pts.max(axis=0) + 1, 1, [w, h])
    return (int(x0), int(y0), int(max(x1, x0 + 1)), int(max(y1, y0 + 1)))


def _candidates(pts: np.ndarray, bounds: Rect, lw: int, lh: int, c: int) -> Iterator[Rect]:
    """Label rectangles in the order of preference (see the module doc),
    ``c`` pixels clear of the polygon's extreme pixels."""
    corners: list[tuple[int, int]] = []
    if len(pts):
        # the outermost corners; ties go to the top / left one
        tx, ty = pts[np.lexsort((pts[:, 0], pts[:, 1]))[0]]
        bx, by = pts[np.lexsort((pts[:, 0], -pts[:, 1]))[0]]
        rx, ry = pts[np.lexsort((pts[:, 1], -pts[:, 0]))[0]]
        lx, ly = pts[np.lexsort((pts[:, 1], pts[:, 0]))[0]]
        corners += [
            (tx, ty - c - lh + 1),
            (tx - lw + 1, ty - c - lh + 1),
            (bx, by + c),
            (bx - lw + 1, by + c),
            (rx + c, ry - lh + 1),
            (rx + c, ry),
            (lx - c - lw + 1, ly - lh + 1),
            (lx - c - lw + 1, ly),
        ]
    for ring in range(FAR_RINGS + 1):
        d = ring * (lh + c)  # farther rings: the bounds grown by d on every side
        # the extreme pixels of the (grown) bounds
        x0, y0, x1, y1 = bounds[0] - d, bounds[1] - d, bounds[2] - 1 + d, bounds[3] - 1 + d
        above, below = y0 - c - lh + 1, y1 + c
        left, right = x0 - c - lw + 1, x1 + c
        corners += [
            (x0, above),
            (x1 - lw + 1, above),
            (x0, below),
            (x1 - lw + 1, below),
            (right, y0),
            (right, y1 - lh + 1),
            (left, y0),
            (left, y1 - lh + 1),
        ]
        if ring == 0:
            corners += [
                (x0 + c, y0 + c),
                (x1 - c - lw + 1, y0 + c),
                (x0 + c, y1 - c - lh + 1),
                (x1 - c - lw + 1, y1 - c - lh + 1),
            ]
        corners += [(left, above), (right, above), (left, below), (right, below)]
    for cx, cy in corners:
        yield (int(cx), int(cy), int(cx) + lw, int(cy) + lh)


def _inside(rect: Rect, w: int, h: int) -> Rect:
    """``rect`` shifted (not shrunk) into a w x h image; pinned to the
    top-left corner when it is larger than the image."""
    x0, y0, x1, y1 = rect
    dx = -x0 if x0 < 0 else min(0, w - x1)
    dy = -y0 if y0 < 0 else min(0, h - y1)
    nx, ny = max(0, x0 + dx), max(0, y0 + dy)
    return (nx, ny, nx + (x1 - x0), ny + (y1 - y0))


def _covered(mask: np.ndarray, rect: Rect) -> int:
    x0, y0, x1, y1 = rect
    return int(np.count_nonzero(mask[y0:y1, x0:x1]))


def _centre_distances(rect: Rect, points: np.ndarray) -> np.ndarray:
    cx, cy = (rect[0] + rect[2] - 1) / 2, (rect[1] + rect[3] - 1) / 2
    return np.hypot(points[:, 0] - cx, points[:, 1] - cy)


def _own_is_nearest(rect: Rect, own: int, samples: Sequence[np.ndarray]) -> bool:
    """Whether, seen from the label's centre, its own polygon's outline is
    nearer than any other's: a label that cannot be attached (stacked
    lines leave no gap) is then at least level with its own line, not with
    the next one, and its leader line reads the right way."""
    if not len(samples[own]):
        return False
    mine = float(_centre_distances(rect, samples[own]).min())
    return all(
        float(_centre_distances(rect, s).min()) > mine
        for j, s in enumerate(samples)
        if j != own and len(s)
    )


def _nearest_outline_point(points: np.ndarray, rect: Rect) -> tuple[int, int]:
    """The point of a polygon's outline nearest the label's centre (where
    its leader line ends)."""
    k = int(np.argmin(_centre_distances(rect, points)))
    return (int(np.rint(points[k, 0])), int(np.rint(points[k, 1])))
