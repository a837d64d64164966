"""Prompts of TCM's text side (TCM.md sections 2 and 3): the predefined
prompt's tokens, the learnable context tokens, and the language prompt
generator (LG) that makes the text embedding depend on the image.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import Tensor, nn

#: Width of CLIP's text tokens (the text transformer's width).
TOKEN_DIM = 512


def tokenize_prompt(prompt: str) -> Tensor:
    """CLIP BPE ids of ``prompt`` with start/end-of-text tokens, unpadded.

    The default prompt gives 14 ids (SOT + 12 + EOT). Unpadded because the
    text encoder's sequence is exactly [SOT, learnable tokens, rest], and its
    positional embedding is truncated to that length.
    """
    tokenizer = _tokenizer()
    ids = [tokenizer.sot_token_id, *tokenizer.encode(prompt), tokenizer.eot_token_id]
    return torch.tensor(ids, dtype=torch.long)


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """open_clip's CLIP tokenizer (loading its BPE vocabulary takes a moment)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def init_learnable_context(n_tokens: int, width: int = TOKEN_DIM) -> nn.Parameter:
    """The learnable prompt (LP): (1, N, width), randn then truncated normal
    (std 1, cut at +-2), as TCM initialises it."""
    context = torch.randn(1, n_tokens, width)
    nn.init.trunc_normal_(context, std=1.0, a=-2.0, b=2.0)
    return nn.Parameter(context)


def _init_linear_and_norm(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear weights, zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class LanguagePromptGenerator(nn.Module):
    """LG: global image embedding (B, 1024) -> a (B, 512) offset added to
    every token of the text-encoder input, so the text embedding becomes
    conditioned on the image. LN -> Linear -> ReLU -> LN -> Linear."""

    def __init__(self, visual_dim: int = 1024, token_dim: int = TOKEN_DIM) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(visual_dim)
        self.fc1 = nn.Linear(visual_dim, visual_dim)
        self.norm2 = nn.LayerNorm(visual_dim)
        self.fc2 = nn.Linear(visual_dim, token_dim)
        self.apply(_init_linear_and_norm)

    def forward(self, global_embedding: Tensor) -> Tensor:
        x = torch.relu(self.fc1(self.norm1(global_embedding)))
        return self.fc2(self.norm2(x))
