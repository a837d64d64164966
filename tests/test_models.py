"""Backbones, the FPNC neck, shared losses and Detector optimizer groups."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tcmbench.errors import CheckpointError
from tcmbench.models.backbones import build_backbone, hub_checkpoint_path
from tcmbench.models.losses import balanced_bce_loss, dice_loss, masked_l1_loss
from tcmbench.models.necks import FPNC

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("resnet18", [64, 128, 256, 512]),
        ("resnet50", [256, 512, 1024, 2048]),
        ("mobilenetv3_small", [16, 24, 48, 96]),
        ("mobilenetv3_large", [24, 40, 112, 160]),
    ],
)
def test_backbone_returns_four_stages_at_strides_4_to_32(name: str, channels: list[int]) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    assert list(backbone.out_channels) == channels
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))
    ]
    assert all(torch.isfinite(f).all() for f in feats)


def test_backbone_aliases_and_unknown_name() -> None:
    assert build_backbone("R18").out_channels == [64, 128, 256, 512]
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        build_backbone("vgg16")


def test_fpnc_fuses_levels_to_quarter_resolution_with_tcm_channels() -> None:
    in_channels = [256, 512, 1024, 2049]  # TCM adds the score map to C5
    neck = FPNC(in_channels, lateral_channels=256)
    feats = [torch.randn(1, c, 32 // 2**i, 48 // 2**i) for i, c in enumerate(in_channels)]
    out = neck(feats)
    assert out.shape == (1, 256, 32, 48)
    assert neck.out_channels == 256
    # 1x1 laterals to 256 and 3x3 smoothing to 64, no biases (mmocr FPNC).
    expected = sum(in_channels) * 256 + 4 * 256 * 64 * 9
    assert sum(p.numel() for p in neck.parameters()) == expected


def test_fpnc_top_down_path_reaches_the_finest_level() -> None:
    """A change in C5 alone must change the output at 1/4 resolution
    everywhere (top-down add + upsampled concat)."""
    torch.manual_seed(0)
    neck = FPNC([8, 8, 8, 8], lateral_channels=16, smooth_channels=4)
    feats = [torch.zeros(1, 8, 16 // 2**i, 16 // 2**i) for i in range(4)]
    base = neck(feats)
    feats[3] = torch.ones_like(feats[3])
    changed = neck(feats)
    assert changed.shape == (1, 16, 16, 16)
    # the C2 slice (first 4 channels) sees C5 through the top-down path
    assert not torch.allclose(base[:, :4], changed[:, :4])


def test_fpnc_rejects_wrong_number_of_levels() -> None:
    neck = FPNC([8, 8, 8, 8], lateral_channels=16)
    with pytest.raises(ValueError, match="4 levels got 3"):
        neck([torch.zeros(1, 8, 8, 8)] * 3)


# --- ImageNet weights through the torch hub cache -------------------------


def _weights_url(name: str) -> str:
    import torchvision.models as tvm

    return {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1.url}[name]


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TCMBENCH_OFFLINE", raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch"


def test_pretrained_weights_load_from_torch_hub_cache(torch_home: Path) -> None:
    import torchvision.models as tvm

    torch.manual_seed(123)
    reference = tvm.resnet18(weights=None)
    path = hub_checkpoint_path(_weights_url("resnet18"))
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    backbone = build_backbone("resnet18", pretrained=True)
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert torch.equal(backbone.bn1.running_mean, reference.bn1.running_mean)


def test_pretrained_weights_missing_offline_names_cache_path(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        build_backbone("resnet18", pretrained=True)
    expected = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in str(err.value)
    assert "offline" in str(err.value)


def test_truncated_pretrained_weights_are_a_checkpoint_error(torch_home: Path) -> None:
    import torchvision.models as tvm

    path = hub_checkpoint_path(_weights_url("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        build_backbone("resnet18", pretrained=True)


# --- shared losses ---------------------------------------------------------


def _bce(logit: np.ndarray, target: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-logit))
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def test_balanced_bce_keeps_three_hardest_negatives_per_positive() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 1, 4, 4))
    target = np.zeros((1, 4, 4))
    target[0, 0, :2] = 1  # 2 positives -> 6 hard negatives
    mask = np.ones((1, 4, 4))
    mask[0, 3, 3] = 0  # one negative is don't-care
    per_pixel = _bce(logits[:, 0], target)
    neg = np.sort(per_pixel[(target == 0) & (mask == 1)])[::-1][:6]
    expected = (per_pixel[target == 1].sum() + neg.sum()) / 8
    got = balanced_bce_loss(torch.tensor(logits), torch.tensor(target), torch.tensor(mask))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_balanced_bce_mines_within_each_image_when_asked() -> None:
    """Image 1 has no text: batch mining may spend image 0's negative budget
    on image 1's pixels; per-image mining may not."""
    logits = torch.full((2, 1, 4, 4), -2.0)
    logits[1] = 3.0  # image 1: confident false positives everywhere
    target = torch.zeros(2, 4, 4)
    target[0, 0, 0] = 1
    mask = torch.ones(2, 4, 4)
    per_pixel_pos = _bce(np.array(-2.0), np.array(1.0))
    per_pixel_neg0 = _bce(np.array(-2.0), np.array(0.0))
    per_pixel_neg1 = _bce(np.array(3.0), np.array(0.0))
    batch = balanced_bce_loss(logits, target, mask)
    assert batch.item() == pytest.approx((per_pixel_pos + 3 * per_pixel_neg1) / 4, rel=1e-5)
    per_image = balanced_bce_loss(logits, target, mask, per_image_mining=True)
    assert per_image.item() == pytest.approx((per_pixel_pos + 3 * per_pixel_neg0) / 4, rel=1e-5)


def test_losses_refuse_to_broadcast_across_the_batch() -> None:
    """TCM's official loss broadcast (N,1,H,W) against (N,H,W); here a
    mismatched target is an error, never a silent mix of images."""
    logits = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="shape mismatch"):
        balanced_bce_loss(logits, torch.zeros(1, 8, 8), torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="shape mismatch"):
        dice_loss(torch.zeros(2, 1, 8, 4), torch.zeros(2, 4, 8), torch.ones(2, 4, 8))


def test_balanced_bce_without_positives_is_zero_and_differentiable() -> None:
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = balanced_bce_loss(logits, torch.zeros(2, 8, 8), torch.ones(2, 8, 8))
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None


def test_dice_and_masked_l1_values() -> None:
    target = torch.zeros(1, 4, 4)
    target[0, :2] = 1
    mask = torch.ones(1, 4, 4)
    assert dice_loss(target[:, None], target, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(1 - target[:, None], target, mask).item() == pytest.approx(1.0, abs=1e-6)
    pred = torch.full((1, 1, 4, 4), 0.5)
    mask[0, 3] = 0  # 12 pixels count: 8 with |0.5-1| and 4 with |0.5-0|
    assert masked_l1_loss(pred, target, mask).item() == pytest.approx(0.5, rel=1e-5)
    mask.zero_()
    assert masked_l1_loss(pred, target, mask).item() == 0.0


# --- Detector optimizer groups ------------------------------------------


def test_param_groups_exclude_norms_and_biases_from_weight_decay() -> None:
    from tcmbench_dbnet.model import build_parts

    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.models.detector import Detector

    model = Detector(build_parts(DetectorConfig(backbone="resnet18")))
    model.backbone.lr_factor = 0.1
    groups = model.param_groups(base_lr=1e-3, weight_decay=1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    norm_or_bias = {
        f"{mn}.{pn}" if mn else pn
        for mn, m in model.named_modules()
        for pn, _ in m.named_parameters(recurse=False)
        if isinstance(m, nn.BatchNorm2d) or pn == "bias"
    }
    assert norm_or_bias  # BN layers in backbone and head, biases in the head
    seen = 0
    for group in groups:
        for p in group["params"]:
            name = names[id(p)]
            seen += 1
            assert (group["weight_decay"] == 0.0) == (name in norm_or_bias), name
            factor = 0.1 if name.startswith("backbone.") else 1.0
            assert math.isclose(group["lr"], 1e-3 * factor), name
    assert seen == len(names)


@pytest.mark.parametrize("channels", [None, [], [64, 0], [64, "128"], [True, 8]])
def test_detector_refuses_a_backbone_without_valid_out_channels(channels: object) -> None:
    from tcmbench.errors import PluginError
    from tcmbench.models.detector import Detector, DetectorParts

    backbone = nn.Conv2d(3, 4, 1)
    if channels is not None:
        backbone.out_channels = channels
    else:
        del backbone.out_channels
    parts = DetectorParts(
        backbone=backbone,
        neck_builder=lambda ch: nn.Identity(),
        head=nn.Identity(),
        loss=nn.Identity(),
        target_builder=lambda *a: {},
        postprocessor=lambda *a: [],
    )
    with pytest.raises(PluginError, match=r"backbone Conv2d must have out_channels"):
        Detector(parts)


def test_detector_reads_numpy_int_out_channels() -> None:
    from tcmbench.models.detector import backbone_channels

    backbone = nn.Module()
    backbone.out_channels = tuple(np.array([8, 16]))
    assert backbone_channels(backbone) == [8, 16]
