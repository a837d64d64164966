"""Thumbnails with every ground truth and detection drawn by its outcome.

Drawing happens at thumbnail resolution (the image is shrunk first and the
polygons scaled), so a line is the same few pixels wide on a 4000-pixel
photo and on a 640-pixel one. Errors are drawn last, over a light tint of
their colour, so a miss or a false positive stays visible under a crowd of
correct boxes; a miss is drawn wider than the false positive that often
sits on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.report.outcomes import DC, FN, FP, TP

# RGB. Saturated colours that stay apart on photographs (foliage, sky,
# signs) and from each other: green / blue for what went right, red and
# magenta for the two kinds of error, greys for what does not count.
COLOURS: dict[str, tuple[int, int, int]] = {
    "gt_tp": (0, 200, 80),  # care GT that was found
    "gt_fn": (255, 0, 255),  # care GT nobody found (miss): magenta, apart from red on photos
    "gt_dc": (150, 150, 150),  # don't-care GT
    "det_tp": (0, 114, 230),  # detection that found a GT
    "det_fp": (230, 20, 20),  # detection that found nothing
    "det_dc": (200, 200, 200),  # detection absorbed by a don't-care GT
}
LEGEND: dict[str, str] = {
    "gt_tp": "ground truth, found",
    "gt_fn": "ground truth, missed (FN)",
    "gt_dc": "ground truth, don't care",
    "det_tp": "detection, true positive",
    "det_fp": "detection, false positive (FP)",
    "det_dc": "detection on a don't-care region (not counted)",
}
_GT_KEY = {TP: "gt_tp", FN: "gt_fn", DC: "gt_dc"}
_DET_KEY = {TP: "det_tp", FP: "det_fp", DC: "det_dc"}
# Drawing order: context first, errors on top. A detector that fails on a
# word often puts a box of its own on it (a split, a shifted box): the miss
# is drawn wide and the false positive thin over it, so both stay visible.
_ORDER = ("gt_dc", "det_dc", "gt_tp", "det_tp", "gt_fn", "det_fp")
_ERRORS = ("gt_fn", "det_fp")
_WIDER = {"gt_fn": 2, "det_fp": 0}
FILL_ALPHA = 0.25


def thumbnail_scale(width: int, height: int, max_side: int) -> float:
    """The factor that fits (width, height) in ``max_side`` (never enlarges)."""
    return min(1.0, max_side / max(1, width, height))


def draw_outcomes(
    image: np.ndarray,
    instances: Sequence[Instance],
    gt_labels: Sequence[str],
    predictions: Sequence[Prediction],
    det_labels: Sequence[str],
    *,
    max_side: int = 720,
    thickness: int = 3,
) -> np.ndarray:
    """An RGB thumbnail of ``image`` (at most ``max_side`` pixels) with each
    polygon drawn in the colour of its outcome (:data:`COLOURS`)."""
    h, w = image.shape[:2]
    s = thumbnail_scale(w, h, max_side)
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        out = image.copy()
    out = np.ascontiguousarray(out)
    layers: dict[str, list[np.ndarray]] = {k: [] for k in _ORDER}
    for inst, label in zip(instances, gt_labels):
        layers[_GT_KEY[label]].append(_scaled(inst.polygon, s))
    for pred, label in zip(predictions, det_labels):
        layers[_DET_KEY[label]].append(_scaled(pred.polygon, s))
    for key in _ORDER:
        if not layers[key]:
            continue
        t = thickness
        if key in _ERRORS:
            t = thickness + _WIDER[key]
            tint = out.copy()
            for poly in layers[key]:  # one at a time: a list leaves overlaps as holes
                cv2.fillPoly(tint, [poly], COLOURS[key])
            out = cv2.addWeighted(tint, FILL_ALPHA, out, 1.0 - FILL_ALPHA, 0.0)
        elif key in ("gt_dc", "det_dc"):
            t = max(1, thickness - 1)
        cv2.polylines(out, layers[key], True, COLOURS[key], t, cv2.LINE_8)
    return out


def _scaled(polygon: np.ndarray, s: float) -> np.ndarray:
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * s
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """RGB -> JPEG bytes (thumbnails: photographs compress ten times better
    than as PNG, and the drawn lines stay sharp at this quality)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError("could not encode a thumbnail as JPEG")
    return buf.tobytes()
