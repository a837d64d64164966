"""Inference-only detectors exported to ONNX (PaddleOCR's PP-OCR detection
models, tcmbench's own exported checkpoints), run with onnxruntime.

Registered through the ``tcmbench`` entry-point group like any third-party
plugin; needs the optional extra ``tcmbench[onnx]``. Torch-free at import.
"""

from __future__ import annotations

__version__ = "0.1.0"
