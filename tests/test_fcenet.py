"""The FCENet plugin: Fourier embedding, targets, loss, post-processing,
augmentations, options, TCM support and the official TCM-FCENet key layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

torch = pytest.importorskip("torch")

from conftest import shared_file
from tcmbench_fcenet.fourier import (
    fourier_to_poly,
    normalize_contour,
    poly_to_fourier,
    reals_to_polygons,
    signed_area,
)
from tcmbench_fcenet.model import build_parts, resolve_options
from tcmbench_fcenet.postprocess import FCEPostprocessor
from tcmbench_fcenet.targets import FCETargetBuilder, tcm_sample_target

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.errors import PluginError
from tcmbench.models.detector import Detector

KEYS_FILE = Path(__file__).parent / "data" / "tcm_official_keys_fcenet.txt"
RANDOM_CLIP = TCMConfig(clip_pretrained=None)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    pa = shapely.make_valid(shapely.Polygon(a))
    pb = shapely.make_valid(shapely.Polygon(b))
    union = pa.union(pb).area
    return float(pa.intersection(pb).area / union) if union > 0 else 0.0


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def rotated_quad(cx: float, cy: float, w: float, h: float, deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    axis = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
    return (corners @ axis + [cx, cy]).astype(np.float32)


def arc_band(cx: float, cy: float, r: float, thick: float, a0: float, a1: float) -> np.ndarray:
    """A curved word: 7 points on the outer arc, 7 back on the inner one
    (CTW1500 style), clockwise on screen."""
    angles = np.deg2rad(np.linspace(a0, a1, 7))
    outer = np.stack(
        [cx + (r + thick / 2) * np.cos(angles), cy - (r + thick / 2) * np.sin(angles)], 1
    )
    inner = np.stack(
        [cx + (r - thick / 2) * np.cos(angles), cy - (r - thick / 2) * np.sin(angles)], 1
    )
    poly = np.vstack([outer[::-1], inner]).astype(np.float32)
    return poly if signed_area(poly) > 0 else poly[::-1].copy()


# --------------------------------------------------------------------------
# Fourier contour embedding


def test_coefficients_do_not_depend_on_start_point_or_direction():
    quad = np.array([[10, 10], [110, 20], [105, 50], [5, 40]], np.float64)
    ref = poly_to_fourier(quad)
    for variant in (np.roll(quad, 1, axis=0), np.roll(quad, 3, axis=0), quad[::-1]):
        assert np.abs(poly_to_fourier(variant) - ref).max() < 0.1
    # Canonical form: clockwise on screen, starting at 12 o'clock.
    pts = normalize_contour(quad)
    assert signed_area(pts) > 0
    assert abs(pts[0, 0] - pts[:, 0].mean()) < 0.5 and pts[0, 1] < pts[:, 1].mean()
    # Clockwise on screen <=> the +1 frequency dominates the -1 one.
    assert abs(ref[6]) > abs(ref[4])
    # c_0 is the centroid of the resampled contour.
    assert np.allclose([ref[5].real, ref[5].imag], pts.mean(axis=0))


def test_round_trip_of_simple_shapes():
    circle = np.stack(
        [50 + 20 * np.cos(np.linspace(0, 6.28, 40)), 50 + 20 * np.sin(np.linspace(0, 6.28, 40))], 1
    )
    assert iou(fourier_to_poly(poly_to_fourier(circle)), circle) > 0.99
    assert iou(fourier_to_poly(poly_to_fourier(rect(0, 0, 100, 30))), rect(0, 0, 100, 30)) > 0.93
    band = arc_band(100, 100, 60, 20, 30, 150)
    assert iou(fourier_to_poly(poly_to_fourier(band)), band) > 0.9
    # The vectorised inverse transform equals the single-polygon one.
    reals = np.concatenate([poly_to_fourier(band).real, poly_to_fourier(band).imag])
    many = reals_to_polygons(np.stack([reals, reals]), 5, 50)
    assert np.allclose(many[1], fourier_to_poly(poly_to_fourier(band), 50))


def _real_curved_polygons() -> dict[str, list[np.ndarray]]:
    from tcmbench.data.dataset import load_split

    out = {}
    for name, rel in (("totaltext", "totaltext/test_gt.zip"), ("ctw1500", "ctw1500/test_gt.zip")):
        samples, _ = load_split(name, "test", data_root=shared_file(rel))
        out[name] = [i.polygon for s in samples for i in s.instances if not i.ignore]
    return out


@pytest.mark.realdata
@pytest.mark.slow
def test_fourier_round_trip_on_real_curved_ground_truth(capsys):
    """Every cared-for Total-Text and CTW1500 test polygon, through the
    datasets' own readers: encoded with K = 5, decoded to 50 points."""
    figures = {}
    for name, polys in _real_curved_polygons().items():
        assert len(polys) > 1000
        decoded = np.stack([fourier_to_poly(poly_to_fourier(p, 5), 50) for p in polys])
        gt = shapely.make_valid(shapely.polygons([shapely.linearrings(p) for p in polys]))
        pred = shapely.make_valid(shapely.polygons(decoded))
        inter = shapely.area(shapely.intersection(gt, pred))
        ious = inter / (shapely.area(gt) + shapely.area(pred) - inter)
        figures[name] = stats = {
            "polygons": len(polys),
            "mean": float(ious.mean()),
            "median": float(np.median(ious)),
            "p5": float(np.percentile(ious, 5)),
            "min": float(ious.min()),
            "share_gt_0.9": float((ious > 0.9).mean()),
        }
        assert stats["mean"] > 0.9 and stats["median"] > 0.9
        assert stats["p5"] > 0.85 and stats["min"] > 0.75
        assert stats["share_gt_0.9"] > 0.8
    with capsys.disabled():
        print("\nFourier K=5 round trip IoU:", json.dumps(figures, indent=1))


# --------------------------------------------------------------------------
# Targets


def test_levels_follow_the_relative_size_of_the_longest_box_side():
    builder = FCETargetBuilder()  # ((0, .25), (.2, .65), (.55, 1)), image height 320
    assert builder.assign_levels(rect(10, 10, 50, 30), 320, 320) == [0]  # 40 / 320
    assert builder.assign_levels(rect(10, 10, 80, 30), 320, 320) == [0, 1]  # 70 / 320 in both
    assert builder.assign_levels(rect(10, 10, 20, 160), 320, 320) == [1]  # the longest side counts
    assert builder.assign_levels(rect(0, 0, 190, 50), 320, 320) == [1, 2]
    assert builder.assign_levels(rect(0, 0, 260, 50), 320, 320) == [2]
    # The box is clipped to the image first.
    assert builder.assign_levels(rect(-500, 10, 40, 30), 320, 320) == [0]  # 40, not 540


def test_per_level_maps_on_hand_made_polygons():
    small = rect(16, 16, 80, 40)  # 0.2 -> P3 only (0.2 is not above 0.2)
    big = rotated_quad(160, 200, 180, 60, 20)  # ~0.61 -> P4 and P5
    ignored = rect(200, 20, 260, 40)  # 0.19 -> P3, masked
    t = FCETargetBuilder()([small, big, ignored], [False, False, True], 320, 320)
    assert t["fce_text_0"].shape == (40, 40) and t["fce_coeff_0"].shape == (22, 40, 40)
    assert t["fce_text_2"].shape == (10, 10) and t["fce_coeff_2"].shape == (22, 10, 10)
    # P3: the small word (filled at 1/8) and the ignored one masked out.
    assert t["fce_text_0"][3, 4] == 1 and t["fce_text_0"][4, 9] == 1
    assert t["fce_text_0"][20:, :].sum() == 0  # the big word is not on P3
    assert t["fce_mask_0"][3, 28] == 0 and t["fce_mask_0"][3, 4] == 1
    assert t["fce_text_0"][3, 28] == 0
    # P4 and P5 hold the big word only.
    assert t["fce_text_1"][12, 10] == 1 and t["fce_text_1"][3, 4] == 0
    assert t["fce_text_2"].sum() > 0
    for lvl in range(3):
        text, center = t[f"fce_text_{lvl}"], t[f"fce_center_{lvl}"]
        assert set(np.unique(text)) <= {0.0, 1.0}
        assert (center <= text).all()  # centre pixels are text pixels
        if text.sum():
            assert 0 < center.sum() < text.sum()
        off = text == 0
        assert (t[f"fce_coeff_{lvl}"][:, off] == 0).all()
    # Coefficients: decoded at any text pixel (c_0 back to absolute), the
    # polygon is the word, in level pixels.
    for lvl, stride, poly in ((0, 8, small), (1, 16, big)):
        coeff = t[f"fce_coeff_{lvl}"]
        ys, xs = np.nonzero(t[f"fce_text_{lvl}"])
        for y, x in zip(ys[:: max(1, len(ys) // 5)], xs[:: max(1, len(xs) // 5)]):
            reals = coeff[:, y, x].astype(np.float64).copy()
            reals[5] += x
            reals[16] += y
            decoded = reals_to_polygons(reals[None], 5, 50)[0] * stride
            assert iou(decoded, poly) > 0.9


def test_center_region_is_a_thin_band_inside_the_word():
    word = rect(40, 80, 280, 160)  # 240 x 80 -> P4 (0.75 of 320? no: 240/320)
    t = FCETargetBuilder(level_proportion_range=((0, 1.0), (2, 3), (4, 5)))(
        [word], [False], 320, 320
    )
    text, center = t["fce_text_0"], t["fce_center_0"]
    rows = np.nonzero(center.any(axis=1))[0]
    cols = np.nonzero(center.any(axis=0))[0]
    # Thickness 10 px at P3 -> about 0.3 x 10 = 3 rows; the ends cut by ~0.35 x 10.
    assert 2 <= len(rows) <= 5 and abs(rows.mean() - 15) <= 1
    assert len(cols) < text.any(axis=0).sum() - 4
    # Order of vertices and flips do not matter (no sideline detection).
    t2 = FCETargetBuilder(level_proportion_range=((0, 1.0), (2, 3), (4, 5)))(
        [word[::-1].copy()], [False], 320, 320
    )
    assert np.array_equal(t2["fce_center_0"], center)


def test_tcm_aux_target_covers_the_small_words_p5_leaves_out():
    small = [rect(40, 40, 100, 60), rect(200, 100, 260, 130)]
    builder = FCETargetBuilder()
    maps = builder(small + [rect(8, 200, 40, 220)], [False, False, True], 320, 320)
    assert maps["fce_text_2"].sum() == 0  # small words never reach P5
    target, mask = tcm_sample_target(
        small + [rect(8, 200, 40, 220)], [False, False, True], 320, 320
    )
    assert target.shape == mask.shape == (10, 10)
    assert target[1, 1:3].sum() > 0 and target[3:4, 6:8].sum() > 0  # both words at 1/32
    assert mask[6, 0] == 0 and mask[1, 1] == 1  # the ignored one is masked


# --------------------------------------------------------------------------
# Post-processing from perfect maps


def _perfect_outputs(targets: dict[str, np.ndarray], levels: int = 3) -> dict[str, list]:
    return {
        "text_prob": [
            torch.from_numpy(targets[f"fce_text_{i}"])[None, None] for i in range(levels)
        ],
        "center_prob": [
            torch.from_numpy(targets[f"fce_center_{i}"])[None, None] for i in range(levels)
        ],
        "reg": [torch.from_numpy(targets[f"fce_coeff_{i}"])[None] for i in range(levels)],
    }


@pytest.mark.parametrize("output", ["quad", "poly"])
def test_postprocess_recovers_rotated_quads_and_curved_words(output):
    words = [
        rotated_quad(90, 70, 120, 36, 25),
        rotated_quad(230, 250, 110, 30, -35),
        arc_band(200, 160, 90, 28, 30, 150),
        rect(30, 200, 90, 222),
    ]
    if output == "quad":
        words = [w for w in words if len(w) == 4]
    targets = FCETargetBuilder()(words, [False] * len(words), 320, 320)
    post = FCEPostprocessor(output=output)
    # The image was shown at half its original size: predictions scale back.
    preds = post(_perfect_outputs(targets), [{"orig_size": (640, 640), "scale": (0.5, 0.5)}])[0]
    assert len(preds) == len(words)
    for word in words:
        best = max(iou(p.polygon, word * 2) for p in preds)
        assert best > 0.9
    for p in preds:
        assert signed_area(p.polygon) > 0  # clockwise on screen
        if output == "quad":
            assert p.polygon.shape == (4, 2)
        else:
            assert p.polygon.shape == (50, 2)


def test_postprocess_score_threshold_padding_and_empty_maps():
    word = rect(40, 40, 120, 70)
    targets = FCETargetBuilder()([word], [False], 160, 160)
    outputs = _perfect_outputs(targets)
    # Scores below the threshold: nothing.
    low = dict(outputs, text_prob=[t * 0.5 for t in outputs["text_prob"]])
    assert FCEPostprocessor(score_thr=0.6)(low, [{}])[0] == []
    # Score = text^alpha x centre^beta.
    half = dict(outputs, center_prob=[c * 0.5 for c in outputs["center_prob"]])
    (pred,) = FCEPostprocessor(beta=2.0, score_thr=0.2)(half, [{}])[0]
    assert pred.score == pytest.approx(0.25)
    # The word lies in the padding when the real image is 32 px: dropped.
    assert FCEPostprocessor()(outputs, [{"orig_size": (32, 32), "scale": (1.0, 1.0)}])[0] == []
    zero = {k: [torch.zeros_like(t) for t in v] for k, v in outputs.items()}
    assert FCEPostprocessor()(zero, [{}, {}][:1])[0] == []
    with pytest.raises(ValueError, match="metas"):
        FCEPostprocessor()(outputs, [{}, {}])


# --------------------------------------------------------------------------
# Model, loss, options


def _tiny_model(**options) -> Detector:
    torch.manual_seed(0)
    return Detector(
        build_parts(
            DetectorConfig(backbone="mobilenetv3_small", options={"neck_channels": 32, **options})
        )
    )


def _batch(model, size: int = 128, n: int = 2):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(n, 3, size, size)).astype(np.float32))
    k = size / 128
    words = [
        [rect(8, 8, 60, 24) * k, rotated_quad(80, 90, 60, 20, 20) * k],
        [arc_band(64, 80, 40, 14, 30, 150) * k],
    ]
    per = [
        model.target_builder(words[i % 2], [False] * len(words[i % 2]), size, size)
        for i in range(n)
    ]
    return images, {k: torch.from_numpy(np.stack([t[k] for t in per])) for k in per[0]}


def test_forward_outputs_one_map_per_level_and_a_trainable_loss():
    model = _tiny_model()
    assert model.in_stages == (1, 2, 3)
    assert model.neck.in_channels == [24, 48, 96]
    images, targets = _batch(model)
    model.train()
    out = model(images, targets)
    assert [tuple(c.shape) for c in out["cls_logits"]] == [
        (2, 4, 16, 16),
        (2, 4, 8, 8),
        (2, 4, 4, 4),
    ]
    assert [tuple(r.shape) for r in out["reg"]] == [(2, 22, 16, 16), (2, 22, 8, 8), (2, 22, 4, 4)]
    losses = out["losses"]
    assert set(losses) == {"loss", "loss_text", "loss_center", "loss_reg_x", "loss_reg_y"}
    assert all(torch.isfinite(v) for v in losses.values())
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    first = float(losses["loss"].detach())
    for _ in range(8):
        opt.zero_grad()
        loss = model(images, targets)["losses"]["loss"]
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert [tuple(t.shape) for t in out["text_prob"]] == [
        (2, 1, 16, 16),
        (2, 1, 8, 8),
        (2, 1, 4, 4),
    ]
    preds = model.postprocessor(out, [{}, {}])
    assert len(preds) == 2


def test_regression_loss_is_zero_for_perfect_coefficients():
    model = _tiny_model()
    _, targets = _batch(model)
    outputs = {
        "cls_logits": [torch.zeros(2, 4, *targets[f"fce_text_{i}"].shape[1:]) for i in range(3)],
        "reg": [targets[f"fce_coeff_{i}"].clone() for i in range(3)],
    }
    losses = model.loss(outputs, targets)
    assert float(losses["loss_reg_x"]) == 0.0 and float(losses["loss_reg_y"]) == 0.0
    # Uniform logits: ln 2 per pixel, on each of the three levels.
    assert float(losses["loss_text"]) == pytest.approx(3 * np.log(2), rel=1e-4)
    outputs["reg"] = [r + 1.0 for r in outputs["reg"]]
    assert float(model.loss(outputs, targets)["loss_reg_x"]) > 0


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"neck_chanels": 64}, "neck_chanels"),
        ({"neck_channels": 64.5}, "neck_channels"),
        ({"neck_channels": 10**9}, "neck_channels"),
        ({"fourier_degree": "5"}, "fourier_degree"),
        ({"strides": [8, 16]}, "strides"),
        ({"strides": "8,16,32"}, "strides"),
        ({"level_proportion_range": [[0, 0.3], [0.5, 0.2], [0.6, 1]]}, "level_proportion_range"),
        ({"center_ratio": 1.5}, "center_ratio"),
        ({"postprocess": [1, 2]}, "postprocess"),
        ({"postprocess": {"alpah": 1.0}}, "alpah"),
        ({"postprocess": {"output": "polygon"}}, "output"),
        ({"postprocess": {"nms_thr": -0.1}}, "nms_thr"),
    ],
)
def test_malformed_options_are_plugin_errors_naming_the_key(options, key):
    with pytest.raises(PluginError, match=key):
        build_parts(DetectorConfig(backbone="mobilenetv3_small", options=options))


def test_recipe_postprocess_goes_through_with_params():
    post = FCEPostprocessor()
    changed = post.with_params(output="quad", alpha=1.2, beta=1.0)
    assert (changed.output, changed.alpha, changed.beta, changed.strides) == (
        "quad",
        1.2,
        1.0,
        (8, 16, 32),
    )
    with pytest.raises(PluginError, match="strides"):
        post.with_params(strides=[4, 8, 16])
    spec = get_detector("fcenet")
    for name in ("default", "icdar2015", "ctw1500", "totaltext", "msra-td500", "synthtext-mini"):
        recipe = spec.recipe(name)
        post.with_params(**recipe["postprocess"])
        resolve_options(recipe["model"]["options"])


def test_head_convs_add_a_shared_relu_tower():
    plain = _tiny_model()
    tower = _tiny_model(head_convs=2)
    assert plain.head.tower is None  # mmocr's FCEHead: no extra names in the state dict
    extra = sum(p.numel() for p in tower.head.parameters()) - sum(
        p.numel() for p in plain.head.parameters()
    )
    assert extra == 2 * (32 * 32 * 9 + 32)
    images, _ = _batch(tower, size=64)
    out = tower.eval()(images)
    assert [tuple(r.shape) for r in out["reg"]] == [(2, 22, 8, 8), (2, 22, 4, 4), (2, 22, 2, 2)]


def test_parameter_counts():
    with torch.device("meta"):
        r50 = Detector(build_parts(DetectorConfig(backbone="resnet50")))

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    # FPN [512, 1024, 2048] -> 256 (with biases) and the two 3x3 head convs.
    assert count(r50.neck) == 256 * (512 + 1024 + 2048 + 3) + 3 * (256 * 256 * 9 + 256)
    assert count(r50.head) == (4 + 22) * (256 * 9 + 1)
    assert count(r50.backbone) == 23_508_032


# --------------------------------------------------------------------------
# Augmentations


def test_augmentations_are_registered_and_keep_polygons_on_the_image():
    from tcmbench.data.transforms import TrainTransform

    spec = get_detector("fcenet")
    transform = TrainTransform.from_recipe(spec.recipe("synthtext-mini"))
    image = np.zeros((352, 448, 3), np.uint8)
    words = [rect(40, 40, 200, 80), arc_band(300, 250, 80, 24, 30, 150)]
    for p in words:
        image[int(p[:, 1].min()) : int(p[:, 1].max()), int(p[:, 0].min()) : int(p[:, 0].max())] = (
            200
        )
    for draw in range(12):
        rng = np.random.default_rng(draw)
        out = transform(image, words, [False, True], rng)
        assert out.image.shape == (3, 320, 320)  # square for batching
        assert len(out.polygons) == len(out.ignores) >= 1
        for p in out.polygons:
            assert p.dtype == np.float32 and p.shape[1] == 2
            assert (p >= -1).all() and (p <= 321).all()
        again = transform(image, words, [False, True], np.random.default_rng(draw))
        assert np.array_equal(out.image, again.image)  # a pure function of the rng


def test_crop_instances_keeps_the_anchor_word_whole():
    from tcmbench_fcenet.augment import CropInstances, RotateInstances, SquareResizePad

    image = np.zeros((200, 300, 3), np.uint8)
    word = rect(100, 80, 180, 110)
    crop = CropInstances(prob=1.0, min_side_ratio=0.3)
    for seed in range(10):
        img, polys, _ = crop(image, [word], [False], np.random.default_rng(seed))
        assert img.shape[0] >= 60 and img.shape[1] >= 90
        (p,) = polys
        assert shapely.Polygon(p).area == pytest.approx(80 * 30)
    rotated, polys, _ = RotateInstances(prob=1.0, max_angle=30)(
        image, [word], [False], np.random.default_rng(0)
    )
    assert rotated.shape[0] >= 200 and rotated.shape[1] >= 300
    assert shapely.Polygon(polys[0]).area == pytest.approx(80 * 30, rel=1e-4)
    square, polys, _ = SquareResizePad(size=128, pad_ratio=1.0)(
        image, [word], [False], np.random.default_rng(0)
    )
    assert square.shape == (128, 128, 3)
    # Keep-ratio resize to 128 x round(200 * 128 / 300) = 128 x 85, then pad.
    assert shapely.Polygon(polys[0]).area == pytest.approx(
        80 * 30 * (128 / 300) * (85 / 200), rel=1e-4
    )
    with pytest.raises(ValueError):
        SquareResizePad(size=0)


# --------------------------------------------------------------------------
# TCM


@pytest.fixture(scope="module")
def tcm_fcenet():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = get_detector("fcenet")
    return get_plugin_manager().hook.build_detector(
        spec=spec, config=DetectorConfig(backbone="resnet50", tcm=RANDOM_CLIP)
    )


def test_tcm_fcenet_concatenates_the_score_map_to_c5_and_adds_the_aux_loss(tcm_fcenet):
    model = tcm_fcenet.train()
    assert model.neck.in_channels == [512, 1024, 2049]
    images, targets = _batch(model, size=64)
    assert targets["tcm_target"].shape == (2, 2, 2)
    out = model(images, targets)
    assert out["tcm_score_logits"].shape == (2, 1, 2, 2)
    losses = out["losses"]
    assert "loss_tcm" in losses and torch.isfinite(losses["loss_tcm"])
    assert torch.allclose(
        losses["loss"],
        sum(
            losses[k] for k in ("loss_text", "loss_center", "loss_reg_x", "loss_reg_y", "loss_tcm")
        ),
    )


def test_tcm_optimizer_step_freezes_text_encoder_and_trains_prompts(tcm_fcenet):
    model = tcm_fcenet.train()
    ft = model.feature_transform
    base_lr = 1e-2
    groups = model.param_groups(base_lr, weight_decay=1e-4)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert all(by_param[id(p)] == pytest.approx(0.1 * base_lr) for p in model.backbone.parameters())
    assert not any(id(p) in by_param for p in ft.text_encoder.parameters())
    assert by_param[id(ft.learnable_context)] == pytest.approx(base_lr)
    assert all(by_param[id(p)] == pytest.approx(base_lr) for p in model.neck.parameters())
    assert all(by_param[id(p)] == pytest.approx(base_lr) for p in model.head.parameters())
    text_before = {k: v.detach().clone() for k, v in ft.text_encoder.state_dict().items()}
    ctx_before = ft.learnable_context.detach().clone()
    lg_before = ft.language_prompt_generator.fc2.weight.detach().clone()
    backbone_before = model.backbone.layer4[0].conv1.weight.detach().clone()
    head_before = model.head.out_conv_reg.weight.detach().clone()
    opt = torch.optim.SGD(groups, lr=base_lr)
    opt.zero_grad()
    images, targets = _batch(model, size=64)
    model(images, targets)["losses"]["loss"].backward()
    assert ft.learnable_context.grad is not None and ft.learnable_context.grad.abs().sum() > 0
    assert all(p.grad is None for p in ft.text_encoder.parameters())
    opt.step()
    for k, v in ft.text_encoder.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert not torch.equal(ft.learnable_context, ctx_before)
    assert not torch.equal(ft.language_prompt_generator.fc2.weight, lg_before)
    assert not torch.equal(model.backbone.layer4[0].conv1.weight, backbone_before)
    assert not torch.equal(model.head.out_conv_reg.weight, head_before)


def _official_keys() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        out[name] = tuple(int(s) for s in shape.split(",") if s)
    return out


def test_official_tcm_fcenet_keys_map_onto_the_model_one_to_one():
    from tcmbench.tcm.importer import map_official_keys

    pytest.importorskip("open_clip")
    keys = _official_keys()
    assert len(keys) == 663
    mapping, unmapped = map_official_keys(list(keys), "fcenet")
    assert unmapped == []
    with torch.device("meta"):
        own = (
            get_plugin_manager()
            .hook.build_detector(
                spec=get_detector("fcenet"), config=DetectorConfig(tcm=RANDOM_CLIP)
            )
            .state_dict()
        )
    assert sorted(mapping.values()) == sorted(own)  # every parameter and buffer, once
    for official, ours in mapping.items():
        assert tuple(own[ours].shape) == keys[official], official


@pytest.mark.slow
def test_evaluate_tcm_fcenet_checkpoint_end_to_end(tmp_path):
    """``tcmbench evaluate --plugin fcenet --tcm`` on a checkpoint with
    random CLIP weights (no download), on a tiny ICDAR 2015-layout set."""
    from tiny_data import make_ic15_folder

    from tcmbench.hub import checkpoints as hub

    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    torch.manual_seed(0)
    spec = get_detector("fcenet")
    config = DetectorConfig(backbone="resnet50", tcm=RANDOM_CLIP)
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    weights = hub.save_checkpoint(
        tmp_path / "tcm-fcenet", model, spec, config, recipe=spec.recipe("synthtext-mini")
    )
    del model
    out = tmp_path / "result.json"
    cmd = [
        sys.executable, "-m", "tcmbench", "evaluate", "--plugin", "fcenet", "--tcm",
        "--dataset", "icdar2015", "--data-root", str(data), "--weights", str(weights),
        "--recipe", "synthtext-mini", "--json", str(out), "--no-cache", "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["protocol"] == "icdar2015"
    for key in ("precision", "recall", "hmean"):
        assert 0.0 <= result[key] <= 1.0


@pytest.mark.slow
def test_shipped_weights_detect_synthtext_mini(tmp_path):
    """`tcmbench evaluate --plugin fcenet --dataset synthtext-mini` without
    --weights uses the checkpoint shipped in the package (here on the first
    20 test images; the 200-image figure is in docs/benchmarks/training.md)."""
    from tcmbench.cli import main
    from tcmbench.hub.checkpoints import embedded_weights

    folder = embedded_weights(get_detector("fcenet"))
    assert folder is not None, "plugins/tcmbench_fcenet/weights/ holds no checkpoint"
    assert (folder / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    out = tmp_path / "r.json"
    args = ["evaluate", "--plugin", "fcenet", "--dataset", "synthtext-mini", "--limit", "20"]
    main([*args, "--device", "cpu", "--no-progress", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert doc["weights"] == str(folder) and doc["images"] == 20
    assert doc["hmean"] >= 0.6


@pytest.mark.slow
def test_synthetic_official_tcm_fcenet_checkpoint_imports_and_loads(tmp_path):
    """A checkpoint with exactly the official names and shapes (random
    tensors, saved as mmcv does) goes through `tcmbench import tcm-official
    --plugin fcenet` and loads back as a TCM-FCENet with every tensor."""
    from safetensors.torch import load_file

    from tcmbench.cli import main
    from tcmbench.hub.checkpoints import load_checkpoint, read_checkpoint_meta
    from tcmbench.tcm.importer import map_official_keys

    pytest.importorskip("open_clip")
    torch.set_num_threads(1)
    keys = _official_keys()
    gen = torch.Generator().manual_seed(1)
    state = {
        name: torch.tensor(1500)
        if name.endswith("num_batches_tracked")
        else torch.randn(shape, generator=gen)
        for name, shape in keys.items()
    }
    ckpt = tmp_path / "tcm_fce_ic15.pth"
    torch.save({"meta": {"epoch": 1800}, "state_dict": state}, ckpt)
    out = tmp_path / "imported"
    main(["import", "tcm-official", str(ckpt), "--plugin", "fcenet", "--out", str(out)])
    meta, weights = read_checkpoint_meta(out)
    assert meta["plugin"] == "fcenet"
    assert meta["architecture"]["tcm"]["input_resolution"] == 800  # from the 626-row attnpool
    saved = load_file(str(weights))
    mapping, unmapped = map_official_keys(list(keys), "fcenet")
    assert unmapped == [] and len(saved) == len(state)
    for official, ours in mapping.items():
        assert torch.equal(saved[ours], state[official]), official
    own = load_checkpoint(out, plugin="fcenet", expect_tcm=True).model.state_dict()
    for official in ("neck.lateral_convs.2.conv.weight", "bbox_head.out_conv_reg.bias", "contexts"):
        assert torch.equal(own[mapping[official]], state[official]), official
