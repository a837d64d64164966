"""The config that travels beside an ONNX detector: its format and reader (torch-free).

An ONNX file holds the network only. How images are resized and normalised
before it, and how its maps become boxes after it, are settings its
authors chose; run with other settings, the same weights score
differently. So a model ``NAME.onnx`` comes with ``NAME.tcmbench.json``
(or ``.yaml`` / ``.yml``) beside it::

    format: tcmbench-onnx          # required, identifies the file
    version: 1
    extends: NAME                  # optional: start from a built-in config
    source: where the values come from
    input:  {name, channel_order: rgb|bgr, mean, std, pixel_range: 1|255}
    resize: {rule: limit_side, limit_side_len, limit_type: max|min, divisor}
         or {rule: keep_ratio, long_side, short_side, pad_divisor}
    output: {name}                 # the probability map among the outputs
    postprocessor: db              # or another plugin's name (exported models)
    postprocess: {...}             # the postprocessor's parameters
    exported_from: {...}           # written by `tcmbench export onnx`

``--weights`` may also name the config itself; its ``model`` key then
points at the ONNX file (relative to the config), so a model in a read-only
folder can still be given settings.

The core owns the format: ``tcmbench export onnx``
(:mod:`tcmbench.inference.onnx_export`) writes it and ``--runtime
onnxruntime`` reads an exported model's ``exported_from`` with it. What a
*foreign* model family adds -- built-in configs (``extends``), a default
config for files named like its models, the check of its postprocessor's
parameters -- comes in as a :class:`Dialect` (the onnx plugin's: PP-OCR
and DB, ``tcmbench_onnx.config``).

Every value is checked here, once: a malformed config is a
:class:`OnnxConfigError` naming the file and the key, never a crash deep
inside onnxruntime or OpenCV.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tcmbench.contract.options import Opt
from tcmbench.errors import CheckpointError
from tcmbench.inference.preprocess import RULE_KEYS, Preprocess
from tcmbench.safety.checkpoint_schema import (
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
from tcmbench.safety.validation import (
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


def config_schema(builtins: Sequence[str] = ()) -> Section:
    """The config's schema; ``extends`` takes the names in ``builtins``
    (a :class:`Dialect`'s built-in configs)."""
    return Section(
        {
            "format": Opt(FORMAT, "str", choices=(FORMAT,), help="required, identifies the file"),
            "version": Opt(VERSION, "int", choices=(VERSION,), help="config format version"),
            "extends": Opt(
                None,
                "str",
                choices=tuple(builtins) or None,
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
                Opt(None, "str", help="the model's outputs, as exported"),
                max_len=1000,
                nullable=True,
            ),
        },
        required=("format",),
    )


CONFIG = config_schema()
TOP_KEYS = tuple(CONFIG.fields)


def doc_keys(schema: Section) -> dict[str, Opt]:
    """The keys of a config for docs/onnx.md (a generated block);
    exported_from's architecture and recipe are a checkpoint config's
    (docs/formats.md), one row each."""
    out: dict[str, Opt] = {}
    for key, opt in flatten(schema).items():
        part = ".".join(key.split(".")[:2])
        if part in ("exported_from.architecture", "exported_from.recipe"):
            key = part
            opt = Opt(None, "dict", help=f"as {part.split('.')[1]} in a checkpoint's config.json")
        out.setdefault(key, opt)
    return out


class OnnxConfigError(CheckpointError):
    """A model's config is missing, unreadable or malformed."""


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


def _no_default(model: Path) -> str | None:
    return None


@dataclass(frozen=True)
class Dialect:
    """What a model family adds to the format (module doc).

    ``builtins``: name -> the raw document of a built-in config (what
    ``extends`` may name). ``default_for(model)``: the built-in to use for a
    model file without a config beside it, or None. ``check_postprocess(kind,
    params, where)``: the checked parameters of postprocessor ``kind`` (a
    kind it does not know is returned as is: the plugin that post-processes
    it checks them). ``hint``: how to write a config, for the "no config"
    error."""

    builtins: Mapping[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    default_for: Callable[[Path], str | None] = _no_default
    check_postprocess: Callable[[str, dict[str, Any], str], dict[str, Any]] | None = None
    hint: str = "docs/onnx.md lists every key"

    @property
    def schema(self) -> Section:
        return config_schema(tuple(self.builtins)) if self.builtins else CONFIG

    def builtin_document(self, name: str) -> dict[str, Any]:
        """The raw document of built-in config ``name``."""
        if name not in self.builtins:
            known = ", ".join(sorted(self.builtins)) or "none"
            raise OnnxConfigError(f"unknown built-in config {name!r}; built-ins: {known}")
        return self.builtins[name]()


#: The format alone: what ``--runtime onnxruntime`` reads an exported model with.
PLAIN = Dialect()


def fail(where: str, key: str, problem: str) -> OnnxConfigError:
    """The one-line error for ``key`` of the config ``where``."""
    return OnnxConfigError(f"{where}: {key} {problem} (see docs/onnx.md)")


def check(doc: Any, schema: Any, where: str, path: str = "") -> Any:
    """:func:`~tcmbench.safety.validation.check_document`, its error as an
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


def parse_config(doc: Any, where: str, dialect: Dialect = PLAIN) -> OnnxModelConfig:
    """Check a config document (already read) against the schema and
    build the config. ``where`` names it in every message."""
    if not isinstance(doc, Mapping):
        raise OnnxConfigError(
            f"{where}: a tcmbench ONNX config must be a mapping (JSON object), "
            f"got {type(doc).__name__} (see docs/onnx.md)"
        )
    if doc.get("format") != FORMAT:  # what identifies the file: checked first
        raise fail(where, "format", f"must be {FORMAT!r}, got {doc.get('format')!r}")
    doc = check(doc, dialect.schema, where)
    extends = doc.pop("extends", None)
    if extends is not None:
        doc = _merge(dialect.builtin_document(extends), doc)
    inp = dict(doc.get("input") or {})
    resize = dict(doc.get("resize") or {})
    output = dict(doc.get("output") or {})
    for key in ("mean", "std"):
        if key not in inp:
            raise fail(where, f"input.{key}", "is required (3 numbers, one per channel)")
    rule = resize.get("rule", "keep_ratio")
    own = RULE_KEYS[rule]
    stray = sorted(k for k in resize if k != "rule" and k not in own)
    if stray:
        raise fail(
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
    if dialect.check_postprocess is not None:
        post = dialect.check_postprocess(kind, post, where)
    # else: the parameters are checked by the postprocessor that runs them
    # (onnx_runtime.load_with_onnxruntime: the exporting plugin's)
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


def read_config_file(path: Path, dialect: Dialect = PLAIN) -> OnnxModelConfig:
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
    return parse_config(doc, str(path), dialect)


def config_paths(model: Path) -> list[Path]:
    """Where the config of ``model`` (``NAME.onnx``) may be."""
    stem = model.name[: -len(model.suffix)] if model.suffix else model.name
    return [model.with_name(stem + suffix) for suffix in CONFIG_SUFFIXES]


def is_config_path(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in CONFIG_SUFFIXES)


def locate(weights: Path, dialect: Dialect = PLAIN) -> tuple[Path, OnnxModelConfig]:
    """(ONNX file, its config) for ``--weights``: an ONNX file (config
    beside it, or the dialect's built-in one for a file named like its
    models), a config file (its ``model`` key names the ONNX file) or a
    folder holding one ``*.onnx``."""
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
        cfg = read_config_file(weights, dialect)
        if not cfg.model:
            raise fail(str(weights), "model", "is required when --weights names the config")
        model = (weights.parent / cfg.model).resolve()
        if not model.is_file():
            raise fail(str(weights), "model", f"points at {model}, which does not exist")
        return model, cfg
    for candidate in config_paths(weights):
        if candidate.is_file():
            return weights, read_config_file(candidate, dialect)
    builtin = dialect.default_for(weights)
    if builtin is not None:
        doc = dialect.builtin_document(builtin)
        return weights, parse_config(doc, f"built-in {builtin}", dialect)
    raise OnnxConfigError(
        f"{weights}: no config beside it; write {config_paths(weights)[0].name} next to it "
        f"({dialect.hint}), or export the model with `tcmbench export onnx`"
    )
