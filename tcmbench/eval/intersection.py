"""Exact intersection areas of many polygon pairs at once.

Evaluation needs the intersection area of many (ground truth, detection)
pairs; calling GEOS pair by pair costs 20-50 us a pair. Pairs of *simple*
polygons (the overwhelming majority, see :func:`tcmbench.eval.polygons.pack`)
go through an exact numpy kernel that handles thousands of pairs per call:
the intersection's boundary is made of the pieces of each polygon's edges
that lie inside the other polygon, so its area is a sum of
``cross(p, q) / 2`` over those pieces (Green's theorem). Robust orientation
tests with an error bound decide every crossing; any pair where an edge
touches, grazes or overlaps an edge of the other polygon (shared edges,
vertices on edges: the classic degenerate cases) is sent to GEOS
(:mod:`tcmbench.eval.geos`), as are polygons that are not certainly simple.
Crossing points are computed as ``a + (r * o1) / (o1 - o2)`` so that
integer inputs whose true crossing is an integer point (axis-aligned boxes)
give exact areas, which keeps IoU ties such as exactly 0.5 exact, as
Polygon3 has them.

Non-simple contours are intersected as regions under the even-odd rule
(GPC's fill rule, hence Polygon3's): for a self-intersecting quad that
equals shapely's ``make_valid`` (both lobes of a bow-tie), as PROTOCOLS.md
states; for more complex contours ``make_valid`` differs from Polygon3 and
the even-odd faces do not (tests/test_polygon3_oracle.py checks both
against Polygon3). ``repair="make_valid"`` and ``repair="buffer0"`` (the
DetEval scripts' repair) are available too.
"""

from __future__ import annotations

import numpy as np

from tcmbench.eval.geos import Repair, geos_intersection_area
from tcmbench.eval.pairs import bbox_overlap_area
from tcmbench.eval.polygons import (
    EXACT_LIMIT,
    KERNEL_CHUNK_ELEMENTS,
    ORIENT_REL_TOL,
    PolygonBatch,
    bucket,
    collinear_disjoint,
    orientation_tolerance,
    padded,
    signs,
)


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
    na = bucket(a.count[ia])
    nb = bucket(b.count[ib])
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
    ax, ay, amask = padded(a, ia, n)  # (k, n+1), (k, n)
    bx, by, bmask = padded(b, ib, m)
    # Local origin: smaller numbers, smaller rounding error; exact for ints.
    ox = a.bbox[ia, 0:1]
    oy = a.bbox[ia, 1:2]
    ax = ax - ox
    ay = ay - oy
    bx = bx - ox
    by = by - oy
    tol = np.maximum(orientation_tolerance(ax, ay), orientation_tolerance(bx, by))
    # Integer coordinates below 2^25: every orientation test is exact, and a
    # zero is resolved by simulation of simplicity -- b is shifted by an
    # infinitesimal (eps, eps^2), which removes every touching / collinear
    # configuration while the area (continuous) keeps its value.
    exact = a.integral[ia] & b.integral[ib] & (tol < ORIENT_REL_TOL * EXACT_LIMIT**2)
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
    sab = signs(oab, tol[:, None, None])
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
        scale = np.sqrt(tol[kt] / ORIENT_REL_TOL)
        fine = collinear_disjoint(
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
    s_a0 = signs(o_a0, tol[:, None])
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
