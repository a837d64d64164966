"""TCM: the CLIP-based module of "Turning a CLIP Model into a Scene Text
Detector" (CVPR 2023), as a wrapper any detector plugin opts into.

This package is imported when the CLI starts (its pluggy hook lives in
``tcmbench.tcm.hook``), so it must not import torch: the public helpers below
are resolved lazily from their modules on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

#: CLIP's input normalisation (RGB, 0-255), used by the TCM recipes.
CLIP_MEAN = (122.679, 116.669, 104.007)
CLIP_STD = (58.395, 57.12, 57.375)

_LAZY = {
    "apply_tcm": "tcmbench.tcm.wrap",
    "build_tcm_modules": "tcmbench.tcm.wrap",
    "count_tcm_params": "tcmbench.tcm.params",
    "save_prompt_heatmaps": "tcmbench.tcm.visualize",
    "load_clip": "tcmbench.tcm.weights",
    "convert_openai_clip": "tcmbench.tcm.weights",
    "import_official_checkpoint": "tcmbench.tcm.importer",
    "validate_tcm_config": "tcmbench.tcm.config",
}

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "apply_tcm",
    "build_tcm_modules",
    "convert_openai_clip",
    "count_tcm_params",
    "import_official_checkpoint",
    "load_clip",
    "save_prompt_heatmaps",
    "validate_tcm_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
