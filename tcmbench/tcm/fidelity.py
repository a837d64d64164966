"""Where the TCM module follows the authors' code, as data (torch-free).

The rows of issue 17 that belong to the core TCM module rather than to a
detector plugin: the per-batch auxiliary loss (row 0: the issue names it
beside rows 1 and 2 as an official quirk a reproduction must follow), the
OHEM-dice of the TCM-PAN auxiliary loss (row 13) and the figure the papers
report (row 14). ``python -m tcmbench.docgen`` writes them as the table of
docs/tcm.md (``<!-- generated: fidelity tcm -->``); each row has a test
named after it in ``tests/test_tcm_fidelity.py``.

Sources are cited at wenwenyu/TCM commit 5ebac37 (its ``ocrclip`` package and
its bundled mmocr 0.4, ``mmocr_src``); the same mmocr 0.x functions are in
open-mmlab/mmocr's 0.x tags. Values are cited, no code is taken (CC BY-NC).
"""

from __future__ import annotations

from tcmbench.contract.fidelity import FidelityRow

_HEADS = "wenwenyu/TCM `ocrclip/ocrclip/heads.py`"
_PAN_LOSS = "mmocr 0.x `mmocr/models/textdet/losses/pan_loss.py` (wenwenyu/TCM `mmocr_src`)"

ROWS: tuple[FidelityRow, ...] = (
    FidelityRow(
        row=0,
        component="TCM auxiliary loss over a batch (TCM-DBNet, TCM-FCENet balanced BCE)",
        official=(
            "the (N, 1, H, W) pixel losses times the (N, H, W) positive / negative masks "
            "broadcast to (N, N, H, W): every image's loss meets every image's positives and "
            "negatives; 3 x the batch's positives hardest negatives mined over that mixed "
            "tensor; divided by the batch's positives + the mined count"
        ),
        source=(
            f"{_HEADS} `IdentityHead.balance_bce_loss`, lines 348-372 (the product at lines "
            "364-365, top-k at 367); `FCEIdentityHead.loss` line 501 calls it the same way; "
            "`bbce_loss=True` in `clip_dbnet_r50att_prompt_gen_vis_fpnc.py` and "
            "`fcenet_clip_r50att_prompt_gen_vis_fpn.py`"
        ),
        default="`official_broadcast` (the core default of every TCM recipe)",
        recipe_key="tcm.aux_loss_batching: official_broadcast | per_image",
        note=(
            "`per_image` is the loss the paper describes: each image's losses meet only its "
            "own target, its hard negatives are mined among its own pixels; batch 1 gives "
            "the same loss either way. TCM-PAN's OHEM-dice is per image in the official code "
            "too, so the key does not change it"
        ),
    ),
    FidelityRow(
        row=13,
        component="TCM-PAN auxiliary OHEM-dice: smoothing",
        official=(
            "loss = 1 - 2 (sum pg + s) / ((sum pp + s) + (sum gg + s)), s = 0.001, per image, "
            "mean over the batch: the smoothing is in the numerator too (an image without "
            "text and an empty prediction cost 0)"
        ),
        source=(
            f"{_HEADS} `PANIdentityHead.dice_loss_with_logits`, lines 650-668 (`a = ... + "
            f"smooth` at 664, `d = (2 * a) / (b + c)` at 667); {_PAN_LOSS} "
            "`dice_loss_with_logits`, lines 253-271"
        ),
        default="same (`tcmbench.tcm.loss.ohem_dice_with_logits`)",
        recipe_key="",
    ),
    FidelityRow(
        row=13,
        component="TCM-PAN auxiliary OHEM-dice: which negatives are ranked",
        official=(
            "n = min(3 x the text pixels inside the mask, all non-text pixels); the score "
            "threshold is the n-th highest among all non-text pixels of the image (ignored "
            "regions too); kept: text or score >= threshold, inside the mask"
        ),
        source=(
            f"{_HEADS} `PANIdentityHead.ohem_img`, lines 588-621 (`neg_score = "
            f"text_score[gt_text <= 0.5]` at 616); {_PAN_LOSS} `ohem_img`, lines 273-306"
        ),
        default="same (`tcmbench.tcm.loss.ohem_mask`, also PANet's own text loss)",
        recipe_key="",
    ),
    FidelityRow(
        row=14,
        component="the figure the papers report",
        official=(
            "mmocr 0.x `hmean-iou`: the best hmean over score thresholds thr = iter * 0.1, "
            "iter 3..9 (0.3 to 0.9, step 0.1), detections with score >= thr (after dropping "
            "score <= 0.3); the lowest threshold wins a tie"
        ),
        source=(
            "mmocr 0.x `mmocr/core/evaluation/hmean.py` `eval_hmean`, lines 111-151 (the loop "
            "at 126, strict `>` at 147); `utils.py` `filter_2dlist_result` line 453, "
            "`select_top_boundary` line 509 (wenwenyu/TCM `mmocr_src`)"
        ),
        default=(
            "the official protocol's figure; `evaluate --sweep` adds the papers' figure beside "
            "it, labelled *best-threshold hmean as mmocr 0.x reports it (the papers' figure)*; "
            "experiment grids always record and report both, each labelled"
        ),
        recipe_key="",
        note=(
            "a command option, not a recipe key; the papers' figure is scored with "
            "`mmocr-hmean-iou` on the polygons as output, the official one by the dataset's protocol"
        ),
    ),
)
