"""The night-time look: dark, low contrast, noisy, with glare.

Night photos of text (NightTime-ArT) differ from day ones in a few physical
ways, each modelled here on the finished day image:

* little light: a small exposure gain and a gamma that crushes shadows;
* a colour cast from the light source (sodium orange, LED blue...);
* lower contrast (haze, stray light);
* glare: bright coloured lamps with a soft bloom around them;
* self-lit text (neon, backlit signs) that stays bright while the scene
  darkens, with a halo;
* sensor noise: shot noise whose variance grows with the signal
  (Poisson-like) plus Gaussian read noise, per channel (chroma noise);
* slight blur (longer exposure, cheap optics).

The text stays legible by construction (its contrast is scaled, not
removed), so a detector can learn it.
"""

from __future__ import annotations

import cv2
import numpy as np


def luminance_of(rgb: np.ndarray) -> float:
    return float(rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114)


CASTS = (
    np.array([1.15, 0.85, 0.55]),  # sodium lamp
    np.array([0.75, 0.9, 1.2]),  # cold LED / moonlight
    np.array([1.0, 0.95, 0.9]),  # neutral-warm
    np.array([1.05, 0.7, 1.1]),  # magenta neon
)


def _glare(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Additive light from 1-4 lamps: a saturated core and a wide bloom."""
    light = np.zeros((height, width, 3), np.float32)
    diagonal = float(np.hypot(height, width))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        # Sizes relative to the image: lamps are small, their bloom local.
        core = rng.uniform(0.005, 0.025) * diagonal
        bloom = core * rng.uniform(3, 7)
        colour = rng.uniform(0.4, 1.0, size=3).astype(np.float32)
        colour /= colour.max()
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        intensity = rng.uniform(0.6, 1.2) * np.exp(-d2 / (2 * core**2)) + rng.uniform(
            0.1, 0.35
        ) * np.exp(-d2 / (2 * bloom**2))
        light += intensity[..., None] * colour[None, None, :]
    return light


def apply_night(
    day: np.ndarray,
    rng: np.random.Generator,
    text_alpha: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """The night version of ``day`` (uint8 H x W x 3).

    ``text_alpha`` lists (coverage, colour 0-255) of words that may be
    self-lit; a random subset of them is made to glow.
    """
    height, width = day.shape[:2]
    img = day.astype(np.float32) / 255.0
    gain = float(rng.uniform(0.35, 0.6))
    gamma = float(rng.uniform(1.0, 1.35))
    cast = CASTS[int(rng.integers(len(CASTS)))]
    img = gain * np.power(img, gamma) * cast[None, None, :].astype(np.float32)
    contrast = float(rng.uniform(0.7, 0.9))
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * contrast

    for alpha, colour in text_alpha or []:
        if rng.random() < 0.5 and float(luminance_of(colour)) > 100:
            strength = float(rng.uniform(0.5, 0.9))
            glow = colour.astype(np.float32) / 255.0
            halo = cv2.GaussianBlur(alpha, (0, 0), float(rng.uniform(2, 5)))
            img = (
                img * (1 - alpha[..., None] * strength)
                + glow[None, None, :] * alpha[..., None] * strength
            )
            img += halo[..., None] * glow[None, None, :] * 0.25

    img += _glare(rng, height, width)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.1)))

    shot = float(rng.uniform(0.0015, 0.004))  # variance per unit of signal
    read = float(rng.uniform(0.008, 0.02))
    sigma = np.sqrt(np.clip(img, 0, None) * shot + read**2)
    img = img + rng.normal(0.0, 1.0, size=img.shape).astype(np.float32) * sigma
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
