"""DBNet recipes: training and test settings per dataset (torch-free).

Values: TCM.md section 7 (the official TCM-DBNet configs, which follow
mmocr's DBNet configs) and the DBNet paper (Liao et al., AAAI 2020:
SynthText pre-training, SGD 0.007, k = 50, shrink 0.4, alpha 5, beta 10).
A recipe is a plain dict; every key is documented in docs/dbnet.md:

``model``        backbone, pretrained_backbone, options (build_parts options)
``optimizer``    name (sgd | adam | adamw | ranger), lr, weight_decay, extra
                 kwargs (momentum, betas)
``schedule``     name "poly", power, min_lr, by ("epoch" | "step"), warmup
``epochs``, ``batch_size``
``normalize``    mean / std (RGB, 0-255) for the torchvision backbone
``train``        augmentations in order, crop_size, pad_divisor
``test``         long_side / short_side limits of a keep-ratio resize:
                 scale = min(long_side / long, short_side / short), up- or
                 down-scaling; a limit that is None is not applied, both None
                 = the original size; then pad to pad_divisor
``postprocess``  DBPostprocessor parameters
``tcm``          context_length and the CLIP normalisation TCM trains with
``source``       where the values come from
"""

from __future__ import annotations

import copy
from typing import Any

from tcmbench.models.recipes import IMAGENET_MEAN, IMAGENET_STD, TCM_MEAN, TCM_STD, merge_recipe


def _train_pipeline(crop_size: int) -> list[dict[str, Any]]:
    """TCM.md section 7 / mmocr DBNet training augmentations, in order."""
    return [
        {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
        {"name": "hflip", "prob": 0.5},
        {"name": "rotate", "max_angle": 10.0},
        {"name": "random_scale", "range": [0.5, 3.0]},
        {"name": "random_crop", "size": [crop_size, crop_size]},
    ]


def _base() -> dict[str, Any]:
    return {
        "model": {"backbone": "resnet50", "pretrained_backbone": True, "options": {}},
        "optimizer": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
        "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "epoch", "warmup": 0},
        "epochs": 1200,
        "batch_size": 16,
        "normalize": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "train": {"crop_size": 640, "pad_divisor": 32, "augment": _train_pipeline(640)},
        "test": {"long_side": 4068, "short_side": 1024, "pad_divisor": 32},
        "postprocess": {
            "output": "quad",
            "mask_thr": 0.3,
            "min_score": 0.3,
            "unclip_ratio": 1.5,
            "min_size": 3,
            "max_candidates": 3000,
        },
        "tcm": {"context_length": 4, "normalize": {"mean": TCM_MEAN, "std": TCM_STD}},
        "source": "",
    }


def _recipe(**overrides: Any) -> dict[str, Any]:
    return merge_recipe(_base(), overrides)


RECIPES: dict[str, dict[str, Any]] = {
    # Used for datasets without their own recipe (icdar2013, mlt17, art, ...):
    # the DBNet paper's fine-tuning settings.
    "default": _recipe(
        optimizer={"name": "sgd", "lr": 0.007, "weight_decay": 1e-4, "momentum": 0.9},
        test={"long_side": None, "short_side": 736},
        source="DBNet paper section 4.2 (SGD 0.007, momentum 0.9, wd 1e-4, poly 0.9, "
        "1200 epochs, batch 16, 640 crops)",
    ),
    "icdar2015": _recipe(
        optimizer={"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
        test={"long_side": 4068, "short_side": 1024},
        postprocess={"output": "quad", "mask_thr": 0.28, "min_score": 0.2, "unclip_ratio": 1.6},
        tcm={"context_length": 4},
        source="TCM.md section 7 (official TCM-DBNet IC15 config)",
    ),
    "msra-td500": _recipe(
        optimizer={"name": "ranger", "lr": 1e-3, "weight_decay": 0.0},
        test={"long_side": 4068, "short_side": 736},
        postprocess={"output": "quad", "mask_thr": 0.08, "min_score": 0.17, "unclip_ratio": 1.9},
        tcm={"context_length": 4},
        extra_train_datasets=["hust-tr400"],
        source="TCM.md section 7 (official TCM-DBNet TD500 config, trained with TR400)",
    ),
    "ctw1500": _recipe(
        optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 1e-4},
        test={"long_side": 4068, "short_side": 1024},
        postprocess={"output": "poly", "mask_thr": 0.08, "min_score": 0.3, "unclip_ratio": 2.0},
        tcm={"context_length": 32},
        source="TCM.md section 7 (official TCM-DBNet CTW1500 config)",
    ),
    "totaltext": _recipe(
        optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 1e-4},
        test={"long_side": 2944, "short_side": 800},
        postprocess={"output": "poly", "mask_thr": 0.347, "min_score": 0.3, "unclip_ratio": 1.95},
        tcm={"context_length": 32},
        source="TCM.md section 7 (official TCM-DBNet Total-Text config)",
    ),
    # Pre-training as in the DBNet paper: 100k iterations on SynthText.
    "synthtext": _recipe(
        optimizer={"name": "sgd", "lr": 0.007, "weight_decay": 1e-4, "momentum": 0.9},
        schedule={"by": "step"},
        epochs=None,
        steps=100_000,
        test={"long_side": None, "short_side": 736},
        source="DBNet paper section 4.2 (SynthText pre-training, 100k iterations)",
    ),
    # A CPU-sized model for the built-in synthetic set: trains from scratch
    # in minutes on two cores and ships in the package (<= 10 MB).
    "synthtext-mini": _recipe(
        model={
            "backbone": "mobilenetv3_small",
            "pretrained_backbone": False,
            "options": {"lateral_channels": 96, "min_text_size": 4},
        },
        # Tuned for two CPU cores (docs/benchmarks/training.md): 800 steps of
        # 8 x 224-px crops from scratch; fewer steps (400) did not converge.
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
                {"name": "random_scale", "range": [0.75, 1.5]},
                {"name": "random_crop", "size": [224, 224]},
            ],
        },
        # 1000 small images: decode once; one loader process next to the model.
        train_loop={"cache_images": True, "workers": 1},
        # Test at the generated image size: no resize, pad to 32.
        test={"long_side": None, "short_side": None},
        # quad: the dataset's default protocol is icdar2015 (quads only).
        postprocess={"output": "quad", "mask_thr": 0.3, "min_score": 0.5, "unclip_ratio": 1.5},
        tcm={"context_length": 4},
        source="tcmbench: small CPU recipe for synthtext-mini (not from a paper)",
    ),
}

DEFAULT_RECIPE = "default"


def get_recipe(name: str | None) -> dict[str, Any]:
    """A deep copy of recipe ``name`` (or the default one)."""
    return copy.deepcopy(RECIPES.get(name or DEFAULT_RECIPE, RECIPES[DEFAULT_RECIPE]))
