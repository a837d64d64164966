"""The best-threshold sweep that mmocr 0.x (and so the TCM paper) reports.

The official scripts score every submitted detection. The papers' figures
come from mmocr 0.x's ``eval_hmean`` (``mmocr/core/evaluation/hmean.py``,
the copy bundled with wenwenyu/TCM): detections with score <= ``score_thr``
(0.3) are dropped once, then for ``thr = iter * 0.1``, ``iter`` in
``range(3, 10)`` -- 0.30000000000000004, 0.4, 0.5, 0.6000000000000001,
0.7000000000000001, 0.8, 0.9 as Python floats -- the detections with
``score >= thr`` (``select_top_boundary``) are scored with ``hmean-iou``,
and the hmean that is strictly higher than every earlier one is kept (the
lowest threshold wins a tie). Every threshold is above 0.3, so the first
filter changes nothing. That number is systematically higher than the
official one, so tcmbench computes it only on request, stores it in
``Result.sweep`` under an explicit label (:data:`LABEL`: the papers'
figure, not the official protocol's) and never mixes it with the official
figures.

Protocols feed the sweep from what they computed once (the pairs that pass
the match threshold, don't-care flags, scores): no geometry is repeated per
threshold. :class:`SweepAccumulator` adds per-threshold credits chunk by
chunk, so memory stays flat however many images are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: mmocr 0.x ``eval_hmean``: ``thr = iter * 0.1`` for ``iter in range(3, 10)``,
#: the same float64 values (not ``numpy.arange(0.3, 0.9, 0.1)``, mmocr 1.x's,
#: whose 0.7000000000000002 and 0.8000000000000003 differ).
THRESHOLDS: np.ndarray = np.array([i * 0.1 for i in range(3, 10)], dtype=np.float64)
#: Where the range and step come from.
SOURCE = (
    "mmocr 0.x mmocr/core/evaluation/hmean.py eval_hmean (as bundled with wenwenyu/TCM): "
    "thr = iter * 0.1 for iter in range(3, 10), detections with score >= thr, best hmean kept"
)
LABEL = (
    "best-threshold hmean as mmocr 0.x reports it (the papers' figure); "
    "not the official protocol's figure"
)
#: What a result's own precision / recall / hmean are, where both figures
#: are shown side by side (experiment records and reports).
OFFICIAL_LABEL = (
    "the official protocol's figure: every submitted detection, scored by the dataset's protocol"
)
RULE = (
    "detections with score < t are dropped before matching, for t = 0.3, 0.4, ..., 0.9 "
    "(mmocr 0.x: iter * 0.1, iter 3..9, compared with the score as given); the protocol's own "
    "matching rules are applied at each t and the t with the best hmean is reported (the "
    "lowest one on ties)"
)


def kept_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Detections that survive ``threshold``: ``score >= threshold``, the
    score compared as given (float64), as mmocr 0.x's
    ``select_top_boundary`` compares Python floats."""
    return ~(np.asarray(scores, dtype=np.float64) < threshold)


def greedy_hits(gt_index: Sequence[int], det_index: Sequence[int], det_kept: np.ndarray) -> int:
    """Number of one-to-one matches made by first-come-first-matched over
    candidate pairs (already in (gt, det) order), ignoring dropped dets."""
    used_g: set[int] = set()
    used_d: set[int] = set()
    kept = det_kept.tolist() if isinstance(det_kept, np.ndarray) else list(det_kept)
    for g, d in zip(gt_index, det_index):
        if not kept[d] or g in used_g or d in used_d:
            continue
        used_g.add(g)
        used_d.add(d)
    return len(used_g)


def hmean(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


class SweepAccumulator:
    """Per-threshold recall / precision credits and denominators."""

    def __init__(self, thresholds: np.ndarray = THRESHOLDS) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        k = self.thresholds.size
        self.recall_credit = np.zeros(k)
        self.precision_credit = np.zeros(k)
        self.num_gt = np.zeros(k)
        self.num_det = np.zeros(k)

    def add(
        self,
        index: int,
        recall_credit: float,
        precision_credit: float,
        num_gt: float,
        num_det: float,
    ) -> None:
        self.recall_credit[index] += recall_credit
        self.precision_credit[index] += precision_credit
        self.num_gt[index] += num_gt
        self.num_det[index] += num_det

    def merge(self, other: SweepAccumulator) -> None:
        """Add ``other``'s credits and denominators (the images that follow)."""
        self.recall_credit += other.recall_credit
        self.precision_credit += other.precision_credit
        self.num_gt += other.num_gt
        self.num_det += other.num_det

    def result(self) -> dict[str, Any]:
        recall = [
            0.0 if g == 0 else float(c) / float(g) for c, g in zip(self.recall_credit, self.num_gt)
        ]
        precision = [
            0.0 if d == 0 else float(c) / float(d)
            for c, d in zip(self.precision_credit, self.num_det)
        ]
        hm = [hmean(p, r) for p, r in zip(precision, recall)]
        best = int(np.argmax(hm)) if hm else 0
        labels = [round(float(t), 1) for t in self.thresholds]
        return {
            "label": LABEL,
            "rule": RULE,
            "source": SOURCE,
            "thresholds": labels,
            "precision": precision,
            "recall": recall,
            "hmean": hm,
            "best_threshold": labels[best] if hm else None,
            "best_precision": precision[best] if hm else None,
            "best_recall": recall[best] if hm else None,
            "best_hmean": hm[best] if hm else None,
        }
