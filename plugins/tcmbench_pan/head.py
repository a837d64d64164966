"""PANHead: one 1x1 conv from the fused 512 channels to 6 maps at 1/4.

As mmocr's PANHead (``in_channels [128] * 4 -> 6``, ``out_conv``): channel
0 is the text region logit, channel 1 the kernel logit, channels 2-5 the
4-d similarity vector (embedding) that pixel aggregation clusters with.
The PAN paper puts a 3x3 conv + BN + ReLU before the 1x1; the official
TCM-PAN checkpoints (mmocr 0.4) have only the 1x1, and so does this head.

``init`` sets the 1x1 conv's starting weights: ``mmocr`` (mmocr 0.x
PANHead ``init_cfg=dict(type='Normal', mean=0, std=0.01,
override=dict(name='out_conv'))``: weights N(0, 0.01), bias 0),
``pan_pp`` (pan_pp.pytorch ``PA_Head``: N(0, sqrt(2 / (k * k *
out_channels))), i.e. std sqrt(2 / 6) for this 1x1 conv, PyTorch's bias)
or ``pytorch`` (PyTorch's default, Kaiming-uniform; tcmbench's plain
recipes). Loaded weights replace it, so it matters only when training
starts from scratch.

The maps stay at the neck's 1/4 resolution; the loss brings the targets
down to it (nearest, so instance ids survive) and the postprocessor maps
polygons back up, so no per-pixel work happens at full resolution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tcmbench_pan.options import HEAD_INITS  # ``init`` values (module doc)

#: Output channels: text, kernel, 4-d embedding.
NUM_OUTPUTS = 6
EMBED_DIM = 4
#: mmocr 0.x PANHead: out_conv weights N(0, MMOCR_INIT_STD).
MMOCR_INIT_STD = 0.01


class PANHead(nn.Module):
    """Outputs: ``text_logits`` and ``kernel_logits`` (B, 1, h, w),
    ``text`` / ``kernel`` their sigmoids, ``embedding`` (B, 4, h, w)."""

    def __init__(self, in_channels: int = 512, init: str = "pytorch") -> None:
        super().__init__()
        if init not in HEAD_INITS:
            raise ValueError(f"init must be one of {HEAD_INITS}, got {init!r}")
        self.in_channels = int(in_channels)
        self.out_conv = nn.Conv2d(self.in_channels, NUM_OUTPUTS, 1)
        self.init = init
        with torch.no_grad():
            if init == "mmocr":
                self.out_conv.weight.normal_(0.0, MMOCR_INIT_STD)
                if self.out_conv.bias is not None:
                    self.out_conv.bias.zero_()
            elif init == "pan_pp":
                k = self.out_conv.kernel_size
                self.out_conv.weight.normal_(0.0, math.sqrt(2.0 / (k[0] * k[1] * NUM_OUTPUTS)))

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
