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
    """A :class:`tcmbench.hub.checkpoints.LoadedCheckpoint` ready for inference.

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
    from tcmbench.hub.checkpoints import load_checkpoint

    return load_checkpoint(weights, device=str(device), plugin=spec.name, expect_tcm=expect_tcm)


def runs_on_torch(spec: Any, runtime: str | None) -> bool:
    """Whether the network runs on PyTorch: a trainable plugin's checkpoint
    under ``--runtime torch`` (the default). An inference-only plugin's
    model (``--plugin onnx``) and ``--runtime onnxruntime`` run on
    onnxruntime; the first never imports torch, the second only where the
    plugin needs it (exporting a checkpoint, building its postprocessor)."""
    return spec.load_weights is None and runtime != "onnxruntime"


def prepare_device(spec: Any, runtime: str | None, device: str) -> tuple[Any, Any]:
    """(device, :class:`~tcmbench.inference.world.World`) for ``evaluate``
    and ``predict``: a torch device, joining the torchrun process group,
    when the network runs on PyTorch or under torchrun (``WORLD_SIZE`` >
    1); otherwise onnxruntime's device name and a single process, without
    importing torch (seconds of start-up for nothing). A bad ``--device``
    is an error before any work either way."""
    if runs_on_torch(spec, runtime) or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        from tcmbench.inference.world import init_distributed, resolve_device

        dev = resolve_device(device)
        return dev, init_distributed(dev)
    from tcmbench.inference.onnx_runtime import resolve_device as onnx_device
    from tcmbench.inference.world import World

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


def short_training_warning(ckpt: Any) -> str | None:
    """A warning when the checkpoint's own training run was too short to
    learn (the trainer records ``too_short`` in config.json: fewer
    training images than the recipe's, or the default, minimum), so a
    figure of 0 is read as the run's length, not the detector's worth;
    None otherwise (a fine-tune is never flagged by the trainer)."""
    meta = ckpt.meta
    if not meta.get("too_short"):
        return None
    hyper = meta.get("hyper") or {}
    steps = meta.get("step")
    batch = hyper.get("batch_size")
    seen = f"{steps} steps x {batch} images" if steps and batch else "fewer steps"
    minimum = meta.get("min_steps") or hyper.get("min_steps")
    min_batch = hyper.get("min_steps_batch") or batch
    needed = f" (the minimum: {minimum} steps x {min_batch})" if minimum and min_batch else ""
    return (
        f"warning: the weights {ckpt.path} come from a run too short to learn: {seen}{needed}; "
        "such weights typically find nothing (hmean 0): they check the pipeline, not the detector"
    )


def weights_warnings(ckpt: Any, dataset: str | None = None) -> list[str]:
    """Everything about ``ckpt`` a figure could silently mislead about:
    synthetic-only training used on real images, a run too short to learn."""
    found = (synthetic_weights_warning(ckpt, dataset), short_training_warning(ckpt))
    return [w for w in found if w]


def load_with_onnxruntime(
    weights: str, *, spec: Any, device: str = "cpu", expect_tcm: bool | None = None
) -> Any:
    """``--runtime onnxruntime`` for a trainable plugin: the checkpoint
    ``weights`` exported to ONNX (once, cached) or a model exported from
    ``spec``'s plugin, run with that plugin's postprocessor and recipe.

    Torch is imported only to export the checkpoint (the first run), or
    to build the postprocessor of a plugin without a torch-free
    ``DetectorSpec.build_postprocess``."""
    from tcmbench.hub.checkpoints import LoadedCheckpoint, load_checkpoint
    from tcmbench.inference.onnx_config import OnnxConfigError, is_config_path, locate
    from tcmbench.inference.onnx_runtime import OnnxDetector, file_sha256, open_session
    from tcmbench.safety.checkpoint_schema import check_postprocess

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
        cached = _cached_export(text, spec, expect_tcm)
        if cached is not None:
            model_path, config, postprocessor, meta, path, sha = cached
        else:
            ckpt = load_checkpoint(text, device="cpu", plugin=spec.name, expect_tcm=expect_tcm)
            from tcmbench.inference.onnx_export import cached_export

            model_path = cached_export(ckpt)
            config, postprocessor = ckpt.config, ckpt.model.postprocessor
            meta, sha, path = dict(ckpt.meta), ckpt.sha256, ckpt.path
    session = open_session(model_path, device)
    # A torch-free postprocessor takes numpy maps (DetectorSpec.build_postprocess);
    # another plugin's may expect torch tensors.
    as_torch = spec.build_postprocess is None
    model = OnnxDetector(session, postprocessor, as_torch=as_torch, path=model_path)
    meta["runtime"] = "onnxruntime"
    meta["onnx_model"] = str(model_path)
    return LoadedCheckpoint(model, spec, config, meta, path, sha)


def _cached_export(
    weights: str, spec: Any, expect_tcm: bool | None
) -> tuple[Path, Any, Any, dict[str, Any], Path, str] | None:
    """(cached export, architecture, postprocessor, config.json, checkpoint
    path, weights sha256) of the checkpoint ``weights``, read without
    importing torch: config.json is checked as
    :func:`tcmbench.hub.checkpoints.load_checkpoint` checks it and the
    postprocessor comes from ``spec.build_postprocess``. None when the
    export is not cached yet or the plugin has no torch-free
    postprocessor: the checkpoint is then loaded (and exported) with torch."""
    if spec.build_postprocess is None:
        return None
    from tcmbench.data.archives import sha256_file
    from tcmbench.hub.checkpoints import (
        CONFIG_NAME,
        checkpoint_architecture,
        read_checkpoint_meta,
        resolve_weights,
    )
    from tcmbench.inference.onnx_export import cached_export_path
    from tcmbench.safety.checkpoint_schema import check_postprocess

    path = resolve_weights(weights)
    meta, weights_file = read_checkpoint_meta(path)
    config = checkpoint_architecture(path, meta, plugin=spec.name, expect_tcm=expect_tcm)
    sha = sha256_file(weights_file)
    model_path = cached_export_path(sha)
    if not model_path.is_file():
        return None
    config_file = str(weights_file.with_name(CONFIG_NAME))
    postprocessor = _torch_free_postprocessor(spec, config, config_file, "architecture")
    recipe = meta.get("recipe") or {}
    check_postprocess(postprocessor, recipe.get("postprocess"), config_file, "recipe.postprocess")
    return model_path, config, postprocessor, dict(meta), path, sha


def _torch_free_postprocessor(spec: Any, config: Any, where: str, key: str) -> Any:
    """``spec.build_postprocess(config)``; a bad option is a CheckpointError
    naming ``where`` and ``key``, as when the network is built."""
    from tcmbench.errors import TcmbenchError

    try:
        return spec.build_postprocess(config)
    except TcmbenchError as exc:
        raise CheckpointError(f"{where}: {key}: {exc}") from None


def _kind(config: Any) -> str:
    return "TCM checkpoint" if config.tcm is not None else "plain (non-TCM) checkpoint"


def _architecture(exported: Mapping[str, Any], where: str) -> Any:
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.inference.onnx_config import OnnxConfigError

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
    """The plugin's postprocessor for an exported model: its torch-free
    ``build_postprocess`` when it has one, else built with the plain parts
    of its architecture (random weights, never downloaded) of which only
    the postprocessor is kept."""
    from tcmbench.errors import TcmbenchError
    from tcmbench.inference.onnx_config import OnnxConfigError

    plain = type(config)(
        backbone=config.backbone, pretrained_backbone=False, tcm=None, options=config.options
    )
    try:
        if spec.build_postprocess is not None:
            return spec.build_postprocess(plain)
        return spec.build_parts(plain).postprocessor
    except TcmbenchError as exc:
        raise OnnxConfigError(f"{where}: exported_from.architecture: {exc}") from None
