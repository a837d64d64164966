"""The onnx DetectorSpec: a foreign DB-family detector exported to ONNX (torch-free).

Inference only: the spec has no network to build; its ``load_weights``
reads ``--weights MODEL.onnx`` with its config (:mod:`tcmbench_onnx.config`)
and hands the core's onnxruntime pieces what this model family needs: the
config's one-pass pre-processing, the probability map among the outputs
and the DB postprocessor with the config's parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcmbench.contract.spec import DetectorConfig, DetectorSpec
from tcmbench.errors import CheckpointError, PluginError

VERSION = "0.1.0"


def _no_build(config: DetectorConfig) -> Any:
    """An ONNX file is a finished network: there is nothing to build or
    train, so ``train`` / ``bench`` with this plugin get a clear error."""
    raise PluginError(
        "plugin 'onnx' runs exported models only (evaluate, predict with --weights MODEL.onnx); "
        "train or benchmark the PyTorch detector (e.g. --plugin dbnet) and export it with "
        "`tcmbench export onnx`"
    )


def _prob_output(session: Any, cfg: Any, path: Path) -> str:
    """The output holding the DB probability map: the config's
    ``output.name``, else the one called ``prob``, else the only one."""
    from tcmbench.inference.onnx_config import OnnxConfigError

    names = [o.name for o in session.get_outputs()]
    if cfg.output_name is not None:
        return str(cfg.output_name)
    if "prob" in names:
        return "prob"
    if len(names) == 1:
        return str(names[0])
    raise OnnxConfigError(
        f"{cfg.where}: the model {path.name} has {len(names)} outputs ({', '.join(names)}); "
        "set output.name to the probability map"
    )


def load_onnx_model(weights: str, device: str = "cpu") -> Any:
    """``DetectorSpec.load_weights``: the ONNX model and its config as a
    LoadedCheckpoint whose recipe is the config's."""
    from tcmbench.hub.checkpoints import HF_PREFIX, LoadedCheckpoint
    from tcmbench.inference.db_postprocess import DBPostprocessor
    from tcmbench.inference.onnx_config import OnnxConfigError
    from tcmbench.inference.onnx_graph import check_prob_declared
    from tcmbench.inference.onnx_runtime import OnnxDetector, file_sha256, open_checked
    from tcmbench.inference.preprocess import OnnxPreprocessor
    from tcmbench_onnx.config import locate

    if str(weights).startswith(HF_PREFIX):
        raise CheckpointError(
            f"{weights}: the onnx plugin runs local .onnx files; download the model first"
        )
    model_path, cfg = locate(Path(weights).expanduser())
    if cfg.postprocessor != "db":
        plugin = (cfg.exported_from or {}).get("plugin", cfg.postprocessor)
        raise OnnxConfigError(
            f"{cfg.where}: postprocessor {cfg.postprocessor!r}: the onnx plugin post-processes "
            f"DB probability maps only; this model was exported from plugin {plugin!r}: run it "
            f"with --plugin {plugin} --runtime onnxruntime"
        )
    session, output_dims = open_checked(model_path, device, input_name=cfg.input_name)
    prob = _prob_output(session, cfg, model_path)
    check_prob_declared(model_path, prob, output_dims.get(prob))
    model = OnnxDetector(
        session,
        DBPostprocessor(**cfg.postprocess),
        input_name=cfg.input_name,
        outputs={prob: "prob"},
        transform=OnnxPreprocessor(cfg.preprocess),
        path=model_path,
        prob_output=prob,
    )
    meta = {
        "plugin": "onnx",
        "recipe": cfg.recipe(),
        "config": cfg.where,
        "datasets": list((cfg.exported_from or {}).get("datasets") or []),
        "runtime": "onnxruntime",
    }
    return LoadedCheckpoint(
        model,
        onnx_spec(),
        DetectorConfig(backbone="onnx"),
        meta,
        model_path,
        file_sha256(model_path),
    )


def onnx_spec() -> DetectorSpec:
    return DetectorSpec(
        name="onnx",
        build_parts=_no_build,
        summary="DB-family detectors exported to ONNX (PP-OCR, tcmbench exports), onnxruntime",
        version=VERSION,
        load_weights=load_onnx_model,
    )
