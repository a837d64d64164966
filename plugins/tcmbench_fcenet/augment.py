"""FCENet's training augmentations, registered through
``register_augmentations`` (names prefixed ``fce_``; a recipe lists them in
``train.augment``).

They follow the ideas of mmocr's FCENet pipeline (RandomScaling,
RandomCropPolyInstances, RandomRotatePolyInstances, SquareResizePad),
written for tcmbench's step contract: ``step(image, polygons, ignores, rng)
-> (image, polygons, ignores)``, RGB images (float32 normalised, or uint8
with ``train.normalize_at: end``), float32 (N, 2) pixel polygons, every
random number drawn from ``rng``.

- ``fce_random_scaling(size, scale)``: resize so the long side becomes
  ``size`` x U(scale) (the same for every image, whatever its original size);
- ``fce_crop_instances(prob, min_side_ratio)``: with probability ``prob``,
  crop a box that fully contains one randomly chosen cared-for instance and
  is at least ``min_side_ratio`` of the image on both axes; its edges are
  drawn from rows / columns no text crosses when there are any, so words
  are rarely cut. Polygons the box cuts are clipped to it (shapely);
  polygons outside it are dropped;
- ``fce_rotate(prob, max_angle)``: with probability ``prob``, rotate by
  U(-max_angle, max_angle) degrees on a canvas grown to hold the whole
  rotated image (nothing is cut, unlike the built-in ``rotate``);
- ``fce_square_resize_pad(size, pad_ratio)``: with probability
  ``pad_ratio``, keep-ratio resize so the long side is ``size`` and pad to a
  ``size`` x ``size`` square (image placed at a random offset, zeros
  around); otherwise resize to ``size`` x ``size`` ignoring the aspect
  ratio. The output is always square, so training batches stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import shapely

Polygons = list[np.ndarray]
Step = tuple[np.ndarray, Polygons, list[bool]]


def _resize(
    image: np.ndarray, polys: Polygons, new_w: int, new_h: int
) -> tuple[np.ndarray, Polygons]:
    h, w = image.shape[:2]
    out = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    factor = np.array([new_w / w, new_h / h], dtype=np.float32)
    return out, [(p * factor).astype(np.float32) for p in polys]


@dataclass
class RandomScaling:
    size: int = 800
    scale: Sequence[float] = (0.75, 2.5)

    def __post_init__(self) -> None:
        lo, hi = (float(x) for x in self.scale)
        if not 0 < lo <= hi or int(self.size) < 1:
            raise ValueError(
                f"need size >= 1 and 0 < scale[0] <= scale[1], got {self.size}, {self.scale}"
            )

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        h, w = image.shape[:2]
        lo, hi = (float(x) for x in self.scale)
        factor = int(self.size) * float(rng.uniform(lo, hi)) / max(h, w)
        image, polys = _resize(image, polys, max(1, round(w * factor)), max(1, round(h * factor)))
        return image, polys, ign


def _occupied(polys: Polygons, length: int, axis: int) -> np.ndarray:
    taken = np.zeros(length, dtype=bool)
    for p in polys:
        lo = int(np.floor(p[:, axis].min()))
        hi = int(np.ceil(p[:, axis].max()))
        taken[max(0, lo) : min(length, hi + 1)] = True
    return taken


def _edge(lo: int, hi: int, taken: np.ndarray, rng: np.random.Generator) -> int:
    """A position in [lo, hi], text-free when one exists there."""
    lo, hi = max(lo, 0), min(hi, len(taken) - 1) if len(taken) else hi
    if hi < lo:
        return lo
    span = np.arange(lo, hi + 1)
    free = span[~taken[span]]
    choices = free if free.size else span
    return int(rng.choice(choices))


def clip_polygons(
    polys: Polygons, ign: list[bool], box: tuple[int, int, int, int]
) -> tuple[Polygons, list[bool]]:
    """Polygons intersected with ``box`` (x0, y0, x1, y1), shifted to its
    origin; empty intersections dropped, a split polygon keeps its largest
    piece."""
    x0, y0, x1, y1 = box
    rect = shapely.box(x0, y0, x1, y1)
    out: Polygons = []
    out_ign: list[bool] = []
    origin = np.array([x0, y0], dtype=np.float32)
    for p, ig in zip(polys, ign):
        px0, py0 = p.min(axis=0)
        px1, py1 = p.max(axis=0)
        if px1 < x0 or px0 > x1 or py1 < y0 or py0 > y1:
            continue
        if px0 >= x0 and px1 <= x1 and py0 >= y0 and py1 <= y1:
            out.append((p - origin).astype(np.float32))
            out_ign.append(ig)
            continue
        geom: shapely.geometry.base.BaseGeometry = shapely.Polygon(p)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        piece = geom.intersection(rect)
        parts = [
            g for g in getattr(piece, "geoms", [piece]) if g.geom_type == "Polygon" and g.area > 0
        ]
        if not parts:
            continue
        best = max(parts, key=lambda g: g.area)
        coords = np.asarray(best.exterior.coords, dtype=np.float32)[:-1]
        if len(coords) < 3:
            continue
        out.append(coords - origin)
        out_ign.append(ig)
    return out, out_ign


@dataclass
class CropInstances:
    prob: float = 0.8
    min_side_ratio: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.prob) <= 1.0 or not 0.0 < float(self.min_side_ratio) <= 1.0:
            raise ValueError(
                f"need prob in [0, 1] and min_side_ratio in (0, 1], got {self.prob}, {self.min_side_ratio}"
            )

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        if not polys or rng.random() >= self.prob:
            return image, polys, ign
        h, w = image.shape[:2]
        care = [i for i, ig in enumerate(ign) if not ig] or list(range(len(polys)))
        anchor = polys[int(rng.choice(care))]
        ax0, ay0 = np.floor(anchor.min(axis=0)).astype(int)
        ax1, ay1 = np.ceil(anchor.max(axis=0)).astype(int)
        ax0, ay0 = max(ax0, 0), max(ay0, 0)
        ax1, ay1 = min(ax1, w - 1), min(ay1, h - 1)
        if ax1 <= ax0 or ay1 <= ay0:
            return image, polys, ign
        cols, rows = _occupied(polys, w, 0), _occupied(polys, h, 1)
        min_w, min_h = int(self.min_side_ratio * w), int(self.min_side_ratio * h)
        x0 = _edge(0, ax0, cols, rng)
        x1 = _edge(max(ax1, x0 + min_w), w - 1, cols, rng)
        y0 = _edge(0, ay0, rows, rng)
        y1 = _edge(max(ay1, y0 + min_h), h - 1, rows, rng)
        x1, y1 = min(max(x1, x0 + 1), w - 1), min(max(y1, y0 + 1), h - 1)
        crop = np.ascontiguousarray(image[y0 : y1 + 1, x0 : x1 + 1])
        polys, ign = clip_polygons(polys, ign, (x0, y0, x1 + 1, y1 + 1))
        return crop, polys, ign


@dataclass
class RotateInstances:
    prob: float = 0.5
    max_angle: float = 30.0

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        if self.max_angle <= 0 or rng.random() >= self.prob:
            return image, polys, ign
        angle = float(rng.uniform(-self.max_angle, self.max_angle))
        h, w = image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos))
        m[0, 2] += nw / 2.0 - w / 2.0
        m[1, 2] += nh / 2.0 - h / 2.0
        out = cv2.warpAffine(
            image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        rotated = [(np.c_[p, np.ones(len(p), np.float32)] @ m.T).astype(np.float32) for p in polys]
        return out, rotated, ign


@dataclass
class SquareResizePad:
    size: int = 800
    pad_ratio: float = 0.6

    def __post_init__(self) -> None:
        if int(self.size) < 1 or not 0.0 <= float(self.pad_ratio) <= 1.0:
            raise ValueError(
                f"need size >= 1 and pad_ratio in [0, 1], got {self.size}, {self.pad_ratio}"
            )

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        size = int(self.size)
        h, w = image.shape[:2]
        if rng.random() >= self.pad_ratio:
            image, polys = _resize(image, polys, size, size)
            return image, polys, ign
        factor = size / max(h, w)
        nw, nh = max(1, min(size, round(w * factor))), max(1, min(size, round(h * factor)))
        image, polys = _resize(image, polys, nw, nh)
        ox = int(rng.integers(0, size - nw + 1))
        oy = int(rng.integers(0, size - nh + 1))
        canvas = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
        canvas[oy : oy + nh, ox : ox + nw] = image
        offset = np.array([ox, oy], dtype=np.float32)
        return canvas, [p + offset for p in polys], ign
