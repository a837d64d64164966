"""FCEHead: one classification and one regression conv shared by all
pyramid levels (mmocr's FCEHead layout).

- ``out_conv_cls``: 3x3 conv -> 4 channels, two 2-class logit pairs:
  channels 0-1 text region (background, text), 2-3 text-centre region;
- ``out_conv_reg``: 3x3 conv -> (2K + 1) x 2 = 22 channels (K = 5): the
  real parts of c_-K..c_K, then their imaginary parts, in the level's pixel
  units with c_0 relative to the pixel (tcmbench_fcenet.targets).

``head_convs`` (0 = mmocr's head) puts that many 3x3 conv + ReLU layers,
shared by both outputs and all levels, in front of the two output convs.
mmocr's FPN has no activation, so without them the head is linear in the
backbone features; an ImageNet ResNet50 does not need more. For the small
synthtext-mini model trained from scratch two such layers made learning
slower, not faster (docs/benchmarks/training.md), so no recipe uses them.

Outputs, lists with one (B, C, h, w) tensor per level (strides 8, 16, 32):
``cls_logits``, ``reg``; in eval mode also ``text_prob`` and
``center_prob`` (B, 1, h, w): the softmax probability of the positive
class, which is all the postprocessor needs from the logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class FCEHead(nn.Module):
    def __init__(
        self, in_channels: int = 256, fourier_degree: int = 5, head_convs: int = 0
    ) -> None:
        super().__init__()
        if int(fourier_degree) < 1:
            raise ValueError(f"fourier_degree must be >= 1, got {fourier_degree}")
        self.in_channels = int(in_channels)
        self.fourier_degree = int(fourier_degree)
        layers: list[nn.Module] = []
        for _ in range(int(head_convs)):
            conv = nn.Conv2d(self.in_channels, self.in_channels, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
        # Absent (not an empty Sequential) without convs: mmocr's state-dict names.
        self.tower = nn.Sequential(*layers) if layers else None
        self.out_conv_cls = nn.Conv2d(self.in_channels, 4, 3, padding=1)
        self.out_conv_reg = nn.Conv2d(
            self.in_channels, (2 * self.fourier_degree + 1) * 2, 3, padding=1
        )
        for conv in (self.out_conv_cls, self.out_conv_reg):
            nn.init.normal_(conv.weight, std=0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, feats: Sequence[Tensor]) -> dict[str, list[Tensor]]:
        if self.tower is not None:
            feats = [self.tower(f) for f in feats]
        cls = [self.out_conv_cls(f) for f in feats]
        reg = [self.out_conv_reg(f) for f in feats]
        out: dict[str, list[Tensor]] = {"cls_logits": cls, "reg": reg}
        if not self.training:
            out["text_prob"] = [torch.softmax(c[:, 0:2].float(), dim=1)[:, 1:2] for c in cls]
            out["center_prob"] = [torch.softmax(c[:, 2:4].float(), dim=1)[:, 1:2] for c in cls]
        return out
