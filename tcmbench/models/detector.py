"""The Detector: a model made of named parts.

Every detector plugin returns :class:`DetectorParts`; the core assembles them
into :class:`Detector`. The seams TCM needs are part of the contract, so the
TCM wrapper works for any plugin without plugin-specific code:

- ``backbone(images) -> list[Tensor]`` stage features, with ``out_channels``;
- ``feature_transform`` (None by default): ``feats -> (feats, extras)``,
  applied between backbone and neck. TCM puts its instance-language matching
  here (it selects stages, concatenates the score map to one level, and
  returns the score logits in ``extras``);
- the neck is built by ``neck_builder(in_channels)``, so a wrapper that
  changes the channel list (TCM adds one channel to C5) rebuilds it with
  :meth:`Detector.rebuild_neck`;
- ``aux_losses``: extra loss modules ``(outputs, targets) -> dict`` whose
  terms are added to the detector loss (TCM's score-map loss);
- learning-rate factors: a module may carry ``lr_factor``; a parameter takes
  the factor of its nearest ancestor that declares one (default 1.0).
  :meth:`Detector.param_groups` builds optimizer groups from that, exempts
  the parameter kinds it is given from weight decay (:data:`NO_DECAY_KINDS`),
  and leaves out parameters whose factor is 0 or that do not require grad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import torch
from torch import Tensor, nn

from tcmbench.errors import PluginError, TcmbenchError


@dataclass
class DetectorParts:
    """What a detector plugin builds.

    ``target_builder(polygons, ignores, height, width) -> dict[str, ndarray]``
    makes the per-image training targets (float32 maps at input resolution,
    same keys for every image so they stack into a batch).
    ``postprocessor(outputs, metas) -> list[list[Prediction]]`` turns the
    head's maps into polygons in original-image coordinates; each meta dict
    holds at least ``orig_size`` (h, w) and ``scale`` (sx, sy) = input size /
    original size.

    ``in_stages``: which backbone stages (indices into [C2, C3, C4, C5]) the
    neck consumes; None = all of them. FCENet reads C3..C5 only, so it says
    ``(1, 2, 3)``: the neck is built for, and fed, just those features.

    The head returns a dict; its values may be tensors or, for a multi-level
    head (FCENet: one prediction per stride), lists of tensors, one per
    level. Only the loss and the postprocessor read them.
    """

    backbone: nn.Module
    neck_builder: Callable[[list[int]], nn.Module]
    head: nn.Module
    loss: nn.Module
    target_builder: Callable[..., dict[str, Any]]
    postprocessor: Callable[..., list[list[Any]]]
    in_stages: tuple[int, ...] | None = None


_NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


#: Parameter kinds that can be exempt from weight decay, and what they are:
#: ``norm`` every parameter of a normalisation layer (:data:`_NORM_TYPES`,
#: subclasses included: open_clip's LayerNorm); ``bias`` every parameter
#: named ``bias``; ``embedding`` learned position / class / token
#: embeddings: a parameter whose own name ends in ``embedding``
#: (``positional_embedding`` of CLIP's attention pool and text encoder,
#: ``class_embedding`` of a ViT) or the weight of an ``nn.Embedding``;
#: ``prompt`` TCM's learnable context tokens (``learnable_context``,
#: :func:`tcmbench.tcm.prompts.init_learnable_context`; ``contexts`` as
#: DenseCLIP / CoOp name them).
NO_DECAY_KINDS = ("norm", "bias", "embedding", "prompt")
_PROMPT_NAMES = ("learnable_context", "contexts")


def check_no_decay(kinds: Any) -> list[str]:
    """``kinds`` as a list of known kinds (duplicates dropped, order kept);
    an unknown kind is an error that lists the valid ones."""
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)):
        raise TcmbenchError(
            f"no_decay must be a list of parameter kinds ({', '.join(NO_DECAY_KINDS)}), "
            f"got {kinds!r}"
        )
    out: list[str] = []
    for kind in kinds:
        if kind not in NO_DECAY_KINDS:
            raise TcmbenchError(
                f"unknown weight-decay exempt kind {kind!r}; valid kinds: "
                f"{', '.join(NO_DECAY_KINDS)}"
            )
        if kind not in out:
            out.append(str(kind))
    return out


def parameter_kinds(module: nn.Module, pname: str) -> set[str]:
    """The :data:`NO_DECAY_KINDS` a parameter ``pname`` held directly by
    ``module`` belongs to (possibly none, possibly several)."""
    kinds = set()
    if isinstance(module, _NORM_TYPES):
        kinds.add("norm")
    if pname == "bias":
        kinds.add("bias")
    if pname.endswith("embedding") or (isinstance(module, nn.Embedding) and pname == "weight"):
        kinds.add("embedding")
    if pname in _PROMPT_NAMES:
        kinds.add("prompt")
    return kinds


def backbone_channels(backbone: nn.Module) -> list[int]:
    """The backbone's ``out_channels`` (one positive int per stage), checked:
    a plugin's backbone that lacks it fails here with the contract named,
    not later inside the neck with a shape error."""
    channels = getattr(backbone, "out_channels", None)
    if (
        not isinstance(channels, (list, tuple))
        or not channels
        or any(isinstance(c, bool) or not isinstance(c, Integral) or c <= 0 for c in channels)
    ):
        raise PluginError(
            f"the backbone {type(backbone).__name__} must have out_channels, a list of "
            f"positive ints (one per stage), got {channels!r}"
        )
    return [int(c) for c in channels]


class Detector(nn.Module):
    """backbone -> [feature_transform] -> neck -> head (+ loss, aux losses)."""

    def __init__(self, parts: DetectorParts) -> None:
        super().__init__()
        self.backbone = parts.backbone
        self.neck_builder = parts.neck_builder
        self.in_stages = tuple(parts.in_stages) if parts.in_stages is not None else None
        n_stages = len(backbone_channels(parts.backbone))
        if self.in_stages is not None and (
            not self.in_stages
            or list(self.in_stages) != sorted(set(self.in_stages))
            or any(not 0 <= i < n_stages for i in self.in_stages)
        ):
            raise PluginError(
                f"DetectorParts.in_stages must be increasing indices into the backbone's "
                f"{n_stages} stages, got {self.in_stages}"
            )
        self.neck = parts.neck_builder(self.neck_in_channels())
        self.head = parts.head
        self.loss = parts.loss
        self.feature_transform: nn.Module | None = None
        self.aux_losses = nn.ModuleDict()
        # Plain callables, not modules: kept out of state_dict.
        self.target_builder = parts.target_builder
        self.postprocessor = parts.postprocessor

    def neck_in_channels(self) -> list[int]:
        """Channels of the backbone stages the neck consumes."""
        channels = backbone_channels(self.backbone)
        if self.in_stages is None:
            return channels
        return [channels[i] for i in self.in_stages]

    def rebuild_neck(self, in_channels: list[int]) -> None:
        """Replace the neck by one built for ``in_channels`` (fresh weights)."""
        self.neck = self.neck_builder(list(in_channels))

    def forward(self, images: Tensor, targets: dict[str, Tensor] | None = None) -> dict[str, Any]:
        """Maps from the head (plus extras); with ``targets`` also
        ``outputs["losses"]``, a dict whose ``"loss"`` is the total."""
        feats = self.backbone(images)
        if self.in_stages is not None:
            feats = [feats[i] for i in self.in_stages]
        extras: dict[str, Tensor] = {}
        if self.feature_transform is not None:
            feats, extras = self.feature_transform(feats)
        outputs: dict[str, Any] = dict(self.head(self.neck(feats)))
        outputs.update(extras)
        if targets is not None:
            losses = dict(self.loss(outputs, targets))
            for aux in self.aux_losses.values():
                for key, value in aux(outputs, targets).items():
                    losses[key] = value
                    losses["loss"] = losses["loss"] + value
            outputs["losses"] = losses
        return outputs

    @torch.no_grad()
    def predict(self, images: Tensor, metas: list[dict[str, Any]]) -> list[list[Any]]:
        """Inference: forward without targets, then the postprocessor."""
        return self.postprocessor(self.forward(images), metas)

    def lr_factors(self) -> dict[str, float]:
        """Learning-rate factor of every parameter, by qualified name."""
        factors: dict[str, float] = {}

        def walk(module: nn.Module, prefix: str, inherited: float) -> None:
            factor = float(getattr(module, "lr_factor", inherited))
            for pname, _ in module.named_parameters(recurse=False):
                factors[f"{prefix}{pname}"] = factor
            for cname, child in module.named_children():
                walk(child, f"{prefix}{cname}.", factor)

        walk(self, "", 1.0)
        return factors

    def param_groups(
        self,
        base_lr: float,
        weight_decay: float,
        no_decay: Sequence[str] = ("norm", "bias"),
    ) -> list[dict[str, Any]]:
        """Optimizer groups: one per (lr factor, decay) pair; no weight decay
        on the parameter kinds in ``no_decay`` (:data:`NO_DECAY_KINDS`);
        factor-0 and frozen parameters left out.

        The default keeps the set tcmbench used before the set became
        configurable; the trainer passes the resolved set (``--no-decay``
        over the recipe's ``optimizer.no_decay`` over ``["norm"]``, the
        official TCM configs' choice)."""
        exempt = set(check_no_decay(list(no_decay)))
        factors = self.lr_factors()
        no_decay_names: set[str] = set()
        for mname, module in self.named_modules():
            for pname, _ in module.named_parameters(recurse=False):
                if parameter_kinds(module, pname) & exempt:
                    no_decay_names.add(f"{mname}.{pname}" if mname else pname)
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, param in self.named_parameters():
            factor = factors.get(name, 1.0)
            if not param.requires_grad or factor == 0.0:
                continue
            decay = name not in no_decay_names
            groups.setdefault((factor, decay), []).append(param)
        return [
            {
                "params": params,
                "lr": base_lr * factor,
                "lr_factor": factor,
                "weight_decay": weight_decay if decay else 0.0,
            }
            for (factor, decay), params in sorted(groups.items())
        ]
