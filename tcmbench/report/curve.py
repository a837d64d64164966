"""Precision and recall as the score threshold rises, by the protocol itself.

Each point re-scores the whole split with the protocol, after dropping the
detections whose score is below the threshold (compared as the mmocr sweep
compares: float32 scores against the threshold). The protocol's own
matching runs at every point, so a curve point is exactly the figure the
protocol would give for that filtered submission. None of these points is
the official figure, which scores every submitted detection; the report
says so next to the plots.

A model never produces a detection scoring below its own box threshold
(DBNet's and PAN's ``postprocess.min_score``, FCENet's ``score_thr``: 0.6
for PP-OCRv3), so every point below that threshold is the official figure
again -- 13 of 20 flat points for PP-OCRv3. When the run's settings name
that threshold (:func:`model_box_threshold`) the sweep starts there
(:func:`sweep_thresholds`) and the report says why. The threshold is only
taken at its word when every detection scores at least that much;
otherwise it is not a box threshold of this model and the sweep starts at
0 as before.
"""

from __future__ import annotations

import logging
import math
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
#: Steps tried, coarsest first, until a sweep from a model's threshold has
#: MIN_POINTS points (0.6 -> 0.025 steps, 16 points; 0.85 -> 0.01, 15).
STEPS: tuple[float, ...] = (0.05, 0.025, 0.02, 0.01, 0.005)
MIN_POINTS = 10
#: Postprocess keys that are a floor on every detection's score (DBNet,
#: PAN, the plugin example: ``min_score``; FCENet: ``score_thr``;
#: PaddleOCR's own name: ``box_thresh``), first found wins.
BOX_THRESHOLD_KEYS: tuple[str, ...] = ("min_score", "score_thr", "box_thresh")


@dataclass
class Curve:
    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    hmean: list[float]
    detections: list[int]
    #: (recipe key, value) of the model's box threshold the sweep starts
    #: at; None when it starts at 0.
    model_threshold: tuple[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
            "detections": self.detections,
            "model_threshold": None
            if self.model_threshold is None
            else {"key": self.model_threshold[0], "value": self.model_threshold[1]},
        }


def model_box_threshold(recipe: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """(``postprocess.KEY``, value) of the score floor the run's
    postprocessing applied (:data:`BOX_THRESHOLD_KEYS`), or None when the
    settings name none (or a value that is not a number in (0, 1))."""
    post = (recipe or {}).get("postprocess") or {}
    if not isinstance(post, Mapping):
        return None
    for key in BOX_THRESHOLD_KEYS:
        value = post.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1:
            return f"postprocess.{key}", float(value)
    return None


def sweep_thresholds(start: float | None = None) -> list[float]:
    """The thresholds of a sweep from ``start`` (a model's box threshold):
    ``start``, then the multiples of the coarsest step of :data:`STEPS`
    that gives :data:`MIN_POINTS` points below 1. None or 0: the default
    0, 0.05, ..., 0.95."""
    if not start:
        return list(DEFAULT_THRESHOLDS)
    grid: list[float] = []
    for step in STEPS:
        k = math.floor(start / step + 1e-9) + 1
        grid = [round(i * step, 4) for i in range(k, math.ceil(1 / step - 1e-9))]
        grid = [t for t in grid if start < t < 1]
        if len(grid) + 1 >= MIN_POINTS:
            break
    return [float(start), *grid]


def has_scores(predictions: Mapping[str, Sequence[Prediction]]) -> bool:
    """Whether every detection carries a confidence (a curve needs them)."""
    return all(p.score is not None for preds in predictions.values() for p in preds)


def threshold_curve(
    samples: Sequence[Sample],
    predictions: Mapping[str, Sequence[Prediction]],
    protocol: str,
    params: Mapping[str, Any],
    thresholds: Sequence[float] | None = None,
    progress: bool = False,
    *,
    model_threshold: tuple[str, float] | None = None,
) -> Curve:
    """P / R / H of the protocol at each score threshold (see the module
    doc). ``thresholds`` default: :func:`sweep_thresholds` from
    ``model_threshold`` (``(key, value)``, :func:`model_box_threshold`)
    when every detection scores at least its value, else from 0."""
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
    if model_threshold is not None:
        lowest = min((float(a.min()) for a in scores.values() if a.size), default=None)
        if lowest is not None and lowest < model_threshold[1]:
            log.warning(
                "%s is %g but a detection scores %g: it is not a floor on the scores, "
                "the threshold curve starts at 0",
                *model_threshold,
                lowest,
            )
            model_threshold = None
    if thresholds is None:
        thresholds = sweep_thresholds(None if model_threshold is None else model_threshold[1])
    curve = Curve([], [], [], [], [], model_threshold)
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
