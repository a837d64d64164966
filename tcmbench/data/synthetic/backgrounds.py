"""Textured backgrounds with non-text clutter.

A detector trained on flat backgrounds learns "any edge is text". Scene
images have gradients, surfaces, shapes and, above all, strokes that look a
little like letters (bars, fences, wires, rings). These backgrounds mix all
of them so the detector must learn what text looks like, not what an edge
looks like. Everything is drawn from the ``numpy`` Generator it is given:
the same generator state gives the same pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear or radial blend of two colours, float32 H x W x 3."""
    c0, c1 = random_colour(rng).astype(np.float32), random_colour(rng).astype(np.float32)
    xx = np.arange(width, dtype=np.float32)[None, :]
    yy = np.arange(height, dtype=np.float32)[:, None]
    if rng.random() < 0.7:
        angle = rng.uniform(0, 2 * math.pi)
        t = xx * np.float32(math.cos(angle)) + yy * np.float32(math.sin(angle))
    else:
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        t = np.hypot(xx - np.float32(cx), yy - np.float32(cy))
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return c0[None, None, :] + (c1 - c0)[None, None, :] * t[..., None]


def _low_frequency_colour(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth colour variation: a coarse random grid upsampled (blurred blobs)."""
    gw, gh = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    grid = rng.uniform(0, 255, size=(gh, gw, 3)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A zero-mean luminance texture (grain, stripes, bricks, wood), float32 H x W."""
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:  # grain
        noise = rng.normal(0, 1, size=(height, width)).astype(np.float32)
        sigma = float(rng.uniform(0.5, 2.0))
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        tex = blurred / max(float(blurred.std()), 1e-6)
    elif kind == 1:  # stripes
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        tex = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
    elif kind == 2:  # bricks / tiles
        bw, bh = int(rng.integers(20, 70)), int(rng.integers(10, 35))
        row = (yy // bh).astype(np.int32)
        shifted = xx + (row % 2) * (bw / 2)
        mortar = ((yy % bh) < 2) | ((shifted % bw) < 2)
        tex = np.where(mortar, -1.5, 0.5).astype(np.float32)
    else:  # wood / marble: sine of distorted coordinates
        warp = cv2.resize(
            rng.normal(0, 1, size=(6, 6)).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
        period = rng.uniform(8, 30)
        tex = np.sin(2 * math.pi * (yy + 15 * warp) / period)
    return tex.astype(np.float32)


def _shapes(rng: np.random.Generator, canvas: np.ndarray, count: int) -> None:
    """Filled rectangles, ellipses and polygons, some translucent, some blurred."""
    height, width = canvas.shape[:2]
    for _ in range(count):
        layer = np.zeros((height, width), np.uint8)
        kind = int(rng.integers(3))
        if kind == 0:
            x0, y0 = (
                rng.integers(-width // 4, width, size=1)[0],
                rng.integers(-height // 4, height, size=1)[0],
            )
            w, h = (
                rng.integers(width // 8, width // 2 + 1),
                rng.integers(height // 8, height // 2 + 1),
            )
            cv2.rectangle(layer, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), 255, -1)
        elif kind == 1:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3)))
            cv2.ellipse(
                layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA
            )
        else:
            n = int(rng.integers(3, 7))
            pts = np.stack(
                [rng.uniform(-0.1, 1.1, n) * width, rng.uniform(-0.1, 1.1, n) * height], 1
            )
            cv2.fillPoly(layer, [pts.astype(np.int32)], 255, cv2.LINE_AA)
        blur = float(rng.uniform(4, 20)) if rng.random() < 0.35 else 0.0
        opacity = float(rng.uniform(0.3, 1.0))
        colour = random_colour(rng).astype(np.float32)
        x, y, w, h = cv2.boundingRect(layer)
        if w == 0 or h == 0:
            continue
        grow = math.ceil(3 * blur)
        rows = slice(max(0, y - grow), min(height, y + h + grow))
        cols = slice(max(0, x - grow), min(width, x + w + grow))
        alpha: np.ndarray = layer[rows, cols].astype(np.float32) * np.float32(opacity / 255.0)
        if blur:
            alpha = cv2.GaussianBlur(alpha, (0, 0), blur, borderType=cv2.BORDER_REPLICATE)
        roi = canvas[rows, cols]
        roi -= (roi - colour[None, None, :]) * alpha[..., None]


def _distractors(rng: np.random.Generator, canvas: np.ndarray, count: int) -> None:
    """Strokes that are not text: lines, wires, fences, rings, dots, zigzags.

    Their widths overlap the stroke widths of real glyphs, so a detector
    cannot separate them from text by thickness alone.
    """
    height, width = canvas.shape[:2]
    for _ in range(count):
        colour = tuple(float(c) for c in random_colour(rng))
        thickness = int(rng.integers(1, 6))
        kind = int(rng.integers(6))
        if kind == 0:  # long straight line
            p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, p0, p1, colour, thickness, cv2.LINE_AA)
        elif kind == 1:  # fence: parallel bars
            n = int(rng.integers(3, 9))
            x = int(rng.integers(0, width))
            y0 = int(rng.integers(0, height))
            length = int(rng.integers(15, 80))
            gap = int(rng.integers(5, 18))
            for i in range(n):
                cv2.line(
                    canvas,
                    (x + i * gap, y0),
                    (x + i * gap, y0 + length),
                    colour,
                    thickness,
                    cv2.LINE_AA,
                )
        elif kind == 2:  # rings
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(canvas, centre, int(rng.integers(5, 40)), colour, thickness, cv2.LINE_AA)
        elif kind == 3:  # dotted row
            n = int(rng.integers(4, 15))
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            step = int(rng.integers(6, 16))
            radius = int(rng.integers(1, 4))
            for i in range(n):
                cv2.circle(canvas, (x + i * step, y), radius, colour, -1, cv2.LINE_AA)
        elif kind == 4:  # zigzag / scribble
            n = int(rng.integers(3, 9))
            px, py = rng.uniform(0, width), rng.uniform(0, height)
            pts = [(px, py)]
            for _ in range(n):
                px += rng.uniform(-30, 30)
                py += rng.uniform(-30, 30)
                pts.append((px, py))
            cv2.polylines(canvas, [np.array(pts, np.int32)], False, colour, thickness, cv2.LINE_AA)
        else:  # wire: a sagging curve across the image
            xs = np.linspace(0, width, 50)
            base_y = rng.uniform(0, height)
            sag = rng.uniform(-40, 40)
            ys = base_y + sag * np.sin(np.pi * xs / width) + rng.uniform(-0.3, 0.3) * xs
            cv2.polylines(
                canvas,
                [np.stack([xs, ys], 1).astype(np.int32)],
                False,
                colour,
                thickness,
                cv2.LINE_AA,
            )


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An RGB background, uint8 H x W x 3."""
    canvas = _gradient(rng, width, height)
    if rng.random() < 0.7:
        blend = float(rng.uniform(0.2, 0.7))
        canvas = canvas * (1 - blend) + _low_frequency_colour(rng, width, height) * blend
    canvas = np.ascontiguousarray(canvas, dtype=np.float32)
    _shapes(rng, canvas, int(rng.integers(0, 7)))
    if rng.random() < 0.75:
        canvas += _texture(rng, width, height)[..., None] * float(rng.uniform(3, 18))
    _distractors(rng, canvas, int(rng.integers(1, 9)))
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.5, 1.5)))
    return np.clip(canvas, 0, 255).astype(np.uint8)
