"""Words rendered as coverage masks, each with an exact polygon.

A word is drawn once, upright, on a small patch with Pillow's scalable
embedded font (FreeType), then mapped into the image by a 3 x 3 matrix. The
same matrix maps the word box corners, so the polygon is exact by
construction instead of being measured from pixels afterwards:

* ``horizontal`` and ``rotated`` (up to +-45 degrees, sometimes sheared like
  italics): an affine map; the polygon is a quad.
* ``perspective``: a homography sending the box to a foreshortened quad
  (``cv2.getPerspectiveTransform``); the polygon is that quad.
* ``curved``: every glyph is a rigid piece placed along an arc or a sine
  by arc length and rotated to the tangent; the polygon is 7 points on the
  top boundary and 7 on the bottom one (CTW1500 style), offset from the
  curve by the box's ascent and descent.

The word box is taken from font metrics, not from each word's ink: it spans
the ink horizontally and, vertically, from the font's ascender/cap line to
its descender line (probed once per font size). Every word therefore gets
the same vertical extent for a given size, with or without ``g`` or ``H``.
Polygons are clockwise in image coordinates (y down): top edge left to
right, then bottom edge right to left; quads are TL, TR, BR, BL.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Glyphs that reach the highest and the lowest ink line of the font.
ASCENDER_PROBE = "HIbdfhijklt0123456789"
DESCENDER_PROBE = "gjpqy"
CURVE_POINTS_PER_SIDE = 7
# Empty margin around a rendered patch so linear interpolation at its
# border never clips anti-aliased edges.
PATCH_PAD = 3
# Tightest bend of curved text, in text heights: tighter and the glyphs on
# the inner side of the curve would collide.
MIN_BEND_RADIUS = 2.5


@functools.lru_cache(maxsize=256)
def get_font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's embedded scalable font (Aileron Regular, CC0) at ``size``."""
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
        raise RuntimeError(
            "synthtext-mini needs Pillow with FreeType support (ImageFont.load_default(size=...))"
        )
    return font


@functools.lru_cache(maxsize=256)
def line_metrics(size: int) -> tuple[int, int]:
    """(ascent, descent) in pixels above / below the baseline: the vertical
    extent every word box of this font size gets."""
    font = get_font(size)
    ascent = -font.getbbox(ASCENDER_PROBE, anchor="ls")[1]
    descent = font.getbbox(DESCENDER_PROBE, anchor="ls")[3]
    return int(ascent), int(descent)


def box_height(size: int) -> int:
    ascent, descent = line_metrics(size)
    return ascent + descent


def font_size_for_height(height: float) -> int:
    """The font size whose word box is closest to ``height`` pixels."""
    ratio = box_height(100) / 100.0
    size = max(4, round(height / ratio))
    # Rounding inside FreeType can be off by a pixel; settle on the nearest.
    best = min(
        (s for s in (size - 1, size, size + 1) if s >= 4),
        key=lambda s: abs(box_height(s) - height),
    )
    return best


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def rotation(angle_rad: float) -> np.ndarray:
    """Rotation in image coordinates (y down): positive angles turn clockwise
    on screen."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def shear_x(k: float) -> np.ndarray:
    """x' = x - k * y: with y down, positive k leans the tops to the right
    like italics."""
    return np.array([[1.0, -k, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homo = np.hstack([pts, np.ones((len(pts), 1))]) @ matrix.T
    return homo[:, :2] / homo[:, 2:3]


def signed_area(polygon: np.ndarray) -> float:
    """Shoelace area; positive for clockwise order in image coordinates."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


@dataclass
class Piece:
    """A rendered patch and where it goes.

    ``fill`` is the glyph coverage (uint8, 0-255); ``outline`` the coverage
    of glyphs plus stroke, or None when unstroked. ``to_word`` maps patch
    pixel coordinates to word coordinates (3 x 3).
    """

    fill: np.ndarray
    outline: np.ndarray | None
    to_word: np.ndarray


@dataclass
class WordShape:
    """A word laid out around the origin of its own coordinates."""

    text: str
    kind: str
    font_size: int
    stroke: int
    polygon: np.ndarray  # (N, 2) float64, word coordinates, clockwise
    pieces: list[Piece] = field(default_factory=list)

    @property
    def height(self) -> int:
        return box_height(self.font_size) + 2 * self.stroke

    def moved(self, matrix: np.ndarray) -> WordShape:
        """The same word mapped by ``matrix`` (e.g. a translation into the image)."""
        return WordShape(
            text=self.text,
            kind=self.kind,
            font_size=self.font_size,
            stroke=self.stroke,
            polygon=apply_homography(matrix, self.polygon),
            pieces=[Piece(p.fill, p.outline, matrix @ p.to_word) for p in self.pieces],
        )


def _render_patch(
    text: str, size: int, stroke: int
) -> tuple[Piece, tuple[float, float, float, float]]:
    """Draw ``text`` upright. Returns the piece with ``to_word`` mapping patch
    pixels to baseline coordinates (origin at the pen position on the
    baseline) and the word box (x0, y0, x1, y1) in baseline coordinates:
    horizontally the columns the glyphs actually touch (Pillow's
    ``getbbox`` starts at the pen, side bearing included), vertically the
    font's ascent and descent."""
    font = get_font(size)
    ascent, descent = line_metrics(size)
    drawn = font.getbbox(text, anchor="ls", stroke_width=stroke)
    left = drawn[0] - PATCH_PAD
    top = min(drawn[1], -ascent - stroke) - PATCH_PAD
    right = drawn[2] + PATCH_PAD
    bottom = max(drawn[3], descent + stroke) + PATCH_PAD
    width, height = math.ceil(right - left), math.ceil(bottom - top)
    origin = (-left, -top)

    fill_img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(fill_img).text(origin, text, font=font, fill=255, anchor="ls")
    fill = np.asarray(fill_img)
    outline = None
    if stroke:
        outline_img = Image.new("L", (width, height), 0)
        ImageDraw.Draw(outline_img).text(
            origin, text, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255
        )
        outline = np.asarray(outline_img)
    columns = np.flatnonzero((fill if outline is None else outline).any(axis=0))
    if len(columns):
        x0, x1 = float(columns[0] + left), float(columns[-1] + 1 + left)
    else:  # nothing drawn (a space): fall back to the pen advance
        x0, x1 = 0.0, float(font.getlength(text))
    piece = Piece(fill, outline, translation(left, top))
    return piece, (x0, float(-ascent - stroke), x1, float(descent + stroke))


def _box_corners(box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def straight_word(
    text: str,
    size: int,
    stroke: int,
    *,
    angle_deg: float = 0.0,
    shear: float = 0.0,
    kind: str = "horizontal",
) -> WordShape:
    """A straight word, centred on the origin, rotated and/or sheared."""
    piece, box = _render_patch(text, size, stroke)
    corners = _box_corners(box)
    centre = corners.mean(axis=0)
    matrix = (
        rotation(math.radians(angle_deg)) @ shear_x(shear) @ translation(-centre[0], -centre[1])
    )
    piece.to_word = matrix @ piece.to_word
    return WordShape(text, kind, size, stroke, apply_homography(matrix, corners), [piece])


def perspective_word(
    text: str,
    size: int,
    stroke: int,
    rng: np.random.Generator,
    *,
    angle_deg: float = 0.0,
) -> WordShape:
    """A word on a plane seen at an angle: one end shorter than the other,
    the whole slightly compressed, corners jittered; a homography maps the
    box onto that quad."""
    piece, box = _render_patch(text, size, stroke)
    corners = _box_corners(box)
    centre = corners.mean(axis=0)
    src = corners - centre
    half_w = (box[2] - box[0]) / 2.0
    half_h = (box[3] - box[1]) / 2.0
    near, far = 1.0, float(rng.uniform(0.55, 0.85))
    if rng.random() < 0.5:
        left_scale, right_scale = near, far
    else:
        left_scale, right_scale = far, near
    squeeze = float(rng.uniform(0.75, 1.0))
    vertical_tilt = float(rng.uniform(-0.25, 0.25)) * half_h
    dst = np.array(
        [
            [-half_w * squeeze, -half_h * left_scale - vertical_tilt],
            [half_w * squeeze, -half_h * right_scale + vertical_tilt],
            [half_w * squeeze, half_h * right_scale + vertical_tilt],
            [-half_w * squeeze, half_h * left_scale - vertical_tilt],
        ]
    )
    dst += rng.uniform(-0.12, 0.12, size=(4, 2)) * half_h
    homography = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(
        np.float64
    )
    matrix = rotation(math.radians(angle_deg)) @ homography @ translation(-centre[0], -centre[1])
    piece.to_word = matrix @ piece.to_word
    polygon = apply_homography(matrix, corners)
    return WordShape(text, "perspective", size, stroke, polygon, [piece])


def _curve_points(kind: str, length: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """A dense baseline (M, 2) whose arc length is a little over ``length``.

    The bend is bounded so the word stays a recognisable line: the arc's
    sagitta and the sine's amplitude are fractions of the text height.
    """
    if kind == "arc":
        sagitta = min(float(rng.uniform(0.35, 0.9)) * height, 0.2 * length)
        radius = max(
            length**2 / (8.0 * sagitta) + sagitta / 2.0, length / 1.6, MIN_BEND_RADIUS * height
        )
        half_angle = (length * 0.55) / radius
        theta = np.linspace(-half_angle, half_angle, 400)
        sign = 1.0 if rng.random() < 0.5 else -1.0  # +1: ends droop (frown)
        return np.stack([radius * np.sin(theta), sign * radius * (1.0 - np.cos(theta))], axis=1)
    amplitude = float(rng.uniform(0.2, 0.45)) * height
    # Peak curvature of a sine is amplitude * (2 pi / wavelength)^2.
    min_wavelength = 2 * math.pi * math.sqrt(MIN_BEND_RADIUS * height * amplitude)
    wavelength = max(float(rng.uniform(1.1, 2.0)) * length, min_wavelength)
    phase = float(rng.uniform(0, 2 * math.pi))
    x = np.linspace(-0.6 * length, 0.6 * length, 400)
    return np.stack([x, amplitude * np.sin(2 * math.pi * x / wavelength + phase)], axis=1)


class _ArcLength:
    """Point and tangent angle of a polyline at a given arc length."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = points
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(seg)])
        d = np.gradient(points, axis=0)
        self.angle = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))

    def at(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        s = np.asarray(s, dtype=np.float64)
        x = np.interp(s, self.s, self.points[:, 0])
        y = np.interp(s, self.s, self.points[:, 1])
        return np.stack([x, y], axis=-1), np.interp(s, self.s, self.angle)


def curved_word(
    text: str,
    size: int,
    stroke: int,
    rng: np.random.Generator,
    *,
    angle_deg: float = 0.0,
) -> WordShape:
    """Glyphs along an arc or a sine, each rigid and turned to the tangent.

    Glyph pen positions come from ``font.getlength`` of the prefix (kerning
    included); each glyph's centre sits at that arc length on the baseline.
    The polygon samples the same curve: 7 points offset by the ascent
    (top, left to right) and 7 by the descent (bottom, right to left).
    """
    font = get_font(size)
    ascent, descent = line_metrics(size)
    ascent += stroke
    descent += stroke
    _, (x_start, _, x_end, _) = _render_patch(text, size, stroke)
    length = float(x_end - x_start)
    curve_kind = "arc" if rng.random() < 0.6 else "sine"
    path = _ArcLength(_curve_points(curve_kind, length, ascent + descent, rng))
    # Centre the word on the curve's midpoint in arc length.
    offset = (path.s[-1] - length) / 2.0 - x_start

    pieces: list[Piece] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            continue
        pen = font.getlength(text[:i])
        advance = font.getlength(ch)
        centre_s = pen + advance / 2.0
        piece, _ = _render_patch(ch, size, stroke)
        point, angle = path.at(centre_s + offset)
        place = (
            translation(point[0], point[1])
            @ rotation(float(angle))
            @ translation(-centre_s + pen, 0.0)
        )
        piece.to_word = place @ piece.to_word
        pieces.append(piece)

    s = np.linspace(x_start, x_end, CURVE_POINTS_PER_SIDE) + offset
    base, angles = path.at(s)
    normal = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # points "down" the glyphs
    top = base - normal * ascent
    bottom = base + normal * descent
    polygon = np.concatenate([top, bottom[::-1]], axis=0)

    centre = polygon.mean(axis=0)
    matrix = rotation(math.radians(angle_deg)) @ translation(-centre[0], -centre[1])
    shape = WordShape(text, "curved", size, stroke, polygon, pieces)
    return shape.moved(matrix)


def rasterize(shape: WordShape, width: int, height: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Coverage of the word's glyphs (and of glyphs plus stroke) in an image
    of ``width`` x ``height``, as float32 in [0, 1].

    Each piece is warped only into the bounding box of its destination, so
    a word costs a few small warps rather than full-image ones.
    """
    fill = np.zeros((height, width), np.float32)
    outline = np.zeros((height, width), np.float32) if shape.stroke else None
    for piece in shape.pieces:
        ph, pw = piece.fill.shape
        corners = apply_homography(piece.to_word, np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]]))
        x0 = max(0, math.floor(corners[:, 0].min()) - 1)
        y0 = max(0, math.floor(corners[:, 1].min()) - 1)
        x1 = min(width, math.ceil(corners[:, 0].max()) + 2)
        y1 = min(height, math.ceil(corners[:, 1].max()) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        # OpenCV samples pixel centres at integer coordinates; PIL's patch
        # pixel (i, j) covers [i, i+1): shift by half a pixel on both sides.
        matrix = translation(-x0 - 0.5, -y0 - 0.5) @ piece.to_word @ translation(0.5, 0.5)
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpPerspective(
            piece.fill, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0
        )
        roi = fill[y0:y1, x0:x1]
        np.maximum(roi, warped.astype(np.float32) / 255.0, out=roi)
        if outline is not None and piece.outline is not None:
            warped = cv2.warpPerspective(
                piece.outline, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0
            )
            roi = outline[y0:y1, x0:x1]
            np.maximum(roi, warped.astype(np.float32) / 255.0, out=roi)
    return fill, outline
