"""The MobileNetV3 backbone of PaddleOCR's ``ch_PP-OCRv3_det`` detector.

Read off the inference graph ``ch_PP-OCRv3_det_infer.onnx``: MobileNetV3's
large layout at width 0.5 (channels rounded to multiples of 8), with the
squeeze-excitation blocks left out, as PaddleOCR's detection configs do.
Each inverted-residual block is a 1x1 expansion conv (present even when it
does not widen), a depthwise k x k conv carrying the stride, and a linear
1x1 projection, each followed by BatchNorm; the first two by ReLU or hard
swish. A block whose input and output agree in shape adds its input. The
stem is a 3x3 stride-2 conv with hard swish; after the last stage a 1x1
conv widens the stride-32 features to 480 channels (hard swish).

Returned stages (strides 4, 8, 16, 32) have 16, 24, 56 and 480 channels:
the outputs the graph's neck reads.
"""

from __future__ import annotations

from torch import Tensor, nn

from tcmbench.models.backbones import StageBackbone
from tcmbench_dbnet.ppocr.layers import ConvBNAct

#: (kernel, expanded channels, output channels, stride, activation) per
#: block, one list per returned stage.
Block = tuple[int, int, int, int, str]
PPOCRV3_STAGES: tuple[tuple[Block, ...], ...] = (
    ((3, 8, 8, 1, "relu"), (3, 32, 16, 2, "relu"), (3, 40, 16, 1, "relu")),
    ((5, 40, 24, 2, "relu"), (5, 64, 24, 1, "relu"), (5, 64, 24, 1, "relu")),
    (
        (3, 120, 40, 2, "hardswish"),
        (3, 104, 40, 1, "hardswish"),
        (3, 96, 40, 1, "hardswish"),
        (3, 96, 40, 1, "hardswish"),
        (3, 240, 56, 1, "hardswish"),
        (3, 336, 56, 1, "hardswish"),
    ),
    ((5, 336, 80, 2, "hardswish"), (5, 480, 80, 1, "hardswish"), (5, 480, 80, 1, "hardswish")),
)
PPOCRV3_STEM = 8
PPOCRV3_LAST = 480


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (k x k, stride) -> project (1x1, linear)."""

    def __init__(
        self,
        in_channels: int,
        kernel: int,
        expanded: int,
        out_channels: int,
        stride: int,
        act: str,
    ) -> None:
        super().__init__()
        self.expand = ConvBNAct(in_channels, expanded, 1, act=act)
        self.depthwise = ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act)
        self.project = ConvBNAct(expanded, out_channels, 1)
        self.shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.shortcut else y


class PPOCRMobileNetV3(StageBackbone):
    """Stem, four stages of inverted residuals, and the final 1x1 conv on
    the last stage; ``forward`` returns ``[C2, C3, C4, C5]``."""

    def __init__(
        self,
        stages: tuple[tuple[Block, ...], ...] = PPOCRV3_STAGES,
        stem_channels: int = PPOCRV3_STEM,
        last_channels: int = PPOCRV3_LAST,
    ) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, stride=2, act="hardswish")
        self.stages = nn.ModuleList()
        channels = stem_channels
        out_channels: list[int] = []
        for blocks in stages:
            layers = []
            for kernel, expanded, out, stride, act in blocks:
                layers.append(InvertedResidual(channels, kernel, expanded, out, stride, act))
                channels = out
            self.stages.append(nn.Sequential(*layers))
            out_channels.append(channels)
        self.last_conv = ConvBNAct(channels, last_channels, 1, act="hardswish")
        out_channels[-1] = last_channels
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outs: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        outs[-1] = self.last_conv(outs[-1])
        return outs


def ppocrv3_mobilenetv3() -> PPOCRMobileNetV3:
    return PPOCRMobileNetV3()
