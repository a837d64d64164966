"""The PP-LCNetV3 backbone of PaddleOCR's ``ch_PP-OCRv4_det`` detector,
in its deployed form.

Read off the inference graph ``ch_PP-OCRv4_det_infer.onnx`` (shipped in the
``rapidocr-onnxruntime`` wheel). PP-LCNetV3 trains each convolution as a
group of re-parameterisable branches with BatchNorm; the inference graph
holds what they fold into: one convolution with a bias. That folded form is
what is built here, so the imported weights are the graph's, unchanged;
fine-tuning trains these plain convolutions (no BatchNorm in the body of
the backbone, as in the deployed network).

- stem: 3x3 stride-2 conv (no bias) + BatchNorm, no activation;
- each block: a depthwise k x k conv, optionally squeeze-excitation (hard
  sigmoid with torch's slope 1/6, no residual), then a pointwise 1x1 conv.
  Every conv is followed by a learnable affine block (one scalar scale and
  bias) and, except a stride-2 depthwise conv, by hard swish and another
  learnable affine block;
- the four stage outputs (strides 4, 8, 16, 32: 48, 96, 192, 384 channels)
  each go through a 1x1 conv with a bias to 12, 18, 42 and 360 channels:
  the features the neck reads.
"""

from __future__ import annotations

from torch import Tensor, nn

from tcmbench.models.backbones import StageBackbone
from tcmbench_dbnet.ppocr.layers import (
    TORCH_HARD_SIGMOID_SLOPE,
    LearnableAffine,
    SqueezeExcite,
)

#: (kernel, output channels, stride, squeeze-excitation) per block; the
#: first list is the stride-2 stage after the stem, which is not returned.
Block = tuple[int, int, int, bool]
PPOCRV4_STAGES: tuple[tuple[Block, ...], ...] = (
    ((3, 32, 1, False),),
    ((3, 48, 2, False), (3, 48, 1, False)),
    ((3, 96, 2, False), (3, 96, 1, False)),
    ((3, 192, 2, False), *(((5, 192, 1, False),) * 4)),
    ((5, 384, 2, True), (5, 384, 1, True), (5, 384, 1, False), (5, 384, 1, False)),
)
PPOCRV4_STEM = 16
PPOCRV4_OUT = (12, 18, 42, 360)


class FoldedConv(nn.Module):
    """A deployed re-parameterised conv: conv with bias, learnable affine,
    then (unless ``act`` is False) hard swish and another learnable affine."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=True,
        )
        self.affine = LearnableAffine()
        self.act: nn.Module | None = None
        if stride != 2:
            self.act = nn.Sequential(nn.Hardswish(), LearnableAffine())

    def forward(self, x: Tensor) -> Tensor:
        x = self.affine(self.conv(x))
        return self.act(x) if self.act is not None else x


class LCNetV3Block(nn.Module):
    """Depthwise conv (stride), optional squeeze-excitation, pointwise conv."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, se: bool
    ) -> None:
        super().__init__()
        self.depthwise = FoldedConv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.se = SqueezeExcite(in_channels, slope=TORCH_HARD_SIGMOID_SLOPE) if se else None
        self.pointwise = FoldedConv(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        return self.pointwise(x)


class PPOCRLCNetV3(StageBackbone):
    """Stem, five block stages, and the 1x1 output convs of the last four;
    ``forward`` returns ``[C2, C3, C4, C5]``."""

    def __init__(
        self,
        stages: tuple[tuple[Block, ...], ...] = PPOCRV4_STAGES,
        stem_channels: int = PPOCRV4_STEM,
        out_channels: tuple[int, ...] = PPOCRV4_OUT,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.stages = nn.ModuleList()
        channels = stem_channels
        stage_channels = []
        for blocks in stages:
            layers = []
            for kernel, out, stride, se in blocks:
                layers.append(LCNetV3Block(channels, out, kernel, stride, se))
                channels = out
            self.stages.append(nn.Sequential(*layers))
            stage_channels.append(channels)
        returned = stage_channels[-len(out_channels) :]
        self.outputs = nn.ModuleList(
            nn.Conv2d(c, o, 1, bias=True) for c, o in zip(returned, out_channels)
        )
        self.out_channels = list(out_channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats = feats[-len(self.outputs) :]
        return [conv(f) for conv, f in zip(self.outputs, feats)]


def ppocrv4_lcnetv3() -> PPOCRLCNetV3:
    return PPOCRLCNetV3()
