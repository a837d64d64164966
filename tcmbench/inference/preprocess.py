"""Image -> network input for an ONNX detector, as its config says, in one pass (torch-free).

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

Then ``(pixel * s - mean) / std`` in float32 per channel, with ``s`` =
1/255 when mean and std are given for pixels in [0, 1] (``pixel_range:
1``), else 1, in the model's channel order (``bgr``: the reverse of the
RGB tcmbench decodes).

Why one pass: the image is decoded once (straight to BGR for a BGR model:
no BGR -> RGB -> BGR round trip), resized on uint8, and each channel of
the input is then a single lookup of the resized uint8 channel in a
256-entry float32 table precomputed with exactly the formula above -- no
separate cast, scale, subtract and divide passes over float images, no
transpose copy, and bit-for-bit the values those passes gave. The
padding of ``keep_ratio`` is the zero-initialised border of the same
output array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# The limit_side rule lives in the data layer: a PyTorch checkpoint imported
# from a PP-OCR graph (tcmbench import ppocr) is resized by the same code.
from tcmbench.data.transforms import LIMIT_SIDE_TINY_SIDE as TINY_SIDE
from tcmbench.data.transforms import LIMIT_SIDE_TINY_SUM as TINY_SUM
from tcmbench.data.transforms import limit_side_size, test_resize_size

__all__ = [
    "RULE_KEYS",
    "TINY_SIDE",
    "TINY_SUM",
    "OnnxPreprocessor",
    "Preprocess",
    "limit_side_size",
]

#: The keys each resize rule takes.
RULE_KEYS = {
    "limit_side": ("limit_side_len", "limit_type", "divisor"),
    "keep_ratio": ("long_side", "short_side", "pad_divisor"),
}
#: Where each channel of the network input comes from in the image, by
#: (the image's channel order, the model's) -> indices.
_SOURCE = {
    ("rgb", "rgb"): (0, 1, 2),
    ("bgr", "bgr"): (0, 1, 2),
    ("rgb", "bgr"): (2, 1, 0),
    ("bgr", "rgb"): (2, 1, 0),
}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input (module doc); read from
    the model's config (:mod:`tcmbench.inference.onnx_config`)."""

    rule: str = "keep_ratio"
    limit_side_len: int = 960
    limit_type: str = "max"
    divisor: int = 32
    long_side: int | None = None
    short_side: int | None = None
    pad_divisor: int = 32
    channel_order: str = "rgb"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    pixel_range: float = 255.0

    def resize_settings(self) -> dict[str, Any]:
        """The resize part, as recorded in a recipe's ``test`` section."""
        return {"rule": self.rule, **{k: getattr(self, k) for k in RULE_KEYS[self.rule]}}


def channel_tables(pre: Preprocess) -> np.ndarray:
    """(3, 256) float32: ``(v * s - mean[c]) / std[c]`` for every uint8
    value ``v`` of model channel ``c``, each step in float32 as the
    separate passes computed it."""
    values = np.arange(256, dtype=np.float32)
    if pre.pixel_range == 1.0:
        values = values * np.float32(1.0 / 255.0)
    mean = np.asarray(pre.mean, np.float32)[:, None]
    std = np.asarray(pre.std, np.float32)[:, None]
    return np.ascontiguousarray((values[None, :] - mean) / std, dtype=np.float32)


class OnnxPreprocessor:
    """``image (uint8 HWC RGB) -> (float32 CHW input, (sx, sy))`` with
    (sx, sy) = input size / original size, what the DB postprocessor
    divides by. The interface of tcmbench's ``InferenceTransform``, so
    ``predict_samples`` runs it in the same place. :meth:`decode` reads an
    image in the order the model wants (BGR for a BGR model), which
    ``__call__`` then takes with ``order``: no colour conversion at all."""

    def __init__(self, pre: Preprocess) -> None:
        self.pre = pre
        self._tables = channel_tables(pre)

    def decode(
        self, path: str | Path | None, sample_id: str | None = None
    ) -> tuple[np.ndarray, str]:
        """(image, its channel order): ``path`` decoded and checked as
        every image tcmbench reads, in the model's channel order."""
        from tcmbench.data.torch_data import load_image

        bgr = self.pre.channel_order == "bgr"
        return load_image(path, sample_id, bgr=bgr), ("bgr" if bgr else "rgb")

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for an image of (height, width), padding
        of tiny images included."""
        p = self.pre
        if p.rule == "limit_side":
            if height + width < TINY_SUM:
                height, width = max(TINY_SIDE, height), max(TINY_SIDE, width)
            return limit_side_size(height, width, p.limit_side_len, p.limit_type, p.divisor)
        return test_resize_size(height, width, p.long_side, p.short_side)

    def normalize(
        self, image: np.ndarray, out_size: tuple[int, int] | None = None, order: str = "rgb"
    ) -> np.ndarray:
        """uint8 HWC (channels in ``order``) -> float32 CHW in the model's
        channel order, zero-padded bottom / right to ``out_size``: one
        table lookup per output value."""
        h, w = image.shape[:2]
        oh, ow = out_size or (h, w)
        out = (np.zeros if (oh, ow) != (h, w) else np.empty)((3, oh, ow), np.float32)
        source = _SOURCE[(order, self.pre.channel_order)]
        for c in range(3):
            np.take(self._tables[c], image[:, :, source[c]], out=out[c, :h, :w])
        return out

    def __call__(
        self, image: np.ndarray, order: str = "rgb"
    ) -> tuple[np.ndarray, tuple[float, float]]:
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
        out_size = None
        if p.rule == "keep_ratio":
            out_size = (nh + -nh % p.pad_divisor, nw + -nw % p.pad_divisor)
        x = self.normalize(image, out_size, order)
        return x, (nw / pw0, nh / ph0)
