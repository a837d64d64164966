"""``icdar2013`` and ``icdar2013-deteval``: the ICDAR 2013 area rules.

No official RRC script for ICDAR 2013 is public. Both protocols follow the
DBNet authors' ports (MhLiao/DB ``concern/icdar2015_eval/detection/``):

- ``icdar2013`` = ``icdar2013.py`` (the ICDAR 2013 rules). As published it
  raises NameError on its first one-to-many match (a logging helper,
  ``num_overlaps_gt``, is missing); the helper only builds a log line, so
  this module scores as the port would with the helper present.
- ``icdar2013-deteval`` = ``deteval.py`` (Wolf & Jolion DetEval): the same,
  plus "single overlap" checks -- one-to-one needs G to overlap (recall > 0)
  exactly one non-don't-care detection and D exactly one care GT;
  one-to-many needs G to overlap at least two non-don't-care detections,
  many-to-one needs D to overlap at least two care GTs.

Rules of both ports, reproduced here:

- A polygon that is not valid or not simple (shapely) is dropped before
  anything else: it counts neither as GT nor as detection. Polygons with
  fewer than 3 points (the port crashes building them) and non-finite
  coordinates (the port finds them invalid) are dropped the same way.
- recall[g, d] = inter / area(G), precision[g, d] = inter / area(D) (0 on a
  zero area), inter = area of ``G.intersection(D)``.
- A detection is don't care when its precision against a don't-care GT is
  > tp (strict).
- One-to-one: G's row and D's column each hold exactly one cell with
  recall >= tr and precision >= tp (don't-care cells included), that cell is
  (G, D), both are care, and the centre distance
  2 |mean(G points) - mean(D points)| / (diag(G) + diag(D)) < center_diff_thr
  (diag of the bounding box): +1 / +1.
- One-to-many, for each care G: the unmatched care detections with
  precision >= tp; if ``round(sum of their recalls, 4) >= tr`` (numpy
  rounding, as ``round()`` on a numpy float does): one detection -> +1 / +1,
  n detections -> +0.8 recall and +0.8 n precision.
- Many-to-one, for each care unmatched D: the unmatched care GTs with
  recall >= tr; if ``round(sum of their precisions, 4) >= tp``: one GT ->
  +1 / +1, n GTs -> +n recall (``mtype_om_m`` = 1.0) and +1 precision.
- Global R = sum of per-image recall credits / care GTs, P = sum of
  precision credits / care detections, H = 2RP / (R + P); 0 on a zero
  denominator. Per-image credit sums are added in numeric image order.

A GT image without predictions scores as an image with no detections; a
prediction for an image with no GT is a :class:`ProtocolError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval.api import check_params, parse_bool
from tcmbench.eval.deteval import check_prediction_ids, image_order, prediction_scores
from tcmbench.eval.overlaps import ImageOverlap, geos_polygons, iter_image_overlaps, safe_ratio
from tcmbench.eval.result import Result
from tcmbench.eval.sweep import SweepAccumulator, kept_mask

log = logging.getLogger(__name__)

ICDAR2013 = "icdar2013"
ICDAR2013_DETEVAL = "icdar2013-deteval"
DEFAULT_PARAMS: dict[str, Any] = {
    "tr": 0.8,
    "tp": 0.4,
    "center_diff_thr": 1.0,
    "mtype_oo_o": 1.0,
    "mtype_om_o": 0.8,
    "mtype_om_m": 1.0,
    "sweep": False,
    "details": True,
}
# Images whose validity is checked in one vectorised batch.
VALIDITY_CHUNK = 2048


@dataclass
class Icdar2013Image:
    """One image scored by :func:`match_icdar2013`."""

    recall_accum: float = 0.0
    precision_accum: float = 0.0
    matches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    det_dont_care: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _center_distance(r1: np.ndarray, r2: np.ndarray) -> float:
    return ((np.mean(r1, axis=0) - np.mean(r2, axis=0)) ** 2).sum() ** 0.5


def _diag(r: np.ndarray) -> float:
    return ((r[:, 0].max() - r[:, 0].min()) ** 2 + (r[:, 1].max() - r[:, 1].min()) ** 2) ** 0.5


def _round4(value: Any) -> Any:
    """``round(x, 4)`` as the port evaluates it: an int 0 when nothing was
    summed, else a numpy float, whose ``__round__`` is ``np.round``."""
    return round(value, 4)


def match_icdar2013(
    overlap: ImageOverlap,
    gt_dont_care: np.ndarray,
    *,
    deteval: bool,
    tr: float,
    tp: float,
    center_diff_thr: float,
    mtype_oo_o: float,
    mtype_om_o: float,
    mtype_om_m: float,
) -> Icdar2013Image:
    """Score one image whose polygons are all valid (see the module doc)."""
    gt_dc = np.asarray(gt_dont_care, dtype=bool)
    num_gt, num_det = overlap.inter.shape
    out = Icdar2013Image(det_dont_care=np.zeros(num_det, dtype=bool))
    if num_det == 0:
        return out
    recall_mat = safe_ratio(overlap.inter, overlap.gt_area[:, None])
    precision_mat = safe_ratio(overlap.inter, overlap.det_area[None, :])
    det_dc = (precision_mat[gt_dc] > tp).any(axis=0) if gt_dc.any() else np.zeros(num_det, bool)
    out.det_dont_care = det_dc
    gt_flag = np.zeros(num_gt, dtype=bool)
    det_flag = np.zeros(num_det, dtype=bool)
    overlap_pos = recall_mat > 0
    # num_overlaps_gt / num_overlaps_det of deteval.py
    gt_overlaps = (overlap_pos & ~det_dc[None, :]).sum(axis=1)
    det_overlaps = (overlap_pos & ~gt_dc[:, None]).sum(axis=0)
    r_acc = 0.0
    p_acc = 0.0

    # One-to-one. Each candidate column belongs to exactly one row, so the
    # port's nested loop never sees a flag set by an earlier match.
    both = (recall_mat >= tr) & (precision_mat >= tp)
    row_n, col_n = both.sum(axis=1), both.sum(axis=0)
    col_of = both.argmax(axis=1)
    for g in np.flatnonzero((row_n == 1) & ~gt_dc):
        d = int(col_of[g])
        if col_n[d] != 1 or det_dc[d]:
            continue
        if deteval and not (gt_overlaps[g] == 1 and det_overlaps[d] == 1):
            continue
        rg, rd = overlap.gt_points[g], overlap.det_points[d]
        norm_dist = _center_distance(rg, rd)
        norm_dist /= _diag(rg) + _diag(rd)
        norm_dist *= 2.0
        if norm_dist < center_diff_thr:
            gt_flag[g] = True
            det_flag[d] = True
            r_acc += mtype_oo_o
            p_acc += mtype_oo_o
            out.matches.append(("one-to-one", (int(g),), (d,)))

    # One-to-many, every care GT in order (a matched GT collects nothing).
    for g in np.flatnonzero(~gt_dc):
        many_sum: Any = 0
        dets: list[int] = []
        if not gt_flag[g]:
            for d in np.flatnonzero(~det_flag & ~det_dc & (precision_mat[g] >= tp)).tolist():
                many_sum += recall_mat[g, d]
                dets.append(int(d))
        if not _round4(many_sum) >= tr:
            continue
        if deteval and not gt_overlaps[g] >= 2:
            continue
        gt_flag[g] = True
        r_acc += mtype_oo_o if len(dets) == 1 else mtype_om_o
        p_acc += mtype_oo_o if len(dets) == 1 else mtype_om_o * len(dets)
        det_flag[dets] = True
        out.matches.append(
            ("one-to-one" if len(dets) == 1 else "one-to-many", (int(g),), tuple(dets))
        )

    # Many-to-one, every care detection in order.
    for d in np.flatnonzero(~det_dc).tolist():
        many_sum = 0
        gts: list[int] = []
        if not det_flag[d]:
            for g in np.flatnonzero(~gt_flag & ~gt_dc & (recall_mat[:, d] >= tr)):
                many_sum += precision_mat[g, d]
                gts.append(int(g))
        if not _round4(many_sum) >= tp:
            continue
        if deteval and not det_overlaps[d] >= 2:
            continue
        det_flag[d] = True
        r_acc += mtype_oo_o if len(gts) == 1 else mtype_om_m * len(gts)
        p_acc += mtype_oo_o if len(gts) == 1 else mtype_om_m
        gt_flag[gts] = True
        out.matches.append(
            ("one-to-one" if len(gts) == 1 else "many-to-one", tuple(gts), (int(d),))
        )
    out.recall_accum = r_acc
    out.precision_accum = p_acc
    return out


def _resolve(protocol: str, given: dict[str, Any]) -> dict[str, Any]:
    p = check_params(protocol, DEFAULT_PARAMS, given)
    out: dict[str, Any] = {}
    for key in ("tr", "tp", "center_diff_thr", "mtype_oo_o", "mtype_om_o", "mtype_om_m"):
        try:
            out[key] = float(p[key])
        except (TypeError, ValueError):
            raise ProtocolError(f"{protocol}: parameter {key}={p[key]!r} is not a number") from None
        if not np.isfinite(out[key]):
            raise ProtocolError(f"{protocol}: parameter {key}={p[key]!r} must be finite")
    out["sweep"] = parse_bool(p["sweep"], "sweep", protocol)
    out["details"] = parse_bool(p["details"], "details", protocol)
    return out


def _valid_mask(polygons: list[np.ndarray]) -> np.ndarray:
    """``Polygon(points).is_valid and Polygon(points).is_simple`` per polygon
    (is_simple only where valid: GEOS raises on NaN in is_simple, and the
    port's ``or`` never reaches it there)."""
    import shapely

    batch = geos_polygons(polygons)
    ok = batch.usable.copy()
    idx = np.flatnonzero(ok)
    if idx.size:
        valid = shapely.is_valid(batch.geoms[idx])
        ok[idx] = valid
        vidx = idx[valid]
        if vidx.size:
            ok[vidx] = shapely.is_simple(batch.geoms[vidx])
    return ok


def _evaluate(
    protocol: str,
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    params: dict[str, Any],
) -> Result:
    p = _resolve(protocol, params)
    check_prediction_ids(protocol, gt, predictions, "every evaluated image needs its ground truth")
    ids = image_order(gt)
    rule = {
        k: p[k] for k in ("tr", "tp", "center_diff_thr", "mtype_oo_o", "mtype_om_o", "mtype_om_m")
    }
    deteval = protocol == ICDAR2013_DETEVAL
    sweep = SweepAccumulator() if p["sweep"] else None

    per_image: dict[str, dict[str, Any]] = {}
    recall_sum: Any = 0
    precision_sum: Any = 0
    num_gt_care = 0
    num_det_care = 0
    num_gt_all = 0
    num_det_all = 0
    for start in range(0, len(ids), VALIDITY_CHUNK):
        chunk = ids[start : start + VALIDITY_CHUNK]
        g_insts = [gt[i] for i in chunk]
        g_polys = [[np.asarray(x.polygon, np.float64).reshape(-1, 2) for x in gs] for gs in g_insts]
        d_preds = [predictions.get(i, ()) for i in chunk]
        d_polys = [[np.asarray(x.polygon, np.float64).reshape(-1, 2) for x in ps] for ps in d_preds]
        d_scores = (
            [prediction_scores(protocol, i, ps) for i, ps in zip(chunk, d_preds)]
            if sweep is not None
            else None
        )
        g_ok = _split(_valid_mask([q for qs in g_polys for q in qs]), [len(q) for q in g_polys])
        d_ok = _split(_valid_mask([q for qs in d_polys for q in qs]), [len(q) for q in d_polys])
        g_keep = [np.flatnonzero(m) for m in g_ok]
        d_keep = [np.flatnonzero(m) for m in d_ok]
        images = [
            ([g_polys[j][i] for i in g_keep[j]], [d_polys[j][i] for i in d_keep[j]])
            for j in range(len(chunk))
        ]
        overlaps = iter_image_overlaps(images, repair=False, det_first=False)
        for j, (sample_id, overlap) in enumerate(zip(chunk, overlaps)):
            gt_dc = np.array([bool(g_insts[j][i].ignore) for i in g_keep[j].tolist()], dtype=bool)
            scored = match_icdar2013(overlap, gt_dc, deteval=deteval, **rule)
            if sweep is not None and d_scores is not None:
                _sweep_image(sweep, overlap, gt_dc, d_scores[j][d_keep[j]], deteval, rule)
            n_gt, n_det = overlap.inter.shape
            gt_care = n_gt - int(gt_dc.sum())
            det_care = n_det - int(scored.det_dont_care.sum())
            recall_sum += scored.recall_accum
            precision_sum += scored.precision_accum
            num_gt_care += gt_care
            num_det_care += det_care
            entry = _image_entry(n_gt, n_det, gt_care, det_care, scored)
            entry["num_gt"] = len(g_polys[j])
            entry["num_gt_invalid"] = len(g_polys[j]) - n_gt
            entry["num_det"] = len(d_polys[j])
            entry["num_det_invalid"] = len(d_polys[j]) - n_det
            num_gt_all += len(g_polys[j])
            num_det_all += len(d_polys[j])
            if chunk[j] not in predictions:
                entry["missing_prediction_file"] = True
            if p["details"]:
                # [kind, GT indices, detection indices] into the caller's lists
                gk, dk = g_keep[j], d_keep[j]
                entry["matches"] = [
                    [kind, [int(gk[g]) for g in gs], [int(dk[d]) for d in ds]]
                    for kind, gs, ds in scored.matches
                ]
            per_image[sample_id] = entry
    recall = 0 if num_gt_care == 0 else recall_sum / num_gt_care
    precision = 0 if num_det_care == 0 else precision_sum / num_det_care
    hmean = 0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return Result(
        sweep=None if sweep is None else sweep.result(),
        protocol=protocol,
        precision=float(precision),
        recall=float(recall),
        hmean=float(hmean),
        params=rule,
        per_image=per_image,
        extra={
            "num_images": len(ids),
            "num_gt": num_gt_all,
            "num_gt_care": num_gt_care,
            "num_det": num_det_all,
            "num_det_care": num_det_care,
            "recall_credit": float(recall_sum),
            "precision_credit": float(precision_sum),
        },
    )


def _sweep_image(
    sweep: SweepAccumulator,
    overlap: ImageOverlap,
    gt_dc: np.ndarray,
    scores: np.ndarray,
    deteval: bool,
    rule: dict[str, float],
) -> None:
    """Credits of one image at every sweep threshold from the intersections
    computed once (a dropped detection is a dropped column)."""
    n_gt_care = int((~gt_dc).sum())
    for t, threshold in enumerate(sweep.thresholds):
        keep = np.flatnonzero(kept_mask(scores, threshold))
        sub = ImageOverlap(
            inter=overlap.inter[:, keep],
            gt_area=overlap.gt_area,
            det_area=overlap.det_area[keep],
            gt_points=overlap.gt_points,
            det_points=[overlap.det_points[i] for i in keep],
        )
        scored = match_icdar2013(sub, gt_dc, deteval=deteval, **rule)
        sweep.add(
            t,
            scored.recall_accum,
            scored.precision_accum,
            n_gt_care,
            int(keep.size - scored.det_dont_care.sum()),
        )


def _split(mask: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(mask, np.cumsum(sizes)[:-1]) if sizes else []


def _image_entry(
    n_gt: int, n_det: int, gt_care: int, det_care: int, s: Icdar2013Image
) -> dict[str, Any]:
    """Per-image figures computed as the port's ``evaluate_image`` does."""
    recall: float = 0.0
    precision: float = 0.0
    hmean: float = 0.0
    if n_gt == 0:
        recall, precision = 1.0, (0.0 if n_det > 0 else 1.0)
    if n_det > 0:
        if gt_care == 0:
            recall, precision = 1.0, (0.0 if n_det > 0 else 1.0)
        else:
            recall = s.recall_accum / gt_care
            precision = 0.0 if det_care == 0 else s.precision_accum / det_care
        hmean = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "hmean": hmean,
        "num_gt_care": gt_care,
        "num_det_care": det_care,
        "recall_credit": s.recall_accum,
        "precision_credit": s.precision_accum,
    }


def evaluate_icdar2013(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """ICDAR 2013 rules as in the DBNet authors' ``icdar2013.py`` port.

    Parameters: ``tr`` (area recall, 0.8), ``tp`` (area precision, 0.4),
    ``center_diff_thr`` (1.0), ``mtype_oo_o`` (one-to-one credit, 1.0),
    ``mtype_om_o`` (one-to-many credit, 0.8), ``mtype_om_m`` (many-to-one
    credit per GT, 1.0), ``details`` (per-image matches).
    """
    return _evaluate(ICDAR2013, gt, predictions, params)


def evaluate_icdar2013_deteval(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """ICDAR 2013 with DetEval's single-overlap checks, as in the DBNet
    authors' ``deteval.py``; same parameters as :func:`evaluate_icdar2013`."""
    return _evaluate(ICDAR2013_DETEVAL, gt, predictions, params)
