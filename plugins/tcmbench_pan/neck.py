"""FPEM_FFM: PANet's neck (Wang et al., ICCV 2019, section 3.2-3.3).

- *Reduce*: a 1x1 conv + BN + ReLU brings every backbone stage C2..C5 to
  ``channels`` (128).
- *FPEM* (feature pyramid enhancement module), repeated ``repeats`` (2)
  times: an up-scale enhancement (top-down: upsample the coarser level, add
  it to the finer one, separable conv) followed by a down-scale enhancement
  (bottom-up: upsample the coarser level to the finer one, add, separable
  conv with stride 2 back to the coarser size). Separable conv = depthwise
  3x3 + pointwise 1x1 + BN + ReLU, which keeps the module cheap enough to
  cascade.
- *FFM* (feature fusion module): the same level of every FPEM is summed
  element-wise, the sums at 1/8, 1/16 and 1/32 are upsampled (bilinear) to
  1/4 and the four are concatenated -> ``4 * channels`` (512) at 1/4.

Module and parameter names follow mmocr 0.x's ``FPEM_FFM`` one to one
(``reduce_conv_c2.0`` conv, ``.1`` BN; ``fpems.i.up_add1.depthwise_conv``
...), so the official TCM-PAN checkpoints map onto it by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 (``stride``) -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(
            channels, channels, 3, stride=stride, padding=1, groups=channels
        )
        self.pointwise_conv = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.pointwise_conv(self.depthwise_conv(x))))


def _up_add(coarse: Tensor, fine: Tensor) -> Tensor:
    """``coarse`` upsampled (nearest) to ``fine``'s size, plus ``fine``."""
    return F.interpolate(coarse, size=fine.shape[-2:], mode="nearest") + fine


class FPEM(nn.Module):
    """One feature pyramid enhancement module over four levels of equal
    width: up-scale enhancement (``up_add1..3``, 1/32 -> 1/4), then
    down-scale enhancement (``down_add1..3``, stride-2 separable convs,
    1/4 -> 1/32)."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.up_add1 = SeparableConv2d(channels, 1)
        self.up_add2 = SeparableConv2d(channels, 1)
        self.up_add3 = SeparableConv2d(channels, 1)
        self.down_add1 = SeparableConv2d(channels, 2)
        self.down_add2 = SeparableConv2d(channels, 2)
        self.down_add3 = SeparableConv2d(channels, 2)

    def forward(self, c2: Tensor, c3: Tensor, c4: Tensor, c5: Tensor) -> tuple[Tensor, ...]:
        # Up-scale enhancement: the coarser level enriches the finer one.
        c4 = self.up_add1(_up_add(c5, c4))
        c3 = self.up_add2(_up_add(c4, c3))
        c2 = self.up_add3(_up_add(c3, c2))
        # Down-scale enhancement: the sum is taken at the finer size and the
        # stride-2 separable conv brings it back to the coarser one.
        c3 = self.down_add1(_up_add(c3, c2))
        c4 = self.down_add2(_up_add(c4, c3))
        c5 = self.down_add3(_up_add(c5, c4))
        return c2, c3, c4, c5


def _reduce(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
    )


class FPEMFFM(nn.Module):
    """``[C2, C3, C4, C5] -> (B, 4 * channels, H/4, W/4)``.

    ``in_channels``: the four stage widths (``[256, 512, 1024, 2049]`` with
    TCM's score map concatenated to C5). ``out_channels`` = 4 * channels.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 128, repeats: int = 2) -> None:
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if len(in_channels) != 4:
            raise ValueError(f"FPEM_FFM needs 4 input levels (C2..C5), got {in_channels}")
        if channels < 1 or repeats < 1:
            raise ValueError(
                f"FPEM_FFM needs channels >= 1 and repeats >= 1, got {channels}, {repeats}"
            )
        self.in_channels = in_channels
        self.channels = int(channels)
        self.out_channels = 4 * self.channels
        self.reduce_conv_c2 = _reduce(in_channels[0], channels)
        self.reduce_conv_c3 = _reduce(in_channels[1], channels)
        self.reduce_conv_c4 = _reduce(in_channels[2], channels)
        self.reduce_conv_c5 = _reduce(in_channels[3], channels)
        self.fpems = nn.ModuleList(FPEM(channels) for _ in range(int(repeats)))
        self._init_weights()

    def _init_weights(self) -> None:
        # mmocr initialises FPEM_FFM's convs with Xavier (uniform).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        if len(feats) != 4:
            raise ValueError(f"FPEM_FFM expects 4 feature maps, got {len(feats)}")
        levels: tuple[Tensor, ...] = (
            self.reduce_conv_c2(feats[0]),
            self.reduce_conv_c3(feats[1]),
            self.reduce_conv_c4(feats[2]),
            self.reduce_conv_c5(feats[3]),
        )
        fused: list[Tensor] | None = None
        for fpem in self.fpems:
            levels = fpem(*levels)
            # FFM, part 1: element-wise sum of the same level across FPEMs.
            fused = list(levels) if fused is None else [f + x for f, x in zip(fused, levels)]
        assert fused is not None
        size = fused[0].shape[-2:]
        # FFM, part 2: upsample to 1/4 and concatenate.
        ups = [fused[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in fused[1:]
        ]
        return torch.cat(ups, dim=1)
