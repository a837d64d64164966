"""PANet loss (PAN paper eq. 1-4): L = L_tex + alpha L_ker + beta (L_agg + L_dis).

- L_tex: dice loss of the text map over the pixels OHEM keeps (every
  positive and the 3 x #positives highest-scoring negatives, per image;
  :func:`tcmbench.tcm.loss.ohem_mask`) inside the valid mask;
- L_ker: dice loss of the kernel map, only on pixels inside text:
  ``kernel_mask="gt"`` uses the ground-truth text region (mmocr 0.x,
  the official PAN code), ``"pred"`` the predicted one (text > 0.5, as
  PSENet); both are intersected with the valid mask;
- L_agg (eq. 2): for every text instance i with kernel K_i, mean over its
  text pixels p of log(1 + max(0, ||F(p) - G(K_i)|| - delta_agg)^2), where
  F is the 4-d embedding and G(K_i) the mean embedding of the kernel;
  averaged over the image's instances;
- L_dis (eq. 3): log(1 + max(0, delta_dis - ||G(K_i) - G(K_j)||)^2)
  summed over pairs of kernels and divided by N (N - 1); ``dis_pairs``
  says which pairs: ``unordered`` (mmocr 0.x ``pan_loss.py``:
  ``itertools.combinations`` over the kernel means, then ``/= (num_inst *
  (num_inst - 1))``: half the paper's value) or ``ordered`` (the paper's
  eq. 3 and pan_pp.pytorch ``EmbLoss_v1``, a mean over the ordered pairs);

alpha = 0.5, beta = 0.25, delta_agg = 0.5, delta_dis = 3. Every term is a
mean over the batch's images.

The aggregation and discrimination terms are computed for all instances
of an image at once (``index_add`` / ``bincount`` over instance ids), not
by a Python loop over instances. Targets come at input resolution and are
brought to the head's resolution by nearest sampling, so instance ids stay
ids; ``target_sampling`` says which input pixel map pixel i samples:
``corner`` (4 i: mmocr's ``BitmapMasks.rescale``, OpenCV's nearest
resize, which the ``mmocr`` box geometry maps back) or ``centre`` (4 i +
2, ``nearest-exact``: tcmbench, which the ``grown`` geometry maps back).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.models.losses import flatten_per_image
from tcmbench.tcm.loss import ohem_mask
from tcmbench_pan.options import DIS_PAIRS, KERNEL_MASKS, TARGET_SAMPLINGS

_EPS = 1e-12


def dice_loss_with_logits(
    logits: Tensor, target: Tensor, mask: Tensor, smooth: float = 1e-3
) -> Tensor:
    """PAN's dice loss per image, 1 - 2 (sum pg + s) / (sum p^2 + sum g^2 +
    2 s) over the masked pixels, averaged over the batch. The smoothing term
    in the numerator makes an image without text score 0 for an empty
    prediction and still pushes false positives down."""
    logits, target, mask = flatten_per_image(logits, target, mask)
    p = torch.sigmoid(logits) * mask
    g = (target > 0.5).float() * mask
    inter = (p * g).sum(dim=1) + smooth
    union = (p * p).sum(dim=1) + (g * g).sum(dim=1) + 2 * smooth
    return (1.0 - 2.0 * inter / union).mean()


def downsample_targets(
    targets: Mapping[str, Tensor], size: tuple[int, int], sampling: str = "centre"
) -> dict[str, Tensor]:
    """``gt_text``, ``gt_kernel``, ``gt_mask`` (B, H, W) at ``size``, each
    output pixel a copy of one input pixel (no interpolation between ids):
    the centre of its block (``centre``) or its top-left corner
    (``corner``)."""
    mode = TARGET_SAMPLINGS[sampling]
    out = {}
    for key in ("gt_text", "gt_kernel", "gt_mask"):
        t = targets[key]
        if t.dim() == 4:
            t = t[:, 0]
        if tuple(t.shape[-2:]) != tuple(size):
            t = F.interpolate(t[:, None].float(), size=size, mode=mode)[:, 0]
        out[key] = t
    return out


def aggregation_discrimination(
    text_ids: Tensor,
    kernel_ids: Tensor,
    embedding: Tensor,
    valid: Tensor,
    delta_agg: float = 0.5,
    delta_dis: float = 3.0,
    dis_pairs: str = "ordered",
) -> tuple[Tensor, Tensor]:
    """(L_agg, L_dis) averaged over the batch (``dis_pairs``: module doc).

    ``text_ids`` / ``kernel_ids`` (B, h, w) instance ids (0 background),
    ``embedding`` (B, D, h, w), ``valid`` (B, h, w) pixels that count. An
    instance counts when it has both kernel and text pixels; an image with
    no such instance contributes 0 to L_agg, one with fewer than two 0 to
    L_dis.
    """
    b, d = embedding.shape[:2]
    emb = embedding.reshape(b, d, -1).float()
    texts = text_ids.reshape(b, -1).round().long()
    kernels = kernel_ids.reshape(b, -1).round().long()
    valids = valid.reshape(b, -1) > 0.5
    zero = emb.sum() * 0.0  # keeps the graph for images without instances
    aggs, diss = [], []
    for e, t, k, v in zip(emb, texts, kernels, valids):
        t = torch.where(v, t, torch.zeros_like(t))
        k = torch.where(v & (k == t), k, torch.zeros_like(k))
        n = int(max(int(t.max()), int(k.max()))) if t.numel() else 0
        if n == 0:
            aggs.append(zero)
            diss.append(zero)
            continue
        k_count = torch.bincount(k, minlength=n + 1).to(e.dtype)
        t_count = torch.bincount(t, minlength=n + 1).to(e.dtype)
        present = (k_count > 0) & (t_count > 0)
        present[0] = False
        sums = torch.zeros(d, n + 1, dtype=e.dtype, device=e.device).index_add(1, k, e)
        means = sums / k_count.clamp(min=1.0)
        # L_agg: every text pixel of a present instance against its kernel mean.
        sel = present[t]
        ids = t[sel]
        diff = e[:, sel] - means[:, ids]
        dist = torch.sqrt((diff * diff).sum(dim=0) + _EPS)
        pix = torch.log1p(F.relu(dist - delta_agg) ** 2)
        per_inst = torch.zeros(n + 1, dtype=e.dtype, device=e.device).index_add(0, ids, pix)
        per_inst = per_inst[present] / t_count[present]
        aggs.append(per_inst.mean() if per_inst.numel() else zero)
        # L_dis: every pair of kernel means, once (unordered) or twice (ordered).
        m = means[:, present].t()
        num = m.shape[0]
        if num < 2:
            diss.append(zero)
            continue
        i, j = torch.triu_indices(num, num, offset=1, device=m.device)
        gap = m[i] - m[j]
        pair = torch.sqrt((gap * gap).sum(dim=1) + _EPS)
        term = torch.log1p(F.relu(delta_dis - pair) ** 2)
        pairs = 1.0 if dis_pairs == "unordered" else 2.0
        diss.append(pairs * term.sum() / (num * (num - 1)))
    return torch.stack(aggs).mean(), torch.stack(diss).mean()


class PANLoss(nn.Module):
    """``(outputs, targets) -> {"loss", "loss_text", "loss_kernel",
    "loss_agg", "loss_dis"}``; the parts are reported unweighted."""

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.25,
        delta_agg: float = 0.5,
        delta_dis: float = 3.0,
        ohem_ratio: float = 3.0,
        kernel_mask: str = "gt",
        dis_pairs: str = "ordered",
        target_sampling: str = "centre",
    ) -> None:
        super().__init__()
        if kernel_mask not in KERNEL_MASKS:
            raise ValueError(f"kernel_mask must be one of {KERNEL_MASKS}, got {kernel_mask!r}")
        if dis_pairs not in DIS_PAIRS:
            raise ValueError(f"dis_pairs must be one of {DIS_PAIRS}, got {dis_pairs!r}")
        if target_sampling not in TARGET_SAMPLINGS:
            raise ValueError(
                f"target_sampling must be one of {tuple(TARGET_SAMPLINGS)}, got {target_sampling!r}"
            )
        self.dis_pairs = dis_pairs
        self.target_sampling = target_sampling
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.delta_agg = float(delta_agg)
        self.delta_dis = float(delta_dis)
        self.ohem_ratio = float(ohem_ratio)
        self.kernel_mask = kernel_mask

    def forward(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        text_logits = outputs["text_logits"].float()
        kernel_logits = outputs["kernel_logits"].float()
        embedding = outputs["embedding"].float()
        size = (int(text_logits.shape[-2]), int(text_logits.shape[-1]))
        gt = downsample_targets(targets, size, self.target_sampling)
        text, kernel, valid = gt["gt_text"], gt["gt_kernel"], gt["gt_mask"]
        text_bin = (text > 0.5).float()
        selected = ohem_mask(text_logits, text_bin, valid, self.ohem_ratio).reshape(text_bin.shape)
        loss_text = dice_loss_with_logits(text_logits, text_bin, selected)
        if self.kernel_mask == "gt":
            inside = text_bin * valid
        else:
            inside = (torch.sigmoid(text_logits.detach())[:, 0] > 0.5).float() * valid
        loss_kernel = dice_loss_with_logits(kernel_logits, (kernel > 0.5).float(), inside)
        loss_agg, loss_dis = aggregation_discrimination(
            text, kernel, embedding, valid, self.delta_agg, self.delta_dis, self.dis_pairs
        )
        total = loss_text + self.alpha * loss_kernel + self.beta * (loss_agg + loss_dis)
        return {
            "loss": total,
            "loss_text": loss_text,
            "loss_kernel": loss_kernel,
            "loss_agg": loss_agg,
            "loss_dis": loss_dis,
        }
