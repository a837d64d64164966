"""The DBNet plugin: spec, recipes, head/loss on tiny inputs, DB targets on
hand-made polygons, and the postprocessor on perfect maps."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import Polygon
from tcmbench_dbnet.model import build_parts, build_postprocessor, resolve_options
from tcmbench_dbnet.recipes import RECIPES
from tcmbench_dbnet.spec import dbnet_spec
from tcmbench_dbnet.targets import DBTargetBuilder

from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.schema import Prediction
from tcmbench.errors import PluginError
from tcmbench.inference.db_postprocess import DBPostprocessor
from tcmbench.models.detector import Detector

torch.set_num_threads(1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    return pa.intersection(pb).area / pa.union(pb).area


def _batch_targets(
    builder: DBTargetBuilder, polys: list[np.ndarray], size: int, batch: int
) -> dict[str, torch.Tensor]:
    maps = [builder(polys, [False] * len(polys), size, size) for _ in range(batch)]
    return {k: torch.from_numpy(np.stack([m[k] for m in maps])) for k in maps[0]}


# --- spec and recipes ------------------------------------------------------


def test_plugin_import_and_spec_stay_torch_free() -> None:
    code = (
        "import sys, tcmbench_dbnet; from tcmbench_dbnet.spec import dbnet_spec; "
        "s = dbnet_spec(); s.recipe('icdar2015'); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(s.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "dbnet"


def test_spec_declares_recipes_and_tcm_support() -> None:
    spec = dbnet_spec()
    assert spec.default_recipe == "default" and "default" in spec.recipes
    assert spec.recipe("no-such-dataset") == spec.recipe("default")
    tcm = spec.tcm
    assert tcm is not None
    assert (tcm.feature_level, tcm.stages, tcm.input_resolution) == (3, (0, 1, 2, 3), 640)
    assert tcm.upsample_score_map and tcm.aux_loss == "balanced_bce"
    targets = {"gt_shrink": torch.ones(2, 8, 8), "gt_shrink_mask": torch.zeros(2, 8, 8)}
    target, mask = tcm.aux_target(targets, torch.zeros(2, 1, 1, 1))
    assert target is targets["gt_shrink"] and mask is targets["gt_shrink_mask"]


def test_recipe_copies_are_independent() -> None:
    spec = dbnet_spec()
    recipe = spec.recipe("icdar2015")
    recipe["postprocess"]["mask_thr"] = 0.99
    assert spec.recipe("icdar2015")["postprocess"]["mask_thr"] == 0.28


@pytest.mark.parametrize(
    ("name", "optimizer", "lr", "test", "post"),
    [
        ("icdar2015", "adam", 1e-4, (4068, 1024), ("quad", 0.28, 0.2, 1.6)),
        ("msra-td500", "ranger", 1e-3, (4068, 736), ("quad", 0.08, 0.17, 1.9)),
        ("ctw1500", "adamw", 1e-4, (4068, 1024), ("poly", 0.08, 0.3, 2.0)),
        ("totaltext", "adamw", 1e-4, (2944, 800), ("poly", 0.347, 0.3, 1.95)),
    ],
)
def test_dataset_recipes_carry_tcm_section7_values(
    name: str,
    optimizer: str,
    lr: float,
    test: tuple[int, int],
    post: tuple[str, float, float, float],
) -> None:
    r = RECIPES[name]
    assert (r["optimizer"]["name"], r["optimizer"]["lr"]) == (optimizer, lr)
    assert (r["test"]["long_side"], r["test"]["short_side"]) == test
    p = r["postprocess"]
    assert (p["output"], p["mask_thr"], p["min_score"], p["unclip_ratio"]) == post
    assert r["tcm"]["context_length"] == (32 if name in ("ctw1500", "totaltext") else 4)
    assert r["schedule"]["power"] == 0.9 and r["batch_size"] == 16 and r["epochs"] == 1200
    assert r["train"]["crop_size"] == 640


def test_every_recipe_configures_valid_parts() -> None:
    for name, recipe in RECIPES.items():
        resolve_options(recipe["model"]["options"])
        post = build_postprocessor(recipe["postprocess"])
        assert isinstance(post, DBPostprocessor), name


def test_unknown_options_are_plugin_errors() -> None:
    with pytest.raises(PluginError, match=r"unknown DBNet option.*lateral_chanels"):
        build_parts(DetectorConfig(backbone="resnet18", options={"lateral_chanels": 64}))
    with pytest.raises(PluginError, match=r"unknown DBNet postprocess parameter.*mask_threshold"):
        build_postprocessor({"mask_threshold": 0.3})
    with pytest.raises(PluginError, match="output must be one of"):
        build_postprocessor({"output": "hexagon"})


# --- model: shapes, finite losses, parameter count --------------------------


@pytest.mark.parametrize(
    ("backbone", "options"),
    [
        ("resnet18", {}),
        ("resnet50", {}),
        ("mobilenetv3_small", {"lateral_channels": 96}),
        ("mobilenetv3_large", {}),
    ],
)
def test_forward_shapes_and_finite_losses(backbone: str, options: dict) -> None:
    torch.manual_seed(0)
    model = Detector(build_parts(DetectorConfig(backbone=backbone, options=options)))
    size = 64
    quad = np.array([[10, 12], [50, 16], [48, 30], [9, 26]], dtype=np.float32)
    targets = _batch_targets(model.target_builder, [quad], size, batch=2)
    assert targets["gt_shrink"].sum() > 0
    model.train()
    out = model(torch.randn(2, 3, size, size), targets)
    for key in ("prob", "prob_logits", "thr", "binary"):
        assert out[key].shape == (2, 1, size, size), key
    assert ((out["prob"] >= 0) & (out["prob"] <= 1)).all()
    losses = out["losses"]
    assert set(losses) >= {"loss", "loss_prob", "loss_thr", "loss_db"}
    assert all(torch.isfinite(v) for v in losses.values())
    expected_total = 5 * losses["loss_prob"] + 10 * losses["loss_thr"] + losses["loss_db"]
    assert torch.allclose(losses["loss"], expected_total)
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out["prob"].shape == (1, 1, size, size)
    assert "thr" not in out  # the threshold branch only serves training


def test_dbnet_r50_has_25_4m_parameters() -> None:
    model = Detector(build_parts(DetectorConfig(backbone="resnet50")))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 25.4e6) / 25.4e6 < 0.02, count


def test_rebuilt_neck_accepts_tcm_channel_list() -> None:
    model = Detector(build_parts(DetectorConfig(backbone="resnet18")))
    model.rebuild_neck([64, 128, 256, 513])
    feats = [torch.randn(1, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate([64, 128, 256, 513])]
    assert model.head(model.neck(feats))["prob"].shape == (1, 1, 64, 64)


def test_predict_returns_predictions_per_image() -> None:
    torch.manual_seed(0)
    model = Detector(
        build_parts(
            DetectorConfig(
                backbone="mobilenetv3_small",
                options={"postprocess": {"mask_thr": 0.0, "min_score": 0.0}},
            )
        )
    )
    model.eval()
    metas = [
        {"orig_size": (64, 64), "scale": (1.0, 1.0)},
        {"orig_size": (128, 96), "scale": (0.5, 0.5)},
    ]
    preds = model.predict(torch.randn(2, 3, 64, 64), metas)
    assert len(preds) == 2
    # mask_thr 0 makes the whole valid area one region: one box per image,
    # inside each original image.
    for per_image, (h, w) in zip(preds, [(64, 64), (128, 96)]):
        assert len(per_image) == 1 and isinstance(per_image[0], Prediction)
        poly = per_image[0].polygon
        assert poly.shape == (4, 2)
        assert (poly[:, 0] <= w - 1).all() and (poly[:, 1] <= h - 1).all() and (poly >= 0).all()


# --- targets on hand-made polygons --------------------------------------


SQUARE = np.array([[20, 20], [60, 20], [60, 60], [20, 60]], dtype=np.float32)  # 40 x 40


def test_square_shrinks_by_the_db_offset() -> None:
    # D = A (1 - r^2) / L = 1600 * 0.84 / 160 = 8.4 -> a 23.2 x 23.2 square
    # centred on (40, 40).
    t = DBTargetBuilder()([SQUARE], [False], 100, 100)
    shrink = t["gt_shrink"]
    assert set(np.unique(shrink)) == {0.0, 1.0}
    ys, xs = np.nonzero(shrink)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (28, 52, 28, 52)  # 28.4..51.6, rounded
    # The region is the analytic offset square with its vertices rounded to
    # pixel centres (as DBNet fills it): the polygon through the centres of
    # its boundary pixels has the analytic area up to that rounding.
    side = 40 - 2 * 8.4
    contours, _ = cv2.findContours(
        shrink.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    assert len(contours) == 1
    area = cv2.contourArea(contours[0])
    assert (side - 1) ** 2 <= area <= (side + 1) ** 2
    assert area == pytest.approx(side**2, rel=0.08)
    unshrunk = 40**2
    assert shrink.sum() < 0.45 * unshrunk
    assert t["gt_shrink_mask"].min() == 1.0  # nothing ignored


def test_threshold_map_band_and_mask() -> None:
    t = DBTargetBuilder()([SQUARE], [False], 100, 100)
    thr, thr_mask = t["gt_thr"], t["gt_thr_mask"]
    assert thr.dtype == np.float32 and thr.shape == (100, 100)
    assert thr.min() >= 0.3 - 1e-6 and thr.max() <= 0.7 + 1e-6
    # on the polygon's edges: thr_max; D = 8.4 or more away: thr_min
    assert thr[20, 40] == pytest.approx(0.7) and thr[40, 60] == pytest.approx(0.7)
    assert thr[40, 40] == pytest.approx(0.3) and thr[5, 5] == pytest.approx(0.3)
    # 4.2 px outside the edge: halfway between
    assert thr[40, 64] == pytest.approx(0.3 + 0.4 * (1 - 4 / 8.4), abs=1e-5)
    # the mask is the dilated square: (40 + 2D)^2 minus rounded corners
    d = 8.4
    dilated_area = (40 + 2 * d) ** 2 - (4 - np.pi) * d**2
    assert abs(thr_mask.sum() - dilated_area) <= 2 * (40 + 2 * d) * 2
    assert thr_mask[40, 40] == 1 and thr_mask[40, 67] == 1 and thr_mask[40, 70] == 0


def test_ignored_and_too_small_polygons_are_masked_not_targets() -> None:
    ignored = SQUARE + 30
    tiny = np.array([[5, 80], [40, 80], [40, 84], [5, 84]], dtype=np.float32)  # 4 px high
    t = DBTargetBuilder(min_text_size=8)([SQUARE, ignored, tiny], [False, True, False], 100, 100)
    mask, shrink = t["gt_shrink_mask"], t["gt_shrink"]
    assert mask[75, 75] == 0 and shrink[75, 75] == 0  # ignored region
    assert mask[82, 20] == 0 and shrink[82, 20] == 0  # too small
    assert mask[40, 40] == 1 and shrink[40, 40] == 1  # the text
    assert mask[5, 90] == 1
    # no threshold border around the ignored or the tiny polygon
    assert t["gt_thr_mask"][92, 92] == 0 and t["gt_thr_mask"][82, 20] == 0


def test_targets_shapes_and_empty_image() -> None:
    t = DBTargetBuilder()([], [], 48, 64)
    assert set(t) == {"gt_shrink", "gt_shrink_mask", "gt_thr", "gt_thr_mask"}
    assert all(v.shape == (48, 64) and v.dtype == np.float32 for v in t.values())
    assert t["gt_shrink"].sum() == 0 and t["gt_shrink_mask"].min() == 1
    with pytest.raises(ValueError, match="ignore flags"):
        DBTargetBuilder()([SQUARE], [], 48, 64)


# --- postprocessor on perfect maps ---------------------------------------


def _shrunk(poly: np.ndarray, ratio: float = 0.4) -> tuple[Polygon, float]:
    """Shapely's inward buffer by DBNet's D, and the unclip ratio that
    undoes it (D = A' u / L'), computed independently of the plugin."""
    p = Polygon(poly)
    d = p.area * (1 - ratio**2) / p.length
    shrunk = p.buffer(-d, join_style="mitre")
    return shrunk, d * shrunk.length / shrunk.area


def _paint(shape: tuple[int, int], polys: list[Polygon], value: float = 1.0) -> np.ndarray:
    prob = np.zeros(shape, dtype=np.float32)
    for p in polys:
        pts = np.round(np.asarray(p.exterior.coords)[:-1]).astype(np.int32)
        cv2.fillPoly(prob, [pts.reshape(-1, 1, 2)], value)
    return prob


def _match(preds: list[Prediction], gts: list[np.ndarray]) -> list[float]:
    return [max(_iou(p.polygon, g) for p in preds) for g in gts]


def test_postprocessor_recovers_rotated_quads_in_original_coordinates() -> None:
    # Ground truth in an 800 x 600 original image; the network saw it at
    # half size (scale 0.5): 400 x 300, padded to 416 x 320.
    angles = [0, 17, 35, 60, 90, 125, 160, -20]
    centres = [
        (130, 100),
        (400, 110),
        (660, 120),
        (140, 330),
        (400, 330),
        (650, 350),
        (250, 520),
        (580, 520),
    ]
    gts = [
        cv2.boxPoints(((cx, cy), (180, 60), a)).astype(np.float64)
        for (cx, cy), a in zip(centres, angles)
    ]
    shrunk, unclip = zip(*(_shrunk(g * 0.5) for g in gts))
    assert np.ptp(unclip) < 1e-4  # same box size: one unclip ratio undoes every shrink
    prob = _paint((320, 416), list(shrunk))
    prob[:, 400:] = 1.0  # in the padding: must be ignored
    prob[300:, :] = 1.0
    post = DBPostprocessor(output="quad", mask_thr=0.3, min_score=0.5, unclip_ratio=unclip[0])
    (preds,) = post(
        {"prob": torch.from_numpy(prob)[None, None]},
        [{"orig_size": (600, 800), "scale": (0.5, 0.5)}],
    )
    assert len(preds) == len(gts)
    ious = _match(preds, gts)
    assert min(ious) > 0.9, ious
    for p in preds:
        assert p.polygon.shape == (4, 2) and p.score == pytest.approx(1.0)
        tl, tr, br, bl = p.polygon
        # TL, TR, BR, BL: clockwise on screen (positive shoelace area, y down)
        x, y = p.polygon[:, 0], p.polygon[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0
        assert tl[0] <= tr[0] and bl[0] <= br[0] and tl[1] <= bl[1] and tr[1] <= br[1]


def _arc(
    cx: float, cy: float, r_in: float, r_out: float, a0: float, a1: float, n: int = 10
) -> np.ndarray:
    """A curved text band (Total-Text / CTW1500 style): n points along the
    outer arc, n back along the inner one."""
    t = np.linspace(np.radians(a0), np.radians(a1), n)
    outer = np.stack([cx + r_out * np.cos(t), cy + r_out * np.sin(t)], axis=1)
    inner = np.stack([cx + r_in * np.cos(t), cy + r_in * np.sin(t)], axis=1)[::-1]
    return np.concatenate([outer, inner])


def test_postprocessor_recovers_curved_polygons() -> None:
    base = _arc(0, 0, 70, 110, 200, 340)  # an upward arch of text, 40 px thick
    gts = [base + [130, 140], base + [390, 150], base * [1, -1] + [256, 250]]  # 2 arches, 1 smile
    shrunk, unclip = zip(*(_shrunk(g) for g in gts))
    prob = _paint((384, 512), list(shrunk), value=0.9)
    post = DBPostprocessor(
        output="poly", mask_thr=0.3, min_score=0.5, unclip_ratio=float(np.mean(unclip))
    )
    (preds,) = post({"prob": prob[None, None]}, [{"orig_size": (384, 512), "scale": (1.0, 1.0)}])
    assert len(preds) == len(gts)
    ious = _match(preds, gts)
    assert min(ious) > 0.9, ious
    for p in preds:
        assert len(p.polygon) > 4  # a real polygon, not a box
        assert p.score == pytest.approx(0.9, abs=0.02)  # mean inside the simplified contour
        x, y = p.polygon[:, 0], p.polygon[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0  # clockwise on screen
    # a quad would not fit an arch: the polygon output is what makes it work
    quads = post.with_params(output="quad")(
        {"prob": prob[None, None]}, [{"orig_size": (384, 512), "scale": (1.0, 1.0)}]
    )[0]
    assert max(_match(quads, gts)) < 0.8


def test_postprocessor_targets_round_trip() -> None:
    """The plugin's own targets, read back by its own postprocessor with the
    default unclip ratio, land on the ground truth of squarish text."""
    gts = [
        cv2.boxPoints(((60, 60), (70, 50), 20)).astype(np.float64),
        cv2.boxPoints(((170, 140), (80, 60), -35)).astype(np.float64),
    ]
    t = DBTargetBuilder()(gts, [False, False], 200, 224)
    post = DBPostprocessor(output="quad", unclip_ratio=1.5)
    (preds,) = post(
        {"prob": t["gt_shrink"][None, None]}, [{"orig_size": (200, 224), "scale": (1.0, 1.0)}]
    )
    assert len(preds) == 2
    assert min(_match(preds, gts)) > 0.9


def test_postprocessor_thresholds_and_limits() -> None:
    prob = np.zeros((1, 1, 128, 128), dtype=np.float32)
    prob[0, 0, 10:40, 10:60] = 0.9  # strong
    prob[0, 0, 60:90, 10:60] = 0.4  # above mask_thr, below min_score
    prob[0, 0, 100:102, 10:60] = 0.9  # 2 px thin: below min_size
    prob[0, 0, 60:100, 80:120] = 0.8  # strong, largest
    meta = [{"orig_size": (128, 128), "scale": (1.0, 1.0)}]
    post = DBPostprocessor(mask_thr=0.3, min_score=0.6, min_size=3)
    preds = post({"prob": prob}, meta)[0]
    scores = sorted(round(p.score, 3) for p in preds)
    assert scores == [0.8, 0.9]
    assert len(post.with_params(min_score=0.3)({"prob": prob}, meta)[0]) == 3
    assert len(post.with_params(min_size=0)({"prob": prob}, meta)[0]) == 3
    # max_candidates keeps the largest regions
    (best,) = post.with_params(max_candidates=1)({"prob": prob}, meta)[0]
    assert best.score == pytest.approx(0.8)
    assert post.with_params(mask_thr=0.95)({"prob": prob}, meta) == [[]]
    with pytest.raises(ValueError, match="2 maps but 1 metas"):
        post({"prob": np.zeros((2, 1, 8, 8), np.float32)}, meta)


def test_degenerate_polygons_become_dont_care_without_crashing() -> None:
    collinear = np.array([[10, 10], [30, 10], [50, 10]], dtype=np.float32)
    bowtie = np.array(
        [[60, 60], [90, 90], [90, 60], [60, 90]], dtype=np.float32
    )  # self-intersecting
    t = DBTargetBuilder(min_text_size=0)([collinear, bowtie], [False, False], 100, 100)
    assert t["gt_shrink_mask"][10, 30] == 0  # zero area: don't-care
    assert np.isfinite(t["gt_thr"]).all() and t["gt_thr"].min() >= 0.3 - 1e-6


def test_loss_explains_missing_threshold_map_in_eval_mode() -> None:
    model = Detector(build_parts(DetectorConfig(backbone="mobilenetv3_small")))
    targets = _batch_targets(model.target_builder, [SQUARE / 2], 64, batch=1)
    model.eval()
    with pytest.raises(ValueError, match="training mode"):
        model(torch.randn(1, 3, 64, 64), targets)


def test_postprocessor_dilation_joins_what_a_one_pixel_gap_splits() -> None:
    """``dilation`` (PaddleOCR's use_dilation, a 2 x 2 kernel) closes a
    one-pixel gap between two halves of a word: one box instead of two."""
    prob = np.zeros((1, 1, 64, 128), dtype=np.float32)
    prob[0, 0, 20:40, 10:60] = 0.9
    prob[0, 0, 20:40, 61:110] = 0.9  # column 60 is the gap
    meta = [{"orig_size": (64, 128), "scale": (1.0, 1.0)}]
    post = DBPostprocessor(mask_thr=0.3, min_score=0.5)
    assert len(post({"prob": prob}, meta)[0]) == 2
    (joined,) = post.with_params(dilation=True)({"prob": prob}, meta)[0]
    assert joined.polygon[:, 0].min() < 10 and joined.polygon[:, 0].max() > 110


def test_postprocessor_rect_score_modes_fast_and_slow() -> None:
    """fast / slow (PaddleOCR's score modes) score the contour's
    minimum-area rectangle: fast averages the probability over the
    rectangle, slow over the contour, so an L-shaped region (a quarter of
    its rectangle empty) scores ~0.75 x 0.9 fast and ~0.9 slow; either way
    the box is the unclipped rectangle."""
    prob = np.zeros((1, 1, 96, 96), dtype=np.float32)
    prob[0, 0, 20:80, 20:50] = 0.9
    prob[0, 0, 50:80, 50:80] = 0.9  # L: the top-right quarter of 20..80 is empty
    meta = [{"orig_size": (96, 96), "scale": (1.0, 1.0)}]
    post = DBPostprocessor(output="quad", mask_thr=0.3, min_score=0.1, unclip_ratio=0.5)
    (fast,) = post.with_params(score_mode="fast")({"prob": prob}, meta)[0]
    (slow,) = post.with_params(score_mode="slow")({"prob": prob}, meta)[0]
    assert fast.score == pytest.approx(0.9 * 0.75, abs=0.03)
    assert slow.score == pytest.approx(0.9, abs=0.02)
    for p in (fast, slow):
        x0, y0 = p.polygon.min(axis=0)
        x1, y1 = p.polygon.max(axis=0)
        assert x0 < 20 and y0 < 20 and x1 > 79 and y1 > 79  # the whole rectangle, grown
    # min_score between the two: slow keeps the box, fast drops it
    assert post.with_params(score_mode="fast", min_score=0.8)({"prob": prob}, meta) == [[]]
    assert len(post.with_params(score_mode="slow", min_score=0.8)({"prob": prob}, meta)[0]) == 1
    with pytest.raises(ValueError, match="needs output 'quad'"):
        DBPostprocessor(output="poly", score_mode="fast")
    with pytest.raises(ValueError, match="score_mode must be one of"):
        DBPostprocessor(score_mode="average")


def test_postprocessor_all_contours_also_boxes_holes() -> None:
    """all_contours (PaddleOCR's RETR_LIST) makes the outline of a hole in a
    text region a candidate of its own; by default only outer outlines are."""
    prob = np.zeros((1, 1, 96, 128), dtype=np.float32)
    prob[0, 0, 20:76, 10:118] = 0.9
    prob[0, 0, 46:48, 60:70] = 0.0  # a small hole: its outline runs on text pixels
    meta = [{"orig_size": (96, 128), "scale": (1.0, 1.0)}]
    post = DBPostprocessor(output="quad", mask_thr=0.3, min_score=0.4, score_mode="fast")
    assert len(post({"prob": prob}, meta)[0]) == 1
    both = post.with_params(all_contours=True)({"prob": prob}, meta)[0]
    assert len(both) == 2
    inner = min(both, key=lambda p: np.ptp(p.polygon[:, 0]))
    assert inner.polygon[:, 0].min() > 50 and inner.polygon[:, 0].max() < 80
