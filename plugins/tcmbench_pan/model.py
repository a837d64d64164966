"""``build_parts(config) -> DetectorParts`` for PANet.

The architecture options (``DetectorConfig.options``, a recipe's
``model.options``) and the postprocessor are declared in
:mod:`tcmbench_pan.options` (torch-free).
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench_pan.head import PANHead
from tcmbench_pan.loss import PANLoss
from tcmbench_pan.neck import FPEMFFM
from tcmbench_pan.options import build_postprocessor, resolve_options
from tcmbench_pan.targets import PANTargetBuilder


def _batchnorm_eval(module: nn.Module, inputs: Any) -> None:
    """Forward pre-hook: the BatchNorm layer normalises with, and keeps,
    its running statistics even when the model is in train mode."""
    if module.training:
        module.eval()


def freeze_batchnorm_statistics(backbone: nn.Module) -> None:
    """mmdet's ``norm_eval=True`` for ``backbone``: every BatchNorm layer in
    it runs in eval mode whatever mode the model is in (a pre-hook puts it
    back before each call, so ``model.train()`` cannot undo it); their
    affine weights still receive gradients."""
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_batchnorm_eval)


def build_parts(config: DetectorConfig) -> DetectorParts:
    opts = resolve_options(
        dict(config.options) if isinstance(config.options, dict) else config.options
    )
    try:
        backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    if opts["backbone_norm_eval"]:
        freeze_batchnorm_statistics(backbone)
    channels = int(opts["neck_channels"])
    neck_builder = functools.partial(FPEMFFM, channels=channels, repeats=int(opts["fpem_repeats"]))
    post = build_postprocessor(opts["postprocess"])
    return DetectorParts(
        backbone=backbone,
        neck_builder=neck_builder,
        head=PANHead(in_channels=4 * channels, init=str(opts["head_init"])),
        loss=PANLoss(
            alpha=float(opts["alpha"]),
            beta=float(opts["beta"]),
            delta_agg=float(opts["delta_agg"]),
            delta_dis=float(opts["delta_dis"]),
            ohem_ratio=float(opts["ohem_ratio"]),
            kernel_mask=str(opts["kernel_mask"]),
            dis_pairs=str(opts["dis_pairs"]),
            target_sampling=str(opts["target_sampling"]),
        ),
        target_builder=PANTargetBuilder(
            shrink_ratio=float(opts["shrink_ratio"]),
            min_text_size=float(opts["min_text_size"]),
            kernel_shrink=str(opts["kernel_shrink"]),
        ),
        postprocessor=post,
    )
