"""The onnx DetectorSpec: inference only (torch-free)."""

from __future__ import annotations

from typing import Any

from tcmbench.errors import PluginError
from tcmbench.models.spec import DetectorConfig, DetectorSpec


def _no_build(config: DetectorConfig) -> Any:
    """An ONNX file is a finished network: there is nothing to build or
    train, so ``train`` / ``bench`` with this plugin get a clear error."""
    raise PluginError(
        "plugin 'onnx' runs exported models only (evaluate, predict with --weights MODEL.onnx); "
        "train or benchmark the PyTorch detector (e.g. --plugin dbnet) and export it with "
        "`tcmbench export onnx`"
    )


def _load_weights(weights: str, device: str) -> Any:
    from tcmbench_onnx.runtime import load_onnx_model

    return load_onnx_model(weights, device)


def onnx_spec() -> DetectorSpec:
    from tcmbench_onnx import __version__

    return DetectorSpec(
        name="onnx",
        build_parts=_no_build,
        summary="DB-family detectors exported to ONNX (PP-OCR, tcmbench exports), onnxruntime",
        version=__version__,
        load_weights=_load_weights,
    )
