"""The FCENet DetectorSpec: torch-free; parts are built lazily."""

from __future__ import annotations

from typing import Any

from tcmbench.contract.spec import DetectorConfig, DetectorSpec, TCMSupport

#: The plugin's version (``tcmbench_fcenet.__version__``, recorded in checkpoints).
VERSION = "0.1.0"


def _build_parts(config: DetectorConfig) -> Any:
    from tcmbench_fcenet.model import build_parts

    return build_parts(config)


def _build_postprocess(config: DetectorConfig) -> Any:
    from tcmbench_fcenet.options import build_postprocess

    return build_postprocess(config)


def _sample_target(polygons: Any, ignores: Any, height: int, width: int) -> tuple[Any, Any]:
    from tcmbench_fcenet.targets import tcm_sample_target

    return tcm_sample_target(polygons, ignores, height, width)


#: The official TCM-FCENet checkpoints' neck and head names (mmdet FPN and
#: mmocr 0.4 FCEHead) -> ours, for ``tcmbench import tcm-official``.
OFFICIAL_RULES: tuple[tuple[str, str], ...] = (
    # mmdet FPN: ConvModule wraps each conv as ``.conv`` (no norm, so bias).
    (r"^neck\.lateral_convs\.(\d+)\.conv\.(weight|bias)$", r"neck.lateral_convs.\1.\2"),
    (r"^neck\.fpn_convs\.(\d+)\.conv\.(weight|bias)$", r"neck.fpn_convs.\1.\2"),
    # FCEHead: two plain convs, same names.
    (r"^bbox_head\.(out_conv_cls|out_conv_reg)\.(weight|bias)$", r"head.\1.\2"),
)


def fcenet_spec() -> DetectorSpec:
    from tcmbench_fcenet.fidelity import FIDELITY
    from tcmbench_fcenet.recipes import DEFAULT_RECIPE, RECIPES

    return DetectorSpec(
        name="fcenet",
        build_parts=_build_parts,
        summary="FCENet: Fourier contour embedding (Zhu et al., CVPR 2021)",
        version=VERSION,
        build_postprocess=_build_postprocess,
        recipes=RECIPES,
        default_recipe=DEFAULT_RECIPE,
        tcm=TCMSupport(
            feature_level=2,
            stages=(1, 2, 3),
            input_resolution=800,
            sample_target=_sample_target,
            upsample_score_map=False,
            aux_loss="balanced_bce",
            official_rules=OFFICIAL_RULES,
        ),
        fidelity=FIDELITY,
    )
