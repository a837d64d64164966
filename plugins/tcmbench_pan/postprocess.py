"""From PAN's maps to polygons in original-image coordinates (PAN paper
section 3.5, "pixel aggregation").

Per image, on the head's 1/4 maps (optionally upsampled by ``upsample``):

1. crop the maps to the resized image (padding dropped);
2. text = sigmoid(text logit) > ``text_thr``; kernel = sigmoid(kernel
   logit) > ``kernel_thr`` inside text;
3. kernels = 4-connected components of the kernel map; components smaller
   than ``min_kernel_area`` are dropped, at most ``max_candidates`` (the
   largest) are kept;
4. pixel aggregation (:func:`tcmbench_pan.aggregate.pixel_aggregate`,
   ``aggregation``: ``nearest``, ``mmcv`` or ``pan_pp``): the kernels grow
   into the text pixels around them breadth first; a text pixel joins a
   kernel when its 4-d embedding lies within ``distance_thr`` of that
   kernel's mean embedding, so two words that share text pixels are split
   where their embeddings change;
5. instances smaller than ``min_area`` pixels or whose mean text score is
   below ``min_score`` are dropped;
6. the instance's pixels become a box (``output`` quad) or a contour
   (``poly``), by ``box_geometry``:

   - ``grown`` (tcmbench): the minimum-area rectangle (or the outer
     contour) of the pixel centres, grown by the margin that makes its area
     equal the pixel count (an unbiased estimate of the word's area when the
     map samples it at pixel centres: about half a pixel for an
     axis-aligned edge, less for a slanted one), then mapped to input pixels
     as (x + 0.5) * stride -- map pixel i stands for input pixel 4 i + 2,
     the one the loss samples its target from with ``target_sampling``
     ``centre``;
   - ``mmocr`` (mmocr 0.x ``points2boundary`` and ``resize_boundary``):
     ``cv2.minAreaRect`` of the integer pixel indices (or the first outer
     contour of the pixel mask), times the stride: map pixel i stands for
     input pixel 4 i, the one mmocr's nearest rescale of the targets
     samples (``target_sampling`` ``corner``);
   - ``pan_pp`` (pan_pp.pytorch ``PA_Head.get_results``): the label map is
     resized to the input with nearest sampling, so map pixel i covers input
     pixels 4 i .. 4 i + 3; the rectangle (or first outer contour) of those
     input pixels' indices, scaled to the original image and truncated to
     integers (``astype('int32')``);

   poly contours are then simplified (``epsilon_ratio`` x perimeter;
   tcmbench, 0 keeps the raw contour as both official codes do) and put
   clockwise; quads are ordered TL, TR, BR, BL (clockwise on screen);
7. divide by ``scale`` (sx, sy) = input size / original size and clip to
   the image.

Areas (``min_area``, ``min_kernel_area``) are in pixels of the head's map
(1/4 of the input): 16 = mmocr's ``min_text_area``.

Nothing loops over pixels in Python: each aggregation round is a handful
of numpy operations over the current frontier, and the rounds number the
width of the widest text border (a few pixels at 1/4).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from tcmbench.data.schema import Prediction
from tcmbench.errors import PluginError
from tcmbench_pan.aggregate import AGGREGATIONS, kernel_means, pixel_aggregate
from tcmbench_pan.targets import offset_polygon

__all__ = ["PANPostprocessor", "check_params", "kernel_means", "pixel_aggregate"]

OUTPUTS = ("quad", "poly")
#: ``box_geometry`` values (module doc, step 6).
GEOMETRIES = ("grown", "mmocr", "pan_pp")


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a rectangle as TL, TR, BR, BL (clockwise on screen,
    y down): the two leftmost points form one side, the upper one is TL;
    likewise TR among the two rightmost."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = pts[:2], pts[2:]
    tl, bl = (left[0], left[1]) if left[0, 1] <= left[1, 1] else (left[1], left[0])
    tr, br = (right[0], right[1]) if right[0, 1] <= right[1, 1] else (right[1], right[0])
    return np.stack([tl, tr, br, bl])


def clockwise(poly: np.ndarray) -> np.ndarray:
    """``poly`` with its vertices clockwise on screen (y down)."""
    x, y = poly[:, 0], poly[:, 1]
    signed = float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return poly if signed >= 0 else poly[::-1].copy()


@dataclass
class PANPostprocessor:
    """``(outputs, metas) -> list[list[Prediction]]``; see the module doc.

    Metas: ``orig_size`` (h, w) and ``scale`` (sx, sy) = input size /
    original size; missing ones mean the input was the original image.
    ``stride``: input pixels per map pixel of the head (4 for FPEM_FFM).
    """

    output: str = "poly"
    text_thr: float = 0.5
    kernel_thr: float = 0.5
    min_score: float = 0.85
    min_area: float = 16.0
    min_kernel_area: float = 0.0
    distance_thr: float = 3.0
    aggregation: str = "nearest"
    box_geometry: str = "grown"
    max_candidates: int = 1000
    epsilon_ratio: float = 0.002
    upsample: int = 1
    stride: int = 4

    def __post_init__(self) -> None:
        for name, allowed in (
            ("output", OUTPUTS),
            ("aggregation", AGGREGATIONS),
            ("box_geometry", GEOMETRIES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("text_thr", "kernel_thr", "min_score"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("min_area", "min_kernel_area", "distance_thr", "epsilon_ratio"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.upsample) < 1 or int(self.stride) < 1 or int(self.max_candidates) < 1:
            raise ValueError("upsample, stride and max_candidates must be >= 1")

    def with_params(self, **params: Any) -> PANPostprocessor:
        """A copy with some parameters changed (e.g. a recipe's); a bad
        key or value is a PluginError that names it."""
        check_params(params)
        try:
            return dataclasses.replace(self, **params)
        except ValueError as exc:
            raise PluginError(f"bad PANet postprocess parameters: {exc}") from exc

    def __call__(
        self, outputs: Mapping[str, Any], metas: Sequence[Mapping[str, Any]]
    ) -> list[list[Prediction]]:
        text = _numpy(outputs["text_logits"])[:, 0]
        kernel = _numpy(outputs["kernel_logits"])[:, 0]
        embedding = _numpy(outputs["embedding"])
        if len(metas) != text.shape[0]:
            raise ValueError(f"{text.shape[0]} maps but {len(metas)} metas")
        return [
            self.process_maps(t, k, e, meta)
            for t, k, e, meta in zip(text, kernel, embedding, metas)
        ]

    def process_maps(
        self,
        text_logits: np.ndarray,
        kernel_logits: np.ndarray,
        embedding: np.ndarray,
        meta: Mapping[str, Any],
    ) -> list[Prediction]:
        """Predictions of one image from its (h, w) logits and (D, h, w)
        embedding at the head's resolution."""
        sx, sy = (float(v) for v in meta.get("scale", (1.0, 1.0)))
        stride = float(self.stride)
        map_h, map_w = text_logits.shape
        orig_h, orig_w = meta.get("orig_size", (map_h * stride / sy, map_w * stride / sx))
        valid_h = min(map_h, max(1, int(np.ceil(round(orig_h * sy) / stride))))
        valid_w = min(map_w, max(1, int(np.ceil(round(orig_w * sx) / stride))))
        text_logits = text_logits[:valid_h, :valid_w]
        kernel_logits = kernel_logits[:valid_h, :valid_w]
        embedding = embedding[:, :valid_h, :valid_w]
        up = int(self.upsample)
        if up > 1:
            size = (valid_w * up, valid_h * up)
            text_logits = cv2.resize(text_logits, size, interpolation=cv2.INTER_LINEAR)
            kernel_logits = cv2.resize(kernel_logits, size, interpolation=cv2.INTER_LINEAR)
            embedding = np.stack(
                [cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in embedding]
            )
            stride /= up
        score = 1.0 / (1.0 + np.exp(-text_logits.astype(np.float64)))
        text = score > self.text_thr
        kernel = (kernel_logits > _logit(self.kernel_thr)) & text
        labels = self._kernels(kernel, up)
        labels = pixel_aggregate(labels, text, embedding, self.distance_thr, self.aggregation)
        preds: list[Prediction] = []
        scale = np.array([sx, sy])
        limit = np.array([orig_w - 1, orig_h - 1], dtype=np.float64)
        for points, inst_score in self._instances(labels, score, up):
            poly = self.boundary(points, stride)
            if poly is None:
                continue
            poly = poly / scale
            if self.box_geometry == "pan_pp":
                poly = np.trunc(poly)  # bbox.astype('int32') after scaling
            preds.append(Prediction(np.clip(poly, 0.0, limit), float(inst_score)))
        return preds

    def boundary(self, points: np.ndarray, stride: float) -> np.ndarray | None:
        """The quad or polygon of the map pixels ``points`` ((n, 2) x, y)
        in input-pixel coordinates, by ``box_geometry`` (module doc, step
        6); None when the official code would drop the instance."""
        if self.box_geometry == "mmocr":
            shape = _official_shape(points, self.output)
            return None if shape is None else self._simplify(shape * stride)
        if self.box_geometry == "pan_pp":
            return _pan_pp_shape(points, stride, self.output, self._simplify)
        poly = self._polygon(points)
        return None if poly is None else (poly + 0.5) * stride

    def _simplify(self, shape: np.ndarray) -> np.ndarray:
        """A quad ordered TL, TR, BR, BL; a contour simplified by
        ``epsilon_ratio`` and put clockwise."""
        if self.output == "quad":
            return order_quad(shape)
        if self.epsilon_ratio > 0 and len(shape) > 3:
            contour = shape.astype(np.float32).reshape(-1, 1, 2)
            perimeter = cv2.arcLength(contour, True)
            simple = cv2.approxPolyDP(contour, self.epsilon_ratio * perimeter, True)
            if len(simple) >= 3:
                shape = simple.reshape(-1, 2).astype(np.float64)
        return clockwise(shape)

    def _kernels(self, kernel: np.ndarray, up: int) -> np.ndarray:
        """Connected kernels (4-connectivity), small ones dropped, at most
        ``max_candidates`` (largest first), relabelled 1..K."""
        num, labels = cv2.connectedComponents(kernel.astype(np.uint8), connectivity=4)
        if num <= 1:
            return labels.astype(np.int32)
        areas = np.bincount(labels.ravel(), minlength=num).astype(np.float64)
        areas[0] = -1.0
        keep = np.flatnonzero(areas >= max(float(self.min_kernel_area) * up * up, 1.0))
        keep = keep[np.argsort(-areas[keep], kind="stable")][: int(self.max_candidates)]
        remap = np.zeros(num, dtype=np.int32)
        remap[np.sort(keep)] = np.arange(1, keep.size + 1, dtype=np.int32)
        return remap[labels]

    def _instances(
        self, labels: np.ndarray, score: np.ndarray, up: int
    ) -> Iterator[tuple[np.ndarray, float]]:
        """(points (n, 2) as x, y; mean text score) of every instance that
        passes the area and score filters."""
        flat = labels.ravel()
        num = int(flat.max()) + 1 if flat.size else 1
        if num <= 1:
            return
        areas = np.bincount(flat, minlength=num)
        means = np.bincount(flat, weights=score.ravel(), minlength=num) / np.maximum(areas, 1)
        ok = (areas >= float(self.min_area) * up * up) & (means >= self.min_score)
        ok[0] = False
        idx = np.flatnonzero(ok[flat])
        if idx.size == 0:
            return
        order = idx[np.argsort(flat[idx], kind="stable")]
        ids = flat[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        width = labels.shape[1]
        for chunk, label in zip(np.split(order, starts[1:]), ids[starts]):
            points = np.stack([chunk % width, chunk // width], axis=1)
            yield points, float(means[label])

    def _polygon(self, points: np.ndarray) -> np.ndarray | None:
        """The boundary of the pixels ``points`` (map coordinates, around
        the pixel areas)."""
        if self.output == "quad":
            return self._quad(points)
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        mask = np.zeros((y1 - y0 + 3, x1 - x0 + 3), dtype=np.uint8)
        mask[points[:, 1] - y0 + 1, points[:, 0] - x0 + 1] = 1
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return None
        contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
        if len(contour) < 3 or cv2.contourArea(contour.astype(np.float32)) <= 0:
            return self._quad(points)  # a line of pixels: its rectangle
        contour += np.array([x0 - 1, y0 - 1], dtype=np.float64)
        # Grow the contour (through the boundary pixels' centres) by d so
        # that its area, about A + L d, equals the pixel count.
        area = cv2.contourArea(contour.astype(np.float32))
        length = cv2.arcLength(contour.astype(np.float32).reshape(-1, 1, 2), True)
        margin = float(np.clip((len(points) - area) / max(length, 1e-6), 0.0, 1.0))
        grown = offset_polygon(contour, margin) if margin > 0 else contour
        if grown is None:
            return self._quad(points)
        perimeter = cv2.arcLength(grown.astype(np.float32).reshape(-1, 1, 2), True)
        if self.epsilon_ratio > 0:
            simple = cv2.approxPolyDP(
                grown.astype(np.float32).reshape(-1, 1, 2), self.epsilon_ratio * perimeter, True
            ).reshape(-1, 2)
            if len(simple) >= 3:
                grown = simple.astype(np.float64)
        return clockwise(grown)

    @staticmethod
    def _quad(points: np.ndarray) -> np.ndarray:
        """Minimum-area rectangle of the pixel centres, both sides grown by
        the same margin so that its area equals the pixel count."""
        (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32).reshape(-1, 1, 2))
        margin = _area_margin(float(w), float(h), float(len(points)))
        box = cv2.boxPoints(((cx, cy), (w + margin, h + margin), angle))
        return order_quad(box)


def _official_shape(points: np.ndarray, output: str) -> np.ndarray | None:
    """mmocr 0.x ``points2boundary`` on integer pixel indices (x, y):
    ``cv2.boxPoints(cv2.minAreaRect(points))`` for quads; for polygons the
    first outer contour (``RETR_EXTERNAL``, ``CHAIN_APPROX_SIMPLE``) of the
    pixel mask, None when it has fewer than 4 points (mmocr drops a
    boundary of fewer than 8 numbers)."""
    pts = np.asarray(points, dtype=np.int32).reshape(-1, 2)
    if output == "quad":
        return cv2.boxPoints(cv2.minAreaRect(pts.reshape(-1, 1, 2))).astype(np.float64)
    origin = pts.min(axis=0) - 1  # a free pixel all round the mask
    contour = _first_outer_contour(_mask(pts - origin, 1))
    if contour is None or len(contour) < 4:
        return None
    return contour + origin


def _mask(pts: np.ndarray, block: int) -> np.ndarray:
    """uint8 mask of the pixels ``pts`` (x, y >= 1), each ``block`` x
    ``block`` input pixels, with an empty border."""
    small = np.zeros((pts[:, 1].max() + 2, pts[:, 0].max() + 2), dtype=np.uint8)
    small[pts[:, 1], pts[:, 0]] = 1
    return small if block == 1 else np.kron(small, np.ones((block, block), dtype=np.uint8))


def _first_outer_contour(mask: np.ndarray) -> np.ndarray | None:
    """The first contour ``cv2.findContours(RETR_EXTERNAL,
    CHAIN_APPROX_SIMPLE)`` returns, (n, 2) float, as both official codes
    take it."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    return contours[0].reshape(-1, 2).astype(np.float64)


def _pan_pp_shape(points: np.ndarray, stride: float, output: str, finish: Any) -> np.ndarray | None:
    """pan_pp.pytorch's boundary of the map pixels ``points`` after the
    label map is resized to the input with nearest sampling: every map
    pixel (x, y) becomes the input pixels s x .. s x + s - 1 (s = stride);
    the rectangle of their indices (its corners suffice: the hull of the
    blocks is the hull of their corners), or the first outer contour of the
    enlarged mask. ``finish`` orders / simplifies the result."""
    s = max(1, round(stride))
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if output == "quad":
        corners = np.concatenate(
            [pts * s + np.array(off, dtype=np.int64) for off in _block_corners(s)]
        )
        box = cv2.boxPoints(cv2.minAreaRect(corners.astype(np.int32).reshape(-1, 1, 2)))
        return finish(box.astype(np.float64))
    origin = pts.min(axis=0) - 1
    contour = _first_outer_contour(_mask(pts - origin, s))
    if contour is None or len(contour) < 3:
        return None
    return finish(contour + origin * s)


def _block_corners(s: int) -> tuple[tuple[int, int], ...]:
    return ((0, 0), (s - 1, 0), (0, s - 1), (s - 1, s - 1))


def _area_margin(w: float, h: float, area: float) -> float:
    """a >= 0 with (w + a)(h + a) = area, at most 1 (one map pixel)."""
    s = w + h
    disc = s * s - 4.0 * (w * h - area)
    if disc <= 0:
        return 0.0
    return float(np.clip((-s + np.sqrt(disc)) / 2.0, 0.0, 1.0))


_PARAM_TYPES: dict[str, type] = {
    "output": str,
    "aggregation": str,
    "box_geometry": str,
    "max_candidates": int,
    "upsample": int,
    "stride": int,
}


def check_params(params: Any) -> None:
    """PluginError unless ``params`` is a mapping of known
    :class:`PANPostprocessor` parameters with values of the right type."""
    if not isinstance(params, Mapping):
        raise PluginError(f"PANet postprocess must be a mapping, got {type(params).__name__}")
    known = set(PANPostprocessor.__dataclass_fields__)
    unknown = sorted(str(k) for k in set(params) - known)
    if unknown:
        raise PluginError(
            f"unknown PANet postprocess parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    for key, value in params.items():
        want = _PARAM_TYPES.get(key, float)
        if want is str:
            ok = isinstance(value, str)
        elif want is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        else:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok:
            raise PluginError(
                f"PANet postprocess parameter {key} must be {want.__name__}, got {value!r}"
            )


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1.0 - 1e-7)
    return float(np.log(p / (1.0 - p)))


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)
