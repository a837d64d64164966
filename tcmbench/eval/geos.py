"""GEOS (shapely) for what the numpy paths leave: polygons that are not
certainly simple and degenerate contacts, built and repaired the way the
official scripts' libraries see them (``polygon3``: the even-odd faces of a
self-intersecting contour, as Polygon3 / GPC; ``make_valid``; ``buffer0``,
what the DetEval scripts use). shapely is imported on first use."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from tcmbench.eval.polygons import PolygonBatch

log = logging.getLogger(__name__)

Repair = Literal["polygon3", "make_valid", "buffer0"]
_REPAIR_KEY = {"polygon3": 0, "make_valid": 1, "buffer0": 2}


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
