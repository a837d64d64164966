"""Vectorised polygon geometry with Polygon3's semantics, without Polygon3.

The official ICDAR / TIoU scripts measure polygons with Polygon3 (GPC):
``area()`` is the absolute shoelace value of the raw contour (a symmetric
bow-tie has area 0) while ``a & b`` clips whole regions (both lobes of a
bow-tie). Polygon3 cannot run in a tcmbench process (it corrupts the
reference counts of True/False on Python 3.11, see PROTOCOLS.md), so this
module reproduces it:

* area: absolute shoelace of the contour as given;
* intersection: of the regions the contours enclose under the even-odd rule
  (GPC's fill rule): a point is inside when a ray from it crosses the
  contour an odd number of times. For a simple polygon that is the polygon;
  for a self-intersecting quad it equals shapely's ``make_valid`` (both
  lobes of a bow-tie), as PROTOCOLS.md states; for more complex
  self-intersecting contours ``make_valid`` differs from Polygon3 and the
  even-odd faces do not (tests/test_polygon3_oracle.py checks both against
  Polygon3). ``repair="make_valid"`` and ``repair="buffer0"`` (the DetEval
  scripts' repair) are available too.

Speed is the other half. Evaluation needs the intersection area of many
(ground truth, detection) pairs; calling GEOS pair by pair costs 20-50 us a
pair. Here pairs are pruned by bounding boxes first, and pairs of *simple*
polygons (the overwhelming majority) go through an exact numpy kernel that
handles thousands of pairs per call: the intersection's boundary is made of
the pieces of each polygon's edges that lie inside the other polygon, so its
area is a sum of ``cross(p, q) / 2`` over those pieces (Green's theorem).
Robust orientation tests with an error bound decide every crossing; any pair
where an edge touches, grazes or overlaps an edge of the other polygon
(shared edges, vertices on edges: the classic degenerate cases) is sent to
GEOS, as are polygons that are not certainly simple. Crossing points are
computed as ``a + (r * o1) / (o1 - o2)`` so that integer inputs whose true
crossing is an integer point (axis-aligned boxes) give exact areas, which
keeps IoU ties such as exactly 0.5 exact, as Polygon3 has them.

Polygons are held in a :class:`PolygonBatch` (all vertices of many polygons
in one array) so that every step is a handful of numpy calls per batch, not
Python work per polygon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

CoordMode = Literal["float64", "float32", "int32"]
Repair = Literal["polygon3", "make_valid", "buffer0"]
_REPAIR_KEY = {"polygon3": 0, "make_valid": 1, "buffer0": 2}

# Pairs x edges x edges handled per kernel call: bounds the working memory
# (about 20 arrays of this many elements) whatever the number of images.
KERNEL_CHUNK_ELEMENTS = 1 << 17
# Polygons with more vertices than this skip the dense numpy simplicity test
# (its cost is quadratic) and are checked by GEOS instead.
DENSE_SIMPLE_TEST_VERTICES = 12
# Relative error bound of an orientation test; see _orientation_tolerance.
_ORIENT_REL_TOL = 1e-13
# Integer coordinates below this (in a pair's local frame) make every
# orientation test exact in float64.
_EXACT_LIMIT = 2.0**25
_HUGE = 1e150
_INT32_SPAN = 2.0**32
_INT32_HALF = 2.0**31


def _bucket(n: np.ndarray) -> np.ndarray:
    """Padded vertex count used to group polygons for the dense kernels:
    exact up to 16 (text boxes have 4 to 16 points), then multiples of 8 up
    to 64, then powers of two."""
    n = np.asarray(n, dtype=np.int64)
    big = np.left_shift(1, np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64))
    mid = (n + 7) // 8 * 8
    return np.where(n <= 16, np.maximum(n, 3), np.where(n <= 64, mid, big))


def to_int32_truncated(values: np.ndarray) -> np.ndarray:
    """``int()`` of each value stored into an int32 array, as the RRC script
    does (truncation toward zero, then two's complement wrap-around), kept
    as float64. Non-finite values stay non-finite (the polygon is void)."""
    v = np.trunc(values)
    with np.errstate(invalid="ignore"):
        r = np.fmod(v, _INT32_SPAN)  # exact for any finite double
        r = np.where(r >= _INT32_HALF, r - _INT32_SPAN, r)
        r = np.where(r < -_INT32_HALF, r + _INT32_SPAN, r)
    return r


def convert_coords(values: np.ndarray, mode: CoordMode) -> np.ndarray:
    """Coordinates as the official script stores them, as float64."""
    values = np.asarray(values, dtype=np.float64)
    if mode == "float64":
        return values
    if mode == "float32":
        with np.errstate(over="ignore", invalid="ignore"):
            return values.astype(np.float32).astype(np.float64)
    if mode == "int32":
        return to_int32_truncated(values)
    raise ValueError(f"unknown coordinate mode {mode!r}")


@dataclass
class PolygonBatch:
    """Many polygons in flat arrays.

    ``coords`` holds the vertices of every polygon back to back, with
    consecutive duplicate points removed and each contour oriented counter-
    clockwise in the mathematical sense (positive shoelace), which is what
    the intersection kernel expects; neither change alters an area or an
    intersection. ``signed_area`` is the shoelace of the contour as given
    (its sign is the orientation the official validators test).
    """

    coords: np.ndarray  # (V, 2) float64
    start: np.ndarray  # (n,) int64
    count: np.ndarray  # (n,) int64, vertices after removing duplicates
    signed_area: np.ndarray  # (n,) float64, 0 for void polygons
    area: np.ndarray  # (n,) float64, Polygon3's area(): |signed_area|
    bbox: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax (inverted when void)
    void: np.ndarray  # (n,) bool: non-finite or fewer than 3 distinct points
    simple: np.ndarray  # (n,) bool: certainly a simple polygon of positive area
    integral: np.ndarray  # (n,) bool: every coordinate is an integer
    _geoms: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.count.shape[0])

    def vertices(self, i: int) -> np.ndarray:
        s = int(self.start[i])
        return self.coords[s : s + int(self.count[i])]


def pack(polygons: Sequence[np.ndarray], coords: CoordMode = "float64") -> PolygonBatch:
    """Pack (N_i, 2) vertex arrays into a :class:`PolygonBatch`.

    ``coords`` says how the official script stores coordinates: ``int32``
    (RRC: ``int()`` into an int32 array), ``float32`` (the curved TIoU
    script) or ``float64``. Polygons with a non-finite coordinate (or one
    beyond 1e150), or with fewer than 3 distinct points, are *void*: area 0,
    no intersection with anything (Polygon3 gives NaN, inf or raises for
    them, which every official comparison turns into "no match, not
    don't-care").
    """
    n = len(polygons)
    counts = np.fromiter(map(len, polygons), dtype=np.int64, count=n)
    total = int(counts.sum())
    flat = np.zeros((0, 2), dtype=np.float64)
    if total:
        try:  # the fast path: (k, 2) arrays, as Instance / Prediction hold them
            flat = np.concatenate(polygons, axis=0, dtype=np.float64)
            if flat.ndim != 2 or flat.shape[1] != 2:
                raise ValueError
        except (ValueError, TypeError):
            arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
            counts = np.fromiter(map(len, arrays), dtype=np.int64, count=n)
            total = int(counts.sum())
            flat = np.concatenate(arrays, axis=0) if total else flat
    flat = convert_coords(flat, coords)
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    # Beyond 1e150 a squared coordinate overflows float64: such polygons get
    # an infinite area from Polygon3, which no comparison accepts -- void.
    with np.errstate(invalid="ignore"):
        finite_v = (np.abs(flat[:, 0]) < _HUGE) & (np.abs(flat[:, 1]) < _HUGE)
    bad_count = np.bincount(owner[~finite_v], minlength=n)
    finite = bad_count == 0

    # Remove consecutive duplicates (cyclically), keeping at least one point.
    starts = np.zeros(n, dtype=np.int64)
    if n:
        starts[1:] = np.cumsum(counts)[:-1]
    prev = np.arange(total, dtype=np.int64) - 1
    if total:
        first_of = starts[counts > 0]
        last_of = first_of + counts[counts > 0] - 1
        prev[first_of] = last_of
        with np.errstate(invalid="ignore"):
            before = flat[prev]
            dup = (flat[:, 0] == before[:, 0]) & (flat[:, 1] == before[:, 1])
        # A polygon made of one repeated point keeps its first vertex.
        if dup.any():
            dup[first_of] &= np.bincount(owner[~dup], minlength=n)[counts > 0] > 0
            keep = ~dup
            flat = flat[keep]
            owner = owner[keep]
            counts = np.bincount(owner, minlength=n).astype(np.int64)
            total = int(counts.sum())
            starts = np.zeros(n, dtype=np.int64)
            if n:
                starts[1:] = np.cumsum(counts)[:-1]

    void = ~finite | (counts < 3)
    signed = np.zeros(n, dtype=np.float64)
    if total:
        nxt = np.arange(1, total + 1, dtype=np.int64)
        ends = starts + counts - 1
        nz = counts > 0
        nxt[ends[nz]] = starts[nz]
        with np.errstate(invalid="ignore", over="ignore"):
            cross = flat[:, 0] * flat[nxt, 1] - flat[nxt, 0] * flat[:, 1]
        signed = (0.5 * np.bincount(owner, weights=cross, minlength=n)).astype(np.float64)
    signed = np.where(void, 0.0, signed).astype(np.float64)
    area = np.abs(signed)

    bbox = np.empty((n, 4), dtype=np.float64)
    bbox[:, :2] = np.inf
    bbox[:, 2:] = -np.inf
    ok = ~void
    if ok.any():
        idx = starts[ok]
        # reduceat over all vertices, then take the starts of kept polygons.
        with np.errstate(invalid="ignore"):
            mins = np.minimum.reduceat(flat, starts[counts > 0], axis=0)
            maxs = np.maximum.reduceat(flat, starts[counts > 0], axis=0)
        pos = np.searchsorted(starts[counts > 0], idx)
        bbox[ok, :2] = mins[pos]
        bbox[ok, 2:] = maxs[pos]

    # Orient every contour counter-clockwise (positive shoelace).
    flip = ~void & (signed < 0)
    if flip.any():
        sel = np.repeat(flip, counts)
        local = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
        rev = np.repeat(starts + counts - 1, counts) - local
        order = np.where(sel, rev, np.arange(total, dtype=np.int64))
        flat = flat[order]

    with np.errstate(invalid="ignore"):
        rounded = np.round(flat)
        frac_v = (flat[:, 0] != rounded[:, 0]) | (flat[:, 1] != rounded[:, 1])
    integral = (np.bincount(owner[frac_v], minlength=n) == 0) & ~void
    batch = PolygonBatch(
        coords=flat,
        start=starts,
        count=counts,
        signed_area=signed,
        area=area,
        bbox=bbox,
        void=void,
        simple=np.zeros(n, dtype=bool),
        integral=integral,
    )
    batch.simple = _certainly_simple(batch)
    return batch


# --------------------------------------------------------------------------- predicates


def _padded(
    batch: PolygonBatch, idx: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, size + 1) x and y of polygons ``idx``, positions past each
    polygon's last vertex repeating vertex 0 (so edge ``count - 1`` closes
    the contour and later edges are zero-length), plus the (k, size) mask of
    real edges."""
    j = np.arange(size + 1, dtype=np.int64)[None, :]
    cnt = batch.count[idx][:, None]
    pos = batch.start[idx][:, None] + np.where(j < cnt, j, 0)
    pts = batch.coords[pos]
    mask = j[:, :size] < cnt
    return pts[..., 0], pts[..., 1], mask


def _signs(values: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """-1 / 0 / +1 where 0 means "within the rounding error of zero"."""
    return (values > tol).view(np.int8) - (values < -tol).view(np.int8)


def _orientation_tolerance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row bound on the rounding error of an orientation test.

    With local coordinates of magnitude <= S, ``cross(r, d)`` has terms of
    magnitude <= 8 S^2 and its rounding error is a few ulps of that; the
    bound used is 1e-13 S^2, far above the error and far below 1 for image
    sized integer coordinates (whose non-zero orientations are >= 1/2).
    """
    scale = np.maximum(np.abs(x).max(axis=1), np.abs(y).max(axis=1))
    return _ORIENT_REL_TOL * scale * scale


def _certainly_simple(batch: PolygonBatch) -> np.ndarray:
    """True where a polygon is robustly simple (GEOS would call it valid):
    no two non-adjacent edges touch, no two adjacent edges fold back onto
    each other, non-zero area. False means "not certain": such polygons go
    through GEOS, which decides exactly."""
    out = _star_shaped(batch)
    rest = ~out & ~batch.void & (batch.area > 0)
    # Larger polygons: GEOS's O(n log n) validity test beats the dense one.
    big = np.flatnonzero(rest & (batch.count > DENSE_SIMPLE_TEST_VERTICES))
    if big.size:
        out[big] = _geos_valid(batch, big)
    cand = np.flatnonzero(rest & (batch.count <= DENSE_SIMPLE_TEST_VERTICES))
    if cand.size == 0:
        return out
    sizes = _bucket(batch.count[cand])
    for size in np.unique(sizes):
        group = cand[sizes == size]
        size = int(size)
        per = max(1, KERNEL_CHUNK_ELEMENTS // (size * (size + 1)))
        for lo in range(0, group.size, per):
            idx = group[lo : lo + per]
            out[idx] = _simple_chunk(batch, idx, size)
    return out


def _star_shaped(batch: PolygonBatch) -> np.ndarray:
    """True where a polygon is robustly star-shaped around its vertex mean,
    or else around the middle of its "spine" (the midpoint of vertices n/4
    and 3n/4: the centre of a curved text band, which the mean misses).
    Star-shaped -- every edge turns strictly counter-clockwise around the
    point, one revolution in all -- implies simple. This O(n) certificate
    covers convex quads and nearly all text polygons; the others take the
    quadratic edge-pair test or GEOS."""
    n = len(batch)
    out = np.zeros(n, dtype=bool)
    ok = ~batch.void & (batch.area > 0)
    if not ok.any() or batch.coords.shape[0] == 0:
        return out
    counts = batch.count
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    safe = np.where(counts > 0, counts, 1)
    total = batch.coords.shape[0]
    nz = counts > 0
    nxt = np.arange(1, total + 1, dtype=np.int64)
    nxt[(batch.start + counts - 1)[nz]] = batch.start[nz]
    with np.errstate(invalid="ignore"):
        cx = np.bincount(owner, weights=batch.coords[:, 0], minlength=n) / safe
        cy = np.bincount(owner, weights=batch.coords[:, 1], minlength=n) / safe
    out = ok & _star_around(batch, owner, nxt, cx, cy, None)
    retry = ok & ~out & (counts >= 6)
    if retry.any():
        q1 = batch.start + counts // 4
        q3 = batch.start + (counts // 4 + counts // 2) % np.maximum(counts, 1)
        mx = 0.5 * (
            batch.coords[np.minimum(q1, total - 1), 0] + batch.coords[np.minimum(q3, total - 1), 0]
        )
        my = 0.5 * (
            batch.coords[np.minimum(q1, total - 1), 1] + batch.coords[np.minimum(q3, total - 1), 1]
        )
        out |= retry & _star_around(batch, owner, nxt, mx, my, np.flatnonzero(retry[owner]))
    return out


def _star_around(
    batch: PolygonBatch,
    owner: np.ndarray,
    nxt: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    vertices: np.ndarray | None,
) -> np.ndarray:
    """Star-shapedness around (cx, cy) per polygon, looking only at
    ``vertices`` (all when None; polygons without any come out False)."""
    n = len(batch)
    if vertices is None:
        x, y, own = batch.coords[:, 0], batch.coords[:, 1], owner
        nx_, ny_ = batch.coords[nxt, 0], batch.coords[nxt, 1]
    else:
        x, y, own = batch.coords[vertices, 0], batch.coords[vertices, 1], owner[vertices]
        nx_, ny_ = batch.coords[nxt[vertices], 0], batch.coords[nxt[vertices], 1]
    with np.errstate(invalid="ignore", over="ignore"):
        ccx, ccy = cx[own], cy[own]
        ux, uy = x - ccx, y - ccy
        wx, wy = nx_ - ccx, ny_ - ccy
        cr = ux * wy - uy * wx
        extent = np.maximum(np.abs(ux), np.abs(uy))
        scale = np.zeros(n)
        if vertices is None:
            nz = batch.count > 0
            scale[nz] = np.maximum.reduceat(extent, batch.start[nz])
        else:
            np.maximum.at(scale, own, extent)
        tol = 1e-12 * scale * scale
        turns_ok = cr > tol[own]
        bad = np.bincount(own[~turns_ok], minlength=n) > 0
        # With every turn counter-clockwise, the number of turns around the
        # centre is the number of edges crossing the ray y = cy, x > cx
        # upwards: exactly one for a star-shaped polygon.
        crossing = (uy < 0) & (wy >= 0)
        turns = np.bincount(own[crossing], minlength=n)
    return ~bad & (turns == 1)


def _simple_chunk(batch: PolygonBatch, idx: np.ndarray, size: int) -> np.ndarray:
    x, y, emask = _padded(batch, idx, size)
    ox, oy = x[:, :1], y[:, :1]
    x = x - ox
    y = y - oy
    tol = _orientation_tolerance(x, y)[:, None, None]
    rx = x[:, 1:] - x[:, :-1]  # (k, size) edge vectors
    ry = y[:, 1:] - y[:, :-1]
    # O[k, i, j] = orientation of vertex j w.r.t. edge i, j in [0, size].
    dx = x[:, None, :] - x[:, :-1, None]
    dy = y[:, None, :] - y[:, :-1, None]
    orient = rx[:, :, None] * dy - ry[:, :, None] * dx
    s = _signs(orient, tol)
    s1, s2 = s[:, :, :-1], s[:, :, 1:]  # endpoints of edge j vs line of edge i
    sep_ij = s1 * s2 > 0
    # Separated if edge j is on one side of line i, or edge i on one side of line j.
    sep = sep_ij | np.swapaxes(sep_ij, 1, 2)
    cnt = batch.count[idx][:, None, None]
    i = np.arange(size)[None, :, None]
    j = np.arange(size)[None, None, :]
    nxt_i = np.where(i + 1 < cnt, i + 1, 0)
    nxt_j = np.where(j + 1 < cnt, j + 1, 0)
    adjacent = (j == nxt_i) | (i == nxt_j) | (i == j)
    pair_mask = emask[:, :, None] & emask[:, None, :]
    bad = pair_mask & ~adjacent & ~sep
    ok = ~bad.any(axis=(1, 2))
    # Adjacent edges i, i+1 must not fold back: vertex i+2 collinear with
    # edge i while the direction reverses.
    kk = np.arange(len(idx))[:, None]
    ii = np.arange(size)[None, :]
    nx1 = np.where(ii + 1 < batch.count[idx][:, None], ii + 1, 0)
    nx2 = np.where(nx1 + 1 < batch.count[idx][:, None], nx1 + 1, 0)
    o_next = orient[kk, ii, nx2]
    dot = rx * rx[kk, nx1] + ry * ry[kk, nx1]
    fold = emask & (np.abs(o_next) <= tol[:, :, 0]) & (dot <= 0)
    ok &= ~fold.any(axis=1)
    if bad.any():
        # Collinear edges whose extents do not overlap are fine.
        kb, ib, jb = np.nonzero(bad)
        fine = _collinear_disjoint(
            x[kb, ib],
            y[kb, ib],
            x[kb, ib + 1],
            y[kb, ib + 1],
            x[kb, jb],
            y[kb, jb],
            x[kb, jb + 1],
            y[kb, jb + 1],
            s[kb, ib, jb],
            s[kb, ib, jb + 1],
            s[kb, jb, ib],
            s[kb, jb, ib + 1],
            np.sqrt(tol[kb, 0, 0] / _ORIENT_REL_TOL),
        )
        still_bad = np.bincount(kb[~fine], minlength=len(idx)) > 0
        ok = ~fold.any(axis=1) & ~still_bad
    return ok


def _collinear_disjoint(
    ax0: np.ndarray,
    ay0: np.ndarray,
    ax1: np.ndarray,
    ay1: np.ndarray,
    bx0: np.ndarray,
    by0: np.ndarray,
    bx1: np.ndarray,
    by1: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    s3: np.ndarray,
    s4: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """For segment pairs flagged as touching: True where both segments lie on
    one line (all four orientations zero) but their extents are robustly
    apart, i.e. they do not touch after all."""
    collinear = (s1 == 0) & (s2 == 0) & (s3 == 0) & (s4 == 0)
    use_x = np.abs(ax1 - ax0) + np.abs(bx1 - bx0) >= np.abs(ay1 - ay0) + np.abs(by1 - by0)
    a0 = np.where(use_x, ax0, ay0)
    a1 = np.where(use_x, ax1, ay1)
    b0 = np.where(use_x, bx0, by0)
    b1 = np.where(use_x, bx1, by1)
    gap = np.maximum(np.minimum(a0, a1), np.minimum(b0, b1)) - np.minimum(
        np.maximum(a0, a1), np.maximum(b0, b1)
    )
    return collinear & (gap > 1e-9 * np.maximum(scale, 1.0))


# --------------------------------------------------------------------------- pairs


def bbox_overlap_area(a_bbox: np.ndarray, b_bbox: np.ndarray) -> np.ndarray:
    """Area of the intersection of paired bounding boxes (0 when apart)."""
    w = np.minimum(a_bbox[:, 2], b_bbox[:, 2]) - np.maximum(a_bbox[:, 0], b_bbox[:, 0])
    h = np.minimum(a_bbox[:, 3], b_bbox[:, 3]) - np.maximum(a_bbox[:, 1], b_bbox[:, 1])
    with np.errstate(invalid="ignore"):
        return np.where((w > 0) & (h > 0), w * h, 0.0)


def grouped_pairs(a_group: np.ndarray, b_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ``a_group[i] == b_group[j]``, ordered by group, then i,
    then j; both group arrays must be sorted (one group = one image)."""
    a_group = np.asarray(a_group, dtype=np.int64)
    b_group = np.asarray(b_group, dtype=np.int64)
    if a_group.size == 0 or b_group.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    ng = int(max(a_group.max(), b_group.max())) + 1
    cb = np.bincount(b_group, minlength=ng)
    sb = np.concatenate([[0], np.cumsum(cb)[:-1]])
    # Each a-element i pairs with every b-element of its group.
    per_a = cb[a_group]
    total = int(per_a.sum())
    ia = np.repeat(np.arange(a_group.size, dtype=np.int64), per_a)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_a) - per_a, per_a)
    ib = sb[a_group[ia]] + offs
    return ia, ib


def candidate_pairs(
    a: PolygonBatch, a_group: np.ndarray, b: PolygonBatch, b_group: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of the same group (image) whose bounding boxes overlap with a
    positive area, in (a index, b index) order (a sorted by group), with
    that overlap area (an upper bound of the intersection area of simple
    polygons).

    An interval join on one axis (the one giving fewer pairs; text lines
    make it y most of the time) generates only the pairs that overlap on
    that axis, instead of every pair of an image.
    """
    a_group = np.asarray(a_group, dtype=np.int64)
    b_group = np.asarray(b_group, dtype=np.int64)
    ia_live = np.flatnonzero(~a.void)
    ib_live = np.flatnonzero(~b.void)
    empty = np.zeros(0, dtype=np.int64)
    if ia_live.size == 0 or ib_live.size == 0:
        return empty, empty, np.zeros(0)
    best: tuple[np.ndarray, np.ndarray] | None = None
    for axis in (1, 0):
        ia, ib = _interval_join(a, a_group, ia_live, b, b_group, ib_live, axis)
        if best is None or ia.size < best[0].size:
            best = (ia, ib)
        if ia.size <= 4 * (ia_live.size + ib_live.size):
            break  # sparse enough; skip trying the other axis
    assert best is not None  # the loop runs at least once
    ia, ib = best
    bi = bbox_overlap_area(a.bbox[ia], b.bbox[ib])
    keep = bi > 0
    ia, ib, bi = ia[keep], ib[keep], bi[keep]
    order = np.argsort(ia * (len(b) + 1) + ib, kind="stable")
    return ia[order], ib[order], bi[order]


def _interval_join(
    a: PolygonBatch,
    a_group: np.ndarray,
    ia_live: np.ndarray,
    b: PolygonBatch,
    b_group: np.ndarray,
    ib_live: np.ndarray,
    axis: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of the same group whose extents on ``axis`` (0 = x, 1 = y)
    overlap: b starting inside a's extent, or a starting inside b's."""
    lo_a, hi_a = a.bbox[ia_live, axis], a.bbox[ia_live, axis + 2]
    lo_b, hi_b = b.bbox[ib_live, axis], b.bbox[ib_live, axis + 2]
    base = min(lo_a.min(), lo_b.min())
    span = max(hi_a.max(), hi_b.max()) - base + 1.0
    # One sorted key per group: group * span + offset. The key loses
    # precision for large groups * spans, so ranges are widened by a margin
    # and the exact tests below decide.
    ka = a_group[ia_live] * span + (lo_a - base)
    kb = b_group[ib_live] * span + (lo_b - base)
    margin = 1e-9 * max(float(np.abs(ka).max()), float(np.abs(kb).max()), 1.0)
    oa = np.argsort(ka, kind="stable")
    ob = np.argsort(kb, kind="stable")
    ka_s, kb_s = ka[oa], kb[ob]
    # Case 1: b starts in [a.lo, a.hi]; case 2: a starts in (b.lo, b.hi].
    start1 = np.searchsorted(kb_s, ka - margin, side="left")
    stop1 = np.searchsorted(kb_s, a_group[ia_live] * span + (hi_a - base) + margin, side="right")
    start2 = np.searchsorted(ka_s, kb - margin, side="left")
    stop2 = np.searchsorted(ka_s, b_group[ib_live] * span + (hi_b - base) + margin, side="right")
    i1, j1 = _expand_ranges(start1, stop1)
    pa1, pb1 = ia_live[i1], ib_live[ob[j1]]
    j2, i2 = _expand_ranges(start2, stop2)
    pb2, pa2 = ib_live[j2], ia_live[oa[i2]]
    ok1 = (a_group[pa1] == b_group[pb1]) & (b.bbox[pb1, axis] >= a.bbox[pa1, axis])
    ok2 = (a_group[pa2] == b_group[pb2]) & (a.bbox[pa2, axis] > b.bbox[pb2, axis])
    return np.concatenate([pa1[ok1], pa2[ok2]]), np.concatenate([pb1[ok1], pb2[ok2]])


def _expand_ranges(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) for every position in [start[k], stop[k])."""
    length = np.maximum(stop - start, 0)
    total = int(length.sum())
    owner = np.repeat(np.arange(start.size, dtype=np.int64), length)
    pos = (
        np.arange(total, dtype=np.int64)
        - np.repeat(np.cumsum(length) - length, length)
        + start[owner]
    )
    return owner, pos


# --------------------------------------------------------------------------- intersection


def intersection_area(
    a: PolygonBatch, ia: np.ndarray, b: PolygonBatch, ib: np.ndarray, repair: Repair = "polygon3"
) -> np.ndarray:
    """Polygon3-compatible area of ``a[ia[k]] & b[ib[k]]`` for every k.

    Simple polygons go through the numpy kernel; degenerate contacts and
    non-simple polygons through GEOS after ``repair`` (``polygon3``: the
    even-odd faces, as Polygon3 / GPC; ``make_valid``; ``buffer0``, what the
    DetEval scripts use). Void polygons intersect nothing.
    """
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    out = np.zeros(ia.shape[0], dtype=np.float64)
    if ia.size == 0:
        return out
    live = ~a.void[ia] & ~b.void[ib] & (bbox_overlap_area(a.bbox[ia], b.bbox[ib]) > 0)
    fast = live & a.simple[ia] & b.simple[ib]
    slow = live & ~fast
    if fast.any():
        pos = np.flatnonzero(fast)
        areas, degenerate = _kernel(a, ia[pos], b, ib[pos])
        out[pos] = areas
        slow[pos[degenerate]] = True
    if slow.any():
        pos = np.flatnonzero(slow)
        out[pos] = geos_intersection_area(a, ia[pos], b, ib[pos], repair)
    return out


def _kernel(
    a: PolygonBatch, ia: np.ndarray, b: PolygonBatch, ib: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact intersection areas of simple polygon pairs, plus a flag for the
    pairs whose configuration is degenerate (to be recomputed by GEOS)."""
    areas = np.zeros(ia.size, dtype=np.float64)
    degenerate = np.zeros(ia.size, dtype=bool)
    na = _bucket(a.count[ia])
    nb = _bucket(b.count[ib])
    key = na * 100_003 + nb
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    bounds = np.flatnonzero(np.diff(key_sorted)) + 1
    for grp in np.split(order, bounds):
        n, m = int(na[grp[0]]), int(nb[grp[0]])
        per = max(1, KERNEL_CHUNK_ELEMENTS // ((n + 1) * (m + 1)))
        for lo in range(0, grp.size, per):
            sel = grp[lo : lo + per]
            ar, dg = _kernel_chunk(a, ia[sel], n, b, ib[sel], m)
            areas[sel] = ar
            degenerate[sel] = dg
    return areas, degenerate


def _kernel_chunk(
    a: PolygonBatch, ia: np.ndarray, n: int, b: PolygonBatch, ib: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    k = ia.size
    ax, ay, amask = _padded(a, ia, n)  # (k, n+1), (k, n)
    bx, by, bmask = _padded(b, ib, m)
    # Local origin: smaller numbers, smaller rounding error; exact for ints.
    ox = a.bbox[ia, 0:1]
    oy = a.bbox[ia, 1:2]
    ax = ax - ox
    ay = ay - oy
    bx = bx - ox
    by = by - oy
    tol = np.maximum(_orientation_tolerance(ax, ay), _orientation_tolerance(bx, by))
    # Integer coordinates below 2^25: every orientation test is exact, and a
    # zero is resolved by simulation of simplicity -- b is shifted by an
    # infinitesimal (eps, eps^2), which removes every touching / collinear
    # configuration while the area (continuous) keeps its value.
    exact = a.integral[ia] & b.integral[ib] & (tol < _ORIENT_REL_TOL * _EXACT_LIMIT**2)
    tol = np.where(exact, 0.0, tol)
    rax = ax[:, 1:] - ax[:, :-1]  # (k, n)
    ray = ay[:, 1:] - ay[:, :-1]
    rbx = bx[:, 1:] - bx[:, :-1]  # (k, m)
    rby = by[:, 1:] - by[:, :-1]
    # Side of (b_j + delta) w.r.t. edge a_i when b_j is on its line, and of
    # a_i w.r.t. edge (b_j + delta) when a_i is on that line.
    pa = np.where(ray != 0, -np.sign(ray), np.sign(rax)).astype(np.int8)
    pb = np.where(rby != 0, np.sign(rby), -np.sign(rbx)).astype(np.int8)

    # Dense part: side of every b_j w.r.t. every edge a_i,
    # oab = cross(r_a_i, b_j - a_i) = cross(r_a_i, b_j) - cross(r_a_i, a_i).
    c_a = rax * ay[:, :n] - ray * ax[:, :n]
    oab = rax[:, :, None] * by[:, None, :]
    oab -= ray[:, :, None] * bx[:, None, :]
    oab -= c_a[:, :, None]  # (k, n, m+1)
    sab = _signs(oab, tol[:, None, None])
    if exact.any():
        zero = sab == 0
        if zero.any():
            sab = np.where(zero & exact[:, None, None], pa[:, :, None], sab)
    # Only edge pairs whose b edge meets the line of the a edge can cross.
    # Flat indices from here on: 1-D gathers are much cheaper than 2-D ones.
    flat_c = np.flatnonzero(sab[:, :, :m] * sab[:, :, 1:] <= 0)
    ea, jc = np.divmod(flat_c, m)  # a's edge kc * n + ic (a's vertex i is kc * (n + 1) + ic)
    kc, ic = np.divmod(ea, n)
    eb = kc * m + jc
    real = amask.ravel()[ea] & bmask.ravel()[eb]
    kc, ic, jc, ea, eb = kc[real], ic[real], jc[real], ea[real], eb[real]
    va = ea + kc  # kc * (n + 1) + ic
    vb = eb + kc  # kc * (m + 1) + jc
    sab_f = sab.ravel()
    s_ab = ea * (m + 1) + jc
    s1, s2 = sab_f[s_ab], sab_f[s_ab + 1]
    ax_f, ay_f, bx_f, by_f = ax.ravel(), ay.ravel(), bx.ravel(), by.ravel()
    bxj, byj = bx_f[vb], by_f[vb]
    rbxj, rbyj = rbx.ravel()[eb], rby.ravel()[eb]

    # Sparse part: sides of a_i and a_i+1 w.r.t. edge b_j.
    def side_of_a(v: np.ndarray) -> np.ndarray:
        return rbxj * (ay_f[v] - byj) - rbyj * (ax_f[v] - bxj)

    o3 = side_of_a(va)
    o4 = side_of_a(va + 1)
    t_c = tol[kc]
    s3 = (o3 > t_c).view(np.int8) - (o3 < -t_c).view(np.int8)
    s4 = (o4 > t_c).view(np.int8) - (o4 < -t_c).view(np.int8)
    ex_c = exact[kc]
    if ex_c.any():
        pbc = pb.ravel()[eb]
        s3 = np.where((s3 == 0) & ex_c, pbc, s3)
        s4 = np.where((s4 == 0) & ex_c, pbc, s4)
    proper = (s1 * s2 < 0) & (s3 * s4 < 0)
    touching = ~proper & (s3 * s4 <= 0)
    degenerate = np.zeros(k, dtype=bool)
    if touching.any():
        t = touching
        kt = kc[t]
        scale = np.sqrt(tol[kt] / _ORIENT_REL_TOL)
        fine = _collinear_disjoint(
            ax_f[va[t]],
            ay_f[va[t]],
            ax_f[va[t] + 1],
            ay_f[va[t] + 1],
            bx_f[vb[t]],
            by_f[vb[t]],
            bx_f[vb[t] + 1],
            by_f[vb[t] + 1],
            s1[t],
            s2[t],
            s3[t],
            s4[t],
            scale,
        )
        degenerate |= np.bincount(kt[~fine], minlength=k) > 0
    kc, ic, jc, ea, eb, va, vb = (x[proper] for x in (kc, ic, jc, ea, eb, va, vb))
    o3, o4, s4, s_ab = o3[proper], o4[proper], s4[proper], s_ab[proper]

    # Inside status of a_0 w.r.t. b and of b_0 w.r.t. a (winding numbers,
    # with the half-open rules that match the (eps, eps^2) shift of b).
    ay0 = ay[:, :1]
    o_a0 = rbx * (ay0 - by[:, :m]) - rby * (ax[:, :1] - bx[:, :m])  # (k, m)
    s_a0 = _signs(o_a0, tol[:, None])
    s_a0 = np.where((s_a0 == 0) & exact[:, None], pb, s_a0)
    up = (by[:, :m] < ay0) & (by[:, 1:] >= ay0) & (s_a0 > 0)
    down = (by[:, 1:] < ay0) & (by[:, :m] >= ay0) & (s_a0 < 0)
    in_a0 = ((up & bmask).sum(axis=1) - (down & bmask).sum(axis=1)) != 0
    by0 = by[:, :1]
    s_b0 = sab[:, :, 0]  # (k, n)
    up = (ay[:, :n] <= by0) & (ay[:, 1:] > by0) & (s_b0 > 0)
    down = (ay[:, 1:] <= by0) & (ay[:, :n] > by0) & (s_b0 < 0)
    in_b0 = ((up & amask).sum(axis=1) - (down & amask).sum(axis=1)) != 0

    # Crossings: where a's edge i crosses b's edge j, at point P.
    den = o3 - o4
    px = ax_f[va] + (rax.ravel()[ea] * o3) / den
    py = ay_f[va] + (ray.ravel()[ea] * o3) / den
    delta_a = np.where(s4 > 0, 1.0, -1.0)  # a's edge enters b (b counter-clockwise)
    delta_b = np.where(sab_f[s_ab + 1] > 0, 1.0, -1.0)
    # Green's theorem: the part of edge (p -> q) after P contributes cross(P, q).
    extra = delta_a * (px * ay_f[va + 1] - ax_f[va + 1] * py)
    extra += delta_b * (px * by_f[vb + 1] - bx_f[vb + 1] * py)
    extra_sum = np.bincount(kc, weights=extra, minlength=k)

    # Inside status of every vertex: start status plus crossings so far.
    step_a = np.bincount(ea, weights=delta_a, minlength=k * n).reshape(k, n)
    step_b = np.bincount(eb, weights=delta_b, minlength=k * m).reshape(k, m)
    ins_a = in_a0[:, None] + np.cumsum(step_a, axis=1) - step_a
    ins_b = in_b0[:, None] + np.cumsum(step_b, axis=1) - step_b
    consistent = (
        ((ins_a >= 0) & (ins_a <= 1)).all(axis=1)
        & ((ins_b >= 0) & (ins_b <= 1)).all(axis=1)
        & (step_a.sum(axis=1) == 0)
        & (step_b.sum(axis=1) == 0)
    )
    degenerate |= ~consistent
    cross_a = ax[:, :-1] * ay[:, 1:] - ax[:, 1:] * ay[:, :-1]
    cross_b = bx[:, :-1] * by[:, 1:] - bx[:, 1:] * by[:, :-1]
    base = (np.where(amask, ins_a, 0) * cross_a).sum(axis=1) + (
        np.where(bmask, ins_b, 0) * cross_b
    ).sum(axis=1)
    inter = 0.5 * (base + extra_sum)
    smaller = np.minimum(a.area[ia], b.area[ib])
    slack = 1e-9 * np.maximum(smaller, 1.0)
    degenerate |= (inter < -slack) | (inter > smaller + slack)
    inter = np.clip(inter, 0.0, smaller)
    return inter, degenerate


# --------------------------------------------------------------------------- GEOS


def geos_geometry(batch: PolygonBatch, i: int, repair: Repair = "polygon3") -> Any:
    """A shapely polygon for ``batch[i]``, repaired if invalid (cached)."""
    key = (_REPAIR_KEY[repair], i)
    geom = batch._geoms.get(key)
    if geom is None:
        geos_geometries(batch, np.array([i]), repair)
        geom = batch._geoms[key]
    return geom


def geos_geometries(
    batch: PolygonBatch, idx: np.ndarray, repair: Repair = "polygon3"
) -> np.ndarray:
    """Shapely polygons for ``batch[idx]`` (None for void ones), repaired."""
    import shapely

    idx = np.asarray(idx, dtype=np.int64)
    mode = _REPAIR_KEY[repair]
    out = np.empty(idx.size, dtype=object)
    need = []
    for k, i in enumerate(idx.tolist()):
        g = batch._geoms.get((mode, i))
        if g is None and not batch.void[i]:
            need.append(k)
        out[k] = g
    if need:
        sel = idx[need]
        uniq, inv = np.unique(sel, return_inverse=True)
        cnt = batch.count[uniq]
        pos = np.concatenate(
            [np.arange(s, s + c) for s, c in zip(batch.start[uniq].tolist(), cnt.tolist())]
        )
        rings = shapely.linearrings(batch.coords[pos], indices=np.repeat(np.arange(uniq.size), cnt))
        polys = shapely.polygons(rings)
        valid = shapely.is_valid(polys)
        if not valid.all():
            broken = polys[~valid]
            if repair == "polygon3":
                fixed = np.empty(broken.size, dtype=object)
                fixed[:] = [even_odd_region(g) for g in broken]
            elif repair == "make_valid":
                fixed = shapely.make_valid(broken)
            else:
                fixed = shapely.buffer(broken, 0)
            polys[~valid] = fixed
        for u, g in zip(uniq.tolist(), polys):
            batch._geoms[(mode, u)] = g
        out[need] = polys[inv]
    return out


def even_odd_region(polygon: Any) -> Any:
    """The region a self-intersecting contour encloses under the even-odd
    rule: the faces of its noded linework crossed an odd number of times by
    a ray (GPC's fill rule, hence Polygon3's)."""
    import shapely

    ring = np.asarray(shapely.get_coordinates(shapely.get_exterior_ring(polygon)))[:-1]
    if ring.shape[0] < 3:
        return shapely.Polygon()
    noded = shapely.union_all(shapely.linestrings(np.vstack([ring, ring[:1]])))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if faces.size == 0:
        return shapely.Polygon()
    probe = shapely.get_coordinates(shapely.point_on_surface(faces))
    x0, y0 = ring[:, 0][None, :], ring[:, 1][None, :]
    x1, y1 = np.roll(ring[:, 0], -1)[None, :], np.roll(ring[:, 1], -1)[None, :]
    px, py = probe[:, :1], probe[:, 1:]
    straddle = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    odd = (np.sum(straddle & (cross_x > px), axis=1) % 2) == 1
    kept = faces[odd]
    return shapely.union_all(kept) if kept.size else shapely.Polygon()


def geos_intersection_area(
    a: PolygonBatch, ia: np.ndarray, b: PolygonBatch, ib: np.ndarray, repair: Repair = "polygon3"
) -> np.ndarray:
    """Intersection areas computed by GEOS (the reference path)."""
    import shapely

    out = np.zeros(len(ia), dtype=np.float64)
    live = ~a.void[ia] & ~b.void[ib]
    if not live.any():
        return out
    pos = np.flatnonzero(live)
    ga = geos_geometries(a, ia[pos], repair)
    gb = geos_geometries(b, ib[pos], repair)
    try:
        out[pos] = shapely.area(shapely.intersection(ga, gb))
    except shapely.errors.GEOSException:
        # The official scripts turn a failed intersection into IoU 0.
        for k, (g1, g2) in enumerate(zip(ga, gb)):
            try:
                out[pos[k]] = shapely.area(shapely.intersection(g1, g2))
            except shapely.errors.GEOSException as exc:
                log.warning("GEOS could not intersect two polygons (%s); counted as 0", exc)
                out[pos[k]] = 0.0
    return np.nan_to_num(out, nan=0.0)


def _geos_valid(batch: PolygonBatch, idx: np.ndarray) -> np.ndarray:
    """GEOS's ``is_valid`` for non-void polygons ``idx``."""
    import shapely

    cnt = batch.count[idx]
    pos = np.concatenate(
        [np.arange(s, s + c) for s, c in zip(batch.start[idx].tolist(), cnt.tolist())]
    )
    rings = shapely.linearrings(batch.coords[pos], indices=np.repeat(np.arange(idx.size), cnt))
    return shapely.is_valid(shapely.polygons(rings))


def shapely_is_valid(batch: PolygonBatch, idx: np.ndarray) -> np.ndarray:
    """What ``shapely.geometry.Polygon(points).is_valid`` says (the curved
    TIoU script's validation), using the numpy test where it is certain."""
    idx = np.asarray(idx, dtype=np.int64)
    out = batch.simple[idx].copy()
    unsure = ~out & ~batch.void[idx]
    if unsure.any():
        out[unsure] = _geos_valid(batch, idx[unsure])
    return out
