"""The PANet plugin: targets, neck / head, loss, pixel aggregation and
post-processing, augmentations, options, TCM (aux loss, LR factors,
official checkpoint keys) and the CLI end to end.

Geometry tests use perfect maps rendered from hand-made polygons at the
head's 1/4 resolution (the same sampling the loss uses); TCM tests build
one TCM-PAN with random CLIP weights on 64-px inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

torch = pytest.importorskip("torch")

from tcmbench_pan.augment import CropInstances, ScaleJitter
from tcmbench_pan.loss import (
    PANLoss,
    aggregation_discrimination,
    dice_loss_with_logits,
    downsample_targets,
)
from tcmbench_pan.model import build_postprocessor, resolve_options
from tcmbench_pan.neck import FPEMFFM
from tcmbench_pan.postprocess import PANPostprocessor, pixel_aggregate
from tcmbench_pan.targets import PANTargetBuilder, area_perimeter, kernel_polygon

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.errors import PluginError, TcmbenchError

KEYS_FILE = Path(__file__).parent / "data" / "tcm_official_keys_pan.txt"
RANDOM = TCMConfig(clip_pretrained=None)


def rect(cx: float, cy: float, w: float, h: float, angle: float = 0.0) -> np.ndarray:
    return cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)


def arc(cx: float, cy: float, r_out: float, r_in: float, n: int = 8) -> np.ndarray:
    """A curved word: the upper half ring between two radii (2n points)."""
    t = np.linspace(0.0, np.pi, n)
    outer = np.stack([cx + r_out * np.cos(t), cy - r_out * np.sin(t)], axis=1)
    inner = np.stack([cx + r_in * np.cos(t[::-1]), cy - r_in * np.sin(t[::-1])], axis=1)
    return np.concatenate([outer, inner]).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    return pa.intersection(pb).area / pa.union(pb).area


def perfect_outputs(polys: list[np.ndarray], height: int, width: int) -> dict[str, np.ndarray]:
    """The maps a perfect PAN would output for ``polys``: targets built by
    the plugin, sampled at 1/4 like the loss does, logits +-10, and a
    one-hot-ish embedding 4 apart per instance."""
    t = PANTargetBuilder(shrink_ratio=0.5, min_text_size=4)(
        polys, [False] * len(polys), height, width
    )
    down = downsample_targets(
        {k: torch.from_numpy(v)[None] for k, v in t.items()}, (height // 4, width // 4)
    )
    text, kernel = down["gt_text"][0].numpy(), down["gt_kernel"][0].numpy()
    emb = np.zeros((1, 4, *text.shape), np.float32)
    for i in range(1, int(text.max()) + 1):
        emb[0, i % 4][text == i] = 4.0 * (1 + i // 4)
    return {
        "text_logits": np.where(text > 0, 10.0, -10.0)[None, None].astype(np.float32),
        "kernel_logits": np.where(kernel > 0, 10.0, -10.0)[None, None].astype(np.float32),
        "embedding": emb,
    }


def build(tcm: TCMConfig | None = None, device: str = "meta", **kwargs):
    config = DetectorConfig(tcm=tcm, **kwargs)
    with torch.device(device):
        return get_plugin_manager().hook.build_detector(spec=get_detector("pan"), config=config)


# ---------------------------------------------------------------- plugin


def test_registered_and_torch_free():
    code = (
        "import sys, tcmbench_pan\n"
        "from tcmbench.contract.registry import augmentations, detectors\n"
        "assert 'pan' in detectors()\n"
        "assert {'pan_scale_jitter', 'pan_crop_instances'} <= set(augmentations())\n"
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- targets


def test_targets_on_hand_made_polygons():
    big = rect(60, 40, 80, 30)  # axis aligned: x 20..100, y 25..55
    tilted = rect(150, 100, 90, 24, 30)
    ignored = rect(60, 100, 40, 20)
    tiny = rect(150, 30, 40, 3)  # thinner than min_text_size
    t = PANTargetBuilder(shrink_ratio=0.5, min_text_size=8)(
        [big, tilted, ignored, tiny], [False, False, True, False], 128, 200
    )
    assert set(t) == {"gt_text", "gt_kernel", "gt_mask"}
    assert all(v.shape == (128, 200) and v.dtype == np.float32 for v in t.values())
    text, kernel, mask = t["gt_text"], t["gt_kernel"], t["gt_mask"]
    # Instances are labelled 1, 2 in order; ignored / tiny ones get no id.
    assert set(np.unique(text)) == {0.0, 1.0, 2.0}
    assert set(np.unique(kernel)) == {0.0, 1.0, 2.0}
    # The text map is not shrunk: it covers the polygon (81 x 31 pixel grid).
    assert (text == 1).sum() == pytest.approx(81 * 31, rel=0.02)
    # The kernel is the polygon shrunk by D = A (1 - 0.5^2) / L, inside its text.
    d = 80 * 30 * 0.75 / (2 * (80 + 30))
    assert (kernel == 1).sum() == pytest.approx((81 - 2 * d) * (31 - 2 * d), rel=0.08)
    assert np.all(text[kernel > 0] == kernel[kernel > 0])
    # Don't-care: the ignored and the tiny polygon, nothing else.
    assert mask[100, 60] == 0 and mask[30, 150] == 0
    assert mask[40, 60] == 1 and mask[5, 5] == 1
    assert text[100, 60] == 0 and text[30, 150] == 0


def test_kernel_polygon_and_degenerate_input():
    poly = rect(50, 50, 60, 20)
    shrunk = kernel_polygon(poly, 0.5)
    area, perimeter = area_perimeter(poly)
    d = area * 0.75 / perimeter
    assert area_perimeter(shrunk)[0] == pytest.approx((60 - 2 * d) * (20 - 2 * d), rel=0.02)
    assert kernel_polygon(poly, 1.0) is poly
    builder = PANTargetBuilder()
    nan_poly = np.full((4, 2), np.nan, np.float32)
    line = np.array([[0, 0], [10, 0], [20, 0]], np.float32)
    t = builder([nan_poly, line], [False, False], 32, 32)
    assert t["gt_text"].max() == 0 and t["gt_mask"].min() == 0  # the line is don't-care
    with pytest.raises(ValueError, match="ignore flags"):
        builder([poly], [], 32, 32)
    with pytest.raises(ValueError, match="shrink_ratio"):
        PANTargetBuilder(shrink_ratio=0.0)


def test_downsampling_keeps_instance_ids():
    """Nearest sampling at the centre of each 4x4 block: every value of the
    1/4 map is a real id (no 1.5 between ids 1 and 2), taken at row / col
    4 i + 2."""
    ids = np.zeros((64, 64), np.float32)
    ids[:, 10:30] = 1.0
    ids[:, 30:50] = 2.0
    ids[40:, :] = 7.0
    t = {k: torch.from_numpy(ids)[None] for k in ("gt_text", "gt_kernel", "gt_mask")}
    down = downsample_targets(t, (16, 16))["gt_text"][0].numpy()
    assert set(np.unique(down)) <= {0.0, 1.0, 2.0, 7.0}
    assert np.array_equal(down, ids[2::4, 2::4])


# ---------------------------------------------------------------- network


def test_fpem_ffm_shapes_and_names():
    neck = FPEMFFM([16, 24, 40, 49], channels=8, repeats=2)
    feats = [torch.randn(2, c, 32 // s, 32 // s) for c, s in zip([16, 24, 40, 49], [1, 2, 4, 8])]
    out = neck(feats)
    assert out.shape == (2, 32, 32, 32) and neck.out_channels == 32
    names = set(dict(neck.named_parameters()))
    assert "reduce_conv_c5.0.weight" in names and "fpems.1.down_add3.bn.weight" in names
    dw = neck.fpems[0].up_add1.depthwise_conv
    assert dw.groups == 8 and dw.kernel_size == (3, 3)
    assert neck.fpems[0].down_add1.depthwise_conv.stride == (2, 2)
    with pytest.raises(ValueError, match="4 input levels"):
        FPEMFFM([16, 24, 40])


def test_detector_outputs_and_backbones():
    model = build(backbone="resnet18")
    assert model.neck.in_channels == [64, 128, 256, 512]
    assert model.head.out_conv.in_channels == 512 and model.head.out_conv.out_channels == 6
    with torch.device("meta"):
        out = model.eval()(torch.empty(2, 3, 64, 96))
    assert tuple(out["text_logits"].shape) == (2, 1, 16, 24)
    assert tuple(out["embedding"].shape) == (2, 4, 16, 24)
    r50 = build(backbone="resnet50")
    assert r50.neck.in_channels == [256, 512, 1024, 2048]
    small = build(backbone="mobilenetv3_small", options={"neck_channels": 64})
    assert small.head.out_conv.in_channels == 256


# ---------------------------------------------------------------- loss


def _loss_inputs(size: int = 64):
    polys = [rect(20, 16, 28, 12), rect(44, 40, 32, 14, 15)]
    t = PANTargetBuilder(0.5, 4)(polys, [False, False], size, size)
    targets = {k: torch.from_numpy(v)[None] for k, v in t.items()}
    down = downsample_targets(targets, (size // 4, size // 4))
    return targets, down


def test_loss_prefers_the_right_answer_and_has_gradients():
    targets, down = _loss_inputs()
    text, kernel = down["gt_text"][:, None], down["gt_kernel"][:, None]
    emb = torch.zeros(1, 4, 16, 16)
    emb[:, 0] = text[:, 0] * 4.0
    good = {
        "text_logits": torch.where(text > 0, 8.0, -8.0),
        "kernel_logits": torch.where(kernel > 0, 8.0, -8.0),
        "embedding": emb,
    }
    bad = {k: -v for k, v in good.items()}
    bad["embedding"] = torch.zeros_like(emb)
    loss = PANLoss()
    lg, lb = loss(good, targets), loss(bad, targets)
    assert float(lg["loss"]) < 0.01 and float(lb["loss"]) > 1.0
    assert float(lg["loss_agg"]) == 0.0 and float(lg["loss_dis"]) == 0.0
    # Collapsed embeddings: every pair at distance 0 -> log(1 + 3^2).
    assert float(lb["loss_dis"]) == pytest.approx(np.log(10.0), rel=1e-4)
    expected = lb["loss_text"] + 0.5 * lb["loss_kernel"] + 0.25 * (lb["loss_agg"] + lb["loss_dis"])
    assert torch.allclose(lb["loss"], expected)
    params = {k: v.clone().requires_grad_(True) for k, v in good.items()}
    params["embedding"] = torch.randn(1, 4, 16, 16, requires_grad=True)
    loss(params, targets)["loss"].backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params.values())


def test_aggregation_term_by_hand():
    """Two instances, one pixel off its kernel mean by 1.5: L_agg of that
    instance = mean over its 4 text pixels of log(1 + (1.5 - 0.5)^2)."""
    text = torch.tensor([[[1, 1, 1, 1, 0, 2, 2]]], dtype=torch.float32)
    kernel = torch.tensor([[[1, 1, 0, 0, 0, 2, 0]]], dtype=torch.float32)
    emb = torch.zeros(1, 4, 1, 7)
    emb[0, 0, 0, 3] = 1.5  # text pixel of instance 1 far from its kernel mean (0)
    emb[0, 0, 0, 5:] = 10.0  # instance 2 far away from instance 1
    agg, dis = aggregation_discrimination(text, kernel, emb, torch.ones(1, 1, 7))
    assert float(agg) == pytest.approx(np.log(2.0) / 4 / 2, rel=1e-5)
    assert float(dis) == 0.0
    empty = torch.zeros(1, 1, 7)
    agg0, dis0 = aggregation_discrimination(empty, empty, emb, torch.ones(1, 1, 7))
    assert float(agg0) == 0.0 and float(dis0) == 0.0


def test_kernel_loss_only_counts_text_pixels():
    """A wrong kernel outside the text region costs nothing with
    kernel_mask="gt": the kernel loss only looks inside the text."""
    targets, down = _loss_inputs()
    text, kernel = down["gt_text"][:, None], down["gt_kernel"][:, None]
    base = {
        "text_logits": torch.where(text > 0, 8.0, -8.0),
        "kernel_logits": torch.where(kernel > 0, 8.0, -8.0),
        "embedding": torch.zeros(1, 4, 16, 16),
    }
    noisy = dict(base, kernel_logits=torch.where(text > 0, base["kernel_logits"], 8.0))
    assert float(PANLoss()(noisy, targets)["loss_kernel"]) == pytest.approx(
        float(PANLoss()(base, targets)["loss_kernel"]), abs=1e-6
    )
    d = dice_loss_with_logits(torch.full((1, 4), -20.0), torch.zeros(1, 4), torch.ones(1, 4))
    assert float(d) < 1e-3  # no text, nothing predicted: no loss


# ---------------------------------------------------------------- post-processing


def test_postprocess_recovers_rotated_quads():
    polys = [rect(100, 60, 160, 48, 20), rect(260, 170, 180, 56, -35), rect(90, 190, 120, 52)]
    preds = PANPostprocessor(output="quad")(
        perfect_outputs(polys, 256, 352), [{"orig_size": (256, 352), "scale": (1.0, 1.0)}]
    )[0]
    assert len(preds) == 3
    for p in preds:
        assert len(p.polygon) == 4
        assert max(iou(p.polygon, g) for g in polys) > 0.9
        tl, tr, br, bl = p.polygon
        assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1]  # TL, TR, BR, BL
        x, y = p.polygon[:, 0], p.polygon[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0  # clockwise on screen


def test_postprocess_recovers_curved_polygons_and_maps_back():
    polys = [arc(130, 200, 110, 62), arc(300, 250, 60, 30)]
    outputs = perfect_outputs(polys, 288, 384)
    preds = PANPostprocessor(output="poly")(outputs, [{"orig_size": (288, 384)}])[0]
    assert len(preds) == 2
    for p in preds:
        assert len(p.polygon) > 4 and max(iou(p.polygon, g) for g in polys) > 0.9
    # The same maps for an image shown to the network at 2x (scale 2):
    # polygons come back in original pixels; padding beyond the image is ignored.
    half = PANPostprocessor(output="poly")(outputs, [{"orig_size": (144, 192), "scale": (2, 2)}])[0]
    for p in half:
        assert max(iou(p.polygon * 2, g) for g in polys) > 0.9
        assert p.polygon[:, 0].max() <= 191 and p.polygon[:, 1].max() <= 143


def test_pixel_aggregation_splits_touching_instances():
    """Two words side by side whose text regions touch (one blob). Word A's
    kernel lies close to the shared border, word B's is small and far:
    plain region growing would hand most of B to A; the embedding keeps
    every pixel with its own word."""
    text = np.zeros((10, 40), bool)
    text[2:8, 0:40] = True
    kernels = np.zeros((10, 40), np.int32)
    kernels[4:6, 8:19] = 1  # A covers columns 0..19, its kernel ends at 18
    kernels[4:6, 36:38] = 2  # B covers columns 20..39, its kernel is tiny and far
    emb = np.zeros((4, 10, 40), np.float32)
    emb[1, :, 20:] = 5.0  # B's pixels sit 5 apart from A's
    labels = pixel_aggregate(kernels, text, emb, distance_thr=3.0)
    assert np.all(labels[2:8, :20] == 1) and np.all(labels[2:8, 20:] == 2)
    assert np.all(labels[~text] == 0)
    blind = pixel_aggregate(kernels, text, np.zeros_like(emb), distance_thr=3.0)
    assert (blind[2:8, 20:] == 1).any()  # without embeddings A swallows part of B
    # Through the postprocessor: two instances, one per word.
    outputs = {
        "text_logits": np.where(text, 10.0, -10.0)[None, None].astype(np.float32),
        "kernel_logits": np.where(kernels > 0, 10.0, -10.0)[None, None].astype(np.float32),
        "embedding": emb[None],
    }
    post = PANPostprocessor(output="quad", min_area=4)
    preds = post(outputs, [{"orig_size": (40, 160)}])[0]
    boxes = sorted(p.polygon[:, 0].min() for p in preds)
    assert len(preds) == 2 and boxes[1] == pytest.approx(80, abs=1)  # split at column 20 * 4


def test_postprocess_filters_by_score_and_area():
    polys = [rect(100, 60, 160, 48), rect(40, 180, 30, 14)]
    outputs = perfect_outputs(polys, 256, 256)
    outputs["text_logits"][0, 0, :, 16:] *= 0.1  # most of the big word: text prob ~0.73
    meta = [{"orig_size": (256, 256)}]
    post = PANPostprocessor(output="quad", min_area=40)
    assert len(post(outputs, meta)[0]) == 0  # big word: low score; small word: too small
    assert len(post.with_params(min_score=0.5, min_area=10)(outputs, meta)[0]) == 2
    with pytest.raises(ValueError, match="metas"):
        post(outputs, meta * 2)


# ---------------------------------------------------------------- augmentations


def test_crop_instances_keeps_whole_words():
    rng = np.random.default_rng(0)
    image = np.full((300, 400, 3), 127, np.uint8)
    polys = [rect(60 + 110 * i, 50 + 80 * j, 90, 30) for i in range(3) for j in range(3)]
    ignores = [False] * len(polys)
    crop = CropInstances(size=[160, 200], text_prob=1.0)
    for _ in range(20):
        img, out, ign = crop(image, polys, ignores, rng)
        assert img.shape == (160, 200, 3)
        care = [p for p, i in zip(out, ign) if not i]
        assert care, "text_prob=1 keeps at least one whole instance"
        for p in care:  # a cared-for word is whole inside the crop
            assert p[:, 0].min() >= -1 and p[:, 0].max() <= 201
            assert p[:, 1].min() >= -1 and p[:, 1].max() <= 161
        for p, i in zip(out, ign):  # a cut word is don't-care
            inside = p[:, 0].min() >= -1 and p[:, 0].max() <= 201
            inside = inside and p[:, 1].min() >= -1 and p[:, 1].max() <= 161
            assert inside or i
    # Small images are padded; the same rng state gives the same crop.
    small = np.full((50, 60, 3), 200, np.uint8)
    a = crop(small, [rect(30, 25, 40, 16)], [False], np.random.default_rng(3))
    b = crop(small, [rect(30, 25, 40, 16)], [False], np.random.default_rng(3))
    assert a[0].shape == (160, 200, 3) and a[0][100:, 100:].max() == 0
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1][0], b[1][0]) and a[2] == [False]


def test_scale_jitter_targets_the_short_side():
    rng = np.random.default_rng(1)
    image = np.zeros((200, 300, 3), np.uint8)
    step = ScaleJitter(short_side=100, ratio_range=[0.7, 1.3], aspect_range=[0.9, 1.1])
    for _ in range(10):
        img, polys, _ = step(image, [rect(150, 100, 60, 20)], [False], rng)
        assert 0.7 * 100 / 1.05 - 1 <= img.shape[0] <= 1.3 * 100 * 1.05 + 1
        sx, sy = img.shape[1] / 300, img.shape[0] / 200
        assert polys[0][:, 0].mean() == pytest.approx(150 * sx, rel=1e-4)
        assert polys[0][:, 1].mean() == pytest.approx(100 * sy, rel=1e-4)
    with pytest.raises(ValueError, match="ratio_range"):
        ScaleJitter(ratio_range=[1.3, 0.7])


def test_recipe_names_the_plugin_augmentations():
    from tcmbench.data.transforms import TrainTransform, build_augmentation

    recipe = get_detector("pan").recipe("icdar2015")
    names = [a["name"] for a in recipe["train"]["augment"]]
    assert "pan_scale_jitter" in names and "pan_crop_instances" in names
    transform = TrainTransform.from_recipe(get_detector("pan").recipe("synthtext-mini"))
    image = np.full((320, 352, 3), 90, np.uint8)
    out = transform(image, [rect(170, 160, 120, 30)], [False], np.random.default_rng(0))
    assert out.image.shape == (3, 224, 224)
    with pytest.raises(TcmbenchError, match=r"pan_crop_instances.*unknown parameter.*sise"):
        build_augmentation({"name": "pan_crop_instances", "sise": 640})
    with pytest.raises(TcmbenchError, match="text_prob"):
        build_augmentation({"name": "pan_crop_instances", "text_prob": 2.0})


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"neck_chanels": 64}, "neck_chanels"),
        ({"neck_channels": "wide"}, "neck_channels"),
        ({"fpem_repeats": 0}, "fpem_repeats"),
        ({"shrink_ratio": 1.5}, "shrink_ratio"),
        ({"delta_dis": True}, "delta_dis"),
        ({"kernel_mask": "both"}, "kernel_mask"),
        ({"postprocess": [1, 2]}, "postprocess"),
        ({"postprocess": {"min_scroe": 0.5}}, "min_scroe"),
        ({"postprocess": {"min_score": "high"}}, "min_score"),
        ({"postprocess": {"output": "polygon"}}, "output"),
        ({"postprocess": {"upsample": 0}}, "upsample"),
    ],
)
def test_malformed_options_name_the_key(options, match):
    with pytest.raises(PluginError, match=match):
        build(options=options)


def test_malformed_recipe_postprocess_names_the_key():
    """A recipe's postprocess section reaches the model through
    with_params (inference.postprocessor_for): still a PluginError."""
    from tcmbench.inference import postprocessor_for

    model = build(backbone="mobilenetv3_small")
    post = postprocessor_for(model, {"postprocess": {"output": "poly", "distance_thr": 1.5}})
    assert post.output == "poly" and post.distance_thr == 1.5
    with pytest.raises(PluginError, match="kernel_thresh"):
        postprocessor_for(model, {"postprocess": {"kernel_thresh": 0.5}})
    with pytest.raises(PluginError, match="text_thr"):
        postprocessor_for(model, {"postprocess": {"text_thr": 1.5}})
    with pytest.raises(PluginError, match="options must be a mapping"):
        resolve_options([("neck_channels", 64)])
    assert build_postprocessor(None).output == "poly"


def test_every_recipe_builds():
    spec = get_detector("pan")
    for name, recipe in spec.recipes.items():
        model = build(
            backbone=recipe["model"]["backbone"], options=recipe["model"].get("options", {})
        )
        post = model.postprocessor.with_params(**recipe["postprocess"])
        assert post.output in ("quad", "poly"), name
    assert spec.recipe("icdar2015")["test"] == {
        "long_side": 1333,
        "short_side": 736,
        "pad_divisor": 32,
    }
    assert spec.recipe("ctw1500")["tcm"]["input_resolution"] == 640
    # The official TCM-PAN CTW1500 config reuses the IC15 pipelines (issue 17 row 3).
    assert spec.recipe("ctw1500")["model"]["options"]["shrink_ratio"] == 0.5
    assert spec.recipe("tcm-pretrain")["model"]["options"]["shrink_ratio"] == 0.7


# ---------------------------------------------------------------- TCM


def official_keys() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        out[name] = tuple(int(s) for s in shape.split(",") if s)
    return out


def test_official_tcm_pan_keys_map_one_to_one():
    pytest.importorskip("open_clip")
    from tcmbench.tcm.importer import map_official_keys

    keys = official_keys()
    mapping, unmapped = map_official_keys(list(keys), "pan")
    assert unmapped == []
    model = build(RANDOM)
    assert model.neck.in_channels == [256, 512, 1024, 2049]
    own = model.state_dict()
    assert sorted(mapping.values()) == sorted(own)  # nothing missing, nothing twice
    for official, ours in mapping.items():
        assert tuple(own[ours].shape) == keys[official], official
    stray = map_official_keys(["neck.fpems.0.up_add4.bn.weight", "bbox_head.conv.weight"], "pan")
    assert len(stray[1]) == 2


def test_official_tcm_pan_checkpoint_imports_all_or_nothing():
    """The import path itself (config inferred from the weights, every key
    mapped and shape-checked, strict load), on meta tensors: no memory."""
    pytest.importorskip("open_clip")
    from dataclasses import replace

    from tcmbench.errors import CheckpointError
    from tcmbench.tcm.importer import infer_tcm_config, load_official_state

    keys = official_keys()
    state = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    tcm = infer_tcm_config(state)
    assert (tcm.input_resolution, tcm.context_length) == (736, 4)
    assert tcm.language_generator and tcm.visual_generator and tcm.text_context_decoder
    model = build(replace(tcm, clip_pretrained=None))
    assert len(load_official_state(model, state, "pan")) == len(keys)
    state["neck.reduce_conv_c5.0.weight"] = torch.empty(128, 2048, 1, 1, device="meta")
    with pytest.raises(CheckpointError, match=r"reduce_conv_c5\.0\.weight \(128, 2048"):
        load_official_state(model, state, "pan")


@pytest.fixture(scope="module")
def tcm_pan():
    pytest.importorskip("open_clip")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build(RANDOM, device="cpu")


def _batch(model, n: int = 2, size: int = 64):
    polys = [rect(24, 16, 32, 14), rect(40, 44, 40, 16, 10)]
    per_image = [model.target_builder([polys[i % 2]], [False], size, size) for i in range(n)]
    targets = {k: torch.from_numpy(np.stack([t[k] for t in per_image])) for k in per_image[0]}
    images = torch.from_numpy(np.random.default_rng(0).normal(size=(n, 3, size, size)))
    return images.float(), targets


def test_tcm_forward_adds_the_ohem_dice_aux_loss(tcm_pan):
    from tcmbench.tcm.loss import ohem_dice_with_logits

    model = tcm_pan.train()
    assert model.backbone.input_resolution == 736
    images, targets = _batch(model)
    out = model(images, targets)
    losses = out["losses"]
    assert {"loss_text", "loss_kernel", "loss_agg", "loss_dis", "loss_tcm"} <= set(losses)
    assert torch.allclose(losses["loss"], model.loss(out, targets)["loss"] + losses["loss_tcm"])
    up = torch.nn.functional.interpolate(
        out["tcm_score_logits"], size=(64, 64), mode="bilinear", align_corners=False
    )
    ref = ohem_dice_with_logits(up, (targets["gt_text"] > 0).float(), targets["gt_mask"])
    assert torch.allclose(losses["loss_tcm"], ref)
    assert tuple(out["text_logits"].shape) == (2, 1, 16, 16)


def test_tcm_lr_factors_freeze_text_encoder_and_train_prompts(tcm_pan):
    model = tcm_pan.train()
    ft = model.feature_transform
    base_lr = 1e-2
    groups = model.param_groups(base_lr, weight_decay=1e-4)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert all(by_param[id(p)] == pytest.approx(0.1 * base_lr) for p in model.backbone.parameters())
    assert not any(id(p) in by_param for p in ft.text_encoder.parameters())
    assert by_param[id(ft.learnable_context)] == pytest.approx(base_lr)
    assert by_param[id(model.neck.reduce_conv_c5[0].weight)] == pytest.approx(base_lr)
    assert by_param[id(model.head.out_conv.weight)] == pytest.approx(base_lr)

    text_before = {k: v.detach().clone() for k, v in ft.text_encoder.state_dict().items()}
    ctx_before = ft.learnable_context.detach().clone()
    vg_before = ft.visual_prompt_generator.out_proj.weight.detach().clone()
    backbone_before = model.backbone.layer4[0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(groups, lr=base_lr)
    opt.zero_grad()
    images, targets = _batch(model)
    model(images, targets)["losses"]["loss"].backward()
    assert ft.learnable_context.grad is not None and ft.learnable_context.grad.abs().sum() > 0
    assert all(p.grad is None for p in ft.text_encoder.parameters())
    opt.step()
    for k, v in ft.text_encoder.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert not torch.equal(ft.learnable_context, ctx_before)
    assert not torch.equal(ft.visual_prompt_generator.out_proj.weight, vg_before)
    assert not torch.equal(model.backbone.layer4[0].conv1.weight, backbone_before)


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_evaluate_tcm_pan_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture):
    """`tcmbench evaluate --plugin pan --tcm` on a TCM-PAN checkpoint with
    random CLIP weights (a tiny ICDAR 2015-layout folder, original size)."""
    pytest.importorskip("open_clip")
    from tiny_data import make_ic15_folder

    from tcmbench.cli import main
    from tcmbench.hub import checkpoints as hub

    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    torch.manual_seed(0)
    spec = get_detector("pan")
    config = DetectorConfig(backbone="resnet50", tcm=RANDOM)
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    weights = hub.save_checkpoint(
        tmp_path / "tcm-pan", model, spec, config, recipe=spec.recipe("icdar2015")
    )
    del model
    out = tmp_path / "r.json"
    args = ["evaluate", "--plugin", "pan", "--tcm", "--dataset", "icdar2015"]
    args += ["--data-root", str(data), "--weights", str(weights), "--recipe", "synthtext-mini"]
    args += ["--json", str(out), "--no-cache", "--no-progress", "--device", "cpu"]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "| icdar2015 |" in captured.out
    doc = json.loads(out.read_text())
    assert doc["images"] == 2 and doc["protocol"] == "icdar2015"
    assert all(0.0 <= doc[k] <= 1.0 for k in ("precision", "recall", "hmean"))


@pytest.mark.slow
def test_shipped_weights_detect_synthtext_mini(tmp_path: Path, capsys: pytest.CaptureFixture):
    """`tcmbench evaluate --plugin pan --dataset synthtext-mini` without
    --weights uses the checkpoint in the package (first 20 test images
    here; the full 200-image figure is in docs/benchmarks/training.md)."""
    from tcmbench.cli import main
    from tcmbench.hub.checkpoints import embedded_weights

    folder = embedded_weights(get_detector("pan"))
    assert folder is not None, "plugins/tcmbench_pan/weights/ holds no checkpoint"
    assert (folder / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    out = tmp_path / "r.json"
    args = ["evaluate", "--plugin", "pan", "--dataset", "synthtext-mini", "--limit", "20"]
    args += ["--device", "cpu", "--no-progress", "--json", str(out)]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0, capsys.readouterr().err[-2000:]
    doc = json.loads(out.read_text())
    assert doc["weights"] == str(folder) and doc["images"] == 20
    assert doc["hmean"] >= 0.6
