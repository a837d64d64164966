"""What happened to each ground truth and each detection of an image.

The report draws and counts true positives, false positives and misses, but
the protocols describe their matches in two shapes (see
:class:`tcmbench.eval.result.Result`):

* the IoU family (``icdar2015``, ``msra-td500``, ``totaltext-iou``,
  ``ctw1500-iou``, ``tiou``) lists ``pairs`` ``[gt, det, iou]`` and the
  don't-care indices of both sides: everything is known exactly;
* ``icdar2013``, ``icdar2013-deteval`` and ``totaltext-deteval`` list
  ``matches`` ``[kind, gts, dets]`` (one-to-one, splits and merges) and only
  the *number* of detections their don't-care filter removed. The report
  does not re-implement each filter: it ranks the unmatched detections by
  how much of them the don't-care GTs cover and marks that many as
  don't-care, so the counts always equal the protocol's and the identities
  are the protocol's in every case but near-ties.

The outcome is read from the protocol, never recomputed, so the report can
not disagree with the figures it sits next to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction

log = logging.getLogger(__name__)

# Labels of one ground truth / one detection.
TP = "tp"  # matched (GT found / detection that found one)
FN = "fn"  # care GT nobody found
FP = "fp"  # care detection that found nothing
DC = "dc"  # don't care: counts nowhere (don't-care GT, detection it absorbed, invalid polygon)


@dataclass
class ImageOutcome:
    """Labels of one image's ground truths and detections (same order as
    the sample's instances and the predictions given to the protocol)."""

    sample_id: str
    gt: list[str]
    det: list[str]
    entry: dict[str, Any]
    scored: bool = True

    @property
    def tp(self) -> int:
        """Care ground truths matched (recall's numerator, in count)."""
        return self.gt.count(TP)

    @property
    def fn(self) -> int:
        return self.gt.count(FN)

    @property
    def fp(self) -> int:
        return self.det.count(FP)

    @property
    def errors(self) -> int:
        """False positives plus misses: what the worst-images view sorts by."""
        return self.fp + self.fn

    @property
    def num_gt_care(self) -> int:
        return self.gt.count(TP) + self.gt.count(FN)

    @property
    def num_det_care(self) -> int:
        return self.det.count(TP) + self.det.count(FP)


def image_outcomes(
    gt: Mapping[str, Sequence[Instance]],
    predictions: Mapping[str, Sequence[Prediction]],
    per_image: Mapping[str, dict[str, Any]],
) -> dict[str, ImageOutcome]:
    """One :class:`ImageOutcome` per sample id of ``gt`` (in its order).

    ``per_image`` is ``Result.per_image`` computed with the protocol's
    ``details`` on (the default). An image the protocol did not score (the
    Total-Text DetEval skips images without a prediction file) gets
    ``scored=False`` and every item labelled don't-care.
    """
    out: dict[str, ImageOutcome] = {}
    for sid, instances in gt.items():
        dets = list(predictions.get(sid, ()))
        entry = per_image.get(sid)
        if (
            entry is None
            or entry.get("skipped")
            or ("pairs" not in entry and "matches" not in entry)
        ):
            if entry is not None and "skipped" not in entry:
                log.warning(
                    "%s: the protocol's per-image entry has no matches (details off?); "
                    "its objects are not labelled",
                    sid,
                )
            out[sid] = ImageOutcome(
                sid, [DC] * len(instances), [DC] * len(dets), dict(entry or {}), scored=False
            )
            continue
        if "pairs" in entry:
            o = _from_pairs(sid, instances, dets, entry)
        else:
            o = _from_matches(sid, instances, dets, entry)
        _check_counts(o)
        out[sid] = o
    return out


def _from_pairs(
    sid: str, instances: Sequence[Instance], dets: Sequence[Prediction], entry: dict[str, Any]
) -> ImageOutcome:
    gt = [FN] * len(instances)
    det = [FP] * len(dets)
    for g in entry.get("gt_dont_care", ()):
        gt[int(g)] = DC
    for d in entry.get("det_dont_care", ()):
        det[int(d)] = DC
    for g, d, *_ in entry["pairs"]:
        gt[int(g)] = TP
        det[int(d)] = TP
    return ImageOutcome(sid, gt, det, entry)


def _from_matches(
    sid: str, instances: Sequence[Instance], dets: Sequence[Prediction], entry: dict[str, Any]
) -> ImageOutcome:
    gt = [DC if inst.ignore else FN for inst in instances]
    det = [FP] * len(dets)
    # icdar2013 drops polygons that are not valid and simple before scoring.
    if entry.get("num_gt_invalid") or entry.get("num_det_invalid"):
        from tcmbench.eval.icdar2013 import _valid_mask

        for labels, items in ((gt, instances), (det, dets)):
            if items:
                ok = _valid_mask([np.asarray(x.polygon, np.float64).reshape(-1, 2) for x in items])
                for i in np.flatnonzero(~ok).tolist():
                    labels[i] = DC
    for _kind, gs, ds in entry["matches"]:
        for g in gs:
            gt[int(g)] = TP
        for d in ds:
            det[int(d)] = TP
    valid_dets = len(dets) - int(entry.get("num_det_invalid", 0))
    n_dc = valid_dets - int(entry.get("num_det_care", valid_dets))
    if n_dc > 0:
        _mark_dont_care_detections(instances, dets, det, n_dc)
    return ImageOutcome(sid, gt, det, entry)


def _mark_dont_care_detections(
    instances: Sequence[Instance], dets: Sequence[Prediction], labels: list[str], count: int
) -> None:
    """Label as don't-care the ``count`` unmatched detections most covered
    by don't-care GTs (the protocol gives the number, not the indices)."""
    import shapely

    dc_polys = [x.polygon for x in instances if x.ignore]
    candidates = [i for i, lab in enumerate(labels) if lab == FP]
    if not dc_polys or not candidates:
        return
    dc_geoms = [_geom(p) for p in dc_polys]
    cover: list[tuple[float, int]] = []
    for i in candidates:
        d = _geom(dets[i].polygon)
        area = float(shapely.area(d))
        inter = max(float(shapely.area(shapely.intersection(d, g))) for g in dc_geoms)
        cover.append((inter / area if area > 0 else 0.0, i))
    cover.sort(key=lambda t: (-t[0], t[1]))
    for _, i in cover[:count]:
        labels[i] = DC


def _geom(points: np.ndarray) -> Any:
    import shapely

    pts = np.asarray(points, np.float64).reshape(-1, 2)
    poly = shapely.Polygon(pts)
    return poly if poly.is_valid else shapely.make_valid(poly).buffer(0)


def _check_counts(o: ImageOutcome) -> None:
    """The labels must reproduce the protocol's own per-image counts."""
    e = o.entry
    gt_care = e.get("num_gt_care")
    det_care = e.get("num_det_care")
    if (gt_care is not None and gt_care != o.num_gt_care) or (
        det_care is not None and det_care != o.num_det_care
    ):
        log.warning(
            "%s: labelled %d care GT(s) / %d care detection(s), the protocol counted %s / %s",
            o.sample_id,
            o.num_gt_care,
            o.num_det_care,
            gt_care,
            det_care,
        )
