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
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tcmbench_dbnet.postprocess import POSTPROCESS_PARAMS

from tcmbench.checkpoint_schema import (
    ARCHITECTURE_SECTION,
    DIVISOR,
    LIMIT_SIDE_LEN,
    LIMIT_TYPE,
    MEAN_CHANNEL,
    PAD_DIVISOR,
    RECIPE,
    RESIZE_RULE,
    SIDE,
    STD_CHANNEL,
)
from tcmbench.errors import CheckpointError
from tcmbench.models.options import Opt
from tcmbench.validation import (
    DocumentError,
    ListOf,
    Section,
    check_document,
    flatten,
    parse_json,
    parse_yaml,
    read_document,
)

FORMAT = "tcmbench-onnx"
VERSION = 1
CONFIG_SUFFIXES = (".tcmbench.json", ".tcmbench.yaml", ".tcmbench.yml")
#: Built-in configs: name -> file in tcmbench_onnx/configs/.
BUILTINS = {"ppocr-det": "ppocr_det.json"}
#: File names that get the built-in PP-OCR config when no config is beside them.
PPOCR_DET_NAME = re.compile(r"(pp-?ocr).*det|det.*(pp-?ocr)", re.IGNORECASE)
#: Largest config file read (an exported model's, recipe included, is a few kB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024

INPUT = Section(
    {
        "name": Opt(
            None, "str", nullable=True, help="the model input to feed (default: the first)"
        ),
        "channel_order": Opt(
            "rgb",
            "str",
            choices=("rgb", "bgr"),
            help="tcmbench decodes RGB; bgr flips it, as a model fed by cv2.imread expects",
        ),
        "mean": ListOf(
            replace(MEAN_CHANNEL, default=None, help="required: 3 numbers, in the model's order"),
            min_len=3,
            max_len=3,
        ),
        "std": ListOf(
            replace(STD_CHANNEL, default=None, help="required: 3 numbers, in the model's order"),
            min_len=3,
            max_len=3,
        ),
        "pixel_range": Opt(
            255.0,
            "float",
            choices=(1.0, 255.0),
            help="255: mean / std are for pixels in 0..255; 1: for pixels in 0..1 (the image is "
            "multiplied by 1/255 first)",
        ),
    },
    nullable=True,
    help="the network's input",
)
RESIZE = Section(
    {
        "rule": replace(
            RESIZE_RULE,
            choices=("limit_side", "keep_ratio"),
            help="limit_side (PaddleOCR) or keep_ratio (tcmbench); each rule takes only its own "
            "keys below",
        ),
        # limit_side (PaddleOCR's DetResizeForTest, resize type 0)
        "limit_side_len": LIMIT_SIDE_LEN,
        "limit_type": replace(
            LIMIT_TYPE,
            help="limit_side: max scales down so the longer side is at most limit_side_len (never "
            "up); min scales up so the shorter side is at least that",
        ),
        "divisor": replace(
            DIVISOR,
            help="limit_side: each side is then truncated and rounded to the nearest multiple of "
            "this (halves to even, at least one divisor); no padding",
        ),
        # keep_ratio (tcmbench's test-time resize, docs/evaluate.md)
        "long_side": replace(
            SIDE,
            help="keep_ratio: one scale min(long_side / long, short_side / short), up or "
            "down (null: that limit is not applied; evaluate.md, Test-time settings)",
        ),
        "short_side": replace(SIDE, help="keep_ratio: see long_side"),
        "pad_divisor": replace(
            PAD_DIVISOR, help="keep_ratio: zero padding to a multiple of this, after normalising"
        ),
    },
    nullable=True,
    help="the resize rule",
)
_RULE_KEYS = {
    "limit_side": ("limit_side_len", "limit_type", "divisor"),
    "keep_ratio": ("long_side", "short_side", "pad_divisor"),
}
OUTPUT = Section(
    {
        "name": Opt(
            None,
            "str",
            nullable=True,
            help="the output holding the probability map (default: prob, else the only one)",
        )
    },
    nullable=True,
)
#: DBPostprocessor parameters a config may set: the DBNet plugin's own table.
_DB_POSTPROCESS = POSTPROCESS_PARAMS
DB_POSTPROCESS = Section(POSTPROCESS_PARAMS, help="DBNet postprocessor parameters")
#: ``exported_from``, written by ``tcmbench export onnx``: its architecture
#: and recipe are checked exactly as a checkpoint's config.json.
EXPORTED_FROM = Section(
    {
        "plugin": Opt(None, "str", help="the plugin the model was exported from"),
        "plugin_version": Opt("", "str", nullable=True, help="its version"),
        "checkpoint_sha256": Opt("", "str", nullable=True, help="the checkpoint's sha256"),
        "architecture": ARCHITECTURE_SECTION,
        "recipe": RECIPE,
        "datasets": ListOf(Opt(None, "str", help="the training datasets"), nullable=True),
        "tcmbench_version": Opt("", "str", nullable=True, help="the exporting tcmbench"),
        "opset": Opt(17, "int", ge=1, le=1000, nullable=True, help="ONNX opset"),
    },
    required=("plugin", "architecture"),
    nullable=True,
    help="written by tcmbench export onnx",
)
CONFIG = Section(
    {
        "format": Opt(FORMAT, "str", choices=(FORMAT,), help="required, identifies the file"),
        "version": Opt(VERSION, "int", choices=(VERSION,), help="config format version"),
        "extends": Opt(
            None,
            "str",
            choices=tuple(BUILTINS),
            nullable=True,
            help="start from a built-in config and override some keys",
        ),
        "source": Opt("", "str", nullable=True, help="free text: where the values come from"),
        "model": Opt(
            None, "str", nullable=True, help="the ONNX file, when --weights names the config"
        ),
        "input": INPUT,
        "resize": RESIZE,
        "output": OUTPUT,
        "postprocessor": Opt(
            "db",
            "str",
            nullable=True,
            help="db; an exported PANet / FCENet names its plugin (run it with --plugin P "
            "--runtime onnxruntime)",
        ),
        "postprocess": Opt(
            None,
            "dict",
            nullable=True,
            help="postprocessor parameters (for db: the DBNet ones, docs/dbnet.md)",
        ),
        "exported_from": EXPORTED_FROM,
        "outputs": ListOf(
            Opt(None, "str", help="the model's outputs, as exported"), max_len=1000, nullable=True
        ),
    },
    required=("format",),
)
TOP_KEYS = tuple(CONFIG.fields)


def _doc_keys() -> dict[str, Opt]:
    """The keys of a config for docs/onnx.md (a generated block);
    exported_from's architecture and recipe are a checkpoint config's
    (docs/formats.md), one row each."""
    out: dict[str, Opt] = {}
    for key, opt in flatten(CONFIG).items():
        part = ".".join(key.split(".")[:2])
        if part in ("exported_from.architecture", "exported_from.recipe"):
            key = part
            opt = Opt(None, "dict", help=f"as {part.split('.')[1]} in a checkpoint's config.json")
        out.setdefault(key, opt)
    return out


CONFIG_KEYS = _doc_keys()


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


def _check(doc: Any, schema: Any, where: str, path: str = "") -> Any:
    """:func:`~tcmbench.validation.check_document`, its error as an
    OnnxConfigError (a CheckpointError: what ``--weights`` failed on)."""
    try:
        return check_document(doc, schema, where, path)
    except DocumentError as exc:
        raise OnnxConfigError(f"{exc} (see docs/onnx.md)") from None


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
    """Check a config document (already read) against :data:`CONFIG` and
    build the config. ``where`` names it in every message."""
    if not isinstance(doc, Mapping):
        raise OnnxConfigError(
            f"{where}: a tcmbench ONNX config must be a mapping (JSON object), "
            f"got {type(doc).__name__} (see docs/onnx.md)"
        )
    if doc.get("format") != FORMAT:  # what identifies the file: checked first
        raise _fail(where, "format", f"must be {FORMAT!r}, got {doc.get('format')!r}")
    doc = _check(doc, CONFIG, where)
    extends = doc.pop("extends", None)
    if extends is not None:
        doc = _merge(builtin_document(extends), doc)
    inp = dict(doc.get("input") or {})
    resize = dict(doc.get("resize") or {})
    output = dict(doc.get("output") or {})
    for key in ("mean", "std"):
        if key not in inp:
            raise _fail(where, f"input.{key}", "is required (3 numbers, one per channel)")
    rule = resize.get("rule", "keep_ratio")
    own = _RULE_KEYS[rule]
    stray = sorted(k for k in resize if k != "rule" and k not in own)
    if stray:
        raise _fail(
            where,
            f"resize.{stray[0]}",
            f"does not apply to rule {rule!r} (it takes {', '.join(own)})",
        )
    mean, std = inp["mean"], inp["std"]
    pre = Preprocess(
        **resize,
        channel_order=inp.get("channel_order") or "rgb",
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        pixel_range=float(inp.get("pixel_range") or 255.0),
    )
    kind = doc.get("postprocessor") or "db"
    post = dict(doc.get("postprocess") or {})
    if kind == "db":
        post = _check(post, DB_POSTPROCESS, where, "postprocess")
        if post.get("score_mode", "polygon") != "polygon" and post.get("output", "quad") != "quad":
            raise _fail(where, "postprocess.score_mode", "fast / slow need output 'quad'")
    # else: another plugin's parameters, checked by that plugin's postprocessor
    # (runtime.load_with_onnxruntime)
    exported = doc.get("exported_from")
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
    """Read and check a config file (JSON, or YAML by suffix), parsed
    under the validation layer's size and depth limits."""
    try:
        data = read_document(path, max_bytes=MAX_CONFIG_BYTES)
        if path.suffix.lower() in (".yaml", ".yml"):
            doc = parse_yaml(data, str(path), max_bytes=MAX_CONFIG_BYTES)
        else:
            doc = parse_json(data, str(path), max_bytes=MAX_CONFIG_BYTES)
    except DocumentError as exc:
        raise OnnxConfigError(f"{exc} (see docs/onnx.md)") from None
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
