"""What ``evaluate`` and ``predict`` run for ``--weights``.

Three kinds of model go through the same inference pipeline
(:func:`tcmbench.inference.predict_samples`):

- a tcmbench checkpoint run by PyTorch (``--runtime torch``, the default);
- the same checkpoint, or a model exported from it, run by onnxruntime
  (``--runtime onnxruntime``: :mod:`tcmbench.inference.onnx_runtime`, extra
  ``tcmbench[onnx]``): same resize, normalisation and postprocessor, only
  the network's arithmetic changes hands;
- a finished model of an *inference-only* plugin, whose
  ``DetectorSpec.load_weights`` reads it (the ``onnx`` plugin: an ONNX file
  and its config); its test settings are the model's own.

:func:`prepare_device` picks the device for the runtime the network
runs on, so ``evaluate`` and ``predict`` never import PyTorch for a model
onnxruntime runs by itself.

It also says when weights trained on synthetic images only are about to
be run on something else, because their figures there mean little.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcmbench.errors import CheckpointError, PluginError

RUNTIMES = ("torch", "onnxruntime")
#: Datasets whose images are generated, not photographed.
SYNTHETIC_DATASETS = frozenset({"synthtext-mini"})
#: What to use on real images instead of weights trained on synthetic ones.
REAL_ALTERNATIVES = (
    "`--plugin onnx --weights ch_PP-OCRv3_det_infer.onnx` (PaddleOCR's PP-OCRv3 detector, "
    "docs/onnx.md) or a checkpoint trained on real images (`--weights hf://org/repo`)"
)


def load_for_inference(
    weights: str | Path,
    *,
    spec: Any,
    device: str = "cpu",
    expect_tcm: bool | None = None,
    runtime: str | None = None,
) -> Any:
    """A :class:`tcmbench.hub.LoadedCheckpoint` ready for inference.

    ``runtime`` None means the plugin's own: PyTorch for a trainable
    plugin, the plugin's loader for an inference-only one.
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise PluginError(f"unknown runtime {runtime!r}; runtimes: {', '.join(RUNTIMES)}")
    if spec.load_weights is not None:
        if expect_tcm:
            raise CheckpointError(
                f"plugin {spec.name!r} runs finished models; --tcm does not apply (a TCM "
                "checkpoint exported to ONNX keeps its TCM module)"
            )
        if runtime == "torch":
            raise PluginError(
                f"plugin {spec.name!r} runs its models itself; --runtime torch does not apply"
            )
        return spec.load_weights(str(weights), str(device))
    if runtime == "onnxruntime":
        from tcmbench.inference.onnx_runtime import require_onnxruntime

        require_onnxruntime()  # names the extra to install
        return load_with_onnxruntime(
            str(weights), spec=spec, device=str(device), expect_tcm=expect_tcm
        )
    from tcmbench.hub import load_checkpoint

    return load_checkpoint(weights, device=str(device), plugin=spec.name, expect_tcm=expect_tcm)


def runs_on_torch(spec: Any, runtime: str | None) -> bool:
    """Whether the network runs on PyTorch: a trainable plugin's checkpoint
    under ``--runtime torch`` (the default). An inference-only plugin's
    model (``--plugin onnx``) and ``--runtime onnxruntime`` run on
    onnxruntime; the first never imports torch, the second only where the
    plugin needs it (exporting a checkpoint, building its postprocessor)."""
    return spec.load_weights is None and runtime != "onnxruntime"


def prepare_device(spec: Any, runtime: str | None, device: str) -> tuple[Any, Any]:
    """(device, :class:`~tcmbench.train.distributed.World`) for ``evaluate``
    and ``predict``: a torch device, joining the torchrun process group,
    when the network runs on PyTorch or under torchrun (``WORLD_SIZE`` >
    1); otherwise onnxruntime's device name and a single process, without
    importing torch (seconds of start-up for nothing). A bad ``--device``
    is an error before any work either way."""
    if runs_on_torch(spec, runtime) or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        from tcmbench.train.distributed import init_distributed, resolve_device

        dev = resolve_device(device)
        return dev, init_distributed(dev)
    from tcmbench.inference.onnx_runtime import resolve_device as onnx_device
    from tcmbench.train.distributed import World

    return onnx_device(device), World()


def resolve_for_checkpoint(
    spec: Any, ckpt: Any, recipe_name: str | None, dataset: str | None = None
) -> Any:
    """:func:`tcmbench.inference.settings.resolve_test_recipe` for a loaded
    checkpoint: the test settings every command runs it with."""
    from tcmbench.inference.settings import resolve_test_recipe

    return resolve_test_recipe(
        spec,
        ckpt.meta.get("recipe"),
        recipe_name,
        dataset,
        inference_only=spec.load_weights is not None,
    )


def tag_runtime(recipe: dict[str, Any], ckpt: Any) -> dict[str, Any]:
    """``recipe`` with ``test.runtime`` set when the model runs outside
    PyTorch: the prediction cache keys on it (onnxruntime's last bits
    differ from PyTorch's) and ``--json`` reports it."""
    runtime = ckpt.meta.get("runtime")
    if runtime and runtime != "torch":
        recipe = dict(recipe)
        recipe["test"] = {**dict(recipe.get("test") or {}), "runtime": runtime}
    return recipe


def trained_on_synthetic_only(meta: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's ``datasets`` are all synthetic ones."""
    datasets = meta.get("datasets") or []
    return bool(datasets) and all(d in SYNTHETIC_DATASETS for d in datasets)


def synthetic_weights_warning(ckpt: Any, dataset: str | None = None) -> str | None:
    """A warning when weights trained on synthetic images only (the
    plugins' embedded defaults) run on a real dataset (``dataset``) or on
    the user's images (``dataset`` None); None otherwise."""
    if not trained_on_synthetic_only(ckpt.meta):
        return None
    if dataset is not None and dataset in SYNTHETIC_DATASETS:
        return None
    trained = ", ".join(ckpt.meta.get("datasets") or [])
    target = f"on {dataset}" if dataset else "on these images"
    return (
        f"warning: the weights {ckpt.path} were trained on synthetic images only ({trained}); "
        f"{target} expect few and poor detections. For real images use {REAL_ALTERNATIVES}"
    )


def load_with_onnxruntime(
    weights: str, *, spec: Any, device: str = "cpu", expect_tcm: bool | None = None
) -> Any:
    """``--runtime onnxruntime`` for a trainable plugin: the checkpoint
    ``weights`` exported to ONNX (once, cached) or a model exported from
    ``spec``'s plugin, run with that plugin's postprocessor and recipe."""
    from tcmbench.checkpoint_schema import check_postprocess
    from tcmbench.hub import LoadedCheckpoint, load_checkpoint
    from tcmbench.inference.onnx_config import OnnxConfigError, is_config_path, locate
    from tcmbench.inference.onnx_runtime import OnnxDetector, file_sha256, open_session

    text = str(weights)
    local = Path(text).expanduser()
    if local.suffix.lower() == ".onnx" or is_config_path(local):
        model_path, cfg = locate(local)
        exported = cfg.exported_from
        if not exported:
            raise OnnxConfigError(
                f"{cfg.where}: not exported by tcmbench (no exported_from); run a foreign "
                "ONNX detector with --plugin onnx"
            )
        if exported.get("plugin") != spec.name:
            raise CheckpointError(
                f"{model_path} was exported from plugin {exported.get('plugin')!r}, not "
                f"{spec.name!r}; use --plugin {exported.get('plugin')}"
            )
        config = _architecture(exported, cfg.where)
        if expect_tcm is not None and (config.tcm is not None) != expect_tcm:
            fix = "add --tcm" if config.tcm is not None else "drop --tcm"
            raise CheckpointError(f"{model_path} was exported from a {_kind(config)}; {fix}")
        postprocessor = _plugin_postprocessor(spec, config, cfg.where)
        check_postprocess(
            postprocessor,
            (exported.get("recipe") or {}).get("postprocess"),
            cfg.where,
            "exported_from.recipe.postprocess",
        )
        meta = {
            "plugin": spec.name,
            "recipe": dict(exported.get("recipe") or {}),
            "datasets": list(exported.get("datasets") or []),
        }
        sha = file_sha256(model_path)
        path = model_path
    else:
        ckpt = load_checkpoint(text, device="cpu", plugin=spec.name, expect_tcm=expect_tcm)
        from tcmbench.inference.onnx_export import cached_export

        model_path = cached_export(ckpt)
        config, postprocessor = ckpt.config, ckpt.model.postprocessor
        meta, sha, path = dict(ckpt.meta), ckpt.sha256, ckpt.path
    session = open_session(model_path, device)
    model = OnnxDetector(session, postprocessor, as_torch=True, path=model_path)
    meta["runtime"] = "onnxruntime"
    meta["onnx_model"] = str(model_path)
    return LoadedCheckpoint(model, spec, config, meta, path, sha)


def _kind(config: Any) -> str:
    return "TCM checkpoint" if config.tcm is not None else "plain (non-TCM) checkpoint"


def _architecture(exported: Mapping[str, Any], where: str) -> Any:
    from tcmbench.inference.onnx_config import OnnxConfigError
    from tcmbench.models.spec import DetectorConfig

    arch = exported.get("architecture")
    if not isinstance(arch, Mapping):
        raise OnnxConfigError(f"{where}: exported_from.architecture must be a mapping")
    config = DetectorConfig.from_dict(arch)
    config.pretrained_backbone = False
    if config.tcm is not None:
        config.tcm.clip_pretrained = None
        config.tcm.clip_weights = None
    return config


def _plugin_postprocessor(spec: Any, config: Any, where: str) -> Any:
    """The plugin's postprocessor for an exported model: built with the
    plain parts of its architecture (random weights, never downloaded);
    only the postprocessor is kept."""
    from tcmbench.errors import TcmbenchError
    from tcmbench.inference.onnx_config import OnnxConfigError

    plain = type(config)(
        backbone=config.backbone, pretrained_backbone=False, tcm=None, options=config.options
    )
    try:
        return spec.build_parts(plain).postprocessor
    except TcmbenchError as exc:
        raise OnnxConfigError(f"{where}: exported_from.architecture: {exc}") from None
