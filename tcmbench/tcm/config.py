"""Validation of TCM switch combinations (torch-free).

The CLI options live in ``tcmbench/commands/_options.py``; whatever builds a
:class:`~tcmbench.contract.spec.TCMConfig` (CLI, recipe, checkpoint) gets the
same one-line errors from :func:`validate_tcm_config` when the model is built.
"""

from __future__ import annotations

from tcmbench.contract.spec import AUX_LOSS_BATCHINGS, TCMConfig
from tcmbench.errors import TcmbenchError

#: CLIP's text positional embedding has 77 rows: prompt + context must fit.
MAX_SEQUENCE = 77

#: ``tcm.aux_loss_batching``: how a batch's balanced-BCE auxiliary loss is
#: combined (tcmbench.tcm.loss). The first, the authors' code's broadcast, is
#: the default; ``per_image`` is the loss the paper describes.


class TCMConfigError(TcmbenchError):
    """A combination of TCM switches that cannot be built."""


def validate_tcm_config(tcm: TCMConfig) -> None:
    """Reject impossible switch combinations with a one-line reason."""
    if tcm.context_length < 0:
        raise TCMConfigError(f"--tcm-context must be >= 0, got {tcm.context_length}")
    if not tcm.predefined_prompt and tcm.context_length == 0:
        raise TCMConfigError(
            "TCM needs a text prompt: without the predefined prompt (--no-tcm-pp) the learnable "
            "prompt needs --tcm-context N > 0"
        )
    if tcm.predefined_prompt and not tcm.prompt.strip():
        raise TCMConfigError("the predefined TCM prompt is empty")
    if tcm.tau <= 0:
        raise TCMConfigError(f"TCM temperature tau must be > 0, got {tcm.tau}")
    if tcm.context_length > MAX_SEQUENCE:
        raise TCMConfigError(
            f"--tcm-context {tcm.context_length} exceeds CLIP's {MAX_SEQUENCE} text positions"
        )
    res = tcm.input_resolution
    if res is not None and (
        isinstance(res, bool) or not isinstance(res, int) or res <= 0 or res % 32
    ):
        raise TCMConfigError(
            f"TCM input_resolution must be a positive multiple of 32 (pixels), got {res!r}"
        )
    batching = tcm.aux_loss_batching
    if batching is not None and batching not in AUX_LOSS_BATCHINGS:
        raise TCMConfigError(
            f"tcm.aux_loss_batching must be one of {', '.join(AUX_LOSS_BATCHINGS)}, got {batching!r}"
        )
    for name in ("lr_factor_image", "lr_factor_text", "aux_weight"):
        if getattr(tcm, name) < 0:
            raise TCMConfigError(f"TCM {name} must be >= 0, got {getattr(tcm, name)}")
