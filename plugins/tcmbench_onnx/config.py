"""The config reader of a foreign DB-family ONNX detector (torch-free).

The config format and its reader are the core's
(:mod:`tcmbench.inference.onnx_config`, docs/onnx.md): the core's export
writes it and ``--runtime onnxruntime`` reads it. What this plugin adds
for DB-family models made elsewhere is its :data:`DIALECT`:

- built-in configs (``extends``): ``ppocr-det``, the settings PaddleOCR's
  own inference uses for its PP-OCR detection models
  (``tcmbench_onnx/configs/ppocr_det.json``);
- a PaddleOCR detection model (file name containing ``PP-OCR`` / ``ppocr``
  and ``det``) without a config beside it gets ``ppocr-det``;
- ``postprocessor: db`` parameters are checked against the DB
  postprocessor's own table, so a bad one is a line naming the key, not a
  crash on the first image.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from tcmbench.inference.db_postprocess import POSTPROCESS_PARAMS
from tcmbench.inference.onnx_config import (
    FORMAT,
    Dialect,
    OnnxConfigError,
    OnnxModelConfig,
    check,
    doc_keys,
    fail,
)
from tcmbench.inference.onnx_config import locate as _locate
from tcmbench.inference.onnx_config import parse_config as _parse_config
from tcmbench.inference.onnx_config import read_config_file as _read_config_file
from tcmbench.safety.validation import Section

__all__ = [
    "BUILTINS",
    "CONFIG",
    "CONFIG_KEYS",
    "DIALECT",
    "OnnxConfigError",
    "builtin_document",
    "locate",
    "parse_config",
    "read_config_file",
]

#: Built-in configs: name -> file in tcmbench_onnx/configs/.
BUILTINS = {"ppocr-det": "ppocr_det.json"}
#: File names that get the built-in PP-OCR config when no config is beside them.
PPOCR_DET_NAME = re.compile(r"(pp-?ocr).*det|det.*(pp-?ocr)", re.IGNORECASE)
#: DBPostprocessor parameters a config may set: the DBNet plugin's own table.
_DB_POSTPROCESS = POSTPROCESS_PARAMS
DB_POSTPROCESS = Section(POSTPROCESS_PARAMS, help="DBNet postprocessor parameters")


def builtin_document(name: str) -> dict[str, Any]:
    """The raw document of built-in config ``name``."""
    if name not in BUILTINS:
        raise OnnxConfigError(
            f"unknown built-in config {name!r}; built-ins: {', '.join(sorted(BUILTINS))}"
        )
    text = (resources.files("tcmbench_onnx") / "configs" / BUILTINS[name]).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _ppocr_default(model: Path) -> str | None:
    return "ppocr-det" if PPOCR_DET_NAME.search(model.name) else None


def _check_db(kind: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """``postprocess`` of a ``db`` model, checked; another kind's are its
    plugin's to check (``--runtime onnxruntime``)."""
    if kind != "db":
        return params
    post: dict[str, Any] = check(params, DB_POSTPROCESS, where, "postprocess")
    if post.get("score_mode", "polygon") != "polygon" and post.get("output", "quad") != "quad":
        raise fail(where, "postprocess.score_mode", "fast / slow need output 'quad'")
    return post


DIALECT = Dialect(
    builtins={name: functools.partial(builtin_document, name) for name in BUILTINS},
    default_for=_ppocr_default,
    check_postprocess=_check_db,
    hint=f'e.g. {{"format": "{FORMAT}", "extends": "ppocr-det"}} for a PaddleOCR DB '
    "detector; docs/onnx.md lists every key",
)
CONFIG = DIALECT.schema
TOP_KEYS = tuple(CONFIG.fields)
#: Every key of a config, for docs/onnx.md's generated table.
CONFIG_KEYS = doc_keys(CONFIG)


def parse_config(doc: Any, where: str) -> OnnxModelConfig:
    """A config document (already read), checked with this plugin's dialect."""
    return _parse_config(doc, where, DIALECT)


def read_config_file(path: Path) -> OnnxModelConfig:
    """A config file, read and checked with this plugin's dialect."""
    return _read_config_file(path, DIALECT)


def locate(weights: Path) -> tuple[Path, OnnxModelConfig]:
    """(ONNX file, its config) for ``--weights`` (docs/onnx.md, the
    lookup order), PP-OCR detectors getting ``ppocr-det``."""
    return _locate(weights, DIALECT)
