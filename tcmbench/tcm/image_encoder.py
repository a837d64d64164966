"""CLIP's image encoder (ModifiedResNet-50 with attention pooling) as a
detector backbone (TCM.md section 1).

open_clip's ``ModifiedResNet`` returns only the pooled token; TCM needs the
stage features C2..C5 *and* every output token of the attention pool: token 0
is the global image embedding, tokens 1..hw the dense (per-pixel) embedding
that is matched against the text embedding. The modules (and therefore the
parameter names, ``conv1`` .. ``layer4``, ``attnpool.*``) are taken over from
open_clip's model, so CLIP checkpoints and the official TCM checkpoints map
onto them one to one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet

#: Channels of C2, C3, C4, C5 of CLIP RN50 (width 64, bottleneck expansion 4).
STAGE_CHANNELS: tuple[int, ...] = (256, 512, 1024, 2048)
#: Output width of the attention pool (= CLIP's joint embedding width).
EMBED_DIM = 1024
#: The stride of C5 (and of the score map) with respect to the input.
OUTPUT_STRIDE = 32


class ClipFeatures(list):
    """The stage features a neck consumes (a plain ``list`` of tensors), plus
    the attention pool's embeddings as attributes.

    Why a list subclass: the Detector passes exactly one object from the
    backbone to its ``feature_transform``; necks and any code that does not
    know TCM keep seeing a list, while TCM's matching module reads
    ``global_embedding`` (B, 1024) and ``dense_embedding`` (B, 1024, h, w).
    """

    global_embedding: Tensor
    dense_embedding: Tensor


def resize_positional_embedding(pos: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a CLIP attention-pool positional embedding to a new grid.

    ``pos`` is (1 + g*g, C): the class-token row followed by a square g x g
    grid. The class row is kept as is, the grid is resized bilinearly
    (align_corners=False) to ``size`` = (h, w); the result is (1 + h*w, C).
    """
    cls_row, grid = pos[:1], pos[1:]
    side = math.isqrt(grid.shape[0])
    if side * side != grid.shape[0]:
        raise ValueError(f"positional embedding grid of {grid.shape[0]} rows is not square")
    # No int() on the sizes: under torch.jit tracing (the ONNX export) they
    # are traced values, and int() would freeze the traced image's grid into
    # the graph. For the same reason the shortcut is skipped while tracing
    # (resizing to the same grid is the identity anyway).
    h, w = size[0], size[1]
    if (side, side) == (h, w) and not torch.jit.is_tracing():
        return pos
    channels = grid.shape[1]
    grid = grid.reshape(1, side, side, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(h, w), mode="bilinear", align_corners=False)
    grid = grid.to(pos.dtype).permute(0, 2, 3, 1).reshape(h * w, channels)
    return torch.cat([cls_row, grid], dim=0)


class DenseAttentionPool(nn.Module):
    """CLIP's QKV attention pool, returning all output tokens.

    Tokens = flattened C5 with their spatial mean prepended, plus the
    positional embedding resized to the actual (h, w) at every forward; full
    multi-head self-attention over the 1 + hw tokens; ``c_proj`` to 1024.
    Parameter names match CLIP's ``attnpool`` (``positional_embedding``,
    ``q_proj``, ``k_proj``, ``v_proj``, ``c_proj``).
    """

    k_proj: nn.Linear
    q_proj: nn.Linear
    v_proj: nn.Linear
    c_proj: nn.Linear

    def __init__(self, pool: AttentionPool2d, grid: int) -> None:
        super().__init__()
        self.num_heads = int(pool.num_heads)
        # Load-time resize: (7*7 + 1) rows at 224 -> (grid*grid + 1) rows.
        resized = resize_positional_embedding(pool.positional_embedding.detach(), (grid, grid))
        self.positional_embedding = nn.Parameter(resized.clone())
        self.k_proj = pool.k_proj
        self.q_proj = pool.q_proj
        self.v_proj = pool.v_proj
        self.c_proj = pool.c_proj

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 2048, h, w) -> global (B, 1024), dense (B, 1024, h, w)."""
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # B, hw, C
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        pos = resize_positional_embedding(self.positional_embedding, (h, w))
        tokens = tokens + pos.unsqueeze(0).to(tokens.dtype)
        head_dim = c // self.num_heads

        def heads(t: Tensor) -> Tensor:
            return t.reshape(b, 1 + h * w, self.num_heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.q_proj(tokens)), heads(self.k_proj(tokens)), heads(self.v_proj(tokens))
        )
        out = self.c_proj(out.transpose(1, 2).reshape(b, 1 + h * w, c))
        dense = out[:, 1:].transpose(1, 2).reshape(b, -1, h, w)
        return out[:, 0], dense


class CLIPImageEncoder(nn.Module):
    """The TCM backbone: CLIP RN50 trunk + dense attention pool.

    Returns a :class:`ClipFeatures` with the stages listed in ``stages``
    (indices into C2..C5) and the pool's global and dense embeddings; C5 is
    always computed because the pool needs it. ``out_channels`` lists the
    channels of the returned stages, as the Detector contract asks.
    """

    # Taken over from open_clip's ModifiedResNet by name (add_module below).
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    act1: nn.Module
    conv2: nn.Conv2d
    bn2: nn.BatchNorm2d
    act2: nn.Module
    conv3: nn.Conv2d
    bn3: nn.BatchNorm2d
    act3: nn.Module
    avgpool: nn.Module
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential
    out_channels: list[int]

    def __init__(
        self,
        visual: ModifiedResNet,
        stages: Sequence[int] = (0, 1, 2, 3),
        input_resolution: int = 640,
    ) -> None:
        super().__init__()
        stages = tuple(int(s) for s in stages)
        if (
            not stages
            or any(s not in range(4) for s in stages)
            or list(stages) != sorted(set(stages))
        ):
            raise ValueError(
                f"stages must be increasing indices into (C2, C3, C4, C5), got {stages}"
            )
        if input_resolution % OUTPUT_STRIDE:
            raise ValueError(f"input_resolution must be a multiple of 32, got {input_resolution}")
        # Take over open_clip's modules (not copies) so names match CLIP's.
        for name in (
            "conv1",
            "bn1",
            "act1",
            "conv2",
            "bn2",
            "act2",
            "conv3",
            "bn3",
            "act3",
            "avgpool",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
        ):
            self.add_module(name, getattr(visual, name))
        self.attnpool = DenseAttentionPool(visual.attnpool, input_resolution // OUTPUT_STRIDE)
        self.stages = stages
        self.input_resolution = int(input_resolution)
        # (256, 512, 1024, 2048) for RN50; read from the layers for other widths.
        self.stage_channels = tuple(
            int(getattr(self, f"layer{i + 1}")[-1].conv3.out_channels) for i in range(4)
        )
        self.out_channels = [self.stage_channels[s] for s in stages]
        self.embed_dim = int(self.attnpool.c_proj.out_features)

    def forward(self, images: Tensor) -> ClipFeatures:
        x = self.act1(self.bn1(self.conv1(images)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.act3(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        global_embedding, dense_embedding = self.attnpool(c5)
        all_stages = (c2, c3, c4, c5)
        feats = ClipFeatures(all_stages[s] for s in self.stages)
        feats.global_embedding = global_embedding
        feats.dense_embedding = dense_embedding
        return feats
