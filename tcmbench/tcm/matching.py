"""Instance-language matching: TCM's ``feature_transform`` (TCM.md
sections 3-5).

Order, per forward: attention-pool embeddings (from the backbone) -> memory
[global; dense] -> LG(global) -> text encoder -> VG updates dense -> the
context decoder updates the text -> score map S = cosine(dense', text') ->
S concatenated to the declared feature level; S / tau goes to the auxiliary
loss through ``extras["tcm_score_logits"]``.

Each ablation switch of :class:`~tcmbench.contract.spec.TCMConfig` removes its
module and its parameters entirely (LG: ``language_prompt_generator``; VG:
``visual_prompt_generator`` + ``visual_gamma``; text context decoder:
``text_context_decoder`` + ``text_gamma``; LP: ``learnable_context``), so
parameter counts and checkpoints say what was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmbench.tcm.decoders import ContextDecoder
from tcmbench.tcm.image_encoder import ClipFeatures
from tcmbench.tcm.prompts import LanguagePromptGenerator, init_learnable_context
from tcmbench.tcm.text_encoder import CLIPTextEncoder


@dataclass
class MatchingResult:
    """Intermediate embeddings of one matching pass (for visualisation and
    tests): ``dense`` before VG, ``visual_prompt`` = VG's output (None without
    VG), ``dense_prompted`` after VG, ``text`` the final text embedding
    (B, 1, 1024), ``score`` the cosine score map (B, 1, h, w)."""

    dense: Tensor
    visual_prompt: Tensor | None
    dense_prompted: Tensor
    text: Tensor
    score: Tensor


class InstanceLanguageMatching(nn.Module):
    """Computes the score map and concatenates it to one feature level.

    ``feature_level`` indexes the backbone's returned stages; when that
    level's resolution differs from the dense embedding's (not the case for
    the official configurations, which all use C5), the score map is resized
    bilinearly to it.
    """

    def __init__(
        self,
        text_encoder: CLIPTextEncoder,
        *,
        feature_level: int,
        visual_dim: int = 1024,
        language_generator: bool = True,
        visual_generator: bool = True,
        text_context_decoder: bool = True,
        tau: float = 0.07,
    ) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.feature_level = int(feature_level)
        self.tau = float(tau)
        if text_encoder.n_context:
            self.learnable_context = init_learnable_context(
                text_encoder.n_context, text_encoder.width
            )
        else:
            self.register_parameter("learnable_context", None)
        self.language_prompt_generator = (
            LanguagePromptGenerator(visual_dim, text_encoder.width) if language_generator else None
        )
        self.visual_prompt_generator: ContextDecoder | None
        self.text_context_decoder: ContextDecoder | None
        if visual_generator:
            self.visual_prompt_generator = ContextDecoder(visual_dim)
            self.visual_gamma = nn.Parameter(torch.full((), 1e-3))
        else:
            self.visual_prompt_generator = None
            self.register_parameter("visual_gamma", None)
        if text_context_decoder:
            self.text_context_decoder = ContextDecoder(visual_dim)
            self.text_gamma = nn.Parameter(torch.full((visual_dim,), 1e-3))
        else:
            self.text_context_decoder = None
            self.register_parameter("text_gamma", None)

    def match(self, feats: ClipFeatures) -> MatchingResult:
        """Run the text side and the prompting; return all intermediates."""
        global_emb = feats.global_embedding
        dense = feats.dense_embedding
        b, c, h, w = dense.shape
        dense_tokens = dense.flatten(2).transpose(1, 2)  # B, hw, C
        offset = None
        if self.language_prompt_generator is not None:
            offset = self.language_prompt_generator(global_emb)
        text = self.text_encoder(self.learnable_context, offset)
        text = text.expand(b, -1, -1)  # one text embedding for all images without LG
        visual_prompt = None
        dense_prompted = dense
        if self.visual_prompt_generator is not None:
            diff = self.visual_prompt_generator(dense_tokens, text)
            visual_prompt = diff.transpose(1, 2).reshape(b, c, h, w)
            dense_prompted = dense + self.visual_gamma * visual_prompt
        if self.text_context_decoder is not None:
            memory = torch.cat([global_emb.unsqueeze(1), dense_tokens], dim=1)
            text = text + self.text_gamma * self.text_context_decoder(text, memory)
        score = torch.einsum(
            "bchw,bkc->bkhw", F.normalize(dense_prompted, dim=1), F.normalize(text, dim=2)
        )
        return MatchingResult(dense, visual_prompt, dense_prompted, text, score)

    def forward(self, feats: ClipFeatures) -> tuple[list[Tensor], dict[str, Tensor]]:
        if not isinstance(feats, ClipFeatures):
            raise TypeError(
                "TCM's matching needs the CLIP image encoder's output (ClipFeatures); "
                "was the detector's backbone replaced after apply_tcm?"
            )
        result = self.match(feats)
        out = list(feats)
        level = out[self.feature_level]
        score = result.score
        if score.shape[-2:] != level.shape[-2:]:
            score = F.interpolate(
                score, size=level.shape[-2:], mode="bilinear", align_corners=False
            )
        out[self.feature_level] = torch.cat([level, score.to(level.dtype)], dim=1)
        extras = {
            "tcm_score_logits": result.score / self.tau,
            "tcm_score_map": result.score,
        }
        return out, extras
