"""TCM's auxiliary loss on the score map (TCM.md section 5).

The score logits S / tau (B, 1, h, w) are compared with a target the
detector plugin derives from its own training targets
(``TCMSupport.aux_target``): DBNet's shrunk text mask, PANet's text region,
FCENet's 1/32 polygon mask. For DB / PAN the logits are first upsampled
bilinearly (align_corners=False) to the target's size (x32).

Balanced BCE (DBNet, FCENet) comes in two batchings, chosen by the recipe
key ``tcm.aux_loss_batching`` (:data:`AUX_LOSS_BATCHINGS`):

- ``official_broadcast`` (the default, as the authors' code runs it):
  ``IdentityHead.balance_bce_loss`` in wenwenyu/TCM
  (``ocrclip/ocrclip/heads.py``) multiplies the (N, 1, H, W) pixel losses by
  the (N, H, W) positive / negative masks, which broadcasts to (N, N, H, W):
  image i's loss is paired with image j's positives and negatives for every
  (i, j), the hard negatives (3 x the batch's positives) are mined over that
  mixed tensor, and the sum is divided by the batch's positives plus the
  mined count (:func:`broadcast_balanced_bce_loss`);
- ``per_image`` (the loss the paper describes): each image's pixel losses
  meet only its own target and mask, its hard negatives are mined among its
  own pixels (:func:`tcmbench.models.losses.balanced_bce_loss` with
  ``per_image_mining=True``).

With batch 1 both are the same loss. PANet's OHEM-dice is per image in the
official code too (``PANIdentityHead``), so the batching does not apply to
it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.contract.spec import AUX_LOSS_BATCHINGS, DEFAULT_AUX_LOSS_BATCHING
from tcmbench.models.losses import balanced_bce_loss, flatten_per_image

AUX_LOSSES = ("balanced_bce", "ohem_dice")


def _flat(x: Tensor, batch: int) -> Tensor:
    return x.reshape(batch, -1).float()


def ohem_mask(logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float = 3.0) -> Tensor:
    """PAN-style online hard example mining, per image, as mmocr 0.x's
    ``PANLoss.ohem_img`` (and wenwenyu/TCM's ``PANIdentityHead.ohem_img``)
    does it: the positives are the text pixels inside ``mask``; the number
    of negatives kept is min(``negative_ratio`` x positives, all non-text
    pixels), and their score threshold is taken among *all* non-text pixels
    of the image, inside the mask or not (ignored regions compete too);
    then positives and negatives scoring at least the threshold are kept,
    inside ``mask``. An image without positives (or without non-text
    pixels) keeps its whole mask."""
    b = logits.shape[0]
    x = _flat(logits, b).detach()
    gt = _flat(target, b) > 0.5
    m = _flat(mask, b) > 0.5
    selected = torch.zeros_like(m)
    for i in range(b):
        n_pos = int((gt[i] & m[i]).sum())
        negatives = x[i][~gt[i]]
        n_neg = int(min(n_pos * negative_ratio, negatives.numel()))
        if n_pos == 0 or n_neg == 0:
            selected[i] = m[i]
            continue
        threshold = torch.topk(negatives, n_neg).values[-1]
        selected[i] = ((x[i] >= threshold) | gt[i]) & m[i]
    return selected.float()


def ohem_dice_with_logits(
    logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float = 3.0, smooth: float = 1e-3
) -> Tensor:
    """Dice loss on sigmoid(logits) over the OHEM-selected pixels, per image,
    averaged over the batch, with the official smoothing (mmocr 0.x
    ``PANLoss.dice_loss_with_logits``, TCM's ``PANIdentityHead``: ``a = sum(p
    g) + s``, ``b = sum(p p) + s``, ``c = sum(g g) + s``, loss ``1 - 2a / (b +
    c)``): the smoothing term is in the numerator too, so an image without
    text and an empty prediction scores 0, not 1."""
    b = logits.shape[0]
    sel = ohem_mask(logits, target, mask, negative_ratio)
    p = torch.sigmoid(_flat(logits, b)) * sel
    g = (_flat(target, b) > 0.5).float() * sel
    a = (p * g).sum(dim=1) + smooth
    union = (p * p).sum(dim=1) + smooth + (g * g).sum(dim=1) + smooth
    return (1.0 - 2.0 * a / union).mean()


def _sum_top_k_of_outer(loss: Tensor, negative: Tensor, k: int) -> Tensor:
    """Sum of the ``k`` largest entries of ``loss[i, p] * negative[j, p]``
    over (i, j, p), the (N, N, H*W) tensor the official code builds.

    With a 0/1 ``negative`` that tensor holds ``loss[i, p]`` once for every
    image j where pixel p is negative, and zeros: the same sum comes from
    sorting the (N, H*W) losses and taking each with that multiplicity, in
    N x H*W memory instead of N^2 x H*W (batch 16 at 640 x 640 would need
    1.7 GB). Any other mask is multiplied out as the official code does."""
    if k <= 0:
        return loss.sum() * 0.0
    if not bool(((negative == 0) | (negative == 1)).all()):
        dense = loss[:, None, :] * negative[None, :, :]
        return dense.reshape(-1).topk(k).values.sum()
    copies = negative.sum(dim=0, dtype=torch.float64).expand_as(loss).reshape(-1)
    values = loss.reshape(-1)
    order = torch.argsort(values.detach(), descending=True)
    copies = copies[order]
    before = torch.cumsum(copies, 0) - copies
    taken = torch.minimum((k - before).clamp(min=0.0), copies)
    return (values[order] * taken.to(values.dtype)).sum()


def broadcast_balanced_bce_loss(
    logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float = 3.0, eps: float = 1e-6
) -> Tensor:
    """Balanced BCE as wenwenyu/TCM's ``IdentityHead.balance_bce_loss``
    computes it for a batch (``tcm.aux_loss_batching: official_broadcast``).

    With per-image pixel losses L_i (each against its own target), positives
    P_j = target_j * mask_j and negatives Q_j = (1 - target_j) * mask_j:

    - ``pos = int(sum_j P_j)``, ``k = min(int(sum_j Q_j), int(pos * ratio))``
      (batch totals, counted once);
    - positive term ``sum_{i,j,p} L_i[p] P_j[p]`` (every image's loss meets
      every image's positives);
    - negative term: the ``k`` largest entries of ``L_i[p] Q_j[p]`` over
      (i, j, p);
    - loss = (positive term + negative term) / (pos + k + eps).

    For batch 1 it is the intended balanced BCE.
    """
    logits, target, mask = flatten_per_image(logits, target, mask)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    positive = target * mask
    negative = (1.0 - target) * mask
    positive_count = int(positive.sum().item())
    negative_count = min(int(negative.sum().item()), int(positive_count * negative_ratio))
    positive_loss = (loss.sum(dim=0) * positive.sum(dim=0)).sum()
    negative_loss = _sum_top_k_of_outer(loss, negative, negative_count)
    return (positive_loss + negative_loss) / (positive_count + negative_count + eps)


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
    plugin's :class:`~tcmbench.contract.spec.TCMSupport`; it receives the
    score logits at 1/32 so that a plugin can build its target at that size
    (FCENet) instead of asking for upsampling. ``batching`` (one of
    :data:`AUX_LOSS_BATCHINGS`) decides how a batch's balanced BCE is
    combined (module doc).
    """

    def __init__(
        self,
        aux_target: Callable[..., Any],
        kind: str = "balanced_bce",
        upsample: bool = True,
        weight: float = 1.0,
        negative_ratio: float = 3.0,
        batching: str = DEFAULT_AUX_LOSS_BATCHING,
    ) -> None:
        super().__init__()
        if kind not in AUX_LOSSES:
            raise ValueError(f"unknown TCM auxiliary loss {kind!r}; expected one of {AUX_LOSSES}")
        if batching not in AUX_LOSS_BATCHINGS:
            raise ValueError(
                f"unknown tcm.aux_loss_batching {batching!r}; expected one of {AUX_LOSS_BATCHINGS}"
            )
        self.batching = batching
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
        if self.kind == "balanced_bce" and self.batching == "official_broadcast":
            value = broadcast_balanced_bce_loss(
                logits, (target > 0).to(logits.dtype), mask, self.negative_ratio
            )
        elif self.kind == "balanced_bce":
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
