"""PANet recipes: training and test settings per dataset (torch-free).

Values: the PAN paper (Wang et al., ICCV 2019: test short side 736 on
IC15 and TD500, 640 on CTW1500 and Total-Text; kernel shrink 0.5; loss
weights 0.5 / 0.25, delta_agg 0.5, delta_dis 3), mmocr 0.x's PANet configs
(``panet_pipeline.py``: ScaleAspectJitter around short side 736 / 640 x
[0.7, 1.3], aspect [0.9, 1.1], RandomCropInstances 736 / 640, kernel
shrink 0.5 / 0.7 for CTW1500, test (1333, 736) / (3000, 640);
PANPostprocessor defaults: text / kernel 0.5, mean score 0.85, area 16)
and the official TCM-PAN configs (the TCM paper's training settings: Ranger 1e-3, no weight
decay, poly LR per epoch, 1200 epochs, batch 16, CLIP input resolution 736
on IC15 / 640 on CTW1500, quad output on IC15, poly on CTW1500, 4 learnable
context tokens). The keys are those of DBNet's recipes (docs/dbnet.md);
docs/pan.md lists every recipe.

Besides the dataset recipes (the defaults: the official TCM-PAN configs
where they exist), two families:

- ``pan-paper-*``: the PAN paper's experiments as the authors released
  them (github.com/whai362/pan_pp.pytorch, ``config/pan/*.py``). Its
  README (``config/pan/README.md``) says the released code changed two
  settings of the paper's (Python 2.7) code: Adam instead of the paper's
  SGD, and a poly LR in pre-training too; with them it reproduces the
  paper's F-measures (its table: IC15 80.8 / 83.0 without / with SynthText
  pre-training, paper 80.3 / 82.9). The recipes follow the released
  configs; the paper's test short sides (736 IC15 / TD500, 640 CTW1500 /
  Total-Text) are the same;
- ``tcm-pretrain``: the official TCM-PAN pre-training config (SynthText +
  real data, 20 epochs), whose checkpoint the official TCM-PAN fine-tuning
  configs load (``tcmbench train --init-from``).

Keys as DBNet's (docs/dbnet.md), including ``optimizer.no_decay``,
``train_loop.min_steps``, ``extra_train_datasets`` and
``pretrain_recipe``.

Where the authors' code makes a choice tcmbench once made differently
(the fidelity rows of docs/pan.md, ``tcmbench_pan.fidelity``), every
named recipe follows its authors: the dataset recipes, ``default`` and
``tcm-pretrain`` mmocr 0.x as wenwenyu/TCM bundles it
(:data:`MMOCR_OPTIONS`, :data:`MMOCR_POSTPROCESS`, ImageNet normalisation
with ``--tcm`` too; ``default``, mmocr's plain PANet-R18, also freezes the
backbone's BatchNorm statistics), the ``pan-paper-*`` recipes
pan_pp.pytorch (:data:`PAN_PP_OPTIONS`, :data:`PAN_PP_POSTPROCESS`).
Only the plain ``synthtext-mini`` recipe, with which the shipped weights
were trained, keeps tcmbench's choices (:data:`TCMBENCH_POSTPROCESS`, the
plugin's option defaults, CLIP normalisation with ``--tcm``).
"""

from __future__ import annotations

import copy
from typing import Any

from tcmbench.models.recipes import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NO_DECAY_LEGACY,
    NO_DECAY_NONE,
    NO_DECAY_TCM,
    TCM_MEAN,
    TCM_STD,
    merge_recipe,
    no_decay,
)

#: mmocr 0.x (wenwenyu/TCM's mmocr 0.4) targets, loss and head: no
#: don't-care rule for small words, the integer shrink offset capped at 20
#: px, targets sampled at input pixel 4 i, L_dis over unordered pairs, the
#: head's 1x1 conv initialised N(0, 0.01).
MMOCR_OPTIONS: dict[str, Any] = {
    "min_text_size": 0.0,
    "kernel_shrink": "official",
    "target_sampling": "corner",
    "dis_pairs": "unordered",
    "head_init": "mmocr",
}
#: mmocr 0.x post-processing: mmcv's pixel_group with
#: min_text_avg_confidence (0.85) as its distance threshold, boxes from the
#: pixel indices times 4.
MMOCR_POSTPROCESS: dict[str, Any] = {
    "aggregation": "mmcv",
    "distance_thr": 0.85,
    "box_geometry": "mmocr",
}
#: pan_pp.pytorch targets, loss and head (its loss is computed on the
#: maps upsampled to the input, closest to tcmbench's centre sampling).
PAN_PP_OPTIONS: dict[str, Any] = {
    "min_text_size": 0.0,
    "kernel_shrink": "official",
    "target_sampling": "centre",
    "dis_pairs": "ordered",
    "head_init": "pan_pp",
}
#: pan_pp.pytorch post-processing: pa.pyx (distance 3, consulted only for
#: kernels 1024x apart in area), boxes from the label map resized to the
#: input.
PAN_PP_POSTPROCESS: dict[str, Any] = {
    "aggregation": "pan_pp",
    "distance_thr": 3.0,
    "box_geometry": "pan_pp",
}
#: tcmbench's own post-processing choices (the plain synthtext-mini recipe
#: and the postprocessor's defaults).
TCMBENCH_POSTPROCESS: dict[str, Any] = {
    "aggregation": "nearest",
    "distance_thr": 3.0,
    "box_geometry": "grown",
}
#: Recipes that keep tcmbench's choices (the rest follow their authors).
PLAIN_RECIPES = ("synthtext-mini",)

#: Appended to the source of every recipe that follows mmocr 0.x.
_MMOCR_FIDELITY = (
    "; targets, loss, head and post-processing as mmocr 0.x runs them (pixel_group distance "
    "0.85 = min_text_avg_confidence, boxes = minAreaRect of pixel indices x 4, kernel offset "
    "min(int(d + 0.5), 20), no min_text_size rule, L_dis over unordered pairs / N(N-1), "
    "out_conv N(0, 0.01)), ImageNet mean / std with --tcm too (panet_pipeline.py "
    "img_norm_cfg)"
)


def _mmocr_options(**extra: Any) -> dict[str, Any]:
    """``model.options`` of a recipe that follows mmocr 0.x."""
    return {**MMOCR_OPTIONS, **extra}


def train_pipeline(
    short_side: int, crop: int, long_side: int | None = 3000
) -> list[dict[str, Any]]:
    """mmocr's PANet training pipeline, in order: colour jitter, scale and
    aspect jitter around ``short_side`` (long side capped at ``long_side``:
    mmocr's 3000; the authors' code has no cap), flip, rotation up to 10
    degrees, instance-keeping ``crop`` x ``crop`` crop."""
    return [
        {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
        {
            "name": "pan_scale_jitter",
            "short_side": short_side,
            "ratio_range": [0.7, 1.3],
            "aspect_range": [0.9, 1.1],
            "long_side": long_side,
        },
        {"name": "hflip", "prob": 0.5},
        {"name": "rotate", "max_angle": 10.0},
        {"name": "pan_crop_instances", "size": [crop, crop], "text_prob": 0.625},
    ]


def _base() -> dict[str, Any]:
    return {
        "model": {
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": _mmocr_options(),
        },
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
            **MMOCR_POSTPROCESS,
        },
        "tcm": {
            "context_length": 4,
            "input_resolution": 736,
            # The official TCM-PAN pipeline (panet_pipeline.py) normalises
            # with ImageNet's mean / std, not CLIP's.
            "normalize": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        },
        "source": "",
    }


def _recipe(**overrides: Any) -> dict[str, Any]:
    return merge_recipe(_base(), overrides)


# -- the PAN paper, as the authors released it ---------------------------------

#: Sources of the values every pan-paper-* recipe shares.
_PAPER = (
    "authors' released configs (pan_pp.pytorch config/pan/pan_r18_*.py; README: Adam and "
    "poly replace the paper's SGD and fixed pre-training LR and reproduce the paper's F): "
    "ResNet-18 from ImageNet, Adam lr 1e-3 (train.py: no weight decay, no_decay []), poly "
    "0.9 per iteration (adjust_learning_rate) to 1e-7 (tcmbench; the code ends at 0), 600 "
    "epochs, batch 16; augmentations: short side x {0.7..1.3}, aspect {0.9..1.1}, flip, "
    "rotate +-10, crop with a word 5/8 of the time, then colour jitter and normalisation "
    "(normalize_at end), no long-side cap; loss weights 1 / 0.5 / 0.25, delta_agg 0.5, delta_dis 3 (PA "
    "head and EmbLoss_v1: the model defaults); ImageNet mean / std; test: short side "
    "resized (scale_aligned_short), kernels and text at sigmoid 0.5 (logits > 0), "
    "pixel aggregation as pa.pyx (embedding distance 3, consulted only for kernels of one "
    "text component 1024x apart in area), min_area 16 input pixels counted on the label map "
    "resized to the input = 1 pixel of the 1/4 map here, boxes from that label map "
    "(minAreaRect of its pixel indices, truncated to integers); kernel offset min(int(d + "
    "0.5), 20), no min_text_size rule, L_dis over ordered pairs, the 1x1 conv initialised "
    "N(0, sqrt(2 / 6)) (PA_Head; its 3x3 conv + BN before it is not built here); contours "
    "simplified 0.002 (tcmbench; the code keeps the raw contour)"
)


def _paper(
    short_side: int,
    kernel: float,
    min_score: float,
    output: str,
    pretrain: str | None = "pan-paper-synthtext-pretrain",
    **overrides: Any,
) -> dict[str, Any]:
    """A pan-paper-* recipe: short side, kernel scale, min_score and box
    type of one released config (they differ in nothing else)."""
    recipe = _recipe(
        model={
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": {"shrink_ratio": kernel, **PAN_PP_OPTIONS},
        },
        optimizer={
            "name": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_NONE),
        },
        schedule={"by": "step"},
        epochs=600,
        batch_size=16,
        train={
            "crop_size": short_side,
            "pad_divisor": 32,
            # The authors' order: geometric steps on uint8, colour jitter on
            # the crop, normalise last.
            "normalize_at": "end",
            "augment": train_pipeline(short_side, short_side, long_side=None)[1:]
            + train_pipeline(short_side, short_side)[:1],
        },
        test={"long_side": None, "short_side": short_side},
        postprocess={
            "output": output,
            "text_thr": 0.5,
            "kernel_thr": 0.5,
            "min_score": min_score,
            "min_area": 1.0,
            **PAN_PP_POSTPROCESS,
        },
        tcm={"input_resolution": short_side},
    )
    if pretrain is not None:
        recipe["pretrain_recipe"] = pretrain
    return merge_recipe(recipe, overrides)


_FINETUNE = (
    "; the *_finetune config is the same with --init-from a pan-paper-synthtext-pretrain "
    "run ('Y' rows of the README)"
)

RECIPES: dict[str, dict[str, Any]] = {
    # Datasets without their own recipe (icdar2013, mlt17, art, ...):
    # mmocr's plain PANet (Adam 1e-3, 600 epochs) at the IC15 scales.
    "default": _recipe(
        # mmocr's panet_r18_fpem_ffm: mmdet ResNet-18 with norm_eval=True.
        model={
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": _mmocr_options(backbone_norm_eval=True),
        },
        optimizer={
            "name": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_NONE),
        },
        epochs=600,
        source="mmocr 0.x panet_r18_fpem_ffm_600e_icdar2015 (Adam 1e-3, poly, 600 epochs, "
        "736 crops; schedule_adam_600e has no paramwise settings: no_decay []; "
        "panet_r18_fpem_ffm.py: backbone norm_eval=True, BatchNorm statistics of the "
        "backbone frozen); PAN paper test short side 736" + _MMOCR_FIDELITY,
    ),
    "icdar2015": _recipe(
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        postprocess={"output": "quad"},
        tcm={"input_resolution": 736},
        pretrain_recipe="tcm-pretrain",
        source="the TCM paper's training settings"
        " and the official TCM-PAN IC15 config (Ranger 1e-3, "
        "input resolution 736, quad, 'norm' exempt from decay, 1200 epochs, load_from the "
        "TCM-PAN pre-training epoch 20); mmocr PANet IC15 pipeline and test scale (1333, 736)"
        + _MMOCR_FIDELITY,
    ),
    "msra-td500": _recipe(
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        test={"long_side": 3000, "short_side": 736},
        postprocess={"output": "quad"},
        extra_train_datasets=["hust-tr400"],
        source="PAN paper (TD500 test short side 736, quad boxes); "
        "the TCM paper's training settings "
        "(Ranger 1e-3, trained with HUST-TR400; the official configs exempt 'norm' from "
        "decay)" + _MMOCR_FIDELITY,
    ),
    "ctw1500": _recipe(
        # The official CTW1500 fine-tuning config trains and tests with the
        # IC15 pipelines of panet_pipeline.py (train_pipeline_icdar2015,
        # test_pipeline_icdar2015), not mmocr's CTW1500 ones.
        model={
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": _mmocr_options(shrink_ratio=0.5),
        },
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        train={"crop_size": 736, "pad_divisor": 32, "augment": train_pipeline(736, 736)},
        test={"long_side": 1333, "short_side": 736},
        postprocess={"output": "poly"},
        tcm={"input_resolution": 640},
        pretrain_recipe="tcm-pretrain",
        source="official TCM-PAN CTW1500 config panet_clip_r50att_prompt_gen_vis_fpem_ffm_600e_"
        "ft_ctw_taiji.py (Ranger 1e-3, backbone input_resolution 640, poly, 'norm' exempt from "
        "decay, load_from the TCM-PAN pre-training epoch 20); its data pipelines are "
        "train_pipeline_icdar2015 / test_pipeline_icdar2015 of panet_pipeline.py: short side "
        "736 x [0.7, 1.3], 736 crops, shrink_ratio (1.0, 0.5), test (1333, 736)" + _MMOCR_FIDELITY,
    ),
    "totaltext": _recipe(
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        train={"crop_size": 640, "pad_divisor": 32, "augment": train_pipeline(640, 640)},
        test={"long_side": 3000, "short_side": 640},
        postprocess={"output": "poly"},
        tcm={"input_resolution": 640},
        source="PAN paper (Total-Text test short side 640, polygons); "
        "the TCM paper's training settings "
        "(Ranger 1e-3; the official configs exempt 'norm' from decay); mmocr's CTW1500 640 "
        "pipeline (no official TCM-PAN Total-Text config)" + _MMOCR_FIDELITY,
    ),
    # A CPU-sized model for the built-in synthetic set: trains from scratch
    # in minutes on two cores and ships in the package (<= 10 MB).
    "synthtext-mini": _recipe(
        model={
            "backbone": "mobilenetv3_small",
            "pretrained_backbone": False,
            "options": {"neck_channels": 64, "min_text_size": 4},
        },
        optimizer={
            "name": "adam",
            "lr": 3e-3,
            "weight_decay": 1e-4,
            "no_decay": no_decay(NO_DECAY_LEGACY),
        },
        schedule={"by": "step"},
        epochs=None,
        steps=800,
        batch_size=8,
        train={
            "crop_size": 224,
            "pad_divisor": 32,
            "normalize_at": "end",
            "augment": [
                {"name": "color_jitter", "brightness": 32.0 / 255, "saturation": 0.5},
                {"name": "hflip", "prob": 0.5},
                {"name": "rotate", "max_angle": 10.0},
                {"name": "random_scale", "range": [0.6, 1.2]},
                {"name": "pan_crop_instances", "size": [224, 224], "text_prob": 1.0},
            ],
        },
        # min_steps: an estimate (no run shorter than 800 steps was measured).
        train_loop={"cache_images": True, "workers": 1, "min_steps": 800},
        test={"long_side": None, "short_side": None},
        postprocess={"output": "quad", "min_score": 0.8, **TCMBENCH_POSTPROCESS},
        tcm={"input_resolution": 224, "normalize": {"mean": TCM_MEAN, "std": TCM_STD}},
        source="tcmbench: small CPU recipe for synthtext-mini (not from a paper); tcmbench's "
        "own targets, loss, head and post-processing (the plugin's option defaults: "
        "min_text_size rule, float shrink offset, centre sampling, nearest-kernel aggregation "
        "at distance 3, grown boxes) and CLIP normalisation with --tcm; no_decay "
        "norm + bias and normalize_at end: what the shipped weights were trained with; "
        "min_steps 800 is an "
        "estimate: the shipped 800-step run (hmean 0.934, docs/benchmarks/training.md) is "
        "the only one evaluated, no shorter run was",
    ),
    # -- the PAN paper (Wang et al., ICCV 2019), released configs --------------
    "pan-paper-synthtext-pretrain": _paper(
        640,
        0.5,
        0.85,
        "quad",
        pretrain=None,
        epochs=1,
        source="pan_r18_synth.py: 1 epoch of SynthText, short side 640, 640 crops, kernel "
        "0.5 (no test settings: evaluated as pan-paper-icdar2015 at 640, rect, min_score "
        "0.85); " + _PAPER,
    ),
    "pan-paper-icdar2015": _paper(
        736,
        0.5,
        0.85,
        "quad",
        source="pan_r18_ic15.py: short side 736, 736 crops, kernel 0.5, min_score 0.85, "
        "rect (paper: IC15 at 736; README F 80.8, paper 80.3)" + _FINETUNE + "; " + _PAPER,
    ),
    "pan-paper-msra-td500": _paper(
        736,
        0.7,
        0.86,
        "quad",
        extra_train_datasets=["hust-tr400"],
        source="pan_r18_msra.py: short side 736, 736 crops, kernel 0.7, min_score 0.86, "
        "rect, trained on TD500 + HUST-TR400 (pan_msra.py) (paper: TD500 at 736; README F "
        "80.7, paper 78.9)" + _FINETUNE + "; " + _PAPER,
    ),
    "pan-paper-ctw1500": _paper(
        640,
        0.7,
        0.88,
        "poly",
        source="pan_r18_ctw.py: short side 640, 640 crops, kernel 0.7, min_score 0.88, poly "
        "(paper: CTW1500 at 640; README F 82.0, paper 81.0)" + _FINETUNE + "; " + _PAPER,
    ),
    "pan-paper-totaltext": _paper(
        640,
        0.7,
        0.87,
        "poly",
        source="pan_r18_tt.py: short side 640, 640 crops, kernel 0.7, min_score 0.87, poly "
        "(paper: Total-Text at 640; README F 83.5, paper 83.5)" + _FINETUNE + "; " + _PAPER,
    ),
    # -- the official TCM-PAN pre-training --------------------------------------
    "tcm-pretrain": _recipe(
        model={
            "backbone": "resnet18",
            "pretrained_backbone": True,
            "options": _mmocr_options(shrink_ratio=0.7),
        },
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        epochs=20,
        batch_size=16,
        train={"crop_size": 640, "pad_divisor": 32, "augment": train_pipeline(640, 640)},
        test={"long_side": 3000, "short_side": 640},
        postprocess={"output": "poly"},
        tcm={"input_resolution": 640},
        extra_train_datasets=["icdar2015", "ctw1500", "totaltext"],
        source="official TCM-PAN pre-training configs panet_clip_r50att_prompt_gen_vis_"
        "fpem_ffm_20e_st_real3_pretrain_taiji_hua.py (SynthText) and its _st150k_ twin "
        "(Synth150k, not a tcmbench dataset; the one the IC15 / CTW1500 fine-tuning configs "
        "load, epoch 20): SynthText + the IC15, CTW1500 and Total-Text training sets (train "
        "with --tcm --dataset synthtext,icdar2015,ctw1500,totaltext), 20 epochs, 16 images "
        "per GPU, Ranger 1e-3 wd 0, only 'norm' exempt from decay, poly 0.9 per epoch to "
        "1e-7, mmocr's CTW1500 pipeline (short side 640, 640 crops, kernel 0.7), CLIP input "
        "640, 4 learnable context tokens, test (3000, 640), mmocr PANPostprocessor poly"
        + _MMOCR_FIDELITY,
    ),
}

DEFAULT_RECIPE = "default"


def get_recipe(name: str | None) -> dict[str, Any]:
    """A deep copy of recipe ``name`` (or the default one)."""
    return copy.deepcopy(RECIPES.get(name or DEFAULT_RECIPE, RECIPES[DEFAULT_RECIPE]))
