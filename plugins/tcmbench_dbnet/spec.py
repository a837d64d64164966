"""The DBNet DetectorSpec (filled in by the detector issue)."""

from __future__ import annotations

from typing import Any

from tcmbench.models.spec import DetectorConfig, DetectorSpec


def _build_parts(config: DetectorConfig) -> Any:
    from tcmbench_dbnet.model import build_parts

    return build_parts(config)


def dbnet_spec() -> DetectorSpec:
    from tcmbench_dbnet import __version__

    return DetectorSpec(
        name="dbnet",
        build_parts=_build_parts,
        summary="DBNet: differentiable binarization (Liao et al., AAAI 2020)",
        version=__version__,
    )
