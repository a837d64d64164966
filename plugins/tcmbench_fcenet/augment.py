"""FCENet's training augmentations, registered through
``register_augmentations`` (names prefixed ``fce_``; a recipe lists them in
``train.augment``).

They follow the ideas of mmocr's FCENet pipeline (RandomScaling,
RandomCropPolyInstances, RandomRotatePolyInstances, SquareResizePad),
written for tcmbench's step contract: ``step(image, polygons, ignores, rng)
-> (image, polygons, ignores)``, RGB images (float32 normalised, or uint8
with ``train.normalize_at: end``), float32 (N, 2) pixel polygons, every
random number drawn from ``rng``.

Each step has a tcmbench default and, where mmocr 0.x does otherwise, a
parameter that selects mmocr's behaviour; the paper / TCM recipes set them
(docs/fcenet.md, "Fidelity"):

- ``fce_color_jitter(brightness, contrast, saturation)``: torchvision's
  ColorJitter as mmocr's FCENet pipeline calls it (brightness 32/255,
  contrast 0.5, saturation 0.5; photometric, on uint8 pixels). The
  built-in ``color_jitter`` has no contrast;
- ``fce_random_scaling(size, scale)``: resize so the long side becomes
  ``size`` x U(scale) (the same for every image, whatever its original size);
- ``fce_random_crop_flip(prob, min_area_ratio, pad_ratio, iter_num)``
  (mmocr RandomCropFlip): with probability ``prob``, a box whose edges lie
  in rows / columns no text's minimum-area rectangle spans (the image
  grown by ``pad_ratio`` on each side for the draw, then clipped), at
  least ``min_area_ratio`` of the image and cutting no polygon, is
  mirrored in place: left-right, top-bottom or both (one in three each);
  the polygons inside it follow. Up to 10 boxes are drawn; when none fits
  the sample is left as it was (mmocr then flips the last box drawn anyway
  and may leave the polygons inside it unflipped, a bug not copied);
- ``fce_crop_instances(prob, min_side_ratio, cut)``: with probability
  ``prob``, crop a box that fully contains one randomly chosen cared-for
  instance and is at least ``min_side_ratio`` of the image on both axes; its
  edges are drawn from rows / columns no text crosses when there are any,
  so words are rarely cut. ``cut: clip`` (tcmbench) clips polygons the box
  cuts to it (shapely); ``cut: drop`` (mmocr RandomCropPolyInstances)
  keeps a polygon only when all its points lie within 4 px of the box,
  clamps those to the box, and drops the others (their pixels stay in the
  image, unlabelled). Polygons outside the box are dropped either way;
- ``fce_rotate(prob, max_angle, fill)``: with probability ``prob``, rotate
  by U(-max_angle, max_angle) degrees on a canvas grown to hold the whole
  rotated image (nothing is cut, unlike the built-in ``rotate``). ``fill``:
  ``zeros`` (tcmbench) or ``patch`` (mmocr's ``pad_with_fixed_color=False``:
  a random patch of 1/9 x 1/9 of the image, its top-left corner in the
  first 7/8 of each axis, stretched over the whole canvas, shows around
  the rotated image);
- ``fce_square_resize_pad(size, pad_ratio, fill, position)``: with
  probability ``pad_ratio``, keep-ratio resize so the long side is ``size``
  and pad to a ``size`` x ``size`` square, the image at a random offset
  (``position: random``, tcmbench) or centred (``center``, mmocr), the
  rest ``zeros`` or an image ``patch`` as ``fce_rotate``; otherwise resize
  to ``size`` x ``size`` ignoring the aspect ratio. The output is always
  square, so training batches stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

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


FILLS = ("zeros", "patch")
POSITIONS = ("random", "center")
CUTS = ("clip", "drop")
#: mmocr RandomCropPolyInstances keeps a polygon whose points all lie
#: within this many pixels outside the crop box.
DROP_TOLERANCE = 4.0
#: mmocr RandomCropFlip: boxes drawn before giving up.
CROP_FLIP_TRIES = 10


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _probability(name: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def patch_canvas(
    image: np.ndarray, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """A ``height`` x ``width`` background cut from ``image`` itself
    (mmocr's padding when ``pad_with_fixed_color`` is False): a patch of
    (h // 9, w // 9) pixels whose top-left corner is drawn in the first 7/8
    of each axis, stretched bilinearly. Real texture, unlike a flat colour,
    so the network cannot tell padding from photo by its value."""
    h, w = image.shape[:2]
    top = int(rng.integers(0, max(1, h * 7 // 8)))
    left = int(rng.integers(0, max(1, w * 7 // 8)))
    cut = image[top : top + max(1, h // 9), left : left + max(1, w // 9)]
    out = cv2.resize(cut, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    return out.reshape(int(height), int(width), *image.shape[2:])


def jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
) -> np.ndarray:
    """torchvision ``ColorJitter`` on an RGB uint8 image: each factor is
    U(max(0, 1 - v), 1 + v), the operations run in a random order, each
    clipped to [0, 255]. Brightness scales the pixels; contrast blends them
    with the image's mean luma (rounded, as PIL's ``ImageEnhance``);
    saturation with each pixel's own luma (ITU-R 601-2, PIL's ``"L"``)."""
    ops = [
        (kind, float(rng.uniform(max(0.0, 1.0 - v), 1.0 + v)))
        for kind, v in (("b", brightness), ("c", contrast), ("s", saturation))
        if v > 0
    ]
    if not ops:
        return image
    out = image.astype(np.float32)
    for i in rng.permutation(len(ops)):
        kind, factor = ops[int(i)]
        if kind == "b":
            out = out * factor
        else:
            luma = out[..., 0] * 0.299 + out[..., 1] * 0.587 + out[..., 2] * 0.114
            base = np.floor(luma.mean() + 0.5) if kind == "c" else luma[..., None]
            out = base + factor * (out - base)
        out = np.clip(out, 0, 255)
    return out.round().astype(np.uint8)


@dataclass
class ColorJitter:
    """``fce_color_jitter``: brightness, contrast and saturation (module doc)."""

    # Photometric: runs on uint8 pixels, before normalisation (TrainTransform).
    photometric: ClassVar[bool] = True

    brightness: float = 32.0 / 255.0
    contrast: float = 0.5
    saturation: float = 0.5

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= float(getattr(self, name)) <= 10.0:
                raise ValueError(f"{name} must be in [0, 10], got {getattr(self, name)}")

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        return jitter(image, rng, self.brightness, self.contrast, self.saturation), polys, ign


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


def drop_cut_polygons(
    polys: Polygons, ign: list[bool], box: tuple[int, int, int, int]
) -> tuple[Polygons, list[bool]]:
    """mmocr's rule after a crop to ``box`` (x0, y0, x1, y1): a polygon is
    kept, shifted to the box's origin and its points clamped to the box,
    when every point lies less than :data:`DROP_TOLERANCE` px outside the
    box; any other polygon (cut by the box, or outside it) is dropped."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    origin = np.array([x0, y0], dtype=np.float32)
    out: Polygons = []
    out_ign: list[bool] = []
    for p, ig in zip(polys, ign):
        q = p - origin
        inside = (
            (q[:, 0] > -DROP_TOLERANCE).all()
            and (q[:, 0] < w + DROP_TOLERANCE).all()
            and (q[:, 1] > -DROP_TOLERANCE).all()
            and (q[:, 1] < h + DROP_TOLERANCE).all()
        )
        if inside:
            out.append(np.clip(q, 0, [w, h]).astype(np.float32))
            out_ign.append(ig)
    return out, out_ign


def _box_extent_mask(polys: Polygons, length: int, pad: int, axis: int) -> np.ndarray:
    """Positions of a ``length + 2 pad`` axis covered by some polygon's
    minimum-area rectangle (corners truncated to integers, the max end
    excluded), as RandomCropFlip marks them."""
    taken = np.zeros(length + 2 * pad, dtype=bool)
    for p in polys:
        if len(p) < 3:
            continue
        corners = cv2.boxPoints(cv2.minAreaRect(p.astype(np.int32).reshape(-1, 1, 2)))
        ends = corners[:, axis].astype(np.int32)
        lo, hi = int(ends.min()) + pad, int(ends.max()) + pad
        taken[max(lo, 0) : max(hi, 0)] = True
    return taken


def _inside_or_outside(polys: Polygons, box: tuple[int, int, int, int]) -> list[bool] | None:
    """Per polygon, whether it lies inside the box (True) or outside it
    (False); None when the box cuts one (intersection neither ~0 nor ~its
    area, 0.01 px^2 tolerance)."""
    if not polys:
        return []
    shapes = [
        shapely.Polygon(np.asarray(p, np.float64)) if len(p) >= 3 else shapely.Polygon()
        for p in polys
    ]
    geoms = shapely.make_valid(np.array(shapes, dtype=object))
    common = shapely.area(shapely.intersection(geoms, shapely.box(*box)))
    area = shapely.area(geoms)
    eps = 1e-2
    if np.any((np.abs(common - area) > eps) & (np.abs(common) > eps)):
        return None
    return [bool(x) for x in np.abs(common - area) < eps]


@dataclass
class RandomCropFlip:
    """``fce_random_crop_flip`` (module doc; mmocr RandomCropFlip with
    ``crop_ratio`` = ``prob``)."""

    prob: float = 0.5
    min_area_ratio: float = 0.2
    pad_ratio: float = 0.1
    iter_num: int = 1

    def __post_init__(self) -> None:
        _probability("prob", self.prob)
        _probability("min_area_ratio", self.min_area_ratio)
        _probability("pad_ratio", self.pad_ratio)
        if not 1 <= int(self.iter_num) <= 100:
            raise ValueError(f"iter_num must be in [1, 100], got {self.iter_num}")

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        for _ in range(int(self.iter_num)):
            image, polys = self.once(image, polys, ign, rng)
        return image, polys, ign

    def draw_box(
        self, shape: tuple[int, ...], polys: Polygons, rng: np.random.Generator
    ) -> tuple[tuple[int, int, int, int], list[bool]] | None:
        """A box (x0, y0, x1, y1) and which polygons lie inside it, or None
        when none of :data:`CROP_FLIP_TRIES` draws fits."""
        h, w = shape[:2]
        pad_h, pad_w = int(h * self.pad_ratio), int(w * self.pad_ratio)
        free_x = np.flatnonzero(~_box_extent_mask(polys, w, pad_w, 0))
        free_y = np.flatnonzero(~_box_extent_mask(polys, h, pad_h, 1))
        if free_x.size == 0 or free_y.size == 0:
            return None
        for _ in range(CROP_FLIP_TRIES):
            x0, x1 = np.clip(np.sort(rng.choice(free_x, size=2)) - pad_w, 0, w - 1)
            y0, y1 = np.clip(np.sort(rng.choice(free_y, size=2)) - pad_h, 0, h - 1)
            if (x1 - x0) * (y1 - y0) < h * w * self.min_area_ratio:
                continue
            box = (int(x0), int(y0), int(x1), int(y1))
            inside = _inside_or_outside(polys, box)
            if inside is not None:
                return box, inside
        return None

    def once(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> tuple[np.ndarray, Polygons]:
        if all(ign) or rng.random() >= self.prob:
            return image, polys
        found = self.draw_box(image.shape, polys, rng)
        if found is None:
            return image, polys
        (x0, y0, x1, y1), inside = found
        mode = int(rng.integers(3))  # 0 left-right, 1 top-bottom, 2 both
        flip_x, flip_y = mode in (0, 2), mode in (1, 2)
        out = image.copy()
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = region[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
        moved: Polygons = []
        for p, is_in in zip(polys, inside):
            q = p.copy()
            if is_in and flip_x:
                q[:, 0] = x0 + x1 - q[:, 0]
            if is_in and flip_y:
                q[:, 1] = y0 + y1 - q[:, 1]
            moved.append(q)
        return out, moved


@dataclass
class CropInstances:
    prob: float = 0.8
    min_side_ratio: float = 0.3
    cut: str = "clip"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.prob) <= 1.0 or not 0.0 < float(self.min_side_ratio) <= 1.0:
            raise ValueError(
                f"need prob in [0, 1] and min_side_ratio in (0, 1], got {self.prob}, {self.min_side_ratio}"
            )
        _choice("cut", self.cut, CUTS)

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
        keep = drop_cut_polygons if self.cut == "drop" else clip_polygons
        polys, ign = keep(polys, ign, (x0, y0, x1 + 1, y1 + 1))
        return crop, polys, ign


@dataclass
class RotateInstances:
    prob: float = 0.5
    max_angle: float = 30.0
    fill: str = "zeros"

    def __post_init__(self) -> None:
        _probability("prob", self.prob)
        if not 0.0 <= float(self.max_angle) <= 180.0:
            raise ValueError(f"max_angle must be in [0, 180], got {self.max_angle}")
        _choice("fill", self.fill, FILLS)

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
        if self.fill == "patch":
            # 1 outside the rotated image, 0 inside, blended along its edges.
            outside = cv2.warpAffine(
                np.zeros((h, w), np.float32), m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=1.0
            )
            outside = outside.reshape(nh, nw, *([1] * (image.ndim - 2)))
            filled = out.astype(np.float32) + patch_canvas(image, nh, nw, rng) * outside
            if image.dtype == np.uint8:
                filled = np.clip(filled.round(), 0, 255)
            out = filled.astype(image.dtype)
        rotated = [(np.c_[p, np.ones(len(p), np.float32)] @ m.T).astype(np.float32) for p in polys]
        return out, rotated, ign


@dataclass
class SquareResizePad:
    size: int = 800
    pad_ratio: float = 0.6
    fill: str = "zeros"
    position: str = "random"

    def __post_init__(self) -> None:
        if int(self.size) < 1 or not 0.0 <= float(self.pad_ratio) <= 1.0:
            raise ValueError(
                f"need size >= 1 and pad_ratio in [0, 1], got {self.size}, {self.pad_ratio}"
            )
        _choice("fill", self.fill, FILLS)
        _choice("position", self.position, POSITIONS)

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
        if self.position == "center":
            ox, oy = (size - nw) // 2, (size - nh) // 2
        else:
            ox = int(rng.integers(0, size - nw + 1))
            oy = int(rng.integers(0, size - nh + 1))
        if self.fill == "patch":
            canvas = patch_canvas(image, size, size, rng).astype(image.dtype)
        else:
            canvas = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
        canvas[oy : oy + nh, ox : ox + nw] = image
        offset = np.array([ox, oy], dtype=np.float32)
        return canvas, [p + offset for p in polys], ign
