"""PANet's training augmentations, registered through
``register_augmentations`` (recipes name them in ``train.augment``).

- ``pan_scale_jitter`` (mmocr's ``ScaleAspectJitter`` as PANet's configs
  use it): resize so that the short side becomes ``short_side`` x a ratio
  drawn from ``ratio_range`` (the long side capped at ``long_side``), then
  stretch the aspect ratio by a factor drawn from ``aspect_range`` (h x
  sqrt(a), w / sqrt(a)). Unlike the built-in ``random_scale`` the result
  does not depend on the image's original size, which is what lets one
  recipe train on datasets of very different resolutions.
- ``pan_crop_instances`` (the idea of mmocr's ``RandomCropInstances``): a
  fixed-size crop (no resizing) that, with probability ``text_prob``,
  contains a randomly chosen cared-for instance in full. Among the crop
  positions that do, one whose edges cut no instance is preferred; when
  every position cuts some word, the cut instances become don't-care
  (``ignore``) so the model is never taught that half a word is a whole
  one, nor that it is background. Smaller images are zero-padded
  bottom / right to the crop size. mmocr drives the crop with its kernel
  map; here the polygons play that role because targets are built after
  the augmentations.

Every random number comes from the ``rng`` the core passes in (a function
of the run's seed and the sample's draw), so a resumed run reproduces the
same crops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Polygons = list[np.ndarray]
# A polygon reaching this far (pixels) past a crop edge still counts as
# whole: annotations of words touching the image border often overshoot it.
_TOL = 1.0
Step = tuple[np.ndarray, Polygons, list[bool]]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, (int, float)):
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def _range(value: Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ValueError(f"{name} must be [low, high] with 0 < low <= high, got {list(value)}")
    return lo, hi


@dataclass
class ScaleJitter:
    """``pan_scale_jitter``: short side -> short_side x U(ratio_range),
    long side <= long_side, aspect stretched by U(aspect_range)."""

    short_side: int = 736
    ratio_range: Sequence[float] = (0.7, 1.3)
    aspect_range: Sequence[float] = (0.9, 1.1)
    long_side: int | None = 3000

    def __post_init__(self) -> None:
        if int(self.short_side) < 1:
            raise ValueError(f"short_side must be >= 1, got {self.short_side}")
        if self.long_side is not None and int(self.long_side) < 1:
            raise ValueError(f"long_side must be >= 1 or None, got {self.long_side}")
        self._ratio = _range(self.ratio_range, "ratio_range")
        self._aspect = _range(self.aspect_range, "aspect_range")

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        h, w = image.shape[:2]
        scale = float(self.short_side) * rng.uniform(*self._ratio) / min(h, w)
        if self.long_side is not None and max(h, w) * scale > float(self.long_side):
            scale = float(self.long_side) / max(h, w)
        aspect = math.sqrt(rng.uniform(*self._aspect))
        nh, nw = max(1, round(h * scale * aspect)), max(1, round(w * scale / aspect))
        out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        factor = np.array([nw / w, nh / h], dtype=np.float32)
        return out, [np.asarray(p, np.float32) * factor for p in polys], list(ign)


def _cut(positions: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For every crop edge in ``positions``: does it fall strictly inside
    one of the spans [lo, hi]? (vectorised over edges and spans)"""
    if lo.size == 0:
        return np.zeros(positions.shape, dtype=bool)
    p = positions[:, None].astype(np.float64)
    return np.asarray(((p > lo[None, :]) & (p < hi[None, :])).any(axis=1), dtype=bool)


def _pick_start(
    length: int,
    window: int,
    need: tuple[float, float] | None,
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
) -> int:
    """Start of a ``window``-long crop along an axis of ``length``: it
    contains the span ``need`` when possible, and preferably cuts no span
    (lo, hi)."""
    last = max(0, length - window)
    first_ok, last_ok = 0, last
    if need is not None:
        a, b = need
        first_ok = int(np.clip(math.ceil(b) - window, 0, last))
        last_ok = int(np.clip(math.floor(a), 0, last))
        if first_ok > last_ok:  # the instance is longer than the crop
            first_ok = last_ok = int(np.clip(math.floor((a + b - window) / 2), 0, last))
    starts = np.arange(first_ok, last_ok + 1)
    clean = starts[~(_cut(starts, lo, hi) | _cut(starts + window, lo, hi))]
    pool = clean if clean.size else starts
    return int(pool[rng.integers(pool.size)])


@dataclass
class CropInstances:
    """``pan_crop_instances``: a ``size`` (h, w) crop, see the module doc."""

    size: int | Sequence[int] = 736
    text_prob: float = 0.625

    def __post_init__(self) -> None:
        h, w = _pair(self.size)
        if h < 1 or w < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if not 0.0 <= float(self.text_prob) <= 1.0:
            raise ValueError(f"text_prob must be in [0, 1], got {self.text_prob}")

    def __call__(
        self, image: np.ndarray, polys: Polygons, ign: list[bool], rng: np.random.Generator
    ) -> Step:
        out_h, out_w = _pair(self.size)
        h, w = image.shape[:2]
        ch, cw = min(out_h, h), min(out_w, w)
        boxes = np.array(
            [[*np.min(p, axis=0), *np.max(p, axis=0)] for p in polys], dtype=np.float64
        ).reshape(-1, 4)
        care = [i for i, ig in enumerate(ign) if not ig]
        anchor = None
        if care and rng.random() < float(self.text_prob):
            anchor = boxes[care[int(rng.integers(len(care)))]]
        x0 = _pick_start(
            w, cw, None if anchor is None else (anchor[0], anchor[2]), boxes[:, 0], boxes[:, 2], rng
        )
        y0 = _pick_start(
            h, ch, None if anchor is None else (anchor[1], anchor[3]), boxes[:, 1], boxes[:, 3], rng
        )
        canvas = np.zeros((out_h, out_w) + image.shape[2:], dtype=image.dtype)
        canvas[:ch, :cw] = image[y0 : y0 + ch, x0 : x0 + cw]
        shift = np.array([x0, y0], dtype=np.float32)
        out_polys: Polygons = []
        out_ign: list[bool] = []
        for poly, box, ig in zip(polys, boxes, ign):
            if box[2] <= x0 or box[0] >= x0 + cw or box[3] <= y0 or box[1] >= y0 + ch:
                continue  # entirely outside the crop
            inside = (
                box[0] >= x0 - _TOL
                and box[2] <= x0 + cw + _TOL
                and box[1] >= y0 - _TOL
                and box[3] <= y0 + ch + _TOL
            )
            out_polys.append(np.asarray(poly, np.float32) - shift)
            out_ign.append(bool(ig) or not inside)
        return canvas, out_polys, out_ign
