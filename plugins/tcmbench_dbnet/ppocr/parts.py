"""Builders the DBNet plugin calls for the PP-OCR parts (imports torch)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from torch import nn

from tcmbench.errors import PluginError
from tcmbench.models.backbones import StageBackbone
from tcmbench_dbnet.ppocr import BACKBONES, canonical_name
from tcmbench_dbnet.ppocr.rse_fpn import RSEFPN


def build_backbone(name: str, pretrained: bool = False) -> StageBackbone:
    """PP-OCR backbone ``name`` (:data:`~tcmbench_dbnet.ppocr.BACKBONES`).

    There are no ImageNet weights for these: their trained weights come
    from PaddleOCR's detector through ``tcmbench import ppocr``, and a
    fine-tune starts from that folder with ``--init-from``."""
    key = canonical_name(name)
    if key not in BACKBONES:
        raise PluginError(f"unknown PP-OCR backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if pretrained:
        raise PluginError(
            f"backbone {key} has no ImageNet weights (pretrained_backbone must be false); its "
            "trained weights come from `tcmbench import ppocr MODEL.onnx --out DIR`: train with "
            "--init-from DIR"
        )
    module, func = BACKBONES[key]
    builder: Callable[[], StageBackbone] = getattr(importlib.import_module(module), func)
    return builder()


def rse_fpn_builder(
    lateral_channels: int, smooth_channels: int
) -> Callable[[list[int]], nn.Module]:
    """``neck_builder`` for :class:`RSEFPN` (``options.neck: rse_fpn``)."""
    return functools.partial(
        RSEFPN, lateral_channels=lateral_channels, smooth_channels=smooth_channels
    )
