"""TCM wrapped around DBNet: sizes, ablation switches, the hook, a forward /
backward pass with the auxiliary loss, LR factors and the prompt heatmaps.

Parameter counting builds on the meta device (no memory, no init time); one
real TCM-DBNet with random CLIP weights (``clip_pretrained=None``) is built
per module for the numerical tests, on 64x64 inputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, DetectorSpec, TCMConfig
from tcmbench.errors import PluginError
from tcmbench.tcm import count_tcm_params
from tcmbench.tcm.config import TCMConfigError

RANDOM = TCMConfig(clip_pretrained=None)
# Sizes from the module definitions (TCM.md sections 3-4), computed here by hand.
LG_PARAMS = 2 * 1024 + (1024 * 1024 + 1024) + 2 * 1024 + (1024 * 512 + 512)  # 1,578,496
_W, _V = 256, 1024
_LAYER = 2 * (4 * _W * _W + _W) + 6 * _W + (_W * 4 * _W + 4 * _W) + (4 * _W * _W + _W)
DECODER_PARAMS = (
    (2 * _V + _V * _W + 3 * _W) + (2 * _V + _V * _W + _W) + 3 * _LAYER + (2 * _W + _W * _V + _V)
)


def build(tcm: TCMConfig | None, device: str = "meta"):
    spec = get_detector("dbnet")
    config = DetectorConfig(tcm=tcm)
    with torch.device(device):
        return get_plugin_manager().hook.build_detector(spec=spec, config=config)


def official_total() -> int:
    total = 0
    path = Path(__file__).parent / "data" / "tcm_official_keys.txt"
    for line in path.read_text().splitlines():
        if line.startswith("#") or "running_" in line or "num_batches" in line:
            continue
        shape = [int(s) for s in line.split("\t")[1].split(",") if s]
        total += int(np.prod(shape)) if shape else 1
    return total


@pytest.fixture(scope="module")
def default_counts():
    return count_tcm_params(build(RANDOM))


def test_sizes_match_the_paper(default_counts):
    # TCM.md section 8: 50.4M without the frozen text tower, 114M in all.
    assert abs(default_counts["params_without_text_encoder"] - 50.4e6) <= 0.01 * 50.4e6
    assert abs(default_counts["params"] - 114e6) <= 0.02 * 114e6
    # ... and exactly the number of parameters of an official checkpoint.
    assert default_counts["params"] == official_total()
    plain = count_tcm_params(build(None))
    assert plain["params"] == plain["params_without_text_encoder"]


@pytest.mark.parametrize(
    ("switch", "prefixes", "expected"),
    [
        (
            {"language_generator": False},
            ("feature_transform.language_prompt_generator.",),
            LG_PARAMS,
        ),
        (
            {"visual_generator": False},
            ("feature_transform.visual_prompt_generator.", "feature_transform.visual_gamma"),
            DECODER_PARAMS + 1,
        ),
        (
            {"text_context_decoder": False},
            ("feature_transform.text_context_decoder.", "feature_transform.text_gamma"),
            DECODER_PARAMS + 1024,
        ),
    ],
)
def test_ablation_switch_removes_exactly_its_parameters(default_counts, switch, prefixes, expected):
    full = build(RANDOM)
    ablated = build(replace(RANDOM, **switch))
    removed = set(full.state_dict()) - set(ablated.state_dict())
    assert removed == {k for k in full.state_dict() if k.startswith(prefixes)}
    assert set(ablated.state_dict()) <= set(full.state_dict())
    counts = count_tcm_params(ablated)
    assert (
        default_counts["params_without_text_encoder"] - counts["params_without_text_encoder"]
        == expected
    )
    assert default_counts["params"] - counts["params"] == expected


@pytest.mark.parametrize("n", [4, 18, 32])
def test_learnable_prompt_lengths(n):
    model = build(replace(RANDOM, context_length=n))
    ft = model.feature_transform
    assert tuple(ft.learnable_context.shape) == (1, n, 512)
    assert tuple(ft.text_encoder.positional_embedding.shape) == (14 + n, 512)
    assert ft.text_encoder.eot_index == 13 + n
    no_lp = build(replace(RANDOM, context_length=0))
    assert no_lp.feature_transform.learnable_context is None
    diff = (
        count_tcm_params(model)["params_without_text_encoder"]
        - count_tcm_params(no_lp)["params_without_text_encoder"]
    )
    assert diff == n * 512
    lp_only = build(replace(RANDOM, context_length=n, predefined_prompt=False))
    te = lp_only.feature_transform.text_encoder
    assert te.seq_len == n and te.eot_index == n - 1 and not te.uses_prompt


def test_bad_switches_and_non_opted_plugin():
    with pytest.raises(TCMConfigError, match="--tcm-context"):
        build(replace(RANDOM, predefined_prompt=False, context_length=0))
    with pytest.raises(TCMConfigError):
        build(replace(RANDOM, context_length=70))  # 14 + 70 > 77 text positions
    dbnet = get_detector("dbnet")
    plain = DetectorSpec(name="no-tcm", build_parts=dbnet.build_parts)
    with pytest.raises(PluginError, match="has not opted into TCM"):
        get_plugin_manager().hook.build_detector(spec=plain, config=DetectorConfig(tcm=RANDOM))
    broken = DetectorSpec(
        name="broken", build_parts=dbnet.build_parts, tcm=replace(dbnet.tcm, aux_target=None)
    )
    with pytest.raises(PluginError, match="aux_target"), torch.device("meta"):
        get_plugin_manager().hook.build_detector(spec=broken, config=DetectorConfig(tcm=RANDOM))


@pytest.fixture(scope="module")
def tcm_dbnet():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build(RANDOM, device="cpu")


def _batch(model, n: int = 2, size: int = 64):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(n, 3, size, size)).astype(np.float32))
    polys = [
        np.array([[8, 8], [40, 8], [40, 24], [8, 24]], np.float32),
        np.array([[20, 30], [60, 30], [60, 50], [20, 50]], np.float32),
    ]
    per_image = [model.target_builder([polys[i % 2]], [False], size, size) for i in range(n)]
    targets = {k: torch.from_numpy(np.stack([t[k] for t in per_image])) for k in per_image[0]}
    return images, targets


def test_forward_adds_score_map_and_aux_loss(tcm_dbnet):
    model = tcm_dbnet
    assert model.neck.in_channels == [256, 512, 1024, 2049]
    assert model.backbone.lr_factor == pytest.approx(0.1)
    model.train()
    images, targets = _batch(model)
    out = model(images, targets)
    assert out["tcm_score_logits"].shape == (2, 1, 2, 2)
    score = out["tcm_score_map"]
    assert score.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(out["tcm_score_logits"], score / 0.07)
    losses = out["losses"]
    assert "loss_tcm" in losses and torch.isfinite(losses["loss_tcm"])
    db_only = model.loss(out, targets)["loss"]
    assert torch.allclose(losses["loss"], db_only + losses["loss_tcm"])
    # The aux loss: S / tau upsampled x32 (bilinear) against DB's shrunk mask,
    # batched as the official code does by default (tcm.aux_loss_batching).
    from tcmbench.tcm.loss import broadcast_balanced_bce_loss

    up = torch.nn.functional.interpolate(
        out["tcm_score_logits"], scale_factor=32, mode="bilinear", align_corners=False
    )
    ref = broadcast_balanced_bce_loss(up, targets["gt_shrink"], targets["gt_shrink_mask"])
    assert model.aux_losses["tcm"].batching == "official_broadcast"
    assert torch.allclose(losses["loss_tcm"], ref)
    assert out["prob"].shape == (2, 1, 64, 64)


def test_optimizer_step_freezes_text_encoder_and_trains_prompts(tcm_dbnet):
    model = tcm_dbnet
    model.train()
    ft = model.feature_transform
    base_lr = 1e-2
    groups = model.param_groups(base_lr, weight_decay=1e-4)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert all(by_param[id(p)] == pytest.approx(0.1 * base_lr) for p in model.backbone.parameters())
    assert not any(id(p) in by_param for p in ft.text_encoder.parameters())
    assert by_param[id(ft.learnable_context)] == pytest.approx(base_lr)
    assert by_param[id(ft.language_prompt_generator.fc1.weight)] == pytest.approx(base_lr)
    assert all(not p.requires_grad for p in ft.text_encoder.parameters())

    text_before = {k: v.detach().clone() for k, v in ft.text_encoder.state_dict().items()}
    ctx_before = ft.learnable_context.detach().clone()
    lg_before = ft.language_prompt_generator.fc2.weight.detach().clone()
    backbone_before = model.backbone.layer4[0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(groups, lr=base_lr)
    opt.zero_grad()
    images, targets = _batch(model)
    model(images, targets)["losses"]["loss"].backward()
    # The gradient reached the prompts *through* the frozen text tower.
    assert ft.learnable_context.grad is not None and ft.learnable_context.grad.abs().sum() > 0
    assert all(p.grad is None for p in ft.text_encoder.parameters())
    opt.step()
    for k, v in ft.text_encoder.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert not torch.equal(ft.learnable_context, ctx_before)
    assert not torch.equal(ft.language_prompt_generator.fc2.weight, lg_before)
    assert not torch.equal(model.backbone.layer4[0].conv1.weight, backbone_before)


def test_text_embedding_depends_on_image_only_with_lg(tcm_dbnet):
    model = tcm_dbnet.eval()
    images, _ = _batch(model)
    with torch.no_grad():
        feats = model.backbone(images)
        text = model.feature_transform.match(feats).text
    assert text.shape == (2, 1, 1024)
    assert not torch.allclose(text[0], text[1])  # LG + context decoder: per image


def test_prompt_heatmaps_side_by_side(tcm_dbnet, tmp_path):
    import cv2

    from tcmbench.tcm import save_prompt_heatmaps

    images, _ = _batch(tcm_dbnet, n=1, size=64)
    out = save_prompt_heatmaps(tcm_dbnet, images[0], tmp_path / "fig7.png")
    assert out == [tmp_path / "fig7.png"]
    picture = cv2.imread(str(out[0]))
    assert picture.shape == (64, 3 * 64, 3)
    left, middle, right = picture[:, :64], picture[:, 64:128], picture[:, 128:]
    assert not np.array_equal(left, middle) and not np.array_equal(middle, right)
    original = np.full((64, 64, 3), 200, np.uint8)
    two = save_prompt_heatmaps(tcm_dbnet, images.repeat(2, 1, 1, 1), tmp_path / "b.png")
    assert [p.name for p in two] == ["b_0.png", "b_1.png"]
    drawn = save_prompt_heatmaps(tcm_dbnet, images[0], tmp_path / "o.png", image=original)
    assert np.array_equal(cv2.imread(str(drawn[0]))[:, :64], original)


def test_score_map_goes_to_the_declared_level():
    """FCENet-style (C3..C5, level 2 = C5) and a C4 level (score map resized)."""
    dbnet = get_detector("dbnet")
    cases = [
        ((1, 2, 3), 2, [512, 1024, 2049], (2, 2)),
        ((0, 1, 2, 3), 2, [256, 512, 1025, 2048], (4, 4)),
    ]
    for stages, level, channels, size in cases:

        def build_parts(config, stages=stages):
            return replace(dbnet.build_parts(config), in_stages=stages)

        spec = DetectorSpec(
            name="probe",
            build_parts=build_parts,
            tcm=replace(dbnet.tcm, stages=stages, feature_level=level),
        )
        with torch.device("meta"):
            model = get_plugin_manager().hook.build_detector(
                spec=spec, config=DetectorConfig(tcm=RANDOM)
            )
            feats, extras = model.feature_transform(model.backbone(torch.empty(1, 3, 64, 64)))
        assert model.neck.in_channels == channels
        assert [f.shape[1] for f in feats] == channels
        assert tuple(feats[level].shape[-2:]) == size
        assert tuple(extras["tcm_score_logits"].shape) == (1, 1, 2, 2)


def test_tcm_stages_must_match_the_stages_the_neck_reads():
    """A TCMSupport.stages that disagrees with DetectorParts.in_stages would
    feed the neck features it was not built for: refused by name."""
    dbnet = get_detector("dbnet")
    spec = DetectorSpec(
        name="probe",
        build_parts=dbnet.build_parts,
        tcm=replace(dbnet.tcm, stages=(1, 2, 3), feature_level=2),
    )
    with pytest.raises(PluginError, match=r"in_stages \(0, 1, 2, 3\)"), torch.device("meta"):
        get_plugin_manager().hook.build_detector(spec=spec, config=DetectorConfig(tcm=RANDOM))


def test_prompt_heatmaps_need_tcm_with_vg(tmp_path):
    from tcmbench.tcm import save_prompt_heatmaps

    image = torch.zeros(3, 64, 64)
    with pytest.raises(PluginError, match="no-tcm-vg"):
        save_prompt_heatmaps(
            build(replace(RANDOM, visual_generator=False)), image, tmp_path / "x.png"
        )
    with pytest.raises(PluginError, match="--tcm"):
        save_prompt_heatmaps(build(None), image, tmp_path / "x.png")


@pytest.mark.parametrize(
    "switches",
    [
        {"predefined_prompt": False, "context_length": 18},  # LP only
        {"context_length": 0},  # PP only
        {"language_generator": False, "visual_generator": False, "text_context_decoder": False},
        {"predefined_prompt": False, "context_length": 32, "language_generator": False},
    ],
)
def test_every_ablation_runs_forward(switches):
    model = build(replace(RANDOM, **switches))
    with torch.device("meta"):
        model.eval()
        out = model(torch.empty(2, 3, 64, 64))
    assert tuple(out["tcm_score_logits"].shape) == (2, 1, 2, 2)
    assert tuple(out["prob"].shape) == (2, 1, 64, 64)


def _fill_at_32(polygons, ignores, height, width):
    """A per-sample TCM target: every care polygon filled at 1/32."""
    target = np.zeros((height // 32, width // 32), np.float32)
    for poly, ignore in zip(polygons, ignores):
        if not ignore:
            x0, y0 = (np.asarray(poly).min(axis=0) // 32).astype(int)
            x1, y1 = (np.asarray(poly).max(axis=0) // 32).astype(int)
            target[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return target, np.ones_like(target)


def test_sample_target_is_built_per_sample_and_feeds_the_aux_loss():
    """TCMSupport.sample_target: the core adds tcm_target / tcm_mask to the
    detector's own targets, and the aux loss compares them with the score
    logits at 1/32 (no upsampling, FCENet's way)."""
    dbnet = get_detector("dbnet")
    spec = DetectorSpec(
        name="probe",
        build_parts=dbnet.build_parts,
        tcm=replace(
            dbnet.tcm, aux_target=None, sample_target=_fill_at_32, upsample_score_map=False
        ),
    )
    model = get_plugin_manager().hook.build_detector(spec=spec, config=DetectorConfig(tcm=RANDOM))
    poly = np.float32([[40, 40], [90, 40], [90, 60], [40, 60]])
    targets = model.target_builder([poly], [False], 128, 128)
    assert {"gt_shrink", "gt_shrink_mask", "tcm_target", "tcm_mask"} <= set(targets)
    assert (
        targets["tcm_target"].shape == (4, 4) and targets["tcm_target"].sum() == 2
    )  # columns 1-2, row 1
    batch = {k: torch.from_numpy(np.stack([v, v])) for k, v in targets.items()}
    aux = model.aux_losses["tcm"]
    good = torch.where(batch["tcm_target"][:, None] > 0, 10.0, -10.0)
    bad = -good
    low = aux({"tcm_score_logits": good}, batch)["loss_tcm"]
    high = aux({"tcm_score_logits": bad}, batch)["loss_tcm"]
    assert float(low) < 0.01 < 1.0 < float(high)


def test_sample_target_and_aux_target_are_exclusive():
    dbnet = get_detector("dbnet")
    for tcm in (
        replace(dbnet.tcm, sample_target=_fill_at_32),
        replace(dbnet.tcm, aux_target=None),
    ):
        spec = DetectorSpec(name="probe", build_parts=dbnet.build_parts, tcm=tcm)
        with pytest.raises(PluginError, match="exactly one of aux_target"), torch.device("meta"):
            get_plugin_manager().hook.build_detector(spec=spec, config=DetectorConfig(tcm=RANDOM))


def test_recipe_input_resolution_overrides_the_support_default():
    dbnet = get_detector("dbnet")
    config = DetectorConfig(tcm=replace(RANDOM, input_resolution=736))
    with torch.device("meta"):
        model = get_plugin_manager().hook.build_detector(spec=dbnet, config=config)
    assert model.backbone.input_resolution == 736
    assert model.backbone.attnpool.positional_embedding.shape[0] == 23 * 23 + 1
    with pytest.raises(TCMConfigError, match="multiple of 32"), torch.device("meta"):
        get_plugin_manager().hook.build_detector(
            spec=dbnet, config=DetectorConfig(tcm=replace(RANDOM, input_resolution=700))
        )
