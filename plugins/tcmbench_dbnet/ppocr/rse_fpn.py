"""RSE-FPN: the feature pyramid of PaddleOCR's PP-OCRv3 / v4 detectors.

Read off their inference graphs. Each backbone stage goes through a 1x1
conv to ``out_channels`` (96) followed by a *residual* squeeze-excitation
(``x + x * gate(x)``, gate slope 0.2, reduction 4); from the coarsest level
down each level adds the nearest-neighbour x2 upsampling of the one above;
each merged level then goes through a 3x3 conv to ``out_channels / 4``
with its own residual squeeze-excitation; the four results, upsampled to
stride 4 (nearest), are concatenated coarsest first, giving
``out_channels`` channels for the head.

It plays the role of :class:`tcmbench.models.necks.FPNC` and reads the
same options: ``lateral_channels`` is ``out_channels``, ``smooth_channels``
its quarter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench_dbnet.ppocr.layers import SqueezeExcite


class RSEConv(nn.Module):
    """Conv (no bias, 'same' padding) + residual squeeze-excitation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.se = SqueezeExcite(out_channels, reduction=4, residual=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.conv(x))


def _up(x: Tensor, like: Tensor) -> Tensor:
    """Nearest upsampling to ``like``'s size (x2^k exactly for the sizes a
    stride-32 network gets: the graphs' ``Resize`` nearest / floor)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class RSEFPN(nn.Module):
    """``forward([C2, ..., C5]) -> (B, out_channels, H/4, W/4)``."""

    def __init__(
        self, in_channels: list[int], lateral_channels: int = 96, smooth_channels: int = 24
    ) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(RSEConv(c, lateral_channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(
            RSEConv(lateral_channels, smooth_channels, 3) for _ in in_channels
        )
        self.out_channels = smooth_channels * len(in_channels)

    def forward(self, feats: list[Tensor]) -> Tensor:
        n = len(self.lateral)
        if len(feats) != n:
            raise ValueError(f"RSEFPN built for {n} levels got {len(feats)}")
        # Coarsest first throughout: the order the graphs compute in, which
        # the ONNX importer follows.
        lateral = [self.lateral[i](feats[i]) for i in reversed(range(n))][::-1]
        merged = list(lateral)
        for i in reversed(range(n - 1)):
            merged[i] = lateral[i] + _up(merged[i + 1], lateral[i])
        smooth = [self.smooth[i](merged[i]) for i in reversed(range(n))][::-1]
        return torch.cat([_up(smooth[i], smooth[0]) for i in reversed(range(n))], dim=1)
