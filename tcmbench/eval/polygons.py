"""Polygons in flat arrays, with the coordinate rules of the official scripts.

The official ICDAR / TIoU scripts measure polygons with Polygon3 (GPC):
``area()`` is the absolute shoelace value of the raw contour (a symmetric
bow-tie has area 0) while ``a & b`` clips whole regions (both lobes of a
bow-tie). Polygon3 cannot run in a tcmbench process (it corrupts the
reference counts of True/False on Python 3.11, see PROTOCOLS.md), so
tcmbench reproduces it: areas here, intersections in
:mod:`tcmbench.eval.intersection` (regions under the even-odd rule, GPC's
fill rule; :mod:`tcmbench.eval.geos` for the repairs).

A :class:`PolygonBatch` holds the vertices of many polygons in one array
(coordinates stored as the official script stores them: ``int()`` into
int32, float32 or float64), so that every step is a handful of numpy calls
per batch, not Python work per polygon. :func:`pack` also certifies which
polygons are *simple* (robustly: an O(n) star-shapedness test, then the
monotone-band test of :mod:`tcmbench.eval.monotone`, a dense edge-pair
test for small polygons, GEOS for the rest): only pairs of
simple polygons take the exact numpy intersection kernel. The robust
orientation helpers the kernel shares live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tcmbench.eval.monotone import chunks, monotone_simple

CoordMode = Literal["float64", "float32", "int32"]

# Pairs x edges x edges handled per kernel call: bounds the working memory
# (about 20 arrays of this many elements) whatever the number of images.
KERNEL_CHUNK_ELEMENTS = 1 << 17
# Polygons with more vertices than this skip the dense numpy simplicity test
# (its cost is quadratic) and are checked by GEOS instead.
DENSE_SIMPLE_TEST_VERTICES = 24
# Relative error bound of an orientation test; see orientation_tolerance.
ORIENT_REL_TOL = 1e-13
# Integer coordinates below this (in a pair's local frame) make every
# orientation test exact in float64.
EXACT_LIMIT = 2.0**25
_HUGE = 1e150
_INT32_SPAN = 2.0**32
_INT32_HALF = 2.0**31


def bucket(n: np.ndarray) -> np.ndarray:
    """Padded vertex count used to group polygons for the dense kernels:
    exact up to 16 (text boxes have 4 to 16 points), then multiples of 8 up
    to 64, then powers of two."""
    n = np.asarray(n, dtype=np.int64)
    big = np.left_shift(1, np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64))
    mid = (n + 7) // 8 * 8
    return np.where(n <= 16, np.maximum(n, 3), np.where(n <= 64, mid, big))


def unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D array: ``np.unique`` without its
    masked-array check, which imports ``numpy.ma`` (milliseconds of a
    ``score`` run's start-up)."""
    s = np.sort(np.asarray(values).ravel())
    if s.size == 0:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


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


def pack(
    polygons: Sequence[np.ndarray],
    coords: CoordMode = "float64",
    known_simple: np.ndarray | None = None,
) -> PolygonBatch:
    """Pack (N_i, 2) vertex arrays into a :class:`PolygonBatch`.

    ``coords`` says how the official script stores coordinates: ``int32``
    (RRC: ``int()`` into an int32 array), ``float32`` (the curved TIoU
    script) or ``float64``. Polygons with a non-finite coordinate (or one
    beyond 1e150), or with fewer than 3 distinct points, are *void*: area 0,
    no intersection with anything (Polygon3 gives NaN, inf or raises for
    them, which every official comparison turns into "no match, not
    don't-care").

    ``known_simple`` (optional, per polygon): True where a robust test has
    already shown the polygon, with exactly these coordinates, simple (the
    geometry limits test the same arrays first); it is trusted only where
    storing the coordinates as ``coords`` changes none of them.
    """
    flat, counts = flatten(polygons)
    return pack_flat(flat, counts, coords, known_simple)


def flatten(polygons: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of many polygons as one (V, 2) float64 array, and the
    count of each (a polygon given as a flat x, y list is reshaped)."""
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
    return flat, counts


def pack_flat(
    flat: np.ndarray,
    counts: np.ndarray,
    coords: CoordMode = "float64",
    known_simple: np.ndarray | None = None,
) -> PolygonBatch:
    """:func:`pack` of polygons already flattened (:func:`flatten`).

    Many polygons are packed a cache-sized run at a time and the runs joined:
    the same per-polygon results, with a tenth of the temporaries alive at
    once (fresh memory costs a page fault per page)."""
    counts = np.asarray(counts, dtype=np.int64)
    parts = chunks(counts)
    if len(parts) <= 1:
        return _pack_part(flat, counts, coords, known_simple)
    ends = np.concatenate(([0], np.cumsum(counts)))
    done = [
        _pack_part(
            flat[ends[lo] : ends[hi]],
            counts[lo:hi],
            coords,
            None if known_simple is None else known_simple[lo:hi],
        )
        for lo, hi in parts
    ]
    sizes = np.array([b.coords.shape[0] for b in done], dtype=np.int64)
    offsets = np.repeat(np.cumsum(sizes) - sizes, [len(b) for b in done])
    return PolygonBatch(
        coords=np.concatenate([b.coords for b in done]),
        start=np.concatenate([b.start for b in done]) + offsets,
        count=np.concatenate([b.count for b in done]),
        signed_area=np.concatenate([b.signed_area for b in done]),
        area=np.concatenate([b.area for b in done]),
        bbox=np.concatenate([b.bbox for b in done]),
        void=np.concatenate([b.void for b in done]),
        simple=np.concatenate([b.simple for b in done]),
        integral=np.concatenate([b.integral for b in done]),
    )


def _pack_part(
    flat: np.ndarray,
    counts: np.ndarray,
    coords: CoordMode,
    known_simple: np.ndarray | None = None,
) -> PolygonBatch:
    """:func:`pack_flat` of one run of polygons."""
    n = int(counts.size)
    total = int(counts.sum())
    raw = np.asarray(flat, dtype=np.float64)
    flat = convert_coords(raw, coords)
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    known = None
    if known_simple is not None and known_simple.any():
        known = np.asarray(known_simple, dtype=bool).copy()
        if flat is not raw:  # a certificate holds for the very coordinates it saw
            with np.errstate(invalid="ignore"):
                moved = (flat != raw).any(axis=1)  # NaN counts as moved
            known &= np.bincount(owner[moved], minlength=n) == 0
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
    batch.simple = _certainly_simple(batch, None if known is None else known & ~void)
    return batch


# --------------------------------------------------------------------------- predicates


def padded(
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


def signs(values: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """-1 / 0 / +1 where 0 means "within the rounding error of zero"."""
    return (values > tol).view(np.int8) - (values < -tol).view(np.int8)


def orientation_tolerance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row bound on the rounding error of an orientation test.

    With local coordinates of magnitude <= S, ``cross(r, d)`` has terms of
    magnitude <= 8 S^2 and its rounding error is a few ulps of that; the
    bound used is 1e-13 S^2, far above the error and far below 1 for image
    sized integer coordinates (whose non-zero orientations are >= 1/2).
    """
    scale = np.maximum(np.abs(x).max(axis=1), np.abs(y).max(axis=1))
    return ORIENT_REL_TOL * scale * scale


def _certainly_simple(batch: PolygonBatch, known: np.ndarray | None = None) -> np.ndarray:
    """True where a polygon is robustly simple (GEOS would call it valid):
    no two non-adjacent edges touch, no two adjacent edges fold back onto
    each other, non-zero area. False means "not certain": such polygons go
    through GEOS, which decides exactly. ``known``: polygons already shown
    robustly simple (:func:`pack`'s ``known_simple``), not tested again."""
    if known is None or not known.any():
        out = np.zeros(len(batch), dtype=bool)
        todo = None
        tested = batch
    else:
        out = known.copy()
        todo = np.flatnonzero(~known)
        tested = _subset(batch, todo)
    sure = np.zeros(len(tested), dtype=bool)
    for lo, hi in chunks(tested.count):  # a few cache-sized passes
        part = _view(tested, lo, hi)
        star = _star_shaped(part)
        # Curved bands that are not star-shaped: monotone along an axis.
        unsure = np.flatnonzero(~star & ~part.void & (part.area > 0))
        if unsure.size:
            star[unsure] = monotone_simple(part.coords, part.start, part.count, unsure)
        sure[lo:hi] = star
    if todo is None:
        out = sure
    else:
        out[todo] = sure
    rest = ~out & ~batch.void & (batch.area > 0)
    # Larger polygons: GEOS's O(n log n) validity test beats the dense one.
    big = np.flatnonzero(rest & (batch.count > DENSE_SIMPLE_TEST_VERTICES))
    if big.size:
        out[big] = geos_valid(batch, big)
    cand = np.flatnonzero(rest & (batch.count <= DENSE_SIMPLE_TEST_VERTICES))
    if cand.size == 0:
        return out
    sizes = bucket(batch.count[cand])
    for size in unique(sizes):
        group = cand[sizes == size]
        size = int(size)
        per = max(1, KERNEL_CHUNK_ELEMENTS // (size * (size + 1)))
        for lo in range(0, group.size, per):
            idx = group[lo : lo + per]
            out[idx] = _simple_chunk(batch, idx, size)
    return out


def _subset(batch: PolygonBatch, idx: np.ndarray) -> PolygonBatch:
    """Polygons ``idx`` of ``batch`` as a batch of their own (copies)."""
    cnt = batch.count[idx]
    first = np.cumsum(cnt) - cnt
    pos = np.repeat(batch.start[idx] - first, cnt) + np.arange(int(cnt.sum()), dtype=np.int64)
    return PolygonBatch(
        coords=batch.coords[pos],
        start=first,
        count=cnt,
        signed_area=batch.signed_area[idx],
        area=batch.area[idx],
        bbox=batch.bbox[idx],
        void=batch.void[idx],
        simple=batch.simple[idx],
        integral=batch.integral[idx],
    )


def _view(batch: PolygonBatch, lo: int, hi: int) -> PolygonBatch:
    """Polygons ``lo`` to ``hi - 1`` of ``batch`` as a batch of their own
    (views, no copies: a batch's polygons are stored back to back)."""
    s0 = int(batch.start[lo]) if hi > lo else 0
    s1 = int(batch.start[hi - 1] + batch.count[hi - 1]) if hi > lo else 0
    return PolygonBatch(
        coords=batch.coords[s0:s1],
        start=batch.start[lo:hi] - s0,
        count=batch.count[lo:hi],
        signed_area=batch.signed_area[lo:hi],
        area=batch.area[lo:hi],
        bbox=batch.bbox[lo:hi],
        void=batch.void[lo:hi],
        simple=batch.simple[lo:hi],
        integral=batch.integral[lo:hi],
    )


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
        elif own.size:  # the vertices of each polygon are consecutive: one reduceat
            heads = np.flatnonzero(np.concatenate(([True], own[1:] != own[:-1])))
            scale[own[heads]] = np.maximum.reduceat(extent, heads)
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
    x, y, emask = padded(batch, idx, size)
    ox, oy = x[:, :1], y[:, :1]
    x = x - ox
    y = y - oy
    tol = orientation_tolerance(x, y)[:, None, None]
    rx = x[:, 1:] - x[:, :-1]  # (k, size) edge vectors
    ry = y[:, 1:] - y[:, :-1]
    # O[k, i, j] = orientation of vertex j w.r.t. edge i, j in [0, size].
    dx = x[:, None, :] - x[:, :-1, None]
    dy = y[:, None, :] - y[:, :-1, None]
    orient = rx[:, :, None] * dy - ry[:, :, None] * dx
    s = signs(orient, tol)
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
        fine = collinear_disjoint(
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
            np.sqrt(tol[kb, 0, 0] / ORIENT_REL_TOL),
        )
        still_bad = np.bincount(kb[~fine], minlength=len(idx)) > 0
        ok = ~fold.any(axis=1) & ~still_bad
    return ok


def collinear_disjoint(
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


def geos_valid(batch: PolygonBatch, idx: np.ndarray) -> np.ndarray:
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
        out[unsure] = geos_valid(batch, idx[unsure])
    return out
