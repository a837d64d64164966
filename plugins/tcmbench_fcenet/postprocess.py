"""From FCENet's per-level maps to polygons in original-image coordinates.

Per image and level (stride s):

1. drop the padding (the map is cropped to the resized image);
2. score = P(text)^alpha x P(centre)^beta per pixel; candidates are the
   pixels above ``score_thr`` (at most ``max_candidates`` per image, best
   first, over all levels);
3. each candidate's coefficients, with c_0 moved back from pixel-relative
   to absolute and everything multiplied by s, are turned into a contour of
   ``num_reconstr_points`` points by the inverse Fourier transform -- one
   matrix product for all candidates (vectorised);
4. polygon NMS over the candidates of all levels
   (:func:`tcmbench.models.nms.polygon_nms`, IoU > ``nms_thr`` suppressed);
5. ``output: poly``: the contour, clockwise; ``quad``: its minimum-area
   rectangle, ordered TL, TR, BR, BL (ICDAR 2015 needs 4 clockwise points);
6. divide by ``scale`` (sx, sy) = input size / original size and clip to
   the image.

Defaults follow mmocr's FCENet (alpha 1, beta 2, score 0.3, NMS 0.1, 50
points); recipes set theirs per dataset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from tcmbench.contract.options import Opt, check_options
from tcmbench.data.schema import Prediction
from tcmbench.errors import PluginError
from tcmbench.models.nms import polygon_nms
from tcmbench_fcenet.fourier import reals_to_polygons, signed_area

OUTPUTS = ("quad", "poly")
#: The parameters a recipe's ``postprocess`` may set, with their types and
#: ranges (a checkpoint's config.json is untrusted input).
POSTPROCESS_PARAMS: dict[str, Opt] = {
    "output": Opt("poly", "str", choices=OUTPUTS, help="quad (min-area rectangle) or poly"),
    "score_thr": Opt(0.3, "float", ge=0, le=1, help="minimum text^alpha x centre^beta"),
    "nms_thr": Opt(0.1, "float", ge=0, le=1, help="polygon NMS IoU threshold"),
    "alpha": Opt(1.0, "float", ge=0, le=100, help="exponent of the text score"),
    "beta": Opt(2.0, "float", ge=0, le=100, help="exponent of the centre score"),
    "num_reconstr_points": Opt(50, "int", ge=4, le=10_000, help="contour points"),
    "max_candidates": Opt(3000, "int", ge=1, le=1_000_000, help="candidates kept before NMS"),
    "min_area": Opt(4.0, "float", ge=0, help="smaller contours (input pixels^2) dropped"),
}


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a rectangle as TL, TR, BR, BL (clockwise on screen)."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = pts[:2], pts[2:]
    tl, bl = (left[0], left[1]) if left[0, 1] <= left[1, 1] else (left[1], left[0])
    tr, br = (right[0], right[1]) if right[0, 1] <= right[1, 1] else (right[1], right[0])
    return np.stack([tl, tr, br, bl])


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


@dataclass
class FCEPostprocessor:
    """``(outputs, metas) -> list[list[Prediction]]``; see the module doc.

    ``strides``: one per level of the head's output lists. Metas:
    ``orig_size`` (h, w) and ``scale`` (sx, sy); missing ones mean the map
    is already in original coordinates.
    """

    output: str = "poly"
    score_thr: float = 0.3
    nms_thr: float = 0.1
    alpha: float = 1.0
    beta: float = 2.0
    num_reconstr_points: int = 50
    max_candidates: int = 3000
    min_area: float = 4.0
    fourier_degree: int = 5
    strides: tuple[int, ...] = (8, 16, 32)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if not 0.0 <= float(self.nms_thr) <= 1.0:
            raise ValueError(f"nms_thr must be in [0, 1], got {self.nms_thr}")
        if int(self.num_reconstr_points) < 4:
            raise ValueError(f"num_reconstr_points must be >= 4, got {self.num_reconstr_points}")
        if int(self.max_candidates) < 1:
            raise ValueError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        self.strides = tuple(int(s) for s in self.strides)

    def with_params(self, **params: Any) -> FCEPostprocessor:
        """A copy with some parameters changed (e.g. a recipe's
        ``postprocess``); an unknown or bad one is a PluginError naming it.
        ``fourier_degree`` and ``strides`` belong to the architecture
        (``model.options``) and cannot be changed here."""
        checked = check_options("FCENet", POSTPROCESS_PARAMS, params, what="postprocess parameter")
        try:
            return dataclasses.replace(self, **checked)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"bad FCENet postprocess parameters {params}: {exc}") from exc

    def __call__(
        self, outputs: Mapping[str, Any], metas: Sequence[Mapping[str, Any]]
    ) -> list[list[Prediction]]:
        text = [_numpy(t)[:, 0] for t in outputs["text_prob"]]
        center = [_numpy(c)[:, 0] for c in outputs["center_prob"]]
        reg = [_numpy(r) for r in outputs["reg"]]
        if not (len(text) == len(center) == len(reg) == len(self.strides)):
            raise ValueError(
                f"{len(self.strides)} strides but {len(text)} / {len(center)} / {len(reg)} levels"
            )
        if any(t.shape[0] != len(metas) for t in text):
            raise ValueError(f"{text[0].shape[0]} maps but {len(metas)} metas")
        return [
            self.process_image(
                [t[i] for t in text], [c[i] for c in center], [r[i] for r in reg], meta
            )
            for i, meta in enumerate(metas)
        ]

    def candidates(
        self,
        text: Sequence[np.ndarray],
        center: Sequence[np.ndarray],
        reg: Sequence[np.ndarray],
        valid_hw: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Contours (C, M, 2) in input pixels and their scores, best first."""
        k = int(self.fourier_degree)
        n = 2 * k + 1
        all_reals, all_scores = [], []
        for t, c, r, stride in zip(text, center, reg, self.strides):
            h = min(t.shape[0], -(-valid_hw[0] // stride))
            w = min(t.shape[1], -(-valid_hw[1] // stride))
            score = np.power(t[:h, :w], self.alpha) * np.power(c[:h, :w], self.beta)
            ys, xs = np.nonzero(score > self.score_thr)
            if ys.size == 0:
                continue
            reals = r[:, ys, xs].T.astype(np.float64)  # (P, 4K + 2)
            if reals.shape[1] != 2 * n:
                raise ValueError(f"regression has {reals.shape[1]} channels, expected {2 * n}")
            reals[:, k] += xs
            reals[:, n + k] += ys
            all_reals.append(reals * stride)
            all_scores.append(score[ys, xs].astype(np.float64))
        if not all_reals:
            return np.zeros((0, self.num_reconstr_points, 2)), np.zeros(0)
        reals = np.concatenate(all_reals)
        scores = np.concatenate(all_scores)
        order = np.argsort(-scores, kind="stable")[: int(self.max_candidates)]
        contours = reals_to_polygons(reals[order], k, int(self.num_reconstr_points))
        return contours, scores[order]

    def process_image(
        self,
        text: Sequence[np.ndarray],
        center: Sequence[np.ndarray],
        reg: Sequence[np.ndarray],
        meta: Mapping[str, Any],
    ) -> list[Prediction]:
        """Predictions of one image from its per-level maps."""
        sx, sy = (float(v) for v in meta.get("scale", (1.0, 1.0)))
        in_h = text[0].shape[0] * self.strides[0]
        in_w = text[0].shape[1] * self.strides[0]
        orig_h, orig_w = meta.get("orig_size", (in_h / sy, in_w / sx))
        valid_hw = (max(1, round(orig_h * sy)), max(1, round(orig_w * sx)))
        contours, scores = self.candidates(text, center, reg, valid_hw)
        if len(contours) == 0:
            return []
        keep = polygon_nms(contours, scores, self.nms_thr)
        scale = np.array([sx, sy])
        limit = np.array([orig_w - 1, orig_h - 1], dtype=np.float64)
        preds: list[Prediction] = []
        for i in keep:
            poly = contours[i]
            if abs(signed_area(poly)) < self.min_area:
                continue
            if self.output == "quad":
                box = cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32).reshape(-1, 1, 2)))
                poly = order_quad(box)
            elif signed_area(poly) < 0:
                poly = poly[::-1]
            points = np.clip(poly / scale, 0.0, limit)
            preds.append(Prediction(polygon=points, score=float(scores[i])))
        return preds
