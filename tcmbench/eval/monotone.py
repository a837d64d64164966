"""An O(n log n) certificate of simplicity for curved text bands.

A text band (CTW1500's 14-point polygons, a detector's contour of a curved
word) runs along a spine: its outline is an upper and a lower chain from one
end of the band to the other. When both chains are strictly monotone along
an axis and one lies strictly on one side of the other at every vertex, the
polygon is simple. This holds for most bands that the star-shapedness test
(:func:`tcmbench.eval.polygons._star_shaped`) misses: an arc seen from the
middle of its spine hides its ends, but is still monotone along the axis
the band mostly runs along.

The test is exact where it says "simple": the order along the axis is the
lexicographic order of the coordinates themselves (x, then y; or y, then
x), compared exactly -- no rotated coordinate, no rounding -- and the only
rounded quantity, each side test, must clear a bound far above its rounding
error. Why "h > 0 at every vertex" suffices: with both chains monotone
along the (infinitesimally tilted) axis, the gap between the chains is
linear between consecutive vertices of either chain, so a gap of one sign
at every vertex has that sign everywhere strictly between the two ends: the
chains meet only at the ends, and the outline is a simple closed curve of
positive area, with no two edges touching or folding back (what GEOS's
``is_valid`` asks). Anything else -- ties, repeated points, more than one
turn along the axis, a side test within its bound, non-finite or extreme
coordinates -- answers "not certain", and the caller's exact test decides.
"""

from __future__ import annotations

import numpy as np

#: Relative bound on the rounding error of one side test (the true error is
#: a few ulps, about 1e-15, of the squared extent of the polygon).
SIDE_REL_TOL = 1e-12
#: Polygons whose extent is outside (TINY, HUGE) are left to the exact test
#: (squared extents would underflow to subnormals or overflow).
_TINY = 1e-100
_HUGE = 1e100
#: Vertices one pass of a vertex-wise test works on: its temporaries (a dozen
#: arrays of this many doubles) stay in the cache, and a run's peak memory --
#: each fresh page of which costs a page fault -- stays small.
CHUNK_VERTICES = 1 << 15


def chunks(counts: np.ndarray, limit: int = CHUNK_VERTICES) -> list[tuple[int, int]]:
    """Consecutive ranges ``[lo, hi)`` of polygons with about ``limit``
    vertices in all (``counts`` their vertex counts; a polygon larger than
    ``limit`` makes a range of its own)."""
    n = int(counts.size)
    if n == 0:
        return []
    ends = np.cumsum(counts)
    if int(ends[-1]) <= limit:
        return [(0, n)]
    out: list[tuple[int, int]] = []
    lo = 0
    while lo < n:
        base = int(ends[lo - 1]) if lo else 0
        hi = int(np.searchsorted(ends, base + limit, side="right"))
        hi = max(hi, lo + 1)
        out.append((lo, hi))
        lo = hi
    return out


def monotone_simple(
    coords: np.ndarray, start: np.ndarray, count: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """True where polygon ``idx[k]`` (vertices ``coords[start : start +
    count]``, either orientation) is certainly simple: monotone along x or
    along y with its chains robustly apart. False means "not certain"."""
    idx = np.asarray(idx, dtype=np.int64)
    out = np.zeros(idx.size, dtype=bool)
    parts = chunks(count[idx])
    if len(parts) > 1:
        for lo, hi in parts:
            out[lo:hi] = monotone_simple(coords, start, count, idx[lo:hi])
        return out
    sub = np.flatnonzero(count[idx] >= 3)
    if sub.size == 0:
        return out
    x, y, own, first, cnt = _gather(coords, start, count, idx[sub])
    with np.errstate(invalid="ignore", over="ignore"):
        span = np.maximum(
            np.maximum.reduceat(x, first) - np.minimum.reduceat(x, first),
            np.maximum.reduceat(y, first) - np.minimum.reduceat(y, first),
        )
        top = np.maximum.reduceat(np.maximum(np.abs(x), np.abs(y)), first)
        fine = (span > _TINY) & (span < _HUGE) & (top < _HUGE)  # False for NaN
    sub = sub[fine]
    tol = SIDE_REL_TOL * span[fine] ** 2
    res = np.zeros(sub.size, dtype=bool)
    for axes in (coords, coords[:, ::-1]):  # along x, then along y
        todo = np.flatnonzero(~res)
        if todo.size == 0:
            break
        x, y, own, first, cnt = _gather(axes, start, count, idx[sub[todo]])
        res[todo] = _along(x, y, own, first, cnt, tol[todo])
    out[sub] = res
    return out


def _gather(
    coords: np.ndarray, start: np.ndarray, count: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, owner of the vertices of polygons ``idx`` back to back, and the
    first position and count of each polygon's run."""
    cnt = count[idx]
    first = np.cumsum(cnt) - cnt
    total = int(cnt.sum())
    pos = np.repeat(start[idx] - first, cnt) + np.arange(total, dtype=np.int64)
    own = np.repeat(np.arange(idx.size, dtype=np.int64), cnt)
    return coords[pos, 0], coords[pos, 1], own, first, cnt


def _along(
    x: np.ndarray,
    y: np.ndarray,
    own: np.ndarray,
    first: np.ndarray,
    cnt: np.ndarray,
    tol: np.ndarray,
) -> np.ndarray:
    """The test along x (ties broken by y) of polygons laid out back to back
    (``own`` the polygon of each vertex, ``first`` / ``cnt`` its run)."""
    n = first.size
    total = x.size
    ar = np.arange(total, dtype=np.int64)
    local = ar - first[own]
    last = first + cnt - 1
    nxt = ar + 1
    nxt[last] = first
    prv = ar - 1
    prv[first] = last
    xn, yn = x[nxt], y[nxt]
    # Each edge runs up or down the order (exact comparisons); a repeated
    # point (an edge of length 0) is left to the exact test.
    up = (xn > x) | ((xn == x) & (yn > y))
    flat = (xn == x) & (yn == y)
    turn = up != up[prv]
    ok = (np.bincount(own[turn], minlength=n) == 2) & (np.bincount(own[flat], minlength=n) == 0)
    # One lowest and one highest vertex (where polygons are monotone; the
    # others are answered False whatever the arrays below hold).
    low = np.zeros(n, dtype=np.int64)
    high = np.zeros(n, dtype=np.int64)
    is_low = turn & up
    is_high = turn & ~up
    low[own[is_low]] = local[is_low]
    high[own[is_high]] = local[is_high]
    # Chain A runs up from the lowest vertex to the highest, chain B down
    # back to it. Lay each polygon out as: lowest, A's inner vertices, B's
    # inner vertices reversed, highest -- two sorted runs -- and merge them
    # with a stable sort of a key that follows the order; the merged order
    # is then checked exactly, so a rounded key can only cost a fallback.
    c = cnt[own]
    r = local - low[own]
    r += np.where(r < 0, c, 0)
    rh = high - low
    rh += np.where(rh < 0, cnt, 0)
    rh_v = rh[own]
    seq = np.where(r < rh_v, r, np.where(r == rh_v, c - 1, rh_v - 1 + c - r))
    layout = ar.copy()
    layout[first[own] + seq] = ar
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        x0 = np.minimum.reduceat(x, first)
        y0 = np.minimum.reduceat(y, first)
        xs = np.maximum.reduceat(x, first) - x0 + 1.0
        ys = np.maximum.reduceat(y, first) - y0 + 1.0
        key = (x - x0[own]) + (0.5 / ys)[own] * (y - y0[own])
        key = own + (0.9 / xs)[own] * key
    order = layout[np.argsort(key[layout], kind="stable")]
    sx, sy, so = x[order], y[order], own[order]
    rising = (sx[1:] > sx[:-1]) | ((sx[1:] == sx[:-1]) & (sy[1:] > sy[:-1]))
    ok &= np.bincount(so[1:][~rising & (so[1:] == so[:-1])], minlength=n) == 0
    ok &= np.bincount(own[so != own], minlength=n) == 0  # each polygon kept its block
    lowest = first + low
    highest = first + high
    on_a = up.copy()
    on_a[lowest] = True
    on_a[highest] = True
    on_b = ~up
    on_b[lowest] = True
    on_b[highest] = True
    # For each vertex, the vertices of each chain just before and after it in
    # the order: an edge of that chain (the two chains are monotone, so
    # neighbours in the order are neighbours along the chain).
    k = np.arange(total, dtype=np.int64)
    a_sorted, b_sorted = on_a[order], on_b[order]
    prev_a = np.maximum.accumulate(np.where(a_sorted, k, -1))
    prev_b = np.maximum.accumulate(np.where(b_sorted, k, -1))
    next_a = np.minimum.accumulate(np.where(a_sorted, k, total)[::-1])[::-1]
    next_b = np.minimum.accumulate(np.where(b_sorted, k, total)[::-1])[::-1]
    inner = (k != first[so]) & (k != first[so] + cnt[so] - 1)
    only_a = a_sorted & ~b_sorted & inner
    only_b = b_sorted & ~a_sorted & inner
    # Vertex of A against B's edge, vertex of B against A's edge.
    # (Out of range only for polygons already failed: clipped, not used.)
    e0 = np.clip(np.where(only_a, prev_b, prev_a), 0, total - 1)
    e1 = np.clip(np.where(only_a, next_b, next_a), 0, total - 1)
    test = only_a | only_b
    kk = np.flatnonzero(test)
    p0 = order[e0[kk]]
    p1 = order[e1[kk]]
    q = order[kk]
    with np.errstate(invalid="ignore", over="ignore"):
        side = (x[p1] - x[p0]) * (y[q] - y[p0]) - (y[p1] - y[p0]) * (x[q] - x[p0])
    t = tol[so[kk]]
    o = so[kk]
    is_a = only_a[kk]
    # A strictly on one side of B (orientation > 0: A to the left), B on the
    # other side of A: count each kind, every tested vertex must take one.
    a_left = np.bincount(o[is_a & (side > t)], minlength=n)
    a_right = np.bincount(o[is_a & (side < -t)], minlength=n)
    b_left = np.bincount(o[~is_a & (side > t)], minlength=n)
    b_right = np.bincount(o[~is_a & (side < -t)], minlength=n)
    n_a = np.bincount(o[is_a], minlength=n)
    n_b = np.bincount(o[~is_a], minlength=n)
    a_above = (a_left == n_a) & (b_right == n_b)
    b_above = (a_right == n_a) & (b_left == n_b)
    return ok & (n_a + n_b > 0) & (a_above | b_above)
