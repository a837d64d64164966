"""The geometry limits of one image, checked as ``evaluate()`` hands images
to a protocol (the limits themselves are in :mod:`tcmbench.data.schema`).

Exact intersections cost about (vertices of one polygon) x (vertices of the
other) per overlapping pair, and repairing a self-intersecting contour
about (its vertices, crossings included)^2, so one hostile image could
take minutes. Each image is measured before a protocol sees it: polygons
and points (MAX_IMAGE_POLYGONS, MAX_POLYGON_POINTS, MAX_IMAGE_WORK), then
overlapping (ground truth, detection) pairs (MAX_IMAGE_OVERLAPS) and their
vertex products plus repair work (MAX_IMAGE_PAIR_WORK); the error names
the sample and the polygon at which a running total passes its limit.

The pair measures are array work over many images at once: when a protocol
asks for an image of an in-memory mapping, the images that follow it (in
the ground truth's order: the numeric order every protocol walks, as the
readers sort) are measured in the same pass and their verdicts kept until
they are asked for. An image whose point counts alone bound it within both
limits (every ICDAR 2015 image: quads are never repaired) needs no
geometry; real polygons are shown simple by an O(n) star-shapedness test
or, for curved bands, the monotone test of :mod:`tcmbench.eval.monotone`;
the others have their crossings counted, all the small ones (up to
:data:`SMALL_CONTOUR_POINTS` points) in a few array operations, the larger
ones after a GEOS simplicity test (so scoring Total-Text, whose contours are
small, never imports shapely for the limits).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import compress
from typing import Any, NamedTuple

import numpy as np

from tcmbench.data.schema import image_work, limit, limit_hint
from tcmbench.errors import ProtocolError
from tcmbench.eval.monotone import chunks, monotone_simple
from tcmbench.eval.polygons import unique

#: Images measured in one pass, and the (ground truth, detection) pairs and
#: vertices one pass may hold (memory stays bounded).
BLOCK_IMAGES = 256
BLOCK_PAIRS = 400_000
BLOCK_VERTICES = 400_000


# --------------------------------------------------------------------------- polygons


def crossings(points: np.ndarray) -> int:
    """How many times the closed contour ``points`` crosses itself (proper
    crossings of non-adjacent edges), counted with one vectorised
    orientation test per edge pair: O(n^2) arithmetic but no geometry
    library, so even a hostile 1,024-point contour takes milliseconds (GEOS
    noding such a contour takes seconds)."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if n < 4:
        return 0
    a, b = pts, np.roll(pts, -1, axis=0)
    total = 0

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    for start in range(0, n, 256):  # rows in blocks: memory stays O(256 n)
        i = np.arange(start, min(start + 256, n))[:, None]
        j = np.arange(n)[None, :]
        # Each unordered pair once, adjacent edges (sharing a vertex) left out.
        pair = (j > i + 1) & ~((i == 0) & (j == n - 1))
        ai, bi = a[i[:, 0]][:, None, :], b[i[:, 0]][:, None, :]
        aj, bj = a[None, :, :], b[None, :, :]
        with np.errstate(all="ignore"):  # huge coordinates: NaN signs never count
            o1, o2 = orient(ai, bi, aj), orient(ai, bi, bj)
            o3, o4 = orient(aj, bj, ai), orient(aj, bj, bi)
        hit = pair & (o1 * o2 < 0) & (o3 * o4 < 0)
        total += int(hit.sum())
    return total


class _Flat:
    """Polygons as one (V, 2) float64 array plus per-polygon counts."""

    def __init__(self, polygons: Sequence[Any]) -> None:
        n = len(polygons)
        self.count = np.fromiter(map(len, polygons), dtype=np.int64, count=n)
        total = int(self.count.sum())
        self.coords = np.zeros((0, 2), dtype=np.float64)
        if total:
            try:  # (k, 2) arrays, as Instance / Prediction hold them
                self.coords = np.concatenate(polygons, axis=0, dtype=np.float64)
                if self.coords.ndim != 2 or self.coords.shape[1] != 2:
                    raise ValueError
            except (ValueError, TypeError):
                arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
                self.count = np.fromiter(map(len, arrays), dtype=np.int64, count=n)
                self.coords = np.concatenate(arrays, axis=0)
        self.start = np.cumsum(self.count) - self.count
        self.owner = np.repeat(np.arange(n, dtype=np.int64), self.count)

    def __len__(self) -> int:
        return int(self.count.size)

    def points(self, i: int) -> np.ndarray:
        s = int(self.start[i])
        return self.coords[s : s + int(self.count[i])]

    def boxes(self) -> np.ndarray:
        """(n, 4) xmin, ymin, xmax, ymax of the raw points (NaN where a
        coordinate is NaN: such a box overlaps nothing; no box at all, NaN,
        for a polygon without points)."""
        n = len(self)
        out = np.full((n, 4), np.nan)
        has = self.count > 0
        if has.any():
            starts = self.start[has]
            with np.errstate(invalid="ignore"):
                out[has, :2] = np.minimum.reduceat(self.coords, starts, axis=0)
                out[has, 2:] = np.maximum.reduceat(self.coords, starts, axis=0)
            # NaN propagates through minimum / maximum, as through ndarray.min
        return out

    def finite(self) -> np.ndarray:
        bad = ~np.isfinite(self.coords).all(axis=1)
        return np.bincount(self.owner[bad], minlength=len(self)) == 0


def _star_simple(flat: _Flat, idx: np.ndarray) -> np.ndarray:
    """True where polygon ``idx[k]`` (finite) is robustly star-shaped around
    its vertex mean, or else around the middle of its "spine" (vertices n/4
    and 3n/4: the centre of a curved text band): every edge turns strictly
    the same way around the point, one revolution in all. Such a polygon is
    simple. Orientation-free: clockwise contours are mirrored first."""
    out = np.zeros(idx.size, dtype=bool)
    if idx.size == 0:
        return out
    cnt = flat.count[idx]
    pos = np.repeat(flat.start[idx] - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))
    own = np.repeat(np.arange(idx.size), cnt)
    x, y = flat.coords[pos, 0], flat.coords[pos, 1]
    first = np.cumsum(cnt) - cnt
    nxt = np.arange(1, x.size + 1)
    nxt[first + cnt - 1] = first
    with np.errstate(invalid="ignore", over="ignore"):
        signed = np.bincount(own, weights=x * y[nxt] - x[nxt] * y, minlength=idx.size)
    sign = np.where(signed > 0, 1.0, -1.0)
    y = y * sign[own]  # clockwise contours mirrored: every contour counter-clockwise
    live = signed != 0

    # A repeated point (an edge of length 0) turns nowhere: it is skipped,
    # as GEOS and the crossing count ignore it.
    repeated = (x == x[nxt]) & (y == y[nxt])

    def around(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            ux, uy = x - cx[own], y - cy[own]
            wx, wy = ux[nxt], uy[nxt]
            cr = ux * wy - uy * wx
            scale = np.maximum.reduceat(np.maximum(np.abs(ux), np.abs(uy)), first)
            turning = (cr > 1e-12 * (scale * scale)[own]) | repeated
            bad = np.bincount(own[~turning], minlength=idx.size)
            turns = np.bincount(own[(uy < 0) & (wy >= 0)], minlength=idx.size)
        return (bad == 0) & (turns == 1)

    out = live & around(np.bincount(own, weights=x) / cnt, np.bincount(own, weights=y) / cnt)
    retry = live & ~out & (cnt >= 6)
    if retry.any():
        q1 = first + cnt // 4
        q3 = first + (cnt // 4 + cnt // 2) % cnt
        out |= retry & around(0.5 * (x[q1] + x[q3]), 0.5 * (y[q1] + y[q3]))
    return out


#: Contours of up to this many points that the star test leaves unsure have
#: their crossings counted by :func:`_small_crossings` (all of them in a few
#: array operations); larger ones are first tested by GEOS.
SMALL_CONTOUR_POINTS = 24


def _complexity(flat: _Flat, certified: np.ndarray | None = None) -> np.ndarray:
    """:func:`polygon_complexity` of the polygons of ``flat``; where given,
    ``certified`` is set True for the polygons the star or monotone test
    showed robustly simple (exactly these coordinates; others stay False)."""
    counts = flat.count.copy()
    # Polygons with non-finite points are void for every protocol (built in
    # code; the readers refuse them): nothing to repair.
    long = np.flatnonzero((counts > 4) & flat.finite())
    if long.size == 0:
        return counts
    sure = np.zeros(long.size, dtype=bool)
    for lo, hi in chunks(flat.count[long]):  # a few cache-sized passes
        part = long[lo:hi]
        star = _star_simple(flat, part)
        # Curved bands that are not star-shaped: monotone along an axis.
        star[~star] = monotone_simple(flat.coords, flat.start, flat.count, part[~star])
        sure[lo:hi] = star
    if certified is not None:
        certified[long[sure]] = True
    unsure = long[~sure]
    is_small = flat.count[unsure] <= SMALL_CONTOUR_POINTS
    small, unsure = unsure[is_small], unsure[~is_small]
    if small.size:
        counts[small] += 4 * _small_crossings(flat, small)
    if unsure.size:
        import shapely

        cnt = counts[unsure]
        first = np.cumsum(cnt) - cnt
        pos = np.repeat(flat.start[unsure] - first, cnt) + np.arange(int(cnt.sum()))
        try:
            rings = shapely.linearrings(
                flat.coords[pos], indices=np.repeat(np.arange(unsure.size), cnt)
            )
            suspects = unsure[~shapely.is_simple(rings)]
        except shapely.errors.GEOSException:  # extreme coordinates: count them all
            suspects = unsure
        for i in suspects.tolist():
            counts[i] += 4 * crossings(flat.points(i))
    return counts


def _small_crossings(flat: _Flat, idx: np.ndarray) -> np.ndarray:
    """:func:`crossings` of the small contours ``idx``, the contours of one
    size at once: the same orientation tests on the same numbers (so the
    same counts), without a Python call per contour (a simple contour
    counts 0, so no GEOS pre-test is needed)."""
    out = np.zeros(idx.size, dtype=np.int64)
    for n in unique(flat.count[idx]).tolist():
        sel = np.flatnonzero(flat.count[idx] == n)
        pos = flat.start[idx[sel]][:, None] + np.arange(n)[None, :]
        a = flat.coords[pos]  # (k, n, 2)
        b = np.roll(a, -1, axis=1)
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        pair = (j > i + 1) & ~((i == 0) & (j == n - 1))
        ai, bi = a[:, :, None, :], b[:, :, None, :]
        aj, bj = a[:, None, :, :], b[:, None, :, :]
        with np.errstate(all="ignore"):
            o1, o2 = _orient(ai, bi, aj), _orient(ai, bi, bj)
            o3, o4 = _orient(aj, bj, ai), _orient(aj, bj, bi)
        hit = pair & (o1 * o2 < 0) & (o3 * o4 < 0)
        out[sel] = hit.sum(axis=(1, 2))
    return out


def _orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sign of the turn p -> q -> r, as :func:`crossings` computes it."""
    return np.sign(
        (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
        - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
    )


def polygon_complexity(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Vertices the exact intersection code works with, per polygon: its
    points, plus four per self-crossing for a self-intersecting contour (its
    even-odd repair nodes the outline at every crossing, which GEOS then
    carries on both edges of both faces). Contours of up to 4 points are
    counted as they are; real data (simple polygons) is shown simple by an
    O(n) test, the rest by one vectorised GEOS call."""
    return _complexity(_Flat(polygons))


def _group_sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of consecutive groups of ``counts`` values (int64, exact)."""
    edges = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    ends = np.cumsum(counts)
    return edges[ends] - edges[ends - counts]


class _Measures:
    """The pair measures of a run of images at once: per detection, the
    ground-truth boxes its box overlaps (``pairs``) and the work of those
    pairs plus its own repair (``work``); per image, the repair work of its
    ground truth (``gt_repair``). Detections and images keep their order."""

    def __init__(self, gt_images: Sequence[Sequence[Any]], det_images: Sequence[Sequence[Any]]):
        n_img = len(gt_images)
        self.gt_count = np.fromiter(map(len, gt_images), dtype=np.int64, count=n_img)
        self.det_count = np.fromiter(map(len, det_images), dtype=np.int64, count=n_img)
        self.gt_polygons = [p for im in gt_images for p in im]
        self.det_polygons = [p for im in det_images for p in im]
        g, d = _Flat(self.gt_polygons), _Flat(self.det_polygons)
        self.gt_simple = np.zeros(len(g), dtype=bool)
        self.det_simple = np.zeros(len(d), dtype=bool)
        cg, cd = _complexity(g, self.gt_simple), _complexity(d, self.det_simple)
        self.gt_repair = _group_sums(np.where(cg > g.count, cg * cg, 0), self.gt_count)
        det_repair = np.where(cd > d.count, cd * cd, 0).astype(np.int64)
        self.pairs = np.zeros(len(d), dtype=np.int64)
        self.work = det_repair
        per_image = self.gt_count * self.det_count
        total = int(per_image.sum())
        if total == 0:
            return
        img = np.repeat(np.arange(n_img), per_image)
        local = np.arange(total, dtype=np.int64) - np.repeat(
            np.cumsum(per_image) - per_image, per_image
        )
        nd = self.det_count[img]
        gi = (np.cumsum(self.gt_count) - self.gt_count)[img] + local // nd
        di = (np.cumsum(self.det_count) - self.det_count)[img] + local % nd
        gb, db = g.boxes(), d.boxes()
        gb, db = gb[gi], db[di]
        hit = (
            (gb[:, 0] <= db[:, 2])
            & (db[:, 0] <= gb[:, 2])
            & (gb[:, 1] <= db[:, 3])
            & (db[:, 1] <= gb[:, 3])
        )
        gi, di = gi[hit], di[hit]
        self.pairs = np.bincount(di, minlength=len(d)).astype(np.int64)
        gt_side = np.rint(np.bincount(di, weights=cg[gi], minlength=len(d))).astype(np.int64)
        self.work = gt_side * cd + det_repair

    def image(self, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(pairs, work, gt repair) of image ``k``, as :func:`overlap_work`."""
        start = int(self.det_count[:k].sum())
        stop = start + int(self.det_count[k])
        return self.pairs[start:stop], self.work[start:stop], int(self.gt_repair[k])

    def over(self, overlaps_cap: int, work_cap: int) -> np.ndarray:
        """Images over either limit (the cheap test; details per image)."""
        pairs = _group_sums(self.pairs, self.det_count)
        work = _group_sums(self.work, self.det_count) + self.gt_repair
        return (pairs > overlaps_cap) | (work > work_cap) | (self.gt_repair > work_cap)


def overlap_work(
    gt_polygons: Sequence[np.ndarray], det_polygons: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The MAX_IMAGE_OVERLAPS / MAX_IMAGE_PAIR_WORK measures of one image
    (see data/schema.py): per detection, how many ground-truth boxes its box
    overlaps and the work of those pairs plus its own repair; and the repair
    work of the ground truth. Repairing a self-intersecting contour costs
    about (its vertices)^2, even when it overlaps nothing."""
    return _Measures([gt_polygons], [det_polygons]).image(0)


#: (limit name, total, cap, index of the detection where the running total
#: passes the cap, whether the ground truth alone passes it)
Problem = tuple[str, int, int, int, bool]


def _limit_problem(pairs: np.ndarray, work: np.ndarray, gt_repair: int) -> Problem | None:
    """The first limit one image's measures pass (see :data:`Problem`), or
    None: the overlaps first, then the work."""
    for name, per_det, base in (
        ("MAX_IMAGE_OVERLAPS", pairs, 0),
        ("MAX_IMAGE_PAIR_WORK", work, gt_repair),
    ):
        cap = limit(name)
        total = base + np.cumsum(per_det)
        worst = int(total[-1]) if total.size else base
        if worst > cap:
            k = int(np.searchsorted(total, cap, side="right")) if total.size else 0
            return name, worst, cap, k, base > cap
    return None


_WHAT = {
    "MAX_IMAGE_OVERLAPS": "overlapping (ground truth, detection) pairs",
    "MAX_IMAGE_PAIR_WORK": (
        "exact-geometry work (vertex products of overlapping pairs and of "
        "self-intersecting contours)"
    ),
}


# --------------------------------------------------------------------------- the checked views


def _in_memory(mapping: Mapping[str, Any]) -> bool:
    """Whether reading ``mapping`` ahead costs nothing (a lazily generated
    mapping would make its images twice)."""
    return isinstance(mapping, dict) or bool(getattr(mapping, "in_memory", False))


def _polygons(items: Sequence[Any]) -> list[Any]:
    return [item.polygon for item in items]


class ImageLimits:
    """The pair measures of ground truth and detections of one ``evaluate()``
    call, computed for runs of images (see the module doc) and kept per
    image until :class:`Bounded` asks: None (within the limits) or the
    problem :func:`_limit_problem` reports, per side ("gt": the ground
    truth's own repair work; "det": the pairs and their work)."""

    def __init__(self, gt: Mapping[str, Sequence[Any]], dets: Mapping[str, Sequence[Any]]):
        self.gt = gt
        self.dets = dets
        self.ahead = _in_memory(gt) and _in_memory(dets)
        self.caps = _Caps.read()
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}
        self._verdicts: dict[tuple[str, str], Problem | None] = {}
        #: (sample id, side) whose counts the look-ahead found within the limits
        self.counted: set[tuple[str, str]] = set()
        #: id -> polygon array for the polygons measured here and certified
        #: robustly simple (the array kept, so its id cannot be reused)
        self._simple: dict[int, Any] = {}

    def verdict(self, sample_id: str, side: str) -> Problem | None:
        """The problem of ``sample_id`` for ``side`` ("gt" or "det")."""
        key = (sample_id, side)
        if key not in self._verdicts:
            if sample_id not in self.gt:
                return None  # a detection without ground truth is matched with nothing
            self._measure(sample_id, side)
        return self._verdicts.pop(key)

    def _measure(self, sample_id: str, side: str) -> None:
        """Measure ``sample_id`` and the images that follow it. Detections
        of the image asked for are measured only when they are the side
        asked for or within the per-image counts (a polygon of a million
        points is refused by those before any pair is counted); the images
        ahead must be within the counts on both sides. An image that a
        bound on its point counts alone keeps within both limits (every
        ICDAR 2015 image) needs no geometry at all."""
        caps = self.caps
        dets = self.dets.get(sample_id)
        det_counts = _point_counts(dets, caps) if dets is not None else None
        with_dets = dets is not None and (side == "det" or det_counts is not None)
        if det_counts is None and with_dets:
            counts = [len(getattr(item, "polygon", ())) for item in dets or ()]
            det_counts = counts, max(counts, default=0)
        first = (sample_id, with_dets, _point_counts(self.gt[sample_id], caps), det_counts)
        block: list[tuple[str, bool]] = []
        for sid, use, gt_counts, d_counts in [first, *self._ahead(sample_id)]:
            if gt_counts is not None and _surely_within(gt_counts, d_counts if use else None, caps):
                self._verdicts[(sid, "gt")] = None
                if use:
                    self._verdicts[(sid, "det")] = None
            else:
                block.append((sid, use))
        if not block:
            return
        gt_images = [_polygons(self.gt[sid]) for sid, _ in block]
        det_images = [_polygons(self.dets[sid]) if use else [] for sid, use in block]
        measures = _Measures(gt_images, det_images)
        for polys, sure in (
            (measures.gt_polygons, measures.gt_simple),
            (measures.det_polygons, measures.det_simple),
        ):
            picked = list(compress(polys, sure.tolist()))
            self._simple.update(zip(map(id, picked), picked))
        over = measures.over(self.caps.overlaps, self.caps.pair_work)
        for k, (sid, use) in enumerate(block):
            if not over[k]:
                self._verdicts[(sid, "gt")] = None
                if use:
                    self._verdicts[(sid, "det")] = None
                continue
            pairs, work, gt_repair = measures.image(k)
            self._verdicts[(sid, "gt")] = _limit_problem(pairs[:0], work[:0], gt_repair)
            if use:
                self._verdicts[(sid, "det")] = _limit_problem(pairs, work, gt_repair)

    def restrict(self, ids: Sequence[str]) -> None:
        """Measure ahead only within ``ids`` (the images of one worker's part,
        :mod:`tcmbench.eval.workers`): images of another part are that
        worker's to measure."""
        self._order = list(ids)
        self._pos = {sid: i for i, sid in enumerate(self._order)}

    def certified_simple(self, polygons: Sequence[Any]) -> np.ndarray | None:
        """Per polygon, whether the limits' own simplicity test (star-shaped
        or monotone, robust) already showed this very array simple, so that
        packing it need not test it again; None when nothing was measured.
        The arrays are the ones the mappings hold, not mutated while one
        ``evaluate()`` runs."""
        if not self._simple:
            return None
        get = self._simple.get
        return np.fromiter((get(id(p)) is p for p in polygons), dtype=bool, count=len(polygons))

    def _ahead(self, sample_id: str) -> list[tuple[str, bool, Counts, Counts]]:
        """The images after ``sample_id`` in numeric order, within the
        counts on both sides and the budget of one pass, not measured yet:
        (id, has a prediction file, GT point counts, detection point counts)."""
        if not self.ahead:
            return []
        if self._order is None:
            # the mapping's own order: the numeric order the protocols walk
            # when the ground truth was read (readers sort); any other order
            # only makes the look-ahead less useful
            self._order = list(self.gt)
            self._pos = {sid: i for i, sid in enumerate(self._order)}
        at = self._pos.get(sample_id)
        if at is None:
            return []
        out: list[tuple[str, bool, Counts, Counts]] = []
        pairs = vertices = 0
        caps, verdicts, counted = self.caps, self._verdicts, self.counted
        no_dets: Counts = ([], 0)
        for sid in self._order[at + 1 : at + BLOCK_IMAGES]:
            if (sid, "gt") in verdicts or (sid, "det") in verdicts:
                continue
            dets = self.dets.get(sid)
            gt_counts = _point_counts(self.gt[sid], caps)
            det_counts = _point_counts(dets, caps) if dets is not None else no_dets
            if gt_counts is None or det_counts is None:
                continue  # measured alone when asked for, after its own count error
            counted.add((sid, "gt"))
            if dets is not None:
                counted.add((sid, "det"))
            pairs += len(gt_counts[0]) * len(det_counts[0])
            vertices += sum(gt_counts[0]) + sum(det_counts[0])
            if pairs > BLOCK_PAIRS or vertices > BLOCK_VERTICES:
                break
            out.append((sid, dets is not None, gt_counts, det_counts))
        return out


class _Caps(NamedTuple):
    """The limits one ``evaluate()`` call measures against (read once)."""

    polygons: int  # MAX_IMAGE_POLYGONS
    points: int  # MAX_POLYGON_POINTS
    work: int  # MAX_IMAGE_WORK
    overlaps: int  # MAX_IMAGE_OVERLAPS
    pair_work: int  # MAX_IMAGE_PAIR_WORK

    @classmethod
    def read(cls) -> _Caps:
        return cls(
            limit("MAX_IMAGE_POLYGONS"),
            limit("MAX_POLYGON_POINTS"),
            limit("MAX_IMAGE_WORK"),
            limit("MAX_IMAGE_OVERLAPS"),
            limit("MAX_IMAGE_PAIR_WORK"),
        )


#: The point counts of one image's polygons and the largest of them.
Counts = tuple[list[int], int]


def _surely_within(gt: Counts, det: Counts | None, caps: _Caps) -> bool:
    """Whether point counts alone prove an image within MAX_IMAGE_OVERLAPS
    and MAX_IMAGE_PAIR_WORK (``det`` None: the ground truth's own repair
    work only). A contour of n > 4 points crosses itself at most
    n (n - 3) / 2 times, so its complexity is at most n + 2 n (n - 3) and
    its repair at most that squared; contours of up to 4 points count as
    they are and are never repaired (quads, every ICDAR 2015 image: one
    product); every (GT, detection) pair may overlap."""
    gt_counts, gt_max = gt
    if det is not None and len(gt_counts) * len(det[0]) > caps.overlaps:
        return False
    if gt_max <= 4 and (det is None or det[1] <= 4):
        work = 0 if det is None else sum(gt_counts) * sum(det[0])
        return work <= caps.pair_work
    cg = [n if n <= 4 else n + 2 * n * (n - 3) for n in gt_counts]
    work = sum(c * c for c, n in zip(cg, gt_counts) if n > 4)
    if det is not None:
        det_counts = det[0]
        cd = [n if n <= 4 else n + 2 * n * (n - 3) for n in det_counts]
        work += sum(cg) * sum(cd) + sum(c * c for c, n in zip(cd, det_counts) if n > 4)
    return work <= caps.pair_work


def _point_counts(items: Sequence[Any], caps: _Caps) -> Counts | None:
    """The points of each of one image's polygons and the largest, or None
    when they break MAX_IMAGE_POLYGONS, MAX_POLYGON_POINTS or
    MAX_IMAGE_WORK."""
    if len(items) > caps.polygons:
        return None
    counts = [len(getattr(item, "polygon", ())) for item in items]
    if not counts:
        return counts, 0
    top = max(counts)
    if top > caps.points:
        return None
    if top * top * len(counts) > caps.work and image_work(counts) > caps.work:
        return None
    return counts, top


class Bounded(Mapping[str, Sequence[Any]]):
    """A view of one side (ground truth or detections) that checks each
    image against the geometry limits of :mod:`tcmbench.data.schema` when a
    protocol first reads it (lazily, so a lazy mapping stays lazy).

    The readers check points per polygon already; this is the same bound for
    polygons built in code, plus the per-image bounds (polygons and points of
    one image), which cap the quadratic matching and repair work. The error
    is a :class:`ProtocolError` carrying ``sample_id`` / ``role`` /
    ``index``, which ``tcmbench score`` turns into the file and line.
    """

    def __init__(
        self,
        items: Mapping[str, Sequence[Any]],
        protocol: str,
        role: str,
        limits: ImageLimits,
    ) -> None:
        self._items = items
        self._protocol = protocol
        self._role = role
        self._side = "det" if role == "detection" else "gt"
        self._limits = limits
        self._checked: set[str] = set()

    def __getitem__(self, sample_id: str) -> Sequence[Any]:
        value = self._items[sample_id]
        if sample_id not in self._checked:
            if (sample_id, self._side) not in self._limits.counted:
                self._check(sample_id, value)
            problem = self._limits.verdict(sample_id, self._side)
            if problem is not None:
                name, worst, cap, k, whole_image = problem
                raise self._error(
                    sample_id,
                    k,
                    f"one image needs too much exact geometry to match: {_WHAT[name]} "
                    f"{worst} > {cap}; over {limit_hint(name)}",
                    role=None if whole_image else "self",
                )
            self._checked.add(sample_id)
        return value

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._items

    def certified_simple(self, polygons: Sequence[Any]) -> np.ndarray | None:
        """:meth:`ImageLimits.certified_simple` (for the protocols' packing)."""
        return self._limits.certified_simple(polygons)

    def restrict(self, ids: Sequence[str]) -> None:
        """:meth:`ImageLimits.restrict` (a worker's part of the images)."""
        self._limits.restrict(ids)

    def size(self, sample_id: str) -> int:
        """How many polygons ``sample_id`` has, without checking it (to
        weigh the images when the work is split over processes)."""
        return len(self._items[sample_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _check(self, sample_id: str, items: Sequence[Any]) -> None:
        max_polygons = limit("MAX_IMAGE_POLYGONS")
        if len(items) > max_polygons:
            raise self._error(
                sample_id,
                max_polygons,
                f"more than {max_polygons} in one image; over {limit_hint('MAX_IMAGE_POLYGONS')}",
            )
        max_points, max_work = limit("MAX_POLYGON_POINTS"), limit("MAX_IMAGE_WORK")
        counts = [len(getattr(item, "polygon", ())) for item in items]
        if max(counts, default=0) <= max_points and image_work(counts) <= max_work:
            return  # the usual case: one pass, no per-polygon bookkeeping
        work = 0
        for k, n in enumerate(counts):
            work += n * n
            if n > max_points:
                raise self._error(
                    sample_id, k, f"{n} points; over {limit_hint('MAX_POLYGON_POINTS')}"
                )
            if work > max_work:
                raise self._error(
                    sample_id,
                    k,
                    f"the polygons of one image are too large to match (sum of squared point "
                    f"counts {work} > {max_work}); over {limit_hint('MAX_IMAGE_WORK')}",
                )

    def _error(
        self, sample_id: str, index: int, reason: str, role: str | None = "self"
    ) -> ProtocolError:
        """``role`` None: the image as a whole (its ground truth alone is
        over a limit), so no polygon is named."""
        if role is None:
            err = ProtocolError(f"{self._protocol}: sample {sample_id}: {reason}")
            err.sample_id = sample_id  # type: ignore[attr-defined]
            err.role = "image"  # type: ignore[attr-defined]
            err.index = -1  # type: ignore[attr-defined]
            return err
        err = ProtocolError(
            f"{self._protocol}: sample {sample_id}, {self._role} {index + 1}: {reason}"
        )
        err.sample_id = sample_id  # type: ignore[attr-defined]
        err.role = "detection" if self._role == "detection" else "ground truth"  # type: ignore[attr-defined]
        err.index = index  # type: ignore[attr-defined]
        return err
