"""TIoU (Liu et al., "Tightness-aware Evaluation Protocol for Scene Text
Detection"), as TIoU-metric's scripts compute it for each matched pair.

recall = inter * f(Ct / |G|) / union with Ct = |G| - inter; precision =
inter * f(Ot / |D|) / union with Ot the part of D covered by *other* GTs
outside G (``|D & U| - |(D & G) & U|``, U the union of the other GTs that
meet D, don't-care ones included, as the official condition tests the
matched GT's index rather than the other's); f(x) = 1 if x <= 0.01 else
1 - x; a failed assertion of the official code (Ct or Ot out of range, zero
area) gives 0. The curved script allows Ot <= |D|, the ICDAR 2015 one
Ot <= |D| + 0.001.

Ot is summed by inclusion-exclusion over the other GTs (the pairwise areas
are known from matching); only their overlaps need new geometry (GEOS
slivers, clipped by the kernel). A detection whose other GTs cannot cover
1% of it needs none: first by bounding boxes (and Ot <= |D| - |D & G|),
then by the exact pairwise areas (Ot <= their sum); f is then 1 whatever
Ot is.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tcmbench.eval.geos import geos_geometries, geos_geometry
from tcmbench.eval.intersection import intersection_area
from tcmbench.eval.iou_rules import BOUND_MARGIN
from tcmbench.eval.pairs import grouped_pairs
from tcmbench.eval.polygons import PolygonBatch, pack

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- TIoU


def _f(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.01, 1.0, 1.0 - x)


def tiou_values(
    G: PolygonBatch,
    D: PolygonBatch,
    ig: np.ndarray,
    idt: np.ndarray,
    bi: np.ndarray,
    inter: np.ndarray,
    m_pair: np.ndarray,
    mg: np.ndarray,
    md: np.ndarray,
    ot_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """TIoU recall and precision of each matched pair (see the module doc)."""
    if mg.size == 0:
        return np.zeros(0), np.zeros(0)
    a_g = G.area[mg]
    a_d = D.area[md]
    i_m = inter[m_pair]
    union = a_d + a_g - i_m
    with np.errstate(divide="ignore", invalid="ignore"):
        ct = a_g - i_m
        ok_r = (ct >= 0) & (ct <= a_g) & (a_g > 0) & (union != 0)
        rec = np.where(
            ok_r, i_m * _f(ct / np.where(a_g > 0, a_g, 1.0)) / np.where(union != 0, union, 1.0), 0.0
        )

    # Ot: the part of each matched detection covered by the other GTs.
    match_of_det = np.full(len(D), -1, dtype=np.int64)
    match_of_det[md] = mg
    other = (match_of_det[idt] >= 0) & (ig != match_of_det[idt])
    o_pos = np.flatnonzero(other)
    o_simple = G.simple[ig[o_pos]] & D.simple[idt[o_pos]]
    o_ub = np.where(
        o_simple, np.minimum(np.minimum(bi[o_pos], G.area[ig[o_pos]]), D.area[idt[o_pos]]), np.inf
    )
    bound = (
        np.bincount(idt[o_pos], weights=o_ub, minlength=len(D)) if o_pos.size else np.zeros(len(D))
    )
    # Ot = |(D & U) - G| <= |D| - |D & G| as well (simple polygons).
    all_simple = G.simple[mg] & D.simple[md]
    rest = np.where(all_simple, a_d - i_m, np.inf)
    exact_det = np.minimum(bound[md], rest) > 0.01 * a_d * BOUND_MARGIN
    ot = np.zeros(mg.size)
    if exact_det.any():
        wanted = np.zeros(len(D), dtype=bool)
        wanted[md[exact_det]] = True
        todo = o_pos[wanted[idt[o_pos]] & np.isnan(inter[o_pos])]
        if todo.size:
            inter[todo] = intersection_area(G, ig[todo], D, idt[todo])
        sel = o_pos[wanted[idt[o_pos]]]
        sel = sel[inter[sel] != 0]
        # With the exact pairwise areas, the union bound again: Ot <= sum of
        # |D & G_i| over the other GTs; at most 1% of |D| makes f(Ot / |D|)
        # 1 whatever Ot is, so no GT overlaps or slivers are needed.
        exact_sum = np.bincount(idt[sel], weights=inter[sel], minlength=len(D))
        unsure = np.bincount(
            idt[sel],
            weights=(~o_simple[np.searchsorted(o_pos, sel)]).astype(np.float64),
            minlength=len(D),
        )
        negligible = (
            exact_det
            & all_simple
            & (unsure[md] == 0)
            & (exact_sum[md] <= 0.01 * a_d * BOUND_MARGIN)
        )
        if negligible.any():
            exact_det &= ~negligible
            wanted[md[negligible]] = False
            sel = sel[wanted[idt[sel]]]
        ot[exact_det] = _overlap_outside(G, D, ig, idt, inter, sel, mg[exact_det], md[exact_det])
    with np.errstate(divide="ignore", invalid="ignore"):
        ot = np.where(ot <= 1.0e-10, 0.0, ot)
        ok_p = (ot >= 0) & (ot <= a_d + ot_tolerance) & (a_d > 0) & (union != 0)
        prec = np.where(
            ok_p, i_m * _f(ot / np.where(a_d > 0, a_d, 1.0)) / np.where(union != 0, union, 1.0), 0.0
        )
    # Simple polygons never give more than 1; only Polygon3's raw area of a
    # bow-tie can (the official would report it): keep figures in [0, 1].
    return np.clip(rec, 0.0, 1.0), np.clip(prec, 0.0, 1.0)


# Above this many inclusion-exclusion terms for one detection, GEOS unions.
_MAX_TERMS = 64


def _overlap_outside(
    G: PolygonBatch,
    D: PolygonBatch,
    ig: np.ndarray,
    idt: np.ndarray,
    inter: np.ndarray,
    sel: np.ndarray,
    mg: np.ndarray,
    md: np.ndarray,
) -> np.ndarray:
    """Ot = |D & U| - |(D & G) & U| for each matched (G, D), U = union of the
    other GTs meeting D (``sel``: their pair positions), by inclusion-exclusion:

        Ot = sum over non-empty A of the other GTs of
             (-1)^(|A|+1) * (|D & G_A| - |D & G & G_A|),   G_A = intersection of A.

    Only sets A whose members overlap pairwise can be non-zero, and text
    GTs overlap little. When the other GTs do not overlap one another (the
    usual case, handled with array operations) the sum is the pairwise areas
    already known minus the triple overlaps D & G & G_i where G_i overlaps
    G -- small slivers GEOS builds and the kernel clips. Detections whose
    other GTs overlap each other take the general sum (Python, per
    detection); non-simple polygons and dense overlap clusters go through
    GEOS unions, as the official.
    """
    out = np.zeros(mg.size)
    if sel.size == 0:
        return out
    k_of_det = np.full(len(D), -1, dtype=np.int64)
    k_of_det[md] = np.arange(md.size)
    rows_k = k_of_det[idt[sel]]
    order = np.argsort(rows_k, kind="stable")
    sel, rows_k = sel[order], rows_k[order]
    rows_g, rows_i = mg[rows_k], ig[sel]
    # Overlaps among the GTs involved: (G, G_i) per row, (G_i, G_j) per
    # pair of rows of one detection.
    pa, pb = grouped_pairs(rows_k, rows_k)
    keep = pa < pb
    pa, pb = pa[keep], pb[keep]
    lo = np.concatenate([np.minimum(rows_g, rows_i), np.minimum(rows_i[pa], rows_i[pb])])
    hi = np.concatenate([np.maximum(rows_g, rows_i), np.maximum(rows_i[pa], rows_i[pb])])
    n_g = len(G) + 1
    keys, inverse = np.unique(lo * n_g + hi, return_inverse=True)
    areas = intersection_area(G, keys // n_g, G, keys % n_g)[inverse]
    gi_area, ij_area = areas[: rows_k.size], areas[rows_k.size :]
    simple = G.simple[rows_g] & G.simple[rows_i] & D.simple[idt[sel]]
    general = np.zeros(mg.size, dtype=bool)
    general[rows_k[~simple]] = True
    general[rows_k[pa[ij_area != 0]]] = True
    # Usual case: Ot = sum |D & G_i| - sum over G_i overlapping G of |D & G & G_i|.
    plain = ~general[rows_k]
    out += np.bincount(rows_k[plain], weights=inter[sel[plain]], minlength=mg.size)
    triple = plain & (gi_area != 0)
    jobs: list[tuple[int, float, int, tuple[int, ...]]] = [
        (k, -1.0, d, (min(g, i), max(g, i)))
        for k, d, g, i in zip(
            rows_k[triple].tolist(),
            idt[sel[triple]].tolist(),
            rows_g[triple].tolist(),
            rows_i[triple].tolist(),
        )
    ]
    # General case, per detection.
    union_rows: list[int] = []
    if general.any():
        pair_area = dict(zip(zip(lo.tolist(), hi.tolist()), areas.tolist()))

        def overlap(x: int, y: int) -> bool:
            return pair_area.get((x, y) if x < y else (y, x), 0.0) != 0.0

        starts = np.searchsorted(rows_k, np.arange(mg.size), side="left")
        stops = np.searchsorted(rows_k, np.arange(mg.size), side="right")
        for k in np.flatnonzero(general).tolist():
            g, d = int(mg[k]), int(md[k])
            pos_list = sel[starts[k] : stops[k]]
            members = [int(x) for x in ig[pos_list]]
            if not (D.simple[d] and G.simple[g] and all(G.simple[m] for m in members)):
                union_rows.append(k)
                continue
            cliques = _cliques(members, overlap, _MAX_TERMS)
            if cliques is None:
                union_rows.append(k)
                continue
            out[k] = float(np.sum(inter[pos_list]))
            for clique in cliques:
                sign = 1.0 if len(clique) % 2 == 1 else -1.0
                if len(clique) > 1:
                    jobs.append((k, sign, d, tuple(sorted(clique))))
                if all(overlap(g, m) for m in clique):
                    jobs.append((k, -sign, d, tuple(sorted((g, *clique)))))
        for k in union_rows:
            g, d = int(mg[k]), int(md[k])
            out[k] = _geos_overlap_outside(
                G, D, g, d, [int(x) for x in ig[sel[starts[k] : stops[k]]]]
            )
    if jobs:
        clipped = _clipped_areas(G, D, jobs, mg.size)
        if union_rows:
            clipped[union_rows] = 0.0
        out += clipped
    return out


def _cliques(members: list[int], overlap: Any, limit: int) -> list[list[int]] | None:
    """Every non-empty set of ``members`` that overlap pairwise (None when
    there are more than ``limit``)."""
    out: list[list[int]] = []

    def grow(clique: list[int], rest: list[int]) -> bool:
        for i, m in enumerate(rest):
            new = clique + [m]
            out.append(new)
            if len(out) > limit:
                return False
            nxt = [r for r in rest[i + 1 :] if overlap(m, r)]
            if nxt and not grow(new, nxt):
                return False
        return True

    return out if grow([], members) else None


def _clipped_areas(
    G: PolygonBatch,
    D: PolygonBatch,
    jobs: list[tuple[int, float, int, tuple[int, ...]]],
    size: int,
) -> np.ndarray:
    """Sum over jobs (k, sign, d, S) of sign * |D_d & (intersection of G_S)|
    per k: each distinct intersection of GTs is built once (GEOS,
    vectorised by set size), then clipped by its detection."""
    import shapely

    keys = sorted({job[3] for job in jobs})
    sliver: dict[tuple[int, ...], Any] = {}
    by_len: dict[int, list[tuple[int, ...]]] = {}
    for key in keys:
        by_len.setdefault(len(key), []).append(key)
    for group in by_len.values():
        idx = np.array(group, dtype=np.int64)  # (n, length)
        geoms = geos_geometries(G, idx.reshape(-1)).reshape(idx.shape)
        try:
            parts = shapely.intersection_all(geoms, axis=1)
        except shapely.errors.GEOSException:
            parts = np.array(
                [_safe_geom(lambda row=row: shapely.intersection_all(row)) for row in geoms],
                dtype=object,
            )
        sliver.update(zip(group, np.asarray(parts, dtype=object)))
    ks = np.array([job[0] for job in jobs], dtype=np.int64)
    signs = np.array([job[1] for job in jobs])
    dets = np.array([job[2] for job in jobs], dtype=np.int64)
    # The slivers are polygons again: clip them with the kernel (GEOS only
    # for slivers with holes).
    key_index = {key: i for i, key in enumerate(keys)}
    sl = np.empty(len(keys), dtype=object)
    sl[:] = [sliver[key] for key in keys]
    sl[shapely.is_empty(sl) | shapely.is_missing(sl)] = None
    parts, owner = shapely.get_parts(sl, return_index=True)
    holes = shapely.get_num_interior_rings(parts) > 0
    polys = shapely.get_exterior_ring(parts[~holes])
    coords, ring = shapely.get_coordinates(polys, return_index=True)
    counts = np.bincount(ring, minlength=polys.size)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    batch = pack([coords[bounds[i] : bounds[i + 1]] for i in range(polys.size)], "float64")
    part_owner = owner[~holes]
    areas = np.zeros(len(jobs))
    job_key = np.array([key_index[job[3]] for job in jobs], dtype=np.int64)
    # every (job, part of its sliver) pair
    order = np.argsort(part_owner, kind="stable")
    first = np.searchsorted(part_owner[order], job_key, side="left")
    last = np.searchsorted(part_owner[order], job_key, side="right")
    rep = last - first
    job_rows = np.repeat(np.arange(len(jobs)), rep)
    part_rows = order[
        np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep) + np.repeat(first, rep)
    ]
    if job_rows.size:
        areas += np.bincount(
            job_rows,
            weights=intersection_area(batch, part_rows, D, dets[job_rows]),
            minlength=len(jobs),
        )
    holed = set(owner[holes].tolist())
    if holed:
        for j, key in enumerate(job_key.tolist()):
            if key in holed:
                part_geoms = parts[holes & (owner == key)]
                d_geom = geos_geometry(D, int(dets[j]))
                areas[j] += sum(
                    _safe_area(lambda a=a, b=d_geom: shapely.intersection(a, b)) for a in part_geoms
                )
    return np.bincount(ks, weights=signs * np.nan_to_num(areas), minlength=size)


def _safe_geom(fn: Any) -> Any:
    import shapely

    try:
        return fn()
    except shapely.errors.GEOSException:
        return None


def _safe_area(fn: Any) -> float:
    import shapely

    try:
        return float(shapely.area(fn()))
    except shapely.errors.GEOSException:
        return 0.0


def _geos_overlap_outside(
    G: PolygonBatch, D: PolygonBatch, g: int, d: int, others: list[int]
) -> float:
    import shapely

    gd = geos_geometry(D, d)
    gg = geos_geometry(G, g)
    parts = [geos_geometry(G, i) for i in others]
    parts = [x for x in parts if x is not None]
    if gd is None or gg is None or not parts:
        return 0.0
    try:
        union = shapely.union_all(parts)
        covered = shapely.area(shapely.intersection(gd, union))
        inside = shapely.area(shapely.intersection(shapely.intersection(gd, gg), union))
    except shapely.errors.GEOSException as exc:  # the official catches and scores 0
        log.warning("TIoU: GEOS failed on an overlap (%s); precision term counted as 0", exc)
        return float("inf")
    return float(covered - inside)
