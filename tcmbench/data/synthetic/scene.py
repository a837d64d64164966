"""One synthetic scene: a background, words placed on it, their polygons.

Placement is rejection sampling: a word is laid out (cheap: a polygon and a
few small glyph patches), moved to a random spot, and kept only when its
polygon lies inside the image and stays a gap of about half a text height
away from every word already placed. Words are therefore always separable,
which keeps the task learnable for a small detector.

The text colour is chosen against the pixels under the word so its
luminance contrast is high (legible words) or, for the don't-care words,
deliberately tiny; busy spots get a sign plate or an outline stroke, as
real signage does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from shapely.geometry import Polygon as ShapelyPolygon

from tcmbench.data.synthetic.backgrounds import make_background
from tcmbench.data.synthetic.render import (
    WordShape,
    curved_word,
    font_size_for_height,
    perspective_word,
    rasterize,
    straight_word,
    translation,
)
from tcmbench.data.synthetic.words import sample_word

IGNORE_TEXT = "###"
KINDS = ("horizontal", "rotated", "perspective", "curved")
KIND_PROBABILITIES = (0.4, 0.25, 0.2, 0.15)
# Text heights (word box, pixels) of legible words, per kind: perspective
# shrinks the far end, so it starts taller.
HEIGHT_RANGE = {
    "horizontal": (15, 58),
    "rotated": (15, 50),
    "perspective": (22, 58),
    "curved": (18, 50),
}
MIN_LEGIBLE_CONTRAST = 70  # luminance levels (0-255)
IGNORED_WORD_PROBABILITY = 0.2  # chance that an image has 1-2 don't-care words
EDGE_MARGIN = 3  # pixels between any polygon and the image border
PLACEMENT_ATTEMPTS = 25


@dataclass
class PlacedWord:
    """A word in the image: what was drawn and how it is annotated."""

    rendered_text: str
    # Continuous image coordinates, clockwise: the image spans [0, W] x [0, H]
    # and pixel (i, j) covers [i, i+1) x [j, j+1), as in Pillow. Annotations
    # shift by -0.5 to OpenCV's convention (pixel centres on integers).
    polygon: np.ndarray
    ignore: bool
    kind: str
    coverage: np.ndarray  # float32 H x W in [0, 1]: glyphs plus stroke
    colour: np.ndarray  # fill colour, 0-255

    @property
    def text(self) -> str:
        """The annotation text: ``###`` for don't-care words (ICDAR convention)."""
        return IGNORE_TEXT if self.ignore else self.rendered_text


@dataclass
class Scene:
    """A composed day-time scene before camera effects.

    ``background`` is the scene without glyphs (plates included), ``image``
    with them; tests compare the two to check that polygons cover the text.
    """

    background: np.ndarray
    image: np.ndarray
    words: list[PlacedWord] = field(default_factory=list)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def colour_with_luminance(rng: np.random.Generator, target: float) -> np.ndarray:
    """A random hue mixed towards black or white until its luminance is ``target``."""
    colour = rng.uniform(0, 255, size=3)
    lum = float(luminance(colour))
    if target <= lum:
        colour = colour * (target / max(lum, 1e-6))
    else:
        colour = colour + (255.0 - colour) * ((target - lum) / max(255.0 - lum, 1e-6))
    return np.clip(colour, 0, 255)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _layout(rng: np.random.Generator, kind: str, height: float, text: str) -> WordShape:
    size = font_size_for_height(height)
    stroke = 0
    if kind != "curved" and rng.random() < 0.2:
        stroke = max(1, round(height * rng.uniform(0.03, 0.07)))
    if kind == "horizontal":
        shear = float(rng.uniform(0.15, 0.3)) if rng.random() < 0.15 else 0.0
        return straight_word(text, size, stroke, shear=shear, kind="horizontal")
    if kind == "rotated":
        angle = float(rng.uniform(-45, 45))
        shear = float(rng.uniform(0.1, 0.25)) if rng.random() < 0.1 else 0.0
        return straight_word(text, size, stroke, angle_deg=angle, shear=shear, kind="rotated")
    if kind == "perspective":
        return perspective_word(text, size, stroke, rng, angle_deg=float(rng.uniform(-15, 15)))
    return curved_word(text, size, 0, rng, angle_deg=float(rng.uniform(-15, 15)))


def _sample_text(rng: np.random.Generator, kind: str) -> str:
    # Curves need a few glyphs to show their bend.
    for _ in range(20):
        word = sample_word(rng)
        if kind != "curved" or len(word) >= 4:
            return word
    return "street"


def _polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies in ``polygon`` (continuous coordinates, see
    :class:`PlacedWord`; OpenCV puts pixel centres on integers)."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def compose_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """Background plus 2-8 legible words and, in some images, 1-2 don't-care
    words (tiny, or of almost no contrast)."""
    background = make_background(rng, width, height).astype(np.float32)
    image = background.copy()
    words: list[PlacedWord] = []
    occupied: list[ShapelyPolygon] = []

    plan: list[str] = ["legible"] * int(rng.integers(2, 9))
    if rng.random() < IGNORED_WORD_PROBABILITY:
        plan += ["tiny" if rng.random() < 0.5 else "faint" for _ in range(int(rng.integers(1, 3)))]

    for role in plan:
        placed = _place_word(rng, role, width, height, occupied)
        if placed is None:
            continue
        shape, geometry = placed
        word = _paint_word(rng, role, shape, geometry, background, image)
        words.append(word)
        occupied.append(geometry)

    return Scene(
        background=np.clip(background + 0.5, 0, 255).astype(np.uint8),
        image=np.clip(image + 0.5, 0, 255).astype(np.uint8),
        words=words,
    )


def _place_word(
    rng: np.random.Generator, role: str, width: int, height: int, occupied: list[ShapelyPolygon]
) -> tuple[WordShape, ShapelyPolygon] | None:
    for attempt in range(PLACEMENT_ATTEMPTS):
        if role == "tiny":
            kind = "horizontal" if rng.random() < 0.7 else "rotated"
            text_height = float(rng.uniform(6, 9.5))
        else:
            kind = KINDS[int(rng.choice(len(KINDS), p=KIND_PROBABILITIES))]
            low, high = HEIGHT_RANGE[kind]
            if role == "faint":
                high = min(high, 32)
            # Shrink after repeated failures: a long word may not fit big.
            text_height = max(low, _log_uniform(rng, low, high) * (0.93**attempt))
        text = _sample_text(rng, kind)
        shape = _layout(rng, kind, text_height, text)
        xmin, ymin = shape.polygon.min(axis=0)
        xmax, ymax = shape.polygon.max(axis=0)
        lo_x, hi_x = EDGE_MARGIN - xmin, width - EDGE_MARGIN - xmax
        lo_y, hi_y = EDGE_MARGIN - ymin, height - EDGE_MARGIN - ymax
        if hi_x < lo_x or hi_y < lo_y:
            continue
        moved = shape.moved(
            translation(float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
        )
        geometry = ShapelyPolygon(moved.polygon)
        if not geometry.is_valid:
            continue
        gap = 0.45 * shape.height + 4
        if any(geometry.distance(other) < gap for other in occupied):
            continue
        return moved, geometry
    return None


def _roi(polygon: np.ndarray, pad: float, width: int, height: int) -> tuple[slice, slice]:
    """Row and column slices of the polygon's bounding box grown by ``pad``:
    compositing only there keeps a word's cost independent of image size."""
    x0 = max(0, math.floor(polygon[:, 0].min() - pad))
    y0 = max(0, math.floor(polygon[:, 1].min() - pad))
    x1 = min(width, math.ceil(polygon[:, 0].max() + pad) + 1)
    y1 = min(height, math.ceil(polygon[:, 1].max() + pad) + 1)
    return slice(y0, y1), slice(x0, x1)


def _blend(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """canvas <- canvas * (1 - alpha) + colour * alpha, in place."""
    a = alpha[..., None]
    canvas -= (canvas - colour[None, None, :].astype(np.float32)) * a


def _paint_word(
    rng: np.random.Generator,
    role: str,
    shape: WordShape,
    geometry: ShapelyPolygon,
    background: np.ndarray,
    image: np.ndarray,
) -> PlacedWord:
    height, width = image.shape[:2]
    pad = 0.25 * shape.height
    rows, cols = _roi(shape.polygon, pad + 3, width, height)
    origin = translation(-cols.start, -rows.start)
    local_polygon = shape.polygon + np.array([-cols.start, -rows.start])
    roi_h, roi_w = rows.stop - rows.start, cols.stop - cols.start
    img = image[rows, cols]
    inside = _polygon_mask(local_polygon, roi_h, roi_w)
    lum = luminance(img[inside]) if inside.any() else np.array([128.0])
    lo, hi = (float(v) for v in np.percentile(lum, [10, 90]))
    # Busy: the pixels under the word span so much that no colour contrasts
    # with all of them; real signs solve this with a plate.
    busy = hi - lo > 70 or (lo < MIN_LEGIBLE_CONTRAST and hi > 255 - MIN_LEGIBLE_CONTRAST)
    plate = role == "legible" and (busy or rng.random() < 0.2)
    if plate:
        # A sign plate behind the word: drawn into the background too, since
        # it is scenery, not text.
        join: Literal["round", "mitre"] = "round" if shape.kind == "curved" else "mitre"
        outline = np.asarray(
            ShapelyPolygon(local_polygon).buffer(pad, join_style=join).exterior.coords
        )
        plate_colour = rng.uniform(0, 255, size=3)
        layer = np.zeros((roi_h, roi_w), np.uint8)
        cv2.fillPoly(
            layer, [np.round((outline - 0.5) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4
        )
        a = layer.astype(np.float32) / 255.0
        _blend(background[rows, cols], a, plate_colour)
        _blend(img, a, plate_colour)
        lo = hi = float(luminance(plate_colour))

    if role == "faint":
        # Don't-care: barely different from the mean under it.
        base = 0.5 * (lo + hi)
        direction = -1.0 if base > 127 else 1.0
        target = base + direction * float(rng.uniform(6, 16))
    else:
        # Contrast against the darkest (light text) or brightest (dark text)
        # pixels under the word, not just their mean.
        delta = float(rng.uniform(MIN_LEGIBLE_CONTRAST + 10, 170))
        room_dark, room_light = lo, 255.0 - hi
        if room_dark >= MIN_LEGIBLE_CONTRAST and room_light >= MIN_LEGIBLE_CONTRAST:
            direction = -1.0 if rng.random() < room_dark / (room_dark + room_light) else 1.0
        else:
            direction = -1.0 if room_dark > room_light else 1.0
        base = lo if direction < 0 else hi
        target = base + direction * delta
    target = float(np.clip(target, 0, 255))
    colour = colour_with_luminance(rng, target)

    fill, outline_cov = rasterize(shape.moved(origin), roi_w, roi_h)
    coverage = fill
    if outline_cov is not None:
        # An outline contrasting with the fill, the classic sign style.
        stroke_colour = colour_with_luminance(rng, float(np.clip(target - direction * 120, 0, 255)))
        _blend(img, outline_cov, stroke_colour)
        coverage = np.maximum(fill, outline_cov)
    opacity = 1.0 if role != "legible" else float(rng.uniform(0.92, 1.0))
    _blend(img, fill * np.float32(opacity), colour)
    full_coverage = np.zeros((height, width), np.float32)
    full_coverage[rows, cols] = coverage
    return PlacedWord(
        rendered_text=shape.text,
        polygon=shape.polygon,
        ignore=role != "legible",
        kind=shape.kind,
        coverage=full_coverage,
        colour=colour,
    )
