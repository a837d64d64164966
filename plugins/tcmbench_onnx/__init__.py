"""Inference-only detectors exported to ONNX: PaddleOCR's PP-OCR detection
models and other DB-family detectors, and tcmbench's own exported
checkpoints.

Registered through the ``tcmbench`` entry-point group like any third-party
plugin; needs the optional extra ``tcmbench[onnx]``. Torch-free at import.

What makes it a plugin is the spec of such a model (:mod:`.spec`: its
``load_weights`` reads ``--weights MODEL.onnx``) and the reader of its
config (:mod:`.config`: built-in PP-OCR settings, the DB postprocessor's
parameters). The runtime it runs on -- onnxruntime sessions, one-pass
pre-processing, the export of checkpoints -- is the core's
(:mod:`tcmbench.inference`); docs/onnx.md, docs/plugins.md
("Inference-only plugins").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench_onnx.spec import VERSION as __version__
from tcmbench_onnx.spec import onnx_spec

__all__ = ["__version__", "register_detectors"]


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    register(onnx_spec())
