"""A small, fully known evaluation for the report tests.

Six 320 x 240 images with dark 'words'. Image k has two care GTs and one
don't-care GT; its detections are one true positive (score 0.9), one
detection on the don't-care region (0.5), k false positives (0.4) and,
on odd k, the second care GT is left undetected. So image k has
k + (k % 2) errors: 0, 2, 2, 4, 4, 6 -- every protocol must say so.

The two care GTs are 30 and 50 px high (two size bins); every GT is a
horizontal quadrilateral, so the orientation and curvature breakdowns
have one bin each and carry no information.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tcmbench.data.schema import Instance, Prediction, Sample
from tcmbench.eval import evaluate

WIDTH, HEIGHT = 320, 240
N_IMAGES = 6


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Clockwise (on screen) axis-aligned quad."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def scene(root: Path) -> tuple[list[Sample], dict[str, list[Prediction]]]:
    root.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    preds: dict[str, list[Prediction]] = {}
    for k in range(N_IMAGES):
        img = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
        care_a = box(20, 20, 140, 50)
        care_b = box(20, 70, 160, 120)
        dont_care = box(200, 20, 300, 60)
        for q in (care_a, care_b, dont_care):
            x0, y0 = q.min(axis=0).astype(int)
            x1, y1 = q.max(axis=0).astype(int)
            img[y0:y1, x0:x1] = 40
        path = root / f"img_{k + 1}.png"
        cv2.imwrite(str(path), img)
        sid = f"img_{k + 1}"
        samples.append(
            Sample(
                sid,
                str(path),
                WIDTH,
                HEIGHT,
                [
                    Instance(care_a.astype(np.float32)),
                    Instance(care_b.astype(np.float32)),
                    Instance(dont_care.astype(np.float32), ignore=True),
                ],
            )
        )
        dets = [Prediction(care_a + 1.0, 0.9), Prediction(box(205, 25, 295, 55), 0.5)]
        if k % 2 == 0:
            dets.append(Prediction(care_b - 1.0, 0.85))
        for j in range(k):
            dets.append(Prediction(box(20 + 45 * j, 150, 55 + 45 * j, 180), 0.4))
        preds[sid] = dets
    return samples, preds


def expected_errors(k: int) -> int:
    return k + (k % 2)


def write_scene_report(
    root: Path,
    protocol: str = "icdar2015",
    sweep: bool = True,
    *,
    worst: int | None = None,
    model_threshold: tuple[str, float] | None = None,
    rename: dict[str, str] | None = None,
    **params: Any,
) -> Path:
    """Score the scene with ``protocol`` and write its report (``worst``
    and ``model_threshold``: the report's options; ``rename``: sample ids
    to give other names, e.g. hostile ones); returns index.html."""
    from dataclasses import replace

    from tcmbench.report import write_evaluation_report

    samples, preds = scene(root / "images")
    for old, new in (rename or {}).items():
        samples = [replace(s, id=new) if s.id == old else s for s in samples]
        preds[new] = preds.pop(old)
    if sweep:
        params["sweep"] = True
    result = evaluate(samples, preds, protocol, **params)
    return write_evaluation_report(
        root / "report",
        samples,
        preds,
        result,
        {"dataset": "report-scene", "split": "test", "images": len(samples)},
        progress=False,
        model_threshold=model_threshold,
        **({} if worst is None else {"worst": worst}),
    )
