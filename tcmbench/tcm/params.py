"""Parameter counts of a TCM model, the way the paper reports them.

The paper's "50M" for TCM-DBNet leaves out CLIP's text encoder (63.7M,
frozen); ``bench`` reports both counts so neither is mistaken for the other.
"""

from __future__ import annotations

from torch import nn


def _unique_numel(params: list[nn.Parameter]) -> int:
    seen: set[int] = set()
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def count_tcm_params(model: nn.Module) -> dict[str, int]:
    """``{"params": all parameters, "params_without_text_encoder": all but
    those of the CLIP text encoder(s)}``; buffers are not counted. For a
    model without TCM both numbers are equal."""
    all_params = list(model.parameters())
    text: list[nn.Parameter] = []
    for module in model.modules():
        if getattr(module, "is_tcm_text_encoder", False):
            text.extend(module.parameters())
    total = _unique_numel(all_params)
    return {"params": total, "params_without_text_encoder": total - _unique_numel(text)}
