"""FCENet recipes: training and test settings per dataset (torch-free).

Sources: the FCENet paper (Zhu et al., CVPR 2021: ResNet50 + DCN, SGD 1e-3,
momentum 0.9, wd 5e-4, poly, 1500 epochs, K = 5), mmocr 0.x's FCENet
configs (``fcenet_r50_fpn_1500e_icdar2015.py``,
``fcenet_r50dcnv2_fpn_1500e_ctw1500.py``: pipeline, level ranges, test
scales, postprocess) and the official TCM-FCENet configs
(``fcenet_clip_r50att_prompt_gen_vis_fpn*.py``, ``fcenet_pipeline.py``:
Ranger 1e-3, wd 0, CLIP input 800, Total-Text test scale (1280, 960)).
Same keys as the DBNet recipes (docs/fcenet.md); ``model.options`` are
:mod:`tcmbench_fcenet.model`'s options.

mmocr's test scale ``img_scale=(a, b)`` with ``keep_ratio=True`` is
scale = min(max(a, b) / long side, min(a, b) / short side), i.e.
``long_side = max(a, b)``, ``short_side = min(a, b)`` here.
"""

from __future__ import annotations

from typing import Any

from tcmbench.models.recipes import IMAGENET_MEAN, IMAGENET_STD, merge_recipe

#: mmocr's level ranges: ICDAR 2015 (quads, many small words) and the
#: curved-text sets (CTW1500, Total-Text).
RANGES_IC15 = [[0.0, 0.4], [0.3, 0.7], [0.6, 1.0]]
RANGES_CURVED = [[0.0, 0.25], [0.2, 0.65], [0.55, 1.0]]


def _train_pipeline(size: int = 800) -> list[dict[str, Any]]:
    """mmocr's FCENet training pipeline, in order (RandomCropFlip, a
    flip-in-the-crop augmentation, is left out)."""
    return [
        {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
        {"name": "fce_random_scaling", "size": size, "scale": [0.75, 2.5]},
        {"name": "fce_crop_instances", "prob": 0.8, "min_side_ratio": 0.3},
        {"name": "fce_rotate", "prob": 0.5, "max_angle": 30.0},
        {"name": "fce_square_resize_pad", "size": size, "pad_ratio": 0.6},
        {"name": "hflip", "prob": 0.5},
    ]


def _base() -> dict[str, Any]:
    return {
        "model": {
            "backbone": "resnet50",
            "pretrained_backbone": True,
            "options": {"level_proportion_range": RANGES_CURVED},
        },
        "optimizer": {"name": "sgd", "lr": 1e-3, "weight_decay": 5e-4, "momentum": 0.9},
        "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "epoch", "warmup": 0},
        "epochs": 1500,
        "batch_size": 8,
        "normalize": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "train": {"crop_size": 800, "pad_divisor": 32, "augment": _train_pipeline(800)},
        "test": {"long_side": 1080, "short_side": 736, "pad_divisor": 32},
        "postprocess": {
            "output": "poly",
            "score_thr": 0.3,
            "nms_thr": 0.1,
            "alpha": 1.0,
            "beta": 2.0,
        },
        # The official TCM-FCENet config: 4 learnable tokens, CLIP at 800 px,
        # and ImageNet normalisation (its pipeline keeps mmocr's).
        "tcm": {"context_length": 4, "input_resolution": 800},
        "source": "",
    }


def _recipe(**overrides: Any) -> dict[str, Any]:
    return merge_recipe(_base(), overrides, whole=("optimizer",))


_RANGER = {"name": "ranger", "lr": 1e-3, "weight_decay": 0.0}

RECIPES: dict[str, dict[str, Any]] = {
    # Datasets without their own recipe: the paper's training, CTW1500's test.
    "default": _recipe(
        source="FCENet paper s. 4.2 (SGD 1e-3, momentum 0.9, wd 5e-4, poly, 1500 epochs); "
        "mmocr CTW1500 pipeline and test scale (1080, 736)",
    ),
    "icdar2015": _recipe(
        model={
            "backbone": "resnet50",
            "pretrained_backbone": True,
            "options": {"level_proportion_range": RANGES_IC15},
        },
        optimizer=_RANGER,
        batch_size=16,
        test={"long_side": 2260, "short_side": 2260},
        postprocess={"output": "quad", "score_thr": 0.3, "nms_thr": 0.1, "alpha": 1.2, "beta": 1.0},
        source="TCM.md s. 7 / official TCM-FCENet IC15 config (Ranger 1e-3, batch 16, test "
        "2260 x 2260, quad, alpha 1.2, beta 1.0); mmocr IC15 level ranges",
    ),
    "ctw1500": _recipe(
        optimizer=_RANGER,
        test={"long_side": 1080, "short_side": 736},
        postprocess={"output": "poly", "score_thr": 0.3, "nms_thr": 0.1, "alpha": 1.0, "beta": 2.0},
        source="mmocr fcenet_r50dcnv2_fpn_1500e_ctw1500 (test (1080, 736), poly, level ranges); "
        "Ranger 1e-3 as TCM.md s. 7 gives for FCE",
    ),
    "totaltext": _recipe(
        optimizer=_RANGER,
        test={"long_side": 1280, "short_side": 960},
        postprocess={"output": "poly", "score_thr": 0.3, "nms_thr": 0.1, "alpha": 1.0, "beta": 2.0},
        source="official TCM fcenet_pipeline.py (Total-Text: test (1280, 960), curved ranges); "
        "Ranger 1e-3",
    ),
    "msra-td500": _recipe(
        optimizer=_RANGER,
        test={"long_side": 1280, "short_side": 736},
        postprocess={"output": "quad", "score_thr": 0.3, "nms_thr": 0.1, "alpha": 1.0, "beta": 2.0},
        extra_train_datasets=["hust-tr400"],
        source="tcmbench (no FCENet config for TD500): Ranger 1e-3, test (1280, 736) as "
        "the other TD500 recipes' short side, quad output, trained with TR400",
    ),
    # A CPU-sized model for the built-in synthetic set: trains from scratch
    # on two cores and ships in the package (docs/benchmarks/training.md).
    "synthtext-mini": _recipe(
        model={
            "backbone": "mobilenetv3_small",
            "pretrained_backbone": False,
            "options": {"neck_channels": 96, "level_proportion_range": RANGES_IC15},
        },
        optimizer={"name": "adam", "lr": 2e-3, "weight_decay": 1e-4},
        schedule={"by": "step"},
        epochs=None,
        # Tuned on two CPU cores (docs/benchmarks/training.md): the model
        # starts to find words after ~500 steps; 1500 leave a margin.
        steps=1500,
        batch_size=8,
        train={
            "crop_size": 320,
            "pad_divisor": 32,
            "augment": [
                {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
                {"name": "fce_random_scaling", "size": 448, "scale": [0.75, 1.5]},
                {"name": "fce_crop_instances", "prob": 0.8, "min_side_ratio": 0.3},
                {"name": "fce_rotate", "prob": 0.5, "max_angle": 20.0},
                {"name": "fce_square_resize_pad", "size": 320, "pad_ratio": 0.6},
                {"name": "hflip", "prob": 0.5},
            ],
        },
        train_loop={"cache_images": True, "workers": 1},
        # Test at the generated image size: no resize, pad to 32.
        test={"long_side": None, "short_side": None},
        # quad: the dataset's default protocol is icdar2015 (quads only).
        # score_thr 0.6: best of 0.3..0.7 on 100 held-out images generated
        # with another seed (synthtext-mini seed 1), not on the test split.
        postprocess={"output": "quad", "score_thr": 0.6, "nms_thr": 0.1, "alpha": 1.0, "beta": 2.0},
        tcm={"context_length": 4, "input_resolution": 320},
        source="tcmbench: small CPU recipe for synthtext-mini (not from a paper)",
    ),
}

DEFAULT_RECIPE = "default"
