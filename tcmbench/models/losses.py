"""Loss pieces shared by detectors and the TCM auxiliary loss.

All functions take a prediction and its target / mask as (B, H, W) or
(B, 1, H, W) tensors and flatten each explicitly to (B, H*W) after checking
that the shapes agree per image. Nothing is left to broadcasting: the
official TCM code broadcasts (N, 1, H, W) against (N, H, W), which silently
compares every image with every other image's target (TCM.md section 5);
here such a call is a ValueError. Where a recipe asks for that official
behaviour, :func:`tcmbench.tcm.loss.broadcast_balanced_bce_loss` writes the
pairing out explicitly.

Losses are computed in float32 so they stay stable under mixed precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def flatten_per_image(pred: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """``pred`` and ``others`` as float32 (B, N) tensors, after checking that
    every tensor has the same batch size and the same number of elements per
    image (a channel dimension of 1 is allowed on either side)."""
    if pred.dim() < 1:
        raise ValueError("prediction must have a batch dimension")
    batch = pred.shape[0]
    per_image = pred[0].numel() if batch else 0
    out = [pred.reshape(batch, -1).float()]
    for t in others:
        if t.shape[0] != batch or (batch and t[0].numel() != per_image):
            raise ValueError(
                f"shape mismatch: prediction {tuple(pred.shape)} vs target/mask {tuple(t.shape)}"
            )
        squeezed_pred = [d for d in pred.shape[1:] if d != 1]
        squeezed_t = [d for d in t.shape[1:] if d != 1]
        if squeezed_pred != squeezed_t:
            raise ValueError(
                f"shape mismatch: prediction {tuple(pred.shape)} vs target/mask {tuple(t.shape)}"
            )
        out.append(t.reshape(batch, -1).to(device=pred.device, dtype=torch.float32))
    return tuple(out)


def balanced_bce_loss(
    logits: Tensor,
    target: Tensor,
    mask: Tensor,
    negative_ratio: float = 3.0,
    eps: float = 1e-6,
    per_image_mining: bool = False,
) -> Tensor:
    """Binary cross-entropy with hard negative mining (DBNet's L_s).

    Positives are ``target * mask``, negatives ``(1 - target) * mask``. All
    positive pixels count; of the negatives only the ``negative_ratio`` x
    (number of positives) with the highest loss do. The sum is divided by
    the number of pixels that counted.

    ``logits`` are pre-sigmoid scores (DB probability logits, or TCM's
    score map divided by tau). Mining is over the whole batch, as in DBNet;
    ``per_image_mining=True`` picks each image's hardest negatives from its
    own pixels, which makes the loss independent of batch composition.
    A batch without positives gives a zero loss (with a graph).
    """
    logits, target, mask = flatten_per_image(logits, target, mask)
    positive = target * mask
    negative = (1.0 - target) * mask
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    positive_loss = (loss * positive).sum()
    positive_count = positive.sum(dim=1).round()
    negative_available = negative.sum(dim=1).round()
    negative_loss_map = loss * negative
    if per_image_mining:
        k = torch.minimum(negative_available, torch.floor(positive_count * negative_ratio))
        ranked, _ = negative_loss_map.sort(dim=1, descending=True)
        keep = torch.arange(ranked.shape[1], device=ranked.device)[None, :] < k[:, None]
        negative_loss = (ranked * keep).sum()
        negative_count = k.sum()
    else:
        k_total = int(
            min(negative_available.sum().item(), int(positive_count.sum().item() * negative_ratio))
        )
        if k_total > 0:
            negative_loss = negative_loss_map.reshape(-1).topk(k_total).values.sum()
        else:
            negative_loss = negative_loss_map.sum() * 0.0
        negative_count = torch.tensor(float(k_total), device=logits.device)
    return (positive_loss + negative_loss) / (positive_count.sum() + negative_count + eps)


def dice_loss(pred: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """1 - Dice coefficient of ``pred`` (probabilities) and ``target`` over the
    masked pixels of the whole batch (DBNet's loss on the approximate binary
    map)."""
    pred, target, mask = flatten_per_image(pred, target, mask)
    intersection = (pred * target * mask).sum()
    union = (pred * mask).sum() + (target * mask).sum() + eps
    return 1.0 - 2.0 * intersection / union


def masked_l1_loss(pred: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean absolute error over the masked pixels (DBNet's threshold-map
    loss); zero when the mask is empty."""
    pred, target, mask = flatten_per_image(pred, target, mask)
    return ((pred - target).abs() * mask).sum() / (mask.sum() + eps)
