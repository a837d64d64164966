"""``mmocr-hmean-iou``: mmocr 0.x's ``hmean-iou``, the evaluation behind
the papers' figures. It is not an official benchmark protocol.

The TCM authors' code (wenwenyu/TCM, its bundled mmocr 0.4.0; the same
rules in every mmocr 0.x tag) scores a test set with ``eval_hmean``
(``mmocr/core/evaluation/hmean.py``) calling ``eval_hmean_iou``
(``hmean_iou.py``) and the helpers of ``evaluation/utils.py``. Those rules,
written down from that source and implemented here independently:

* **Geometry as predicted.** Every GT and detection is a shapely polygon of
  its points as given (``points2polygon``: any even number >= 8 values,
  i.e. >= 4 points; a 50-point FCENet boundary stays 50 points; nothing is
  rounded or turned into a quadrilateral). Intersections and unions use
  ``poly_make_valid``: a polygon shapely calls invalid is replaced by its
  ``buffer(0)``. ``poly_iou(det, gt)`` = ``area(det & gt) / area(det | gt)``
  (shapely's union, not ``a + b - inter``), 0 when the union is 0.
* **Ground truth.** ``IcdarDataset._parse_ann_info`` leaves out, neither
  care nor don't care, an annotation whose polygon area is <= 0 or whose
  bounding box is under 1 px wide or high (``drop_degenerate_gt``); a
  ``###`` (``iscrowd``) annotation is don't care.
* **Scores.** Detections with ``score <= 0.3`` (``filter_2dlist_result``,
  ``score_thr=0.3``, strict ``>`` to stay) are dropped once; the sweep
  then keeps ``score >= thr`` (``select_top_boundary``) for
  ``thr = iter * 0.1``, ``iter`` in ``range(3, 10)``
  (:data:`tcmbench.eval.sweep.THRESHOLDS`).
* **Don't care.** ``ignore_pred``: a detection is ignored when, for some
  don't-care GT, ``area(det & gt) / area(det) > 0.5`` (strictly greater;
  ``area(det)`` of the raw, unrepaired polygon; 0 when that area is 0).
* **Matching.** GT in index order (care before don't care), detections in
  the order given (not sorted by score): a pair matches when neither is
  matched yet, neither is don't care and ``IoU > 0.5`` (strictly greater);
  the first qualifying detection wins (no best-IoU search).
* **Figures.** ``compute_hmean`` on counts summed over images: R = hits /
  care GTs, P = hits / care detections; with no care GT, R = 1 and P = 0
  if there is a care detection, else 1; H = 2PR / (P + R), 0 when P + R =
  0. The sweep keeps the hmean that is strictly higher than every earlier
  one (the lowest threshold wins a tie).

Where mmocr stops on an assertion, tcmbench scores instead: a polygon of 3
points is scored as the triangle it is; one with fewer than 3 points, a
non-finite coordinate or one beyond 1e150 is empty (area 0: it matches
nothing; a care GT stays a miss, a care detection a false positive).

``evaluate --sweep`` reports the best-threshold figure of this protocol on
the detector's polygons as output (:func:`papers_figure`), whatever the
dataset's official protocol; the headline figures of a plain
``mmocr-hmean-iou`` evaluation are its rules at mmocr's first filter
(every detection with a score above 0.3, or without a score).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction, natural_key
from tcmbench.errors import ProtocolError
from tcmbench.eval.api import check_params, parse_bool, parse_float
from tcmbench.eval.result import Result
from tcmbench.eval.sweep import LABEL, THRESHOLDS, SweepAccumulator, greedy_hits, hmean, kept_mask

log = logging.getLogger(__name__)

NAME = "mmocr-hmean-iou"
#: mmocr 0.x ``eval_hmean(score_thr=0.3)``: detections must score above it.
MIN_SCORE = 0.3
#: Coordinates beyond this make an empty polygon (areas would overflow).
HUGE = 1e150
#: Polygons (GT + detections) gathered before a chunk is scored.
CHUNK_POLYGONS = 20_000

SOURCE = (
    "mmocr 0.x (wenwenyu/TCM mmocr_src 0.4.0) mmocr/core/evaluation/hmean_iou.py "
    "eval_hmean_iou, utils.py ignore_pred / poly_iou / compute_hmean, hmean.py eval_hmean "
    "(thr = iter * 0.1, iter 3..9), datasets/icdar_dataset.py _parse_ann_info"
)
RULE = (
    "mmocr 0.x hmean-iou on the polygons as predicted: detections with score <= 0.3 dropped, "
    "then those with score >= t kept for t = 0.3, 0.4, ..., 0.9 (iter * 0.1, iter 3..9); a "
    "detection is don't care when area(det & dc) / area(det) > 0.5 for some don't-care GT; GT "
    "in index order x detections in the order given, first IoU > 0.5 (shapely, invalid "
    "polygons repaired with buffer(0)) matches; P and R summed over images; the best hmean "
    "kept (the lowest t on ties)"
)
#: What ``evaluate --sweep`` feeds the papers' figure.
PAPERS_PREDICTIONS = (
    "the detector's polygons as output (any number of points, float coordinates), "
    "not the submission's geometry"
)


@dataclass(frozen=True)
class Params:
    iou_threshold: float
    area_precision_threshold: float
    drop_degenerate_gt: bool
    sweep: bool
    details: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "area_precision_threshold": self.area_precision_threshold,
            "drop_degenerate_gt": self.drop_degenerate_gt,
        }


def resolve_params(given: Mapping[str, Any]) -> Params:
    from tcmbench.eval.catalog import IOU_PROTOCOLS

    p = check_params(NAME, IOU_PROTOCOLS[NAME][2], given)
    return Params(
        iou_threshold=parse_float(p["iou_threshold"], "iou_threshold", NAME),
        area_precision_threshold=parse_float(
            p["area_precision_threshold"], "area_precision_threshold", NAME
        ),
        drop_degenerate_gt=parse_bool(p["drop_degenerate_gt"], "drop_degenerate_gt", NAME),
        sweep=parse_bool(p["sweep"], "sweep", NAME),
        details=parse_bool(p["details"], "details", NAME),
    )


# --------------------------------------------------------------------------- entry points


def evaluate_mmocr_hmean_iou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """mmocr 0.x ``hmean-iou`` (see the module docstring for the rules)."""
    p = resolve_params(params)
    ids = sorted(gt, key=natural_key)
    totals = _Totals()
    sweep = MmocrSweep() if p.sweep else None
    per_image: dict[str, dict[str, Any]] = {}
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]] = []
    pending = 0
    for sid in ids:
        instances = gt[sid]
        dets = predictions.get(sid)  # None: no prediction file (scored as no detection)
        chunk.append((sid, instances, dets))
        pending += len(instances) + (len(dets) if dets is not None else 0)
        if pending >= CHUNK_POLYGONS:
            _score_chunk(chunk, p, totals, sweep, per_image)
            chunk, pending = [], 0
    if chunk:
        _score_chunk(chunk, p, totals, sweep, per_image)
    recall, precision, h = compute_hmean(totals.matched, totals.gt_care, totals.det_care)
    return Result(
        protocol=NAME,
        precision=precision,
        recall=recall,
        hmean=h,
        params=p.as_dict(),
        per_image=per_image,
        sweep=None if sweep is None else sweep.result(),
        extra={
            "num_images": totals.images,
            "num_gt": totals.gt,
            "num_gt_care": totals.gt_care,
            "num_gt_dropped": totals.gt_dropped,
            "num_det": totals.det,
            "num_det_below_min_score": totals.det_low,
            "num_det_care": totals.det_care,
            "num_matched": totals.matched,
            "images_without_predictions": totals.missing,
            "min_score": MIN_SCORE,
        },
    )


def papers_figure(
    gt: Any,
    predictions: Mapping[str, Sequence[Prediction]],
) -> dict[str, Any]:
    """The papers' best-threshold figure (``Result.sweep``-shaped dict) of
    ``predictions`` as the detector output them: this protocol's sweep,
    whatever the dataset's official protocol. ``evaluate --sweep`` and the
    experiment grids call it with the raw predictions, not the submission's
    quads (mmocr 0.x scored FCENet's IC15 polygons as polygons)."""
    from tcmbench.eval.api import evaluate

    result = evaluate(gt, predictions, NAME, sweep=True, details=False)
    assert result.sweep is not None
    return {**result.sweep, "predictions": PAPERS_PREDICTIONS}


def compute_hmean(hits: int, gt_care: int, det_care: int) -> tuple[float, float, float]:
    """mmocr's ``compute_hmean``: (recall, precision, hmean); no care GT
    gives recall 1 and precision 0 with a care detection, else 1."""
    if gt_care == 0:
        recall = 1.0
        precision = 0.0 if det_care > 0 else 1.0
    else:
        recall = float(hits) / gt_care
        precision = 0.0 if det_care == 0 else float(hits) / det_care
    return recall, precision, hmean(precision, recall)


class MmocrSweep(SweepAccumulator):
    """The sweep with mmocr's ``compute_hmean`` on empty denominators, named
    after this protocol."""

    def result(self) -> dict[str, Any]:
        out = super().result()
        figures = [
            compute_hmean(int(c), int(g), int(d))
            for c, g, d in zip(self.recall_credit, self.num_gt, self.num_det)
        ]
        recall = [f[0] for f in figures]
        precision = [f[1] for f in figures]
        hm = [f[2] for f in figures]
        best = int(np.argmax(hm)) if hm else 0  # the first maximum: strictly-greater rule
        out.update(
            label=LABEL,
            protocol=NAME,
            rule=RULE,
            source=SOURCE,
            precision=precision,
            recall=recall,
            hmean=hm,
            best_threshold=out["thresholds"][best] if hm else None,
            best_precision=precision[best] if hm else None,
            best_recall=recall[best] if hm else None,
            best_hmean=hm[best] if hm else None,
        )
        return out


# --------------------------------------------------------------------------- geometry


@dataclass
class _Shapes:
    """Shapely polygons of one side of a chunk: as given (for the raw area
    of ``ignore_pred`` and the GT filter) and repaired (``poly_make_valid``)."""

    raw_area: np.ndarray
    raw_bounds: np.ndarray  # (n, 4); NaN for empty polygons
    fixed: np.ndarray  # object array of shapely geometries (None: empty)
    bounds: np.ndarray  # (n, 4) of the repaired polygons; NaN for empty


def _live(poly: np.ndarray) -> bool:
    """Whether shapely can build a polygon from ``poly``: >= 3 points once a
    repeated closing point is removed, all finite and within :data:`HUGE`."""
    n = len(poly)
    if n and np.array_equal(poly[0], poly[-1]):
        n -= 1
    return n >= 3 and bool(np.all(np.abs(poly) <= HUGE))  # NaN fails the comparison


def _shapes(polys: list[np.ndarray]) -> _Shapes:
    import shapely

    n = len(polys)
    arrays = [np.asarray(q, dtype=np.float64).reshape(-1, 2) for q in polys]
    live = np.array([_live(a) for a in arrays], dtype=bool)
    raw = np.full(n, None, dtype=object)
    pos = np.flatnonzero(live)
    if pos.size:
        coords = np.concatenate([arrays[i] for i in pos])
        owner = np.repeat(np.arange(pos.size), [len(arrays[i]) for i in pos])
        raw[pos] = shapely.polygons(shapely.linearrings(coords, indices=owner))
    raw_area = np.zeros(n)
    raw_bounds = np.full((n, 4), np.nan)
    fixed = raw.copy()
    if pos.size:
        geoms = raw[pos]
        with np.errstate(all="ignore"):
            raw_area[pos] = shapely.area(geoms)
            raw_bounds[pos] = shapely.bounds(geoms)
            bad = pos[~shapely.is_valid(geoms)]
            for i in bad.tolist():
                fixed[i] = _buffer0(raw[i])
    bounds = np.full((n, 4), np.nan)
    keep = np.flatnonzero(np.array([g is not None for g in fixed], dtype=bool))
    if keep.size:
        bounds[keep] = shapely.bounds(fixed[keep])
    return _Shapes(raw_area=raw_area, raw_bounds=raw_bounds, fixed=fixed, bounds=bounds)


def _buffer0(geom: Any) -> Any:
    """mmocr's ``poly_make_valid``: ``buffer(0)`` (None where GEOS fails)."""
    import shapely

    try:
        out = shapely.buffer(geom, 0)
    except shapely.errors.GEOSException:  # pragma: no cover - GEOS-version specific
        return None
    return None if out.is_empty else out


def _overlay_areas(
    d_geoms: np.ndarray, g_geoms: np.ndarray, union: bool
) -> tuple[np.ndarray, int | None]:
    """``area(det & gt)`` (or ``area(det | gt)``) of paired geometries, the
    detection first as mmocr calls it; on a GEOS failure, the areas so far
    and the failing pair's position."""
    import shapely

    op = shapely.union if union else shapely.intersection
    with np.errstate(all="ignore"):
        try:
            return np.asarray(shapely.area(op(d_geoms, g_geoms)), dtype=np.float64), None
        except shapely.errors.GEOSException:
            out = np.zeros(d_geoms.size)
            for k in range(d_geoms.size):
                try:
                    out[k] = shapely.area(op(d_geoms[k], g_geoms[k]))
                except shapely.errors.GEOSException:
                    return out, k
            return out, None  # pragma: no cover - the batch failed, no single pair did


# --------------------------------------------------------------------------- scoring


@dataclass
class _Totals:
    matched: int = 0
    gt_care: int = 0
    det_care: int = 0
    gt: int = 0
    gt_dropped: int = 0
    det: int = 0
    det_low: int = 0
    images: int = 0
    missing: int = 0


def _score_chunk(
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]],
    p: Params,
    totals: _Totals,
    sweep: MmocrSweep | None,
    per_image: dict[str, dict[str, Any]],
) -> None:
    ids = [c[0] for c in chunk]
    gt_polys: list[np.ndarray] = []
    gt_ignore: list[bool] = []
    gt_img: list[int] = []
    det_polys: list[np.ndarray] = []
    det_scores: list[float | None] = []
    det_img: list[int] = []
    missing = np.zeros(len(chunk), dtype=bool)
    for k, (_, instances, dets) in enumerate(chunk):
        gt_polys.extend(x.polygon for x in instances)
        gt_ignore.extend(bool(x.ignore) for x in instances)
        gt_img.extend([k] * len(instances))
        if dets is None:
            missing[k] = True
            dets = []
        det_polys.extend(d.polygon for d in dets)
        det_scores.extend(d.score for d in dets)
        det_img.extend([k] * len(dets))
    n_img = len(chunk)
    g_img = np.array(gt_img, dtype=np.int64)
    d_img = np.array(det_img, dtype=np.int64)
    G, D = _shapes(gt_polys), _shapes(det_polys)
    ignore = np.array(gt_ignore, dtype=bool)

    # IcdarDataset._parse_ann_info: area <= 0 or a bounding box under 1 px
    # (NaN bounds: an empty polygon) -> not in the evaluation at all.
    if p.drop_degenerate_gt:
        with np.errstate(invalid="ignore"):
            w = G.raw_bounds[:, 2] - G.raw_bounds[:, 0]
            h = G.raw_bounds[:, 3] - G.raw_bounds[:, 1]
            dropped = ~((G.raw_area > 0) & (w >= 1) & (h >= 1))
    else:
        dropped = np.zeros(len(gt_polys), dtype=bool)
    gt_care = ~ignore & ~dropped
    gt_dc = ignore & ~dropped

    # filter_2dlist_result(score_thr=0.3): score > 0.3 stays (no score: kept).
    scores = np.array([np.nan if s is None else float(s) for s in det_scores], dtype=np.float64)
    no_score = np.array([s is None for s in det_scores], dtype=bool)
    with np.errstate(invalid="ignore"):
        base_keep = no_score | (scores > MIN_SCORE)

    gi, di = _pairs(g_img, d_img, ~dropped, G.bounds, D.bounds)
    inter = np.zeros(gi.size)
    if gi.size:
        inter, bad = _overlay_areas(D.fixed[di], G.fixed[gi], union=False)
        if bad is not None:
            raise _geos_error(ids, g_img, d_img, gi[bad], di[bad], "intersect")

    # ignore_pred: inter / raw area(det) > 0.5 for some don't-care GT.
    det_ignored = np.zeros(len(det_polys), dtype=bool)
    q = np.flatnonzero(gt_dc[gi])
    if q.size:
        area = D.raw_area[di[q]]
        with np.errstate(all="ignore"):
            prec = np.where(area != 0, inter[q] / np.where(area != 0, area, 1.0), 0.0)
        det_ignored[di[q[prec > p.area_precision_threshold]]] = True

    # poly_iou on care pairs; only a positive intersection can reach IoU > thr.
    iou = np.zeros(gi.size)
    q = np.flatnonzero(gt_care[gi] & ~det_ignored[di] & (inter > 0))
    if q.size:
        union, bad = _overlay_areas(D.fixed[di[q]], G.fixed[gi[q]], union=True)
        if bad is not None:
            raise _geos_error(ids, g_img, d_img, gi[q[bad]], di[q[bad]], "unite")
        with np.errstate(all="ignore"):
            value = np.where(union != 0, inter[q] / np.where(union != 0, union, 1.0), 0.0)
        iou[q] = np.where(np.isfinite(value), value, 0.0)
    cand = np.flatnonzero(iou > p.iou_threshold)  # (gt, det) order: mmocr's loops
    cg, cd = gi[cand].tolist(), di[cand].tolist()

    matched = _greedy(cg, cd, base_keep)
    det_care = base_keep & ~det_ignored
    n_gt_care = np.bincount(g_img[gt_care], minlength=n_img)
    n_det_care = np.bincount(d_img[det_care], minlength=n_img)
    mg = np.array([cg[k] for k in matched], dtype=np.int64)
    n_matched = np.bincount(g_img[mg], minlength=n_img)

    totals.matched += int(mg.size)
    totals.gt_care += int(n_gt_care.sum())
    totals.det_care += int(n_det_care.sum())
    totals.gt += len(gt_polys)
    totals.gt_dropped += int(dropped.sum())
    totals.det += len(det_polys)
    totals.det_low += int((~base_keep).sum())
    totals.images += n_img
    totals.missing += int(missing.sum())

    if sweep is not None:
        if no_score.any():
            k = int(np.flatnonzero(no_score)[0])
            raise ProtocolError(
                f"{NAME}: the threshold sweep needs a score for every detection; sample "
                f"{ids[d_img[k]]} has a detection without one"
            )
        gt_total = float(n_gt_care.sum())
        for t_i, t in enumerate(THRESHOLDS):
            keep = kept_mask(scores, float(t)) & base_keep
            hits = greedy_hits(cg, cd, keep)
            sweep.add(t_i, hits, hits, gt_total, float((keep & ~det_ignored).sum()))

    if p.details:
        pairs = [(cg[k], cd[k], float(iou[cand[k]])) for k in matched]
        counts = (n_gt_care, n_det_care, n_matched)
        masks = (dropped, gt_dc, det_ignored, base_keep)
        _details(ids, g_img, d_img, missing, masks, counts, pairs, per_image)


def _pairs(
    g_img: np.ndarray,
    d_img: np.ndarray,
    g_live: np.ndarray,
    g_bounds: np.ndarray,
    d_bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(gt, det) pairs of one image whose repaired polygons' bounding boxes
    overlap with a positive area (any other pair has intersection 0, so
    IoU 0 and precision 0), ordered by image, then gt, then det."""
    if g_img.size == 0 or d_img.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    n_img = int(max(g_img.max(), d_img.max())) + 1
    d_count = np.bincount(d_img, minlength=n_img)
    d_start = np.cumsum(d_count) - d_count
    per_g = d_count[g_img]
    gi = np.repeat(np.arange(g_img.size, dtype=np.int64), per_g)
    offset = np.arange(gi.size, dtype=np.int64) - np.repeat(np.cumsum(per_g) - per_g, per_g)
    di = d_start[g_img[gi]] + offset
    a, b = g_bounds[gi], d_bounds[di]
    with np.errstate(invalid="ignore"):
        overlap = (np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0])) & (
            np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1])
        )
    keep = overlap & g_live[gi]
    return gi[keep], di[keep]


def _greedy(cg: list[int], cd: list[int], kept: np.ndarray) -> list[int]:
    """Positions in the candidate list that ``eval_hmean_iou``'s loops
    match: the first unmatched kept detection of each GT, in order."""
    used_g: set[int] = set()
    used_d: set[int] = set()
    keep = kept.tolist()
    out = []
    for k, (g, d) in enumerate(zip(cg, cd)):
        if not keep[d] or g in used_g or d in used_d:
            continue
        used_g.add(g)
        used_d.add(d)
        out.append(k)
    return out


def _geos_error(
    ids: list[str], g_img: np.ndarray, d_img: np.ndarray, g: int, d: int, verb: str
) -> ProtocolError:
    k = int(g_img[g])
    g_local = int(g - np.searchsorted(g_img, k))
    d_local = int(d - np.searchsorted(d_img, k))
    err = ProtocolError(
        f"{NAME}: sample {ids[k]}, detection {d_local + 1}: GEOS cannot {verb} it with "
        f"ground-truth polygon {g_local + 1} (mmocr stops here too)"
    )
    err.sample_id = ids[k]  # type: ignore[attr-defined]
    err.role = "detection"  # type: ignore[attr-defined]
    err.index = d_local  # type: ignore[attr-defined]
    return err


def _details(
    ids: list[str],
    g_img: np.ndarray,
    d_img: np.ndarray,
    missing: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    counts: tuple[np.ndarray, np.ndarray, np.ndarray],
    pairs: list[tuple[int, int, float]],
    per_image: dict[str, dict[str, Any]],
) -> None:
    """Per-image figures (``compute_hmean`` per image, as ``img_results``)
    and what was matched, indices in the order the image lists them.
    ``masks``: GT dropped, GT don't care, detection don't care, detection
    above the minimum score; ``counts``: care GTs, care detections, hits."""
    dropped, gt_dc, det_ignored, base_keep = masks
    n_gt_care, n_det_care, n_matched = counts
    n_img = len(ids)
    g_count = np.bincount(g_img, minlength=n_img)
    d_count = np.bincount(d_img, minlength=n_img)
    g_start = np.cumsum(g_count) - g_count
    d_start = np.cumsum(d_count) - d_count
    by_img: dict[int, list[list[Any]]] = {}
    for g, d, v in pairs:
        k = int(g_img[g])
        by_img.setdefault(k, []).append([g - int(g_start[k]), d - int(d_start[k]), v])

    def local(mask: np.ndarray, start: int, count: int) -> list[int]:
        return np.flatnonzero(mask[start : start + count]).tolist()

    for k, sid in enumerate(ids):
        gs, gc, ds, dc = int(g_start[k]), int(g_count[k]), int(d_start[k]), int(d_count[k])
        rec, prec, hm = compute_hmean(int(n_matched[k]), int(n_gt_care[k]), int(n_det_care[k]))
        entry: dict[str, Any] = {
            "precision": prec,
            "recall": rec,
            "hmean": hm,
            "num_gt": gc,
            "num_gt_care": int(n_gt_care[k]),
            "num_det": dc,
            "num_det_care": int(n_det_care[k]),
            "num_matched": int(n_matched[k]),
            "pairs": sorted(by_img.get(k, [])),
            "gt_dont_care": local(gt_dc, gs, gc),
            "gt_dropped": local(dropped, gs, gc),
            "det_dont_care": local(det_ignored & base_keep, ds, dc),
            "det_below_min_score": local(~base_keep, ds, dc),
        }
        if missing[k]:
            entry["missing_prediction_file"] = True
        per_image[sid] = entry
