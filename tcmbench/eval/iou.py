"""The IoU family: icdar2015, msra-td500, totaltext-iou, ctw1500-iou, tiou.

One engine, the rules of two official scripts:

* the RRC ICDAR 2015 ``script.py`` (``icdar2015``; ``msra-td500`` applies it
  to the rotated TD500 quads as DBNet does; ``tiou`` with
  ``rules=icdar2015`` is TIoU-metric's ICDAR 2015 script): points truncated
  with ``int()`` into an int32 array, only 4-point lines, the "clockwise"
  check ``sum((x2 - x1) * (y2 + y1)) <= 0`` on every GT and detection line
  (a failing line makes the official script reject the whole submission);
* TIoU-metric's ``curved-tiou/script.py`` (``totaltext-iou``,
  ``ctw1500-iou``, ``tiou``): polygons of any length stored as float32, each
  line validated with shapely (``Polygon(points).is_valid`` and
  ``not LinearRing(points).is_ccw``), the TIoU figures next to the IoU ones.

Shared rules (both scripts): Polygon3 areas (raw shoelace) and intersections
(see :mod:`tcmbench.eval.intersection`); a detection is don't-care when, for
some don't-care GT, inter / area(det) > 0.5; greedy matching over GT index
then detection index, a pair matches when both are unmatched and care and
IoU > 0.5 (strict), first qualifying detection wins; R = matched / care GTs,
P = matched / care detections, summed over images (not averaged), 0 on zero
denominators. With ``confidences=true`` detections are sorted by score
(``numpy.argsort(-score)``) before anything else and AP is computed as the
RRC script does.

The rules each script applies to its input lines are in
:mod:`tcmbench.eval.iou_rules`; the TIoU figures of the matched pairs in
:mod:`tcmbench.eval.tiou`.

Speed: images are processed in chunks (bounded memory whatever their
number). Pairs are pruned by bounding boxes, then by area bounds: a pair of
simple polygons whose bounding-box overlap cannot reach IoU > 0.5 (or
inter / area > 0.5 for a don't-care GT, or Ot / |D| > 0.01) needs no exact
intersection at all. Exact areas come from the vectorised kernel.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval import workers
from tcmbench.eval.api import natural_key
from tcmbench.eval.intersection import intersection_area
from tcmbench.eval.iou_rules import (
    BOUND_MARGIN,
    CTW1500_IOU,
    ICDAR2015,
    MSRA_TD500,
    TIOU_CURVED,
    TIOU_ICDAR2015,
    TOTALTEXT_IOU,
    Owners,
    Params,
    Rules,
    resolve_params,
    validate_curved,
    validate_rrc,
)
from tcmbench.eval.pairs import candidate_pairs
from tcmbench.eval.polygons import pack
from tcmbench.eval.result import Result
from tcmbench.eval.sweep import THRESHOLDS, SweepAccumulator, greedy_hits, kept_mask
from tcmbench.eval.tiou import tiou_values

log = logging.getLogger(__name__)

# Polygons (GT + detections) gathered before a chunk is scored.
CHUNK_POLYGONS = 20_000

# --------------------------------------------------------------------------- entry points


def evaluate_icdar2015(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """ICDAR 2015 task 4.1, equal to the RRC ``script.py``."""
    p, _ = resolve_params("icdar2015", params)
    return score(gt, predictions, ICDAR2015, p)


def evaluate_msra_td500(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """MSRA-TD500 with the icdar2015 rules (no official script exists)."""
    p, _ = resolve_params("msra-td500", params)
    return score(gt, predictions, MSRA_TD500, p)


def evaluate_totaltext_iou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """Total-Text IoU 0.5, equal to TIoU-metric's curved script."""
    p, _ = resolve_params("totaltext-iou", params)
    return score(gt, predictions, TOTALTEXT_IOU, p)


def evaluate_ctw1500_iou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """SCUT-CTW1500 IoU 0.5, equal to TIoU-metric's curved script."""
    p, _ = resolve_params("ctw1500-iou", params)
    return score(gt, predictions, CTW1500_IOU, p)


def evaluate_tiou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """The TIoU figures as the headline precision / recall / hmean."""
    p, raw = resolve_params("tiou", params)  # the TIoU figures are always on here
    rules_name = str(raw["rules"]).strip().lower()
    if rules_name not in ("curved", "icdar2015"):
        raise ProtocolError(f"tiou: rules={raw['rules']!r}; expected curved or icdar2015")
    rules = TIOU_CURVED if rules_name == "curved" else TIOU_ICDAR2015
    result = score(gt, predictions, rules, p)
    result.params["rules"] = rules_name
    return result


# --------------------------------------------------------------------------- engine


@dataclass
class _Totals:
    """What the chunks of one part add up (merged across parts in order)."""

    matched: int = 0
    gt_care: int = 0
    det_care: int = 0
    gt: int = 0
    det: int = 0
    images: int = 0
    missing: int = 0
    #: TIoU recall / precision of the matched pairs, chunk by chunk (summed
    #: once at the end: how the images were chunked or split over worker
    #: processes cannot change the sum)
    tiou_r: list[np.ndarray] = field(default_factory=list)
    tiou_p: list[np.ndarray] = field(default_factory=list)
    conf: list[np.ndarray] = field(default_factory=list)
    match: list[np.ndarray] = field(default_factory=list)

    def add(self, other: _Totals) -> None:
        """Append ``other``, the totals of the images that follow."""
        for name in ("matched", "gt_care", "det_care", "gt", "det", "images", "missing"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("tiou_r", "tiou_p", "conf", "match"):
            getattr(self, name).extend(getattr(other, name))


def score(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    rules: Rules,
    p: Params,
) -> Result:
    """Score every image of ``gt`` (in numeric id order) chunk by chunk,
    contiguous runs of images in worker processes where
    :func:`tcmbench.eval.workers.use` allows it."""
    ids = sorted(gt, key=natural_key)
    results = workers.map_images(
        ids, gt, predictions, lambda part, first: _score_ids(part, gt, predictions, rules, p, first)
    )
    totals, sweep, per_image = results[0]
    for more, more_sweep, more_images in results[1:]:
        totals.add(more)
        if sweep is not None and more_sweep is not None:
            sweep.merge(more_sweep)
        per_image.update(more_images)
    return _result(rules, p, totals, sweep, per_image)


def _score_ids(
    ids: list[str],
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    rules: Rules,
    p: Params,
    progress: bool,
) -> tuple[_Totals, SweepAccumulator | None, dict[str, Any]]:
    """The totals, sweep and per-image entries of the images ``ids``."""
    totals = _Totals()
    sweep = SweepAccumulator() if p.sweep else None
    per_image: dict[str, dict[str, Any]] = {}
    # The geometry limits (tcmbench.eval.bounds) test simplicity first: reuse it.
    certified = getattr(gt, "certified_simple", None)
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]] = []
    pending = 0
    for sid in _progress(ids, rules.protocol) if progress else ids:
        instances = gt[sid]
        dets = predictions.get(sid)  # None: no prediction file
        chunk.append((sid, instances, dets))
        pending += len(instances) + (len(dets) if dets is not None else 0)
        if pending >= CHUNK_POLYGONS:
            _score_chunk(chunk, rules, p, totals, sweep, per_image, certified)
            chunk = []
            pending = 0
    if chunk:
        _score_chunk(chunk, rules, p, totals, sweep, per_image, certified)
    return totals, sweep, per_image


def _progress(ids: list[str], desc: str) -> Iterable[str]:
    if len(ids) < 2000 or not sys.stderr.isatty():
        return ids
    from tqdm import tqdm

    return tqdm(ids, desc=desc, unit="img", leave=False)


def _hmean(precision: float, recall: float) -> float:
    # The scripts' global formula, same operation order (exact float equality).
    return 0 if precision + recall == 0 else 2 * recall * precision / (recall + precision)


def _sample_hmean(precision: float, recall: float) -> float:
    # The scripts' per-sample formula (operands in the other order).
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def _result(
    rules: Rules,
    p: Params,
    t: _Totals,
    sweep: SweepAccumulator | None,
    per_image: dict[str, dict[str, Any]],
) -> Result:
    recall = 0 if t.gt_care == 0 else float(t.matched) / t.gt_care
    precision = 0 if t.det_care == 0 else float(t.matched) / t.det_care
    hmean = _hmean(precision, recall)
    ap = None
    if p.confidences:
        ap = _compute_ap(
            np.concatenate(t.conf) if t.conf else np.zeros(0),
            np.concatenate(t.match) if t.match else np.zeros(0, dtype=bool),
            t.gt_care,
        )
    tiou_r = tiou_p = tiou_h = None
    if p.tiou:
        sum_r = float(np.sum(np.concatenate(t.tiou_r))) if t.tiou_r else 0.0
        sum_p = float(np.sum(np.concatenate(t.tiou_p))) if t.tiou_p else 0.0
        tiou_r = 0 if t.gt_care == 0 else sum_r / t.gt_care
        tiou_p = 0 if t.det_care == 0 else sum_p / t.det_care
        tiou_h = _hmean(tiou_p, tiou_r)
    extra: dict[str, Any] = {
        "num_images": t.images,
        "num_gt": t.gt,
        "num_gt_care": t.gt_care,
        "num_det": t.det,
        "num_det_care": t.det_care,
        "num_matched": t.matched,
        "images_without_predictions": t.missing,
    }
    params = p.as_dict()
    params["coords"] = rules.coords
    if rules.tiou_headline:
        extra["iou05"] = {"precision": precision, "recall": recall, "hmean": hmean}
        precision, recall, hmean = float(tiou_p or 0), float(tiou_r or 0), float(tiou_h or 0)
    return Result(
        protocol=rules.protocol,
        precision=float(precision),
        recall=float(recall),
        hmean=float(hmean),
        ap=None if ap is None else float(ap),
        tiou_precision=None if tiou_p is None else float(tiou_p),
        tiou_recall=None if tiou_r is None else float(tiou_r),
        tiou_hmean=None if tiou_h is None else float(tiou_h),
        params=params,
        per_image=per_image,
        sweep=None if sweep is None else sweep.result(),
        extra=extra,
    )


def _compute_ap(conf: np.ndarray, match: np.ndarray, num_gt_care: int) -> float:
    """The RRC script's AP: detections by descending confidence (numpy's
    default unstable sort, as the script), precision at each hit, summed
    and divided by the number of care GTs."""
    if conf.size == 0:
        return 0.0
    order = np.argsort(-conf)
    hits = match[order]
    ranks = np.flatnonzero(hits) + 1
    correct = np.arange(1, ranks.size + 1)
    ap = 0.0
    for c, n in zip(correct.tolist(), ranks.tolist()):
        ap += float(c) / n
    return ap / num_gt_care if num_gt_care > 0 else ap


# --------------------------------------------------------------------------- one chunk


def _score_chunk(
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]],
    rules: Rules,
    p: Params,
    totals: _Totals,
    sweep: SweepAccumulator | None,
    per_image: dict[str, dict[str, Any]],
    certified: Callable[[Sequence[Any]], np.ndarray | None] | None = None,
) -> None:
    n_img = len(chunk)
    gt_polys: list[np.ndarray] = []
    gt_ignore: list[bool] = []
    gt_count = np.zeros(n_img, dtype=np.int64)
    det_polys: list[np.ndarray] = []
    det_scores: list[float | None] = []
    det_count = np.zeros(n_img, dtype=np.int64)
    det_input_index: list[np.ndarray] = []
    missing = np.zeros(n_img, dtype=bool)
    for k, (sid, instances, dets) in enumerate(chunk):
        gt_polys.extend([x.polygon for x in instances])
        gt_ignore.extend([bool(x.ignore) for x in instances])
        gt_count[k] = len(instances)
        if dets is None:
            missing[k] = True
            dets = []
        polys = [d.polygon for d in dets]
        scores = [d.score for d in dets]
        order = np.arange(len(dets))
        if p.confidences and dets:
            if any(s is None for s in scores):
                raise ProtocolError(
                    f"{rules.protocol}: sample {sid} has a detection without a score; "
                    f"confidences=true needs one per detection (x1,y1,...,x4,y4,confidence)"
                )
            order = np.argsort(-np.array(scores, dtype=np.float64))
            polys = [polys[i] for i in order]
            scores = [scores[i] for i in order]
        det_polys.extend(polys)
        det_scores.extend(scores)
        det_count[k] = len(dets)
        det_input_index.append(order)
    gt_img = np.repeat(np.arange(n_img), gt_count)
    det_img = np.repeat(np.arange(n_img), det_count)
    gt_local = np.arange(gt_img.size) - np.repeat(np.cumsum(gt_count) - gt_count, gt_count)
    det_local = np.arange(det_img.size) - np.repeat(np.cumsum(det_count) - det_count, det_count)
    gt_ignore_a = np.array(gt_ignore, dtype=bool)
    ids = [c[0] for c in chunk]

    if p.validate and rules.validation == "rrc":
        validate_rrc(rules, gt_polys, Owners(ids, gt_img), gt_local, "ground-truth polygon")
        det_local_input = (
            np.concatenate(det_input_index)[det_local] if det_input_index else det_local
        )
        validate_rrc(rules, det_polys, Owners(ids, det_img), det_local_input, "detection")
    if rules.gt_round:
        gt_polys = [np.round(g) for g in gt_polys]
    G = pack(
        gt_polys, rules.coords, None if rules.gt_round or not certified else certified(gt_polys)
    )
    D = pack(det_polys, rules.coords, certified(det_polys) if certified else None)
    if p.validate and rules.validation == "curved":
        validate_curved(rules, G, Owners(ids, gt_img), gt_local, "ground-truth polygon")
        det_local_input = (
            np.concatenate(det_input_index)[det_local] if det_input_index else det_local
        )
        validate_curved(rules, D, Owners(ids, det_img), det_local_input, "detection")

    ig, idt, bi = candidate_pairs(G, gt_img, D, det_img)
    a_g = G.area[ig]
    a_d = D.area[idt]
    simple = G.simple[ig] & D.simple[idt]
    dc_pair = gt_ignore_a[ig]
    thr = p.iou_threshold
    athr = p.area_precision_threshold
    ub = np.minimum(np.minimum(bi, a_g), a_d)
    need_match = ~dc_pair & (~simple | (ub * (1 + thr) >= thr * (a_g + a_d) * BOUND_MARGIN))
    need_dc = dc_pair & (~simple | (np.minimum(bi, a_g) >= athr * a_d * BOUND_MARGIN))
    need = need_match | need_dc
    inter = np.full(ig.size, np.nan)
    pos = np.flatnonzero(need)
    inter[pos] = intersection_area(G, ig[pos], D, idt[pos])

    # Don't-care detections: inter / area(det) > threshold for some DC GT.
    det_dc = np.zeros(len(D), dtype=bool)
    if need_dc.any():
        q = np.flatnonzero(need_dc)
        ad = a_d[q]
        prec = np.divide(inter[q], ad, out=np.zeros(q.size), where=ad != 0)
        det_dc[idt[q[prec > athr]]] = True

    # IoU and the greedy one-to-one matching.
    q = np.flatnonzero(need_match)
    union = a_d[q] + a_g[q] - inter[q]
    iou = np.divide(inter[q], union, out=np.zeros(q.size), where=union != 0)
    ok = (iou > thr) & ~det_dc[idt[q]]
    cand = q[ok]
    cand_iou = iou[ok]
    cg = ig[cand].tolist()
    cd = idt[cand].tolist()
    used_g: set[int] = set()
    used_d: set[int] = set()
    m_pos: list[int] = []
    for k, (g, d) in enumerate(zip(cg, cd)):
        if g in used_g or d in used_d:
            continue
        used_g.add(g)
        used_d.add(d)
        m_pos.append(k)
    m_pos_a = np.array(m_pos, dtype=np.int64)
    mg = ig[cand[m_pos_a]] if m_pos else np.zeros(0, dtype=np.int64)
    md = idt[cand[m_pos_a]] if m_pos else np.zeros(0, dtype=np.int64)
    m_iou = cand_iou[m_pos_a] if m_pos else np.zeros(0)

    n_gt_care = np.bincount(gt_img[~gt_ignore_a], minlength=n_img)
    n_det_care = np.bincount(det_img[~det_dc], minlength=n_img)
    n_matched = np.bincount(gt_img[mg], minlength=n_img)

    tiou_r = tiou_p = np.zeros(0)
    if p.tiou:
        tiou_r, tiou_p = tiou_values(
            G,
            D,
            ig,
            idt,
            bi,
            inter,
            cand[m_pos_a] if m_pos else np.zeros(0, np.int64),
            mg,
            md,
            rules.ot_tolerance,
        )
        totals.tiou_r.append(np.asarray(tiou_r, dtype=np.float64))
        totals.tiou_p.append(np.asarray(tiou_p, dtype=np.float64))

    totals.matched += int(mg.size)
    totals.gt_care += int(n_gt_care.sum())
    totals.det_care += int(n_det_care.sum())
    totals.gt += int(gt_count.sum())
    totals.det += int(det_count.sum())
    totals.images += n_img
    totals.missing += int(missing.sum())

    det_matched = np.zeros(len(D), dtype=bool)
    det_matched[md] = True
    scores_a = None
    if p.confidences:
        scores_a = np.array(det_scores, dtype=np.float64)
        care = ~det_dc
        totals.conf.append(scores_a[care])
        totals.match.append(det_matched[care])

    if sweep is not None:
        if any(s is None for s in det_scores):
            k = next(i for i, s in enumerate(det_scores) if s is None)
            raise ProtocolError(
                f"{rules.protocol}: the threshold sweep needs a score for every detection; sample "
                f"{ids[det_img[k]]} has a detection without one"
            )
        sc = np.array(det_scores, dtype=np.float64)
        gt_total = float(n_gt_care.sum())
        for t_i, t in enumerate(THRESHOLDS):
            keep = kept_mask(sc, float(t))
            hits = greedy_hits(cg, cd, keep)
            sweep.add(t_i, hits, hits, gt_total, float((keep & ~det_dc).sum()))

    if not p.details:
        return
    g_start = np.cumsum(gt_count) - gt_count
    d_start = np.cumsum(det_count) - det_count
    pair_img = gt_img[mg]
    tr_img = np.bincount(pair_img, weights=tiou_r, minlength=n_img) if p.tiou else None
    tp_img = np.bincount(pair_img, weights=tiou_p, minlength=n_img) if p.tiou else None
    by_img: dict[int, list[list[Any]]] = {}
    for g, d, v in zip(mg.tolist(), md.tolist(), m_iou.tolist()):
        k = int(gt_img[g])
        order = det_input_index[k]
        by_img.setdefault(k, []).append([g - int(g_start[k]), int(order[d - int(d_start[k])]), v])
    dc_det_idx = np.flatnonzero(det_dc)
    dc_by_img: dict[int, list[int]] = {}
    for d in dc_det_idx.tolist():
        k = int(det_img[d])
        dc_by_img.setdefault(k, []).append(int(det_input_index[k][d - int(d_start[k])]))
    for k, sid in enumerate(ids):
        gc, dcare, mt = int(n_gt_care[k]), int(n_det_care[k]), int(n_matched[k])
        if gc == 0:
            rec, prec = 1.0, (0.0 if dcare > 0 else 1.0)
        else:
            rec = float(mt) / gc
            prec = 0.0 if dcare == 0 else float(mt) / dcare
        entry: dict[str, Any] = {
            "precision": prec,
            "recall": rec,
            "hmean": _sample_hmean(prec, rec),
            "num_gt": int(gt_count[k]),
            "num_gt_care": gc,
            "num_det": int(det_count[k]),
            "num_det_care": dcare,
            "num_matched": mt,
            "pairs": sorted(by_img.get(k, [])),
            "gt_dont_care": np.flatnonzero(
                gt_ignore_a[g_start[k] : g_start[k] + gt_count[k]]
            ).tolist(),
            "det_dont_care": sorted(dc_by_img.get(k, [])),
        }
        if missing[k]:
            entry["missing_prediction_file"] = True
        if p.tiou:
            assert tr_img is not None and tp_img is not None
            if gc == 0:
                trc, tpc = 1.0, (0.0 if dcare > 0 else 1.0)
            else:
                trc = float(tr_img[k]) / gc
                tpc = 0.0 if dcare == 0 else float(tp_img[k]) / dcare
            entry["tiou_recall"] = trc
            entry["tiou_precision"] = tpc
            entry["tiou_hmean"] = _sample_hmean(tpc, trc)
        if p.confidences and scores_a is not None:
            sl = slice(int(d_start[k]), int(d_start[k] + det_count[k]))
            care = ~det_dc[sl]
            entry["ap"] = (
                _compute_ap(scores_a[sl][care], det_matched[sl][care], gc) if gc > 0 else prec
            )
        per_image[sid] = entry
