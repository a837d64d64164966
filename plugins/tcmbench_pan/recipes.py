"""PANet recipes: training and test settings per dataset (torch-free).

Values: the PAN paper (Wang et al., ICCV 2019: test short side 736 on
IC15 and TD500, 640 on CTW1500 and Total-Text; kernel shrink 0.5; loss
weights 0.5 / 0.25, delta_agg 0.5, delta_dis 3), mmocr 0.x's PANet configs
(``panet_pipeline.py``: ScaleAspectJitter around short side 736 / 640 x
[0.7, 1.3], aspect [0.9, 1.1], RandomCropInstances 736 / 640, kernel
shrink 0.5 / 0.7 for CTW1500, test (1333, 736) / (3000, 640);
PANPostprocessor defaults: text / kernel 0.5, mean score 0.85, area 16)
and the official TCM-PAN configs (TCM.md section 7: Ranger 1e-3, no weight
decay, poly LR per epoch, 1200 epochs, batch 16, CLIP input resolution 736
on IC15 / 640 on CTW1500, quad output on IC15, poly on CTW1500, 4 learnable
context tokens). The keys are those of DBNet's recipes (docs/dbnet.md);
docs/pan.md lists every recipe.
"""

from __future__ import annotations

import copy
from typing import Any

from tcmbench.models.recipes import IMAGENET_MEAN, IMAGENET_STD, TCM_MEAN, TCM_STD, merge_recipe


def train_pipeline(short_side: int, crop: int) -> list[dict[str, Any]]:
    """mmocr's PANet training pipeline, in order: colour jitter, scale and
    aspect jitter around ``short_side``, flip, rotation up to 10 degrees,
    instance-keeping ``crop`` x ``crop`` crop."""
    return [
        {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
        {
            "name": "pan_scale_jitter",
            "short_side": short_side,
            "ratio_range": [0.7, 1.3],
            "aspect_range": [0.9, 1.1],
            "long_side": 3000,
        },
        {"name": "hflip", "prob": 0.5},
        {"name": "rotate", "max_angle": 10.0},
        {"name": "pan_crop_instances", "size": [crop, crop], "text_prob": 0.625},
    ]


def _base() -> dict[str, Any]:
    return {
        "model": {"backbone": "resnet18", "pretrained_backbone": True, "options": {}},
        "optimizer": {"name": "ranger", "lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "epoch", "warmup": 0},
        "epochs": 1200,
        "batch_size": 16,
        "normalize": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "train": {"crop_size": 736, "pad_divisor": 32, "augment": train_pipeline(736, 736)},
        "test": {"long_side": 1333, "short_side": 736, "pad_divisor": 32},
        "postprocess": {
            "output": "quad",
            "text_thr": 0.5,
            "kernel_thr": 0.5,
            "min_score": 0.85,
            "min_area": 16.0,
            "distance_thr": 3.0,
        },
        "tcm": {
            "context_length": 4,
            "input_resolution": 736,
            "normalize": {"mean": TCM_MEAN, "std": TCM_STD},
        },
        "source": "",
    }


def _recipe(**overrides: Any) -> dict[str, Any]:
    return merge_recipe(_base(), overrides)


RECIPES: dict[str, dict[str, Any]] = {
    # Datasets without their own recipe (icdar2013, mlt17, art, ...):
    # mmocr's plain PANet (Adam 1e-3, 600 epochs) at the IC15 scales.
    "default": _recipe(
        optimizer={"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
        epochs=600,
        source="mmocr 0.x panet_r18_fpem_ffm_600e_icdar2015 (Adam 1e-3, poly, 600 epochs, "
        "736 crops); PAN paper test short side 736",
    ),
    "icdar2015": _recipe(
        postprocess={"output": "quad"},
        tcm={"input_resolution": 736},
        source="TCM.md section 7 and the official TCM-PAN IC15 config (Ranger 1e-3, "
        "input resolution 736, quad); mmocr PANet IC15 pipeline and test scale (1333, 736)",
    ),
    "msra-td500": _recipe(
        test={"long_side": 3000, "short_side": 736},
        postprocess={"output": "quad"},
        extra_train_datasets=["hust-tr400"],
        source="PAN paper (TD500 test short side 736, quad boxes); TCM.md section 7 "
        "(Ranger 1e-3, trained with HUST-TR400)",
    ),
    "ctw1500": _recipe(
        model={
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": {"shrink_ratio": 0.7},
        },
        train={"crop_size": 640, "pad_divisor": 32, "augment": train_pipeline(640, 640)},
        test={"long_side": 3000, "short_side": 640},
        postprocess={"output": "poly"},
        tcm={"input_resolution": 640},
        source="official TCM-PAN CTW1500 config (Ranger 1e-3, input resolution 640, poly); "
        "mmocr PANet CTW1500 pipeline (shrink 0.7, 640 crops, test (3000, 640))",
    ),
    "totaltext": _recipe(
        train={"crop_size": 640, "pad_divisor": 32, "augment": train_pipeline(640, 640)},
        test={"long_side": 3000, "short_side": 640},
        postprocess={"output": "poly"},
        tcm={"input_resolution": 640},
        source="PAN paper (Total-Text test short side 640, polygons); TCM.md section 7 "
        "(Ranger 1e-3); CTW1500's 640 pipeline",
    ),
    # A CPU-sized model for the built-in synthetic set: trains from scratch
    # in minutes on two cores and ships in the package (<= 10 MB).
    "synthtext-mini": _recipe(
        model={
            "backbone": "mobilenetv3_small",
            "pretrained_backbone": False,
            "options": {"neck_channels": 64, "min_text_size": 4},
        },
        optimizer={"name": "adam", "lr": 3e-3, "weight_decay": 1e-4},
        schedule={"by": "step"},
        epochs=None,
        steps=800,
        batch_size=8,
        train={
            "crop_size": 224,
            "pad_divisor": 32,
            "augment": [
                {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
                {"name": "hflip", "prob": 0.5},
                {"name": "rotate", "max_angle": 10.0},
                {"name": "random_scale", "range": [0.6, 1.2]},
                {"name": "pan_crop_instances", "size": [224, 224], "text_prob": 1.0},
            ],
        },
        train_loop={"cache_images": True, "workers": 1},
        test={"long_side": None, "short_side": None},
        postprocess={"output": "quad", "min_score": 0.8},
        tcm={"input_resolution": 224},
        source="tcmbench: small CPU recipe for synthtext-mini (not from a paper)",
    ),
}

DEFAULT_RECIPE = "default"


def get_recipe(name: str | None) -> dict[str, Any]:
    """A deep copy of recipe ``name`` (or the default one)."""
    return copy.deepcopy(RECIPES.get(name or DEFAULT_RECIPE, RECIPES[DEFAULT_RECIPE]))
