"""Drawing polygons on images (``evaluate --visualize``, ``predict``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from tcmbench.data.schema import Instance, Prediction
from tcmbench.report.label_placement import Placement, place_labels

GT_COLOUR = (0, 200, 0)  # RGB
IGNORED_COLOUR = (160, 160, 160)
PRED_COLOUR = (230, 30, 30)
LABEL_TEXT_COLOUR = (255, 255, 255)  # on a box of PRED_COLOUR: legible on any photo
LABEL_SCALE = 0.4  # cv2 font scale per pixel of line width


def draw(
    image: np.ndarray,
    predictions: Sequence[Prediction] = (),
    ground_truth: Sequence[Instance] = (),
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of the RGB ``image`` with ground truth (green; don't-care
    grey) and predictions (red, with their scores on labels that cover no
    polygon and stay inside the image) drawn on it."""
    out = np.ascontiguousarray(image.copy())
    t = thickness or max(1, round(max(out.shape[:2]) / 500))
    for inst in ground_truth:
        pts = np.round(inst.polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(
            out, [pts], True, IGNORED_COLOUR if inst.ignore else GT_COLOUR, t, cv2.LINE_AA
        )
    for p in predictions:
        pts = np.round(p.polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, PRED_COLOUR, t, cv2.LINE_AA)
    if any(p.score is not None for p in predictions):
        _draw_score_labels(out, predictions, [i.polygon for i in ground_truth], t)
    return out


def _label_style(t: int) -> tuple[float, int, int]:
    """(font scale, stroke weight, padding) of a label on lines ``t`` wide."""
    return LABEL_SCALE * t, max(1, t // 2), max(1, t)


def score_labels(
    shape: tuple[int, int],
    predictions: Sequence[Prediction],
    others: Sequence[np.ndarray],
    t: int,
) -> list[tuple[str, Placement]]:
    """Each scored prediction's label text and where it goes on an image of
    ``shape`` drawn with line width ``t`` (see :func:`place_labels`): no
    label covers a drawn polygon (its own, another detection or the
    ``others``, e.g. ground truth), another label, or leaves the image."""
    scored = [p for p in predictions if p.score is not None]
    scale, weight, pad = _label_style(t)
    texts = [f"{p.score:.2f}" for p in scored]
    sizes = []
    for text in texts:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
        sizes.append((tw + 2 * pad, th + 2 * pad))
    placements = place_labels(
        shape,
        [p.polygon for p in scored],
        sizes,
        obstacles=others,
        gap=t + 1,
        outline=t + 2,  # the anti-aliased line spreads a pixel either side
    )
    return list(zip(texts, placements))


def _draw_score_labels(
    out: np.ndarray, predictions: Sequence[Prediction], others: Sequence[np.ndarray], t: int
) -> None:
    """The scores, white on a box of the prediction colour, where
    :func:`score_labels` puts them; a label that had to go away from its
    polygon gets a thin leader line to it."""
    scale, weight, pad = _label_style(t)
    labels = score_labels(out.shape[:2], predictions, others, t)
    for _, at in labels:  # leader lines first: a label may sit on another's line
        if at.anchor is not None:
            near = (
                min(max(at.anchor[0], at.x0), at.x1 - 1),
                min(max(at.anchor[1], at.y0), at.y1 - 1),
            )
            cv2.line(out, near, at.anchor, PRED_COLOUR, max(1, (t + 1) // 2), cv2.LINE_AA)
    for text, at in labels:
        cv2.rectangle(out, (at.x0, at.y0), (at.x1 - 1, at.y1 - 1), PRED_COLOUR, cv2.FILLED)
        cv2.putText(
            out,
            text,
            (at.x0 + pad, at.y1 - 1 - pad),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            LABEL_TEXT_COLOUR,
            weight,
            cv2.LINE_AA,
        )


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG (atomically)."""
    from tcmbench.safety.paths import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
    return Path(path)
