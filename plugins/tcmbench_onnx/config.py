"""The small config that travels beside an ONNX detector (torch-free).

An ONNX file holds the network only. How images are resized and normalised
before it, and how its probability map becomes boxes after it, are
settings its authors chose; run with other settings, the same weights
score differently. So a model ``NAME.onnx`` comes with ``NAME.tcmbench.json``
(or ``.yaml`` / ``.yml``) beside it::

    format: tcmbench-onnx          # required, identifies the file
    version: 1
    extends: ppocr-det             # optional: start from a built-in config
    source: where the values come from
    input:  {name, channel_order: rgb|bgr, mean, std, pixel_range: 1|255}
    resize: {rule: limit_side, limit_side_len, limit_type: max|min, divisor}
         or {rule: keep_ratio, long_side, short_side, pad_divisor}
    output: {name}                 # the probability map among the outputs
    postprocessor: db              # or another plugin's name (exported models)
    postprocess: {mask_thr, min_score, unclip_ratio, ...}  # DBPostprocessor
    exported_from: {...}           # written by `tcmbench export onnx`

``--weights`` may also name the config itself; its ``model`` key then
points at the ONNX file (relative to the config), so a model in a read-only
folder can still be given settings. A PaddleOCR PP-OCR detection model
(file name containing ``PP-OCR`` / ``ppocr`` and ``det``) without a config
gets the built-in ``ppocr-det`` one.

Every value is checked here, once: a malformed config is a
:class:`OnnxConfigError` naming the file and the key, never a crash deep
inside onnxruntime or OpenCV.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tcmbench_dbnet.postprocess import POSTPROCESS_PARAMS

from tcmbench.errors import CheckpointError
from tcmbench.models.options import Opt, check_value

FORMAT = "tcmbench-onnx"
VERSION = 1
CONFIG_SUFFIXES = (".tcmbench.json", ".tcmbench.yaml", ".tcmbench.yml")
#: Built-in configs: name -> file in tcmbench_onnx/configs/.
BUILTINS = {"ppocr-det": "ppocr_det.json"}
#: File names that get the built-in PP-OCR config when no config is beside them.
PPOCR_DET_NAME = re.compile(r"(pp-?ocr).*det|det.*(pp-?ocr)", re.IGNORECASE)
RESIZE_RULES = ("limit_side", "keep_ratio")
TOP_KEYS = (
    "format",
    "version",
    "extends",
    "source",
    "model",
    "input",
    "resize",
    "output",
    "postprocessor",
    "postprocess",
    "exported_from",
    "outputs",
)

_INPUT = {
    "name": Opt(None, "str", nullable=True),
    "channel_order": Opt("rgb", "str", choices=("rgb", "bgr")),
    "mean": Opt(None, "list"),
    "std": Opt(None, "list"),
    "pixel_range": Opt(255.0, "float", choices=(1.0, 255.0)),
}
_RESIZE = {
    "rule": Opt("keep_ratio", "str", choices=RESIZE_RULES),
    # limit_side (PaddleOCR's DetResizeForTest, resize type 0)
    "limit_side_len": Opt(960, "int", ge=32, le=16384),
    "limit_type": Opt("max", "str", choices=("max", "min")),
    "divisor": Opt(32, "int", ge=1, le=1024),
    # keep_ratio (tcmbench's test-time resize, docs/evaluate.md)
    "long_side": Opt(None, "int", ge=32, le=16384, nullable=True),
    "short_side": Opt(None, "int", ge=32, le=16384, nullable=True),
    "pad_divisor": Opt(32, "int", ge=1, le=1024),
}
_RULE_KEYS = {
    "limit_side": ("limit_side_len", "limit_type", "divisor"),
    "keep_ratio": ("long_side", "short_side", "pad_divisor"),
}
_OUTPUT = {"name": Opt(None, "str", nullable=True)}
#: DBPostprocessor parameters a config may set: the DBNet plugin's own table.
_DB_POSTPROCESS = POSTPROCESS_PARAMS


class OnnxConfigError(CheckpointError):
    """A model's config is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input (see preprocess.py)."""

    rule: str = "keep_ratio"
    limit_side_len: int = 960
    limit_type: str = "max"
    divisor: int = 32
    long_side: int | None = None
    short_side: int | None = None
    pad_divisor: int = 32
    channel_order: str = "rgb"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    pixel_range: float = 255.0

    def resize_settings(self) -> dict[str, Any]:
        """The resize part, as recorded in a recipe's ``test`` section."""
        return {"rule": self.rule, **{k: getattr(self, k) for k in _RULE_KEYS[self.rule]}}


@dataclass(frozen=True)
class OnnxModelConfig:
    """A parsed, checked config. ``where`` names its origin for messages
    (a file path, or ``built-in ppocr-det``)."""

    where: str
    preprocess: Preprocess
    postprocessor: str = "db"
    postprocess: dict[str, Any] = field(default_factory=dict)
    input_name: str | None = None
    output_name: str | None = None
    source: str = ""
    model: str | None = None
    exported_from: dict[str, Any] | None = None

    def recipe(self) -> dict[str, Any]:
        """The settings as a tcmbench recipe (``test``, ``normalize``,
        ``postprocess``): what the prediction cache keys on and what
        ``--json`` reports."""
        p = self.preprocess
        return {
            "test": {**p.resize_settings(), "runtime": "onnxruntime"},
            "normalize": {
                "mean": list(p.mean),
                "std": list(p.std),
                "channel_order": p.channel_order,
                "pixel_range": p.pixel_range,
            },
            "postprocess": dict(self.postprocess),
            "source": self.source,
        }


def _fail(where: str, key: str, problem: str) -> OnnxConfigError:
    return OnnxConfigError(f"{where}: {key} {problem} (see docs/onnx.md)")


def _section(where: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, key, f"must be a mapping, got {type(value).__name__}")
    return dict(value)


def _checked(
    where: str, prefix: str, declared: Mapping[str, Opt], given: Mapping[str, Any]
) -> dict[str, Any]:
    unknown = sorted(str(k) for k in given if k not in declared)
    if unknown:
        raise _fail(
            where,
            f"{prefix}.{unknown[0]}",
            f"is not a known key; {prefix} takes {', '.join(sorted(declared))}",
        )
    out = {}
    for name, value in given.items():
        checked, problem = check_value(value, declared[name])
        if problem is not None:
            raise _fail(where, f"{prefix}.{name}", problem)
        out[name] = checked
    return out


def _triple(where: str, key: str, value: Any, positive: bool) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise _fail(where, key, f"must be a list of 3 numbers (one per channel), got {value!r}")
    out = []
    for i, v in enumerate(value):
        checked, problem = check_value(v, Opt(0.0, "float", gt=0 if positive else None))
        if problem is not None:
            raise _fail(where, f"{key}[{i}]", problem)
        out.append(float(checked))
    return out[0], out[1], out[2]


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, one level deep for mapping sections."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def builtin_document(name: str) -> dict[str, Any]:
    """The raw document of built-in config ``name``."""
    if name not in BUILTINS:
        raise OnnxConfigError(
            f"unknown built-in config {name!r}; built-ins: {', '.join(sorted(BUILTINS))}"
        )
    text = (resources.files("tcmbench_onnx") / "configs" / BUILTINS[name]).read_text("utf-8")
    return json.loads(text)


def parse_config(doc: Any, where: str) -> OnnxModelConfig:
    """Check a config document (already read) and build the config.
    ``where`` names it in every message."""
    if not isinstance(doc, Mapping):
        raise OnnxConfigError(
            f"{where}: a tcmbench ONNX config must be a mapping (JSON object), "
            f"got {type(doc).__name__} (see docs/onnx.md)"
        )
    if doc.get("format") != FORMAT:
        raise _fail(where, "format", f"must be {FORMAT!r}, got {doc.get('format')!r}")
    version = doc.get("version", VERSION)
    if version != VERSION:
        raise _fail(where, "version", f"must be {VERSION} (this tcmbench's), got {version!r}")
    unknown = sorted(str(k) for k in doc if k not in TOP_KEYS)
    if unknown:
        raise _fail(where, unknown[0], f"is not a known key; known: {', '.join(TOP_KEYS)}")
    extends = doc.get("extends")
    if extends is not None:
        if not isinstance(extends, str) or extends not in BUILTINS:
            raise _fail(where, "extends", f"must name a built-in config ({', '.join(BUILTINS)})")
        doc = _merge(builtin_document(extends), {k: v for k, v in doc.items() if k != "extends"})
    for key in ("source", "model", "postprocessor"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise _fail(where, key, f"must be a string, got {doc[key]!r}")
    inp = _checked(where, "input", _INPUT, _section(where, doc, "input"))
    resize = _checked(where, "resize", _RESIZE, _section(where, doc, "resize"))
    output = _checked(where, "output", _OUTPUT, _section(where, doc, "output"))
    for key in ("mean", "std"):
        if key not in inp:
            raise _fail(where, f"input.{key}", "is required (3 numbers, one per channel)")
    mean = _triple(where, "input.mean", inp["mean"], positive=False)
    std = _triple(where, "input.std", inp["std"], positive=True)
    rule = resize.get("rule", "keep_ratio")
    own = _RULE_KEYS[rule]
    stray = sorted(k for k in resize if k != "rule" and k not in own)
    if stray:
        raise _fail(
            where,
            f"resize.{stray[0]}",
            f"does not apply to rule {rule!r} (it takes {', '.join(own)})",
        )
    pre = Preprocess(
        **resize,
        channel_order=inp.get("channel_order", "rgb"),
        mean=mean,
        std=std,
        pixel_range=float(inp.get("pixel_range", 255.0)),
    )
    kind = doc.get("postprocessor") or "db"
    raw_post = _section(where, doc, "postprocess")
    if kind == "db":
        post = _checked(where, "postprocess", _DB_POSTPROCESS, raw_post)
        if post.get("score_mode", "polygon") != "polygon" and post.get("output", "quad") != "quad":
            raise _fail(where, "postprocess.score_mode", "fast / slow need output 'quad'")
    else:
        post = raw_post  # another plugin's parameters: that plugin checks them
    exported = doc.get("exported_from")
    if exported is not None and not isinstance(exported, Mapping):
        raise _fail(where, "exported_from", "must be a mapping")
    return OnnxModelConfig(
        where=where,
        preprocess=pre,
        postprocessor=kind,
        postprocess=post,
        input_name=inp.get("name"),
        output_name=output.get("name"),
        source=str(doc.get("source") or ""),
        model=doc.get("model"),
        exported_from=dict(exported) if exported is not None else None,
    )


def read_config_file(path: Path) -> OnnxModelConfig:
    """Read and check a config file (JSON, or YAML by suffix)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OnnxConfigError(f"{path}: cannot read the config ({exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OnnxConfigError(f"{path}: not valid YAML ({exc})") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OnnxConfigError(
                f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
    return parse_config(doc, str(path))


def config_paths(model: Path) -> list[Path]:
    """Where the config of ``model`` (``NAME.onnx``) may be."""
    stem = model.name[: -len(model.suffix)] if model.suffix else model.name
    return [model.with_name(stem + suffix) for suffix in CONFIG_SUFFIXES]


def is_config_path(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in CONFIG_SUFFIXES)


def locate(weights: Path) -> tuple[Path, OnnxModelConfig]:
    """(ONNX file, its config) for ``--weights``: an ONNX file (config
    beside it, or the built-in one for PP-OCR detectors), a config file
    (its ``model`` key names the ONNX file) or a folder holding one
    ``*.onnx``."""
    if weights.is_dir():
        found = sorted(weights.glob("*.onnx"))
        if len(found) != 1:
            raise OnnxConfigError(
                f"{weights}: expected one .onnx file in the folder, found {len(found)}"
            )
        weights = found[0]
    if not weights.exists():
        raise OnnxConfigError(f"ONNX model not found: {weights}")
    if is_config_path(weights):
        cfg = read_config_file(weights)
        if not cfg.model:
            raise _fail(str(weights), "model", "is required when --weights names the config")
        model = (weights.parent / cfg.model).resolve()
        if not model.is_file():
            raise _fail(str(weights), "model", f"points at {model}, which does not exist")
        return model, cfg
    for candidate in config_paths(weights):
        if candidate.is_file():
            return weights, read_config_file(candidate)
    if PPOCR_DET_NAME.search(weights.name):
        return weights, parse_config(builtin_document("ppocr-det"), "built-in ppocr-det")
    raise OnnxConfigError(
        f"{weights}: no config beside it; write {config_paths(weights)[0].name} next to it "
        f'(e.g. {{"format": "{FORMAT}", "extends": "ppocr-det"}} for a PaddleOCR DB '
        "detector; docs/onnx.md lists every key), or export the model with `tcmbench export onnx`"
    )
