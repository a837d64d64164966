"""FCENet as its authors' code runs it (issue 17, rows 2, 8, 9, 10, 11).

One test (or a few, for row 9's four augmentations) per row of
``tcmbench_fcenet.fidelity.FIDELITY``, named after it: hand-made inputs and
an expected value worked out by hand from mmocr 0.x's algorithm (v0.4.1,
the copy bundled with wenwenyu/TCM), the working in each docstring.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file
from tcmbench_fcenet.augment import (
    RandomCropFlip,
    RotateInstances,
    SquareResizePad,
    drop_cut_polygons,
    jitter,
)
from tcmbench_fcenet.fidelity import FIDELITY
from tcmbench_fcenet.model import resolve_options
from tcmbench_fcenet.postprocess import FCEPostprocessor
from tcmbench_fcenet.targets import FCETargetBuilder
from tiny_data import make_samples

from tcmbench.contract.registry import get_detector
from tcmbench.data.transforms import build_augmentation
from tcmbench.errors import PluginError, TcmbenchError
from tcmbench.train.hyper import TrainConfig, resolve_hyper
from tcmbench.train.recipe_choice import build_detector_config
from tcmbench.train.schedule import PolyLR
from tcmbench.train.trainer import Trainer

#: Recipes that follow the authors' code (every one but synthtext-mini).
OFFICIAL = (
    "default",
    "icdar2015",
    "ctw1500",
    "totaltext",
    "msra-td500",
    "fce-paper-ctw1500",
    "fce-paper-icdar2015",
    "tcm-pretrain",
)
IC15 = ("icdar2015", "fce-paper-icdar2015", "tcm-pretrain")


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def recipe(name: str) -> dict:
    return get_detector("fcenet").recipe(name)


def test_every_fidelity_row_has_a_test_named_after_it() -> None:
    names = set(globals())
    for row in {r.row for r in FIDELITY}:
        assert any(n.startswith(f"test_row{row}_") for n in names), row
    assert get_detector("fcenet").fidelity == FIDELITY


# ------------------------------------------------------------------ row 2


def test_row2_fce_ic15_outputs_50_point_polygons() -> None:
    """mmocr 0.x's FCEPostprocessor, asked for ``text_repr_type='quad'``,
    fills ``new_boundaries`` with minAreaRect boxes and returns
    ``boundaries``: the 50-point contours. So the IC15 recipes output
    polygons.

    Hand-made maps: stride 8, one candidate pixel (x 3, y 2) of level 0
    with P(text) = P(centre) = 0.9; score = 0.9^1.2 x 0.9^1.0 = 0.7931 >
    0.3 (alpha 1.2, beta 1.0 of the IC15 recipes). Its coefficients: c_0
    relative 0 (so the centre is the pixel, (3, 2) x 8 = (24, 16) px) and
    Re c_1 = 1.5 (radius 1.5 x 8 = 12 px), all others 0. mmocr's
    ``fourier2poly`` gives point m = c_0 + c_1 exp(2 pi i m / 50):
    point 0 = (36, 16), point 25 = (12, 16), point m = (24 + 12 cos(2 pi m
    / 50), 16 + 12 sin(2 pi m / 50)). ``output: quad`` (the textbook
    choice) gives 4 corners instead.
    """
    for name in IC15:
        assert recipe(name)["postprocess"]["output"] == "poly", name
    shapes = [(8, 8), (4, 4), (2, 2)]
    text = [np.zeros((1, 1, *s), np.float32) for s in shapes]
    center = [np.zeros((1, 1, *s), np.float32) for s in shapes]
    reg = [np.zeros((1, 22, *s), np.float32) for s in shapes]
    text[0][0, 0, 2, 3] = center[0][0, 0, 2, 3] = 0.9
    reg[0][0, 6, 2, 3] = 1.5  # Re c_1 (layout: Re c_-5..c_5, Im c_-5..c_5)
    outputs = {"text_prob": text, "center_prob": center, "reg": reg}
    meta = [{"orig_size": (64, 64), "scale": (1.0, 1.0)}]
    post = FCEPostprocessor().with_params(**recipe("icdar2015")["postprocess"])
    (preds,) = post(outputs, meta)
    (pred,) = preds
    assert pred.polygon.shape == (50, 2)
    assert pred.score == pytest.approx(0.9**1.2 * 0.9)
    m = np.arange(50)
    expected = np.stack(
        [24 + 12 * np.cos(2 * np.pi * m / 50), 16 + 12 * np.sin(2 * np.pi * m / 50)], axis=1
    )
    assert np.allclose(pred.polygon, expected, atol=1e-4)
    assert np.allclose(pred.polygon[[0, 25]], [[36, 16], [12, 16]], atol=1e-4)
    (quads,) = post.with_params(output="quad")(outputs, meta)
    assert quads[0].polygon.shape == (4, 2)


# ------------------------------------------------------------------ row 8


def _train_one_step(tmp_path: Path, name: str) -> dict[str, Any]:
    """The recipe's train_loop (norm_eval) on a small FCENet, one step."""
    spec = get_detector("fcenet")
    r = recipe(name)
    r["model"] = {
        "backbone": "mobilenetv3_small",
        "pretrained_backbone": False,
        "options": {
            "neck_channels": 16,
            "level_proportion_range": [[0, 0.4], [0.3, 0.7], [0.6, 1]],
        },
    }
    r["train"] = {"augment": [{"name": "random_crop", "size": [64, 64]}], "pad_divisor": 32}
    r["train_loop"] = {**r.get("train_loop", {}), "workers": 0}
    r["optimizer"] = {"name": "sgd", "lr": 0.01, "weight_decay": 0.0, "momentum": 0.9}
    cfg = TrainConfig(
        datasets=["tiny"],
        output=str(tmp_path / name),
        device="cpu",
        workers=0,
        progress=False,
        tensorboard=False,
        steps=1,
        batch_size=2,
        eval_every=0,
        seed=1,
    )
    samples = make_samples(tmp_path / "data", n=4)
    config = build_detector_config(TrainConfig(datasets=["tiny"]), r)
    Trainer(spec, config, r, cfg, samples, []).fit()
    return load_file(str(tmp_path / name / "final" / "model.safetensors"))


@pytest.mark.slow
def test_row8_fce_norm_eval_freezes_bn_statistics(tmp_path: Path) -> None:
    """mmocr's fcenet_r50dcnv2_fpn.py sets ``norm_eval=True`` (CTW1500),
    fcenet_r50_fpn.py ``norm_eval=False`` (IC15). With norm_eval the
    BatchNorm layers stay in eval mode while training, so after a training
    step a fresh model's running statistics are still PyTorch's initial
    ones: mean 0, variance 1 (in train mode one step would make each mean
    0.1 x its batch mean, momentum 0.1: the IC15 recipe's resolved
    norm_eval is False, so it would).
    """
    assert recipe("fce-paper-ctw1500")["train_loop"]["norm_eval"] is True
    assert resolve_hyper(TrainConfig(steps=1), recipe("fce-paper-ctw1500"), 8, 1).norm_eval
    assert not resolve_hyper(TrainConfig(steps=1), recipe("fce-paper-icdar2015"), 8, 1).norm_eval
    frozen = _train_one_step(tmp_path, "fce-paper-ctw1500")
    means = [v for k, v in frozen.items() if k.endswith("running_mean")]
    variances = [v for k, v in frozen.items() if k.endswith("running_var")]
    assert means and len(means) == len(variances)
    assert all(torch.equal(v, torch.zeros_like(v)) for v in means)
    assert all(torch.equal(v, torch.ones_like(v)) for v in variances)


# ------------------------------------------------------------------ row 9


def test_row9_recipes_run_mmocr_fcenet_pipeline() -> None:
    """mmocr's fcenet_pipeline.py, in order: ColorJitter (brightness
    32/255, saturation 0.5, contrast 0.5), RandomScaling (800, 3/4..5/2),
    RandomCropFlip (crop_ratio 0.5, min_area_ratio 0.2, its default
    pad_ratio 0.1), RandomCropPolyInstances (0.8, 0.3), rotation (0.5, 30)
    and SquareResizePad (800, 0.6) with ``pad_with_fixed_color=False``,
    RandomFlip 0.5. synthtext-mini keeps tcmbench's steps."""
    expected = [
        ("fce_color_jitter", {"brightness": 32.0 / 255, "contrast": 0.5, "saturation": 0.5}),
        ("fce_random_scaling", {"size": 800, "scale": [0.75, 2.5]}),
        (
            "fce_random_crop_flip",
            {"prob": 0.5, "min_area_ratio": 0.2, "pad_ratio": 0.1, "iter_num": 1},
        ),
        ("fce_crop_instances", {"prob": 0.8, "min_side_ratio": 0.3, "cut": "drop"}),
        ("fce_rotate", {"prob": 0.5, "max_angle": 30.0, "fill": "patch"}),
        (
            "fce_square_resize_pad",
            {"size": 800, "pad_ratio": 0.6, "fill": "patch", "position": "center"},
        ),
        ("hflip", {"prob": 0.5}),
    ]
    for name in OFFICIAL:
        steps = [
            (s["name"], {k: v for k, v in s.items() if k != "name"})
            for s in recipe(name)["train"]["augment"]
        ]
        assert steps == expected, name
        for step in recipe(name)["train"]["augment"]:
            build_augmentation(step)
    plain = [s["name"] for s in recipe("synthtext-mini")["train"]["augment"]]
    assert "fce_random_crop_flip" not in plain and "color_jitter" in plain


def test_row9_color_jitter_contrast_blends_with_the_mean_grey() -> None:
    """torchvision's contrast (PIL ``ImageEnhance.Contrast``): out = m + f x
    (pixel - m), m the rounded mean luma, f ~ U(0.5, 1.5) for contrast 0.5.
    A two-pixel grey image (100, 200): m = 150, so out = 150 -+ 50 f,
    rounded; f is the generator's first draw (brightness and saturation 0,
    so contrast is the only operation)."""
    image = np.array([[[100, 100, 100], [200, 200, 200]]], np.uint8)
    f = np.random.default_rng(5).uniform(0.5, 1.5)
    out = jitter(image, np.random.default_rng(5), 0.0, 0.5, 0.0)
    assert out[0, :, 0].tolist() == [round(150 - 50 * f), round(150 + 50 * f)]
    assert (out == out[..., :1]).all()  # grey stays grey


def test_row9_random_crop_flip_mirrors_a_box_that_cuts_no_word() -> None:
    """RandomCropFlip on a 10 x 10 image, pad_ratio 0 (no margin),
    min_area_ratio 0.8 (box area >= 80 px), one word rect(1, 1, 9, 9):
    its min-area rectangle marks columns and rows 1..8 ([1, 9)), leaving
    {0, 9} free on each axis; of the pairs drawn only (0, 9) has width > 0,
    and 9 x 9 = 81 >= 80, so the only box is (0, 0, 9, 9), which holds the
    word whole. Pixels [0:9, 0:9] are mirrored left-right, top-bottom or
    both, and the word follows, x -> 0 + 9 - x, y -> 9 - y: x or y
    range [1, 9] -> [0, 8]. Row and column 9 never change."""
    image = np.arange(300, dtype=np.uint8).reshape(10, 10, 3)
    word = rect(1, 1, 9, 9)
    step = RandomCropFlip(prob=1.0, min_area_ratio=0.8, pad_ratio=0.0)
    seen = set()
    for seed in range(30):
        out, (poly,), _ = step(image, [word], [False], np.random.default_rng(seed))
        x_range = (float(poly[:, 0].min()), float(poly[:, 0].max()))
        y_range = (float(poly[:, 1].min()), float(poly[:, 1].max()))
        flip_x, flip_y = x_range == (0.0, 8.0), y_range == (0.0, 8.0)
        assert x_range in ((1.0, 9.0), (0.0, 8.0)) and y_range in ((1.0, 9.0), (0.0, 8.0))
        box = image[:9, :9][:: -1 if flip_y else 1, :: -1 if flip_x else 1]
        assert np.array_equal(out[:9, :9], box)
        assert np.array_equal(out[9], image[9]) and np.array_equal(out[:, 9], image[:, 9])
        seen.add((flip_x, flip_y))
    assert {(True, False), (False, True), (True, True)} <= seen


def test_row9_instance_crop_drops_cut_words() -> None:
    """mmocr RandomCropPolyInstances after cropping to (x1, y1, x2, y2) =
    (10, 10, 50, 40), w = 40, h = 30: a polygon is kept when every point
    shifted by (-10, -10) has -4 < x < 44 and -4 < y < 34, then clamped to
    [0, 40] x [0, 30]; every other one is dropped.
    - rect(12, 12, 30, 20) -> (2, 2, 20, 10), kept whole;
    - rect(45, 15, 53, 25) -> x up to 43 < 44: kept, clamped to (35, 5, 40, 15);
    - rect(40, 15, 70, 25) -> x up to 60: cut, dropped (tcmbench's ``clip``
      would keep (30, 5, 40, 15));
    - rect(60, 15, 70, 25): outside, dropped."""
    polys = [rect(12, 12, 30, 20), rect(45, 15, 53, 25), rect(40, 15, 70, 25), rect(60, 15, 70, 25)]
    kept, ign = drop_cut_polygons(polys, [False, True, False, False], (10, 10, 50, 40))
    assert ign == [False, True]
    assert np.array_equal(kept[0], rect(2, 2, 20, 10))
    assert np.array_equal(kept[1], rect(35, 5, 40, 15))


def test_row9_padding_is_an_image_patch() -> None:
    """mmocr pads the rotation canvas and the square with a patch of the
    image stretched over it (``pad_with_fixed_color=False``) and centres
    the square's image. On a uniform (77, 88, 99) image of 18 x 36:
    - SquareResizePad(36, pad 1.0, patch, center): no resize (long side
      36), image rows (36 - 18) // 2 = 9 .. 26, so the word moves by
      (0, 9); the padding rows 0..8 and 27..35 are the patch colour
      (77, 88, 99) -- with ``zeros``, 0;
    - rotation with ``patch``: warped image + patch x (1 - coverage)
      = 77 a + 77 (1 - a) = 77 everywhere, corners included; with
      ``zeros`` the corners are 0."""
    colour = np.array([77, 88, 99], np.uint8)
    image = np.broadcast_to(colour, (18, 36, 3)).copy()
    word = rect(4, 4, 20, 10)
    square, (moved,), _ = SquareResizePad(36, 1.0, "patch", "center")(
        image, [word], [False], np.random.default_rng(0)
    )
    assert square.shape == (36, 36, 3)
    assert (square == colour).all()
    assert np.array_equal(moved, word + np.array([0, 9], np.float32))
    zeros, _, _ = SquareResizePad(36, 1.0, "zeros", "center")(
        image, [word], [False], np.random.default_rng(0)
    )
    assert (zeros[:9] == 0).all() and (zeros[27:] == 0).all() and (zeros[9:27] == colour).all()
    rotated, _, _ = RotateInstances(1.0, 30.0, "patch")(
        image, [word], [False], np.random.default_rng(0)
    )
    assert rotated.shape[0] > 18 and rotated.shape[1] > 36
    assert np.abs(rotated.astype(int) - colour.astype(int)).max() <= 1
    black, _, _ = RotateInstances(1.0, 30.0, "zeros")(
        image, [word], [False], np.random.default_rng(0)
    )
    assert (black[0, 0] == 0).all()


# ------------------------------------------------------------------ row 10


def test_row10_center_region_band_between_sidelines() -> None:
    """mmocr ``generate_center_region_mask`` on a word of 40 x 20 level
    px, rect(2, 4, 42, 24) (image polygon x 8, stride 8):
    - head and tail: edges p0p1 and p2p3 have slope 0 (horizontal), the
      vertical pair is 40 long, not > 2 x 80: the ends are the vertical
      edges; sidelines y = 4 and y = 24, x 2 -> 42;
    - resampled every 4 px: n = int(40 / 4) + 1 = 11 points, x = 2, 6, ..,
      42; centre line y = 14;
    - ends: int((20 / 4) // 4) = 1 point each: x = 6 .. 38;
    - band: 14 -+ 0.3 x 10 = 11 .. 17;
    so the centre pixels are columns 6..38 x rows 11..17: 33 x 7 = 231.
    A word 12 px tall, rect(2, 4, 42, 16): ends int(3 // 4) = 0 (nothing
    cut), band 10 -+ 1.8 = 8.2 .. 11.8, truncated to 8 .. 11: columns 2..42
    x rows 8..11 = 164. tcmbench's ``offset`` cuts the first word's ends
    by 0.35 x 20 = 7 px (columns 9..35)."""
    for name in OFFICIAL:
        assert recipe(name)["model"]["options"]["center_region"] == "sidelines", name
    assert recipe("synthtext-mini")["model"]["options"]["center_region"] == "offset"
    ranges = ((0.0, 1.0), (2.0, 3.0), (4.0, 5.0))  # every word on level 0
    builder = FCETargetBuilder(level_proportion_range=ranges, center_region="sidelines")
    for word, cols, rows in (
        (rect(2, 4, 42, 24), (6, 38), (11, 17)),
        (rect(2, 4, 42, 16), (2, 42), (8, 11)),
    ):
        center = builder([word * 8], [False], 512, 512)["fce_center_0"]
        ys, xs = np.nonzero(center)
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (*cols, *rows)
        assert center.sum() == (cols[1] - cols[0] + 1) * (rows[1] - rows[0] + 1)
    offset = FCETargetBuilder(level_proportion_range=ranges, center_region="offset")
    xs = np.nonzero(offset([rect(2, 4, 42, 24) * 8], [False], 512, 512)["fce_center_0"])[1]
    assert (xs.min(), xs.max()) == (9, 35)


# ------------------------------------------------------------------ row 11


def test_row11_ic15_schedule_1800_epochs() -> None:
    """The official TCM-FCENet IC15 config: ``total_epochs = 1800``, poly
    0.9 per epoch from 1e-3 to 1e-7. On ICDAR 2015's 1000 training images
    at batch 16: 1800 x 1000 / 16 = 112500 steps, 62.5 per epoch. At
    epoch 1500 (step 93750) the rate is (1e-3 - 1e-7) x (1 - 1500 /
    1800)^0.9 + 1e-7 = 0.0009999 x 0.19937 + 1e-7 = 1.9945e-4, not the
    1e-7 floor a 1500-epoch schedule reaches there."""
    r = recipe("icdar2015")
    assert r["epochs"] == 1800
    hyper = resolve_hyper(TrainConfig(), r, 1000, 1)
    assert hyper.total_steps == 112500 and hyper.lr_by == "epoch"
    param = torch.nn.Parameter(torch.zeros(1))
    sched = PolyLR(
        torch.optim.SGD([param], lr=hyper.lr),
        hyper.total_steps,
        hyper.lr_power,
        hyper.min_lr,
        hyper.lr_by,
        steps_per_epoch=1000 / 16,
    )
    expected = (1e-3 - 1e-7) * (1 - 1500 / 1800) ** 0.9 + 1e-7
    assert sched.lr_of(1e-3, 93750) == pytest.approx(expected)
    assert expected == pytest.approx(1.9945e-4, rel=1e-4)
    assert math.isclose(sched.lr_of(1e-3, 112499), 1e-7 + (1e-3 - 1e-7) * (1 / 1800) ** 0.9)
    assert recipe("fce-paper-icdar2015")["epochs"] == 1500  # mmocr's own IC15 config


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"name": "fce_rotate", "fill": "black"}, "fill must be one of zeros, patch"),
        ({"name": "fce_square_resize_pad", "position": "left"}, "position must be one of"),
        ({"name": "fce_crop_instances", "cut": "keep"}, "cut must be one of clip, drop"),
        ({"name": "fce_random_crop_flip", "prob": 2}, "prob must be in"),
        ({"name": "fce_color_jitter", "contrast": -1}, "contrast must be in"),
        ({"name": "fce_color_jitter", "hue": 0.1}, "unknown parameter"),
    ],
)
def test_bad_augmentation_values_are_one_line(step: dict, message: str) -> None:
    with pytest.raises(TcmbenchError, match=message) as info:
        build_augmentation(step)
    assert "\n" not in str(info.value)


def test_bad_center_region_and_output_are_one_line() -> None:
    with pytest.raises(PluginError, match="center_region") as info:
        resolve_options({"center_region": "band"})
    assert "\n" not in str(info.value) and "sidelines" in str(info.value)
    with pytest.raises(PluginError, match="center_resample_step"):
        resolve_options({"center_resample_step": 0})
    with pytest.raises(PluginError, match="output") as info:
        FCEPostprocessor().with_params(output="polygon")
    assert "\n" not in str(info.value)
