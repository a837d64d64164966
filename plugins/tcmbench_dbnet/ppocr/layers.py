"""Small layers the PP-OCR detectors are made of.

Each exists as a module (not a function call inside ``forward``) so that
the ONNX importer can pair it with the graph node it reproduces and check
its settings (:mod:`tcmbench_dbnet.ppocr.onnx_import`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The slope of PaddleOCR's hard sigmoid in the RSE-FPN gates (ONNX
#: ``HardSigmoid`` alpha 0.2); torch's ``nn.Hardsigmoid`` has 1/6, which
#: PP-LCNetV3's own squeeze-excitation uses.
PADDLE_HARD_SIGMOID_SLOPE = 0.2
TORCH_HARD_SIGMOID_SLOPE = 1.0 / 6.0


class HardSigmoid(nn.Module):
    """``clamp(slope * x + offset, 0, 1)`` with the slope kept explicit:
    the two PP-OCR gates use different slopes, and a wrong one still runs,
    just gives other numbers."""

    def __init__(self, slope: float = PADDLE_HARD_SIGMOID_SLOPE, offset: float = 0.5) -> None:
        super().__init__()
        self.slope = float(slope)
        self.offset = float(offset)

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x * self.slope + self.offset, 0.0, 1.0)

    def extra_repr(self) -> str:
        return f"slope={self.slope:.6g}, offset={self.offset:.6g}"


class LearnableAffine(nn.Module):
    """``scale * x + bias`` with one learnable scalar each: PP-LCNetV3's
    "learnable affine block", which follows each of its convolutions and
    activations."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(scale)))
        self.bias = nn.Parameter(torch.full((1,), float(bias)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.bias


def activation(name: str | None) -> nn.Module | None:
    """``relu`` / ``hardswish`` / None (no activation)."""
    if name is None:
        return None
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hardswish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) + BatchNorm + optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        act_layer = activation(act)
        if act_layer is not None:
            layers.append(act_layer)
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: global average pool, 1x1 conv down by ``reduction``,
    ReLU, 1x1 conv back, hard sigmoid; the input is multiplied by the gate
    and, with ``residual``, added back (the RSE-FPN's "residual SE")."""

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        slope: float = PADDLE_HARD_SIGMOID_SLOPE,
        residual: bool = False,
    ) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = HardSigmoid(slope)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        w = self.gate(self.expand(self.act(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        y = x * w
        return x + y if self.residual else y
