"""TCM's auxiliary loss on the score map (TCM.md section 5).

The score logits S / tau (B, 1, h, w) are compared with a target the
detector plugin derives from its own training targets
(``TCMSupport.aux_target``): DBNet's shrunk text mask, PANet's text region,
FCENet's 1/32 polygon mask. For DB / PAN the logits are first upsampled
bilinearly (align_corners=False) to the target's size (x32).

The balanced BCE is the *intended* loss: each image's pixel losses are
paired with that image's own target and mask, and its hard negatives (3 x
its positives) are mined among its own pixels
(:func:`tcmbench.models.losses.balanced_bce_loss` with
``per_image_mining=True``; the sum is divided by the number of counted
pixels, as in DBNet). The official code broadcasts the (N, 1, H, W) loss
against (N, H, W) masks, which gives an (N, N, H, W) tensor pairing every
image's loss with every other image's positives and negatives, then mines
negatives over that whole tensor. With batch 1 both agree; with batch > 1
the official loss is not the one the paper describes (docs/tcm.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.models.losses import balanced_bce_loss

AUX_LOSSES = ("balanced_bce", "ohem_dice")


def _flat(x: Tensor, batch: int) -> Tensor:
    return x.reshape(batch, -1).float()


def ohem_mask(logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float = 3.0) -> Tensor:
    """PAN-style online hard example mining, per image: keep the positives
    and the highest-scoring ``negative_ratio`` x #positives negatives inside
    ``mask``; an image without positives keeps its whole mask."""
    b = logits.shape[0]
    x = _flat(logits, b).detach()
    gt = _flat(target, b) > 0.5
    m = _flat(mask, b) > 0.5
    selected = torch.zeros_like(m)
    for i in range(b):
        pos = gt[i] & m[i]
        neg = ~gt[i] & m[i]
        n_pos = int(pos.sum())
        n_neg = min(int(neg.sum()), n_pos * int(negative_ratio))
        if n_pos == 0 or n_neg == 0:
            selected[i] = m[i]
            continue
        threshold = torch.topk(x[i][neg], n_neg).values[-1]
        selected[i] = ((x[i] >= threshold) | gt[i]) & m[i]
    return selected.float()


def ohem_dice_with_logits(
    logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float = 3.0, smooth: float = 1e-3
) -> Tensor:
    """Dice loss on sigmoid(logits) over the OHEM-selected pixels (PAN)."""
    b = logits.shape[0]
    sel = ohem_mask(logits, target, mask, negative_ratio)
    p = torch.sigmoid(_flat(logits, b)) * sel
    g = (_flat(target, b) > 0.5).float() * sel
    inter = (p * g).sum(dim=1)
    dice = 2 * inter / ((p * p).sum(dim=1) + (g * g).sum(dim=1) + 2 * smooth)
    return (1.0 - dice).mean()


TCM_TARGET_KEYS = ("tcm_target", "tcm_mask")


@dataclass
class TCMSampleTargets:
    """The detector's target builder plus TCM's per-sample auxiliary
    target (``TCMSupport.sample_target``), stored under
    :data:`TCM_TARGET_KEYS`. It runs in the data loader, per augmented
    sample, so a plugin can draw the score-map target from the polygons
    themselves (FCENet fills *every* instance at 1/32, where its own
    targets keep each polygon on one pyramid level only)."""

    base: Callable[..., Mapping[str, Any]]
    sample_target: Callable[..., tuple[Any, Any]]

    def __call__(
        self, polygons: Sequence[Any], ignores: Sequence[bool], height: int, width: int
    ) -> dict[str, Any]:
        targets = dict(self.base(polygons, ignores, height, width))
        clash = [k for k in TCM_TARGET_KEYS if k in targets]
        if clash:
            raise ValueError(f"the detector's targets already use TCM's keys {clash}")
        target, mask = self.sample_target(polygons, ignores, height, width)
        targets["tcm_target"], targets["tcm_mask"] = target, mask
        return targets


def sample_aux_target(targets: Mapping[str, Any], score_logits: Any = None) -> tuple[Any, Any]:
    """The auxiliary target of a plugin with ``TCMSupport.sample_target``:
    what :class:`TCMSampleTargets` put into the batch."""
    return targets["tcm_target"], targets["tcm_mask"]


class TCMAuxLoss(nn.Module):
    """The auxiliary loss term ``loss_tcm`` added to the detector's loss.

    ``aux_target(targets, score_logits) -> (target, mask)`` comes from the
    plugin's :class:`~tcmbench.models.spec.TCMSupport`; it receives the
    score logits at 1/32 so that a plugin can build its target at that size
    (FCENet) instead of asking for upsampling.
    """

    def __init__(
        self,
        aux_target: Callable[..., Any],
        kind: str = "balanced_bce",
        upsample: bool = True,
        weight: float = 1.0,
        negative_ratio: float = 3.0,
    ) -> None:
        super().__init__()
        if kind not in AUX_LOSSES:
            raise ValueError(f"unknown TCM auxiliary loss {kind!r}; expected one of {AUX_LOSSES}")
        self.aux_target = aux_target
        self.kind = kind
        self.upsample = bool(upsample)
        self.weight = float(weight)
        self.negative_ratio = float(negative_ratio)

    def forward(self, outputs: dict[str, Any], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = outputs["tcm_score_logits"]
        target, mask = self.aux_target(targets, logits)
        target = torch.as_tensor(target, device=logits.device)
        mask = torch.as_tensor(mask, device=logits.device)
        size = tuple(target.shape[-2:])
        if self.upsample and tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        if self.kind == "balanced_bce":
            value = balanced_bce_loss(
                logits,
                (target > 0).to(logits.dtype),
                mask,
                self.negative_ratio,
                per_image_mining=True,
            )
        else:
            value = ohem_dice_with_logits(logits, target, mask, self.negative_ratio)
        return {"loss_tcm": self.weight * value}
