"""``build_parts(config) -> DetectorParts`` for PANet.

Architecture options (``DetectorConfig.options``, a recipe's
``model.options``; all optional, an unknown key is a PluginError):

- ``neck_channels`` (128): FPEM_FFM width; the head sees 4x this;
- ``fpem_repeats`` (2): number of cascaded FPEMs;
- ``shrink_ratio`` (0.5), ``min_text_size`` (8): target builder;
- ``alpha`` (0.5), ``beta`` (0.25), ``delta_agg`` (0.5), ``delta_dis`` (3),
  ``ohem_ratio`` (3), ``kernel_mask`` ("gt" | "pred"): loss;
- ``postprocess``: dict of :class:`PANPostprocessor` parameters.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

from tcmbench.errors import PluginError
from tcmbench.models.backbones import build_backbone
from tcmbench.models.detector import DetectorParts
from tcmbench.models.spec import DetectorConfig
from tcmbench_pan.head import PANHead
from tcmbench_pan.loss import KERNEL_MASKS, PANLoss
from tcmbench_pan.neck import FPEMFFM
from tcmbench_pan.postprocess import PANPostprocessor, check_params
from tcmbench_pan.targets import PANTargetBuilder

OPTIONS: dict[str, Any] = {
    "neck_channels": 128,
    "fpem_repeats": 2,
    "shrink_ratio": 0.5,
    "min_text_size": 8.0,
    "alpha": 0.5,
    "beta": 0.25,
    "delta_agg": 0.5,
    "delta_dis": 3.0,
    "ohem_ratio": 3.0,
    "kernel_mask": "gt",
    "postprocess": None,
}

_INTS = ("neck_channels", "fpem_repeats")
_FLOATS = (
    "shrink_ratio",
    "min_text_size",
    "alpha",
    "beta",
    "delta_agg",
    "delta_dis",
    "ohem_ratio",
)


def resolve_options(options: Any) -> dict[str, Any]:
    """Defaults merged with ``options`` and type-checked; any bad key or
    value is a PluginError that names it (a typo in a recipe or a
    checkpoint's config must never be silently ignored)."""
    if not isinstance(options, dict):
        raise PluginError(f"PANet options must be a mapping, got {type(options).__name__}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PluginError(
            f"unknown PANet option(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(sorted(OPTIONS))}"
        )
    resolved = {**OPTIONS, **options}
    for key in _INTS:
        value = resolved[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise PluginError(f"PANet option {key} must be a positive integer, got {value!r}")
    for key in _FLOATS:
        value = resolved[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
            raise PluginError(f"PANet option {key} must be a number >= 0, got {value!r}")
    if not 0.0 < float(resolved["shrink_ratio"]) <= 1.0:
        raise PluginError(
            f"PANet option shrink_ratio must be in (0, 1], got {resolved['shrink_ratio']!r}"
        )
    if resolved["kernel_mask"] not in KERNEL_MASKS:
        raise PluginError(
            f"PANet option kernel_mask must be one of {', '.join(KERNEL_MASKS)}, "
            f"got {resolved['kernel_mask']!r}"
        )
    if resolved["postprocess"] is not None and not isinstance(resolved["postprocess"], dict):
        raise PluginError(
            f"PANet option postprocess must be a mapping of postprocessor parameters, "
            f"got {resolved['postprocess']!r}"
        )
    return resolved


def build_postprocessor(params: Any = None) -> PANPostprocessor:
    """A :class:`PANPostprocessor` from a recipe's ``postprocess`` dict;
    PluginError naming the offending key otherwise."""
    return PANPostprocessor().with_params(**check_params_mapping(params))


def check_params_mapping(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    check_params(params)
    return dict(params)


def build_parts(config: DetectorConfig) -> DetectorParts:
    opts = resolve_options(
        dict(config.options) if isinstance(config.options, dict) else config.options
    )
    try:
        backbone = build_backbone(config.backbone, pretrained=config.pretrained_backbone)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
    channels = int(opts["neck_channels"])
    neck_builder = functools.partial(FPEMFFM, channels=channels, repeats=int(opts["fpem_repeats"]))
    post = build_postprocessor(opts["postprocess"])
    return DetectorParts(
        backbone=backbone,
        neck_builder=neck_builder,
        head=PANHead(in_channels=4 * channels),
        loss=PANLoss(
            alpha=float(opts["alpha"]),
            beta=float(opts["beta"]),
            delta_agg=float(opts["delta_agg"]),
            delta_dis=float(opts["delta_dis"]),
            ohem_ratio=float(opts["ohem_ratio"]),
            kernel_mask=str(opts["kernel_mask"]),
        ),
        target_builder=PANTargetBuilder(
            shrink_ratio=float(opts["shrink_ratio"]),
            min_text_size=float(opts["min_text_size"]),
        ),
        postprocessor=post,
    )
