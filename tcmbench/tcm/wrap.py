"""Turn a plugin's detector into its TCM variant (called by the pluggy
wrapper in :mod:`tcmbench.tcm.hook`).

Nothing here knows a particular detector: everything plugin-specific comes
from the spec's :class:`~tcmbench.contract.spec.TCMSupport` (which stages the
neck consumes, where the score map goes, how the auxiliary target is made),
and the changes go through the seams of
:class:`~tcmbench.models.detector.Detector`:

- ``detector.backbone`` <- CLIP's image encoder (lr factor 0.1 by default);
- ``detector.feature_transform`` <- instance-language matching, which owns
  the CLIP text encoder (lr factor 0 = frozen by default), the prompts and
  the decoders (lr factor 1);
- ``detector.rebuild_neck`` with one more channel at ``feature_level``;
- ``detector.aux_losses["tcm"]`` <- the score-map loss (batched as
  ``TCMConfig.aux_loss_batching`` says; default: as the authors' code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from tcmbench.contract.spec import DEFAULT_AUX_LOSS_BATCHING, tcm_not_supported_message
from tcmbench.errors import PluginError
from tcmbench.tcm.config import TCMConfigError, validate_tcm_config

if TYPE_CHECKING:  # imported where used: they pull in open_clip
    from tcmbench.tcm.image_encoder import CLIPImageEncoder
    from tcmbench.tcm.matching import InstanceLanguageMatching


def check_support(spec: Any) -> Any:
    """The spec's TCMSupport, checked; PluginError when it is unusable."""
    from tcmbench.tcm.loss import AUX_LOSSES

    support = getattr(spec, "tcm", None)
    name = getattr(spec, "name", "?")
    if support is None:
        raise PluginError(tcm_not_supported_message(name))
    stages = tuple(support.stages)
    if not stages or list(stages) != sorted(set(stages)) or any(s not in range(4) for s in stages):
        raise PluginError(
            f"plugin {name!r}: TCMSupport.stages must be increasing indices into "
            f"(C2, C3, C4, C5), got {stages}"
        )
    if not 0 <= support.feature_level < len(stages):
        raise PluginError(
            f"plugin {name!r}: TCMSupport.feature_level {support.feature_level} is not "
            f"an index into its {len(stages)} stages"
        )
    if (support.aux_target is None) == (support.sample_target is None):
        raise PluginError(
            f"plugin {name!r}: TCMSupport needs exactly one of aux_target (the score-map "
            "target from the detector's batched targets) and sample_target (built per sample "
            "from the polygons)"
        )
    if support.aux_loss not in AUX_LOSSES:
        raise PluginError(
            f"plugin {name!r}: TCMSupport.aux_loss {support.aux_loss!r} is not one of {AUX_LOSSES}"
        )
    if support.input_resolution % 32:
        raise PluginError(f"plugin {name!r}: TCMSupport.input_resolution must be a multiple of 32")
    return support


def _freeze_if_zero(module: nn.Module, factor: float) -> None:
    """lr factor 0 means frozen: no gradient *for the weights* (the module
    still runs with autograd so gradients pass through it)."""
    # torch's __setattr__ stub admits only Tensor | Module; a plain float
    # attribute is what Detector.lr_factors reads.
    module.lr_factor = float(factor)  # type: ignore[assignment]
    if factor == 0.0:
        module.requires_grad_(False)


def build_tcm_modules(tcm: Any, support: Any) -> tuple[CLIPImageEncoder, InstanceLanguageMatching]:
    """(image encoder, matching module) for a TCMConfig and a TCMSupport."""
    from tcmbench.tcm.image_encoder import CLIPImageEncoder
    from tcmbench.tcm.matching import InstanceLanguageMatching
    from tcmbench.tcm.prompts import tokenize_prompt
    from tcmbench.tcm.text_encoder import CLIPTextEncoder
    from tcmbench.tcm.weights import load_clip

    validate_tcm_config(tcm)
    clip = load_clip(tcm)
    if not hasattr(clip.visual, "attnpool"):
        raise TCMConfigError(
            f"TCM needs a ResNet CLIP with attention pooling; {tcm.clip_model} has none"
        )
    resolution = tcm.input_resolution or support.input_resolution
    image_encoder = CLIPImageEncoder(clip.visual, support.stages, resolution)
    tokens = tokenize_prompt(tcm.prompt) if tcm.predefined_prompt else None
    try:
        text_encoder = CLIPTextEncoder(clip, tokens, tcm.context_length)
    except ValueError as exc:
        raise TCMConfigError(str(exc)) from exc
    matching = InstanceLanguageMatching(
        text_encoder,
        feature_level=support.feature_level,
        visual_dim=image_encoder.embed_dim,
        language_generator=tcm.language_generator,
        visual_generator=tcm.visual_generator,
        text_context_decoder=tcm.text_context_decoder,
        tau=tcm.tau,
    )
    _freeze_if_zero(image_encoder, tcm.lr_factor_image)
    _freeze_if_zero(text_encoder, tcm.lr_factor_text)
    return image_encoder, matching


def apply_tcm(detector: Any, spec: Any, config: Any) -> Any:
    """Replace the detector's backbone by CLIP's image encoder, insert the
    matching module, rebuild the neck for the extra score-map channel and
    add the auxiliary loss. Returns the same detector object."""
    from tcmbench.tcm.loss import TCMAuxLoss, TCMSampleTargets, sample_aux_target

    support = check_support(spec)
    plain_stages = detector.in_stages or tuple(range(len(detector.backbone.out_channels)))
    if tuple(support.stages) != tuple(plain_stages):
        raise PluginError(
            f"plugin {spec.name!r}: TCMSupport.stages {tuple(support.stages)} differ from the "
            f"stages its neck reads (DetectorParts.in_stages {tuple(plain_stages)})"
        )
    tcm = config.tcm
    image_encoder, matching = build_tcm_modules(tcm, support)
    detector.backbone = image_encoder
    detector.in_stages = None  # the CLIP encoder returns exactly support.stages
    detector.feature_transform = matching
    channels = list(image_encoder.out_channels)
    channels[support.feature_level] += 1  # the score map
    detector.rebuild_neck(channels)
    aux_target = support.aux_target
    if support.sample_target is not None:
        detector.target_builder = TCMSampleTargets(detector.target_builder, support.sample_target)
        aux_target = sample_aux_target
    detector.aux_losses["tcm"] = TCMAuxLoss(
        aux_target,
        kind=support.aux_loss,
        upsample=support.upsample_score_map,
        weight=tcm.aux_weight,
        batching=tcm.aux_loss_batching or DEFAULT_AUX_LOSS_BATCHING,
    )
    return detector
