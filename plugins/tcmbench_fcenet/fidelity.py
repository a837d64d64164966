"""FCENet compared with the authors' code, row by row (issue 17's table).

The reference is mmocr 0.x -- the FCENet authors released FCENet there --
and the copy of mmocr 0.4 bundled with the official TCM repository
(wenwenyu/TCM, ``mmocr_src/``), whose FCENet files are the same as mmocr
v0.4.1's, line for line. Line numbers are v0.4.1's. ``python -m
tcmbench.docgen`` writes these rows as the table in docs/fcenet.md; each
row has a test named after it in tests/test_fcenet_fidelity.py.
Torch-free (the spec imports it).
"""

from __future__ import annotations

from tcmbench.contract.fidelity import FidelityRow

_MMOCR = "open-mmlab/mmocr v0.4.1 (= wenwenyu/TCM mmocr_src)"
_TRANSFORMS = f"{_MMOCR} mmocr/datasets/pipelines/transforms.py"
_PIPELINE = f"{_MMOCR} configs/_base_/det_pipelines/fcenet_pipeline.py"

FIDELITY: tuple[FidelityRow, ...] = (
    FidelityRow(
        row=2,
        component="output on ICDAR 2015 (`text_repr_type='quad'`)",
        official=(
            "50-point polygons: the 'quad' branch builds minimum-area rectangles into "
            "`new_boundaries` and then returns `boundaries`, the polygons; the same in every "
            "0.x tag with FCENet (v0.2.0 ignores the argument altogether)"
        ),
        source=(
            f"{_MMOCR} mmocr/models/textdet/postprocess/fce_postprocessor.py lines 100-110; "
            "v0.2.x-v0.3.0: postprocess/wrapper.py `fcenet_decode`"
        ),
        default="50-point polygons in `icdar2015`, `fce-paper-icdar2015`, `tcm-pretrain`",
        plain_default=(
            "`synthtext-mini`: quads (minimum-area rectangle, TL TR BR BL); `msra-td500` "
            "(no official FCENet config): quads"
        ),
        recipe_key="postprocess.output: poly | quad",
        note=(
            "mmocr's hmean-iou scores the polygons as polygons, and so does the papers' figure "
            "of `evaluate --sweep` (protocol `mmocr-hmean-iou`); the official icdar2015 "
            "figure, the RRC script's rules, scores a polygon's minimum-area rectangle"
        ),
    ),
    FidelityRow(
        row=8,
        component="BatchNorm statistics while training (FCENet-R50-DCNv2, CTW1500)",
        official=(
            "frozen: `norm_eval=True` keeps the backbone's BatchNorm layers in eval mode "
            "(FCENet-R50 on IC15: `norm_eval=False`, updated; TCM's CLIP ResNet: updated)"
        ),
        source=(
            f"{_MMOCR} configs/_base_/det_models/fcenet_r50dcnv2_fpn.py line 10 "
            "(fcenet_r50_fpn.py line 11)"
        ),
        default="frozen in `fce-paper-ctw1500`; updated in the other recipes",
        plain_default="updated",
        recipe_key="train_loop.norm_eval: true | false (--norm-eval / --no-norm-eval)",
        note=(
            "tcmbench freezes every BatchNorm of the model, mmdet's ResNet only its own; "
            "FCENet's FPN and head have none, so the two agree"
        ),
    ),
    FidelityRow(
        row=9,
        component="colour jitter",
        official="ColorJitter(brightness=32/255, saturation=0.5, contrast=0.5) (torchvision)",
        source=f"{_PIPELINE} lines 13-17 (and 71-75 for CTW1500)",
        default="`fce_color_jitter` with contrast 0.5",
        plain_default="built-in `color_jitter`: brightness and saturation, no contrast",
        recipe_key="train.augment: fce_color_jitter (contrast) | color_jitter",
    ),
    FidelityRow(
        row=9,
        component="RandomCropFlip",
        official=(
            "with probability 0.5 a box (edges off every word's min-area rectangle, "
            ">= 0.2 of the image, cutting no polygon; 10 tries) is mirrored in place, "
            "left-right, top-bottom or both"
        ),
        source=f"{_PIPELINE} lines 20-21; {_TRANSFORMS} RandomCropFlip, lines 778-970",
        default="`fce_random_crop_flip` (prob 0.5, min_area_ratio 0.2, pad_ratio 0.1)",
        plain_default="not used",
        recipe_key="train.augment: fce_random_crop_flip",
        note=(
            "when no box fits in 10 tries the sample is left as it was; mmocr flips the "
            "last box drawn anyway, possibly without its polygons"
        ),
    ),
    FidelityRow(
        row=9,
        component="words cut by the instance crop",
        official=(
            "dropped: a polygon is kept only when all its points are within 4 px of the "
            "crop (then clamped to it)"
        ),
        source=f"{_TRANSFORMS} RandomCropPolyInstances.__call__, lines 469-509 (w + 4: line 497)",
        default="dropped",
        plain_default="clipped to the crop (shapely)",
        recipe_key="fce_crop_instances.cut: drop | clip",
    ),
    FidelityRow(
        row=9,
        component="padding of the rotation canvas and the square",
        official=(
            "an image patch: (h // 9, w // 9) pixels from a random place in the first 7/8 "
            "of each axis, stretched over the canvas (`pad_with_fixed_color=False`); the "
            "square's image centred"
        ),
        source=(
            f"{_PIPELINE} line 31; {_TRANSFORMS} RandomRotatePolyInstances.rotate_img "
            "lines 576-604, SquareResizePad.square_pad lines 679-699"
        ),
        default="patch, image centred",
        plain_default="zeros (the mean colour once normalised, black with normalize_at end), "
        "image at a random offset",
        recipe_key=(
            "fce_rotate.fill, fce_square_resize_pad.fill: patch | zeros; "
            "fce_square_resize_pad.position: center | random"
        ),
    ),
    FidelityRow(
        row=10,
        component="text-centre region target",
        official=(
            "a band between the sidelines, 0.3 x the local height thick (each side 0.3 of "
            "the way from the centre line), built from quads between points resampled every "
            "4 level px; each end loses int(h / 4 // 4) points (none under 16 level px "
            "tall); corners truncated to integers"
        ),
        source=(
            f"{_MMOCR} mmocr/datasets/pipelines/textdet_targets/fcenet_targets.py "
            "generate_center_region_mask lines 47-105 (center_region_shrink_ratio=0.3, "
            "resample_step=4.0: lines 32-33); textsnake_targets.py find_head_tail / "
            "reorder_poly_edge / resample_sidelines, lines 63-294"
        ),
        default="the sideline band (`center_region: sidelines`)",
        plain_default="inward offset by 0.35 T (T: thickness from area and perimeter)",
        recipe_key="model.options.center_region: sidelines | offset",
        note=(
            "head and tail of polygons over 4 points by the datasets' vertex order, where "
            "mmocr scores every edge: measured against mmocr's function on the cared-for "
            "test polygons at 1/4 scale, the same map for 95.8 % of CTW1500's (mean IoU "
            "0.983) and 93.2 % of Total-Text's (0.971); the offset: none (0.58, 0.59)"
        ),
    ),
    FidelityRow(
        row=11,
        component="TCM-FCENet ICDAR 2015 schedule",
        official="1800 epochs (`total_epochs = 1800`)",
        source=(
            "wenwenyu/TCM ocrclip/configs/textdet/fcenet/"
            "fcenet_clip_r50att_prompt_gen_vis_fpn_1500e_ft_ic15_taiji.py line 62"
        ),
        default=(
            "1800 epochs in `icdar2015` (`fce-paper-icdar2015` keeps the 1500 of mmocr's own "
            "IC15 config, schedule_sgd_1500e.py)"
        ),
        plain_default="`synthtext-mini`: 1500 steps",
        recipe_key="epochs",
    ),
)
