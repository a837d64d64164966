"""The schema of a checkpoint's ``config.json``, and the check of its tensors.

A checkpoint may come from anyone (``hf://org/repo``), so its config is
untrusted input: ``"architecture": "dbnet"``, ``"tcm": "yes"`` or
``"options": [1, 2]`` used to surface as ``AttributeError`` tracebacks deep
in model building. :func:`validate_meta` checks every field the loader
reads, before anything is built, and reports the first problem as one line
naming the file and the key (``architecture.tcm.tau``). The plugin's own
options (``architecture.options.*``) are the plugin's business: its option
resolver checks them (see :mod:`tcmbench.models.options`).

:func:`check_tensors` does the same for the weights: a tensor stored with
another dtype than the model's would be cast silently by
``load_state_dict`` (an int8 or bool tensor then predicts nothing), and a
NaN or infinite weight turns every output into NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcmbench.errors import CheckpointError
from tcmbench.models.options import Opt, check_value

#: Newest ``format_version`` this tcmbench reads.
FORMAT_VERSION = 1

#: Top-level fields of config.json (others, e.g. ``train``, are kept as
#: provenance and never read back).
TOP: dict[str, Opt] = {
    "plugin": Opt(None, "str"),
    "architecture": Opt(None, "dict"),
    "format_version": Opt(FORMAT_VERSION, "int", ge=1),
    "plugin_version": Opt("", "str", nullable=True),
    "recipe": Opt(None, "dict", nullable=True),
    "datasets": Opt(None, "list", nullable=True),
    "results": Opt(None, "list", nullable=True),
}
REQUIRED_TOP = ("plugin", "architecture")

#: ``architecture`` (:class:`~tcmbench.models.spec.DetectorConfig`).
ARCHITECTURE: dict[str, Opt] = {
    "backbone": Opt("resnet18", "str"),
    "pretrained_backbone": Opt(False, "bool"),
    "tcm": Opt(None, "dict", nullable=True),
    "options": Opt(None, "dict", nullable=True),
}

#: ``architecture.tcm`` (:class:`~tcmbench.models.spec.TCMConfig`; a test
#: keeps this in step with the dataclass's fields).
TCM: dict[str, Opt] = {
    "context_length": Opt(4, "int", ge=0, le=77),
    "predefined_prompt": Opt(True, "bool"),
    "language_generator": Opt(True, "bool"),
    "visual_generator": Opt(True, "bool"),
    "text_context_decoder": Opt(True, "bool"),
    "prompt": Opt("", "str"),
    "clip_model": Opt("RN50-quickgelu", "str"),
    "clip_pretrained": Opt("openai", "str", nullable=True),
    "clip_weights": Opt(None, "str", nullable=True),
    "tau": Opt(0.07, "float", gt=0),
    "input_resolution": Opt(None, "int", ge=32, le=4096, nullable=True),
    "aux_weight": Opt(1.0, "float", ge=0),
    "lr_factor_image": Opt(0.1, "float", ge=0),
    "lr_factor_text": Opt(0.0, "float", ge=0),
}

#: ``recipe.normalize``: per-channel mean / std the checkpoint was trained with.
NORMALIZE_CHANNEL = Opt(0.0, "float", ge=-1e4, le=1e4)
STD_CHANNEL = Opt(1.0, "float", gt=0, le=1e4)


def _fail(config_file: Path, key: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{config_file}: {key} {problem}")


def _check_fields(
    config_file: Path,
    prefix: str,
    data: Mapping[str, Any],
    declared: Mapping[str, Opt],
    *,
    strict: bool,
) -> None:
    """Check the declared keys of ``data``; with ``strict`` an undeclared
    key is an error too (a switch this tcmbench does not know would be
    silently dropped otherwise)."""
    for name, opt in declared.items():
        if name in data:
            _, problem = check_value(data[name], opt)
            if problem is not None:
                raise _fail(config_file, f"{prefix}{name}", problem)
    if strict:
        unknown = sorted(str(k) for k in data if k not in declared)
        if unknown:
            raise _fail(
                config_file,
                f"{prefix}{unknown[0]}",
                f"is not a known key (known: {', '.join(declared)}); was the checkpoint "
                "written by a newer tcmbench?",
            )


def _check_normalize(config_file: Path, normalize: Any) -> None:
    key = "recipe.normalize"
    if not isinstance(normalize, Mapping):
        raise _fail(config_file, key, f"must be a mapping with mean and std, got {normalize!r:.60}")
    for part, opt in (("mean", NORMALIZE_CHANNEL), ("std", STD_CHANNEL)):
        values = normalize.get(part)
        if not isinstance(values, list) or len(values) != 3:
            raise _fail(
                config_file, f"{key}.{part}", f"must be a list of 3 numbers, got {values!r:.60}"
            )
        for i, value in enumerate(values):
            _, problem = check_value(value, opt)
            if problem is not None:
                raise _fail(config_file, f"{key}.{part}[{i}]", problem)


def validate_meta(meta: Any, config_file: Path) -> None:
    """Raise a one-line :class:`CheckpointError` (file and key) for the
    first field of ``config.json`` that the loader could not use."""
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
    _check_fields(config_file, "", meta, TOP, strict=False)
    if not meta["plugin"].strip():
        raise _fail(config_file, "plugin", "must name a detector plugin, got an empty string")
    version = meta.get("format_version", FORMAT_VERSION)
    if int(version) > FORMAT_VERSION:
        raise _fail(
            config_file,
            "format_version",
            f"is {version}: written by a newer tcmbench (this one reads up to {FORMAT_VERSION}); "
            "upgrade tcmbench",
        )
    arch = meta["architecture"]
    _check_fields(config_file, "architecture.", arch, ARCHITECTURE, strict=False)
    if "backbone" in arch and not arch["backbone"].strip():
        raise _fail(config_file, "architecture.backbone", "must name a backbone, got ''")
    if arch.get("tcm") is not None:
        _check_fields(config_file, "architecture.tcm.", arch["tcm"], TCM, strict=True)
    recipe = meta.get("recipe") or {}
    if recipe.get("normalize") is not None:
        _check_normalize(config_file, recipe["normalize"])


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
