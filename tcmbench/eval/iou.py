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
(see :mod:`tcmbench.eval.geometry`); a detection is don't-care when, for
some don't-care GT, inter / area(det) > 0.5; greedy matching over GT index
then detection index, a pair matches when both are unmatched and care and
IoU > 0.5 (strict), first qualifying detection wins; R = matched / care GTs,
P = matched / care detections, summed over images (not averaged), 0 on zero
denominators. With ``confidences=true`` detections are sorted by score
(``numpy.argsort(-score)``) before anything else and AP is computed as the
RRC script does.

TIoU (per matched pair): recall = inter * f(Ct / |G|) / union with
Ct = |G| - inter; precision = inter * f(Ot / |D|) / union with Ot the part of
D covered by *other* GTs outside G (``|D & U| - |(D & G) & U|``, U the union
of the other GTs that meet D, don't-care ones included, as the official
condition tests the matched GT's index rather than the other's);
f(x) = 1 if x <= 0.01 else 1 - x; a failed assertion of the official code
(Ct or Ot out of range, zero area) gives 0. The curved script allows
Ot <= |D|, the ICDAR 2015 one Ot <= |D| + 0.001.

Speed: images are processed in chunks (bounded memory whatever their
number). Pairs are pruned by bounding boxes, then by area bounds: a pair of
simple polygons whose bounding-box overlap cannot reach IoU > 0.5 (or
inter / area > 0.5 for a don't-care GT, or Ot / |D| > 0.01) needs no exact
intersection at all. Exact areas come from the vectorised kernel.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval import geometry
from tcmbench.eval.api import check_params, natural_key, parse_bool, parse_float
from tcmbench.eval.result import Result
from tcmbench.eval.sweep import THRESHOLDS, SweepAccumulator, greedy_hits, kept_mask

log = logging.getLogger(__name__)

# Polygons (GT + detections) gathered before a chunk is scored.
CHUNK_POLYGONS = 20_000
# Safety margin on the pruning bounds (they only skip provably hopeless pairs).
_BOUND_MARGIN = 1.0 - 1e-9

RRC_EXPECTED_POINTS = 4


@dataclass(frozen=True)
class Rules:
    """What differs between the official scripts of the family."""

    protocol: str
    coords: geometry.CoordMode
    validation: str  # "rrc" | "curved"
    gt_round: bool = False  # msra-td500: GT corners rounded to int (DBNet's conversion)
    ot_tolerance: float = 0.0
    tiou_headline: bool = False


ICDAR2015 = Rules("icdar2015", "int32", "rrc", ot_tolerance=0.001)
MSRA_TD500 = Rules("msra-td500", "int32", "rrc", gt_round=True, ot_tolerance=0.001)
TOTALTEXT_IOU = Rules("totaltext-iou", "float32", "curved")
CTW1500_IOU = Rules("ctw1500-iou", "float32", "curved")
TIOU_CURVED = Rules("tiou", "float32", "curved", tiou_headline=True)
TIOU_ICDAR2015 = Rules("tiou", "int32", "rrc", ot_tolerance=0.001, tiou_headline=True)


@dataclass(frozen=True)
class Params:
    iou_threshold: float
    area_precision_threshold: float
    confidences: bool
    validate: bool
    tiou: bool
    sweep: bool
    details: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "area_precision_threshold": self.area_precision_threshold,
            "confidences": self.confidences,
            "validate": self.validate,
            "tiou": self.tiou,
        }


def _resolve(protocol: str, given: Mapping[str, Any]) -> tuple[Params, dict[str, Any]]:
    from tcmbench.eval.catalog import IOU_PROTOCOLS

    p = check_params(protocol, IOU_PROTOCOLS[protocol][2], given)
    params = Params(
        iou_threshold=parse_float(p["iou_threshold"], "iou_threshold", protocol),
        area_precision_threshold=parse_float(
            p["area_precision_threshold"], "area_precision_threshold", protocol
        ),
        confidences=parse_bool(p["confidences"], "confidences", protocol),
        validate=parse_bool(p["validate"], "validate", protocol),
        tiou=parse_bool(p.get("tiou", True), "tiou", protocol),
        sweep=parse_bool(p["sweep"], "sweep", protocol),
        details=parse_bool(p["details"], "details", protocol),
    )
    return params, p


# --------------------------------------------------------------------------- entry points


def evaluate_icdar2015(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """ICDAR 2015 task 4.1, equal to the RRC ``script.py``."""
    p, _ = _resolve("icdar2015", params)
    return score(gt, predictions, ICDAR2015, p)


def evaluate_msra_td500(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """MSRA-TD500 with the icdar2015 rules (no official script exists)."""
    p, _ = _resolve("msra-td500", params)
    return score(gt, predictions, MSRA_TD500, p)


def evaluate_totaltext_iou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """Total-Text IoU 0.5, equal to TIoU-metric's curved script."""
    p, _ = _resolve("totaltext-iou", params)
    return score(gt, predictions, TOTALTEXT_IOU, p)


def evaluate_ctw1500_iou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """SCUT-CTW1500 IoU 0.5, equal to TIoU-metric's curved script."""
    p, _ = _resolve("ctw1500-iou", params)
    return score(gt, predictions, CTW1500_IOU, p)


def evaluate_tiou(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """The TIoU figures as the headline precision / recall / hmean."""
    p, raw = _resolve("tiou", params)  # the TIoU figures are always on here
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
    matched: int = 0
    gt_care: int = 0
    det_care: int = 0
    gt: int = 0
    det: int = 0
    images: int = 0
    missing: int = 0
    tiou_recall: float = 0.0
    tiou_precision: float = 0.0
    conf: list[np.ndarray] = field(default_factory=list)
    match: list[np.ndarray] = field(default_factory=list)


def score(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    rules: Rules,
    p: Params,
) -> Result:
    """Score every image of ``gt`` (in numeric id order) chunk by chunk."""
    ids = sorted(gt, key=natural_key)
    totals = _Totals()
    sweep = SweepAccumulator() if p.sweep else None
    per_image: dict[str, dict[str, Any]] = {}
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]] = []
    pending = 0
    for sid in _progress(ids, rules.protocol):
        instances = gt[sid]
        dets = predictions.get(sid)  # None: no prediction file
        chunk.append((sid, instances, dets))
        pending += len(instances) + (len(dets) if dets is not None else 0)
        if pending >= CHUNK_POLYGONS:
            _score_chunk(chunk, rules, p, totals, sweep, per_image)
            chunk = []
            pending = 0
    if chunk:
        _score_chunk(chunk, rules, p, totals, sweep, per_image)
    return _result(rules, p, totals, sweep, per_image)


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
        tiou_r = 0 if t.gt_care == 0 else t.tiou_recall / t.gt_care
        tiou_p = 0 if t.det_care == 0 else t.tiou_precision / t.det_care
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


# --------------------------------------------------------------------------- validation


def _reject(rules: Rules, sid: str, role: str, index: int, reason: str) -> ProtocolError:
    script = "the RRC script" if rules.validation == "rrc" else "the curved TIoU script"
    err = ProtocolError(
        f"{rules.protocol}: sample {sid}, {role} {index + 1}: {reason}; {script} rejects the "
        f"whole submission on such a line (pass --param validate=false to score it anyway)"
    )
    err.sample_id = sid  # type: ignore[attr-defined]
    err.role = role  # type: ignore[attr-defined]
    err.index = index  # type: ignore[attr-defined]
    return err


def _validate_rrc(
    rules: Rules, polys: list[np.ndarray], owner_ids: list[str], local: np.ndarray, role: str
) -> None:
    """4 points, finite, and the RRC "clockwise" sum on int() points <= 0."""
    for k, poly in enumerate(polys):
        if poly.shape[0] != RRC_EXPECTED_POINTS:
            raise _reject(
                rules,
                owner_ids[k],
                role,
                int(local[k]),
                f"has {poly.shape[0]} points; the ICDAR 2015 format has exactly 4 (x1,y1,...,x4,y4)",
            )
    if not polys:
        return
    quads = np.stack(polys).astype(np.float64)
    finite = np.isfinite(quads).all(axis=(1, 2))
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise _reject(rules, owner_ids[k], role, int(local[k]), "has a non-finite coordinate")
    pts = np.trunc(quads)
    if np.abs(pts).max() < 2**25:
        nxt = np.roll(pts, -1, axis=1)
        edge = (nxt[..., 0] - pts[..., 0]) * (nxt[..., 1] + pts[..., 1])
        bad = edge.sum(axis=1) > 0
    else:  # exact with Python ints, as the script computes
        bad = np.array(
            [
                sum(
                    (int(q[(i + 1) % 4, 0]) - int(q[i, 0]))
                    * (int(q[(i + 1) % 4, 1]) + int(q[i, 1]))
                    for i in range(4)
                )
                > 0
                for q in quads
            ]
        )
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise _reject(
            rules,
            owner_ids[k],
            role,
            int(local[k]),
            "its points are not in clockwise order (image coordinates, y down)",
        )


def _validate_curved(
    rules: Rules, batch: geometry.PolygonBatch, owner_ids: list[str], local: np.ndarray, role: str
) -> None:
    """shapely's ``Polygon(points).is_valid`` and ``not LinearRing.is_ccw``."""
    n = len(batch)
    if n == 0:
        return
    valid = geometry.shapely_is_valid(batch, np.arange(n))
    if not valid.all():
        k = int(np.flatnonzero(~valid)[0])
        what = (
            "has fewer than 3 distinct points or a non-finite coordinate"
            if batch.void[k]
            else "is not a valid polygon (its sides intersect or it has no area)"
        )
        raise _reject(rules, owner_ids[k], role, int(local[k]), what)
    ccw = batch.signed_area > 0
    if ccw.any():
        k = int(np.flatnonzero(ccw)[0])
        raise _reject(
            rules,
            owner_ids[k],
            role,
            int(local[k]),
            "its points run in the order the curved script rejects (shapely "
            "LinearRing(points).is_ccw is True); reverse the point order",
        )


# --------------------------------------------------------------------------- one chunk


def _score_chunk(
    chunk: list[tuple[str, Sequence[Instance], Sequence[Prediction] | None]],
    rules: Rules,
    p: Params,
    totals: _Totals,
    sweep: SweepAccumulator | None,
    per_image: dict[str, dict[str, Any]],
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
        _validate_rrc(rules, gt_polys, [ids[i] for i in gt_img], gt_local, "ground-truth polygon")
        det_local_input = (
            np.concatenate(det_input_index)[det_local] if det_input_index else det_local
        )
        _validate_rrc(rules, det_polys, [ids[i] for i in det_img], det_local_input, "detection")
    if rules.gt_round:
        gt_polys = [np.round(g) for g in gt_polys]
    G = geometry.pack(gt_polys, rules.coords)
    D = geometry.pack(det_polys, rules.coords)
    if p.validate and rules.validation == "curved":
        _validate_curved(rules, G, [ids[i] for i in gt_img], gt_local, "ground-truth polygon")
        det_local_input = (
            np.concatenate(det_input_index)[det_local] if det_input_index else det_local
        )
        _validate_curved(rules, D, [ids[i] for i in det_img], det_local_input, "detection")

    ig, idt, bi = geometry.candidate_pairs(G, gt_img, D, det_img)
    a_g = G.area[ig]
    a_d = D.area[idt]
    simple = G.simple[ig] & D.simple[idt]
    dc_pair = gt_ignore_a[ig]
    thr = p.iou_threshold
    athr = p.area_precision_threshold
    ub = np.minimum(np.minimum(bi, a_g), a_d)
    need_match = ~dc_pair & (~simple | (ub * (1 + thr) >= thr * (a_g + a_d) * _BOUND_MARGIN))
    need_dc = dc_pair & (~simple | (np.minimum(bi, a_g) >= athr * a_d * _BOUND_MARGIN))
    need = need_match | need_dc
    inter = np.full(ig.size, np.nan)
    pos = np.flatnonzero(need)
    inter[pos] = geometry.intersection_area(G, ig[pos], D, idt[pos])

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
        tiou_r, tiou_p = _tiou_values(
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
        totals.tiou_recall += float(np.sum(tiou_r))
        totals.tiou_precision += float(np.sum(tiou_p))

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


# --------------------------------------------------------------------------- TIoU


def _f(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.01, 1.0, 1.0 - x)


def _tiou_values(
    G: geometry.PolygonBatch,
    D: geometry.PolygonBatch,
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
    exact_det = bound[md] > 0.01 * a_d * _BOUND_MARGIN
    ot = np.zeros(mg.size)
    if exact_det.any():
        wanted = np.zeros(len(D), dtype=bool)
        wanted[md[exact_det]] = True
        todo = o_pos[wanted[idt[o_pos]] & np.isnan(inter[o_pos])]
        if todo.size:
            inter[todo] = geometry.intersection_area(G, ig[todo], D, idt[todo])
        sel = o_pos[wanted[idt[o_pos]]]
        sel = sel[inter[sel] != 0]
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
    G: geometry.PolygonBatch,
    D: geometry.PolygonBatch,
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
    pa, pb = geometry.grouped_pairs(rows_k, rows_k)
    keep = pa < pb
    pa, pb = pa[keep], pb[keep]
    lo = np.concatenate([np.minimum(rows_g, rows_i), np.minimum(rows_i[pa], rows_i[pb])])
    hi = np.concatenate([np.maximum(rows_g, rows_i), np.maximum(rows_i[pa], rows_i[pb])])
    n_g = len(G) + 1
    keys, inverse = np.unique(lo * n_g + hi, return_inverse=True)
    areas = geometry.intersection_area(G, keys // n_g, G, keys % n_g)[inverse]
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
    G: geometry.PolygonBatch,
    D: geometry.PolygonBatch,
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
        geoms = geometry.geos_geometries(G, idx.reshape(-1)).reshape(idx.shape)
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
    batch = geometry.pack([coords[bounds[i] : bounds[i + 1]] for i in range(polys.size)], "float64")
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
            weights=geometry.intersection_area(batch, part_rows, D, dets[job_rows]),
            minlength=len(jobs),
        )
    holed = set(owner[holes].tolist())
    if holed:
        for j, key in enumerate(job_key.tolist()):
            if key in holed:
                part_geoms = parts[holes & (owner == key)]
                d_geom = geometry.geos_geometry(D, int(dets[j]))
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
    G: geometry.PolygonBatch, D: geometry.PolygonBatch, g: int, d: int, others: list[int]
) -> float:
    import shapely

    gd = geometry.geos_geometry(D, d)
    gg = geometry.geos_geometry(G, g)
    parts = [geometry.geos_geometry(G, i) for i in others]
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
