"""The cross-attention decoder TCM uses twice (TCM.md section 4).

As the visual prompt generator (VG) its queries are the dense pixel
embeddings and its memory is the text embedding; as the text-side context
decoder its query is the text embedding and its memory the image tokens
[global; dense]. Both residual updates are scaled by a small learnable gamma
(owned by the matching module) so training starts from plain CLIP features.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.tcm.prompts import _init_linear_and_norm


class CrossAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections, an output
    projection with bias, and dropout on the output (scale head_dim^-0.5)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(width, width, bias=False)
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        b, nq, c = query.shape
        nk = memory.shape[1]
        d = c // self.heads
        q = self.q(query).reshape(b, nq, self.heads, d).transpose(1, 2)
        k = self.k(memory).reshape(b, nk, self.heads, d).transpose(1, 2)
        v = self.v(memory).reshape(b, nk, self.heads, d).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.dropout(self.out(x.transpose(1, 2).reshape(b, nq, c)))


class DecoderMLP(nn.Module):
    """width -> 4*width, GELU, dropout, -> width."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width * 4)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width * 4, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))


class DecoderLayer(nn.Module):
    """Pre-norm: self-attention, cross-attention to the memory, MLP."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(width)
        self.self_attn = CrossAttention(width, heads, dropout)
        self.cross_norm = nn.LayerNorm(width)
        self.cross_attn = CrossAttention(width, heads, dropout)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = DecoderMLP(width, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        y = self.self_norm(x)
        x = x + self.self_attn(y, y)
        x = x + self.cross_attn(self.cross_norm(x), memory)
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class ContextDecoder(nn.Module):
    """Queries (B, Nq, visual_dim) attend to memory (B, Nm, visual_dim);
    returns (B, Nq, visual_dim). Defaults: width 256, 4 heads, 3 layers,
    dropout 0.1, visual_dim 1024 (about 3.95M parameters)."""

    def __init__(
        self,
        visual_dim: int = 1024,
        width: int = 256,
        heads: int = 4,
        layers: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.memory_norm_in = nn.LayerNorm(visual_dim)
        self.memory_proj = nn.Linear(visual_dim, width)
        self.memory_norm_out = nn.LayerNorm(width)
        self.query_norm = nn.LayerNorm(visual_dim)
        self.query_proj = nn.Linear(visual_dim, width)
        self.layers = nn.ModuleList(DecoderLayer(width, heads, dropout) for _ in range(layers))
        self.out_norm = nn.LayerNorm(width)
        self.out_proj = nn.Linear(width, visual_dim)
        self.apply(_init_linear_and_norm)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        mem = self.memory_norm_out(self.memory_proj(self.memory_norm_in(memory)))
        x = self.query_proj(self.query_norm(queries))
        for layer in self.layers:
            x = layer(x, mem)
        return self.out_proj(self.out_norm(x))
