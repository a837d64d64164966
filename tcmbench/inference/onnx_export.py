"""Export a tcmbench checkpoint to ONNX, with the config that runs it.

The export is generic over :class:`tcmbench.models.detector.Detector`: the
network is exported up to the head's maps (every tensor the eval-mode
forward returns, in a fixed order; a multi-level head's list ``preds``
becomes outputs ``preds.0``, ``preds.1``...), and post-processing stays in
Python, where the plugin's own postprocessor runs it. Height, width and
batch are dynamic.

The exporter is torch's TorchScript-based one (``dynamo=False``): it needs
no package beyond torch and ``onnx``, and handles the dynamic sizes of
these convolutional detectors. Because a trace can silently freeze a size
into the graph, every export is checked: the ONNX model is run with
onnxruntime at a *different* size than the one traced, and its maps must
equal PyTorch's (``|onnx - torch| <= ATOL + RTOL * |torch|``) or the
export fails.

Beside ``NAME.onnx`` goes ``NAME.tcmbench.json`` (docs/onnx.md):
pre-processing from the checkpoint's recipe (or ``--recipe``), the
plugin's postprocessor parameters, and ``exported_from`` (plugin,
architecture, recipe, checkpoint sha256, training datasets).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench import __version__
from tcmbench.errors import CheckpointError
from tcmbench.inference.onnx_config import FORMAT, VERSION, config_paths

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "images"
#: Traced at this (height, width), checked at VERIFY_SIZE: different aspect
#: ratios and grids, so a size frozen by the trace cannot go unnoticed.
TRACE_SIZE = (256, 320)
VERIFY_SIZE = (320, 224)
ATOL = 1e-4
RTOL = 1e-3


def _flatten(outputs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(name, tensor) for every tensor of a forward's outputs, sorted by
    key; lists of tensors become ``key.0``, ``key.1``..."""
    import torch

    flat: list[tuple[str, Any]] = []
    for key in sorted(outputs):
        value = outputs[key]
        if torch.is_tensor(value):
            flat.append((key, value))
        elif isinstance(value, list | tuple) and all(torch.is_tensor(v) for v in value):
            flat.extend((f"{key}.{i}", v) for i, v in enumerate(value))
    return flat


def _maps_module(model: Any) -> Any:
    from torch import nn

    class MapsOnly(nn.Module):
        """The detector's forward, returning its maps as a tuple."""

        def __init__(self, detector: nn.Module) -> None:
            super().__init__()
            self.detector = detector

        def forward(self, images: Any) -> tuple[Any, ...]:
            return tuple(t for _, t in _flatten(self.detector(images)))

    return MapsOnly(model).eval()


def export_detector(model: Any, out: Path, *, opset: int = OPSET) -> dict[str, Any]:
    """Write ``model``'s network to ``out`` (ONNX) and check it at another
    size. Returns ``{"outputs": [...], "max_abs_diff": {...}}``."""
    import torch

    model = model.cpu().eval()
    wrapper = _maps_module(model)
    torch.manual_seed(0)
    x = torch.randn(1, 3, *TRACE_SIZE)
    with torch.no_grad():
        names = [n for n, _ in _flatten(model(x))]
    if not names:
        raise CheckpointError("the detector's forward returned no tensor maps to export")
    dynamic: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad():
        for name, t in _flatten(model(x)):
            dynamic[name] = {0: "batch", **{d: f"{name}_d{d}" for d in range(2, t.dim())}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice and the tracer's notes on
        # Python values: the check below is what guards the result.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (x,),
                str(out),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
            )
    model.eval()  # the exporter restores the wrapper's mode; keep the detector's
    diffs = check_export(model, out, names)
    return {"outputs": names, "max_abs_diff": diffs}


def check_export(model: Any, path: Path, names: list[str]) -> dict[str, float]:
    """Run ``path`` with onnxruntime at VERIFY_SIZE and compare with
    ``model``; a mismatch is a CheckpointError naming the output."""
    import torch

    from tcmbench.inference.onnx_runtime import open_session

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, *VERIFY_SIZE, generator=g)
    with torch.no_grad():
        ref = dict(_flatten(model(x)))
    try:
        got = open_session(path).run(names, {INPUT_NAME: x.numpy()})
    except Exception as exc:  # noqa: BLE001  (onnxruntime's Fail, InvalidArgument...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: the exported model fails at input size {VERIFY_SIZE} (traced at "
            f"{TRACE_SIZE}): a size was frozen by the trace ({first})"
        ) from None
    diffs: dict[str, float] = {}
    for name, value in zip(names, got):
        expected = ref[name].float().numpy()
        if value.shape != expected.shape:
            raise CheckpointError(
                f"{path}: output {name} has shape {value.shape} at input {VERIFY_SIZE} but "
                f"PyTorch gives {expected.shape}: a size was frozen by the trace"
            )
        diff = np.abs(value - expected)
        diffs[name] = float(diff.max()) if diff.size else 0.0
        if (diff > ATOL + RTOL * np.abs(expected)).any():
            raise CheckpointError(
                f"{path}: output {name} differs from PyTorch by up to {diffs[name]:.3g} at "
                f"input {VERIFY_SIZE} (tolerance {ATOL} + {RTOL} x |value|)"
            )
    return diffs


def onnx_config(ckpt: Any, recipe: Mapping[str, Any], outputs: list[str]) -> dict[str, Any]:
    """The config written beside an exported checkpoint."""
    from tcmbench.data.transforms import normalization
    from tcmbench.inference.pipeline import postprocessor_for

    mean, std = normalization(recipe)
    test = dict(recipe.get("test") or {})
    post = postprocessor_for(ckpt.model, recipe)
    # A DB postprocessor (family "db") is one the onnx plugin runs itself,
    # all its parameters written out; another plugin's keeps its name.
    if getattr(post, "family", None) == "db" and dataclasses.is_dataclass(post):
        kind, params = "db", dataclasses.asdict(post)
    else:
        kind, params = ckpt.spec.name, dict(recipe.get("postprocess") or {})
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "source": f"exported by tcmbench {__version__} from {ckpt.path} (plugin {ckpt.spec.name})",
        "input": {
            "name": INPUT_NAME,
            "channel_order": "rgb",
            "mean": list(mean),
            "std": list(std),
            "pixel_range": 255,
        },
        "resize": {
            "rule": "keep_ratio",
            "long_side": test.get("long_side"),
            "short_side": test.get("short_side"),
            "pad_divisor": int(test.get("pad_divisor", 32)),
        },
        "output": {"name": "prob" if kind == "db" else None},
        "postprocessor": kind,
        "postprocess": params,
        "outputs": outputs,
        "exported_from": {
            "plugin": ckpt.spec.name,
            "plugin_version": getattr(ckpt.spec, "version", ""),
            "checkpoint_sha256": ckpt.sha256,
            "architecture": ckpt.config.to_dict(),
            "recipe": dict(ckpt.meta.get("recipe") or {}),
            "datasets": list(ckpt.meta.get("datasets") or []),
            "tcmbench_version": __version__,
            "opset": OPSET,
        },
    }
    return doc


def export_checkpoint(
    ckpt: Any, out: str | Path, *, recipe_name: str | None = None
) -> tuple[Path, Path, dict[str, Any]]:
    """Export a loaded checkpoint to ``out`` and write its config beside it.
    Returns (model path, config path, export report)."""
    from tcmbench.inference.settings import resolve_test_recipe
    from tcmbench.safety.paths import atomic_path, atomic_write_text

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise CheckpointError(f"--out {out}: the model file must end in .onnx")
    recipe = resolve_test_recipe(ckpt.spec, ckpt.meta.get("recipe"), recipe_name).recipe
    with atomic_path(out) as tmp:
        report = export_detector(ckpt.model, tmp)
    config_path = config_paths(out)[0]
    doc = onnx_config(ckpt, recipe, report["outputs"])
    atomic_write_text(config_path, json.dumps(doc, indent=2) + "\n")
    return out, config_path, report


def _torch_version() -> str:
    """The installed torch's version, read from its package metadata: the
    same string whether or not torch was imported (looking an export up
    must not import it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def cached_export_path(sha256: str) -> Path:
    """Where :func:`cached_export` keeps the export of the checkpoint whose
    weights have this sha256: ``<cache>/onnx/<sha256[:32]>-tcmbench<v>-torch<v>-op<opset>/model.onnx``
    (a new tcmbench, torch or opset exports again). Torch-free: whether the
    file exists says whether ``--runtime onnxruntime`` needs torch at all."""
    from tcmbench.safety.paths import cache_dir

    key = f"{sha256[:32]}-tcmbench{__version__}-torch{_torch_version()}-op{OPSET}"
    return cache_dir() / "onnx" / key / "model.onnx"


def cached_export(ckpt: Any) -> Path:
    """The checkpoint exported once (:func:`cached_export_path`); later
    runs reuse it. Exporting needs torch, the loaded checkpoint's model."""
    from tcmbench.safety.paths import atomic_dir

    model = cached_export_path(ckpt.sha256)
    if model.is_file():
        return model
    folder = model.parent
    log.info("exporting %s to ONNX (cached in %s)", ckpt.path, folder)
    with atomic_dir(folder) as tmp:
        export_detector(ckpt.model, tmp / model.name)
    return model
