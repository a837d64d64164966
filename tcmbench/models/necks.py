"""Necks: multi-scale feature fusion between backbone and head.

:class:`FPNC` is DBNet's neck (the mmocr ``FPNC`` layout): 1x1 lateral convs
to ``lateral_channels``, a top-down pathway that upsamples and adds, a 3x3
smoothing conv per level to ``smooth_channels``, then every level upsampled
to the finest (1/4) and concatenated -> ``4 * smooth_channels`` channels.

``in_channels`` is a constructor argument, never inferred, because TCM
rebuilds the neck with one extra channel on C5 (``[256, 512, 1024, 2049]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FPNC(nn.Module):
    """Feature pyramid with concatenation (DBNet).

    Convs have no bias and no norm, as in the DBNet reference configuration;
    for ``in_channels = [256, 512, 1024, 2048]`` and 256 lateral channels that
    is 1.57M parameters.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        lateral_channels: int = 256,
        smooth_channels: int | None = None,
    ) -> None:
        super().__init__()
        if len(in_channels) < 1:
            raise ValueError("FPNC needs at least one input level")
        smooth = lateral_channels // 4 if smooth_channels is None else smooth_channels
        if smooth < 1:
            raise ValueError(f"smooth_channels must be >= 1, got {smooth}")
        self.in_channels = [int(c) for c in in_channels]
        self.lateral_channels = int(lateral_channels)
        self.smooth_channels = int(smooth)
        self.lateral_convs = nn.ModuleList(
            nn.Conv2d(c, self.lateral_channels, 1, bias=False) for c in self.in_channels
        )
        self.smooth_convs = nn.ModuleList(
            nn.Conv2d(self.lateral_channels, self.smooth_channels, 3, padding=1, bias=False)
            for _ in self.in_channels
        )
        self.out_channels = self.smooth_channels * len(self.in_channels)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(
                f"FPNC built for {len(self.lateral_convs)} levels got {len(feats)} features"
            )
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.smooth_convs, laterals)]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="nearest") for o in outs[1:]]
        return torch.cat(outs, dim=1)
