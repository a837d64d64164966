"""``build_parts(config) -> DetectorParts`` for FCENet.

The architecture options (``DetectorConfig.options``) and the
postprocessor are declared in :mod:`tcmbench_fcenet.options` (torch-free).
"""

from __future__ import annotations

import functools

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench_fcenet.head import FCEHead
from tcmbench_fcenet.loss import FCELoss
from tcmbench_fcenet.neck import FPN
from tcmbench_fcenet.options import IN_STAGES, build_postprocessor, resolve_options
from tcmbench_fcenet.targets import FCETargetBuilder


def build_parts(config: DetectorConfig) -> DetectorParts:
    opts = resolve_options(dict(config.options))
    try:
        backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    channels = int(opts["neck_channels"])
    degree = opts["fourier_degree"]
    post = build_postprocessor(opts["postprocess"], degree, opts["strides"])
    return DetectorParts(
        backbone=backbone,
        neck_builder=functools.partial(FPN, out_channels=channels),
        head=FCEHead(
            in_channels=channels, fourier_degree=degree, head_convs=int(opts["head_convs"])
        ),
        loss=FCELoss(
            fourier_degree=degree,
            num_sample=opts["num_sample"],
            negative_ratio=opts["negative_ratio"],
            num_levels=len(opts["strides"]),
        ),
        target_builder=FCETargetBuilder(
            strides=opts["strides"],
            level_proportion_range=opts["level_proportion_range"],
            fourier_degree=degree,
            center_ratio=opts["center_ratio"],
            center_region=opts["center_region"],
            center_resample_step=opts["center_resample_step"],
        ),
        postprocessor=post,
        in_stages=IN_STAGES,
    )
