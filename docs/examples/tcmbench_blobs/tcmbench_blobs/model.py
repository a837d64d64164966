"""The blobs detector's torch parts: ``build_parts(config) -> DetectorParts``.

MobileNetV3 / ResNet stages -> FPNC -> a 1x1 conv giving one text logit per
pixel, trained with BCE + dice against the filled polygons; connected
regions above a threshold come out as rotated rectangles. The smallest
detector that uses every part of the contract (docs/plugins.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.contract.options import Opt, check_options, resolve_options
from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.schema import Prediction
from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench.models.losses import dice_loss
from tcmbench.models.necks import FPNC

OPTIONS: dict[str, Opt] = {
    "neck_channels": Opt(128, "int", ge=4, le=1024, help="FPNC lateral width (head sees it)"),
    "postprocess": Opt(None, "dict", nullable=True, help="BlobsPostprocessor parameters"),
}
POSTPROCESS_PARAMS: dict[str, Opt] = {
    "thr": Opt(0.5, "float", ge=0, le=1, help="text probability threshold"),
    "min_score": Opt(0.6, "float", ge=0, le=1, help="minimum mean probability of a region"),
    "min_area": Opt(16.0, "float", ge=0, help="minimum region area (input pixels)"),
}


class BlobsHead(nn.Module):
    """One text logit per pixel. The neck's output is at 1/4; the logits are
    upsampled to the input size, so targets, loss and post-processing all
    work in input pixels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out = nn.Conv2d(in_channels, 1, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        logits = F.interpolate(self.out(x), scale_factor=4, mode="bilinear", align_corners=False)
        return {"text_logits": logits, "text": torch.sigmoid(logits)}


class BlobsLoss(nn.Module):
    """BCE + dice on the text map; don't-care pixels (gt_mask 0) count for
    nothing. The total is "loss"; the named terms are logged."""

    def forward(self, outputs: dict[str, Any], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = outputs["text_logits"][:, 0].float()
        gt, mask = targets["gt_text"], targets["gt_mask"]
        bce = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
        bce = (bce * mask).sum() / mask.sum().clamp(min=1.0)
        dice = dice_loss(torch.sigmoid(logits), gt, mask)
        return {"loss": bce + dice, "loss_bce": bce, "loss_dice": dice}


def blobs_targets(
    polygons: list[np.ndarray], ignores: list[bool], height: int, width: int
) -> dict[str, np.ndarray]:
    """float32 (height, width) maps of one augmented, padded training image:
    gt_text (cared-for polygons filled with 1) and gt_mask (0 on ignored
    ones). Same keys and size for every image: they are stacked."""
    text = np.zeros((height, width), np.float32)
    mask = np.ones((height, width), np.float32)
    for poly, ignore in zip(polygons, ignores):
        points = [np.round(poly).astype(np.int32).reshape(-1, 1, 2)]
        cv2.fillPoly(mask if ignore else text, points, 0.0 if ignore else 1.0)
    return {"gt_text": text, "gt_mask": mask}


@dataclass(frozen=True)
class BlobsPostprocessor:
    """Connected regions of text > thr -> rotated rectangles, in the
    original image's pixels."""

    thr: float = 0.5
    min_score: float = 0.6
    min_area: float = 16.0

    def with_params(self, **params: Any) -> BlobsPostprocessor:
        """A copy with a recipe's ``postprocess`` values. A bad one must be a
        PluginError (the CLI prints it as one line), never a TypeError."""
        checked = check_options("blobs", POSTPROCESS_PARAMS, params, what="postprocess parameter")
        return replace(self, **checked)

    def __call__(
        self, outputs: dict[str, Any], metas: list[dict[str, Any]]
    ) -> list[list[Prediction]]:
        text = outputs["text"].detach().float().cpu().numpy()[:, 0]
        return [self.image(t, meta) for t, meta in zip(text, metas)]

    def image(self, text: np.ndarray, meta: dict[str, Any]) -> list[Prediction]:
        h, w = meta["orig_size"]  # the original image
        sx, sy = meta["scale"]  # input size / original size
        valid = text[: round(h * sy), : round(w * sx)]  # the rest is padding
        n, labels, stats, _ = cv2.connectedComponentsWithStats(
            (valid > self.thr).astype(np.uint8), connectivity=4
        )
        preds = []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == i)
            score = float(valid[ys + y, xs + x].mean())
            if area < self.min_area or score < self.min_score:
                continue
            rect = cv2.minAreaRect(np.stack([xs + x, ys + y], axis=1).astype(np.float32))
            quad = cv2.boxPoints(rect) / np.array([sx, sy])  # back to original pixels
            preds.append(Prediction(np.clip(quad, 0, [w - 1, h - 1]), score))
        return preds


def build_parts(config: DetectorConfig) -> DetectorParts:
    """The parts; a bad option or backbone name is a PluginError (options
    also come from checkpoints' config.json, which is untrusted input)."""
    opts = resolve_options("blobs", OPTIONS, config.options)
    try:
        backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    lateral = opts["neck_channels"]
    levels = len(backbone.out_channels)  # FPNC concatenates lateral // 4 per level
    return DetectorParts(
        backbone=backbone,
        # A builder, not a module: TCM rebuilds the neck with +1 channel on C5.
        neck_builder=functools.partial(FPNC, lateral_channels=lateral),
        head=BlobsHead(in_channels=lateral // 4 * levels),
        loss=BlobsLoss(),
        target_builder=blobs_targets,
        postprocessor=BlobsPostprocessor().with_params(**(opts["postprocess"] or {})),
    )
