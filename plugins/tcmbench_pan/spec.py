"""The PANet DetectorSpec: torch-free; parts are built lazily."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcmbench.contract.spec import DetectorConfig, DetectorSpec, TCMSupport
from tcmbench.tcm.importer import BN_KEYS as _BN

#: The plugin's version (``tcmbench_pan.__version__``, recorded in checkpoints).
VERSION = "0.1.0"


def _build_parts(config: DetectorConfig) -> Any:
    from tcmbench_pan.model import build_parts

    return build_parts(config)


def _build_postprocess(config: DetectorConfig) -> Any:
    from tcmbench_pan.options import build_postprocess

    return build_postprocess(config)


def pan_aux_target(targets: Mapping[str, Any], score_logits: Any = None) -> tuple[Any, Any]:
    """TCM's auxiliary target for PANet: the *unshrunk* text region (every
    instance id > 0 -> 1) and the valid-pixel mask, (B, H, W) at input
    resolution; the score logits are upsampled x32 to it (TCM.md s. 5)."""
    text = targets["gt_text"]
    return (text > 0.5).to(text.dtype), targets["gt_mask"]


#: The official TCM-PAN checkpoints' neck and head names (mmocr 0.4 FPEM_FFM
#: and PANHead) -> ours, for ``tcmbench import tcm-official --plugin pan``.
#: Our neck keeps mmocr's module names, so the neck rules are identities
#: restricted to the parameters FPEM_FFM really has.
OFFICIAL_RULES: tuple[tuple[str, str], ...] = (
    # reduce_conv_cN = Sequential(Conv2d with bias, BN, ReLU).
    (rf"^neck\.(reduce_conv_c[2-5]\.(?:0\.(?:weight|bias)|1\.{_BN}))$", r"neck.\1"),
    # fpems.i.{up,down}_addK = SeparableConv2d(depthwise, pointwise, bn).
    (
        (
            rf"^neck\.(fpems\.\d+\.(?:up|down)_add[1-3]\."
            rf"(?:(?:depthwise|pointwise)_conv\.(?:weight|bias)|bn\.{_BN}))$"
        ),
        r"neck.\1",
    ),
    # PANHead: one 1x1 conv over the concatenated 512 channels.
    (r"^bbox_head\.out_conv\.(weight|bias)$", r"head.out_conv.\1"),
)


def pan_spec() -> DetectorSpec:
    from tcmbench_pan.fidelity import ROWS
    from tcmbench_pan.recipes import DEFAULT_RECIPE, RECIPES

    return DetectorSpec(
        name="pan",
        build_parts=_build_parts,
        summary="PANet: pixel aggregation network (Wang et al., ICCV 2019)",
        version=VERSION,
        build_postprocess=_build_postprocess,
        recipes=RECIPES,
        default_recipe=DEFAULT_RECIPE,
        fidelity=ROWS,
        tcm=TCMSupport(
            feature_level=3,
            stages=(0, 1, 2, 3),
            input_resolution=736,
            aux_target=pan_aux_target,
            upsample_score_map=True,
            aux_loss="ohem_dice",
            official_rules=OFFICIAL_RULES,
        ),
    )
