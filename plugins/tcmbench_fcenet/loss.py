"""FCENet loss (FCENet eq. 6-8; the terms and weights of mmocr's FCELoss).

Per level, summed over the levels (pixels of the whole batch pooled, as in
mmocr):

- ``loss_text``: cross-entropy of the text logits with online hard example
  mining: all positive pixels (text and valid) and the 3 x #positives
  negatives with the highest loss (valid pixels only); sum / (#pos + #neg).
  A level without positives keeps its 100 hardest negatives;
- ``loss_center``: cross-entropy of the centre logits on the valid text
  pixels (target: the centre map), plus 0.5 x the cross-entropy on all
  other pixels (target 0, which keeps the centre score down off text);
  0 for a level without text;
- ``loss_reg_x``, ``loss_reg_y``: the predicted and target coefficients of
  every valid text pixel are turned back into contours by the inverse
  Fourier transform (M = 50 points), and the smooth-L1 distance of their x
  and y coordinates is averaged, each pixel weighted by
  (text + centre) / 2 (1 on the centre region, 0.5 elsewhere on text).

``loss = loss_text + loss_center + loss_reg_x + loss_reg_y``; the parts
are reported summed over levels, unweighted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench_fcenet.targets import level_keys


def ohem_cross_entropy(
    logits: Tensor, target: Tensor, valid: Tensor, negative_ratio: float = 3.0
) -> Tensor:
    """(P, 2) logits, (P,) {0, 1} target, (P,) bool valid -> scalar."""
    pos = valid & (target > 0)
    neg = valid & (target <= 0)
    n_pos = int(pos.sum())
    loss_pos = F.cross_entropy(logits[pos], target[pos], reduction="sum") if n_pos else None
    loss_neg = F.cross_entropy(logits[neg], target[neg], reduction="none")
    n_neg = min(int(loss_neg.numel()), int(negative_ratio * n_pos) if n_pos else 100)
    if loss_neg.numel() > n_neg:
        loss_neg = torch.topk(loss_neg, n_neg).values
    total = loss_neg.sum() if loss_pos is None else loss_pos + loss_neg.sum()
    return total / max(n_pos + n_neg, 1)


class FCELoss(nn.Module):
    """``(outputs, targets) -> {"loss", "loss_text", "loss_center",
    "loss_reg_x", "loss_reg_y"}`` (module doc)."""

    cos: Tensor  # (2K + 1, M) inverse-transform tables, registered as buffers
    sin: Tensor

    def __init__(
        self,
        fourier_degree: int = 5,
        num_sample: int = 50,
        negative_ratio: float = 3.0,
        num_levels: int = 3,
    ) -> None:
        super().__init__()
        self.fourier_degree = int(fourier_degree)
        self.num_sample = int(num_sample)
        self.negative_ratio = float(negative_ratio)
        self.num_levels = int(num_levels)
        k = torch.arange(-self.fourier_degree, self.fourier_degree + 1, dtype=torch.float64)
        m = torch.arange(self.num_sample, dtype=torch.float64)
        angle = 2.0 * math.pi * k[:, None] * m[None, :] / self.num_sample
        self.register_buffer("cos", torch.cos(angle).float(), persistent=False)
        self.register_buffer("sin", torch.sin(angle).float(), persistent=False)

    def contours(self, reals: Tensor) -> tuple[Tensor, Tensor]:
        """(P, 4K + 2) coefficient rows -> x (P, M) and y (P, M)."""
        n = 2 * self.fourier_degree + 1
        a, b = reals[:, :n], reals[:, n : 2 * n]
        cos, sin = self.cos.to(reals.dtype), self.sin.to(reals.dtype)
        return a @ cos - b @ sin, a @ sin + b @ cos

    def level(
        self, cls: Tensor, reg: Tensor, targets: Mapping[str, Tensor], level: int
    ) -> list[Tensor]:
        k_text, k_center, k_mask, k_coeff = level_keys(level)
        text, center, mask = targets[k_text], targets[k_center], targets[k_mask]
        coeff = targets[k_coeff]
        if cls.shape[-2:] != text.shape[-2:] or reg.shape[-2:] != coeff.shape[-2:]:
            raise ValueError(
                f"level {level}: prediction {tuple(cls.shape[-2:])} and target "
                f"{tuple(text.shape[-2:])} sizes differ (pad inputs to a multiple of 32)"
            )
        cls = cls.float().permute(0, 2, 3, 1).reshape(-1, 4)
        reg = reg.float().permute(0, 2, 3, 1).reshape(-1, reg.shape[1])
        gt_coeff = coeff.float().permute(0, 2, 3, 1).reshape(-1, coeff.shape[1])
        text = text.reshape(-1) > 0.5
        center = center.reshape(-1) > 0.5
        valid = mask.reshape(-1) > 0.5
        loss_text = ohem_cross_entropy(cls[:, 0:2], text.long(), valid, self.negative_ratio)
        train = text & valid
        zero = cls.sum() * 0.0
        if not bool(train.any()):
            return [loss_text, zero, zero, zero]
        center_logits = cls[:, 2:4]
        loss_center = F.cross_entropy(center_logits[train], center[train].long())
        rest = ~train
        if bool(rest.any()):
            loss_center = loss_center + 0.5 * F.cross_entropy(
                center_logits[rest], center[rest].long()
            )
        weight = ((text[train].float() + center[train].float()) / 2.0)[:, None]
        px, py = self.contours(reg[train])
        gx, gy = self.contours(gt_coeff[train])
        loss_x = torch.mean(weight * F.smooth_l1_loss(px, gx, reduction="none"))
        loss_y = torch.mean(weight * F.smooth_l1_loss(py, gy, reduction="none"))
        return [loss_text, loss_center, loss_x, loss_y]

    def forward(
        self, outputs: Mapping[str, Sequence[Tensor]], targets: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        cls_levels, reg_levels = outputs["cls_logits"], outputs["reg"]
        if len(cls_levels) != self.num_levels or len(reg_levels) != self.num_levels:
            raise ValueError(
                f"FCELoss expects {self.num_levels} levels, got {len(cls_levels)} / {len(reg_levels)}"
            )
        parts = [
            self.level(c, r, targets, i) for i, (c, r) in enumerate(zip(cls_levels, reg_levels))
        ]
        names = ("loss_text", "loss_center", "loss_reg_x", "loss_reg_y")
        losses = {n: sum(p[j] for p in parts) for j, n in enumerate(names)}
        losses["loss"] = sum(losses[n] for n in names)
        return losses  # type: ignore[return-value]
