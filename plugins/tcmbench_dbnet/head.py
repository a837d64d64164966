"""DBHead: probability, threshold and approximate binary maps.

Two branches of the same shape (mmocr's DBHead layout): 3x3 conv to
``in_channels // 4`` + BN + ReLU, then two stride-2 transposed convs (x4),
which brings the 1/4-resolution neck output back to input resolution.
The approximate binary map is B = sigmoid(k (P - T)) with k = 50
(DBNet eq. 2).

The threshold branch only feeds the training loss, so in eval mode it is
skipped (as the DBNet paper does at inference) unless
``threshold_in_eval`` is set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _branch(in_channels: int) -> nn.Sequential:
    inner = max(in_channels // 4, 1)
    return nn.Sequential(
        nn.Conv2d(in_channels, inner, 3, padding=1, bias=False),
        nn.BatchNorm2d(inner),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(inner, inner, 2, stride=2),
        nn.BatchNorm2d(inner),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(inner, 1, 2, stride=2),
    )


class DBHead(nn.Module):
    """Outputs (all (B, 1, H, W)): ``prob_logits`` and ``prob`` (its sigmoid);
    in training (or with ``threshold_in_eval``) also ``thr`` and ``binary``."""

    def __init__(
        self, in_channels: int = 256, k: float = 50.0, threshold_in_eval: bool = False
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.k = float(k)
        self.threshold_in_eval = threshold_in_eval
        self.prob_branch = _branch(self.in_channels)
        self.thr_branch = _branch(self.in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.constant_(m.bias, 1e-4)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        prob_logits = self.prob_branch(x)
        prob = torch.sigmoid(prob_logits)
        out = {"prob_logits": prob_logits, "prob": prob}
        if self.training or self.threshold_in_eval:
            thr = torch.sigmoid(self.thr_branch(x))
            out["thr"] = thr
            out["binary"] = torch.sigmoid(self.k * (prob - thr))
        return out
