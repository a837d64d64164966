"""What ``evaluate`` and ``predict`` run for ``--weights``.

Three kinds of model go through the same inference pipeline
(:func:`tcmbench.inference.predict_samples`):

- a tcmbench checkpoint run by PyTorch (``--runtime torch``, the default);
- the same checkpoint, or a model exported from it, run by onnxruntime
  (``--runtime onnxruntime``; the ``onnx`` plugin's code, extra
  ``tcmbench[onnx]``): same resize, normalisation and postprocessor, only
  the network's arithmetic changes hands;
- a finished model of an *inference-only* plugin, whose
  ``DetectorSpec.load_weights`` reads it (the ``onnx`` plugin: an ONNX file
  and its config); its test settings are the model's own.

It also says when weights trained on synthetic images only are about to
be run on something else, because their figures there mean little.
"""

from __future__ import annotations

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
        try:
            from tcmbench_onnx.runtime import load_with_onnxruntime
        except ImportError as exc:
            raise PluginError(
                f"--runtime onnxruntime needs the onnx plugin and onnxruntime ({exc}); "
                "install the optional extra: pip install 'tcmbench[onnx]'"
            ) from None
        return load_with_onnxruntime(
            str(weights), spec=spec, device=str(device), expect_tcm=expect_tcm
        )
    from tcmbench.hub import load_checkpoint

    return load_checkpoint(weights, device=str(device), plugin=spec.name, expect_tcm=expect_tcm)


def resolve_for_checkpoint(
    spec: Any, ckpt: Any, recipe_name: str | None, dataset: str | None = None
) -> Any:
    """:func:`tcmbench.inference_settings.resolve_test_recipe` for a loaded
    checkpoint: the test settings every command runs it with."""
    from tcmbench.inference_settings import resolve_test_recipe

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
