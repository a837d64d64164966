"""The blobs DetectorSpec, its recipes and its TCM declaration (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcmbench.contract.spec import DetectorConfig, DetectorSpec, TCMSupport
from tcmbench.tcm import CLIP_MEAN, CLIP_STD

#: The plugin's version (the package re-exports it as ``__version__``).
VERSION = "0.1.0"


def build_parts(config: DetectorConfig) -> Any:
    """Imports torch only now. Defined in this package on purpose: its
    ``__module__`` is how tcmbench finds the package's shipped weights/."""
    from tcmbench_blobs.model import build_parts as build

    return build(config)


def text_aux_target(targets: Mapping[str, Any], score_logits: Any = None) -> tuple[Any, Any]:
    """TCM's score map learns the text map: (target, mask), (B, H, W)."""
    return targets["gt_text"], targets["gt_mask"]


def _recipe(**overrides: Any) -> dict[str, Any]:
    """The common settings with some sections replaced."""
    recipe: dict[str, Any] = {
        "model": {"backbone": "resnet18", "pretrained_backbone": True, "options": {}},
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "epoch", "warmup": 0},
        "epochs": 600,
        "batch_size": 16,
        "normalize": {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
        "train": {"crop_size": 640, "pad_divisor": 32},  # no "augment": the default pipeline
        "train_loop": {"workers": 2},
        "test": {"long_side": 1280, "short_side": 736, "pad_divisor": 32},
        "postprocess": {"thr": 0.5, "min_score": 0.6, "min_area": 16.0},
        # With --tcm: 4 learnable prompt tokens, CLIP's input normalisation.
        "tcm": {"context_length": 4, "normalize": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}},
        "source": "tcmbench docs example (not from a paper)",
    }
    recipe.update(overrides)
    return recipe


RECIPES: dict[str, dict[str, Any]] = {
    "default": _recipe(),
    # Small enough to train from scratch on a CPU and ship in the package.
    "synthtext-mini": _recipe(
        model={
            "backbone": "mobilenetv3_small",
            "pretrained_backbone": False,
            "options": {"neck_channels": 64},
        },
        optimizer={"name": "adam", "lr": 3e-3, "weight_decay": 1e-4},
        schedule={"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "step"},
        epochs=None,
        steps=800,
        batch_size=8,
        train={
            "pad_divisor": 32,
            "augment": [
                {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
                {"name": "hflip", "prob": 0.5},
                {"name": "rotate", "max_angle": 10.0},
                {"name": "random_scale", "range": [0.75, 1.5]},
                {"name": "random_crop", "size": [224, 224]},  # every crop 224 x 224
            ],
        },
        train_loop={"workers": 1, "cache_images": True},
        test={"long_side": None, "short_side": None, "pad_divisor": 32},  # original size
        tcm={
            "context_length": 4,
            "input_resolution": 224,  # CLIP's positional grid for 224-px crops
            "normalize": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
        },
    ),
}


def blobs_spec() -> DetectorSpec:

    return DetectorSpec(
        name="blobs",
        build_parts=build_parts,
        summary="text-probability map + connected components (docs example)",
        version=VERSION,
        recipes=RECIPES,
        default_recipe="default",
        tcm=TCMSupport(
            feature_level=3,  # the score map joins C5, the last stage the neck reads
            stages=(0, 1, 2, 3),  # = DetectorParts.in_stages (None: all four)
            input_resolution=640,
            aux_target=text_aux_target,
            upsample_score_map=True,  # our targets are at input size; the logits are 1/32
            aux_loss="balanced_bce",
        ),
    )
