"""Deformable-convolution ResNets (``--backbone resnet50-dcn``): the DCNv2
layer, its wiring into torchvision's ResNet with ImageNet weights, its FLOPs,
and training through each detector plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.inference.profiling import flops_by_module, measure_flops
from tcmbench.models.backbones import (
    BACKBONES,
    build_backbone,
    canonical_backbone_name,
    hub_checkpoint_path,
    parse_backbone_name,
)
from tcmbench.models.dcn import ModulatedDeformConv2d, convert_resnet_to_dcn

torch.set_num_threads(1)


def _dcns(module: nn.Module) -> dict[str, ModulatedDeformConv2d]:
    return {n: m for n, m in module.named_modules() if isinstance(m, ModulatedDeformConv2d)}


def _unit_masks(module: nn.Module) -> None:
    """Modulation scalars of every DCN at sigmoid(30) = 1 - 1e-13: with zero
    offsets the layer is then its plain convolution."""
    with torch.no_grad():
        for m in _dcns(module).values():
            bias = m.conv_offset.bias
            assert bias is not None
            bias[m.num_offsets :] = 30.0


# --- names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical", "groups"),
    [
        ("resnet50-dcn", "resnet50_dcn", 1),
        ("R50-DCN", "resnet50_dcn", 1),
        ("r50_dcnv2", "resnet50_dcn", 1),
        ("resnet50-dcn-g1", "resnet50_dcn", 1),
        ("resnet50-dcn-g2", "resnet50_dcn_g2", 2),
        ("r18-dcn", "resnet18_dcn", 1),
        ("resnet50", "resnet50", 0),
    ],
)
def test_dcn_names_and_aliases(name: str, canonical: str, groups: int) -> None:
    assert canonical_backbone_name(name) == canonical
    assert parse_backbone_name(name)[1] == groups
    assert canonical_backbone_name(canonical) == canonical


def test_listed_backbones_are_canonical_and_include_dcn() -> None:
    assert {"resnet50_dcn", "resnet18_dcn", "resnet50_dcn_g2"} <= set(BACKBONES)
    assert all(canonical_backbone_name(b) == b for b in BACKBONES)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("mobilenetv3_small-dcn", "ResNets only"),
        ("resnet50-dcn-g3", "must divide 128"),
        ("resnet50-dcn-g0", "must divide 128"),
        ("resnet50dcn", "choose one of"),
    ],
)
def test_bad_dcn_names_are_clear_errors(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as err:
        build_backbone(name)
    assert "resnet50_dcn" in str(err.value)


# --- the layer -------------------------------------------------------------


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 2)])
def test_fresh_dcn_is_half_its_conv_and_unit_masks_give_the_conv(stride: int, groups: int) -> None:
    """DCNv2 init (zero offset predictor): offsets 0, masks sigmoid(0) = 0.5."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, stride=stride, padding=1, bias=False)
    dcn = ModulatedDeformConv2d.from_conv(conv, deform_groups=groups)
    assert dcn.conv_offset.out_channels == 27 * groups
    assert dcn.conv_offset.stride == (stride, stride)
    assert torch.equal(dcn.weight, conv.weight) and dcn.weight is not conv.weight
    x = torch.randn(2, 8, 15, 17)
    with torch.no_grad():
        plain = conv(x)
        torch.testing.assert_close(dcn(x), 0.5 * plain, atol=1e-5, rtol=1e-5)
        _unit_masks(dcn)
        torch.testing.assert_close(dcn(x), plain, atol=1e-5, rtol=1e-5)


def test_offsets_move_the_sampling_points() -> None:
    """Offset channels are (dy, dx) per tap: dy = +1 everywhere samples one
    row lower, i.e. convolves the input shifted up by one row."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    dcn = ModulatedDeformConv2d.from_conv(conv)
    _unit_masks(dcn)
    bias = dcn.conv_offset.bias
    assert bias is not None
    with torch.no_grad():
        bias[0 : dcn.num_offsets : 2] = 1.0  # dy of each of the 9 taps
        x = torch.randn(1, 4, 12, 10)
        shifted = conv(x[:, :, 1:])  # row r of this = row r + 1 of the input
        out = dcn(x)
    # rows 1..H-2: away from the zero padding, which the two treat differently
    torch.testing.assert_close(out[:, :, 1:-1], shifted[:, :, 1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, conv(x), atol=1e-3)


def test_convert_refuses_a_resnet_without_stages() -> None:
    with pytest.raises(ValueError, match="no ResNet stage 'layer2'"):
        convert_resnet_to_dcn(nn.Sequential(nn.Conv2d(3, 3, 3)))


# --- backbones -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "channels", "count", "groups", "first_stride"),
    [
        ("resnet50-dcn", [256, 512, 1024, 2048], 4 + 6 + 3, 1, 2),
        ("resnet50-dcn-g2", [256, 512, 1024, 2048], 4 + 6 + 3, 2, 2),
        # BasicBlock: conv1 carries the stride and stays plain (DB authors' R18)
        ("resnet18-dcn", [64, 128, 256, 512], 2 + 2 + 2, 1, 1),
    ],
)
def test_dcn_backbones_convert_stages_3_to_5(
    name: str, channels: list[int], count: int, groups: int, first_stride: int
) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    assert list(backbone.out_channels) == channels
    dcns = _dcns(backbone)
    assert len(dcns) == count
    assert all(n.split(".")[0] in ("layer2", "layer3", "layer4") for n in dcns)
    assert all(n.endswith(".conv2") and m.deform_groups == groups for n, m in dcns.items())
    # a Bottleneck's strided 3x3 is deformable too (no fallback on stride),
    # its offsets predicted at the output's stride
    for i in (2, 3, 4):
        first = dcns[f"layer{i}.0.conv2"]
        assert first.stride == first.conv_offset.stride == (first_stride, first_stride)
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))
    ]


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TCMBENCH_OFFLINE", "1")  # never download
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "torch"


def test_imagenet_weights_load_into_dcn_and_match_the_plain_resnet(torch_home: Path) -> None:
    """Pretrained-like weights (a random torchvision resnet50 in the hub
    cache): the DCN backbone takes every tensor under the same name, its
    offset predictors start at zero, and with unit masks its stage outputs
    are those of the plain ResNet-50 (this checks stride, padding and
    weight wiring of all 13 deformable convs)."""
    import torchvision.models as tvm

    torch.manual_seed(7)
    reference = tvm.resnet50(weights=None)
    for m in reference.modules():  # non-trivial BN statistics, as trained weights have
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = hub_checkpoint_path(tvm.ResNet50_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    plain = build_backbone("resnet50", pretrained=True).eval()
    dcn = build_backbone("resnet50-dcn", pretrained=True).eval()
    plain_state, dcn_state = plain.state_dict(), dcn.state_dict()
    extra = set(dcn_state) - set(plain_state)
    assert set(plain_state) <= set(dcn_state)
    assert extra == {f"{n}.conv_offset.{p}" for n in _dcns(dcn) for p in ("weight", "bias")}
    assert all(torch.equal(plain_state[k], dcn_state[k]) for k in plain_state)
    assert all(not dcn_state[k].any() for k in extra)

    # float64: in float32 the deformable im2col + GEMM and oneDNN's conv sum
    # in different orders, and 13 layers deep C5 differs by ~1e-4 of its
    # scale; a wiring fault (stride, padding, weight) differs by O(1).
    plain, dcn = plain.double(), dcn.double()
    x = torch.randn(2, 3, 96, 64, dtype=torch.float64)
    with torch.no_grad():
        want = plain(x)
        fresh = dcn(x)
        _unit_masks(dcn)
        got = dcn(x)
    torch.testing.assert_close(fresh[0], want[0])  # layer1 stays a plain stage
    assert not torch.allclose(fresh[1], want[1], atol=1e-3)  # masks 0.5 at init
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=0)


def test_flop_counter_counts_deformable_convs() -> None:
    """Each DCN counts its convolution as the plain conv does, plus the
    bilinear sampling (8 FLOPs) and modulation (1) of every sampled value;
    the offset convs are ordinary convs on top."""
    torch.manual_seed(0)
    plain = build_backbone("resnet18").eval()
    dcn = build_backbone("resnet18-dcn").eval()
    height, width = 64, 96
    per_module = flops_by_module(dcn, height, width)
    shapes: dict[str, torch.Size] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=n: shapes.__setitem__(n, out.shape))
        for n, m in _dcns(dcn).items()
    ]
    with torch.no_grad():
        dcn(torch.zeros(1, 3, height, width))
    for h in hooks:
        h.remove()
    extra = 0.0
    for name, out in shapes.items():
        m = _dcns(dcn)[name]
        positions = out[-2] * out[-1]
        conv = 2 * positions * m.out_channels * m.in_channels * 9
        sampling = positions * m.in_channels * 9 * (8 + 1)
        offsets = per_module[f"{name}.conv_offset"]
        assert offsets == 2 * positions * 27 * m.in_channels * 9  # the bias adds are not counted
        assert per_module[name] == conv + sampling + offsets
        extra += sampling + offsets
    assert measure_flops(dcn, height, width) == measure_flops(plain, height, width) + extra


# --- detectors -------------------------------------------------------------


def _quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _batch(model: nn.Module, size: int = 96) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    words = [[_quad(10, 12, 80, 34)], [_quad(16, 50, 70, 70), _quad(8, 10, 60, 26)]]
    builder = model.target_builder
    per = [builder(w, [False] * len(w), size, size) for w in words]
    targets = {k: torch.from_numpy(np.stack([t[k] for t in per])) for k in per[0]}
    images = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, size, size)))
    return images.float(), targets


@pytest.mark.parametrize(
    ("plugin", "backbone"),
    [("dbnet", "resnet50-dcn"), ("pan", "resnet50-dcn"), ("fcenet", "resnet50-dcn-g2")],
)
def test_each_plugin_trains_a_dcn_backbone(plugin: str, backbone: str) -> None:
    torch.manual_seed(0)
    model = get_plugin_manager().hook.build_detector(
        spec=get_detector(plugin), config=DetectorConfig(backbone=backbone)
    )
    dcns = _dcns(model.backbone)
    assert len(dcns) == 13
    images, targets = _batch(model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for step in range(3):
        opt.zero_grad()
        loss = model(images, targets)["losses"]["loss"]
        loss.backward()
        if step == 0:
            grads = [m.conv_offset.weight.grad for m in dcns.values()]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert sum(int(g.abs().sum() > 0) for g in grads if g is not None) == 13
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    assert all(m.conv_offset.weight.abs().sum() > 0 for m in dcns.values())  # they moved
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert model.postprocessor(out, [{}, {}]) is not None


def test_tcm_replaces_a_dcn_backbone_like_any_other() -> None:
    """--tcm swaps the backbone for CLIP's image encoder: no deformable conv
    is left, and the model has the same parameters as TCM over resnet50."""
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    spec = get_detector("dbnet")
    build = get_plugin_manager().hook.build_detector
    tcm = TCMConfig(clip_pretrained=None)
    with_dcn = build(spec=spec, config=DetectorConfig(backbone="resnet50-dcn", tcm=tcm))
    plain = build(spec=spec, config=DetectorConfig(backbone="resnet50", tcm=tcm))
    assert not _dcns(with_dcn)
    assert type(with_dcn.backbone).__name__ == "CLIPImageEncoder"
    assert sum(p.numel() for p in with_dcn.parameters()) == sum(
        p.numel() for p in plain.parameters()
    )


def test_dcn_checkpoint_round_trip(tmp_path: Path) -> None:
    """The backbone name in config.json rebuilds the DCN network, and the
    learnt offset convs come back from safetensors."""
    from tcmbench.hub import checkpoints as hub

    torch.manual_seed(0)
    spec = get_detector("dbnet")
    config = DetectorConfig(backbone="r18-dcn")
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config).eval()
    with torch.no_grad():
        for m in _dcns(model).values():
            m.conv_offset.weight.normal_(0, 0.01)  # as if trained
    saved = hub.save_checkpoint(tmp_path / "ckpt", model, spec, config)
    loaded = hub.load_checkpoint(saved, plugin="dbnet").model.eval()
    assert len(_dcns(loaded)) == 6
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["prob"], model(x)["prob"])
