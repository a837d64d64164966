"""DBNet recipes: training and test settings per dataset (torch-free).

Four families, every value cited in the recipe's ``source``:

- the dataset recipes ``icdar2015``, ``msra-td500``, ``ctw1500``,
  ``totaltext``: the official TCM-DBNet fine-tuning configs (the TCM paper's
  training settings; github.com/wenwenyu/TCM, ``ocrclip/configs/textdet/dbnet``),
  the defaults for those datasets;
- ``dbnet-paper-*``: the DBNet paper (Liao et al., "Real-time Scene Text
  Detection with Differentiable Binarization", AAAI 2020, section 4.2
  "Implementation details" and its result tables, whose brackets give the
  test image height). What the paper does not state comes from the
  authors' code (github.com/MhLiao/DB: ``experiments/seg_detector/*.yaml``,
  ``SegDetectorRepresenter``, the README's evaluation commands) and the
  source says so. The paper resizes to a fixed *height*; here
  ``short_side`` is used, the same on landscape images;
- ``tcm-pretrain``, ``tcm-pretrain-ctx32``: the official TCM pre-training
  configs (SynthText + real data, 20 epochs), whose checkpoints the
  official fine-tuning configs load (``tcmbench train --init-from``);
- ``default`` (datasets without a recipe), ``synthtext`` and the CPU recipe
  ``synthtext-mini``.

A recipe is a plain dict; every key is documented in docs/dbnet.md:

``model``        backbone, pretrained_backbone, options (build_parts options)
``optimizer``    name (sgd | adam | adamw | ranger), lr, weight_decay, extra
                 kwargs (momentum), no_decay (parameter kinds exempt from
                 weight decay: norm, bias, embedding, prompt)
``schedule``     name "poly", power, min_lr, by ("epoch" | "step"), warmup
``epochs`` / ``steps``, ``batch_size`` (per process)
``normalize``    mean / std (RGB, 0-255) for the torchvision backbone
``train``        augmentations in order, crop_size, pad_divisor
``train_loop``   workers, cache_images, eval_every, save_every, grad_clip,
                 min_steps (shortest run known to learn; shorter runs warn)
``test``         long_side / short_side limits of a keep-ratio resize:
                 scale = min(long_side / long, short_side / short), up- or
                 down-scaling; a limit that is None is not applied, both None
                 = the original size; then pad to pad_divisor
``postprocess``  DBPostprocessor parameters
``tcm``          context_length and the CLIP normalisation TCM trains with
``extra_train_datasets``  datasets the source trains with as well (give
                 them to ``--dataset``; the trainer does not add them)
``pretrain_recipe``  the recipe whose final checkpoint this one fine-tunes
                 (``--init-from RUN/final``; documentation, not read)
``finetune_for`` ``{"backbone": B, "datasets": [...]}``: the recipe ``train
                 --init-from`` a checkpoint with backbone B on one of those
                 datasets uses when no ``--recipe`` is given
``source``       where the values come from

``ppocrv3-finetune-msra-td500`` fine-tunes PaddleOCR's PP-OCRv3 detector
imported with ``tcmbench import ppocr`` (tcmbench_dbnet.ppocr).
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
from tcmbench_dbnet.ppocr.recipe import PPOCR_POSTPROCESS, PPOCR_TEST, normalize_rgb


def _train_pipeline(crop_size: int) -> list[dict[str, Any]]:
    """The TCM paper's training settings / mmocr DBNet training augmentations, in order."""
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


# -- the DBNet paper -----------------------------------------------------------

#: Sources of the values every dbnet-paper-* recipe shares.
_PAPER = (
    "DBNet paper s. 4.2: ResNet-50 with deformable conv in conv3-conv5 (resnet50-dcn), "
    "SGD lr 0.007, momentum 0.9, wd 1e-4, poly power 0.9, batch 16, 1200 epochs of "
    "fine-tuning after 100k SynthText iterations, random rotation (-10, 10) / crop / flip, "
    "640 x 640 crops; not stated in the paper, from the authors' code (MhLiao/DB): decay on "
    "every parameter (no_decay []), poly updated per epoch (DecayLearningRate), scale range "
    "[0.5, 3] and no colour jitter (base_*.yaml), augmentations on uint8 and normalisation "
    "last (NormalizeImage after RandomCropData: normalize_at end), k 50, shrink 0.4, thr 0.3-0.7, loss "
    "5 BCE + dice + 10 L1 (L1BalanceCELoss; the model defaults); min_lr 1e-7 from mmocr; "
    "ImageNet mean / std for the torchvision weights (the authors' code divides by 255)"
)
#: The authors' quad post-processing (SegDetectorRepresenter.boxes_from_bitmap).
_PAPER_QUAD = (
    "post-processing of the authors' code for quads: binarise at 0.3, every contour "
    "(RETR_LIST), at most 1000 (the yaml's max_candidates), min-area rectangle scored by "
    "box_score_fast (score_mode fast), unclip 1.5 (also the paper's r'), short side >= 3 "
    "before and >= 5 after"
)
#: The authors' polygon post-processing (polygons_from_bitmap).
_PAPER_POLY = (
    "post-processing of the authors' code for polygons: binarise at 0.3, every contour, at "
    "most 1000, approxPolyDP 0.002 x perimeter, >= 4 points, polygon-mean score, unclip "
    "2.0, no size test before unclipping and short side >= 5 after"
)


def _paper_train() -> dict[str, Any]:
    """The paper's augmentations in the authors' order (imgaug Fliplr,
    Affine rotate, Resize [0.5, 3.0], then RandomCropData 640)."""
    return {
        "crop_size": 640,
        "pad_divisor": 32,
        # The authors augment uint8 images (black fill) and normalise last.
        "normalize_at": "end",
        "augment": [
            {"name": "hflip", "prob": 0.5},
            {"name": "rotate", "max_angle": 10.0},
            {"name": "random_scale", "range": [0.5, 3.0]},
            {"name": "random_crop", "size": [640, 640]},
        ],
    }


def _paper_quad(min_score: float) -> dict[str, Any]:
    return {
        "output": "quad",
        "mask_thr": 0.3,
        "min_score": min_score,
        "unclip_ratio": 1.5,
        "min_size": 3,
        "max_candidates": 1000,
        "score_mode": "fast",
        "all_contours": True,
    }


def _paper_poly(min_score: float) -> dict[str, Any]:
    return {
        "output": "poly",
        "mask_thr": 0.3,
        "min_score": min_score,
        "unclip_ratio": 2.0,
        "min_size": 0,
        "min_size_unclipped": 5,
        "max_candidates": 1000,
        "epsilon_ratio": 0.002,
        "min_points": 4,
        "all_contours": True,
    }


def _paper(
    pretrain: str | None = "dbnet-paper-synthtext-pretrain", **overrides: Any
) -> dict[str, Any]:
    """A dbnet-paper-* recipe: the shared paper settings, then ``overrides``
    (test, postprocess, tcm, source ...); fine-tuned from ``pretrain``."""
    common = merge_recipe(
        _base(),
        {
            "model": {"backbone": "resnet50-dcn", "pretrained_backbone": True, "options": {}},
            "optimizer": {
                "name": "sgd",
                "lr": 0.007,
                "weight_decay": 1e-4,
                "momentum": 0.9,
                "no_decay": no_decay(NO_DECAY_NONE),
            },
            "train": _paper_train(),
        },
        whole=("optimizer", "train"),
    )
    if pretrain is not None:
        common["pretrain_recipe"] = pretrain
    return merge_recipe(common, overrides, whole=("postprocess", "test"))


# -- the official TCM pre-training ----------------------------------------------


def _tcm_pretrain_source(config: str, data: str, per_gpu: int, tokens: int) -> str:
    """The source of a TCM pre-training recipe: what the official config
    ``config`` sets (they differ in data, images per GPU and tokens)."""
    return (
        f"official TCM pre-training config {config} (TCM repo README: pre-train on "
        f"SynthText / Synth150k, then fine-tune from the checkpoint with load_from): {data}, "
        f"20 epochs, {per_gpu} images per GPU on 8 GPUs (torchrun --nproc_per_node 8), Ranger "
        "lr 1e-3 wd 0, only 'norm' exempt from decay, poly 0.9 per epoch to 1e-7, the DB "
        f"r50dcnv2 pipeline (640 crops), {tokens} learnable context tokens, test 4068 x 1024, "
        "DBParamPostprocessor quad (mask 0.3, score 0.3, min_text_width 5 after unclipping, "
        "unclip 1.5, approxPolyDP 0.01, 3000 candidates; mmocr: every contour, >= 4 points)"
    )


def _tcm_pretrain(**overrides: Any) -> dict[str, Any]:
    """A TCM pre-training recipe: the settings of the official
    ``*_20e_8x16_*_real3_pretrain`` configs, then ``overrides``."""
    settings: dict[str, Any] = {
        "optimizer": {
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        "epochs": 20,
        "batch_size": 16,
        "test": {"long_side": 4068, "short_side": 1024},
        "postprocess": {
            "output": "quad",
            "mask_thr": 0.3,
            "min_score": 0.3,
            "unclip_ratio": 1.5,
            "min_size": 0,
            "min_size_unclipped": 5,
            "max_candidates": 3000,
            "epsilon_ratio": 0.01,
            "min_points": 4,
            "all_contours": True,
        },
        "tcm": {"context_length": 4},
        "extra_train_datasets": ["icdar2015", "ctw1500", "totaltext"],
    }
    settings.update(overrides)
    return _recipe(**settings)


_TCM_FT = "; fine-tuned with --init-from the {} run's final checkpoint ({})"


# -- fine-tuning an imported PP-OCR detector ----------------------------------

#: The architecture `tcmbench import ppocr` gives PP-OCRv3's detector.
PPOCRV3_MODEL: dict[str, Any] = {
    "backbone": "ppocrv3_mobilenetv3",
    "pretrained_backbone": False,
    "options": {"neck": "rse_fpn", "lateral_channels": 96},
}
#: The fine-tune's loss: the probability map alone, with dice. PaddleOCR
#: trains that map with dice (DBLoss main_loss_type DiceLoss); DBNet's OHEM
#: BCE pulled the imported model towards thinner maps (H 0.8346 -> 0.6389).
#: The threshold branch is not in an inference graph, so the import starts
#: it from random weights: its L1 (weight 10, still 0.45 after 240 steps)
#: and the binary map's dice then drove the shared layers and cost recall
#: (-> 0.8171). beta 0 and binary_weight 0 leave it out of the loss.
PPOCRV3_FINETUNE_LOSS: dict[str, Any] = {"prob_loss": "dice", "beta": 0.0, "binary_weight": 0.0}
#: Length of the TD500 fine-tune, sized to run in under 30 minutes on two
#: CPU cores: 5.5-7 s per step of 8 x 640-px crops measured with other jobs
#: sharing the cores (docs/benchmarks.md has the full run's time).
PPOCRV3_TD500_STEPS = 240


def _ppocrv3_finetune_td500() -> dict[str, Any]:
    """A short, gentle fine-tune of a good model on 300 photos: it must not
    make the model worse. Every choice is said in ``source``."""
    return {
        "model": merge_recipe(
            copy.deepcopy(PPOCRV3_MODEL), {"options": dict(PPOCRV3_FINETUNE_LOSS)}
        ),
        "optimizer": {"name": "adam", "lr": 1e-4, "weight_decay": 5e-5, "no_decay": []},
        "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "step", "warmup": 30},
        "epochs": None,
        "steps": PPOCRV3_TD500_STEPS,
        "batch_size": 8,
        "normalize": normalize_rgb(True),
        "train": {
            "crop_size": 640,
            "pad_divisor": 32,
            "normalize_at": "end",
            "augment": [
                {"name": "random_scale", "range": [0.45, 0.9]},
                {"name": "hflip", "prob": 0.5},
                {"name": "rotate", "max_angle": 10.0},
                {"name": "random_crop", "size": [640, 640]},
            ],
        },
        "train_loop": {
            "workers": 1,
            "cache_images": False,
            "norm_eval": True,
        },
        "test": dict(PPOCR_TEST),
        "postprocess": dict(PPOCR_POSTPROCESS),
        "finetune_for": {"backbone": PPOCRV3_MODEL["backbone"], "datasets": ["msra-td500"]},
        "source": (
            "tcmbench: fine-tune of PaddleOCR's PP-OCRv3 mobile detector (ch_PP-OCRv3_det, "
            "imported with `tcmbench import ppocr`) on the 300 MSRA-TD500 training photos, sized "
            "for two CPU cores (not from a paper). Adam lr 1e-4 (a tenth of PaddleOCR's "
            "det_mv3_db / PP-OCRv3 training lr 0.001: the model is already trained) with a "
            "30-step linear warm-up (Adam's first updates are ~lr for every weight whatever the "
            "gradient) and poly decay per step; weight decay 5e-5 on every parameter, "
            "no_decay [] (PaddleOCR's L2 regularizer); BatchNorm statistics frozen (norm_eval: batches of 8 "
            "crops would replace statistics learnt on far more data); PaddleOCR's geometric "
            "augmentations only (flip, rotation +-10, scale, text-aware crop; no colour jitter), "
            "scale x0.45-0.9 around the test scale (the photos are 1600-1728 px long, tested at "
            "960: x0.56-0.6), 640-px crops, batch 8, black padding then normalisation "
            "(normalize_at end, as PaddleOCR's NormalizeImage after EastRandomCropData); DB "
            "targets at the plugin's defaults, which are PaddleOCR's (shrink 0.4, min text 8); "
            "the loss is the probability map's alone, with dice (prob_loss dice, alpha 5, beta "
            "0, binary_weight 0): PaddleOCR trains that map with dice (DBLoss main_loss_type "
            "DiceLoss) and DBNet's OHEM BCE made the model worse; the threshold branch, random "
            "after the import (an inference graph has none) and unused by the postprocessing, "
            "stays out of the loss, whose L1 otherwise drove the shared layers and cost recall "
            "(docs/benchmarks.md). Test: the model's own "
            "settings, as `tcmbench import ppocr` records them (limit_side 960 max, ImageNet "
            "normalisation in RGB order, thresholds 0.3 / 0.6, unclip 1.5). "
            f"{PPOCRV3_TD500_STEPS} steps x 8 = {8 * PPOCRV3_TD500_STEPS} crops "
            f"({8 * PPOCRV3_TD500_STEPS / 300:g} epochs of the 300 photos), sized for about 25 "
            "minutes on two CPU cores"
        ),
    }


RECIPES: dict[str, dict[str, Any]] = {
    # Used for datasets without their own recipe (icdar2013, mlt17, art, ...):
    # the DBNet paper's fine-tuning settings.
    "default": _recipe(
        optimizer={
            "name": "sgd",
            "lr": 0.007,
            "weight_decay": 1e-4,
            "momentum": 0.9,
            "no_decay": no_decay(NO_DECAY_NONE),
        },
        test={"long_side": None, "short_side": 736},
        source="DBNet paper section 4.2 (SGD 0.007, momentum 0.9, wd 1e-4, poly 0.9, "
        "1200 epochs, batch 16, 640 crops); no_decay []: the authors' code and mmocr's "
        "schedule_sgd_1200e decay every parameter",
    ),
    "icdar2015": _recipe(
        optimizer={
            "name": "adam",
            "lr": 1e-4,
            "weight_decay": 1e-4,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        test={"long_side": 4068, "short_side": 1024},
        postprocess={
            "output": "quad",
            "mask_thr": 0.28,
            "min_score": 0.2,
            "unclip_ratio": 1.6,
            "epsilon_ratio": 0.001,
            "min_points": 4,
            "all_contours": True,
        },
        tcm={"context_length": 4},
        source="the TCM paper's training settings (official TCM-DBNet IC15 config "
        "clip_db_r50_fpnc_prompt_gen_vis_1200e_ft_gen_ic15_adam_taiji.py: 'norm' exempt "
        "from decay, DBParamPostprocessor with approxPolyDP 0.001, every contour, >= 4 "
        "points); min_size 3 kept from the earlier recipe (the config: min_text_width 2 "
        "after unclipping only); its load_from (a TCM pre-training checkpoint) is commented "
        "out",
    ),
    "msra-td500": _recipe(
        optimizer={
            "name": "ranger",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        test={"long_side": 4068, "short_side": 736},
        postprocess={
            "output": "quad",
            "mask_thr": 0.08,
            "min_score": 0.17,
            "unclip_ratio": 1.9,
            "epsilon_ratio": 0.0,
            "min_points": 4,
            "all_contours": True,
        },
        tcm={"context_length": 4},
        extra_train_datasets=["hust-tr400"],
        source="the TCM paper's training settings"
        " (official TCM-DBNet TD500 config, trained with TR400: "
        "clip_db_r50_fpnc_prompt_gen_vis_1200e_ft_td_ranger_post_taiji.py: 'norm' exempt "
        "from decay, DBVisPostprocessor without approxPolyDP, every contour, >= 4 points); "
        "min_size 3 and 3000 candidates kept from the earlier recipe (the config: "
        "min_text_width 3 after unclipping only, max_candidates 1000); its load_from "
        "(tcm-pretrain's epoch 11) is commented out",
    ),
    "ctw1500": _recipe(
        optimizer={
            "name": "adamw",
            "lr": 1e-4,
            "weight_decay": 1e-4,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        test={"long_side": 4068, "short_side": 1024},
        postprocess={
            "output": "poly",
            "mask_thr": 0.08,
            "min_score": 0.3,
            "unclip_ratio": 2.0,
            "min_points": 4,
            "all_contours": True,
        },
        tcm={"context_length": 32},
        pretrain_recipe="tcm-pretrain-ctx32",
        source="the TCM paper's training settings (official TCM-DBNet CTW1500 config "
        "clip_db_r50_fpnc_prompt_gen_vis_32_1200e_ft_ctw_adamw_taiji.py: 'norm' exempt from "
        "decay, every contour, >= 4 points); kept from the earlier recipe: approxPolyDP "
        "0.002 (the config: 0.0001, near-raw contours that can pass MAX_POLYGON_POINTS at "
        "1024 px) and min_size 3 / 5 (the config tests no size on polygons)"
        + _TCM_FT.format("tcm-pretrain-ctx32", "its load_from: epoch 20"),
    ),
    "totaltext": _recipe(
        optimizer={
            "name": "adamw",
            "lr": 1e-4,
            "weight_decay": 1e-4,
            "no_decay": no_decay(NO_DECAY_TCM),
        },
        test={"long_side": 2944, "short_side": 800},
        postprocess={
            "output": "poly",
            "mask_thr": 0.347,
            "min_score": 0.3,
            "unclip_ratio": 1.95,
            "epsilon_ratio": 0.004,
            "min_points": 4,
            "all_contours": True,
        },
        tcm={"context_length": 32},
        pretrain_recipe="tcm-pretrain-ctx32",
        source="the TCM paper's training settings (official TCM-DBNet Total-Text config "
        "clip_db_r50_fpnc_prompt_gen_vis_32_1200e_ft_tt_adamw_taiji.py: 'norm' exempt from "
        "decay, approxPolyDP 0.004, every contour, >= 4 points); min_size 3 / 5 kept from "
        "the earlier recipe (the config tests no size on polygons)"
        + _TCM_FT.format("tcm-pretrain-ctx32", "its load_from: epoch 20"),
    ),
    # Pre-training as in the DBNet paper: 100k iterations on SynthText.
    "synthtext": _recipe(
        optimizer={
            "name": "sgd",
            "lr": 0.007,
            "weight_decay": 1e-4,
            "momentum": 0.9,
            "no_decay": no_decay(NO_DECAY_NONE),
        },
        schedule={"by": "step"},
        epochs=None,
        steps=100_000,
        test={"long_side": None, "short_side": 736},
        source="DBNet paper section 4.2 (SynthText pre-training, 100k iterations); "
        "no_decay []: the authors' code and mmocr decay every parameter",
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
                {"name": "random_scale", "range": [0.75, 1.5]},
                {"name": "random_crop", "size": [224, 224]},
            ],
        },
        # 1000 small images: decode once; one loader process next to the model.
        # min_steps: the shortest measured run that learned.
        train_loop={"cache_images": True, "workers": 1, "min_steps": 600},
        # Test at the generated image size: no resize, pad to 32.
        test={"long_side": None, "short_side": None},
        # quad: the dataset's default protocol is icdar2015 (quads only).
        postprocess={"output": "quad", "mask_thr": 0.3, "min_score": 0.5, "unclip_ratio": 1.5},
        tcm={"context_length": 4},
        source="tcmbench: small CPU recipe for synthtext-mini (not from a paper); no_decay "
        "norm + bias and normalize_at end: what the shipped weights were trained with; "
        "min_steps 600 measured "
        "(docs/benchmarks/training.md): 600-step run hmean 0.867, 400-step run 0.004, ~0 at "
        "steps 200 / 400 of a 1000-step run, 0 at 350 steps (issue 9)",
    ),
    # -- the DBNet paper (Liao et al., AAAI 2020) -----------------------------
    "dbnet-paper-synthtext-pretrain": _paper(
        schedule={"by": "step"},
        epochs=None,
        steps=100_000,
        test={"long_side": None, "short_side": 736},
        pretrain=None,
        postprocess=_paper_quad(0.6),
        source="SynthText pre-training: 100k iterations (DBNet paper s. 4.2), poly per "
        "iteration as mmocr's dbnet_resnet50-dcnv2_fpnc_100k_synthtext (PolyLR by_epoch "
        "False, batch 16); " + _PAPER + "; evaluated as dbnet-paper-icdar2015-736 (box_thresh "
        "0.6): " + _PAPER_QUAD,
    ),
    "dbnet-paper-icdar2015-736": _paper(
        test={"long_side": None, "short_side": 736},
        postprocess=_paper_quad(0.6),
        source="ICDAR 2015 at height 736 (DBNet paper's ICDAR 2015 results table, "
        "DB-ResNet-50 (736): F 85.4; authors' base_ic15.yaml resizes to 1280 x 736); "
        "box_thresh 0.6 (authors' README command for ic15_resnet50); "
        + _PAPER_QUAD
        + "; "
        + _PAPER,
    ),
    "dbnet-paper-icdar2015-1152": _paper(
        test={"long_side": None, "short_side": 1152},
        postprocess=_paper_quad(0.6),
        source="ICDAR 2015 at height 1152 (DBNet paper's ICDAR 2015 results table, "
        "DB-ResNet-50 (1152): F 87.3; authors' base.yaml: 2048 x 1152); box_thresh 0.6 "
        "(authors' README command for ic15_resnet50 at 1152); " + _PAPER_QUAD + "; " + _PAPER,
    ),
    "dbnet-paper-msra-td500": _paper(
        test={"long_side": None, "short_side": 736},
        postprocess=_paper_quad(0.5),
        extra_train_datasets=["hust-tr400"],
        source="MSRA-TD500 at height 736 (DBNet paper's MSRA-TD500 results table, "
        "DB-ResNet-50 (736): F 84.9; authors' base_td500.yaml: height 736, trained on TD500 "
        "+ HUST-TR400); box_thresh 0.5 (authors' README command for td500_resnet50); "
        + _PAPER_QUAD
        + "; "
        + _PAPER,
    ),
    "dbnet-paper-totaltext": _paper(
        test={"long_side": None, "short_side": 800},
        postprocess=_paper_poly(0.6),
        tcm={"context_length": 32},
        source="Total-Text at height 800 (DBNet paper's Total-Text results table, "
        "DB-ResNet-50 (800): F 84.7; authors' base_totaltext.yaml: height 800); "
        "box_thresh 0.6 (authors' README command for totaltext_resnet50 --polygon); "
        + _PAPER_POLY
        + "; "
        + _PAPER
        + "; TCM context 32 as the totaltext recipe",
    ),
    "dbnet-paper-ctw1500": _paper(
        test={"long_side": None, "short_side": 1024},
        postprocess=_paper_poly(0.6),
        tcm={"context_length": 32},
        source="CTW1500 at height 1024 (DBNet paper's CTW1500 results table, "
        "DB-ResNet-50 (1024)); the authors' repository has no CTW1500 config: its polygon "
        "post-processing and the R50 curved-text box_thresh 0.6 of the Total-Text command "
        "are reused (not stated for CTW1500); "
        + _PAPER_POLY
        + "; "
        + _PAPER
        + "; TCM context 32 as the ctw1500 recipe",
    ),
    # -- the official TCM pre-training ---------------------------------------
    "tcm-pretrain": _tcm_pretrain(
        source=_tcm_pretrain_source(
            "clip_db_r50_fpnc_prompt_gen_vis_20e_8x16_st_real3_pretrain_taiji_xu.py",
            "SynthText + the IC15, CTW1500 and Total-Text training sets "
            "(ST_real_train_taiji_xu.py; train with --tcm --dataset "
            "synthtext,icdar2015,ctw1500,totaltext)",
            16,
            4,
        )
    ),
    "tcm-pretrain-ctx32": _tcm_pretrain(
        batch_size=20,
        tcm={"context_length": 32},
        source=_tcm_pretrain_source(
            "clip_db_r50_fpnc_prompt_gen_vis_32_20e_8x16_st_st150k_real3_pretrain_taiji.py, "
            "loaded (epoch 20) by the official CTW1500 and Total-Text fine-tuning",
            "SynthText + Synth150k + the IC15, CTW1500 and Total-Text training sets "
            "(ST_ST150K_real_train_taiji.py; Synth150k is not a tcmbench dataset: train with "
            "--tcm --dataset synthtext,icdar2015,ctw1500,totaltext plus what you have of it)",
            20,
            32,
        )
        + " (text encoder context 46 = 14 + 32)",
    ),
    # -- imported PP-OCR detectors ------------------------------------------
    "ppocrv3-finetune-msra-td500": _ppocrv3_finetune_td500(),
}

DEFAULT_RECIPE = "default"


def get_recipe(name: str | None) -> dict[str, Any]:
    """A deep copy of recipe ``name`` (or the default one)."""
    return copy.deepcopy(RECIPES.get(name or DEFAULT_RECIPE, RECIPES[DEFAULT_RECIPE]))
