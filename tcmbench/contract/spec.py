"""Torch-free declarations a detector plugin registers.

A plugin module is imported when the CLI starts, so what it registers must
not import torch. A :class:`DetectorSpec` therefore points at *functions*
(imported lazily by the plugin) that build the torch parts on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: How the TCM auxiliary loss treats a batch (recipe key ``tcm.aux_loss_batching``):
#: the official code's broadcast over the batch (default) or per image.
AUX_LOSS_BATCHINGS = ("official_broadcast", "per_image")
DEFAULT_AUX_LOSS_BATCHING = AUX_LOSS_BATCHINGS[0]


@dataclass(frozen=True)
class TCMSupport:
    """How a detector opts into TCM (docs/tcm.md).

    ``stages``: which CLIP image-encoder stages the detector's neck consumes,
    as indices into (C2, C3, C4, C5) -- (0, 1, 2, 3) for DBNet / PANet,
    (1, 2, 3) for FCENet; it must equal the plain detector's
    ``DetectorParts.in_stages``. ``feature_level``: index *into the consumed
    features* where the 1-channel score map is concatenated (3 for DBNet /
    PANet, 2 for FCENet: always C5). ``input_resolution``: the training
    resolution the CLIP positional embedding is resized to at load time
    (a recipe's ``tcm.input_resolution`` overrides it, see
    :attr:`TCMConfig.input_resolution`).

    The auxiliary target comes from exactly one of two places:

    - ``aux_target(targets, score_logits) -> (target, mask)`` derives it
      from the detector's own *batched* training targets (DBNet: its shrunk
      text mask; PANet: its text map);
    - ``sample_target(polygons, ignores, height, width) -> (target, mask)``
      builds it *per sample* from the augmented polygons, in the data
      loader next to the detector's targets (FCENet: every instance filled
      at 1/32, which its level-assigned targets cannot give). The core
      stores the pair as ``targets["tcm_target"]`` / ``targets["tcm_mask"]``.

    ``upsample_score_map``: whether the score logits are upsampled to the
    target's size before the loss (DB, PAN) or compared at 1/32 (FCE).
    ``aux_loss``: ``"balanced_bce"`` (DB, FCE) or ``"ohem_dice"`` (PAN).
    ``official_rules``: ``(regex, replacement)`` pairs renaming the neck and
    head keys of the authors' released TCM checkpoints (mmocr 0.4 names) to
    this plugin's module names, for ``tcmbench import-official``.
    """

    feature_level: int
    stages: tuple[int, ...] = (0, 1, 2, 3)
    input_resolution: int = 640
    aux_target: Callable[..., Any] | None = None
    sample_target: Callable[..., Any] | None = None
    upsample_score_map: bool = True
    aux_loss: str = "balanced_bce"
    official_rules: tuple[tuple[str, str], ...] = ()


def tcm_not_supported_message(name: str) -> str:
    """The one message for "plugin NAME has not opted into TCM".

    ``train``, ``bench``, ``evaluate`` and ``predict`` (and the TCM build
    hook) all say it in these words, so a user meets one sentence and one
    fix whichever command they ran first.
    """
    return (
        f"detector plugin {name!r} has not opted into TCM (its DetectorSpec has no "
        "`tcm=TCMSupport(...)`); run without --tcm, or see docs/plugins.md 'Opting into TCM'."
    )


@dataclass
class TCMConfig:
    """Switches and hyper-parameters of the TCM module (paper Tables 6 and 8)."""

    context_length: int = 4  # N learnable context tokens (LP); 0 disables LP
    predefined_prompt: bool = True  # PP
    language_generator: bool = True  # LG
    visual_generator: bool = True  # VG
    text_context_decoder: bool = True
    prompt: str = "the pixels of many arbitrary-shape text instances."
    clip_model: str = "RN50-quickgelu"
    clip_pretrained: str | None = "openai"  # open_clip pretrained tag; None = random init
    clip_weights: str | None = None  # local file overriding clip_pretrained
    tau: float = 0.07
    # CLIP positional-embedding grid at load time (pixels); None = the
    # detector's TCMSupport.input_resolution. Recipes set it per dataset
    # (the official PAN configs train at 736 on IC15 and 640 on CTW1500).
    input_resolution: int | None = None
    aux_weight: float = 1.0
    lr_factor_image: float = 0.1
    lr_factor_text: float = 0.0
    # How a batch's balanced-BCE auxiliary loss is combined
    # (tcmbench.tcm.loss.AUX_LOSS_BATCHINGS); None = the recipe's
    # tcm.aux_loss_batching, else "official_broadcast" (the authors' code).
    aux_loss_batching: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TCMConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class DetectorConfig:
    """What to build: architecture options common to all detectors, the
    plugin's own options, and the TCM switches (None = plain detector)."""

    backbone: str = "resnet18"
    pretrained_backbone: bool = False
    tcm: TCMConfig | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "pretrained_backbone": self.pretrained_backbone,
            "tcm": self.tcm.to_dict() if self.tcm is not None else None,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectorConfig:
        tcm = d.get("tcm")
        return cls(
            backbone=d.get("backbone", "resnet18"),
            pretrained_backbone=bool(d.get("pretrained_backbone", False)),
            tcm=TCMConfig.from_dict(tcm) if tcm else None,
            options=dict(d.get("options") or {}),
        )


@dataclass(frozen=True)
class DetectorSpec:
    """A detector architecture contributed by a plugin.

    ``build_parts(config) -> tcmbench.models.detector.DetectorParts`` builds
    the torch modules (import torch inside it). ``recipes`` maps a recipe
    name (usually a dataset name) to a plain dict of training / test
    settings; ``default_recipe`` is used when a dataset has none. ``tcm`` is
    None when the detector has not opted into TCM: asking for ``--tcm`` then
    fails with a clear error.

    ``load_weights(weights, device) -> tcmbench.hub.checkpoints.LoadedCheckpoint``
    (None for a trainable detector) makes an *inference-only* plugin: its
    ``--weights`` are not a tcmbench checkpoint but whatever the plugin
    reads (the ``onnx`` plugin: an ONNX file and its config). ``evaluate``
    and ``predict`` call it instead of rebuilding the network from
    ``build_parts``; the returned ``model`` needs only what inference uses
    (called on a batch it returns the maps, ``postprocessor``, ``eval()``,
    ``train(False)``, optionally ``make_transform(recipe)``) and
    ``meta["recipe"]`` holds the complete test settings. See
    docs/plugins.md, "Inference-only plugins".

    ``build_postprocess(config) -> postprocessor`` (optional) builds the
    postprocessor ``build_parts`` would, *without importing torch*; the
    postprocessor must take numpy maps. With it, ``--runtime onnxruntime``
    runs a checkpoint whose ONNX export is already cached (or a model
    exported from this plugin) without importing torch at all; without it
    that path builds the torch parts to get the postprocessor.
    """

    name: str
    build_parts: Callable[[DetectorConfig], Any]
    summary: str = ""
    version: str = ""
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_recipe: str = "default"
    tcm: TCMSupport | None = None
    load_weights: Callable[[str, str], Any] | None = None
    #: The postprocessor without torch (class doc); None: only through build_parts.
    build_postprocess: Callable[[DetectorConfig], Any] | None = None
    #: Where this detector's paper recipes follow or leave the authors' code
    #: (:class:`tcmbench.contract.fidelity.FidelityRow`); docs/<plugin>.md's
    #: generated ``fidelity`` table.
    fidelity: tuple[Any, ...] = ()

    @property
    def inference_only(self) -> bool:
        """Whether the plugin loads finished models (``load_weights``)
        instead of building trainable ones."""
        return self.load_weights is not None

    def require_recipe(self, name: str) -> str:
        """``name`` when the plugin has that recipe, else a one-line error
        listing them: a recipe asked for by name (``--recipe``) must never
        fall back to the default silently -- a typo would train or score
        with other settings."""
        from tcmbench.errors import TcmbenchError

        if self.load_weights is not None:
            # An inference-only plugin (onnx) has no recipes at all; its own
            # "--recipe does not apply" error (tcmbench.inference.settings.resolve_test_recipe) says why.
            return name
        if name not in self.recipes:
            raise TcmbenchError(
                f"plugin {self.name!r} has no recipe {name!r}; its recipes: "
                + ", ".join(sorted(self.recipes))
            )
        return name

    def recipe(self, name: str | None) -> dict[str, Any]:
        """The named recipe, falling back to the default one (a deep copy:
        callers may edit it without changing the plugin's recipes)."""
        import copy

        if name and name in self.recipes:
            return copy.deepcopy(dict(self.recipes[name]))
        return copy.deepcopy(dict(self.recipes.get(self.default_recipe, {})))
