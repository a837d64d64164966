"""Image -> network input for an ONNX detector, as its config says (torch-free).

Two resize rules:

- ``limit_side``: PaddleOCR's ``DetResizeForTest`` (resize type 0), the
  rule its detection models were measured with. ``limit_type max``: when the
  longer side exceeds ``limit_side_len`` the image is scaled so that it
  equals it (never upscaled); ``min``: when the shorter side is below it,
  scaled up so that it equals it. Each side is then truncated to an integer
  and rounded to the nearest multiple of ``divisor`` (Python's ``round``,
  halves to even, as PaddleOCR; at least one ``divisor``), so the aspect
  ratio changes slightly and x and y get their own scale. There is no
  padding, except PaddleOCR's for tiny images: when height + width < 64 the
  image is first padded with black to at least 32 x 32 at the bottom right.
  Unlike PaddleOCR, which maps boxes back as if the padded image were the
  original (stretching them), the scale here refers to the padded image and
  boxes are clipped to the original, so they stay where the text is.
- ``keep_ratio``: tcmbench's own test-time resize (docs/evaluate.md), used
  by models exported from tcmbench checkpoints: one scale
  ``min(long_side / long, short_side / short)``, then zero padding to
  ``pad_divisor`` after normalising.

Then the channel order (``bgr`` flips the RGB image tcmbench decodes) and
``(pixel * s - mean) / std`` in float32, with ``s`` = 1/255 when mean and
std are given for pixels in [0, 1] (``pixel_range: 1``), else 1.
"""

from __future__ import annotations

import cv2
import numpy as np

# The limit_side rule lives in the core: a PyTorch checkpoint imported from a
# PP-OCR graph (tcmbench import ppocr) is resized by the same code.
from tcmbench.data.transforms import LIMIT_SIDE_TINY_SIDE as TINY_SIDE
from tcmbench.data.transforms import LIMIT_SIDE_TINY_SUM as TINY_SUM
from tcmbench.data.transforms import limit_side_size, test_resize_size
from tcmbench_onnx.config import Preprocess

__all__ = ["TINY_SIDE", "TINY_SUM", "OnnxPreprocessor", "limit_side_size"]


class OnnxPreprocessor:
    """``image (uint8 RGB HWC) -> (float32 CHW input, (sx, sy))`` with
    (sx, sy) = input size / original size, what the DB postprocessor
    divides by. The interface of tcmbench's ``InferenceTransform``, so
    ``predict_samples`` runs it in the same place."""

    def __init__(self, pre: Preprocess) -> None:
        self.pre = pre
        self._mean = np.asarray(pre.mean, np.float32)
        self._std = np.asarray(pre.std, np.float32)
        self._scale = np.float32(1.0 / 255.0) if pre.pixel_range == 1.0 else None

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for an image of (height, width), padding
        of tiny images included."""
        p = self.pre
        if p.rule == "limit_side":
            if height + width < TINY_SUM:
                height, width = max(TINY_SIDE, height), max(TINY_SIDE, width)
            return limit_side_size(height, width, p.limit_side_len, p.limit_type, p.divisor)
        return test_resize_size(height, width, p.long_side, p.short_side)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """uint8 HWC RGB -> float32 CHW in the configured channel order."""
        if self.pre.channel_order == "bgr":
            image = image[..., ::-1]
        x = image.astype(np.float32)
        if self._scale is not None:
            x = x * self._scale
        x = (x - self._mean) / self._std
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        p = self.pre
        h, w = image.shape[:2]
        if p.rule == "limit_side" and h + w < TINY_SUM:
            padded = np.zeros((max(TINY_SIDE, h), max(TINY_SIDE, w), 3), np.uint8)
            padded[:h, :w] = image
            image = padded
        ph0, pw0 = image.shape[:2]
        nh, nw = self.size_for(ph0, pw0)
        if (nh, nw) != (ph0, pw0):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = self.normalize(image)
        if p.rule == "keep_ratio":
            ph, pw = -nh % p.pad_divisor, -nw % p.pad_divisor
            if ph or pw:
                x = np.pad(x, ((0, 0), (0, ph), (0, pw)))
        return x, (nw / pw0, nh / ph0)
