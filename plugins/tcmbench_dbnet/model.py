"""``build_parts(config) -> DetectorParts`` for DBNet.

Architecture options (``DetectorConfig.options``; all optional):

- ``lateral_channels`` (256), ``smooth_channels`` (lateral / 4): FPNC widths;
  the head sees ``4 * smooth_channels`` channels;
- ``k`` (50): steepness of the approximate binarisation;
- ``shrink_ratio`` (0.4), ``thr_min`` (0.3), ``thr_max`` (0.7),
  ``min_text_size`` (8): target builder;
- ``alpha`` (5), ``beta`` (10), ``negative_ratio`` (3): loss;
- ``postprocess``: dict of :class:`DBPostprocessor` parameters.
"""

from __future__ import annotations

import functools
from typing import Any

from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench.models.necks import FPNC
from tcmbench.models.spec import DetectorConfig
from tcmbench_dbnet.head import DBHead
from tcmbench_dbnet.loss import DBLoss
from tcmbench_dbnet.postprocess import DBPostprocessor
from tcmbench_dbnet.targets import DBTargetBuilder

OPTIONS = {
    "lateral_channels": 256,
    "smooth_channels": None,
    "k": 50.0,
    "shrink_ratio": 0.4,
    "thr_min": 0.3,
    "thr_max": 0.7,
    "min_text_size": 8.0,
    "alpha": 5.0,
    "beta": 10.0,
    "negative_ratio": 3.0,
    "postprocess": None,
}


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with ``options``; an unknown key is a PluginError (a
    typo in a recipe or checkpoint config must not be silently ignored)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PluginError(
            f"unknown DBNet option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}"
        )
    resolved = {**OPTIONS, **options}
    if resolved["smooth_channels"] is None:
        resolved["smooth_channels"] = int(resolved["lateral_channels"]) // 4
    return resolved


def build_postprocessor(params: dict[str, Any] | None = None) -> DBPostprocessor:
    params = dict(params or {})
    known = {f for f in DBPostprocessor.__dataclass_fields__}
    unknown = sorted(set(params) - known)
    if unknown:
        raise PluginError(
            f"unknown DBNet postprocess parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        return DBPostprocessor(**params)
    except ValueError as exc:
        raise PluginError(f"bad DBNet postprocess parameters: {exc}") from exc


def build_parts(config: DetectorConfig) -> DetectorParts:
    opts = resolve_options(dict(config.options))
    try:
        backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    lateral, smooth = int(opts["lateral_channels"]), int(opts["smooth_channels"])
    neck_builder = functools.partial(FPNC, lateral_channels=lateral, smooth_channels=smooth)
    num_levels = len(backbone.out_channels)
    return DetectorParts(
        backbone=backbone,
        neck_builder=neck_builder,
        head=DBHead(in_channels=smooth * num_levels, k=float(opts["k"])),
        loss=DBLoss(
            alpha=float(opts["alpha"]),
            beta=float(opts["beta"]),
            negative_ratio=float(opts["negative_ratio"]),
        ),
        target_builder=DBTargetBuilder(
            shrink_ratio=float(opts["shrink_ratio"]),
            thr_min=float(opts["thr_min"]),
            thr_max=float(opts["thr_max"]),
            min_text_size=float(opts["min_text_size"]),
        ),
        postprocessor=build_postprocessor(opts["postprocess"]),
    )
