"""Running an ONNX detector with onnxruntime in tcmbench's inference pipeline.

:class:`OnnxDetector` looks, to :func:`tcmbench.inference.predict_samples`,
like a torch detector: it is called on a batch and returns the head's maps
as a dict, carries a ``postprocessor``, and answers ``eval()`` /
``train(False)``. It also provides ``make_transform(recipe)``, the
pre-processing its config asks for; a detector without one gets tcmbench's
``InferenceTransform``. Reading, batching, post-processing, caching and
scoring are therefore the very code a PyTorch checkpoint goes through.

Two ways in:

- :func:`load_onnx_model` for ``--plugin onnx --weights model.onnx``: the
  model's config gives pre- and post-processing (DB post-processing, from
  the DBNet plugin);
- :func:`load_with_onnxruntime` for ``--plugin P --runtime onnxruntime``: a
  tcmbench checkpoint (exported on first use, cached) or a model exported
  from plugin ``P``; pre- and post-processing are ``P``'s, exactly as with
  ``--runtime torch``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.errors import CheckpointError, PluginError
from tcmbench_onnx.config import OnnxConfigError, OnnxModelConfig, locate
from tcmbench_onnx.graph import check_model_file, check_prob_declared, check_prob_map

log = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'tcmbench[onnx]'"


def require_onnxruntime() -> Any:
    """The onnxruntime module, or a PluginError naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise PluginError(
            f"running ONNX models needs onnxruntime, which is not installed ({exc}); "
            f"install the optional extra: {EXTRA_HINT}"
        ) from None
    return onnxruntime


def _providers(ort: Any, device: str) -> list[Any]:
    kind, _, index = str(device).partition(":")
    if kind in ("", "cpu", "auto"):
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise PluginError(
                f"device {device!r}: this onnxruntime has no CUDA provider "
                f"(available: {', '.join(ort.get_available_providers())}); install "
                "onnxruntime-gpu or use --device cpu"
            )
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    raise PluginError(f"onnxruntime cannot run on device {device!r}; use cpu or cuda[:N]")


def open_session(
    path: Path, device: str = "cpu", threads: int | None = None, *, input_name: str | None = None
) -> Any:
    """:func:`open_checked`'s session."""
    return open_checked(path, device, threads, input_name=input_name)[0]


def open_checked(
    path: Path, device: str = "cpu", threads: int | None = None, *, input_name: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """(an onnxruntime InferenceSession, the inferred dims of each output).

    The model is checked first (:func:`tcmbench_onnx.graph.check_model_file`:
    constant and tensor sizes, the image input), so a hostile graph is one
    line before onnxruntime allocates anything; a file that is not a valid
    ONNX model is a CheckpointError naming it. ``threads`` (default: the
    ``OMP_NUM_THREADS`` environment variable, else onnxruntime's choice)
    caps the intra-op threads, as torch's thread count does."""
    ort = require_onnxruntime()
    output_dims = check_model_file(path, input_name)
    options = ort.SessionOptions()
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=_providers(ort, device))
        return session, output_dims
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001  (onnxruntime: Fail, InvalidProtobuf, InvalidGraph...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: onnxruntime cannot load it as a model ({first})") from None


def output_keys(names: Sequence[str]) -> list[tuple[str, int | None]]:
    """``(key, level)`` for each ONNX output name: ``prob`` -> ("prob",
    None); ``preds.2`` -> ("preds", 2), a level of a multi-level head
    (the names :mod:`tcmbench_onnx.export` writes)."""
    keys: list[tuple[str, int | None]] = []
    for name in names:
        base, dot, tail = name.rpartition(".")
        keys.append((base, int(tail)) if dot and tail.isdigit() else (name, None))
    return keys


class OnnxDetector:
    """An onnxruntime session posing as a tcmbench detector (module doc).

    ``outputs``: ONNX output name -> the key of the outputs dict it fills
    (None: keep the ONNX name, ``name.N`` grouped into lists).
    ``as_torch``: hand the postprocessor torch tensors (a plugin's own
    postprocessor may expect them); numpy arrays otherwise.
    """

    training = False

    def __init__(
        self,
        session: Any,
        postprocessor: Any,
        *,
        input_name: str | None = None,
        outputs: Mapping[str, str] | None = None,
        transform: Any = None,
        as_torch: bool = False,
        path: Path | None = None,
        prob_output: str | None = None,
    ) -> None:
        self.session = session
        self.postprocessor = postprocessor
        inputs = [i.name for i in session.get_inputs()]
        if input_name is not None and input_name not in inputs:
            raise OnnxConfigError(
                f"{path}: the config's input.name {input_name!r} is not an input of the model "
                f"(inputs: {', '.join(inputs)})"
            )
        self.input_name = input_name or inputs[0]
        names = [o.name for o in session.get_outputs()]
        if outputs:
            missing = [n for n in outputs if n not in names]
            if missing:
                raise OnnxConfigError(
                    f"{path}: output {missing[0]!r} is not an output of the model "
                    f"(outputs: {', '.join(names)})"
                )
            self.output_names = list(outputs)
            self._keys: list[tuple[str, int | None]] = [
                (outputs[n], None) for n in self.output_names
            ]
        else:
            self.output_names = names
            self._keys = output_keys(names)
        self.transform = transform
        self.as_torch = as_torch
        self.path = path
        self.prob_output = prob_output

    def eval(self) -> OnnxDetector:
        return self

    def train(self, mode: bool = True) -> OnnxDetector:
        if mode:
            raise PluginError(
                "an ONNX model runs inference only; train the PyTorch checkpoint instead"
            )
        return self

    def make_transform(self, recipe: Mapping[str, Any]) -> Any:
        """The pre-processing for ``recipe``: the config's own, or None
        (tcmbench's InferenceTransform from the recipe)."""
        return self.transform

    def run(self, images: Any) -> dict[str, Any]:
        """The head's maps for a (B, 3, H, W) batch (numpy or torch)."""
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        x = np.ascontiguousarray(images, dtype=np.float32)
        try:
            results = self.session.run(self.output_names, {self.input_name: x})
        except Exception as exc:  # noqa: BLE001  (onnxruntime's Fail, InvalidArgument...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise CheckpointError(
                f"{self.path}: onnxruntime failed on an input of shape {x.shape} ({first})"
            ) from None
        self._check_outputs(results, x.shape)
        out: dict[str, Any] = {}
        for (key, level), value in zip(self._keys, results):
            if level is None:
                out[key] = value
            else:
                out.setdefault(key, {})[level] = value
        for key, value in list(out.items()):
            if isinstance(value, dict):
                out[key] = [value[i] for i in sorted(value)]
        if self.as_torch:
            import torch

            def to_torch(v: Any) -> Any:
                return [to_torch(i) for i in v] if isinstance(v, list) else torch.from_numpy(v)

            out = {k: to_torch(v) for k, v in out.items()}
        return out

    __call__ = run

    def _check_outputs(self, results: list[Any], batch_shape: tuple[int, ...]) -> None:
        """A NaN or infinite map would be post-processed into no boxes
        without a word; the probability map must also look like one."""
        for name, value in zip(self.output_names, results):
            if name == self.prob_output:
                check_prob_map(Path(str(self.path)), name, value, batch_shape)
            elif np.issubdtype(np.asarray(value).dtype, np.floating):
                bad = ~np.isfinite(value)
                if bad.any():
                    raise CheckpointError(
                        f"{self.path}: output {name!r} holds {int(bad.sum())} NaN or infinite "
                        f"value(s) for an input of shape {batch_shape}; the model is broken"
                    )

    def predict(self, images: Any, metas: list[dict[str, Any]]) -> list[list[Any]]:
        """Maps, then the postprocessor (the Detector.predict contract)."""
        return self.postprocessor(self.run(images), metas)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _db_postprocessor(cfg: OnnxModelConfig) -> Any:
    from tcmbench_dbnet.postprocess import DBPostprocessor

    return DBPostprocessor(**cfg.postprocess)


def _prob_output(session: Any, cfg: OnnxModelConfig, path: Path) -> str:
    """The output holding the DB probability map: the config's
    ``output.name``, else the one called ``prob``, else the only one."""
    names = [o.name for o in session.get_outputs()]
    if cfg.output_name is not None:
        return cfg.output_name
    if "prob" in names:
        return "prob"
    if len(names) == 1:
        return names[0]
    raise OnnxConfigError(
        f"{cfg.where}: the model {path.name} has {len(names)} outputs ({', '.join(names)}); "
        "set output.name to the probability map"
    )


def load_onnx_model(weights: str, device: str = "cpu") -> Any:
    """``DetectorSpec.load_weights`` of the onnx plugin: the ONNX model and
    its config as a LoadedCheckpoint whose recipe is the config's."""
    from tcmbench.hub import HF_PREFIX, LoadedCheckpoint
    from tcmbench.models.spec import DetectorConfig
    from tcmbench_onnx.spec import onnx_spec

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
    log.info("ONNX model %s with config %s", model_path, cfg.where)
    session, output_dims = open_checked(model_path, device, input_name=cfg.input_name)
    from tcmbench_onnx.preprocess import OnnxPreprocessor

    prob = _prob_output(session, cfg, model_path)
    check_prob_declared(model_path, prob, output_dims.get(prob))
    model = OnnxDetector(
        session,
        _db_postprocessor(cfg),
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


def load_with_onnxruntime(
    weights: str, *, spec: Any, device: str = "cpu", expect_tcm: bool | None = None
) -> Any:
    """``--runtime onnxruntime`` for a trainable plugin: the checkpoint
    ``weights`` exported to ONNX (once, cached) or a model exported from
    ``spec``'s plugin, run with that plugin's postprocessor and recipe."""
    from tcmbench.checkpoint_schema import check_postprocess
    from tcmbench.hub import LoadedCheckpoint, load_checkpoint
    from tcmbench_onnx.config import is_config_path

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
        from tcmbench_onnx.export import cached_export

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

    plain = type(config)(
        backbone=config.backbone, pretrained_backbone=False, tcm=None, options=config.options
    )
    try:
        return spec.build_parts(plain).postprocessor
    except TcmbenchError as exc:
        raise OnnxConfigError(f"{where}: exported_from.architecture: {exc}") from None
