"""The DBNet DetectorSpec: torch-free; parts are built lazily."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcmbench.models.spec import DetectorConfig, DetectorSpec, TCMSupport


def _build_parts(config: DetectorConfig) -> Any:
    from tcmbench_dbnet.model import build_parts

    return build_parts(config)


def db_aux_target(targets: Mapping[str, Any], score_logits: Any = None) -> tuple[Any, Any]:
    """TCM's auxiliary target for DBNet: the shrunk text mask (shrink 0.4)
    and the shrink mask, both (B, H, W) at input resolution (TCM.md s. 5)."""
    return targets["gt_shrink"], targets["gt_shrink_mask"]


def dbnet_spec() -> DetectorSpec:
    from tcmbench_dbnet import __version__
    from tcmbench_dbnet.recipes import DEFAULT_RECIPE, RECIPES

    return DetectorSpec(
        name="dbnet",
        build_parts=_build_parts,
        summary="DBNet: differentiable binarization (Liao et al., AAAI 2020)",
        version=__version__,
        recipes=RECIPES,
        default_recipe=DEFAULT_RECIPE,
        tcm=TCMSupport(
            feature_level=3,
            stages=(0, 1, 2, 3),
            input_resolution=640,
            aux_target=db_aux_target,
            upsample_score_map=True,
            aux_loss="balanced_bce",
        ),
    )
