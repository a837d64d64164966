"""PANet as its authors' code runs it (issue 17): one test per fidelity row,
named after it, on hand-made inputs whose expected values are worked out by
hand from the official algorithm (the working is in each docstring).

Official code: mmocr 0.x (v0.6.3 = wenwenyu/TCM's bundled mmocr 0.4),
mmcv's ``pixel_group``, whai362/pan_pp.pytorch; file and line of every
value are in ``tcmbench_pan.fidelity`` (docs/pan.md's table).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from shapely.geometry import Polygon

torch = pytest.importorskip("torch")

from tcmbench_pan.aggregate import pixel_aggregate
from tcmbench_pan.head import PANHead
from tcmbench_pan.loss import aggregation_discrimination, downsample_targets
from tcmbench_pan.model import resolve_options
from tcmbench_pan.postprocess import PANPostprocessor
from tcmbench_pan.recipes import (
    MMOCR_OPTIONS,
    MMOCR_POSTPROCESS,
    PAN_PP_OPTIONS,
    PAN_PP_POSTPROCESS,
    PLAIN_RECIPES,
    TCMBENCH_POSTPROCESS,
)
from tcmbench_pan.targets import PANTargetBuilder, official_shrink_offset

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.data.transforms import InferenceTransform
from tcmbench.errors import PluginError
from tcmbench.models.recipes import IMAGENET_MEAN, IMAGENET_STD, TCM_MEAN

SPEC = get_detector("pan")
#: Recipes that follow mmocr 0.x / TCM-PAN, and those that follow pan_pp.
MMOCR_RECIPES = [n for n in SPEC.recipes if n not in PLAIN_RECIPES and "-paper-" not in n]
PAPER_RECIPES = [n for n in SPEC.recipes if n.startswith("pan-paper-")]


def _post(recipe: str, **extra: Any) -> PANPostprocessor:
    """The postprocessor as ``evaluate --recipe`` configures it."""
    return PANPostprocessor().with_params(**{**SPEC.recipes[recipe]["postprocess"], **extra})


def _targets(recipe: str, **extra: Any) -> PANTargetBuilder:
    """The target builder a recipe's model options build."""
    opts = resolve_options({**SPEC.recipes[recipe]["model"]["options"], **extra})
    return PANTargetBuilder(
        shrink_ratio=float(opts["shrink_ratio"]),
        min_text_size=float(opts["min_text_size"]),
        kernel_shrink=str(opts["kernel_shrink"]),
    )


def _maps(text: np.ndarray, kernel: np.ndarray, emb: np.ndarray) -> dict[str, np.ndarray]:
    """Head outputs for hand-made boolean maps: logits +-10."""
    return {
        "text_logits": np.where(text, 10.0, -10.0)[None, None].astype(np.float32),
        "kernel_logits": np.where(kernel, 10.0, -10.0)[None, None].astype(np.float32),
        "embedding": emb[None].astype(np.float32),
    }


def _box_iou(quad: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> float:
    truth = Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    pred = Polygon(quad)
    return pred.intersection(truth).area / pred.union(truth).area


# ---------------------------------------------------------------- row 1


def test_row1_pan_aggregation_distance_official_085() -> None:
    """mmocr 0.x passes min_text_avg_confidence (0.85) to pixel_group as
    its distance threshold; a pixel joins when its squared distance to
    the kernel mean is < 0.85^2.

    Map 2 x 8, text in columns 0..6 of both rows, the kernel in columns 0..1
    (mean embedding 0). Embeddings are 0 everywhere except column 3:
    (1, 0, 0, 0), distance 1.0 from the kernel mean.

    - 0.85: columns 0..2 join (distance 0); column 3 is refused (1.0 >=
      0.85) and columns 4..6 are never reached (every path crosses column
      3): 2 x 3 = 6 pixels.
    - 3.0: column 3 joins (1.0 < 3), then 4..6: 2 x 7 = 14 pixels.

    Through the icdar2015 recipe (mmocr geometry, min_area lowered to 1):
    the box is minAreaRect of the pixel indices (x 0..2, y 0..1) times 4:
    8 x 4 input pixels; with distance 3.0 it spans x 0..6: 24 x 4.
    """
    text = np.zeros((2, 8), bool)
    text[:, :7] = True
    kernel = np.zeros((2, 8), np.int32)
    kernel[:, :2] = 1
    emb = np.zeros((4, 2, 8), np.float32)
    emb[0, :, 3] = 1.0
    official = pixel_aggregate(kernel, text, emb, 0.85, "mmcv")
    textbook = pixel_aggregate(kernel, text, emb, 3.0, "mmcv")
    assert (official == 1).sum() == 6 and official[:, :3].all() and not official[:, 3:].any()
    assert (textbook == 1).sum() == 14
    post = _post("icdar2015", min_area=1.0)
    assert (post.aggregation, post.distance_thr) == ("mmcv", 0.85)
    outputs = _maps(text, kernel > 0, emb)
    meta = [{"orig_size": (8, 32)}]
    (pred,) = post(outputs, meta)[0]
    widths = np.ptp(pred.polygon, axis=0)
    assert widths == pytest.approx([8.0, 4.0])
    (pred3,) = post.with_params(distance_thr=3.0)(outputs, meta)[0]
    assert np.ptp(pred3.polygon, axis=0) == pytest.approx([24.0, 4.0])


def test_row1_pixel_group_queue_first_kernel_wins_not_the_nearest() -> None:
    """mmcv's pixel_group is a FIFO queue: a pixel goes to the first queued
    kernel that reaches it within the threshold, not to the nearest.

    Map 1 x 5, all text; kernel A = column 0 (embedding 0), kernel B =
    column 4 (embedding (1, 0, 0, 0)); column 2 has (0.9, 0, 0, 0): 0.9 from
    A, 0.1 from B; columns 1 and 3 have A's and B's embedding. Threshold 3.
    Queue: A0, B4 (raster order) -> A takes 1, B takes 3 -> queue A1, B3 ->
    A1 looks left (taken) then right: column 2 joins A before B3 looks.
    mmcv: A = columns 0..2. tcmbench's ``nearest``: column 2 goes to B
    (0.1 < 0.9). pan_pp: the same queue, looking up, down, left, right:
    A again (and no distance test: the kernels' areas are 1 and 1).
    """
    text = np.ones((1, 5), bool)
    kernel = np.array([[1, 0, 0, 0, 2]], np.int32)
    emb = np.zeros((4, 1, 5), np.float32)
    emb[0, 0] = [0.0, 0.0, 0.9, 1.0, 1.0]
    assert pixel_aggregate(kernel, text, emb, 3.0, "mmcv").tolist() == [[1, 1, 1, 2, 2]]
    assert pixel_aggregate(kernel, text, emb, 3.0, "pan_pp").tolist() == [[1, 1, 1, 2, 2]]
    assert pixel_aggregate(kernel, text, emb, 3.0, "nearest").tolist() == [[1, 1, 2, 2, 2]]


def test_row1_pan_pp_consults_the_embedding_only_for_kernels_1024x_apart() -> None:
    """pa.pyx flags two kernels of one text component whose areas differ
    by more than 1024x (``max_rate``); only a flagged kernel refuses a
    pixel further than 3 from its mean; the others take every text pixel
    they reach.

    Case 1, map 3 x 45, all text: kernel A = the pixel (1, 44), kernel B =
    rows 0..1 x columns 0..1 (4 pixels); embeddings 0 except column 43,
    (5, 0, 0, 0): 5 from both means. Areas 1 and 4: nobody is flagged, so
    A takes column 43 (pan_pp) -- mmcv with distance 3 refuses it (25 >= 9)
    and column 43 stays unlabelled.

    Case 2, map 33 x 40, all text: B = columns 0..31 (33 x 32 = 1056
    pixels, embedding 0), A = the pixel (0, 39) with embedding (5, 0, 0,
    0). 1056 > 1024 x 1: both are flagged. A's neighbours (embedding 0) are
    5 > 3 from its mean: refused; B (mean 0) takes every other pixel: 33 x
    40 - 1 = 1319.
    """
    text = np.ones((3, 45), bool)
    kernel = np.zeros((3, 45), np.int32)
    kernel[1, 44] = 1
    kernel[:2, :2] = 2
    emb = np.zeros((4, 3, 45), np.float32)
    emb[0, :, 43] = 5.0
    assert (pixel_aggregate(kernel, text, emb, 3.0, "pan_pp")[:, 43] == 1).all()
    assert (pixel_aggregate(kernel, text, emb, 3.0, "mmcv")[:, 43] == 0).all()
    text = np.ones((33, 40), bool)
    kernel = np.zeros((33, 40), np.int32)
    kernel[:, :32] = 2
    kernel[0, 39] = 1
    emb = np.zeros((4, 33, 40), np.float32)
    emb[0, 0, 39] = 5.0
    out = pixel_aggregate(kernel, text, emb, 3.0, "pan_pp")
    assert (out == 1).sum() == 1 and (out == 2).sum() == 33 * 40 - 1


# ---------------------------------------------------------------- row 3


def test_row3_ctw1500_recipe_uses_ic15_pipeline_736_crop_shrink05_test_1333_736() -> None:
    """The official TCM-PAN CTW1500 fine-tuning config trains and tests
    with panet_pipeline.py's IC15 pipelines: ScaleAspectJitter around
    (3000, 736), RandomCropInstances 736 x 736, PANetTargets shrink_ratio
    (1.0, 0.5), test Resize (1333, 736) keep_ratio; CLIP input 640.

    Test resize of a 300 x 500 image: scale = min(1333 / 500, 736 / 300) =
    min(2.666, 2.4533) = 2.4533 -> 736 x round(500 x 2.4533 = 1226.67) =
    736 x 1227, padded to 736 x 1248. A 300 x 1000 image: min(1.333,
    2.4533) = 1.333 -> 400 x 1333, padded to 416 x 1344.
    """
    r = SPEC.recipes["ctw1500"]
    assert r["train"]["crop_size"] == 736
    augment = {a["name"]: a for a in r["train"]["augment"]}
    assert augment["pan_scale_jitter"]["short_side"] == 736
    assert augment["pan_scale_jitter"]["long_side"] == 3000
    assert augment["pan_crop_instances"]["size"] == [736, 736]
    assert _targets("ctw1500").shrink_ratio == 0.5
    assert (r["test"]["long_side"], r["test"]["short_side"]) == (1333, 736)
    assert r["tcm"]["input_resolution"] == 640
    transform = InferenceTransform.from_recipe(r)
    x, (sx, sy) = transform(np.zeros((300, 500, 3), np.uint8))
    assert x.shape[1:] == (736, 1248) and (sx, sy) == (1227 / 500, 736 / 300)
    x, _ = transform(np.zeros((300, 1000, 3), np.uint8))
    assert x.shape[1:] == (416, 1344)


# ---------------------------------------------------------------- row 4


def test_row4_kernel_shrink_capped_at_20px() -> None:
    """generate_kernels / pan_pp shrink: D = min(int(A (1 - r^2) / (L +
    0.001) + 0.5), 20).

    A long word, x 10..410, y 20..120: A = 400 x 100 = 40000, L = 1000,
    r = 0.5: A (1 - r^2) / (L + 0.001) = 30000 / 1000.001 = 29.99997 ->
    int(30.49997) = 30 -> capped to 20. The kernel rectangle is x 30..390,
    y 40..100 (filled including its edges). Without the cap (``float``):
    D = 30 -> x 40..380, y 50..90.

    Integer rounding: a 30 x 10 word, A = 300, L = 80: 225 / 80.001 =
    2.81247 -> int(3.31247) = 3.
    """
    word = np.array([[10, 20], [410, 20], [410, 120], [10, 120]], np.float64)
    assert official_shrink_offset(word, 0.5) == 20
    small = np.array([[0, 0], [30, 0], [30, 10], [0, 10]], np.float64)
    assert official_shrink_offset(small, 0.5) == 3
    for recipe, box in (("icdar2015", (30, 390, 40, 100)), ("synthtext-mini", (40, 380, 50, 90))):
        t = _targets(recipe)([word], [False], 140, 420)
        rows, cols = np.nonzero(t["gt_kernel"] == 1)
        assert (cols.min(), cols.max(), rows.min(), rows.max()) == box, recipe
        text_rows, text_cols = np.nonzero(t["gt_text"] == 1)
        assert (text_cols.min(), text_cols.max(), text_rows.min(), text_rows.max()) == (
            10,
            410,
            20,
            120,
        )


# ---------------------------------------------------------------- row 5


def test_row5_12px_word_box_min_area_rect() -> None:
    """A word 12 px high and 400 px long, x 0..400, y 0..12, on two perfect
    maps at 1/4 (text everywhere on the word, kernel = its middle row, one
    embedding):

    Map 1 -- tcmbench's targets, sampled at input pixel 4 i + 2 (``centre``):
    rows 2, 6, 10 -> map rows 0..2; columns 2..398 -> map columns 0..99.

    - mmocr (``box_geometry mmocr``): minAreaRect of the indices, x 0..99,
      y 0..2, times 4 -> x 0..396, y 0..8: IoU = 396 x 8 / (400 x 12) =
      3168 / 4800 = 0.66 (the height alone: 8 / 12 = 0.67);
    - grown: centres grown by a with (99 + a)(2 + a) = 300 -> a = 1 ->
      x -0.5..99.5, y -0.5..2.5, (x + 0.5) x 4 -> 0..400, 0..12: IoU 1.0;
    - pan_pp: the label map resized x4 (nearest) covers input pixels
      0..399 x 0..11, minAreaRect of those indices: IoU = 399 x 11 / 4800 =
      0.914.

    Map 2 -- mmocr's targets (the official weights' maps): the polygon
    filled with its edges (rows 0..12) and sampled at 4 i (``corner``) ->
    map rows 0..3 (0, 4, 8, 12), columns 0..100.

    - mmocr: x 0..400, y 0..12: IoU 1.0;
    - grown: (100 + a)(3 + a) = 404 -> a = 1 -> x 0..404, y 0..16:
      IoU = 4800 / (404 x 16) = 0.743 (the height alone: 12 / 16 = 0.75).

    Each geometry is exact on the maps its own sampling trains for, so the
    official weights need ``mmocr`` (0.67 vs 0.75 are the mismatches).
    """
    meta = [{"orig_size": (64, 448)}]
    emb = np.zeros((4, 16, 112), np.float32)
    results: dict[tuple[int, str], float] = {}
    for rows, cols in ((3, 100), (4, 101)):
        text = np.zeros((16, 112), bool)
        text[:rows, :cols] = True
        kernel = np.zeros_like(text)
        kernel[1, 1 : cols - 1] = True
        for geometry in ("mmocr", "grown", "pan_pp"):
            post = PANPostprocessor(output="quad", box_geometry=geometry, min_score=0.5)
            (pred,) = post(_maps(text, kernel, emb), meta)[0]
            results[(rows, geometry)] = _box_iou(pred.polygon, 0, 0, 400, 12)
    assert results[(3, "mmocr")] == pytest.approx(3168 / 4800, abs=1e-6)
    assert results[(3, "grown")] == pytest.approx(1.0, abs=1e-6)
    assert results[(3, "pan_pp")] == pytest.approx(399 * 11 / 4800, abs=1e-6)
    assert results[(4, "mmocr")] == pytest.approx(1.0, abs=1e-6)
    assert results[(4, "grown")] == pytest.approx(4800 / (404 * 16), abs=1e-6)
    assert _post("icdar2015").box_geometry == "mmocr"
    assert _post("pan-paper-icdar2015").box_geometry == "pan_pp"
    assert _post("synthtext-mini").box_geometry == "grown"


def test_row5_targets_sampled_at_4i_with_corner_sampling() -> None:
    """mmocr rescales the targets by 0.25 with nearest sampling (OpenCV:
    source = floor(4 i)), so map pixel i is input pixel 4 i; tcmbench's
    ``centre`` samples 4 i + 2.

    Input rows 1..12 are text (16 rows -> 4 map rows). corner: rows 0, 4,
    8, 12 -> [0, 1, 1, 1]; centre: rows 2, 6, 10, 14 -> [1, 1, 1, 0].
    """
    gt = torch.zeros(1, 16, 8)
    gt[:, 1:13] = 1.0
    targets = {"gt_text": gt, "gt_kernel": gt, "gt_mask": torch.ones_like(gt)}
    corner = downsample_targets(targets, (4, 2), "corner")["gt_text"][0, :, 0]
    centre = downsample_targets(targets, (4, 2), "centre")["gt_text"][0, :, 0]
    assert corner.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert centre.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert resolve_options(SPEC.recipes["icdar2015"]["model"]["options"])["target_sampling"] == (
        "corner"
    )


# ---------------------------------------------------------------- row 6


def test_row6_small_words_stay_text_without_min_text_size_rule() -> None:
    """Neither mmocr nor pan_pp makes small words don't-care (only '###'
    polygons are). A 40 x 6 word at x 10..50, y 10..16: its minAreaRect is
    6 px thin. With min_text_size 0 (the official recipes) it is text 1
    and the mask stays 1 on it; with tcmbench's rule at 8 it is don't-care:
    text 0, mask 0 over it.
    """
    word = np.array([[10, 10], [50, 10], [50, 16], [10, 16]], np.float64)
    official = _targets("icdar2015")([word], [False], 32, 64)
    assert official["gt_text"][12, 30] == 1 and official["gt_mask"][12, 30] == 1
    rule = _targets("icdar2015", min_text_size=8.0)([word], [False], 32, 64)
    assert rule["gt_text"].max() == 0 and rule["gt_mask"][12, 30] == 0
    assert _targets("pan-paper-ctw1500").min_text_size == 0.0


# ---------------------------------------------------------------- row 7


def test_row7_tcm_recipes_normalise_with_imagenet_mean() -> None:
    """TCM-PAN's panet_pipeline.py: img_norm_cfg mean [123.675, 116.28,
    103.53], std [58.395, 57.12, 57.375] (not CLIP's / DBNet r50dcnv2's
    [122.679, 116.669, 104.007]). A TCM model trained with the icdar2015
    recipe normalises with it: in the red channel a pixel of 0 becomes
    -123.675 / 58.395 = -2.1179 and one of 124 becomes 0.325 / 58.395 =
    0.00557 (CLIP's mean would give 1.3213 / 58.395 = 0.0226).
    """
    from tcmbench.train.run import recipe_for

    tcm = DetectorConfig(tcm=TCMConfig(clip_pretrained=None))
    for name in MMOCR_RECIPES:
        used = recipe_for(SPEC.recipes[name], tcm)
        assert used["normalize"] == {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}, name
    assert recipe_for(SPEC.recipes["synthtext-mini"], tcm)["normalize"]["mean"] == TCM_MEAN
    transform = InferenceTransform.from_recipe(recipe_for(SPEC.recipes["icdar2015"], tcm))
    x, _ = transform(np.zeros((32, 64, 3), np.uint8))
    assert x[0, 0, 0] == pytest.approx(-123.675 / 58.395, abs=1e-4)
    x, _ = transform(np.full((32, 64, 3), 124, np.uint8))
    assert x[0, 0, 0] == pytest.approx((124 - 123.675) / 58.395, abs=1e-4)


# ---------------------------------------------------------------- row 8


def _train_step(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One SGD step of a small PAN-R18 built with ``options``; returns the
    model and every BatchNorm running mean before the step."""
    torch.manual_seed(0)
    config = DetectorConfig(backbone="resnet18", pretrained_backbone=False, options=options)
    model = get_plugin_manager().hook.build_detector(spec=SPEC, config=config)
    before = {
        n: m.running_mean.clone()
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    }
    word = np.array([[8, 20], [56, 20], [56, 40], [8, 40]], np.float32)
    t = model.target_builder([word], [False], 64, 64)
    targets = {k: torch.from_numpy(v)[None].repeat(2, 1, 1) for k, v in t.items()}
    images = torch.randn(2, 3, 64, 64) * 3.0 + 1.0
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    model(images, targets)["losses"]["loss"].backward()
    opt.step()
    return model, before


def test_row8_backbone_bn_statistics_frozen_under_norm_eval() -> None:
    """mmocr's panet_r18_fpem_ffm: mmdet ResNet with norm_eval=True -- the
    backbone's BatchNorm layers stay in eval mode in training: a train
    step on inputs of mean 1, std 3 leaves every backbone running_mean at
    its start value (0 for an untrained layer), while the neck's BatchNorm
    layers (FPEM_FFM, not under norm_eval) move towards the batch mean:
    running_mean = 0.9 x 0 + 0.1 x batch mean != 0. Their affine weights
    still train. Without the option (the plain recipe) the backbone's
    statistics move too.
    """
    options = SPEC.recipes["default"]["model"]["options"]
    assert options["backbone_norm_eval"] is True
    model, before = _train_step(options)
    backbone = [n for n in before if n.startswith("backbone.")]
    neck = [n for n in before if n.startswith("neck.")]
    assert backbone and neck
    modules = dict(model.named_modules())
    for name in backbone:
        assert torch.equal(modules[name].running_mean, before[name]), name
    assert all(not torch.equal(modules[n].running_mean, before[n]) for n in neck)
    assert model.backbone.bn1.weight.grad is not None  # affine weights still train
    model, before = _train_step({**options, "backbone_norm_eval": False})
    modules = dict(model.named_modules())
    assert not torch.equal(modules["backbone.bn1"].running_mean, before["backbone.bn1"])
    for name in MMOCR_RECIPES + PAPER_RECIPES + list(PLAIN_RECIPES):
        opts = resolve_options(SPEC.recipes[name]["model"]["options"])
        assert opts["backbone_norm_eval"] is (name == "default"), name


# ---------------------------------------------------------------- row 12


def test_row12_head_init_normal_001() -> None:
    """mmocr PANHead: init_cfg Normal(mean 0, std 0.01) on out_conv, bias 0
    (mmcv NormalInit's default bias). 512 x 6 = 3072 weights: the sample
    std lies within 0.01 x (1 +- 0.1) with overwhelming probability (its
    relative error is about 1 / sqrt(2 x 3072) = 1.3 %). pan_pp's PA_Head
    draws N(0, sqrt(2 / (1 x 1 x 6))) = N(0, 0.577); PyTorch's default is
    uniform(+-1 / sqrt(512)): std 0.0442 / sqrt(3) = 0.0255.
    """
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    try:
        _check_head_inits()
    finally:
        torch.set_grad_enabled(True)
    assert resolve_options(SPEC.recipes["ctw1500"]["model"]["options"])["head_init"] == "mmocr"


def _check_head_inits() -> None:
    mmocr = PANHead(512, init="mmocr").out_conv
    assert float(mmocr.weight.std()) == pytest.approx(0.01, rel=0.1)
    assert float(mmocr.weight.mean()) == pytest.approx(0.0, abs=0.001)
    assert torch.count_nonzero(mmocr.bias) == 0
    pan_pp = PANHead(512, init="pan_pp").out_conv
    assert float(pan_pp.weight.std()) == pytest.approx(math.sqrt(2 / 6), rel=0.1)
    default = PANHead(512).out_conv
    assert float(default.weight.std()) == pytest.approx(1 / math.sqrt(512) / math.sqrt(3), rel=0.1)


def test_row12_dis_loss_unordered_pairs_over_n_n_minus_1() -> None:
    """mmocr pan_loss.py: L_dis = sum over itertools.combinations of the
    kernel means of log(1 + max(0, 3 - ||G_i - G_j||)^2), / (N (N - 1)).

    Three instances with constant embeddings G1 = 0, G2 = (1, 0, 0, 0),
    G3 = (5, 0, 0, 0): pairs (1, 2): 3 - 1 = 2 -> log(1 + 4) = log 5;
    (1, 3): 3 - 5 < 0 -> log 1 = 0; (2, 3): 3 - 4 < 0 -> 0. Sum = log 5;
    N (N - 1) = 6: mmocr L_dis = log(5) / 6 = 0.26824. Ordered pairs (paper
    eq. 3, pan_pp's mean over ordered pairs): 2 log(5) / 6 = 0.53648.
    L_agg = 0 (every pixel sits on its kernel mean).
    """
    ids = torch.tensor([[[1, 1, 0, 2, 2, 0, 3, 3]]], dtype=torch.float32)
    emb = torch.zeros(1, 4, 1, 8)
    emb[0, 0, 0] = torch.tensor([0, 0, 0, 1, 1, 0, 5, 5], dtype=torch.float32)
    valid = torch.ones(1, 1, 8)
    agg, dis = aggregation_discrimination(ids, ids, emb, valid, dis_pairs="unordered")
    assert float(agg) == pytest.approx(0.0, abs=1e-6)
    assert float(dis) == pytest.approx(math.log(5) / 6, rel=1e-5)
    _, dis = aggregation_discrimination(ids, ids, emb, valid, dis_pairs="ordered")
    assert float(dis) == pytest.approx(2 * math.log(5) / 6, rel=1e-5)
    assert resolve_options(SPEC.recipes["icdar2015"]["model"]["options"])["dis_pairs"] == (
        "unordered"
    )
    assert resolve_options(SPEC.recipes["pan-paper-icdar2015"]["model"]["options"])[
        "dis_pairs"
    ] == ("ordered")


# ------------------------------------------------ recipes and validation


@pytest.mark.parametrize("name", MMOCR_RECIPES + PAPER_RECIPES + list(PLAIN_RECIPES))
def test_recipes_resolve_to_their_authors_values(name: str) -> None:
    """The mmocr / TCM-PAN recipes resolve (as ``evaluate --recipe`` and
    ``train`` use them) to mmocr 0.x's values, the pan-paper-* recipes to
    pan_pp's, and the plain synthtext-mini recipe to tcmbench's."""
    from tcmbench.inference.settings import resolve_test_recipe

    post = resolve_test_recipe(SPEC, None, name, "synthtext-mini").recipe["postprocess"]
    opts = resolve_options(SPEC.recipes[name]["model"]["options"])
    if name in PLAIN_RECIPES:
        want_post, want_opts = (
            TCMBENCH_POSTPROCESS,
            {
                "kernel_shrink": "float",
                "target_sampling": "centre",
                "dis_pairs": "ordered",
                "head_init": "pytorch",
            },
        )
        assert opts["min_text_size"] > 0
    elif name.startswith("pan-paper-"):
        want_post, want_opts = PAN_PP_POSTPROCESS, PAN_PP_OPTIONS
    else:
        want_post, want_opts = MMOCR_POSTPROCESS, MMOCR_OPTIONS
    assert {k: post[k] for k in want_post} == want_post
    assert {k: opts[k] for k in want_opts} == want_opts


def test_shipped_weights_keep_tcmbench_post_processing() -> None:
    """The shipped synthtext-mini checkpoint records no aggregation or box
    geometry: it runs with the postprocessor's defaults, tcmbench's own
    (the choices it was trained for)."""
    default = PANPostprocessor()
    assert (default.aggregation, default.distance_thr, default.box_geometry) == (
        "nearest",
        3.0,
        "grown",
    )


@pytest.mark.parametrize(
    ("where", "params", "match"),
    [
        ("post", {"aggregation": "bfs"}, r"aggregation must be one of nearest, mmcv, pan_pp"),
        ("post", {"box_geometry": "official"}, r"box_geometry must be one of grown, mmocr"),
        ("post", {"box_geometry": 1}, r"box_geometry must be str"),
        ("opts", {"kernel_shrink": "exact"}, r"kernel_shrink must be one of official, float"),
        ("opts", {"dis_pairs": "all"}, r"dis_pairs must be one of unordered, ordered"),
        ("opts", {"target_sampling": "middle"}, r"target_sampling must be one of corner"),
        ("opts", {"head_init": "xavier"}, r"head_init must be one of mmocr, pan_pp, pytorch"),
        ("opts", {"backbone_norm_eval": "yes"}, r"backbone_norm_eval must be true or false"),
    ],
)
def test_new_recipe_keys_reject_bad_values_in_one_line(
    where: str, params: dict[str, Any], match: str
) -> None:
    with pytest.raises(PluginError, match=match) as info:
        if where == "post":
            PANPostprocessor().with_params(**params)
        else:
            resolve_options(params)
    assert "\n" not in str(info.value)
