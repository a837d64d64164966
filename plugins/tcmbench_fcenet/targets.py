"""FCENet training targets (FCENet section 3.3 / mmocr's FCENetTargets
idea), built per image with numpy / OpenCV.

Level assignment. Each polygon goes to the pyramid levels (strides 8, 16,
32) whose ``level_proportion_range`` contains its relative size
``max(box width, box height) / image height`` (its axis-aligned box clipped
to the image; the ranges overlap, so a polygon near a boundary trains two
levels). Defaults: mmocr's FCENet configs,
((0, 0.25), (0.2, 0.65), (0.55, 1.0)). Ignored polygons are assigned the
same way and blank the valid mask of their levels.

Per level (maps of size (H / s, W / s), polygons divided by s):

- ``fce_text_{l}``: text region, each polygon filled (vertices rounded to
  pixel centres);
- ``fce_center_{l}``: text-centre region, two ways (``center_region``):

  ``sidelines`` (mmocr 0.x ``FCENetTargets.generate_center_region_mask``,
  the paper / TCM recipes): the word's two sidelines are found
  (:func:`sidelines`), both resampled to n = max(int(mean length / step) +
  1, 3) points equally spaced by arc length (step
  ``center_resample_step``, 4 level pixels), paired into a centre line,
  and each pair of consecutive points gives a quad that reaches
  ``center_ratio`` (0.3) of the way from the centre line to each sideline:
  a band 0.3 x the local height thick. The ends drop int(h / 4 // step)
  points each (h: the head / tail edge length), so a word under 16 level
  pixels tall keeps its whole length. Quad corners are truncated to
  integers before filling, as mmocr's ``astype(np.int32)``. A polygon of
  fewer than 4 points falls back to ``offset``;

  ``offset`` (tcmbench's own, the synthtext-mini recipe): the polygon is
  offset inwards (pyclipper) by d = (1 - r) / 2 x T, r = 0.3, where T is
  the word's thickness estimated as the short side of the rectangle with
  the polygon's area A and perimeter L (T = (L/2 - sqrt(L^2/4 - 4A)) / 2,
  exact for a rectangle, close for a bent band). That leaves a band 0.3 T
  thick along the centre line; the ends are cut by 0.35 T. It needs no
  assumption about vertex order (hflip, rotated quads, odd vertex counts
  all work). When the offset vanishes (a polygon thinner than ~2 px at
  that level), its centre line (the long axis of its minimum-area
  rectangle) is drawn one pixel wide instead, so every assigned word keeps
  centre pixels.

  Either way centre pixels are text pixels (the band is intersected with
  the filled word);
- ``fce_mask_{l}``: 1, except 0 inside the level's ignored polygons;
- ``fce_coeff_{l}``: (4K + 2, h, w) Fourier coefficients of the polygon
  covering the pixel (:mod:`tcmbench_fcenet.fourier`, in level pixels),
  with c_0 made relative to the pixel: c_0 - (x + i y); 0 off text. A pixel
  covered by two words keeps the later one (as in mmocr).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pyclipper

from tcmbench_fcenet.fourier import fourier_to_reals, poly_to_fourier

CLIPPER_SCALE = 64.0


def area_perimeter(poly: np.ndarray) -> tuple[float, float]:
    pts = np.ascontiguousarray(poly, dtype=np.float32).reshape(-1, 1, 2)
    return float(cv2.contourArea(pts)), float(cv2.arcLength(pts, True))


def thickness(poly: np.ndarray) -> float:
    """Short side of the rectangle with the polygon's area and perimeter
    (see the module doc); 0 for a degenerate polygon."""
    area, perimeter = area_perimeter(poly)
    half = perimeter / 2.0
    disc = max(half * half - 4.0 * area, 0.0)
    return max((half - np.sqrt(disc)) / 2.0, 0.0)


def offset_inwards(poly: np.ndarray, distance: float) -> list[np.ndarray]:
    """The pieces of ``poly`` offset inwards by ``distance`` (may be none)."""
    pco = pyclipper.PyclipperOffset()
    path = np.round(np.asarray(poly, dtype=np.float64) * CLIPPER_SCALE).astype(np.int64)
    pco.AddPath(path.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    pieces = pco.Execute(-distance * CLIPPER_SCALE)
    return [np.asarray(p, dtype=np.float64) / CLIPPER_SCALE for p in pieces if len(p) >= 3]


def _fill(canvas: np.ndarray, polys: Sequence[np.ndarray], value: float) -> None:
    if polys:
        cv2.fillPoly(canvas, [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polys], value)


def center_region(
    poly: np.ndarray,
    ratio: float,
    canvas: np.ndarray,
    method: str = "offset",
    step: float = 4.0,
) -> None:
    """Draw the text-centre region of ``poly`` into ``canvas`` by
    ``method`` (:data:`CENTER_REGIONS`, module doc)."""
    if method == "sidelines":
        quads = center_band(poly, ratio, step)
        if quads is not None:
            cv2.fillPoly(canvas, [q.reshape(-1, 1, 2) for q in quads], 1.0)
            return
    t = thickness(poly)
    pieces = offset_inwards(poly, (1.0 - ratio) / 2.0 * t) if t > 0 else []
    if pieces:
        _fill(canvas, pieces, 1.0)
        return
    (cx, cy), (w, h), angle = cv2.minAreaRect(poly.astype(np.float32).reshape(-1, 1, 2))
    half = max(w, h) / 2.0 * 0.5
    theta = np.deg2rad(angle if w >= h else angle + 90.0)
    d = np.array([np.cos(theta), np.sin(theta)]) * half
    a = np.round(np.array([cx, cy]) - d).astype(np.int32)
    b = np.round(np.array([cx, cy]) + d).astype(np.int32)
    cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 1.0, 1)


#: ``center_region`` values: mmocr's sideline band, tcmbench's inward offset.
CENTER_REGIONS = ("sidelines", "offset")

#: mmocr's ``TextSnakeTargets.find_head_tail`` threshold for quads: the
#: "vertical" edge pair must be this many times longer than the
#: "horizontal" one for the horizontal edges to be the head and tail.
ORIENTATION_THR = 2.0


def _slope(v: np.ndarray) -> float:
    return float(abs(v[1]) / max(abs(v[0]), 1e-8))


def _length(line: np.ndarray) -> float:
    return float(np.hypot(*np.diff(line, axis=0).T).sum())


def sidelines(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The two sidelines of a word polygon, both running from the head edge
    to the tail edge, or None for fewer than 4 points.

    A quad (p0..p3), mmocr's rule: of the pairs (p0p1, p2p3) and (p1p2,
    p3p0), the one with the smaller summed |slope| is "horizontal". Its
    edges are the head and tail when the other pair is more than
    ``ORIENTATION_THR`` times longer (a vertical word); otherwise the other
    pair's edges are.

    More points, CTW1500's and Total-Text's order (one side, then the
    other back): the head is the closing edge p(n-1)p0; the tail joins the
    halves, p(m-1)pm for n = 2m, and for an odd count the edge that makes
    the two sides' lengths most equal. mmocr scores every edge instead; on
    the real test sets this picks the same edges for ~96 % of even-count
    polygons and ~60 % of odd ones (docs/fcenet.md).
    """
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n < 4:
        return None
    if n == 4:
        p0, p1, p2, p3 = pts
        a_slope = _slope(p1 - p0) + _slope(p3 - p2)
        b_slope = _slope(p2 - p1) + _slope(p0 - p3)
        a_len = float(np.hypot(*(p1 - p0)) + np.hypot(*(p3 - p2)))
        b_len = float(np.hypot(*(p2 - p1)) + np.hypot(*(p0 - p3)))
        a_horizontal = a_slope < b_slope
        h_len, v_len = (a_len, b_len) if a_horizontal else (b_len, a_len)
        ends_are_a = a_horizontal == (v_len > h_len * ORIENTATION_THR)
        if ends_are_a:  # head p0p1, tail p2p3: sidelines p1 -> p2 and p0 -> p3
            return np.stack([p1, p2]), np.stack([p0, p3])
        return np.stack([p0, p1]), np.stack([p3, p2])
    if n % 2 == 0:
        last = n // 2 - 1
    else:
        last = min(
            range(1, n - 2), key=lambda k: abs(_length(pts[: k + 1]) - _length(pts[k + 1 :]))
        )
    return pts[: last + 1], pts[last + 1 :][::-1]


def resample_open(line: np.ndarray, count: int) -> np.ndarray:
    """``count`` points equally spaced by arc length along an open
    polyline, its two ends included."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= 0:
        return np.repeat(line[:1], count, axis=0)
    t = np.linspace(0.0, cum[-1], count)
    return np.stack([np.interp(t, cum, line[:, 0]), np.interp(t, cum, line[:, 1])], axis=1)


def center_band(poly: np.ndarray, ratio: float, step: float) -> list[np.ndarray] | None:
    """The quads of the ``sidelines`` centre region (module doc), integer
    corners; None when ``poly`` has no sideline rule."""
    lines = sidelines(poly)
    if lines is None:
        return None
    top, bottom = lines
    length = _length(top) + _length(bottom)
    count = max(int(float(length) / 2.0 / step) + 1, 3)
    top, bottom = resample_open(top, count), resample_open(bottom, count)
    head = int(float(np.hypot(*(top[0] - bottom[0]))) / 4.0 // step)
    tail = int(float(np.hypot(*(top[-1] - bottom[-1]))) / 4.0 // step)
    if count > head + tail + 2:
        top, bottom = top[head : count - tail], bottom[head : count - tail]
    centre = (top + bottom) / 2.0
    upper = centre + (top - centre) * ratio
    lower = centre + (bottom - centre) * ratio
    quads = np.stack([upper[:-1], upper[1:], lower[1:], lower[:-1]], axis=1)
    return list(quads.astype(np.int32))


def level_keys(level: int) -> tuple[str, str, str, str]:
    return (f"fce_text_{level}", f"fce_center_{level}", f"fce_mask_{level}", f"fce_coeff_{level}")


@dataclass
class FCETargetBuilder:
    """Callable ``(polygons, ignores, height, width) -> dict`` of per-level
    maps (module doc). ``height`` and ``width`` must be multiples of the
    largest stride (the training transform pads to 32)."""

    strides: tuple[int, ...] = (8, 16, 32)
    level_proportion_range: tuple[tuple[float, float], ...] = field(
        default=((0.0, 0.25), (0.2, 0.65), (0.55, 1.0))
    )
    fourier_degree: int = 5
    center_ratio: float = 0.3
    num_sample_points: int = 400
    center_region: str = "offset"
    center_resample_step: float = 4.0

    def __post_init__(self) -> None:
        if self.center_region not in CENTER_REGIONS:
            raise ValueError(
                f"center_region must be one of {', '.join(CENTER_REGIONS)}, "
                f"got {self.center_region!r}"
            )
        if not float(self.center_resample_step) > 0:
            raise ValueError(f"center_resample_step must be > 0, got {self.center_resample_step}")
        self.strides = tuple(int(s) for s in self.strides)
        self.level_proportion_range = tuple(
            (float(lo), float(hi)) for lo, hi in self.level_proportion_range
        )
        if len(self.strides) != len(self.level_proportion_range):
            raise ValueError(
                f"{len(self.strides)} strides but {len(self.level_proportion_range)} "
                "level_proportion_range entries"
            )

    def assign_levels(self, poly: np.ndarray, height: int, width: int) -> list[int]:
        """Levels (indices into ``strides``) a polygon trains."""
        x0, y0 = np.clip(poly.min(axis=0), 0, [width, height])
        x1, y1 = np.clip(poly.max(axis=0), 0, [width, height])
        proportion = max(x1 - x0, y1 - y0) / max(float(height), 1e-8)
        return [
            i for i, (lo, hi) in enumerate(self.level_proportion_range) if lo < proportion <= hi
        ]

    def __call__(
        self,
        polygons: Sequence[np.ndarray],
        ignores: Sequence[bool],
        height: int,
        width: int,
    ) -> dict[str, np.ndarray]:
        if len(polygons) != len(ignores):
            raise ValueError(f"{len(polygons)} polygons but {len(ignores)} ignore flags")
        n_levels = len(self.strides)
        texts: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
        ignored: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
        for raw, ignore in zip(polygons, ignores):
            poly = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
            if len(poly) < 3 or not np.isfinite(poly).all():
                continue
            degenerate = area_perimeter(poly)[0] < 1.0
            for level in self.assign_levels(poly, height, width):
                (ignored if ignore or degenerate else texts)[level].append(poly)
        out: dict[str, np.ndarray] = {}
        for level, stride in enumerate(self.strides):
            out.update(self._level(texts[level], ignored[level], stride, level, height, width))
        return out

    def _level(
        self,
        texts: list[np.ndarray],
        ignored: list[np.ndarray],
        stride: int,
        level: int,
        height: int,
        width: int,
    ) -> dict[str, np.ndarray]:
        h, w = -(-height // stride), -(-width // stride)
        k_text, k_center, k_mask, k_coeff = level_keys(level)
        text = np.zeros((h, w), dtype=np.float32)
        center = np.zeros((h, w), dtype=np.float32)
        mask = np.ones((h, w), dtype=np.float32)
        n = 2 * self.fourier_degree + 1
        coeff = np.zeros((2 * n, h, w), dtype=np.float32)
        _fill(mask, [p / stride for p in ignored], 0.0)
        for poly in texts:
            scaled = poly / stride
            region = np.zeros((h, w), dtype=np.uint8)
            _fill(region, [scaled], 1)
            ys, xs = np.nonzero(region)
            if ys.size == 0:
                continue
            text[ys, xs] = 1.0
            center_region(
                scaled,
                self.center_ratio,
                center,
                self.center_region,
                float(self.center_resample_step),
            )
            reals = fourier_to_reals(
                poly_to_fourier(scaled, self.fourier_degree, self.num_sample_points)
            ).astype(np.float32)
            coeff[:, ys, xs] = reals[:, None]
            coeff[self.fourier_degree, ys, xs] -= xs.astype(np.float32)
            coeff[n + self.fourier_degree, ys, xs] -= ys.astype(np.float32)
        # Centre pixels are text pixels (a thin word's centre line may poke out).
        center *= text
        return {k_text: text, k_center: center, k_mask: mask, k_coeff: coeff}


def tcm_sample_target(
    polygons: Sequence[np.ndarray], ignores: Sequence[bool], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """TCM's auxiliary target for FCENet (TCM.md section 5): *every* text
    polygon scaled by 1/32 and filled, ignored ones blanked in the mask, at
    (ceil(H / 32), ceil(W / 32)), the score map's size. Built per sample
    (``TCMSupport.sample_target``): FCENet's own P5 targets only hold the
    words assigned to the coarsest level."""
    h, w = -(-int(height) // 32), -(-int(width) // 32)
    target = np.zeros((h, w), dtype=np.float32)
    mask = np.ones((h, w), dtype=np.float32)
    care: list[np.ndarray] = []
    dont: list[np.ndarray] = []
    for raw, ignore in zip(polygons, ignores):
        poly = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3 or not np.isfinite(poly).all():
            continue
        (dont if ignore else care).append(poly / 32.0)
    _fill(target, care, 1.0)
    _fill(mask, dont, 0.0)
    return target, mask
