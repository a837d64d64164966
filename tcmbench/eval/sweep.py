"""The best-threshold sweep that mmocr (and so the TCM paper) reports.

The official scripts score every submitted detection. mmocr's
``HmeanIOUMetric`` instead drops detections whose score is below a
threshold, for each threshold of ``numpy.arange(0.3, 0.9, 0.1)`` (0.3, 0.4,
..., 0.9, as float64: 0.6000000000000001 and so on; scores are float32), and
reports the best hmean. That number is systematically higher than the
official one, so tcmbench computes it only on request, stores it in
``Result.sweep`` under an explicit label and never mixes it with the
official figures.

Protocols feed the sweep from what they computed once (the pairs that pass
the match threshold, don't-care flags, scores): no geometry is repeated per
threshold. :class:`SweepAccumulator` adds per-threshold credits chunk by
chunk, so memory stays flat however many images are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

THRESHOLDS: np.ndarray = np.arange(0.3, 0.9, 0.1)
LABEL = "best-threshold sweep (mmocr style), not the official figure"
RULE = (
    "detections with score < t are dropped before matching, for t in numpy.arange(0.3, 0.9, 0.1) "
    "(0.3 ... 0.9); the protocol's own matching rules are applied at each t and the t with the "
    "best hmean is reported (first one on ties)"
)


def kept_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Detections that survive ``threshold``, compared as mmocr does
    (float32 scores against the float64 threshold)."""
    return ~(np.asarray(scores, dtype=np.float32) < threshold)


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
            "thresholds": labels,
            "precision": precision,
            "recall": recall,
            "hmean": hm,
            "best_threshold": labels[best] if hm else None,
            "best_precision": precision[best] if hm else None,
            "best_recall": recall[best] if hm else None,
            "best_hmean": hm[best] if hm else None,
        }
