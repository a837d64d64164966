"""A deterministic stress set for the evaluation protocols.

10,000 images x 50 curved 14-point text polygons (CTW1500 style: 7 points
along the top edge, 7 back along the bottom edge) with realistic overlaps:
text lines are laid out on a 10 x 6 grid and the wider ones collide with a
neighbour, about 10% of the ground truth is don't-care, detections are
perturbed copies of the ground truth (shifted, rescaled, re-bent; best IoU
mostly 0.5-0.9), about 10% of the text is missed, some detections merge two
neighbours and a few are false positives anywhere in the image. Measured
against the real files: 26% of GT polygons overlap another GT (CTW1500
test: 28%, Total-Text: 20%) and 34% of detections touch two or more GTs
(CTW1500 example detections: 20%, Total-Text baseline: 21%), so the set is
a little harsher than real data.

Everything is generated per image from ``(seed, image index)``, so the set
is identical on every machine, any image can be regenerated alone, and a
consumer that streams :func:`stress_images` holds one image at a time: the
memory an evaluator needs must not grow with the number of images.

Used by ``benchmarks/bench_eval.py`` (ctw1500-iou) and by the DetEval
benchmark (totaltext-deteval); both import :func:`stress_images` or
:func:`stress_inputs`. Polygons are in the orientation the official curved
script accepts (negative signed area in image coordinates, as the CTW1500
ground truth), all simple, so ``validate=true`` passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tcmbench.data.schema import Instance, Prediction

IMAGE_W, IMAGE_H = 1600, 1200
ROWS, COLS = 10, 6


def _curved_polygons(
    cx: np.ndarray,
    cy: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    bend: np.ndarray,
    angle: np.ndarray,
    n_points: int,
) -> np.ndarray:
    """(k, n_points, 2) curved bands: top edge left->right, bottom edge back.

    The band follows a parabola of height ``bend`` and is rotated by
    ``angle`` about its centre; the thickness ``h`` is kept along the normal,
    so the polygon stays simple once the bend is limited below.
    """
    half = n_points // 2
    # Keep the radius of curvature above the thickness (w^2 / (8 |bend|) > h)
    # or the inner edge would fold over itself.
    limit = 0.8 * w * w / (8.0 * np.maximum(h, 1e-6))
    bend = np.clip(bend, -limit, limit)
    t = np.linspace(-0.5, 0.5, half)[None, :]  # (1, half)
    x = w[:, None] * t
    y = bend[:, None] * (4.0 * t * t - 1.0)
    # Normal of the centre line y = bend*(4t^2-1), x = w t.
    dy_dx = 8.0 * bend[:, None] * t / np.maximum(w[:, None], 1e-6)
    norm = np.sqrt(1.0 + dy_dx * dy_dx)
    nx, ny = -dy_dx / norm, 1.0 / norm
    top = np.stack([x - nx * h[:, None] / 2, y - ny * h[:, None] / 2], -1)
    bottom = np.stack([x + nx * h[:, None] / 2, y + ny * h[:, None] / 2], -1)[:, ::-1]
    pts = np.concatenate([top, bottom], axis=1)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rx = pts[..., 0] * c - pts[..., 1] * s + cx[:, None]
    ry = pts[..., 0] * s + pts[..., 1] * c + cy[:, None]
    poly = np.stack([rx, ry], -1)
    # Orientation of the official curved script: negative shoelace area.
    signed = 0.5 * np.sum(
        poly[:, :, 0] * np.roll(poly[:, :, 1], -1, 1)
        - np.roll(poly[:, :, 0], -1, 1) * poly[:, :, 1],
        1,
    )
    flip = signed > 0
    poly[flip] = poly[flip, ::-1]
    return np.round(poly, 1)


def stress_image(
    index: int, *, seed: int = 0, n_polys: int = 50, n_points: int = 14
) -> tuple[str, list[Instance], list[Prediction]]:
    """Ground truth and detections of stress image ``index`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    n = n_polys
    cell_w, cell_h = IMAGE_W / COLS, IMAGE_H / ROWS
    slots = rng.permutation(ROWS * COLS)[:n]
    row, col = slots // COLS, slots % COLS
    cx = (col + 0.5) * cell_w + rng.normal(0, 0.08 * cell_w, n)
    cy = (row + 0.5) * cell_h + rng.normal(0, 0.1 * cell_h, n)
    w = rng.uniform(0.5, 1.15, n) * cell_w  # wide ones collide with a neighbour
    h = rng.uniform(0.25, 0.6, n) * cell_h
    bend = rng.uniform(-0.35, 0.35, n) * h * 2
    angle = rng.normal(0, 0.08, n)
    gt_poly = _curved_polygons(cx, cy, w, h, bend, angle, n_points)
    dont_care = rng.random(n) < 0.1
    gt = [
        Instance(
            polygon=gt_poly[i], ignore=bool(dont_care[i]), text="###" if dont_care[i] else "word"
        )
        for i in range(n)
    ]

    detected = rng.random(n) >= 0.1
    k = int(detected.sum())
    quality = rng.uniform(0, 1, k)
    jitter = 0.03 + 0.11 * (1 - quality)
    dcx = cx[detected] + rng.normal(0, 1, k) * jitter * w[detected]
    dcy = cy[detected] + rng.normal(0, 1, k) * jitter * h[detected]
    dw = w[detected] * (1 + rng.normal(0, 1, k) * jitter)
    dh = h[detected] * (1 + rng.normal(0, 1.5, k) * jitter)
    dbend = bend[detected] + rng.normal(0, 1, k) * jitter * h[detected]
    dangle = angle[detected] + rng.normal(0, 0.3, k) * jitter
    # A few detections merge their text with the right-hand neighbour.
    merge = rng.random(k) < 0.05
    dw = np.where(merge, dw * 2.0, dw)
    dcx = np.where(merge, dcx + 0.5 * cell_w, dcx)
    n_fp = int(rng.integers(2, 8))
    fcx, fcy = rng.uniform(0, IMAGE_W, n_fp), rng.uniform(0, IMAGE_H, n_fp)
    fw, fh = rng.uniform(0.2, 0.8, n_fp) * cell_w, rng.uniform(0.2, 0.6, n_fp) * cell_h
    fbend, fangle = rng.uniform(-0.5, 0.5, n_fp) * fh, rng.normal(0, 0.1, n_fp)
    det_poly = _curved_polygons(
        np.concatenate([dcx, fcx]),
        np.concatenate([dcy, fcy]),
        np.abs(np.concatenate([dw, fw])) + 4,
        np.abs(np.concatenate([dh, fh])) + 4,
        np.concatenate([dbend, fbend]),
        np.concatenate([dangle, fangle]),
        n_points,
    )
    scores = np.concatenate([0.45 + 0.55 * quality, rng.uniform(0.3, 0.7, n_fp)])
    order = rng.permutation(len(det_poly))  # detectors do not list in GT order
    preds = [Prediction(polygon=det_poly[i], score=float(round(scores[i], 4))) for i in order]
    return f"stress_{index}", gt, preds


def stress_images(
    n_images: int = 10_000, *, seed: int = 0, n_polys: int = 50, n_points: int = 14
) -> Iterator[tuple[str, list[Instance], list[Prediction]]]:
    """Stream ``(id, gt instances, predictions)`` image by image."""
    for i in range(n_images):
        yield stress_image(i, seed=seed, n_polys=n_polys, n_points=n_points)


class _StressGT(Mapping[str, list[Instance]]):
    """Ground truth generated on access; the image's detections are kept in
    a one-slot cache for the predictions mapping, so an evaluator that reads
    an image's GT then its predictions generates each image once."""

    def __init__(self, n_images: int, kwargs: dict[str, Any]) -> None:
        self._n = n_images
        self._kwargs = kwargs
        self.cache: tuple[int, list[Prediction]] | None = None

    def index(self, key: object) -> int | None:
        if not isinstance(key, str) or not key.startswith("stress_"):
            return None
        try:
            i = int(key[len("stress_") :])
        except ValueError:
            return None
        return i if 0 <= i < self._n else None

    def __getitem__(self, key: str) -> list[Instance]:
        i = self.index(key)
        if i is None:
            raise KeyError(key)
        _, gt, preds = stress_image(i, **self._kwargs)
        self.cache = (i, preds)
        return gt

    def __iter__(self) -> Iterator[str]:
        return (f"stress_{i}" for i in range(self._n))

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        return self.index(key) is not None


class _StressPredictions(Mapping[str, list[Prediction]]):
    """Predictions regenerated on access (or taken from the GT's cache)."""

    def __init__(self, gt: _StressGT) -> None:
        self._gt = gt

    def __getitem__(self, key: str) -> list[Prediction]:
        i = self._gt.index(key)
        if i is None:
            raise KeyError(key)
        cache = self._gt.cache
        if cache is not None and cache[0] == i:
            return cache[1]
        return stress_image(i, **self._gt._kwargs)[2]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gt)

    def __len__(self) -> int:
        return len(self._gt)

    def __contains__(self, key: object) -> bool:
        return key in self._gt


def stress_inputs(
    n_images: int = 10_000, *, seed: int = 0, n_polys: int = 50, n_points: int = 14
) -> tuple[Mapping[str, list[Instance]], Mapping[str, list[Prediction]]]:
    """``(gt, predictions)`` for ``tcmbench.eval.evaluate``, both lazy
    mappings: nothing is held per image, so an evaluator that works image by
    image keeps its memory flat. Reading ``gt[id]`` then ``predictions[id]``
    generates the image once (about 1 ms)."""
    gt = _StressGT(n_images, {"seed": seed, "n_polys": n_polys, "n_points": n_points})
    return gt, _StressPredictions(gt)
