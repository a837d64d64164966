"""FPN neck of FCENet (mmdet's ``FPN`` as mmocr's FCENet configs use it:
``in_channels`` C3..C5, ``out_channels`` 256, three outputs, no extra
levels, no normalisation, no activation).

1x1 lateral convs to ``out_channels``, a top-down pathway (nearest
upsampling to the finer level's size, then add), and a 3x3 conv per level.
All convs have a bias (no norm follows them). Output: a list of three
feature maps at strides 8, 16, 32 -- one per prediction level.

``in_channels`` is a constructor argument, never inferred: TCM rebuilds the
neck with the score map concatenated to C5 (``[512, 1024, 2049]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        if len(in_channels) < 1:
            raise ValueError("FPN needs at least one input level")
        if int(out_channels) < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(out_channels)
        self.lateral_convs = nn.ModuleList(
            nn.Conv2d(c, self.out_channels, 1) for c in self.in_channels
        )
        self.fpn_convs = nn.ModuleList(
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1) for _ in self.in_channels
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # mmdet's ConvModule default: Xavier-uniform weights, zero bias.
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(
                f"FPN built for {len(self.lateral_convs)} levels got {len(feats)} features"
            )
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
