"""The schema of a checkpoint's ``config.json``, and the check of its tensors.

A checkpoint may come from anyone (``hf://org/repo``), so its config is
untrusted input: ``"architecture": "dbnet"``, ``"tcm": "yes"``,
``"options": [1, 2]``, a ``recipe.test.pad_divisor`` of 0 (a
ZeroDivisionError), a ``long_side`` of 1e9 (a 10.9 TiB allocation) or a
``normalize.std`` of 1e-30 (no detections at all) used to surface deep in
model building or inference. :data:`CONFIG` declares every field the loader
and inference read, as a :class:`~tcmbench.safety.validation.Section` of the one
validation layer (:mod:`tcmbench.safety.validation`); :func:`read_config` parses the
file under size and depth limits and :func:`validate_meta` checks it before
anything is built, reporting the first problem as one line naming the file
and the key (``recipe.test.pad_divisor``) and what is allowed.

Two parts belong to the plugin, not to this schema: ``architecture.options``
(the plugin's option resolver checks them, :mod:`tcmbench.contract.options`)
and ``recipe.postprocess`` (the plugin's postprocessor checks them against
its declared parameters: :func:`check_postprocess`, called once the model is
built).

:data:`TEST` and :data:`NORMALIZE` are also what
:class:`tcmbench.data.transforms.InferenceTransform` checks any recipe
against, and an exported ONNX model's ``exported_from`` block reuses
:data:`ARCHITECTURE_SECTION` and :data:`RECIPE`.

:func:`check_tensors` does the same for the weights: a tensor stored with
another dtype than the model's would be cast silently by
``load_state_dict`` (an int8 or bool tensor then predicts nothing), and a
NaN or infinite weight turns every output into NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from tcmbench.contract.options import Opt
from tcmbench.contract.spec import AUX_LOSS_BATCHINGS
from tcmbench.errors import CheckpointError, TcmbenchError
from tcmbench.safety.validation import DocumentError, ListOf, Section, check_document, flatten

#: Newest ``format_version`` this tcmbench reads.
FORMAT_VERSION = 1
#: Largest config.json read (real ones are a few kB; results and training
#: provenance included, far below this).
MAX_CONFIG_BYTES = 4 * 1024 * 1024

#: ``architecture.tcm`` (:class:`~tcmbench.contract.spec.TCMConfig`; a test
#: keeps this in step with the dataclass's fields).
TCM: dict[str, Opt] = {
    "context_length": Opt(4, "int", ge=0, le=77, help="learnable prompt tokens (0: none)"),
    "predefined_prompt": Opt(True, "bool", help="use the predefined prompt"),
    "language_generator": Opt(True, "bool", help="language prompt generator"),
    "visual_generator": Opt(True, "bool", help="visual prompt generator"),
    "text_context_decoder": Opt(True, "bool", help="text-context decoder"),
    "prompt": Opt("", "str", help="the predefined prompt's text"),
    "clip_model": Opt("RN50-quickgelu", "str", help="open_clip model name"),
    "clip_pretrained": Opt("openai", "str", nullable=True, help="open_clip pretrained tag"),
    "clip_weights": Opt(None, "str", nullable=True, help="local CLIP weights file"),
    "tau": Opt(0.07, "float", gt=0, help="temperature"),
    "input_resolution": Opt(
        None, "int", ge=32, le=4096, nullable=True, help="CLIP positional-embedding grid"
    ),
    "aux_weight": Opt(1.0, "float", ge=0, help="weight of the auxiliary loss"),
    "lr_factor_image": Opt(0.1, "float", ge=0, help="learning-rate factor, CLIP image encoder"),
    "lr_factor_text": Opt(0.0, "float", ge=0, help="learning-rate factor, CLIP text encoder"),
    "aux_loss_batching": Opt(
        None,
        "str",
        nullable=True,
        choices=AUX_LOSS_BATCHINGS,
        help="how the batch's auxiliary balanced BCE was combined (docs/tcm.md)",
    ),
}

#: ``architecture`` (:class:`~tcmbench.contract.spec.DetectorConfig`).
ARCHITECTURE_SECTION = Section(
    {
        "backbone": Opt("resnet18", "str", help="backbone name"),
        "pretrained_backbone": Opt(False, "bool", help="ignored on load (weights come along)"),
        "tcm": Section(TCM, nullable=True, help="TCM switches; null: a plain detector"),
        "options": Opt(
            None, "dict", nullable=True, help="the plugin's options (checked by the plugin)"
        ),
    },
    strict=False,
    help="what to build",
)

#: Sides of the test-time resize, in pixels: below 32 a detector's
#: 1/32-resolution features vanish (0 detections); above 8192 one image
#: would take gigabytes.
SIDE = Opt(
    None,
    "int",
    ge=32,
    le=8192,
    nullable=True,
    help="limit in pixels (null: not applied)",
)
#: Padding multiple of the test-time resize.
PAD_DIVISOR = Opt(32, "int", ge=1, le=256, help="pad the resized image to a multiple of this")

#: The two test-time resize rules and the keys of PaddleOCR's (shared by a
#: checkpoint's ``recipe.test`` and an ONNX model config's ``resize``).
RESIZE_RULE = Opt(
    "keep_ratio",
    "str",
    choices=("keep_ratio", "limit_side"),
    help="keep_ratio (long_side / short_side) or limit_side (PaddleOCR's resize)",
)
LIMIT_SIDE_LEN = Opt(960, "int", ge=32, le=8192, help="limit_side: the side limit in pixels")
LIMIT_TYPE = Opt(
    "max",
    "str",
    choices=("max", "min"),
    help="limit_side: max (longer side at most the limit) or min (shorter side at least)",
)
DIVISOR = Opt(32, "int", ge=1, le=256, help="limit_side: round each side to a multiple of this")

#: ``recipe.test``: the test-time resize (docs/evaluate.md, "Test-time settings").
TEST = Section(
    {
        "long_side": replace(
            SIDE, help="scale (up or down) so the longer side is at most this; null: no limit"
        ),
        "short_side": replace(
            SIDE, help="likewise for the shorter side; the smaller of the two scales wins"
        ),
        "pad_divisor": PAD_DIVISOR,
        # rule limit_side: PaddleOCR's resize (InferenceTransform), which
        # checkpoints imported from PP-OCR graphs record.
        "rule": RESIZE_RULE,
        "limit_side_len": LIMIT_SIDE_LEN,
        "limit_type": LIMIT_TYPE,
        "divisor": DIVISOR,
        "runtime": Opt(
            "torch",
            "str",
            choices=("torch", "onnxruntime"),
            help="set by tcmbench when the model runs in onnxruntime",
        ),
    },
    nullable=True,
    help="test-time resize",
)

#: One channel of ``recipe.normalize``: pixels become (x - mean) / std. A
#: std below 1e-3 turns every input into +-1e5 or more, and the network
#: then predicts nothing.
MEAN_CHANNEL = Opt(None, "float", ge=-1e4, le=1e4, help="per-channel mean, RGB")
STD_CHANNEL = Opt(None, "float", ge=1e-3, le=1e4, help="per-channel std, RGB")

#: ``recipe.normalize``: the per-channel mean / std the checkpoint was
#: trained with.
NORMALIZE = Section(
    {
        "mean": ListOf(MEAN_CHANNEL, min_len=3, max_len=3),
        "std": ListOf(STD_CHANNEL, min_len=3, max_len=3),
    },
    nullable=True,
    help="input normalisation, RGB",
)

#: ``recipe``: only what inference reads is declared; the training keys
#: (optimizer, schedule, augment...) are provenance and kept as they are.
RECIPE = Section(
    {
        "test": TEST,
        "normalize": NORMALIZE,
        "postprocess": Opt(
            None,
            "dict",
            nullable=True,
            help="the plugin's postprocess parameters (checked by its postprocessor)",
        ),
        "tcm": Section(
            {"normalize": NORMALIZE},
            strict=False,
            nullable=True,
            help="TCM recipe settings",
        ),
    },
    strict=False,
    nullable=True,
    help="the training recipe",
)

#: The whole ``config.json``. Other top-level keys (``train``, ``hyper``,
#: ``versions``...) are provenance, kept and never read back.
CONFIG = Section(
    {
        "plugin": Opt(None, "str", help="detector plugin name"),
        "architecture": ARCHITECTURE_SECTION,
        "format_version": Opt(FORMAT_VERSION, "int", ge=1, help="checkpoint format"),
        "plugin_version": Opt("", "str", nullable=True, help="version of the plugin"),
        "recipe": RECIPE,
        "datasets": ListOf(Opt(None, "str", help="the training datasets"), nullable=True),
        "results": Opt(None, "list", nullable=True, help="scores recorded at save time"),
    },
    strict=False,
    required=("plugin", "architecture"),
)
REQUIRED_TOP = CONFIG.required

#: Every declared key of config.json, flattened for docs/formats.md
#: (``<!-- generated: options tcmbench.safety.checkpoint_schema:CONFIG_KEYS key -->``).
CONFIG_KEYS: dict[str, Opt] = flatten(CONFIG)


def validate_meta(meta: Any, config_file: Path | str) -> dict[str, Any]:
    """The checked, normalised ``config.json`` (integral floats as ints);
    a one-line :class:`CheckpointError` (file and key) for the first field
    the loader could not use."""
    if not isinstance(meta, Mapping):
        raise CheckpointError(
            f"{config_file} is not a tcmbench checkpoint config (a JSON object with plugin "
            f"and architecture), got a {type(meta).__name__}"
        )
    missing = [k for k in REQUIRED_TOP if k not in meta]
    if missing:
        raise CheckpointError(
            f"{config_file} is not a tcmbench checkpoint config (no {'/'.join(missing)})"
        )
    try:
        checked: dict[str, Any] = check_document(meta, CONFIG, str(config_file))
    except DocumentError as exc:
        raise CheckpointError(str(exc)) from None
    if not checked["plugin"].strip():
        raise CheckpointError(
            f"{config_file}: plugin must name a detector plugin, got an empty string"
        )
    version = checked.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_file}: format_version is {version}: written by a newer tcmbench (this one "
            f"reads up to {FORMAT_VERSION}); upgrade tcmbench"
        )
    backbone = checked["architecture"].get("backbone")
    if backbone is not None and not backbone.strip():
        raise CheckpointError(f"{config_file}: architecture.backbone must name a backbone, got ''")
    return checked


def read_config(config_file: Path) -> dict[str, Any]:
    """Read, parse (size and depth limits) and check a config.json."""
    from tcmbench.safety.validation import parse_json, read_document

    try:
        meta = parse_json(
            read_document(config_file, max_bytes=MAX_CONFIG_BYTES),
            str(config_file),
            max_bytes=MAX_CONFIG_BYTES,
        )
    except DocumentError as exc:
        raise CheckpointError(str(exc)) from None
    return validate_meta(meta, config_file)


def check_postprocess(postprocessor: Any, params: Any, source: str, key: str) -> None:
    """Apply ``params`` (a recipe's ``postprocess``) to the plugin's
    postprocessor once, at load time, so an unknown or bad parameter is a
    one-line :class:`CheckpointError` naming ``source`` and ``key`` -- not
    a TypeError when the first image is post-processed. The plugin's
    ``with_params`` checks them against its declared parameters."""
    if not params:
        return
    with_params = getattr(postprocessor, "with_params", None)
    if with_params is None:
        raise CheckpointError(
            f"{source}: {key} sets {', '.join(sorted(map(str, params)))} but the plugin's "
            "postprocessor takes no parameters"
        )
    try:
        with_params(**params)
    except TcmbenchError as exc:
        raise CheckpointError(f"{source}: {key}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a plugin whose with_params does not check
        raise CheckpointError(f"{source}: {key}: {exc}") from None


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def check_tensors(
    state: Mapping[str, Any], expected: Mapping[str, Any], weights_file: Path
) -> None:
    """Refuse tensors whose dtype differs from the model's (``expected``:
    the model's state dict) and floating tensors holding NaN or infinity."""
    import torch

    wrong = sorted(k for k in state if k in expected and state[k].dtype != expected[k].dtype)
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{weights_file}: tensor {k} is stored as {str(state[k].dtype).removeprefix('torch.')} "
            f"but the model expects {str(expected[k].dtype).removeprefix('torch.')} "
            f"({len(wrong)} tensor(s) of another dtype: {_few(wrong)}); the weights would be cast "
            "silently, so they are refused"
        )
    not_finite = sorted(
        k
        for k, v in state.items()
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())
    )
    if not_finite:
        k = not_finite[0]
        count = int((~torch.isfinite(state[k])).sum())
        raise CheckpointError(
            f"{weights_file}: tensor {k} holds {count} NaN or infinite value(s) "
            f"({len(not_finite)} such tensor(s): {_few(not_finite)}); the checkpoint is corrupt "
            "or diverged in training"
        )
