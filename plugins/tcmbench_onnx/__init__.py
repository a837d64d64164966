"""Inference-only detectors exported to ONNX (PaddleOCR's PP-OCR detection
models, tcmbench's own exported checkpoints), run with onnxruntime.

Registered through the ``tcmbench`` entry-point group like any third-party
plugin; needs the optional extra ``tcmbench[onnx]``. Torch-free at import.

- ``register_detectors``: the ``onnx`` detector. Its spec has no network to
  build; it provides ``load_weights`` instead, which ``evaluate`` and
  ``predict`` call for ``--weights`` (docs/plugins.md, "Inference-only
  plugins"). Pre- and post-processing come from a config beside the model
  (docs/onnx.md).
- ``register_commands``: ``tcmbench export onnx``, which writes such a model
  and config from any tcmbench checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tcmbench.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    from tcmbench_onnx.spec import onnx_spec

    register(onnx_spec())


@hookimpl
def register_commands(cli: click.Group) -> None:
    from tcmbench_onnx.commands import export

    cli.add_command(export)
