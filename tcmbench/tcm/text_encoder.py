"""CLIP's text transformer run on TCM's prompt sequence (TCM.md section 2).

The sequence is assembled here from the predefined prompt (PP) tokens and
the learnable context (LP) that the matching module owns:

- PP + LP: [SOT, N learnable tokens, 12 prompt tokens, EOT]; read at EOT
  (index 13 + N for the default prompt);
- PP only: the 14 prompt tokens, read at EOT;
- LP only: the N learnable tokens, read at the last position.

The language-prompt offset (LG, one vector per image) is added to every token
before the positional embedding. The positional embedding is CLIP's 77 rows
truncated to the sequence length and the causal mask is built at that
length, so with a causal mask the EOT output equals CLIP's own
``encode_text`` on the padded prompt.

The weights are CLIP's and normally frozen (lr factor 0, requires_grad off),
but the module must run *with* autograd: gradients flow through it into the
learnable context and the prompt generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from open_clip.model import CLIP


class CLIPTextEncoder(nn.Module):
    """Frozen-by-default CLIP text tower (width 512, 12 layers, QuickGELU).

    Built from an open_clip ``CLIP`` model whose text modules are taken over
    (not copied): ``token_embedding``, ``transformer``, ``ln_final``,
    ``text_projection``, plus the truncated ``positional_embedding``.
    ``prompt_tokens`` = CLIP ids with SOT/EOT, or None for LP-only.
    """

    #: Marks the module for :func:`tcmbench.tcm.params.count_tcm_params`.
    is_tcm_text_encoder = True

    # Taken over from the CLIP model; the buffers are registered below.
    token_embedding: nn.Embedding
    transformer: nn.Module
    ln_final: nn.LayerNorm
    text_projection: nn.Parameter
    prompt_tokens: Tensor
    attn_mask: Tensor

    def __init__(self, clip: CLIP, prompt_tokens: Tensor | None, n_context: int) -> None:
        super().__init__()
        if prompt_tokens is None and n_context <= 0:
            raise ValueError(
                "the text encoder needs a predefined prompt or learnable context tokens"
            )
        n_prompt = 0 if prompt_tokens is None else int(prompt_tokens.numel())
        self.seq_len = n_prompt + int(n_context)
        max_len = int(clip.positional_embedding.shape[0])
        if self.seq_len > max_len:
            raise ValueError(
                f"prompt ({n_prompt} tokens) + {n_context} context tokens exceed CLIP's "
                f"{max_len} positions"
            )
        self.n_context = int(n_context)
        self.token_embedding = clip.token_embedding
        self.positional_embedding = nn.Parameter(
            clip.positional_embedding.detach()[: self.seq_len].clone()
        )
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.width = int(self.positional_embedding.shape[1])
        self.embed_dim = int(self.text_projection.shape[1])
        # Not saved: both follow from the configuration.
        tokens = prompt_tokens if prompt_tokens is not None else torch.zeros(0, dtype=torch.long)
        self.register_buffer("prompt_tokens", tokens.clone(), persistent=False)
        mask = torch.full((self.seq_len, self.seq_len), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        # EOT follows the learnable tokens inserted after SOT; LP-only reads the last one.
        self.eot_index = (
            self.seq_len - 1 if prompt_tokens is None else n_prompt - 1 + self.n_context
        )

    @property
    def uses_prompt(self) -> bool:
        return self.prompt_tokens.numel() > 0

    def build_sequence(self, context: Tensor | None, prompt_offset: Tensor | None) -> Tensor:
        """Token embeddings (B', L, 512): B' = 1 without LG, else the batch."""
        parts: list[Tensor] = []
        if self.uses_prompt:
            emb = self.token_embedding(self.prompt_tokens).unsqueeze(0)  # 1, L0, C
            parts.append(emb[:, :1])
            if self.n_context:
                parts.append(self._check_context(context))
            parts.append(emb[:, 1:])
        else:
            parts.append(self._check_context(context))
        x = torch.cat(parts, dim=1)
        if prompt_offset is not None:
            x = x + prompt_offset.unsqueeze(1).to(x.dtype)
        return x

    def _check_context(self, context: Tensor | None) -> Tensor:
        if context is None or context.shape[1] != self.n_context:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"expected a learnable context of {self.n_context} tokens, got {got}")
        return context

    def forward(self, context: Tensor | None = None, prompt_offset: Tensor | None = None) -> Tensor:
        """Text embedding (B', 1, 1024) for one class (K = 1)."""
        x = self.build_sequence(context, prompt_offset)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask.to(x.dtype))
        x = self.ln_final(x)
        return (x[:, self.eot_index] @ self.text_projection).unsqueeze(1)
