"""DBNet loss: L = alpha L_s + beta L_t + L_b (DBNet eq. 5, mmocr's DBLoss).

- L_s: balanced BCE with 3:1 hard negative mining on the probability map
  against ``gt_shrink`` where ``gt_shrink_mask`` is 1 (alpha = 5); with
  ``prob_loss="dice"`` the dice loss instead, as PaddleOCR's DB configs
  train (``main_loss_type: DiceLoss``);
- L_b: dice loss of the approximate binary map against the same target;
- L_t: L1 of the threshold map against ``gt_thr`` inside ``gt_thr_mask``
  (beta = 10).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from tcmbench.models.losses import balanced_bce_loss, dice_loss, masked_l1_loss


class DBLoss(nn.Module):
    """``(outputs, targets) -> {"loss", "loss_prob", "loss_thr", "loss_db"}``;
    the parts are reported unweighted, ``loss`` is the weighted total."""

    def __init__(
        self,
        alpha: float = 5.0,
        beta: float = 10.0,
        negative_ratio: float = 3.0,
        eps: float = 1e-6,
        prob_loss: str = "bce",
        binary_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.binary_weight = binary_weight
        if prob_loss not in ("bce", "dice"):
            raise ValueError(f"prob_loss must be 'bce' or 'dice', got {prob_loss!r}")
        self.prob_loss = prob_loss
        self.alpha = alpha
        self.beta = beta
        self.negative_ratio = negative_ratio
        self.eps = eps

    def forward(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        if "thr" not in outputs or "binary" not in outputs:
            raise ValueError(
                "DBLoss needs the threshold and binary maps: run the head in training mode "
                "(model.train()) or set DBHead.threshold_in_eval"
            )
        shrink, shrink_mask = targets["gt_shrink"], targets["gt_shrink_mask"]
        if self.prob_loss == "dice":
            loss_prob = dice_loss(outputs["prob"], shrink, shrink_mask, eps=self.eps)
        else:
            loss_prob = balanced_bce_loss(
                outputs["prob_logits"],
                shrink,
                shrink_mask,
                negative_ratio=self.negative_ratio,
                eps=self.eps,
            )
        loss_db = dice_loss(outputs["binary"], shrink, shrink_mask, eps=self.eps)
        loss_thr = masked_l1_loss(
            outputs["thr"], targets["gt_thr"], targets["gt_thr_mask"], eps=self.eps
        )
        total = self.alpha * loss_prob
        # A term weighted 0 stays out of the graph: its parameters then get no
        # gradient at all, so the optimizer (weight decay included) leaves them.
        if self.beta:
            total = total + self.beta * loss_thr
        if self.binary_weight:
            total = total + self.binary_weight * loss_db
        return {"loss": total, "loss_prob": loss_prob, "loss_thr": loss_thr, "loss_db": loss_db}
