"""The DBNet DetectorSpec: torch-free; parts are built lazily."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcmbench.contract.spec import DetectorConfig, DetectorSpec, TCMSupport
from tcmbench.tcm.importer import BN_KEYS as _BN

#: The plugin's version (``tcmbench_dbnet.__version__``, recorded in checkpoints).
VERSION = "0.1.0"


def _build_parts(config: DetectorConfig) -> Any:
    from tcmbench_dbnet.model import build_parts

    return build_parts(config)


def _build_postprocess(config: DetectorConfig) -> Any:
    from tcmbench_dbnet.options import build_postprocess

    return build_postprocess(config)


def db_aux_target(targets: Mapping[str, Any], score_logits: Any = None) -> tuple[Any, Any]:
    """TCM's auxiliary target for DBNet: the shrunk text mask (shrink 0.4)
    and the shrink mask, both (B, H, W) at input resolution (TCM.md s. 5)."""
    return targets["gt_shrink"], targets["gt_shrink_mask"]


#: The official TCM-DBNet checkpoints' neck and head names (mmocr 0.4 FPNC
#: and DBHead) -> ours, for ``tcmbench import-official``.
OFFICIAL_RULES: tuple[tuple[str, str], ...] = (
    # FPNC: mmcv ConvModule wraps each conv as ``.conv`` (no norm, no bias).
    (r"^neck\.lateral_convs\.(\d+)\.conv\.weight$", r"neck.lateral_convs.\1.weight"),
    (r"^neck\.smooth_convs\.(\d+)\.conv\.weight$", r"neck.smooth_convs.\1.weight"),
    # DBHead: binarize / threshold Sequentials, same indices (conv 0, BN 1,
    # deconv 3, BN 4, deconv 6; 2/5 ReLU and 7 Sigmoid hold nothing).
    (
        rf"^bbox_head\.binarize\.(0\.weight|[36]\.(?:weight|bias)|[14]\.{_BN})$",
        r"head.prob_branch.\1",
    ),
    (
        rf"^bbox_head\.threshold\.(0\.weight|[36]\.(?:weight|bias)|[14]\.{_BN})$",
        r"head.thr_branch.\1",
    ),
)


def dbnet_spec() -> DetectorSpec:
    from tcmbench_dbnet.recipes import DEFAULT_RECIPE, RECIPES

    return DetectorSpec(
        name="dbnet",
        build_parts=_build_parts,
        summary="DBNet: differentiable binarization (Liao et al., AAAI 2020)",
        version=VERSION,
        build_postprocess=_build_postprocess,
        recipes=RECIPES,
        default_recipe=DEFAULT_RECIPE,
        tcm=TCMSupport(
            feature_level=3,
            stages=(0, 1, 2, 3),
            input_resolution=640,
            aux_target=db_aux_target,
            upsample_score_map=True,
            aux_loss="balanced_bce",
            official_rules=OFFICIAL_RULES,
        ),
    )
