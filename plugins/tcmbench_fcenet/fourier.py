"""Fourier contour embedding (FCENet section 3.1), numpy side.

A closed contour is a complex function z(t) = x(t) + i y(t), t in [0, 1).
Sampled at N points, its discrete Fourier coefficients are

    c_k = (1/N) sum_n z_n exp(-2 pi i k n / N),   k = -K..K,

and the contour is rebuilt from the 2K + 1 lowest frequencies as

    z(m / M) = sum_k c_k exp(2 pi i k m / M),     m = 0..M-1.

c_0 is the contour's centre; c_{+-1} an ellipse; higher orders add detail.
K = 5 (22 real numbers) describes a word-level contour well
(tests/test_fcenet.py measures the round trip on every real curved GT
polygon of Total-Text and CTW1500).

The coefficients depend on *where the contour starts* and *which way it
runs*; a network can only regress them if both are fixed by the shape:

- direction: clockwise on screen (y pointing down), i.e. positive
  shoelace area in image coordinates; then |c_1| > |c_-1|;
- start: the topmost point where the vertical line through the contour's
  centroid (of its resampled points) crosses it, i.e. "12 o'clock".

The contour is resampled to ``num_points`` (400) points equally spaced by
arc length before the transform, so the result does not depend on how the
annotator spaced the vertices.

Coefficient layout everywhere in the plugin: a (2K + 1) complex vector
ordered k = -K..K; as reals, ``[Re c_-K..Re c_K, Im c_-K..Im c_K]``
(22 values for K = 5), the regression head's channel order.
"""

from __future__ import annotations

import numpy as np


def resample_closed(poly: np.ndarray, num_points: int) -> np.ndarray:
    """``num_points`` points equally spaced by arc length along the closed
    polygon ``poly`` (N, 2), starting at its first vertex."""
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    closed = np.vstack([pts, pts[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 0:
        return np.repeat(pts[:1], num_points, axis=0)
    t = np.arange(num_points) * (total / num_points)
    x = np.interp(t, cum, closed[:, 0])
    y = np.interp(t, cum, closed[:, 1])
    return np.stack([x, y], axis=1)


def signed_area(poly: np.ndarray) -> float:
    """Shoelace area, positive for clockwise-on-screen (y down) polygons."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _top_crossing(pts: np.ndarray) -> tuple[int, np.ndarray]:
    """(edge index e, point) of the topmost crossing of the vertical line
    through the centroid with edge e (from pts[e] to pts[e + 1]); falls
    back to the topmost vertex when no edge crosses (degenerate)."""
    cx = float(pts[:, 0].mean())
    a, b = pts, np.roll(pts, -1, axis=0)
    dx = b[:, 0] - a[:, 0]
    lo, hi = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    cross = (lo <= cx) & (cx <= hi) & (dx != 0)
    if not cross.any():
        i = int(np.argmin(pts[:, 1]))
        return i, pts[i].copy()
    t = np.where(cross, (cx - a[:, 0]) / np.where(dx == 0, 1.0, dx), 0.0)
    y = a[:, 1] + t * (b[:, 1] - a[:, 1])
    y = np.where(cross, y, np.inf)
    e = int(np.argmin(y))
    return e, np.array([cx, y[e]])


def normalize_contour(poly: np.ndarray, num_points: int = 400) -> np.ndarray:
    """The canonical sampling of a contour: clockwise on screen, starting at
    its 12 o'clock point, ``num_points`` points equally spaced."""
    pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    if signed_area(pts) < 0:
        pts = pts[::-1]
    # A dense first pass makes the centroid independent of vertex spacing.
    dense = resample_closed(pts, num_points)
    e, start = _top_crossing(dense)
    rolled = np.vstack([start[None], dense[e + 1 :], dense[: e + 1]])
    return resample_closed(rolled, num_points)


def poly_to_fourier(poly: np.ndarray, degree: int = 5, num_points: int = 400) -> np.ndarray:
    """The (2K + 1) complex coefficients c_-K..c_K of a polygon."""
    pts = normalize_contour(poly, num_points)
    z = pts[:, 0] + 1j * pts[:, 1]
    spectrum = np.fft.fft(z) / len(z)
    return np.concatenate([spectrum[-degree:], spectrum[: degree + 1]]) if degree else spectrum[:1]


def fourier_to_reals(coeffs: np.ndarray) -> np.ndarray:
    """Complex (..., 2K + 1) -> real (..., 4K + 2): real parts, then imaginary."""
    return np.concatenate([coeffs.real, coeffs.imag], axis=-1)


def reconstruction_matrices(degree: int, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """cos / sin of 2 pi k m / M, (2K + 1, M) each, k = -K..K."""
    k = np.arange(-degree, degree + 1, dtype=np.float64)[:, None]
    m = np.arange(num_points, dtype=np.float64)[None, :]
    angle = 2.0 * np.pi * k * m / num_points
    return np.cos(angle), np.sin(angle)


def reals_to_polygons(reals: np.ndarray, degree: int, num_points: int = 50) -> np.ndarray:
    """Real coefficient rows (..., 4K + 2) -> polygons (..., M, 2).

    With c_k = a_k + i b_k and e^{i theta} = cos + i sin:
    x = sum a cos - b sin, y = sum a sin + b cos (one matrix product each,
    vectorised over all candidates)."""
    n = 2 * degree + 1
    a, b = reals[..., :n], reals[..., n : 2 * n]
    cos, sin = reconstruction_matrices(degree, num_points)
    x = a @ cos - b @ sin
    y = a @ sin + b @ cos
    return np.stack([x, y], axis=-1)


def fourier_to_poly(coeffs: np.ndarray, num_points: int = 50) -> np.ndarray:
    """Complex coefficients c_-K..c_K -> (num_points, 2) polygon."""
    degree = (len(coeffs) - 1) // 2
    return reals_to_polygons(fourier_to_reals(np.asarray(coeffs))[None], degree, num_points)[0]
