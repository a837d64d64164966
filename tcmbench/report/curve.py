"""Precision and recall as the score threshold rises, by the protocol itself.

Each point re-scores the whole split with the protocol, after dropping the
detections whose score is below the threshold (compared as the mmocr sweep
compares: float32 scores against the threshold). The protocol's own
matching runs at every point, so a curve point is exactly the figure the
protocol would give for that filtered submission. None of these points is
the official figure, which scores every submitted detection; the report
says so next to the plots.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.data.schema import Prediction, Sample
from tcmbench.eval.sweep import kept_mask

log = logging.getLogger(__name__)

# 0.00, 0.05, ..., 0.95: fine enough to show the knee of a detector's curve,
# coarse enough to cost 20 protocol runs.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))


@dataclass
class Curve:
    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    hmean: list[float]
    detections: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
            "detections": self.detections,
        }


def has_scores(predictions: Mapping[str, Sequence[Prediction]]) -> bool:
    """Whether every detection carries a confidence (a curve needs them)."""
    return all(p.score is not None for preds in predictions.values() for p in preds)


def threshold_curve(
    samples: Sequence[Sample],
    predictions: Mapping[str, Sequence[Prediction]],
    protocol: str,
    params: Mapping[str, Any],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    progress: bool = False,
) -> Curve:
    """P / R / H of the protocol at each score threshold (see the module doc)."""
    from tqdm.auto import tqdm

    from tcmbench.eval import evaluate
    from tcmbench.eval.api import get_protocol_spec

    spec = get_protocol_spec(protocol)
    defaults = getattr(spec, "params", {}) or {}
    # Result.params also reports derived settings (e.g. ``coords``) that the
    # protocol does not take as input: pass back only what it accepts.
    run_params = {
        k: v for k, v in params.items() if k != "sweep" and (not defaults or k in defaults)
    }
    if "details" in defaults:
        run_params["details"] = False  # counts only: faster, less memory
    scores = {
        sid: np.array([p.score for p in preds], dtype=np.float64)
        for sid, preds in predictions.items()
    }
    curve = Curve([], [], [], [], [])
    for t in tqdm(
        list(thresholds), desc="threshold curve", unit="thr", disable=not progress, leave=False
    ):
        kept: dict[str, list[Prediction]] = {}
        n = 0
        for sid, preds in predictions.items():
            mask = kept_mask(scores[sid], float(t)) if len(preds) else np.zeros(0, bool)
            kept[sid] = [p for p, k in zip(preds, mask.tolist()) if k]
            n += len(kept[sid])
        r = evaluate(samples, kept, protocol, **run_params)
        curve.thresholds.append(float(t))
        curve.precision.append(float(r.precision))
        curve.recall.append(float(r.recall))
        curve.hmean.append(float(r.hmean))
        curve.detections.append(n)
    return curve
