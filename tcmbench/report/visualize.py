"""Drawing polygons on images (``evaluate --visualize``, ``predict``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from tcmbench.data.schema import Instance, Prediction

GT_COLOUR = (0, 200, 0)  # RGB
IGNORED_COLOUR = (160, 160, 160)
PRED_COLOUR = (230, 30, 30)


def draw(
    image: np.ndarray,
    predictions: Sequence[Prediction] = (),
    ground_truth: Sequence[Instance] = (),
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of the RGB ``image`` with ground truth (green; don't-care
    grey) and predictions (red, with their scores) drawn on it."""
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
        if p.score is not None:
            x, y = pts.reshape(-1, 2).min(axis=0)
            cv2.putText(
                out,
                f"{p.score:.2f}",
                (int(x), max(10, int(y) - 3)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * t,
                PRED_COLOUR,
                max(1, t // 2),
                cv2.LINE_AA,
            )
    return out


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG (atomically)."""
    from tcmbench.safety.paths import atomic_write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
    return Path(path)
