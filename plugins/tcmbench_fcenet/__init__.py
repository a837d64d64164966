"""FCENet ("Fourier Contour Embedding for Arbitrary-Shaped Text Detection",
Zhu et al., CVPR 2021) as a tcmbench plugin.

Registered through the ``tcmbench`` entry-point group exactly like a
third-party plugin. This module stays torch-free (and cv2-free): the spec
and the augmentations point at builders imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench_fcenet.spec import VERSION as __version__
from tcmbench_fcenet.spec import fcenet_spec

__all__ = ["__version__"]

_AUGMENTATIONS = (
    ("fce_color_jitter", "ColorJitter", "brightness, contrast, saturation (torchvision)"),
    ("fce_random_scaling", "RandomScaling", "resize the long side to size x U(scale)"),
    ("fce_random_crop_flip", "RandomCropFlip", "mirror a box that cuts no word, in place"),
    ("fce_crop_instances", "CropInstances", "random crop around one text instance"),
    ("fce_rotate", "RotateInstances", "random rotation on a grown canvas (nothing cut)"),
    (
        "fce_square_resize_pad",
        "SquareResizePad",
        "square output: keep-ratio resize + pad, or stretch",
    ),
)


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    register(fcenet_spec())


@hookimpl
def register_augmentations(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import AugmentationSpec

    for name, attr, summary in _AUGMENTATIONS:
        register(AugmentationSpec(name, f"tcmbench_fcenet.augment:{attr}", summary))
