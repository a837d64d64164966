"""Augmentations on an image and its polygons (numpy / OpenCV, no torch).

The training pipeline follows DBNet / TCM's official recipe (TCM.md section
7): colour jitter -> normalise -> horizontal flip -> small rotation ->
random rescale -> text-aware random crop (DB's ``RandomCropData`` idea:
crop edges are drawn from rows / columns that no text crosses, so a word is
never cut in half) -> pad. As in the official (mmocr 0.x) pipelines,
``Normalize`` runs right after the photometric steps, before the geometric
ones: those then work on float32 normalised pixels, so what they fill in
(rotation corners, crop and size-divisor padding) is 0 in normalised space,
the mean colour, not black. ``train.normalize_at: end`` keeps tcmbench's
earlier order (all augmentations on uint8, black fill, normalise last), the
one the shipped weights were trained with. Every random choice comes from a
:class:`numpy.random.Generator` passed in by the caller, so an augmented
sample is a pure function of (seed, draw number): data loader workers and a
resumed run reproduce the same pixels bit for bit.

The test pipeline resizes keeping the aspect ratio under long / short side
limits (mmocr ``Resize(keep_ratio=True)``), pads to a multiple of 32 and
returns the scale (sx, sy) = resized size / original size that the
postprocessor divides by to map polygons back.

All settings come from the detector's recipe dict (``train``, ``test``,
``normalize`` sections); see :class:`TrainTransform`,
:class:`InferenceTransform` and ``docs/training.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from tcmbench.errors import TcmbenchError

MEAN_RGB = (122.679, 116.669, 104.007)
STD_RGB = (58.395, 57.12, 57.375)

Polygons = list[np.ndarray]


def _pair(value: Any) -> tuple[int, int]:
    """``640`` or ``[h, w]`` -> (h, w)."""
    if isinstance(value, (int, float)):
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def _recipe_part(recipe: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``recipe[key]`` checked against the checkpoint schema's section of
    that name (:mod:`tcmbench.safety.checkpoint_schema`, the one validation layer):
    recipes also come from checkpoints and grids anyone can edit, and a
    ``pad_divisor`` of 0 or a ``std`` of 1e-30 must be one line here, not
    a ZeroDivisionError or an image of +-1e32 later."""
    from tcmbench.safety.checkpoint_schema import NORMALIZE, TEST
    from tcmbench.safety.validation import check_document

    schema = {"test": TEST, "normalize": NORMALIZE}[key]
    return check_document(recipe.get(key), schema, "recipe", key) or {}


def normalization(recipe: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of ``recipe["normalize"]``; TCM's values by default."""
    norm = _recipe_part(recipe, "normalize")
    mean = tuple(float(x) for x in norm.get("mean", MEAN_RGB))
    std = tuple(float(x) for x in norm.get("std", STD_RGB))
    return mean, std


# --------------------------------------------------------------------------
# Single operations. Each returns new arrays; inputs are never modified.


def color_jitter(
    image: np.ndarray, rng: np.random.Generator, brightness: float, saturation: float
) -> np.ndarray:
    """torchvision ``ColorJitter`` semantics: brightness multiplies by a
    factor in [1-b, 1+b], saturation blends with the grey image by a factor
    in [1-s, 1+s]; the two are applied in random order."""
    ops = []
    if brightness > 0:
        ops.append(("b", rng.uniform(max(0.0, 1 - brightness), 1 + brightness)))
    if saturation > 0:
        ops.append(("s", rng.uniform(max(0.0, 1 - saturation), 1 + saturation)))
    if not ops:
        return image
    order = rng.permutation(len(ops))
    out = image.astype(np.float32)
    for i in order:
        kind, factor = ops[i]
        if kind == "b":
            out = out * factor
        else:
            # ITU-R 601-2 luma, as PIL's convert("L") used by torchvision.
            grey = out[..., 0] * 0.299 + out[..., 1] * 0.587 + out[..., 2] * 0.114
            out = grey[..., None] + factor * (out - grey[..., None])
        out = np.clip(out, 0, 255)
    return out.round().astype(np.uint8)


def hflip(image: np.ndarray, polygons: Polygons) -> tuple[np.ndarray, Polygons]:
    """Mirror left-right. Point order is reversed so each polygon keeps its
    orientation (clockwise stays clockwise), which protocols check."""
    w = image.shape[1]
    out = []
    for poly in polygons:
        p = poly.copy()
        p[:, 0] = w - p[:, 0]
        out.append(p[::-1].copy())
    return np.ascontiguousarray(image[:, ::-1]), out


def rotate(image: np.ndarray, polygons: Polygons, degrees: float) -> tuple[np.ndarray, Polygons]:
    """Rotate about the centre keeping the canvas size (corners are cut,
    as imgaug's ``Affine(rotate=...)`` in DBNet); polygons follow."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    polys = [(np.c_[p, np.ones(len(p), np.float32)] @ m.T).astype(np.float32) for p in polygons]
    return out, polys


def rescale(image: np.ndarray, polygons: Polygons, factor: float) -> tuple[np.ndarray, Polygons]:
    """Resize both sides by ``factor`` (one factor, aspect kept)."""
    h, w = image.shape[:2]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    sx, sy = nw / w, nh / h
    return out, [p * np.array([sx, sy], np.float32) for p in polygons]


def _free_runs(occupied: np.ndarray) -> list[np.ndarray]:
    """Index runs (contiguous) where ``occupied`` is False."""
    free = np.flatnonzero(~occupied)
    if free.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(free) != 1) + 1
    return np.split(free, breaks)


def _pick_span(runs: list[np.ndarray], rng: np.random.Generator) -> tuple[int, int]:
    """Two cut positions in text-free runs; from two different runs when
    there are several, so the crop tends to contain text between them."""
    if len(runs) > 1:
        a, b = rng.choice(len(runs), size=2, replace=False)
        lo, hi = int(rng.choice(runs[a])), int(rng.choice(runs[b]))
    else:
        lo, hi = (int(x) for x in rng.choice(runs[0], size=2))
    return min(lo, hi), max(lo, hi)


def text_aware_crop_box(
    shape: tuple[int, int],
    polygons: Polygons,
    ignores: Sequence[bool],
    rng: np.random.Generator,
    min_side_ratio: float = 0.1,
    tries: int = 10,
) -> tuple[int, int, int, int]:
    """A crop box (x0, y0, x1, y1) whose edges cross no text.

    The x (y) extents of all polygons mark columns (rows) as occupied; both
    edges of each axis are drawn from unoccupied positions. A candidate is
    accepted when it is at least ``min_side_ratio`` of the image on both axes
    and fully contains at least one cared-for polygon. After ``tries``
    failures the whole image is used (DBNet's ``RandomCropData`` policy).
    """
    h, w = shape
    whole = (0, 0, w, h)
    if not polygons:
        return whole
    rows = np.zeros(h, dtype=bool)
    cols = np.zeros(w, dtype=bool)
    boxes = []
    for poly in polygons:
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int)
        boxes.append((x0, y0, x1, y1))
        cols[max(0, x0) : min(w, x1 + 1)] = True
        rows[max(0, y0) : min(h, y1 + 1)] = True
    col_runs, row_runs = _free_runs(cols), _free_runs(rows)
    if not col_runs or not row_runs:
        return whole
    care = [i for i, ig in enumerate(ignores) if not ig] or list(range(len(polygons)))
    for _ in range(tries):
        cx0, cx1 = _pick_span(col_runs, rng)
        cy0, cy1 = _pick_span(row_runs, rng)
        if cx1 - cx0 < min_side_ratio * w or cy1 - cy0 < min_side_ratio * h:
            continue
        for i in care:
            x0, y0, x1, y1 = boxes[i]
            if x0 >= cx0 and x1 <= cx1 and y0 >= cy0 and y1 <= cy1:
                return cx0, cy0, cx1, cy1
    return whole


def crop_and_fit(
    image: np.ndarray,
    polygons: Polygons,
    ignores: Sequence[bool],
    box: tuple[int, int, int, int],
    size: tuple[int, int],
) -> tuple[np.ndarray, Polygons, list[bool]]:
    """Cut ``box`` out, resize it to fit in ``size`` (h, w) keeping the
    aspect ratio, and pad bottom / right with zeros. Polygons entirely
    outside the box are dropped; the others are kept in full (targets clip
    them to the canvas)."""
    x0, y0, x1, y1 = box
    crop_h, crop_w = size
    bw, bh = max(1, x1 - x0), max(1, y1 - y0)
    s = min(crop_w / bw, crop_h / bh)
    nw, nh = max(1, round(bw * s)), max(1, round(bh * s))
    canvas = np.zeros((crop_h, crop_w, image.shape[2]), dtype=image.dtype)
    region = image[y0 : y0 + bh, x0 : x0 + bw]
    canvas[:nh, :nw] = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_LINEAR)[
        :crop_h, :crop_w
    ]
    out_polys: Polygons = []
    out_ign: list[bool] = []
    for poly, ig in zip(polygons, ignores):
        px0, py0 = poly.min(axis=0)
        px1, py1 = poly.max(axis=0)
        if px1 < x0 or px0 > x1 or py1 < y0 or py0 > y1:
            continue
        out_polys.append(((poly - np.array([x0, y0], np.float32)) * s).astype(np.float32))
        out_ign.append(bool(ig))
    return canvas, out_polys, out_ign


def pad_to_multiple(image: np.ndarray, divisor: int) -> np.ndarray:
    """Zero-pad bottom / right so both sides are multiples of ``divisor``."""
    h, w = image.shape[:2]
    ph, pw = -h % divisor, -w % divisor
    if ph == 0 and pw == 0:
        return image
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)


def normalize_hwc(
    image: np.ndarray, mean: Sequence[float] = MEAN_RGB, std: Sequence[float] = STD_RGB
) -> np.ndarray:
    """uint8 HWC RGB -> float32 HWC, (x - mean) / std per channel."""
    return (image.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def normalize(
    image: np.ndarray, mean: Sequence[float] = MEAN_RGB, std: Sequence[float] = STD_RGB
) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW, (x - mean) / std per channel."""
    return np.ascontiguousarray(normalize_hwc(image, mean, std).transpose(2, 0, 1))


def test_resize_size(
    height: int, width: int, long_side: int | None, short_side: int | None
) -> tuple[int, int]:
    """(h, w) after a keep-ratio resize under the long / short limits
    (None = that limit is not applied; both None = unchanged)."""
    factors = []
    if long_side is not None:
        factors.append(long_side / max(height, width))
    if short_side is not None:
        factors.append(short_side / min(height, width))
    if not factors:
        return height, width
    s = min(factors)
    return bounded_input_size(height, width, max(1, round(height * s)), max(1, round(width * s)))


def bounded_input_size(height: int, width: int, nh: int, nw: int) -> tuple[int, int]:
    """``(nh, nw)``, the network input size for an image of (height,
    width), refused when over the pixel limit of images
    (:func:`tcmbench.data.image_limits.max_image_pixels`): each side limit
    of the test settings is bounded, but ``short_side`` alone (or
    ``limit_type min``) scales a 100 x 10000 strip to gigapixels."""
    from tcmbench.data.image_limits import MAX_IMAGE_PIXELS_ENV, max_image_pixels

    limit = max_image_pixels()
    if nh * nw > limit:
        raise TcmbenchError(
            f"the test settings resize a {width} x {height} image to {nw} x {nh} "
            f"({nh * nw:,} pixels), over the limit of {limit:,} pixels ({MAX_IMAGE_PIXELS_ENV} "
            "raises it); lower test.short_side / limit_side_len or set long_side"
        )
    return nh, nw


# --------------------------------------------------------------------------
# Pipelines

Step = tuple[np.ndarray, Polygons, list[bool]]


@dataclass
class ColorJitter:
    # Photometric: runs on uint8 pixels, before normalisation (TrainTransform).
    photometric: ClassVar[bool] = True

    brightness: float = 32.0 / 255.0
    saturation: float = 0.5

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        return color_jitter(image, rng, self.brightness, self.saturation), polys, ign


@dataclass
class HFlip:
    prob: float = 0.5

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        if self.prob > 0 and rng.random() < self.prob:
            image, polys = hflip(image, polys)
        return image, polys, ign


@dataclass
class Rotate:
    max_angle: float = 10.0

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        if self.max_angle <= 0:
            return image, polys, ign
        image, polys = rotate(image, polys, float(rng.uniform(-self.max_angle, self.max_angle)))
        return image, polys, ign


@dataclass
class RandomScale:
    range: tuple[float, float] = (0.5, 3.0)

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        lo, hi = (float(x) for x in self.range)
        image, polys = rescale(image, polys, float(rng.uniform(lo, hi)))
        return image, polys, ign


@dataclass
class RandomCrop:
    """Text-aware crop resized to fit ``size`` (h, w) and zero-padded."""

    size: tuple[int, int] | int = (640, 640)
    min_side_ratio: float = 0.1
    tries: int = 10

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        box = text_aware_crop_box(image.shape[:2], polys, ign, rng, self.min_side_ratio, self.tries)
        return crop_and_fit(image, polys, ign, box, _pair(self.size))


AUGMENTATIONS: dict[str, type] = {
    "color_jitter": ColorJitter,
    "hflip": HFlip,
    "rotate": Rotate,
    "random_scale": RandomScale,
    "random_crop": RandomCrop,
}


def default_augment(crop_size: int | Sequence[int] = 640) -> list[dict[str, Any]]:
    """TCM.md section 7: jitter, flip 0.5, rotate 10, scale x[0.5, 3], crop."""
    h, w = _pair(crop_size)
    return [
        {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
        {"name": "hflip", "prob": 0.5},
        {"name": "rotate", "max_angle": 10.0},
        {"name": "random_scale", "range": [0.5, 3.0]},
        {"name": "random_crop", "size": [h, w]},
    ]


def _augmentation_factory(name: str) -> Callable[..., Any]:
    """The class of a built-in augmentation, or a plugin's factory
    (``register_augmentations``); a plugin may not shadow a built-in."""
    from tcmbench.contract.registry import augmentations

    contributed = augmentations()
    if name in AUGMENTATIONS:
        if name in contributed:
            raise TcmbenchError(f"a plugin registers augmentation {name!r}, a built-in name")
        return AUGMENTATIONS[name]
    if name not in contributed:
        known = ", ".join([*AUGMENTATIONS, *sorted(contributed)])
        raise TcmbenchError(f"unknown augmentation {name!r} in recipe; known: {known}")
    return contributed[name].resolve()


def build_augmentation(entry: Mapping[str, Any]) -> Any:
    """One pipeline step from ``{"name": ..., **params}``; unknown names or
    parameters are errors (a typo must not silently disable an augment)."""
    params = dict(entry)
    name = params.pop("name", None)
    factory = _augmentation_factory(str(name))
    signature = inspect.signature(factory)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    fields = {
        n
        for n, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = sorted(set(params) - fields) if not takes_any else []
    if unknown:
        raise TcmbenchError(
            f"augmentation {name!r}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise TcmbenchError(f"augmentation {name!r}: bad parameters {params} ({exc})") from exc


@dataclass
class Augmented:
    """One augmented training sample before target building."""

    image: np.ndarray  # float32 CHW, normalised
    polygons: Polygons
    ignores: list[bool]


#: Where :class:`TrainTransform` normalises (recipe ``train.normalize_at``):
#: ``after_photometric`` the official mmocr 0.x order (photometric steps on
#: uint8, then normalise, then geometric steps and padding on float32 with
#: fill 0 = the mean colour); ``end`` tcmbench's earlier order (every step on
#: uint8 with black fill, pad, normalise last: the shipped weights').
NORMALIZE_AT = ("after_photometric", "end")


def is_photometric(step: Any) -> bool:
    """A step that changes pixel values only (declares ``photometric =
    True``); it runs on uint8 RGB before normalisation. Every other step is
    geometric and, in the official order, gets float32 normalised pixels."""
    return bool(getattr(step, "photometric", False))


def _step_name(step: Any) -> str:
    return type(step).__name__


class TrainTransform:
    """The recipe's training augmentations in order, normalisation where
    ``normalize_at`` puts it (:data:`NORMALIZE_AT`), pad to the divisor.

    Recipe keys: ``train.augment`` (list of ``{"name", ...params}``; names in
    :data:`AUGMENTATIONS`; default :func:`default_augment` of
    ``train.crop_size``), ``train.pad_divisor`` (32), ``train.normalize_at``
    (``after_photometric``), ``normalize.mean`` / ``normalize.std``.
    """

    def __init__(
        self,
        steps: Sequence[Any],
        pad_divisor: int = 32,
        mean: Sequence[float] = MEAN_RGB,
        std: Sequence[float] = STD_RGB,
        normalize_at: str = "after_photometric",
    ) -> None:
        if normalize_at not in NORMALIZE_AT:
            raise TcmbenchError(
                f"recipe train.normalize_at must be one of {', '.join(NORMALIZE_AT)}, "
                f"got {normalize_at!r}"
            )
        self.steps = list(steps)
        self.pad_divisor = int(pad_divisor)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.normalize_at = normalize_at
        if normalize_at == "after_photometric":
            geometric = [s for s in self.steps if not is_photometric(s)]
            for i, step in enumerate(self.steps):
                if is_photometric(step) and any(not is_photometric(s) for s in self.steps[:i]):
                    raise TcmbenchError(
                        f"train.augment: photometric step {_step_name(step)} comes after the "
                        f"geometric step {_step_name(geometric[0])}; photometric steps run "
                        "first, on uint8 pixels, before normalisation (the official order): "
                        "move it up, or set train.normalize_at: end"
                    )

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any]) -> TrainTransform:
        train = recipe.get("train") or {}
        augment = train.get("augment")
        if augment is None:
            augment = default_augment(train.get("crop_size", 640))
        mean, std = normalization(recipe)
        return cls(
            [build_augmentation(a) for a in augment],
            int(train.get("pad_divisor", 32)),
            mean,
            std,
            str(train.get("normalize_at", "after_photometric")),
        )

    def __call__(
        self,
        image: np.ndarray,
        polygons: Polygons,
        ignores: Sequence[bool],
        rng: np.random.Generator,
    ) -> Augmented:
        polys = [np.asarray(p, np.float32) for p in polygons]
        ign = [bool(x) for x in ignores]
        img = image
        normalized = False
        for step in self.steps:
            if (
                not normalized
                and self.normalize_at == "after_photometric"
                and not is_photometric(step)
            ):
                img, normalized = normalize_hwc(img, self.mean, self.std), True
            img, polys, ign = step(img, polys, ign, rng)
        if not normalized:
            if self.normalize_at == "end":
                img = pad_to_multiple(img, self.pad_divisor)
            img = normalize_hwc(img, self.mean, self.std)
        # float32 after normalising: the padding is 0, the mean colour (with
        # normalize_at end the image was padded black above, as before).
        img = pad_to_multiple(img, self.pad_divisor)
        return Augmented(np.ascontiguousarray(img.transpose(2, 0, 1)), polys, ign)


#: PaddleOCR's resize pads images whose height + width is below this to at
#: least :data:`LIMIT_SIDE_TINY_SIDE` on each side (bottom right, black).
LIMIT_SIDE_TINY_SUM = 64
LIMIT_SIDE_TINY_SIDE = 32


def limit_side_size(
    height: int, width: int, limit_side_len: int, limit_type: str, divisor: int = 32
) -> tuple[int, int]:
    """(h, w) of PaddleOCR's ``DetResizeForTest`` (resize type 0) for an
    image of (height, width): ``max`` scales the longer side down to
    ``limit_side_len`` when it exceeds it (never up), ``min`` the shorter
    side up to it when below; each side is then truncated to an integer and
    rounded to the nearest multiple of ``divisor`` (Python's ``round``,
    halves to even, as PaddleOCR; at least one ``divisor``), so x and y get
    slightly different scales."""
    if limit_type == "max":
        longer = max(height, width)
        ratio = limit_side_len / longer if longer > limit_side_len else 1.0
    elif limit_type == "min":
        shorter = min(height, width)
        ratio = limit_side_len / shorter if shorter < limit_side_len else 1.0
    else:
        raise ValueError(f"limit_type must be 'max' or 'min', got {limit_type!r}")
    h, w = int(height * ratio), int(width * ratio)
    h = max(int(round(h / divisor) * divisor), divisor)
    w = max(int(round(w / divisor) * divisor), divisor)
    return bounded_input_size(height, width, h, w)


class InferenceTransform:
    """Resize under the recipe's limits, normalise, pad with 0.

    Recipe keys: ``test.rule`` (``keep_ratio``, the default, or
    ``limit_side``), ``normalize``, and per rule:

    - ``keep_ratio``: ``test.long_side`` / ``test.short_side`` (either may be
      None = no limit; both None = original size), ``test.pad_divisor``
      (32). The scale is min(long_side / long, short_side / short),
      upscaling included, as mmocr's ``Resize(keep_ratio=True)``;
    - ``limit_side``: PaddleOCR's resize (:func:`limit_side_size`;
      ``test.limit_side_len``, ``test.limit_type``, ``test.divisor``), the
      rule its PP-OCR detectors are measured with. Sides come out as
      multiples of ``divisor``, so there is no padding except PaddleOCR's
      for tiny images (height + width below 64: padded to 32 x 32 first);
      the returned scale refers to that padded image.
    """

    def __init__(
        self,
        long_side: int | None = None,
        short_side: int | None = None,
        pad_divisor: int = 32,
        mean: Sequence[float] = MEAN_RGB,
        std: Sequence[float] = STD_RGB,
        *,
        rule: str = "keep_ratio",
        limit_side_len: int = 960,
        limit_type: str = "max",
        divisor: int = 32,
    ) -> None:
        if rule not in ("keep_ratio", "limit_side"):
            raise TcmbenchError(f"recipe test.rule must be keep_ratio or limit_side, got {rule!r}")
        self.long_side = long_side
        self.short_side = short_side
        self.pad_divisor = int(pad_divisor)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.rule = rule
        self.limit_side_len = int(limit_side_len)
        self.limit_type = limit_type
        self.divisor = int(divisor)

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any]) -> InferenceTransform:
        test = _recipe_part(recipe, "test")
        mean, std = normalization(recipe)
        long_side, short_side = test.get("long_side"), test.get("short_side")
        return cls(
            None if long_side is None else int(long_side),
            None if short_side is None else int(short_side),
            int(test.get("pad_divisor", 32)),
            mean,
            std,
            rule=str(test.get("rule", "keep_ratio")),
            limit_side_len=int(test.get("limit_side_len", 960)),
            limit_type=str(test.get("limit_type", "max")),
            divisor=int(test.get("divisor", 32)),
        )

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        if self.rule == "limit_side":
            if height + width < LIMIT_SIDE_TINY_SUM:
                height = max(LIMIT_SIDE_TINY_SIDE, height)
                width = max(LIMIT_SIDE_TINY_SIDE, width)
            return limit_side_size(
                height, width, self.limit_side_len, self.limit_type, self.divisor
            )
        return test_resize_size(height, width, self.long_side, self.short_side)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """-> (float32 CHW padded image, (sx, sy) = resized / original)."""
        h, w = image.shape[:2]
        if self.rule == "limit_side" and h + w < LIMIT_SIDE_TINY_SUM:
            padded = np.zeros(
                (max(LIMIT_SIDE_TINY_SIDE, h), max(LIMIT_SIDE_TINY_SIDE, w), 3), np.uint8
            )
            padded[:h, :w] = image
            image = padded
            h, w = image.shape[:2]
        nh, nw = self.size_for(h, w)
        img = (
            image
            if (nh, nw) == (h, w)
            else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        )
        x = normalize(img, self.mean, self.std)
        # Pad after normalising, with 0: mmocr's Normalize -> Pad order, and
        # the value batches are padded with.
        ph, pw = -nh % self.pad_divisor, -nw % self.pad_divisor
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)))
        return x, (nw / w, nh / h)


def polygon_area(poly: np.ndarray) -> float:
    """Absolute shoelace area (used by tests and sanity checks)."""
    x, y = poly[:, 0].astype(np.float64), poly[:, 1].astype(np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)
