"""From DB probability maps to polygons in original-image coordinates.

Shared by every DB-family detector: the dbnet plugin's checkpoints (under
PyTorch or onnxruntime) and the foreign DB-family ONNX models the onnx
plugin runs (PP-OCR), so it lives in the core's inference layer. It needs
numpy, OpenCV and pyclipper only: never torch (``--runtime onnxruntime``
builds it without importing torch).

Per image: crop the map to the resized image (drop the padding), threshold
it at ``mask_thr``, take external contours, and for each contour
(largest first, at most ``max_candidates``):

1. simplify it with ``approxPolyDP`` (``epsilon_ratio`` x perimeter);
   skip it when fewer than ``min_points`` points are left;
2. skip it when its minimum-area rectangle is thinner than ``min_size``;
3. score = mean probability inside it; skip when below ``min_score``;
4. unclip: offset outwards by D' = A * unclip_ratio / L with pyclipper,
   undoing the shrink the targets applied;
5. quad output: the minimum-area rectangle of the unclipped polygon,
   ordered TL, TR, BR, BL (clockwise on screen); polygon output: the
   unclipped polygon, clockwise; skip when thinner than
   ``min_size_unclipped`` (None: ``min_size + 2``, as the DBNet code);
6. divide by ``scale`` (sx, sy) = input size / original size.

Every step is vectorised per contour (OpenCV / numpy); nothing loops over
pixels in Python.

Two options reproduce other DB implementations' inference (PaddleOCR's
``DBPostProcess``, the DBNet reference code), so a DB detector trained
elsewhere (run by the ``onnx`` plugin) is post-processed the way its
authors measured it:

- ``dilation``: dilate the thresholded map with a 2 x 2 kernel before
  taking contours (PaddleOCR's ``use_dilation``);
- ``all_contours``: take every contour, the inner outlines of holes in a
  text region included (OpenCV's ``RETR_LIST``, as PaddleOCR and the DBNet
  reference code do), not only the outer ones; a hole's rectangle can then
  come out as a second, smaller box on the same text;
- ``score_mode``: ``"polygon"`` (default: steps 1-5 above), or, for quad
  output, ``"fast"`` / ``"slow"``: the candidate is the contour's
  minimum-area rectangle (thinner than ``min_size``: skipped), scored by the
  mean probability inside that rectangle (fast, its corners truncated to
  the pixel grid as those implementations do) or inside the contour itself
  (slow), and the rectangle is what gets unclipped.

Two size parameters reproduce the other implementations' filters:
``min_points`` (mmocr, the official TCM configs and the DBNet code drop
simplified contours of fewer than 4 points; tcmbench keeps triangles by
default) and ``min_size_unclipped`` (mmocr's ``min_text_width``: a test on
the unclipped box only, with ``min_size`` 0 switching the test before
unclipping off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import pyclipper

from tcmbench.contract.options import Opt, check_options
from tcmbench.data.schema import Prediction
from tcmbench.errors import PluginError

# pyclipper works on integers: coordinates are scaled by this factor so the
# offset polygons keep sub-pixel precision.
CLIPPER_SCALE = 16.0


def polygon_area_perimeter(poly: np.ndarray) -> tuple[float, float]:
    """Unsigned shoelace area and perimeter of a closed (N, 2) polygon."""
    pts = np.ascontiguousarray(poly, dtype=np.float32).reshape(-1, 1, 2)
    return float(cv2.contourArea(pts)), float(cv2.arcLength(pts, True))


def offset_polygon(poly: np.ndarray, distance: float) -> np.ndarray | None:
    """``poly`` offset outwards by ``distance`` pixels (inwards when
    negative) with round joins; the largest resulting piece, or None when
    the offset polygon vanishes."""
    pco = pyclipper.PyclipperOffset(arc_tolerance=0.25 * CLIPPER_SCALE)
    path = np.round(np.asarray(poly, dtype=np.float64) * CLIPPER_SCALE).astype(np.int64)
    pco.AddPath(path.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = pco.Execute(distance * CLIPPER_SCALE)
    pieces = [np.asarray(p, dtype=np.float64) / CLIPPER_SCALE for p in pieces if len(p) >= 3]
    if len(pieces) <= 1:
        return pieces[0] if pieces else None
    return max(pieces, key=lambda p: polygon_area_perimeter(p)[0])


OUTPUTS = ("quad", "poly")
SCORE_MODES = ("polygon", "fast", "slow")
# PaddleOCR's use_dilation kernel.
_DILATION_KERNEL = np.ones((2, 2), dtype=np.uint8)


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a rectangle as TL, TR, BR, BL (clockwise on screen,
    y pointing down): the two leftmost points are one side of the
    rectangle, the upper of them is TL; likewise TR among the rightmost."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = pts[:2], pts[2:]
    tl, bl = (left[0], left[1]) if left[0, 1] <= left[1, 1] else (left[1], left[0])
    tr, br = (right[0], right[1]) if right[0, 1] <= right[1, 1] else (right[1], right[0])
    return np.stack([tl, tr, br, bl])


def clockwise(poly: np.ndarray) -> np.ndarray:
    """``poly`` with vertices in clockwise order on screen (positive shoelace
    area with y pointing down)."""
    x, y = poly[:, 0], poly[:, 1]
    signed = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return poly if signed >= 0 else poly[::-1].copy()


def mean_score(prob: np.ndarray, poly: np.ndarray, *, truncate: bool = False) -> float:
    """Mean of ``prob`` over the pixels of ``poly``, rasterised only in the
    polygon's bounding box. Vertices are rounded to the pixel grid, or with
    ``truncate`` cut towards zero as the DBNet reference code and PaddleOCR
    do in their fast score (which shifts the mask up to a pixel up-left:
    reproduced so their detectors keep the scores they were tuned with)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(poly[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(poly[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(poly[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(poly[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    local = poly - [x0, y0]
    shifted = (local if truncate else np.round(local)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _short_side(poly: np.ndarray) -> float:
    (_, _), (w, h), _ = cv2.minAreaRect(poly.astype(np.float32).reshape(-1, 1, 2))
    return float(min(w, h))


@dataclass
class DBPostprocessor:
    """``(outputs, metas) -> list[list[Prediction]]``; see the module doc.

    Metas: ``orig_size`` (h, w) of the original image and ``scale``
    (sx, sy) = input size / original size; missing ones mean the map is
    already in original coordinates.
    """

    #: What an ONNX export records as this model's postprocessor
    #: (``postprocessor: db`` in the config: the onnx plugin runs it).
    family: ClassVar[str] = "db"

    output: str = "quad"
    mask_thr: float = 0.3
    min_score: float = 0.3
    unclip_ratio: float = 1.5
    min_size: float = 3.0
    max_candidates: int = 1000
    epsilon_ratio: float = 0.002
    dilation: bool = False
    score_mode: str = "polygon"
    all_contours: bool = False
    min_points: int = 3
    min_size_unclipped: float | None = None

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if self.score_mode != "polygon" and self.output != "quad":
            raise ValueError(
                f"score_mode {self.score_mode!r} scores minimum-area rectangles: it needs "
                f"output 'quad', got {self.output!r}"
            )
        if int(self.min_points) < 3:
            raise ValueError(f"min_points must be >= 3 (a polygon), got {self.min_points}")
        if self.min_size_unclipped is not None and float(self.min_size_unclipped) < 0:
            raise ValueError(f"min_size_unclipped must be >= 0, got {self.min_size_unclipped}")

    @property
    def unclipped_size(self) -> float:
        """The short side an unclipped candidate needs (input pixels)."""
        if self.min_size_unclipped is None:
            return float(self.min_size) + 2.0
        return float(self.min_size_unclipped)

    def with_params(self, **params: Any) -> DBPostprocessor:
        """A copy with some parameters changed (e.g. a recipe's, perhaps a
        forged checkpoint's): an unknown or bad one is a PluginError naming
        it (:data:`POSTPROCESS_PARAMS`), never a TypeError."""
        checked = check_options("DBNet", POSTPROCESS_PARAMS, params, what="postprocess parameter")
        try:
            return dataclasses.replace(self, **checked)
        except ValueError as exc:  # combinations __post_init__ refuses
            raise PluginError(f"bad DBNet postprocess parameters: {exc}") from None

    def __call__(
        self, outputs: Mapping[str, Any], metas: Sequence[Mapping[str, Any]]
    ) -> list[list[Prediction]]:
        prob = outputs["prob"]
        if hasattr(prob, "detach"):
            prob = prob.detach().float().cpu().numpy()
        prob = np.asarray(prob, dtype=np.float32)
        if prob.ndim == 4:
            prob = prob[:, 0]
        if len(metas) != prob.shape[0]:
            raise ValueError(f"{prob.shape[0]} maps but {len(metas)} metas")
        return [self.process_map(p, meta) for p, meta in zip(prob, metas)]

    def process_map(self, prob: np.ndarray, meta: Mapping[str, Any]) -> list[Prediction]:
        """Predictions of one (H, W) probability map."""
        sx, sy = (float(v) for v in meta.get("scale", (1.0, 1.0)))
        orig_h, orig_w = meta.get("orig_size", (prob.shape[0] / sy, prob.shape[1] / sx))
        valid_h = min(prob.shape[0], max(1, round(orig_h * sy)))
        valid_w = min(prob.shape[1], max(1, round(orig_w * sx)))
        prob = np.ascontiguousarray(prob[:valid_h, :valid_w])
        bitmap: np.ndarray = (prob > self.mask_thr).astype(np.uint8)
        if self.dilation:
            bitmap = cv2.dilate(bitmap, _DILATION_KERNEL)
        retrieval = cv2.RETR_LIST if self.all_contours else cv2.RETR_EXTERNAL
        contours, _ = cv2.findContours(bitmap, retrieval, cv2.CHAIN_APPROX_SIMPLE)
        if len(contours) > self.max_candidates:
            areas = np.array([cv2.contourArea(c) for c in contours])
            keep = np.argsort(-areas, kind="stable")[: self.max_candidates]
            contours = [contours[i] for i in keep]
        scale = np.array([sx, sy])
        limit = np.array([orig_w - 1, orig_h - 1], dtype=np.float64)
        preds: list[Prediction] = []
        for contour in contours:
            poly = self._candidate(prob, contour)
            if poly is None:
                continue
            points, score = poly
            points = np.clip(points / scale, 0.0, limit)
            preds.append(Prediction(polygon=points, score=score))
        return preds

    def _candidate(self, prob: np.ndarray, contour: np.ndarray) -> tuple[np.ndarray, float] | None:
        if self.score_mode != "polygon":
            return self._rect_candidate(prob, contour)
        # Simplify the pixel staircase a little (epsilon_ratio of the
        # perimeter) before scoring and unclipping, in both output modes.
        # Unclipping the contour's minimum-area rectangle instead (DBNet's
        # reference code) makes rotated text ~1.5 px too thick: the
        # staircase corners stick out of the true edges.
        eps = self.epsilon_ratio * cv2.arcLength(contour, True)
        points = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2).astype(np.float64)
        if len(points) < int(self.min_points) or _short_side(points) < self.min_size:
            return None
        score = mean_score(prob, points)
        if score < self.min_score:
            return None
        area, perimeter = polygon_area_perimeter(points)
        if perimeter <= 0 or area <= 0:
            return None
        unclipped = offset_polygon(points, area * self.unclip_ratio / perimeter)
        if unclipped is None or _short_side(unclipped) < self.unclipped_size:
            return None
        if self.output == "quad":
            box = cv2.boxPoints(cv2.minAreaRect(unclipped.astype(np.float32).reshape(-1, 1, 2)))
            return order_quad(box), score
        return clockwise(unclipped), score

    def _rect_candidate(
        self, prob: np.ndarray, contour: np.ndarray
    ) -> tuple[np.ndarray, float] | None:
        """``score_mode`` fast / slow: the contour's minimum-area rectangle
        is the candidate (see the module doc)."""
        rect = cv2.minAreaRect(contour.reshape(-1, 1, 2).astype(np.float32))
        if min(rect[1]) < self.min_size:
            return None
        box = cv2.boxPoints(rect).astype(np.float64)
        if self.score_mode == "fast":
            score = mean_score(prob, box, truncate=True)
        else:
            score = mean_score(prob, contour.reshape(-1, 2).astype(np.float64))
        if score < self.min_score:
            return None
        area, perimeter = polygon_area_perimeter(box)
        if perimeter <= 0 or area <= 0:
            return None
        unclipped = offset_polygon(box, area * self.unclip_ratio / perimeter)
        if unclipped is None:
            return None
        grown = cv2.minAreaRect(unclipped.astype(np.float32).reshape(-1, 1, 2))
        if min(grown[1]) < self.unclipped_size:
            return None
        return order_quad(cv2.boxPoints(grown)), score


#: DBPostprocessor parameters, checked wherever a recipe, a checkpoint or an
#: exported model's config sets them (defaults are the dataclass's own).
POSTPROCESS_PARAMS: dict[str, Opt] = {
    "output": Opt(
        "quad",
        "str",
        choices=OUTPUTS,
        help="quad: min-area rectangle, corners TL, TR, BR, BL (clockwise on screen, as the "
        "ICDAR 2015 script requires); poly: the unclipped polygon, clockwise",
    ),
    "mask_thr": Opt(0.3, "float", ge=0, le=1, help="probability threshold of the text mask"),
    "min_score": Opt(0.3, "float", ge=0, le=1, help="minimum mean probability inside a region"),
    "unclip_ratio": Opt(1.5, "float", ge=0, le=100, help="unclip distance D' = A' x ratio / L'"),
    "min_size": Opt(
        3.0,
        "float",
        ge=0,
        help="minimum short side before unclipping (input pixels); min_size + 2 after",
    ),
    "max_candidates": Opt(
        1000, "int", ge=1, le=1_000_000, help="regions kept per image, largest first"
    ),
    "epsilon_ratio": Opt(
        0.002,
        "float",
        ge=0,
        lt=1,
        help="contour simplification (approxPolyDP, fraction of the perimeter)",
    ),
    "dilation": Opt(
        False,
        "bool",
        help="dilate the thresholded map (2 x 2) before taking contours (PaddleOCR's use_dilation)",
    ),
    "score_mode": Opt(
        "polygon",
        "str",
        choices=SCORE_MODES,
        help="polygon; or, for quad output, fast / slow: the contour's min-area rectangle is the "
        "candidate, scored as PaddleOCR / the DBNet reference code do",
    ),
    "all_contours": Opt(
        False,
        "bool",
        help="also take the outlines of holes in text regions as candidates (OpenCV RETR_LIST, "
        "as PaddleOCR does); default: outer outlines only",
    ),
    "min_points": Opt(
        3,
        "int",
        ge=3,
        le=1000,
        help="polygon score mode: simplified contours with fewer points are dropped (mmocr, the "
        "official TCM configs and the DBNet code: 4)",
    ),
    "min_size_unclipped": Opt(
        None,
        "float",
        ge=0,
        nullable=True,
        help="minimum short side after unclipping (input pixels); null: min_size + 2 (DBNet "
        "code); mmocr's min_text_width, with min_size 0",
    ),
}
