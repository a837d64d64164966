"""Candidate (ground truth, detection) pairs: only polygons of one image
whose bounding boxes overlap are ever intersected, found by an interval
join on one axis instead of testing every pair of an image."""

from __future__ import annotations

import numpy as np

from tcmbench.eval.polygons import PolygonBatch


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
