"""``build_parts(config) -> DetectorParts`` for DBNet.

The architecture options (``DetectorConfig.options``) and the
postprocessor are declared in :mod:`tcmbench_dbnet.options` (torch-free).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench.models.necks import FPNC
from tcmbench_dbnet.head import DBHead
from tcmbench_dbnet.loss import DBLoss
from tcmbench_dbnet.options import build_postprocessor, resolve_options
from tcmbench_dbnet.ppocr import RSE_FPN, is_ppocr_backbone
from tcmbench_dbnet.targets import DBTargetBuilder


def build_parts(config: DetectorConfig) -> DetectorParts:
    opts = resolve_options(config.options)
    try:
        if is_ppocr_backbone(config.backbone):
            from tcmbench_dbnet.ppocr.parts import build_backbone as build_ppocr_backbone

            backbone = build_ppocr_backbone(config.backbone, config.pretrained_backbone)
        else:
            backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    lateral, smooth = int(opts["lateral_channels"]), int(opts["smooth_channels"])
    neck_builder: Callable[[list[int]], nn.Module]
    if opts["neck"] == RSE_FPN:
        from tcmbench_dbnet.ppocr.parts import rse_fpn_builder

        neck_builder = rse_fpn_builder(lateral, smooth)
    else:
        neck_builder = functools.partial(FPNC, lateral_channels=lateral, smooth_channels=smooth)
    num_levels = len(backbone.out_channels)
    return DetectorParts(
        backbone=backbone,
        neck_builder=neck_builder,
        head=DBHead(in_channels=smooth * num_levels, k=float(opts["k"])),
        loss=DBLoss(
            alpha=float(opts["alpha"]),
            beta=float(opts["beta"]),
            binary_weight=float(opts["binary_weight"]),
            negative_ratio=float(opts["negative_ratio"]),
            prob_loss=str(opts["prob_loss"]),
        ),
        target_builder=DBTargetBuilder(
            shrink_ratio=float(opts["shrink_ratio"]),
            thr_min=float(opts["thr_min"]),
            thr_max=float(opts["thr_max"]),
            min_text_size=float(opts["min_text_size"]),
        ),
        postprocessor=build_postprocessor(opts["postprocess"]),
    )
