"""Backbones that return their stage features.

Every backbone here maps an image batch (B, 3, H, W) to the list of stage
features ``[C2, C3, C4, C5]`` at strides 4, 8, 16 and 32, and carries
``out_channels`` (one int per stage). That is the seam the detector neck and
the TCM wrapper rely on: TCM swaps the backbone for CLIP's image encoder,
which honours the same contract (ARCHITECTURE.md, TCM.md section 6).

ImageNet weights come from torchvision's weights API and torch hub cache
(``$TORCH_HOME/hub/checkpoints``). Offline (``HF_HUB_OFFLINE`` or
``TCMBENCH_OFFLINE`` set) a missing file is a :class:`CheckpointError` that
names the path to put it in; nothing is downloaded. Weights are loaded with
``torch.load(..., weights_only=True)`` only.

``<resnet>-dcn`` (``resnet50-dcn``, ``resnet18-dcn``) is that ResNet with
modulated deformable convolution (DCNv2, :mod:`tcmbench.models.dcn`) in
stages conv3..conv5, as the DB paper's DBNet and mmocr's DBNet configs
have it (one offset group); ``-dcn-gN`` sets N offset groups
(``resnet50-dcn-g2``: mmocr's FCENet configs). The name says it all, so a
checkpoint's ``config.json`` rebuilds the same network and a recipe picks
the variant with ``model.backbone``. ImageNet weights of the plain ResNet
load into it unchanged (the deformable convs keep ``conv2``'s weight
names and shapes; their offset predictors start at zero).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from tcmbench.errors import CheckpointError
from tcmbench.models.dcn import DCN_LAYERS, ModulatedDeformConv2d, convert_resnet_to_dcn

if TYPE_CHECKING:
    from torchvision.models import MobileNetV3, ResNet

log = logging.getLogger(__name__)

OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "TCMBENCH_OFFLINE")

# name -> (torchvision builder name, weights enum name, weights member)
_RESNETS = {
    "resnet18": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V1"),
}
_MOBILENETS = {
    "mobilenetv3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights", "IMAGENET1K_V1"),
    "mobilenetv3_large": ("mobilenet_v3_large", "MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
}
_ALIASES = {
    "r18": "resnet18",
    "r50": "resnet50",
    "mobilenetv3": "mobilenetv3_small",
    "mobilenet_v3_small": "mobilenetv3_small",
    "mobilenet_v3_large": "mobilenetv3_large",
}

#: ``<resnet>_dcn`` or ``<resnet>_dcn_g<N>`` (after ``-`` -> ``_``); the
#: resnet part may be an alias (``r50-dcn``).
_DCN_NAME = re.compile(r"^(?P<base>[a-z0-9_]+?)_dcn(?:v2)?(?:_g(?P<groups>\d+))?$")
#: The smallest input width of a deformable conv (conv2 of layer2 in
#: ResNet-18 and -50): the offset groups must divide it.
_DCN_MIN_CHANNELS = 128

BACKBONES: tuple[str, ...] = (
    *_RESNETS,
    *(f"{name}_dcn" for name in _RESNETS),
    "resnet50_dcn_g2",
    *_MOBILENETS,
)


def offline() -> bool:
    """True when the user asked for no network access (HF-style env vars)."""
    return any(
        os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no", "off")
        for var in OFFLINE_ENV_VARS
    )


class StageBackbone(nn.Module):
    """The backbone contract: ``forward(images) -> [C2, C3, C4, C5]`` and
    ``out_channels``, the channels of each returned stage."""

    out_channels: list[int]


class ResNetStages(StageBackbone):
    """A torchvision ResNet without its pooling / classifier, returning C2..C5."""

    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    relu: nn.ReLU
    maxpool: nn.MaxPool2d
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, resnet: ResNet) -> None:
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.out_channels = [_last_channels(getattr(self, f"layer{i}")) for i in range(1, 5)]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


class MobileNetV3Stages(StageBackbone):
    """torchvision MobileNetV3 ``features`` cut into four stages (strides
    4, 8, 16, 32). The final 1x1 expansion conv (576 / 960 channels) is left
    out: the neck's lateral 1x1 conv does that job far more cheaply."""

    def __init__(self, mobilenet: MobileNetV3) -> None:
        super().__init__()
        features = list(mobilenet.features.children())[:-1]
        cuts = _stride_cuts(features)
        self.stages = nn.ModuleList()
        start = 0
        for end in cuts:
            self.stages.append(nn.Sequential(*features[start : end + 1]))
            start = end + 1
        self.out_channels = [_last_channels(stage) for stage in self.stages]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def _last_channels(module: nn.Module) -> int:
    """Output channels of a stage: those of its last conv layer (a
    deformable conv counts; its offset predictor does not)."""
    convs = [
        m
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d | ModulatedDeformConv2d) and not name.endswith("conv_offset")
    ]
    if not convs:
        raise ValueError(f"no conv layer in {type(module).__name__}")
    last = convs[-1]
    # Bottleneck/BasicBlock: the last conv in module order may be the
    # downsample conv, whose out_channels equal the block's anyway.
    return int(last.out_channels)


def _stride_cuts(features: list[nn.Module]) -> list[int]:
    """Index of the last feature block at each of the strides 4, 8, 16, 32,
    found with a tiny dummy forward so it holds for any MobileNetV3 width."""
    x = torch.zeros(1, 3, 64, 64)
    last_at: dict[int, int] = {}
    with torch.no_grad():
        for i, block in enumerate(features):
            was_training = block.training
            block.eval()
            x = block(x)
            block.train(was_training)
            last_at[64 // x.shape[-1]] = i
    missing = [s for s in (4, 8, 16, 32) if s not in last_at]
    if missing:
        raise ValueError(f"MobileNetV3 features have no stage at stride(s) {missing}")
    return [last_at[s] for s in (4, 8, 16, 32)]


def _unknown(name: str, why: str = "") -> ValueError:
    return ValueError(
        f"unknown backbone {name!r}{why}; choose one of {', '.join(BACKBONES)} "
        "(-gN after -dcn: N offset groups)"
    )


def parse_backbone_name(name: str) -> tuple[str, int]:
    """``(plain backbone, offset groups)``: ``("resnet50", 0)`` for
    ``resnet50``, ``("resnet50", 1)`` for ``resnet50-dcn`` / ``r50_dcnv2``,
    ``("resnet50", 2)`` for ``resnet50-dcn-g2``. ValueError naming the
    choices for anything else."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _RESNETS or key in _MOBILENETS:
        return key, 0
    match = _DCN_NAME.match(key)
    if match is None:
        raise _unknown(name)
    base = _ALIASES.get(match["base"], match["base"])
    if base not in _RESNETS:
        raise _unknown(name, " (deformable convolution is offered for the ResNets only)")
    groups = int(match["groups"] or 1)
    if groups < 1 or _DCN_MIN_CHANNELS % groups:
        raise _unknown(name, f" (offset groups must divide {_DCN_MIN_CHANNELS})")
    return base, groups


def canonical_backbone_name(name: str) -> str:
    """The one spelling of a backbone name: ``R50`` -> ``resnet50``,
    ``r50-dcn-g1`` -> ``resnet50_dcn``, ``resnet50-dcn-g2`` ->
    ``resnet50_dcn_g2``. ValueError for an unknown name."""
    base, groups = parse_backbone_name(name)
    if groups == 0:
        return base
    return f"{base}_dcn" if groups == 1 else f"{base}_dcn_g{groups}"


def build_backbone(name: str, pretrained: bool = False) -> StageBackbone:
    """Backbone ``name`` (resnet18, resnet50, resnet18-dcn, resnet50-dcn,
    resnet50-dcn-g2, mobilenetv3_small, mobilenetv3_large) returning
    ``[C2, C3, C4, C5]``, with ImageNet weights from the torch hub cache when
    ``pretrained`` (for a DCN ResNet: the plain ResNet's, loaded before its
    3x3 convs become deformable)."""
    import torchvision.models as tvm

    key, deform_groups = parse_backbone_name(name)
    builder_name, weights_enum, member = {**_RESNETS, **_MOBILENETS}[key]
    model = getattr(tvm, builder_name)(weights=None)
    if pretrained:
        weights = getattr(getattr(tvm, weights_enum), member)
        state = load_imagenet_state_dict(weights.url)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise CheckpointError(
                f"ImageNet weights for {key} do not fit the model (missing {missing[:3]}...); "
                f"delete {hub_checkpoint_path(weights.url)} and retry"
            )
        if unexpected:
            log.debug("ignored %d unexpected keys in %s weights", len(unexpected), key)
    if deform_groups:
        count = convert_resnet_to_dcn(model, deform_groups)
        log.debug(
            "%s: %d deformable 3x3 convs in %s, %d offset group(s)",
            name,
            count,
            "/".join(DCN_LAYERS),
            deform_groups,
        )
    if key in _RESNETS:
        return ResNetStages(model)
    return MobileNetV3Stages(model)


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub caches the file of ``url`` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_imagenet_state_dict(url: str) -> dict[str, Any]:
    """State dict of a torchvision weights file, from the torch hub cache,
    downloading it there first unless offline."""
    path = hub_checkpoint_path(url)
    if not path.is_file():
        if offline():
            raise CheckpointError(
                f"ImageNet backbone weights not in the torch hub cache: {path} is missing and "
                f"offline mode is on ({'/'.join(OFFLINE_ENV_VARS)}); download {url} to that "
                "path, or train without pretrained weights"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, path)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except Exception as exc:  # network errors come in many types
            raise CheckpointError(
                f"could not download ImageNet backbone weights {url} to {path} ({exc}); "
                "put the file there by hand, or train without pretrained weights"
            ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"ImageNet backbone weights {path} are unreadable or truncated ({exc}); "
            "delete the file and retry"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state
