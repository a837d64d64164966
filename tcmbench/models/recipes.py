"""What every detector plugin's recipes share (torch-free: recipes are
read when the CLI starts).

- the two input normalisations (RGB, 0-255): ImageNet's for torchvision
  backbones, CLIP's for TCM (TCM.md section 7);
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


def merge_recipe(
    base: Mapping[str, Any], overrides: Mapping[str, Any], whole: Collection[str] = ()
) -> dict[str, Any]:
    """``base`` (deep-copied) with ``overrides``: a dict section is merged
    key by key into the base's section of the same name, anything else
    replaces it. Sections named in ``whole`` are always replaced as a
    whole (an Adam optimizer must not inherit SGD's momentum from a base)."""
    recipe = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key not in whole and isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe
