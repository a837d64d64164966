"""PANet ("Efficient and Accurate Arbitrary-Shaped Text Detection with Pixel
Aggregation Network", Wang et al., ICCV 2019) as a tcmbench plugin.

Registered through the ``tcmbench`` entry-point group exactly like a
third-party plugin. This module stays torch-free and cv2-free: the spec
points at builders, and the augmentations at "module:Attr" strings, that
are imported only when a model is built or a recipe uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench_pan.spec import VERSION as __version__
from tcmbench_pan.spec import pan_spec

__all__ = ["__version__"]


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    register(pan_spec())


@hookimpl
def register_augmentations(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import AugmentationSpec

    register(
        AugmentationSpec(
            name="pan_scale_jitter",
            factory="tcmbench_pan.augment:ScaleJitter",
            summary="resize to short side x U(ratio_range), aspect x U(aspect_range) (PANet)",
        )
    )
    register(
        AugmentationSpec(
            name="pan_crop_instances",
            factory="tcmbench_pan.augment:CropInstances",
            summary="fixed-size crop holding a whole instance; cut words become don't-care (PANet)",
        )
    )
