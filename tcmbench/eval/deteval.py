"""``totaltext-deteval``: the official Total-Text DetEval, number for number.

The reference is ``Evaluation_Protocol/Python_scripts/Deteval.py`` of
cs-chan/Total-Text-Dataset (Wolf & Jolion's DetEval with Total-Text's
thresholds). Its rules, quirks included, as reproduced here:

- sigma = inter / area(G) and tau = inter / area(D), each rounded with
  ``np.round(., 2)``. The intersection is taken between ``buffer(0)``-repaired
  polygons (detection first, as ``det.intersection(gt)``), the areas are the
  raw areas of the unrepaired polygons (so a bow-tie's raw area is the
  difference of its lobes, and sigma/tau can exceed 1 -- as in the official).
- Don't care: a detection with inter / (area(D) + 1.0) > 0.5 against any
  don't-care GT is deleted (it counts nowhere), then the don't-care GTs are
  removed.
- One-to-one: G's row has exactly one sigma > tr and exactly one tau > tp, the
  column of that sigma has exactly one sigma > tr and the column of that tau
  exactly one tau > tp; G is matched with the sigma column, +1 / +1.
- One-to-many, for each unmatched G with at least k detections of sigma > 0:
  candidates = unmatched detections with tau >= tp; one candidate -> +1 / +1
  when its tau >= tp and sigma >= tr; otherwise, when the candidates' sigmas
  sum (``np.sum``) to >= tr -> +penalty recall, +penalty * n precision.
- Many-to-one, for each unmatched D with at least k GTs of tau > 0:
  candidates = unmatched GTs with sigma >= **tp** (tp, not tr: the official
  quirk); one candidate -> +1 / +1 when tau >= tp and sigma >= tr; otherwise,
  when the candidates' taus sum to >= tp -> +penalty * n recall, +penalty
  precision.
- R = sum of recall credits / number of care GTs, P = sum of precision
  credits / number of detections left after the don't-care filter, H =
  2PR / (P + R); each 0 on a zero denominator. Credits are added one by one
  to the global sums, images in numeric id order (the official walks
  ``os.listdir``; the order only moves the last bits).
- The official walks the *prediction* folder: an image with no prediction
  file never enters the sums, so its GTs drop out of the recall denominator.
  ``missing_predictions="official"`` (default) reproduces that;
  ``missing_predictions="count"`` counts them as images with no detections.
  A prediction for an image without GT stops the official script
  (``FileNotFoundError`` on the .mat); here it is a :class:`ProtocolError`.

Inputs the official script cannot score (it crashes on them) get a
documented, conservative treatment instead of a crash: a polygon with fewer
than 3 points or a non-finite coordinate overlaps nothing (it still counts
as a GT or a detection); where the official divides by a zero raw area
(``ZeroDivisionError``: degenerate polygons, symmetric bow-ties) the ratio
is 0. Self-intersecting polygons are scored exactly as the official scores
them (raw area, repaired intersection).

The intersection tables come from :mod:`tcmbench.eval.overlaps` (the
numpy kernel, raw areas from GEOS as in the official). The official result
depends on the last bits of an intersection only near a rounding tie of
sigma / tau or near the don't-care threshold: such pairs
(:func:`near_official_ties`) are recomputed with GEOS exactly as the
official script computes them. The sigma/tau tables are built once per
image; matching and the threshold sweep read them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval import workers
from tcmbench.eval.api import check_params, natural_key, parse_bool
from tcmbench.eval.overlaps import (
    ImageInput,
    ImageOverlap,
    iter_image_overlaps,
    safe_ratio,
)
from tcmbench.eval.result import Result
from tcmbench.eval.sweep import SweepAccumulator, kept_mask

log = logging.getLogger(__name__)

PROTOCOL = "totaltext-deteval"
DEFAULT_PARAMS: dict[str, Any] = {
    "tr": 0.7,
    "tp": 0.6,
    "k": 2,
    "penalty": 0.8,
    "missing_predictions": "official",
    "sweep": False,
    "details": True,
}
MISSING_PREDICTION_MODES = ("official", "count")

ONE_TO_ONE = "one-to-one"
ONE_TO_MANY = "one-to-many"
MANY_TO_ONE = "many-to-one"


# --------------------------------------------------------------------------- params


def image_order(ids: Any) -> list[str]:
    """Sample ids in numeric order (``img2`` before ``img10``)."""
    return sorted(ids, key=natural_key)


def _number(params: dict[str, Any], key: str, kind: type = float) -> Any:
    value = params[key]
    try:
        if kind is int:
            as_float = float(value)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        out = float(value)
    except (TypeError, ValueError):
        raise ProtocolError(
            f"{PROTOCOL}: parameter {key}={value!r} is not a valid {kind.__name__}"
        ) from None
    if not math.isfinite(out):
        raise ProtocolError(f"{PROTOCOL}: parameter {key}={value!r} must be finite")
    return out


def _resolve_params(given: dict[str, Any]) -> dict[str, Any]:
    p = check_params(PROTOCOL, DEFAULT_PARAMS, given)
    out = {
        "tr": _number(p, "tr"),
        "tp": _number(p, "tp"),
        "k": _number(p, "k", int),
        "penalty": _number(p, "penalty"),
        "missing_predictions": str(p["missing_predictions"]).strip().lower(),
        "sweep": parse_bool(p["sweep"], "sweep", PROTOCOL),
        "details": parse_bool(p["details"], "details", PROTOCOL),
    }
    if out["missing_predictions"] not in MISSING_PREDICTION_MODES:
        raise ProtocolError(
            f"{PROTOCOL}: missing_predictions={p['missing_predictions']!r}; "
            f"expected one of {', '.join(MISSING_PREDICTION_MODES)}"
        )
    return out


def check_prediction_ids(
    protocol: str, gt: Mapping[str, Any], predictions: Mapping[str, Any], why: str
) -> None:
    """A prediction for an image with no GT stops the run, as the official does."""
    orphans = [i for i in predictions if i not in gt]
    if orphans:
        shown = ", ".join(image_order(orphans)[:5]) + (" ..." if len(orphans) > 5 else "")
        raise ProtocolError(
            f"{protocol}: {len(orphans)} prediction sample(s) have no ground truth: {shown} "
            f"({why}); check that GT and predictions belong to the same split"
        )


# --------------------------------------------------------------------------- matching


@dataclass
class DetEvalImage:
    """One image scored by :func:`match_totaltext`."""

    recall_credits: list[float]
    precision_credits: list[float]
    matches: list[tuple[str, tuple[int, ...], tuple[int, ...]]]


# Half-width of the band around a rounding tie (in units of the second
# decimal) and around the don't-care threshold inside which a fast-kernel
# intersection is recomputed with GEOS. The kernel agrees with GEOS to a
# relative 1e-13 or so; outside the band both round alike.
TIE_BAND = 1e-7


def near_official_ties(inter: np.ndarray, gt_area: np.ndarray, det_area: np.ndarray) -> np.ndarray:
    """Pairs whose rounded sigma / tau or don't-care test could change if
    the intersection moved by a few ulps: the only places where the official
    result depends on the exact bits of the intersection area."""

    def near_half(x: np.ndarray) -> np.ndarray:
        frac = x - np.floor(x)
        return np.abs(frac - 0.5) < TIE_BAND * np.maximum(1.0, np.abs(x))

    with np.errstate(invalid="ignore", over="ignore"):
        sigma100 = safe_ratio(inter, gt_area) * 100.0
        tau100 = safe_ratio(inter, det_area) * 100.0
        iod = inter / (det_area + 1.0)
        return (
            near_half(sigma100)
            | near_half(tau100)
            | (np.abs(iod - 0.5) < TIE_BAND)
            | ~np.isfinite(inter)
        )


def deteval_tables(
    overlap: ImageOverlap, gt_ignore: np.ndarray, *, rounded: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the don't-care filter and build sigma / tau of one image.

    Returns (sigma, tau, care_gt_index, kept_det_index): tables over the care
    GTs x kept detections, with their indices in the image's original lists.
    ``rounded=False`` gives the unrounded ratios (what the Matlab Eval.m
    prints), without the don't-care filter.
    """
    inter = overlap.inter
    if not rounded:
        return (
            safe_ratio(inter, overlap.gt_area[:, None]),
            safe_ratio(inter, overlap.det_area[None, :]),
            np.arange(inter.shape[0]),
            np.arange(inter.shape[1]),
        )
    gt_ignore = np.asarray(gt_ignore, dtype=bool)
    gt_area, det_area = overlap.gt_area, overlap.det_area
    if gt_ignore.any():
        if inter.shape[1]:
            iod = inter[gt_ignore] / (det_area + 1.0)
            kept = np.flatnonzero(~(iod > 0.5).any(axis=0))
        else:
            kept = np.zeros(0, dtype=np.int64)
        care = np.flatnonzero(~gt_ignore)
        inter = inter[care][:, kept]
        gt_area, det_area = gt_area[care], det_area[kept]
    else:  # no don't-care GT (most images): the tables are the whole image
        care, kept = np.arange(inter.shape[0]), np.arange(inter.shape[1])
    sigma = np.round(safe_ratio(inter, gt_area[:, None]), 2)
    tau = np.round(safe_ratio(inter, det_area[None, :]), 2)
    return sigma, tau, care, kept


def match_totaltext(
    sigma: np.ndarray, tau: np.ndarray, *, tr: float, tp: float, k: int, penalty: float
) -> DetEvalImage:
    """The official one-to-one, one-to-many, many-to-one passes on one image.

    Credits are returned in the order the official adds them to its global
    sums; matches use table indices (GT row, detection column).
    """
    num_gt, num_det = sigma.shape
    gt_flag = np.zeros(num_gt, dtype=bool)
    det_flag = np.zeros(num_det, dtype=bool)
    rec: list[float] = []
    prec: list[float] = []
    matches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    if num_gt == 0 or num_det == 0:
        return DetEvalImage(rec, prec, matches)

    # One-to-one. Flags never block here: each matched column has exactly
    # one qualifying row, so the official per-row loop is order-free.
    # (Boolean sums and .nonzero() rather than np.count_nonzero / flatnonzero:
    # the same numbers without their Python wrappers, per image.)
    s_ok = sigma > tr
    t_ok = tau > tp
    rows = ((s_ok.sum(axis=1) == 1) & (t_ok.sum(axis=1) == 1)).nonzero()[0]
    if rows.size:
        col_s, col_t = s_ok.sum(axis=0), t_ok.sum(axis=0)
        s_col, t_col = s_ok[rows].argmax(axis=1), t_ok[rows].argmax(axis=1)
        one = (col_s[s_col] == 1) & (col_t[t_col] == 1)
        for g, d in zip(rows[one].tolist(), s_col[one].tolist()):
            rec.append(1.0)
            prec.append(1.0)
            gt_flag[g] = True
            det_flag[d] = True
            matches.append((ONE_TO_ONE, (g,), (d,)))

    # One-to-many (splits): G unmatched, >= k detections with sigma > 0.
    nz_row = (sigma > 0).sum(axis=1)
    for g in (~gt_flag & (nz_row >= k)).nonzero()[0].tolist():
        cand = ((tau[g] >= tp) & ~det_flag).nonzero()[0]
        n = cand.size
        if n == 1:
            d = int(cand[0])
            if tau[g, d] >= tp and sigma[g, d] >= tr:
                rec.append(1.0)
                prec.append(1.0)
                gt_flag[g] = True
                det_flag[d] = True
                matches.append((ONE_TO_ONE, (int(g),), (d,)))
        elif np.sum(sigma[g, cand]) >= tr:
            rec.append(penalty)
            prec.append(n * penalty)
            gt_flag[g] = True
            det_flag[cand] = True
            matches.append((ONE_TO_MANY, (int(g),), tuple(int(x) for x in cand)))

    # Many-to-one (merges): D unmatched, >= k GTs with tau > 0; candidates
    # use sigma >= tp (the official compares sigma with tp here).
    nz_col = (tau > 0).sum(axis=0)
    for d in (~det_flag & (nz_col >= k)).nonzero()[0].tolist():
        cand = ((sigma[:, d] >= tp) & ~gt_flag).nonzero()[0]
        n = cand.size
        if n == 1:
            g = int(cand[0])
            if tau[g, d] >= tp and sigma[g, d] >= tr:
                rec.append(1.0)
                prec.append(1.0)
                gt_flag[g] = True
                det_flag[d] = True
                matches.append((ONE_TO_ONE, (g,), (int(d),)))
        elif np.sum(tau[cand, d]) >= tp:
            rec.append(n * penalty)
            prec.append(penalty)
            det_flag[d] = True
            gt_flag[cand] = True
            matches.append((MANY_TO_ONE, tuple(int(x) for x in cand), (int(d),)))
    return DetEvalImage(rec, prec, matches)


# --------------------------------------------------------------------------- protocol


def _polygons_of(items: Sequence[Instance] | Sequence[Prediction]) -> list[np.ndarray]:
    return [x.polygon for x in items]  # made float64 once per chunk (geos_polygons)


def prediction_scores(protocol: str, sample_id: str, preds: Sequence[Prediction]) -> np.ndarray:
    """Scores for the threshold sweep; a prediction without one is an error
    (the sweep has no meaning without confidences)."""
    if any(p.score is None for p in preds):
        raise ProtocolError(
            f"{protocol}: sweep=true needs a score on every prediction; sample {sample_id!r} has "
            f"predictions without one"
        )
    return np.array([float(p.score) for p in preds], dtype=np.float64)  # type: ignore[arg-type]


def _load(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    ids: Sequence[str],
    with_scores: bool,
) -> Iterator[ImageInput]:
    """Images one at a time (a lazy mapping is read once per image)."""
    for sample_id in ids:
        instances = gt[sample_id]
        preds = predictions.get(sample_id, ())
        ignore = np.array([bool(x.ignore) for x in instances], dtype=bool)
        scores = prediction_scores(PROTOCOL, sample_id, preds) if with_scores else None
        yield (_polygons_of(instances), _polygons_of(preds), (sample_id, ignore, scores))


def evaluate_totaltext_deteval(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    **params: Any,
) -> Result:
    """Score ``predictions`` against ``gt`` with the official Total-Text DetEval.

    ``gt`` maps sample id -> instances (``ignore`` = don't care, the ``#``
    of the official GT); ``predictions`` maps sample id -> predictions, a
    missing id meaning "no prediction file". Parameters: ``tr`` (0.7),
    ``tp`` (0.6), ``k`` (2), ``penalty`` (0.8), ``missing_predictions``
    (``official``: skip images without a prediction file, as Deteval.py
    does; ``count``: count their GTs as missed), ``details`` (per-image
    matches; false keeps only the per-image counts, for very large sets).
    """
    p = _resolve_params(params)
    check_prediction_ids(
        PROTOCOL,
        gt,
        predictions,
        "the official Deteval.py stops: it finds no poly_gt_<id>.mat for them",
    )
    all_ids = image_order(gt)
    if p["missing_predictions"] == "official":
        ids = [i for i in all_ids if i in predictions]
    else:
        ids = all_ids
    skipped = [i for i in all_ids if i not in predictions]

    rule = {k: p[k] for k in ("tr", "tp", "k", "penalty")}
    sweep = SweepAccumulator() if p["sweep"] else None
    acc_r = 0.0
    acc_p = 0.0
    total_gt = 0  # care GTs (the official total_num_gt)
    total_det = 0  # detections left by the don't-care filter (total_num_det)
    all_gt = 0
    all_det = 0
    per_image: dict[str, dict[str, Any]] = {}
    scored = workers.map_images(
        ids,
        gt,
        predictions,
        lambda part, first: _score_part(gt, predictions, part, rule, sweep, p["details"], first),
        split=sweep is None,  # the sweep's float credits stay in one process
    )
    for images in scored:
        # one image after the other, as the official script sums
        for sample_id, recall_credits, precision_credits, entry in images:
            for c in recall_credits:
                acc_r += c
            for c in precision_credits:
                acc_p += c
            total_gt += entry["num_gt_care"]
            total_det += entry["num_det_care"]
            all_gt += entry["num_gt"]
            all_det += entry["num_det"]
            per_image[sample_id] = entry
    skipped_gt = 0
    for sample_id in skipped:
        if p["missing_predictions"] == "official":
            n_care = sum(1 for x in gt[sample_id] if not x.ignore)
            skipped_gt += n_care
            per_image[sample_id] = {
                "missing_prediction_file": True,
                "skipped": "the official Deteval.py walks the prediction folder: this image's "
                "GTs are not counted",
                "num_gt_care": n_care,
            }
    if skipped and p["missing_predictions"] == "official" and skipped_gt:
        log.warning(
            "%s: %d image(s) have no prediction file; as in the official Deteval.py their %d "
            "care GT(s) are left out of the recall denominator (missing_predictions=count "
            "counts them)",
            PROTOCOL,
            len(skipped),
            skipped_gt,
        )
    recall = acc_r / total_gt if total_gt else 0.0
    precision = acc_p / total_det if total_det else 0.0
    hmean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Result(
        sweep=None if sweep is None else sweep.result(),
        protocol=PROTOCOL,
        precision=precision,
        recall=recall,
        hmean=hmean,
        params={k: p[k] for k in ("tr", "tp", "k", "penalty", "missing_predictions")},
        per_image=per_image,
        extra={
            "num_images": len(ids),
            "num_gt": all_gt,
            "num_gt_care": total_gt,
            "num_det": all_det,
            "num_det_care": total_det,
            "recall_credit": acc_r,
            "precision_credit": acc_p,
            "images_without_predictions": len(skipped),
        },
    )


#: One image's (sample id, recall credits, precision credits, per-image entry).
_ImageScore = tuple[str, list[float], list[float], dict[str, Any]]


def _score_part(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    ids: Sequence[str],
    rule: dict[str, Any],
    sweep: SweepAccumulator | None,
    details: bool,
    progress: bool = True,
) -> list[_ImageScore]:
    """The matchings of the images ``ids``, in order, with their credits
    (summed by the caller in the official order)."""
    overlaps = iter_image_overlaps(
        _load(gt, predictions, ids, sweep is not None),
        repair=True,
        det_first=True,
        recheck=near_official_ties,
    )
    out: list[_ImageScore] = []
    if progress:
        overlaps = _progress(overlaps, len(ids))
    for overlap, (scored, care, kept) in _scored(overlaps, rule, sweep):
        sample_id = overlap.tag[0]
        num_gt, num_det = care.size, kept.size
        local_r = sum(scored.recall_credits)
        local_p = sum(scored.precision_credits)
        entry: dict[str, Any] = {
            "precision": local_p / num_det if num_det else 0.0,
            "recall": local_r / num_gt if num_gt else 0.0,
            "num_gt": int(overlap.inter.shape[0]),
            "num_gt_care": num_gt,
            "num_det": int(overlap.inter.shape[1]),
            "num_det_care": num_det,
            "recall_credit": local_r,
            "precision_credit": local_p,
        }
        if sample_id not in predictions:
            entry["missing_prediction_file"] = True
        if details:
            # [kind, GT indices, detection indices] into the caller's lists
            entry["matches"] = [
                [kind, [int(care[g]) for g in gs], [int(kept[d]) for d in ds]]
                for kind, gs, ds in scored.matches
            ]
        out.append((sample_id, list(scored.recall_credits), list(scored.precision_credits), entry))
    return out


#: Images scored together by :func:`score_images` (their arrays stay small).
BATCH_IMAGES = 512

Scored = tuple[DetEvalImage, np.ndarray, np.ndarray]


def _scored(
    overlaps: Iterator[ImageOverlap], rule: dict[str, Any], sweep: SweepAccumulator | None
) -> Iterator[tuple[ImageOverlap, Scored]]:
    """Each image with (its matching, care GT indices, kept detection
    indices), in order: batches of images at once, or image by image with
    the tables the sweep reads."""
    batch: list[ImageOverlap] = []
    for overlap in overlaps:
        if sweep is not None:
            _, ignore, scores = overlap.tag
            sigma, tau, care, kept = deteval_tables(overlap, ignore)
            _sweep_image(sweep, sigma, tau, scores[kept], rule)
            yield overlap, (match_totaltext(sigma, tau, **rule), care, kept)
            continue
        batch.append(overlap)
        if len(batch) >= BATCH_IMAGES:
            yield from zip(batch, score_images(batch, [o.tag[1] for o in batch], **rule))
            batch = []
    if batch:
        yield from zip(batch, score_images(batch, [o.tag[1] for o in batch], **rule))


def score_images(
    overlaps: Sequence[ImageOverlap],
    ignores: Sequence[np.ndarray],
    *,
    tr: float,
    tp: float,
    k: int,
    penalty: float,
) -> list[Scored]:
    """:func:`deteval_tables` then :func:`match_totaltext` for each image,
    many images at once: the don't-care filter, sigma / tau and the
    one-to-one pass over every (GT, detection) pair of the batch in a few
    array operations. Only an image where a split or merge is possible
    (an unmatched care GT with ``k`` detections of sigma > 0, or an
    unmatched kept detection with ``k`` GTs of tau > 0) goes through the
    per-image passes, whose order matters. Results, credits in their order
    included, are those of the per-image functions
    (tests/test_eval_deteval.py compares them)."""
    n_img = len(overlaps)
    g_cnt = np.array([o.inter.shape[0] for o in overlaps], dtype=np.int64)
    d_cnt = np.array([o.inter.shape[1] for o in overlaps], dtype=np.int64)
    ng, nd = int(g_cnt.sum()), int(d_cnt.sum())
    g_off, d_off = np.cumsum(g_cnt) - g_cnt, np.cumsum(d_cnt) - d_cnt
    ignore = np.zeros(ng, dtype=bool)
    gt_area, det_area = np.zeros(ng), np.zeros(nd)
    if ng:
        ignore = np.concatenate([np.asarray(x, dtype=bool).reshape(-1) for x in ignores])
        gt_area = np.concatenate([o.gt_area for o in overlaps])
    if nd:
        det_area = np.concatenate([o.det_area for o in overlaps])
    # every pair of an image, row after row (the tables' order)
    per = g_cnt * d_cnt
    inter = np.concatenate([o.inter.reshape(-1) for o in overlaps]) if per.sum() else np.zeros(0)
    img = np.repeat(np.arange(n_img), per)
    local = np.arange(inter.size) - np.repeat(np.cumsum(per) - per, per)
    pg = g_off[img] + local // np.maximum(d_cnt[img], 1)
    pd = d_off[img] + local % np.maximum(d_cnt[img], 1)
    # Don't care: a detection with inter / (area + 1) > 0.5 against an ignored GT.
    with np.errstate(invalid="ignore", divide="ignore"):
        absorbed = ignore[pg] & (inter / (det_area[pd] + 1.0) > 0.5)
    kept_mask = np.bincount(pd[absorbed], minlength=nd) == 0
    care_mask = ~ignore
    valid = care_mask[pg] & kept_mask[pd]
    sigma = np.round(safe_ratio(inter, gt_area[pg]), 2)
    tau = np.round(safe_ratio(inter, det_area[pd]), 2)
    # One-to-one: a row with one sigma > tr and one tau > tp, whose columns
    # have one each.
    s_ok, t_ok = valid & (sigma > tr), valid & (tau > tp)
    s_row, t_row = np.bincount(pg[s_ok], minlength=ng), np.bincount(pg[t_ok], minlength=ng)
    s_colc, t_colc = np.bincount(pd[s_ok], minlength=nd), np.bincount(pd[t_ok], minlength=nd)
    s_col, t_col = np.zeros(ng, dtype=np.int64), np.zeros(ng, dtype=np.int64)
    s_col[pg[s_ok]], t_col[pg[t_ok]] = pd[s_ok], pd[t_ok]
    rows = ((s_row == 1) & (t_row == 1)).nonzero()[0]
    rows = rows[(s_colc[s_col[rows]] == 1) & (t_colc[t_col[rows]] == 1)]
    gt_flag, det_flag = np.zeros(ng, dtype=bool), np.zeros(nd, dtype=bool)
    gt_flag[rows], det_flag[s_col[rows]] = True, True
    # Images where a split or a merge may follow: the per-image passes. A
    # pass only acts on a row (column) that has a candidate; flags only
    # grow, so a row without one after the one-to-one pass never gets one.
    nz_row = np.bincount(pg[valid & (sigma > 0)], minlength=ng)
    nz_col = np.bincount(pd[valid & (tau > 0)], minlength=nd)
    row_cand = np.bincount(pg[valid & (tau >= tp) & ~det_flag[pd]], minlength=ng)
    col_cand = np.bincount(pd[valid & (sigma >= tp) & ~gt_flag[pg]], minlength=nd)
    g_img, d_img = np.repeat(np.arange(n_img), g_cnt), np.repeat(np.arange(n_img), d_cnt)
    split = care_mask & ~gt_flag & (nz_row >= k) & (row_cand > 0)
    merge = kept_mask & ~det_flag & (nz_col >= k) & (col_cand > 0)
    more = np.bincount(g_img[split], minlength=n_img) > 0
    more |= np.bincount(d_img[merge], minlength=n_img) > 0
    # The matches in table indices (rank among the image's care GTs / kept
    # detections), image by image.
    g_before = np.cumsum(care_mask) - care_mask
    d_before = np.cumsum(kept_mask) - kept_mask
    m_img = g_img[rows].tolist()
    m_g = (g_before[rows] - g_before[g_off[g_img[rows]]]).tolist()
    m_d = (d_before[s_col[rows]] - d_before[d_off[g_img[rows]]]).tolist()
    out: list[Scored] = []
    pos = 0
    for i, overlap in enumerate(overlaps):
        start = pos
        while pos < len(m_img) and m_img[pos] == i:
            pos += 1
        if more[i]:
            sigma_i, tau_i, care, kept = deteval_tables(overlap, ignores[i])
            scored = match_totaltext(sigma_i, tau_i, tr=tr, tp=tp, k=k, penalty=penalty)
            out.append((scored, care, kept))
            continue
        g0, d0 = int(g_off[i]), int(d_off[i])
        care = care_mask[g0 : g0 + int(g_cnt[i])].nonzero()[0]
        kept = kept_mask[d0 : d0 + int(d_cnt[i])].nonzero()[0]
        matches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
            (ONE_TO_ONE, (m_g[j],), (m_d[j],)) for j in range(start, pos)
        ]
        credits = [1.0] * len(matches)
        out.append((DetEvalImage(credits, list(credits), matches), care, kept))
    return out


def _sweep_image(
    sweep: SweepAccumulator,
    sigma: np.ndarray,
    tau: np.ndarray,
    scores: np.ndarray,
    rule: dict[str, Any],
) -> None:
    """Credits of one image at every sweep threshold, from the tables
    computed once: dropping a detection drops its column (the don't-care
    filter is per detection, so it commutes with the threshold)."""
    for t, threshold in enumerate(sweep.thresholds):
        keep = kept_mask(scores, threshold)
        scored = match_totaltext(sigma[:, keep], tau[:, keep], **rule)
        sweep.add(
            t,
            sum(scored.recall_credits),
            sum(scored.precision_credits),
            sigma.shape[0],
            int(keep.sum()),
        )


def _progress(it: Iterator[ImageOverlap], total: int) -> Iterator[ImageOverlap]:
    """A tqdm bar on stderr for long runs (silent when not a terminal)."""
    if total < 2000:
        return it
    import sys

    from tqdm import tqdm

    return iter(
        tqdm(
            it, total=total, desc=PROTOCOL, unit="img", disable=not sys.stderr.isatty(), leave=False
        )
    )


# --------------------------------------------------------------------------- Matlab example files


def read_deteval_mat_predictions(data: bytes, location: str) -> list[Prediction]:
    """Predictions of the official DetEval example (``Examples/Prediction/imgN.mat``).

    Layout (as Eval.m reads it): variable ``accuInf``, an N x 1 cell array of
    K x 2 arrays, column 1 = x, column 2 = y. This differs from the GT
    ``.mat`` layout (``polygt`` rows), read by
    :func:`tcmbench.data.formats.totaltext.read_totaltext_mat`.
    """
    from tcmbench.data.matfile import MatFileError, load_mat
    from tcmbench.errors import AnnotationFormatError

    expected = "DetEval prediction .mat with variable 'accuInf': N x 1 cells of K x 2 (x, y) arrays"
    try:
        # load_mat validates the file first: a crafted .mat can crash scipy.
        mat = load_mat(data, ["accuInf"])
    except MatFileError as exc:
        raise AnnotationFormatError(
            location, None, expected, f"not a readable MATLAB file: {exc}"
        ) from None
    if "accuInf" not in mat:
        keys = mat["__variables__"]
        raise AnnotationFormatError(
            location, None, expected, f"no variable 'accuInf' (found {keys})"
        )
    out = []
    for row, cell in enumerate(np.asarray(mat["accuInf"], dtype=object).reshape(-1), start=1):
        arr = np.asarray(cell, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise AnnotationFormatError(
                location, row, expected, f"cell {row} has shape {arr.shape}"
            )
        out.append(Prediction(polygon=arr))
    return out
