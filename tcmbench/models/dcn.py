"""Modulated deformable convolution (DCNv2) for the ResNet backbones.

The DB paper's DBNet-R50 (Liao et al., AAAI 2020) and mmocr's DBNet / FCENet
configs replace the 3x3 convolution of every residual block in ResNet stages
conv3..conv5 (torchvision's ``layer2``..``layer4``) by a modulated deformable
convolution (Zhu et al., "Deformable ConvNets v2", CVPR 2019). This module
builds that layer on :func:`torchvision.ops.deform_conv2d` and converts a
torchvision ResNet in place (:func:`convert_resnet_to_dcn`).

Layout, kept compatible with the mmcv ``ModulatedDeformConv2dPack`` the
official configs use so that their checkpoints map key for key:

- ``weight`` (and ``bias``) have the names and shapes of the ``nn.Conv2d``
  they replace: ImageNet weights of ``conv2`` load unchanged;
- ``conv_offset``, an ordinary conv with the same kernel, stride, padding
  and dilation, predicts ``3 * k * k`` channels per deformable group: the
  first ``2 * g * k * k`` are the offsets (torchvision's layout: (dy, dx) per
  kernel tap, group after group), the last ``g * k * k`` the mask logits;
  a sigmoid turns them into the modulation scalars;
- ``conv_offset`` starts at zero (weights and bias): offsets 0 and, as in
  the DCNv2 paper and mmcv, every modulation scalar sigmoid(0) = 0.5. A
  fresh layer therefore computes exactly half of the plain convolution; the
  batch norm after it removes that factor in training (batch statistics),
  and the network learns the masks from there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: Stages whose 3x3 convs become deformable: conv3..conv5 (DB paper, mmocr
#: ``stage_with_dcn=(False, True, True, True)``).
DCN_LAYERS: tuple[str, ...] = ("layer2", "layer3", "layer4")


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return int(value[0]), int(value[1])


class ModulatedDeformConv2d(nn.Module):
    """A DCNv2 layer: ``deform_conv2d(x, offsets(x), weight, mask=sigmoid(m(x)))``.

    Drop-in for an ``nn.Conv2d`` with the same ``weight`` / ``bias``;
    ``deform_groups`` (offset groups) must divide ``in_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...] = 3,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 1,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if deform_groups < 1 or in_channels % deform_groups:
            raise ValueError(
                f"deform_groups must be >= 1 and divide in_channels ({in_channels}), "
                f"got {deform_groups}"
            )
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups ({groups}) must divide in_channels ({in_channels}) and "
                f"out_channels ({out_channels})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(
            in_channels,
            deform_groups * 3 * kh * kw,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weight as ``nn.Conv2d`` has it; offsets at zero."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)
        self.reset_offsets()

    def reset_offsets(self) -> None:
        """Zero the offset / mask predictor: offsets 0, masks 0.5 (DCNv2)."""
        nn.init.zeros_(self.conv_offset.weight)
        if self.conv_offset.bias is not None:
            nn.init.zeros_(self.conv_offset.bias)

    @property
    def num_offsets(self) -> int:
        """Offset channels (``2 * g * k * k``); the rest of ``conv_offset``'s
        output are mask logits."""
        return 2 * self.deform_groups * self.kernel_size[0] * self.kernel_size[1]

    def offsets_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(offsets, modulation scalars in (0, 1)) predicted from ``x``."""
        out = self.conv_offset(x)
        return out[:, : self.num_offsets], torch.sigmoid(out[:, self.num_offsets :])

    def forward(self, x: Tensor) -> Tensor:
        from torchvision.ops import deform_conv2d

        offset, mask = self.offsets_and_mask(x)
        result: Tensor = deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )
        return result

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deform_groups={self.deform_groups}, "
            f"bias={self.bias is not None}"
        )

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, deform_groups: int = 1) -> ModulatedDeformConv2d:
        """The deformable counterpart of ``conv``, holding a copy of its
        weight (and bias), with zero offsets."""
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only zero padding given as numbers can be made deformable")
        layer = cls(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            deform_groups=deform_groups,
            bias=conv.bias is not None,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None and layer.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer


def convert_resnet_to_dcn(
    resnet: nn.Module, deform_groups: int = 1, layers: tuple[str, ...] = DCN_LAYERS
) -> int:
    """Replace ``conv2`` of every block in ``layers`` of a torchvision
    ResNet by a :class:`ModulatedDeformConv2d` holding the same weight.

    ``conv2`` is the 3x3 conv of both block kinds: the strided one of a
    Bottleneck (torchvision, like mmcv's ``style='pytorch'``, strides the
    3x3 conv; DCN does not fall back to a plain conv there), the second 3x3
    of a BasicBlock (as in the DB authors' ResNet-18). Returns the number of
    layers converted.
    """
    converted = 0
    for layer_name in layers:
        stage = getattr(resnet, layer_name, None)
        if not isinstance(stage, nn.Sequential):
            raise ValueError(f"{type(resnet).__name__} has no ResNet stage {layer_name!r}")
        for block in stage:
            conv = getattr(block, "conv2", None)
            if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3):
                raise ValueError(f"a block of {layer_name} has no 3x3 conv2 to make deformable")
            block.conv2 = ModulatedDeformConv2d.from_conv(conv, deform_groups)
            converted += 1
    return converted


def deform_conv2d_flops(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    use_mask: bool = True,
) -> int:
    """Forward FLOPs of one ``deform_conv2d`` call (multiply-add = 2).

    - the convolution proper: ``2 * B * Cout * Hout * Wout * Cin/groups * kh * kw``,
      what a plain conv of the same shape counts;
    - the bilinear sampling of the ``B * Cin * kh * kw * Hout * Wout``
      values it convolves: 4 multiply-adds (8 FLOPs) each;
    - the modulation (DCNv2): 1 multiply per sampled value.

    Computing the offsets and masks is an ordinary conv (``conv_offset``),
    counted by torch itself.
    """
    batch, in_channels = int(input_shape[0]), int(input_shape[1])
    out_channels, in_per_group, kh, kw = (int(s) for s in weight_shape)
    out_h, out_w = int(out_shape[-2]), int(out_shape[-1])
    positions = batch * out_h * out_w
    conv = 2 * positions * out_channels * in_per_group * kh * kw
    sampled = positions * in_channels * kh * kw
    return conv + sampled * (8 + (1 if use_mask else 0))
