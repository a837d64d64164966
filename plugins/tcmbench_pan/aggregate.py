"""Pixel aggregation (PAN paper section 3.5): kernels grow into the text
pixels around them, guided by the 4-d embedding.

Three forms, picked by the recipe key ``postprocess.aggregation``:

- ``nearest`` (tcmbench): a whole frontier per round; an unlabelled text
  pixel with labelled 4-neighbours joins the neighbouring kernel whose mean
  embedding is nearest, if that distance is below ``distance_thr``;
- ``mmcv`` (mmocr 0.x, wenwenyu/TCM's mmocr 0.4: ``pixel_group`` of mmcv,
  ``mmcv/ops/csrc/pytorch/cpu/pixel_group.cpp``): one first-in first-out
  queue seeded with the kernels' contour pixels in raster order; each
  queued pixel looks left, right, up, down (in that order) and takes every
  free text pixel whose squared embedding distance to its kernel's mean is
  below ``distance_thr ** 2``; the first queued pixel to reach a pixel wins.
  mmocr passes its ``min_text_avg_confidence`` (0.85) as that threshold;
- ``pan_pp`` (whai362/pan_pp.pytorch, ``models/post_processing/pa/pa.pyx``):
  the same queue seeded with every kernel pixel in raster order, looking
  up, down, left, right; the embedding is consulted only for kernels that
  share a text component with a kernel more than 1024 times larger or
  smaller (``max_rate``), and then a pixel further than ``distance_thr``
  (3 in pa.pyx) is refused; every other kernel takes all text it reaches.

The queue forms are computed layer by layer: a FIFO queue handles every
pixel of one breadth-first layer before the next, and within a layer a
pixel goes to the earliest queued neighbour that accepts it (ties broken by
the direction order), so each layer is a few numpy operations over its
pixels and no Python loop touches single pixels. Queued pixels with no
free neighbour do nothing, so seeding with "labelled pixels that have a
free text neighbour" gives the same result as either official seed set.
"""

from __future__ import annotations

import cv2
import numpy as np

AGGREGATIONS = ("nearest", "mmcv", "pan_pp")

#: (row step, column step) in the order each official queue looks.
MMCV_STEPS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # dx = {-1, 1, 0, 0} on the column
PAN_PP_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # dx = {-1, 1, 0, 0} on the row
#: pa.pyx ``max_rate``: kernels of one text component whose areas differ
#: more than this are separated by embedding distance.
PAN_PP_MAX_RATE = 1024


def neighbour_labels(labels: np.ndarray) -> np.ndarray:
    """(4, H, W): the label above, below, left and right of every pixel
    (0 outside the map)."""
    pad = np.pad(labels, 1)
    return np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])


def kernel_means(labels: np.ndarray, num: int, embedding: np.ndarray) -> np.ndarray:
    """(num, D) mean embedding of every label (row 0, the background, is
    meaningless); ``embedding`` is (D, H, W)."""
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=num).astype(np.float64)
    sums = np.stack(
        [np.bincount(flat, weights=c.ravel(), minlength=num) for c in embedding], axis=1
    )
    return sums / np.maximum(counts, 1.0)[:, None]


def aggregate_nearest(
    kernel_labels: np.ndarray, text: np.ndarray, embedding: np.ndarray, distance_thr: float
) -> np.ndarray:
    """tcmbench's form (module doc); returns the grown labels (int32)."""
    labels = kernel_labels.astype(np.int32, copy=True)
    num = int(labels.max()) + 1
    if num <= 1:
        return labels
    means = kernel_means(labels, num, embedding).astype(np.float32)
    dim = embedding.shape[0]
    emb = embedding.reshape(dim, -1).T.astype(np.float32, copy=False)  # (H*W, D)
    free = text & (labels == 0)
    thr2 = float(distance_thr) ** 2
    while True:
        neigh = neighbour_labels(labels)
        candidates = np.flatnonzero(free & (neigh.max(axis=0) > 0))
        if candidates.size == 0:
            break
        near = neigh.reshape(4, -1)[:, candidates]  # (4, m) labels around
        diff = emb[candidates][None, :, :] - means[near]  # (4, m, D)
        dist2 = np.einsum("kmd,kmd->km", diff, diff)
        dist2[near == 0] = np.inf
        best = dist2.argmin(axis=0)
        cols = np.arange(candidates.size)
        accept = dist2[best, cols] < thr2
        if not accept.any():
            break
        chosen = candidates[accept]
        labels.flat[chosen] = near[best[accept], cols[accept]]
        free.flat[chosen] = False
    return labels


def _queue_grow(
    labels: np.ndarray,
    text: np.ndarray,
    emb: np.ndarray,
    means: np.ndarray,
    steps: tuple[tuple[int, int], ...],
    checked: np.ndarray,
    thr2: float,
    strict: bool,
) -> np.ndarray:
    """Grow ``labels`` in place as a FIFO queue would (module doc).

    ``emb`` (H*W, D); ``means`` (K, D); ``checked[k]``: whether label k's
    pixels must pass the distance test (squared distance ``< thr2`` when
    ``strict``, ``<= thr2`` otherwise)."""
    h, w = labels.shape
    flat = labels.ravel()
    free = (text & (labels == 0)).ravel()
    neigh_free = neighbour_labels(free.reshape(h, w).astype(np.int32)).max(axis=0).ravel() > 0
    layer = np.flatnonzero((flat > 0) & neigh_free)  # raster order = queue order
    dr = np.array([s[0] for s in steps])
    dc = np.array([s[1] for s in steps])
    while layer.size:
        rows, cols = np.divmod(layer, w)
        r = rows[:, None] + dr[None, :]  # (n, 4): parent-major, direction-minor
        c = cols[:, None] + dc[None, :]
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        child = np.where(inside, r * w + c, 0)
        ok = inside & free[child]
        parent_label = np.broadcast_to(flat[layer][:, None], child.shape)
        test = ok & checked[parent_label]
        if test.any():
            diff = emb[child[test]] - means[parent_label[test]]
            dist2 = np.einsum("md,md->m", diff, diff)
            ok[test] = dist2 < thr2 if strict else dist2 <= thr2
        kids = child[ok]  # flattened in queue-key order
        if kids.size == 0:
            break
        uniq, first = np.unique(kids, return_index=True)
        order = np.argsort(first, kind="stable")
        layer = uniq[order]
        flat[layer] = parent_label[ok][first[order]]
        free[layer] = False
    return labels


def aggregate_mmcv(
    kernel_labels: np.ndarray, text: np.ndarray, embedding: np.ndarray, distance_thr: float
) -> np.ndarray:
    """mmcv ``pixel_group``'s form (module doc); grown labels (int32)."""
    labels = kernel_labels.astype(np.int32, copy=True)
    num = int(labels.max()) + 1
    if num <= 1:
        return labels
    dim = embedding.shape[0]
    emb = embedding.reshape(dim, -1).T.astype(np.float32, copy=False)
    means = kernel_means(labels, num, embedding).astype(np.float32)
    checked = np.ones(num, dtype=bool)
    return _queue_grow(
        labels, text, emb, means, MMCV_STEPS, checked, float(distance_thr) ** 2, strict=True
    )


def pan_pp_checked(labels: np.ndarray, text: np.ndarray, num: int) -> np.ndarray:
    """(num,) bool: the kernels pa.pyx separates by embedding, i.e. those
    sharing a 4-connected text component with a kernel whose area is more
    than ``PAN_PP_MAX_RATE`` times larger or smaller."""
    checked = np.zeros(num, dtype=bool)
    if num <= 2:
        return checked
    _, comps = cv2.connectedComponents(text.astype(np.uint8), connectivity=4)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=num).astype(np.int64)
    comp = np.zeros(num, dtype=np.int64)
    comp[flat] = comps.ravel()  # every pixel of a kernel lies in one component
    n_comp = int(comps.max()) + 1
    big = np.zeros(n_comp, dtype=np.int64)
    small = np.full(n_comp, np.iinfo(np.int64).max, dtype=np.int64)
    ids = np.arange(1, num)
    np.maximum.at(big, comp[ids], area[ids])
    np.minimum.at(small, comp[ids], area[ids])
    rate = PAN_PP_MAX_RATE
    checked[ids] = (big[comp[ids]] > rate * area[ids]) | (area[ids] > rate * small[comp[ids]])
    return checked


def aggregate_pan_pp(
    kernel_labels: np.ndarray, text: np.ndarray, embedding: np.ndarray, distance_thr: float
) -> np.ndarray:
    """pan_pp.pytorch ``pa``'s form (module doc); grown labels (int32)."""
    labels = kernel_labels.astype(np.int32, copy=True)
    num = int(labels.max()) + 1
    if num <= 1:
        return labels
    dim = embedding.shape[0]
    emb = embedding.reshape(dim, -1).T.astype(np.float32, copy=False)
    means = kernel_means(labels, num, embedding).astype(np.float32)
    checked = pan_pp_checked(labels, text, num)
    return _queue_grow(
        labels, text, emb, means, PAN_PP_STEPS, checked, float(distance_thr) ** 2, strict=False
    )


_FORMS = {"nearest": aggregate_nearest, "mmcv": aggregate_mmcv, "pan_pp": aggregate_pan_pp}


def pixel_aggregate(
    kernel_labels: np.ndarray,
    text: np.ndarray,
    embedding: np.ndarray,
    distance_thr: float,
    aggregation: str = "nearest",
) -> np.ndarray:
    """Grow labelled kernels into the text mask by embedding similarity.

    ``kernel_labels`` (H, W) int: 0 = none, 1..K = kernels; ``text`` (H, W)
    bool; ``embedding`` (D, H, W); ``aggregation`` one of
    :data:`AGGREGATIONS` (module doc). Returns the grown labels (int32).
    """
    try:
        form = _FORMS[aggregation]
    except KeyError:
        raise ValueError(
            f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}"
        ) from None
    return form(kernel_labels, text.astype(bool), embedding, distance_thr)
