"""PANet's architecture options and its postprocessor, torch-free.

Declared here, apart from :mod:`tcmbench_pan.model` (which builds the
torch modules), so a checkpoint's options are checked and its
postprocessor built without importing torch: ``--runtime onnxruntime`` on
an already exported checkpoint (``DetectorSpec.build_postprocess``).

Architecture options (``DetectorConfig.options``, a recipe's
``model.options``; all optional, an unknown key is a PluginError):

- ``neck_channels`` (128): FPEM_FFM width; the head sees 4x this;
- ``fpem_repeats`` (2): number of cascaded FPEMs;
- ``shrink_ratio`` (0.5), ``min_text_size`` (8; 0 = no don't-care rule),
  ``kernel_shrink`` ("float" | "official"): target builder;
- ``alpha`` (0.5), ``beta`` (0.25), ``delta_agg`` (0.5), ``delta_dis`` (3),
  ``ohem_ratio`` (3), ``kernel_mask`` ("gt" | "pred"), ``dis_pairs``
  ("ordered" | "unordered"), ``target_sampling`` ("centre" | "corner"):
  loss;
- ``head_init`` ("pytorch" | "mmocr" | "pan_pp"): the head's 1x1 conv init;
- ``backbone_norm_eval`` (false): the backbone's BatchNorm layers stay in
  eval mode while training (running statistics frozen, affine weights
  still train), as mmdet's ResNet ``norm_eval=True`` in mmocr's PANet
  configs; the neck's BatchNorm layers train as usual. (The core's
  ``train_loop.norm_eval`` freezes every BatchNorm layer, the neck's too.)
  With ``--tcm`` the CLIP image encoder replaces the backbone and the
  option has no effect, as in the official TCM-PAN;
- ``postprocess``: dict of :class:`PANPostprocessor` parameters.

The defaults are tcmbench's choices; the mmocr / TCM-PAN and PAN-paper
recipes set the official values (``tcmbench_pan.recipes``, docs/pan.md).
"""

from __future__ import annotations

import numbers
from typing import Any

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench_pan.postprocess import PANPostprocessor, check_params
from tcmbench_pan.targets import KERNEL_SHRINKS

#: ``kernel_mask`` values (:mod:`tcmbench_pan.loss`).
KERNEL_MASKS = ("gt", "pred")
#: ``dis_pairs`` values (:mod:`tcmbench_pan.loss`).
DIS_PAIRS = ("unordered", "ordered")
#: ``target_sampling`` value -> torch interpolation mode (:mod:`tcmbench_pan.loss`).
TARGET_SAMPLINGS = {"corner": "nearest", "centre": "nearest-exact"}
#: ``head_init`` values (:mod:`tcmbench_pan.head`).
HEAD_INITS = ("mmocr", "pan_pp", "pytorch")

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
    "kernel_shrink": "float",
    "dis_pairs": "ordered",
    "target_sampling": "centre",
    "head_init": "pytorch",
    "backbone_norm_eval": False,
    "postprocess": None,
}

#: Options whose value is one of a few names.
_CHOICES: dict[str, tuple[str, ...]] = {
    "kernel_mask": KERNEL_MASKS,
    "kernel_shrink": KERNEL_SHRINKS,
    "dis_pairs": DIS_PAIRS,
    "target_sampling": tuple(TARGET_SAMPLINGS),
    "head_init": HEAD_INITS,
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
    for key, allowed in _CHOICES.items():
        if resolved[key] not in allowed:
            raise PluginError(
                f"PANet option {key} must be one of {', '.join(allowed)}, got {resolved[key]!r}"
            )
    if not isinstance(resolved["backbone_norm_eval"], bool):
        raise PluginError(
            f"PANet option backbone_norm_eval must be true or false, "
            f"got {resolved['backbone_norm_eval']!r}"
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


def build_postprocess(config: DetectorConfig) -> PANPostprocessor:
    """``DetectorSpec.build_postprocess``: the postprocessor ``config``'s
    options ask for (every option checked), without torch."""
    options = dict(config.options) if isinstance(config.options, dict) else config.options
    return build_postprocessor(resolve_options(options)["postprocess"])
