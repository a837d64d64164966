"""The onnxruntime runtime: sessions, and an ONNX detector in tcmbench's pipeline (torch-free).

:class:`OnnxDetector` looks, to :func:`tcmbench.inference.predict_samples`,
like a torch detector: it is called on a batch and returns the head's maps
as a dict, carries a ``postprocessor``, and answers ``eval()`` /
``train(False)``. It takes the numpy batch itself (``runs_numpy``), so the
pipeline never imports torch for it, and it may bring ``make_transform``,
the pre-processing its config asks for
(:class:`tcmbench.inference.preprocess.OnnxPreprocessor`); a detector
without one gets tcmbench's ``InferenceTransform``. Reading, batching,
post-processing, caching and scoring are therefore the very code a
PyTorch checkpoint goes through.

Two ways in:

- an inference-only plugin's ``load_weights`` (the onnx plugin's, for
  ``--plugin onnx --weights model.onnx``) opens the session with
  :func:`open_checked` and wraps it with its own pre- and post-processing;
- :func:`tcmbench.inference.loading.load_with_onnxruntime` for ``--plugin
  P --runtime onnxruntime``: a tcmbench checkpoint (exported on first use,
  cached; this needs torch) or a model exported from plugin ``P``; pre-
  and post-processing are ``P``'s, exactly as with ``--runtime torch``.
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
from tcmbench.inference.onnx_config import OnnxConfigError
from tcmbench.inference.onnx_graph import check_model_file, check_prob_map

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


def resolve_device(name: str = "auto") -> str:
    """``--device`` for a model onnxruntime runs, without importing torch:
    ``auto`` is ``cuda`` when this onnxruntime has the CUDA provider, else
    ``cpu``; ``cpu``, ``cuda`` and ``cuda:N`` are kept (a CUDA device this
    onnxruntime cannot use is an error when the session opens); anything
    else is an error naming the choices."""
    text = (name or "auto").strip().lower()
    kind, _, index = text.partition(":")
    if text == "auto":
        try:
            import onnxruntime
        except ImportError:
            return "cpu"  # require_onnxruntime names the extra when a session opens
        return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"
    if text == "cpu" or (kind == "cuda" and (not index or index.isdigit())):
        return text
    raise PluginError(f"invalid device {name!r}; expected cpu, cuda, cuda:N or auto")


def open_session(
    path: Path, device: str = "cpu", threads: int | None = None, *, input_name: str | None = None
) -> Any:
    """:func:`open_checked`'s session."""
    return open_checked(path, device, threads, input_name=input_name)[0]


def open_checked(
    path: Path, device: str = "cpu", threads: int | None = None, *, input_name: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """(an onnxruntime InferenceSession, the inferred dims of each output).

    The model is checked first (:func:`tcmbench.inference.onnx_graph.check_model_file`:
    constant and tensor sizes, the image input), so a hostile graph is one
    line before onnxruntime allocates anything; a file that is not a valid
    ONNX model is a CheckpointError naming it. ``threads`` (default: the
    ``OMP_NUM_THREADS`` environment variable, else onnxruntime's choice)
    caps the intra-op threads, as torch's thread count does; idle threads
    wait passively unless ``OMP_WAIT_POLICY=ACTIVE``."""
    ort = require_onnxruntime()
    output_dims = check_model_file(path, input_name)
    options = ort.SessionOptions()
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if os.environ.get("OMP_WAIT_POLICY", "PASSIVE").upper() != "ACTIVE":
        # Threads that spin between operators, waiting for work, take the
        # cores from everything else (their own next operator included): on a
        # shared or oversubscribed CPU the network runs far slower. Passive
        # waiting, as the CLI asks of OpenMP for torch; ACTIVE restores it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
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
    (the names :mod:`tcmbench.inference.onnx_export` writes)."""
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
    #: Takes the pipeline's numpy batch itself (no torch tensors).
    runs_numpy = True

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
