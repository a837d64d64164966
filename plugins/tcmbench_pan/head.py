"""PANHead: one 1x1 conv from the fused 512 channels to 6 maps at 1/4.

As mmocr's PANHead (``in_channels [128] * 4 -> 6``, ``out_conv``): channel
0 is the text region logit, channel 1 the kernel logit, channels 2-5 the
4-d similarity vector (embedding) that pixel aggregation clusters with.
The PAN paper puts a 3x3 conv + BN + ReLU before the 1x1; the official
TCM-PAN checkpoints (mmocr 0.4) have only the 1x1, and so does this head.

The maps stay at the neck's 1/4 resolution; the loss brings the targets
down to it (nearest, so instance ids survive) and the postprocessor maps
polygons back up, so no per-pixel work happens at full resolution.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Output channels: text, kernel, 4-d embedding.
NUM_OUTPUTS = 6
EMBED_DIM = 4


class PANHead(nn.Module):
    """Outputs: ``text_logits`` and ``kernel_logits`` (B, 1, h, w),
    ``text`` / ``kernel`` their sigmoids, ``embedding`` (B, 4, h, w)."""

    def __init__(self, in_channels: int = 512) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_conv = nn.Conv2d(self.in_channels, NUM_OUTPUTS, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.out_conv(x)
        text_logits, kernel_logits = out[:, 0:1], out[:, 1:2]
        return {
            "text_logits": text_logits,
            "kernel_logits": kernel_logits,
            "embedding": out[:, 2:],
            "text": torch.sigmoid(text_logits),
            "kernel": torch.sigmoid(kernel_logits),
        }
