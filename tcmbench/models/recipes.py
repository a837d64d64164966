"""What every detector plugin's recipes share (torch-free: recipes are
read when the CLI starts).

- the two input normalisations (RGB, 0-255): ImageNet's for torchvision
  backbones, CLIP's for TCM (TCM.md section 7);
- the weight-decay exempt sets the recipes' ``optimizer.no_decay`` take,
  each with where it comes from;
- :func:`merge_recipe`, which builds a named recipe from a plugin's base
  recipe and the sections it overrides.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
#: TCM.md section 7: the normalisation of the official TCM configs (CLIP).
TCM_MEAN = [122.679, 116.669, 104.007]
TCM_STD = [58.395, 57.12, 57.375]

#: ``optimizer.no_decay`` of the official TCM configs: their
#: ``paramwise_cfg`` sets ``'norm': dict(decay_mult=0.)`` and nothing else
#: (TCM.md section 7).
NO_DECAY_TCM: tuple[str, ...] = ("norm",)
#: ``optimizer.no_decay`` of mmocr's DBNet / PANet / FCENet configs and of
#: the DBNet / PAN authors' code: no paramwise settings, every parameter
#: decays.
NO_DECAY_NONE: tuple[str, ...] = ()
#: What ``Detector.param_groups`` exempted before the set became a recipe
#: key (norm layers and biases): the shipped synthtext-mini weights were
#: trained with it, so their recipes keep it.
NO_DECAY_LEGACY: tuple[str, ...] = ("norm", "bias")

#: Where the official TCM configs live (CC BY-NC: values are cited, no code
#: is taken).
TCM_REPO = "github.com/wenwenyu/TCM"


def merge_recipe(
    base: Mapping[str, Any], overrides: Mapping[str, Any], whole: Collection[str] = ()
) -> dict[str, Any]:
    """``base`` with ``overrides``, both deep-copied (a recipe never shares
    a list or dict with another recipe or a module constant): a dict
    section is merged key by key into the base's section of the same name,
    anything else replaces it. Sections named in ``whole`` are always
    replaced as a whole (an Adam optimizer must not inherit SGD's momentum
    from a base)."""
    recipe = copy.deepcopy(dict(base))
    for key, value in copy.deepcopy(dict(overrides)).items():
        if key not in whole and isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


def no_decay(kinds: Collection[str]) -> list[str]:
    """A fresh list for a recipe's ``optimizer.no_decay`` (recipes are
    plain JSON-able dicts: lists, not tuples)."""
    return [str(k) for k in kinds]
