"""Per-image intersection tables of the DetEval family (Total-Text's
``Deteval.py``, the ICDAR 2013 protocols): every (ground truth, detection)
pair of an image, its intersection area and the raw areas the official
scripts divide by.

The images of a chunk are flattened, pairs are pruned by bounding boxes,
and the overlapping pairs go through the numpy intersection kernel of
:mod:`tcmbench.eval.intersection` at once. The kernel agrees with GEOS up
to the last bits; where the official result could depend on those bits (a
protocol's ``recheck``), the pair is recomputed with GEOS exactly as the
official script computes it (``buffer(0)``-repaired polygons, official
operand order). Raw areas come from GEOS (``shapely.area``), as in the
official scripts.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.eval.intersection import intersection_area
from tcmbench.eval.polygons import bucket, flatten, pack_flat, unique

log = logging.getLogger(__name__)

# Pairs of polygons evaluated per chunk: bounds the working memory
# (a few int64 / float64 arrays of this length) whatever the image count.
PAIR_BUDGET = 200_000
# Threads computing the geometry of upcoming chunks (see iter_image_overlaps).
WORKERS = min(2, os.cpu_count() or 1)


class GeosPolygons:
    """Many polygons as the official scripts' ``shapely.Polygon(points)``.

    ``area`` is the raw (unrepaired) area GEOS gives such a polygon, 0
    where it cannot be built (fewer than 3 points, a non-finite
    coordinate; ``usable`` marks the others), computed here bit for bit
    as GEOS computes it (:func:`geos_ring_areas`), so that scoring needs no
    GEOS object unless a pair is recomputed the official way: ``geoms``
    (None where unusable) is built on first use. ``bounds`` is (minx, miny,
    maxx, maxy) from the raw points, NaN where unusable, so a NaN never
    passes a bounding-box test.
    """

    def __init__(
        self,
        area: np.ndarray,
        bounds: np.ndarray,
        usable: np.ndarray,
        points: list[np.ndarray],
        flat: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        self.area = area
        self.bounds = bounds
        self.usable = usable
        self.points = points  # (N_i, 2) float64 views of ``flat``
        self.flat = flat  # every vertex, polygon after polygon
        self.counts = counts
        self._geoms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points)

    @property
    def geoms(self) -> np.ndarray:
        """Shapely polygons (object array, None where unusable), built once."""
        if self._geoms is None:
            geoms = np.full(len(self.points), None, dtype=object)
            idx = np.flatnonzero(self.usable)
            if idx.size:
                flat, starts, sizes = self._usable_rings()
                geoms[idx] = _closed_polygons(flat, starts, sizes)
            self._geoms = geoms
        return self._geoms

    def _usable_rings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The vertices of the usable polygons, their starts and sizes."""
        flat = self.flat[np.repeat(self.usable, self.counts)]
        sizes = self.counts[self.usable]
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        return flat, starts, sizes


def geos_polygons(polygons: Sequence[np.ndarray]) -> GeosPolygons:
    """The polygons of a flat list of N x 2 point arrays, at once (see
    :class:`GeosPolygons`)."""
    n = len(polygons)
    all_flat, counts = flatten(polygons)
    ends = np.cumsum(counts).tolist()
    pts = [all_flat[e - c : e] for e, c in zip(ends, counts.tolist())]
    usable = counts >= 3
    area = np.zeros(n, dtype=np.float64)
    bounds = np.full((n, 4), np.nan, dtype=np.float64)
    out = GeosPolygons(area, bounds, usable, pts, all_flat, counts)
    if n == 0:
        return out
    point_ok = np.isfinite(all_flat).all(axis=1)
    if not point_ok.all():
        owner = np.repeat(np.arange(n), counts)
        usable &= np.bincount(owner[~point_ok], minlength=n) == 0
    idx = np.flatnonzero(usable)
    if idx.size:
        flat, starts, sizes = out._usable_rings()
        area[idx] = geos_ring_areas(flat, starts, sizes)
        bounds[idx, :2] = np.minimum.reduceat(flat, starts, axis=0)
        bounds[idx, 2:] = np.maximum.reduceat(flat, starts, axis=0)
    return out


def _closed_rings(
    flat: np.ndarray, starts: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive rings closed as ``shapely.Polygon(points)`` closes them
    (the first point repeated at the end unless it is there already): the
    closed coordinates and the ring offsets."""
    last = starts + sizes - 1
    open_ring = ~(flat[starts] == flat[last]).all(axis=1)
    n_out = sizes + open_ring
    ring_offsets = np.concatenate(([0], np.cumsum(n_out)))
    closed = np.empty((int(ring_offsets[-1]), 2), dtype=np.float64)
    dest = np.arange(flat.shape[0]) + np.repeat(ring_offsets[:-1] - starts, sizes)
    closed[dest] = flat
    closing = ring_offsets[1:][open_ring] - 1
    closed[closing] = flat[starts[open_ring]]
    return closed, ring_offsets


def _closed_polygons(flat: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Shapely polygons of :func:`_closed_rings`, in one ragged-array call."""
    import shapely

    closed, ring_offsets = _closed_rings(flat, starts, sizes)
    offsets = (ring_offsets, np.arange(sizes.size + 1))
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, closed, offsets)


def geos_ring_areas(flat: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``shapely.area(shapely.Polygon(points))`` of consecutive point lists,
    bit for bit, without building them: GEOS's shoelace (``Area::ofRing``)
    on the closed ring, x relative to the first point, terms
    ``x_i * (y_(i-1) - y_(i+1))`` summed left to right (``np.cumsum`` adds in
    that order), halved, absolute value. A closed ring of 3 coordinates is
    padded with its last point, as shapely's ragged-array constructor pads
    it. The DetEval scripts divide by these areas, so their last bits
    matter (tests/test_fast_paths.py compares with GEOS)."""
    closed, offsets = _closed_rings(flat, starts, sizes)
    length = np.maximum(np.diff(offsets), 4)
    out = np.zeros(sizes.size, dtype=np.float64)
    for size in unique(bucket(length)).tolist():
        group = np.flatnonzero(bucket(length) == size)
        n = length[group]
        j = np.arange(size)[None, :]
        # positions past a ring's end repeat its last coordinate: zero terms
        pos = offsets[group][:, None] + np.minimum(j, np.diff(offsets)[group][:, None] - 1)
        x = closed[pos, 0]
        y = closed[pos, 1]
        with np.errstate(invalid="ignore", over="ignore"):
            terms = (x[:, 1:-1] - x[:, :1]) * (y[:, :-2] - y[:, 2:])
            terms[np.arange(size - 2)[None, :] >= (n - 2)[:, None]] = 0.0
            out[group] = np.abs(np.cumsum(terms, axis=1)[:, -1] / 2.0)
    return out


@dataclass
class ImageOverlap:
    """Dense tables of one image: ``inter[g, d]`` intersection areas (0 for
    pairs whose boxes do not overlap), raw areas of the GTs and detections,
    and whatever ``tag`` the caller attached to the image."""

    inter: np.ndarray
    gt_area: np.ndarray
    det_area: np.ndarray
    gt_points: list[np.ndarray]
    det_points: list[np.ndarray]
    tag: Any = None


ImageInput = (
    tuple[Sequence[np.ndarray], Sequence[np.ndarray]]
    | tuple[Sequence[np.ndarray], Sequence[np.ndarray], Any]
)


def iter_image_overlaps(
    images: Iterable[ImageInput],
    *,
    repair: bool,
    det_first: bool,
    pair_budget: int | None = None,
    recheck: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    workers: int | None = None,
) -> Iterator[ImageOverlap]:
    """Yield the intersection table of each image, in order, streaming.

    ``images`` yields (gt polygons, det polygons[, tag]). Images are pulled
    and processed in chunks of about ``pair_budget`` GT x det pairs
    (default :data:`PAIR_BUDGET`), so memory stays flat in the number of
    images even for a lazy source. ``repair`` intersects
    ``buffer(0)``-repaired polygons (Total-Text's Deteval.py); ``det_first``
    keeps the official operand order of ``intersection`` (GEOS may differ in
    the last bit when the operands are swapped).

    ``recheck``: None computes every intersection with GEOS as the official
    script does. Otherwise intersections come from the fast numpy kernel of
    :mod:`tcmbench.eval.intersection` (exact up to rounding in the last bits),
    and ``recheck(inter, gt_area, det_area)`` returns the pairs whose
    outcome could depend on those last bits; they are recomputed with GEOS.
    ``workers`` (default :data:`WORKERS`) threads compute chunks ahead.
    """
    budget = PAIR_BUDGET if pair_budget is None else pair_budget
    n_workers = WORKERS if workers is None else max(1, workers)
    chunks = _chunks(images, budget)
    first = next(chunks, None)
    second = next(chunks, None)
    chunks = itertools.chain([c for c in (first, second) if c is not None], chunks)
    if n_workers == 1 or second is None:  # one chunk (a usual set): no threads to start
        for chunk in chunks:
            yield from _chunk_overlaps(chunk, repair=repair, det_first=det_first, recheck=recheck)
        return
    # Geometry of the next chunks runs in worker threads (GEOS and numpy
    # release the GIL) while the caller matches the current one; at most
    # ``n_workers`` chunks are in flight, so memory stays bounded.
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="deteval") as pool:
        in_flight: deque[Future[list[ImageOverlap]]] = deque()
        for chunk in chunks:
            in_flight.append(
                pool.submit(
                    _chunk_overlaps, chunk, repair=repair, det_first=det_first, recheck=recheck
                )
            )
            if len(in_flight) >= n_workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()


def _chunks(images: Iterable[ImageInput], budget: int) -> Iterator[list[ImageInput]]:
    """Consecutive images grouped to about ``budget`` GT x det pairs."""
    pending: list[ImageInput] = []
    pairs = 0
    for image in images:
        n = len(image[0]) * len(image[1])
        if pending and pairs + n > budget:
            yield pending
            pending, pairs = [], 0
        pending.append(image)
        pairs += n
    if pending:
        yield pending


def _chunk_overlaps(
    images: Sequence[ImageInput],
    *,
    repair: bool,
    det_first: bool,
    recheck: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
) -> list[ImageOverlap]:
    gt_counts = np.array([len(im[0]) for im in images], dtype=np.int64)
    det_counts = np.array([len(im[1]) for im in images], dtype=np.int64)
    gts = geos_polygons([p for im in images for p in im[0]])
    dets = geos_polygons([p for im in images for p in im[1]])
    gt_off = np.concatenate(([0], np.cumsum(gt_counts)[:-1]))
    det_off = np.concatenate(([0], np.cumsum(det_counts)[:-1]))

    per_image = gt_counts * det_counts
    total = int(per_image.sum())
    pair_start = np.concatenate(([0], np.cumsum(per_image)[:-1]))
    inter = np.zeros(total, dtype=np.float64)
    if total:
        img = np.repeat(np.arange(len(images)), per_image)
        local = np.arange(total, dtype=np.int64) - pair_start[img]
        nd = det_counts[img]
        gi = gt_off[img] + local // nd
        di = det_off[img] + local % nd
        del img, local, nd
        gb, db = gts.bounds[gi], dets.bounds[di]
        # Strict overlap: boxes that only touch have a zero-area intersection.
        cand = (
            (gb[:, 0] < db[:, 2])
            & (db[:, 0] < gb[:, 2])
            & (gb[:, 1] < db[:, 3])
            & (db[:, 1] < gb[:, 3])
        )
        del gb, db
        pos = np.flatnonzero(cand)
        if pos.size:
            gi, di = gi[pos], di[pos]
            if recheck is None:
                inter[pos] = _geos_intersections(
                    gts, dets, gi, di, repair=repair, det_first=det_first
                )
            else:
                fast = intersection_area(
                    pack_flat(gts.flat, gts.counts),
                    gi,
                    pack_flat(dets.flat, dets.counts),
                    di,
                    repair="buffer0",
                )
                redo = np.flatnonzero(recheck(fast, gts.area[gi], dets.area[di]))
                if redo.size:
                    fast[redo] = _geos_intersections(
                        gts, dets, gi[redo], di[redo], repair=repair, det_first=det_first
                    )
                inter[pos] = fast
    out = []
    for i, image in enumerate(images):
        ng, nd_i = int(gt_counts[i]), int(det_counts[i])
        s = int(pair_start[i])
        out.append(
            ImageOverlap(
                inter=inter[s : s + ng * nd_i].reshape(ng, nd_i),
                gt_area=gts.area[gt_off[i] : gt_off[i] + ng],
                det_area=dets.area[det_off[i] : det_off[i] + nd_i],
                gt_points=gts.points[gt_off[i] : gt_off[i] + ng],
                det_points=dets.points[det_off[i] : det_off[i] + nd_i],
                tag=image[2] if len(image) > 2 else None,
            )
        )
    return out


def _geos_intersections(
    gts: GeosPolygons,
    dets: GeosPolygons,
    gi: np.ndarray,
    di: np.ndarray,
    *,
    repair: bool,
    det_first: bool,
) -> np.ndarray:
    """Intersection areas exactly as the official scripts compute them:
    GEOS on (optionally ``buffer(0)``-repaired) polygons, official operand
    order. Only the polygons that occur in a pair are repaired."""
    import shapely

    ga = gts.geoms
    da = dets.geoms
    if repair:
        ga = np.full(len(gts), None, dtype=object)
        needed = unique(gi)
        ga[needed] = shapely.buffer(gts.geoms[needed], 0)
        da = np.full(len(dets), None, dtype=object)
        needed = unique(di)
        da[needed] = shapely.buffer(dets.geoms[needed], 0)
    a, b = (da[di], ga[gi]) if det_first else (ga[gi], da[di])
    try:
        return np.nan_to_num(shapely.area(shapely.intersection(a, b)), nan=0.0)
    except shapely.errors.GEOSException:
        pass
    # GEOS gave up on some pair (the official script would stop there):
    # score that pair as no overlap rather than lose the run.
    out = np.zeros(len(a), dtype=np.float64)
    for k, (x, y) in enumerate(zip(a, b)):
        try:
            out[k] = np.nan_to_num(shapely.area(shapely.intersection(x, y)), nan=0.0)
        except shapely.errors.GEOSException as exc:
            log.warning("GEOS could not intersect two polygons (%s); counted as no overlap", exc)
    return out


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0 (where the official raises
    ZeroDivisionError or uses 0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    zero = den == 0
    if not zero.any():
        return num / den
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=~zero)
    return out
