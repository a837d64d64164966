"""Where PANet's recipes follow the authors' code, row by row (torch-free).

The rows of the fidelity issue that concern PANet, as data
(:class:`tcmbench.contract.fidelity.FidelityRow`); ``python -m
tcmbench.docgen`` writes them as the table in docs/pan.md, and
``tests/test_pan_fidelity.py`` has one test per row, named after it.

Sources (values and locations are cited, no code is taken):

- mmocr 0.x: ``github.com/open-mmlab/mmocr`` at v0.6.3; wenwenyu/TCM
  bundles mmocr 0.4 (``mmocr_src/``) with the same files and line numbers
  for everything cited here; the TCM-PAN configs are in TCM's
  ``ocrclip/configs``;
- mmcv's ``pixel_group`` (``github.com/open-mmlab/mmcv``, v1.7.0);
- the PAN authors' released code, ``github.com/whai362/pan_pp.pytorch``
  (the ``pan-paper-*`` recipes).

"Paper / TCM recipes" are the dataset recipes, ``default``,
``tcm-pretrain`` (mmocr 0.x) and ``pan-paper-*`` (pan_pp.pytorch); the
plain ``synthtext-mini`` recipe of the shipped weights keeps tcmbench's
choices (column "plain recipes").
"""

from __future__ import annotations

from tcmbench.contract.fidelity import FidelityRow

_MMOCR = "open-mmlab/mmocr v0.6.3 (= wenwenyu/TCM mmocr_src, mmocr 0.4)"
_TCM = "wenwenyu/TCM ocrclip/configs"
_PAN_PP = "whai362/pan_pp.pytorch"

ROWS: tuple[FidelityRow, ...] = (
    FidelityRow(
        row=1,
        component="pixel aggregation: distance threshold and queue",
        official=(
            "mmocr: mmcv pixel_group with distance 0.85 (min_text_avg_confidence passed as "
            "the threshold), FIFO from the kernel contours, squared distance < 0.85^2, first "
            "queued kernel wins; pan_pp: pa.pyx, distance 3 (norm > 3 refused) consulted only "
            "for kernels of one text component 1024x apart in area"
        ),
        source=(
            f"{_MMOCR} mmocr/models/textdet/postprocess/pan_postprocessor.py l.63-65; "
            "open-mmlab/mmcv v1.7.0 mmcv/ops/csrc/pytorch/cpu/pixel_group.cpp l.50, 79, "
            f"89-90, 114; {_PAN_PP} models/post_processing/pa/pa.pyx l.28, 42-54, 86"
        ),
        default=(
            "mmocr recipes: aggregation mmcv, distance_thr 0.85; pan-paper-*: aggregation "
            "pan_pp, distance_thr 3"
        ),
        plain_default="aggregation nearest (nearest kernel mean, one frontier per round), "
        "distance_thr 3",
        recipe_key="postprocess.aggregation: mmcv | pan_pp | nearest; postprocess.distance_thr",
    ),
    FidelityRow(
        row=3,
        component="TCM-PAN CTW1500 fine-tuning pipeline",
        official=(
            "the IC15 pipelines: short side 736 x [0.7, 1.3], 736 crops, shrink_ratio "
            "(1.0, 0.5), test (1333, 736); CLIP input_resolution 640"
        ),
        source=(
            f"{_TCM}/textdet/panet/panet_clip_r50att_prompt_gen_vis_fpem_ffm_600e_ft_ctw_taiji"
            f".py l.14-15, 22-33, 41-43; {_TCM}/_base_/det_pipelines/panet_pipeline.py "
            "l.57-59, 91"
        ),
        default="ctw1500 recipe: 736 crops, shrink_ratio 0.5, test long 1333 / short 736",
        recipe_key="train.crop_size, model.options.shrink_ratio, test (recipe ctw1500)",
    ),
    FidelityRow(
        row=4,
        component="kernel shrink offset",
        official=(
            "D = min(int(A (1 - r^2) / (L + 0.001) + 0.5), 20) on the polygon truncated to "
            "integers: rounded, capped at 20 px"
        ),
        source=(
            f"{_MMOCR} mmocr/datasets/pipelines/textdet_targets/base_textdet_targets.py "
            "l.112-121, panet_targets.py l.21 (max_shrink=20); "
            f"{_PAN_PP} dataset/pan/pan_ic15.py l.201, 211-212"
        ),
        default="kernel_shrink official",
        plain_default="kernel_shrink float: D = A (1 - r^2) / L, unrounded, uncapped",
        recipe_key="model.options.kernel_shrink: official | float",
        note="a vanished kernel is don't-care in both modes",
    ),
    FidelityRow(
        row=5,
        component="box geometry",
        official=(
            "mmocr: minAreaRect (or first outer contour) of the pixel indices, times 4; "
            "pan_pp: the label map resized to the input (nearest), minAreaRect of its pixel "
            "indices, scaled, truncated to int"
        ),
        source=(
            f"{_MMOCR} mmocr/core/mask.py l.27-44, "
            "mmocr/models/textdet/dense_heads/head_mixin.py l.69-72; "
            f"{_PAN_PP} models/head/pa_head.py l.76-77, 115-125"
        ),
        default="mmocr recipes: box_geometry mmocr; pan-paper-*: box_geometry pan_pp",
        plain_default="box_geometry grown: centres grown to the pixel area, (x + 0.5) * 4",
        recipe_key="postprocess.box_geometry: mmocr | pan_pp | grown",
        note="contours simplified by epsilon_ratio 0.002 (tcmbench) in all modes",
    ),
    FidelityRow(
        row=5,
        component="loss targets at 1/4 (goes with the box geometry)",
        official=(
            "mmocr: BitmapMasks.rescale(0.25), nearest: map pixel i = input pixel 4 i; "
            "pan_pp: loss on the maps upsampled to the input"
        ),
        source=(
            f"{_MMOCR} mmocr/models/textdet/losses/pan_loss.py l.121; "
            f"{_PAN_PP} models/pan.py l.88-89"
        ),
        default="mmocr recipes: target_sampling corner; pan-paper-*: centre (nearest to "
        "pan_pp's full-resolution loss)",
        plain_default="target_sampling centre: input pixel 4 i + 2",
        recipe_key="model.options.target_sampling: corner | centre",
    ),
    FidelityRow(
        row=6,
        component="small words in the targets",
        official="kept as text: only ignored ('###') polygons are don't-care",
        source=(
            f"{_MMOCR} mmocr/datasets/pipelines/textdet_targets/base_textdet_targets.py "
            f"l.139-161 (generate_effective_mask); {_PAN_PP} dataset/pan/pan_ic15.py "
            "l.370-371"
        ),
        default="min_text_size 0 (no rule)",
        plain_default="synthtext-mini: min_text_size 4; option default 8: thinner words "
        "are don't-care",
        recipe_key="model.options.min_text_size (0 = no rule)",
    ),
    FidelityRow(
        row=7,
        component="input normalisation of TCM-PAN",
        official="ImageNet mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375]",
        source=f"{_TCM}/_base_/det_pipelines/panet_pipeline.py l.1-2 (img_norm_cfg)",
        default="tcm.normalize = ImageNet mean / std",
        plain_default="synthtext-mini: tcm.normalize = CLIP mean [122.679, 116.669, "
        "104.007] (DBNet r50dcnv2's)",
        recipe_key="tcm.normalize",
    ),
    FidelityRow(
        row=8,
        component="BatchNorm statistics of plain PAN-R18",
        official="backbone norm_eval=True (mmdet ResNet: backbone BN in eval mode; neck BN trains)",
        source=f"{_MMOCR} configs/_base_/det_models/panet_r18_fpem_ffm.py l.11, 33",
        default=(
            "default recipe (mmocr PANet-R18): backbone_norm_eval true; TCM-PAN (CLIP "
            "backbone) and pan_pp (model.train()) update the statistics: false"
        ),
        plain_default="false",
        recipe_key="model.options.backbone_norm_eval",
    ),
    FidelityRow(
        row=12,
        component="head init and L_dis normalisation",
        official=(
            "mmocr: out_conv N(0, 0.01), bias 0; L_dis summed over unordered pairs / "
            "(N (N - 1)); pan_pp: 1x1 conv N(0, sqrt(2 / 6)), L_dis mean over ordered pairs"
        ),
        source=(
            f"{_MMOCR} mmocr/models/textdet/dense_heads/pan_head.py l.38-42, "
            f"mmocr/models/textdet/losses/pan_loss.py l.231-244; {_PAN_PP} "
            "models/head/pa_head.py l.35-38, models/loss/emb_loss_v1.py l.49-66"
        ),
        default=(
            "mmocr recipes: head_init mmocr, dis_pairs unordered; pan-paper-*: head_init "
            "pan_pp, dis_pairs ordered"
        ),
        plain_default="head_init pytorch (Kaiming-uniform), dis_pairs ordered (paper eq. 3)",
        recipe_key="model.options.head_init: mmocr | pan_pp | pytorch; "
        "model.options.dis_pairs: unordered | ordered",
    ),
)
