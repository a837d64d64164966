"""The inference layer: weights in, polygons out, in the runtime asked for.

- :mod:`~tcmbench.inference.loading`: what ``--weights`` names becomes a
  model ready to run (a tcmbench checkpoint for PyTorch, the same or an
  exported model for onnxruntime, an inference-only plugin's own model);
- :mod:`~tcmbench.inference.settings`: which test settings it runs with;
- :mod:`~tcmbench.inference.pipeline`: read, pre-process, run,
  post-process (:func:`predict_samples`), the same loop for every runtime;
- :mod:`~tcmbench.inference.cache`: predictions stored per checkpoint,
  dataset and settings;
- runtimes: :mod:`~tcmbench.inference.torch_runtime` (PyTorch) and
  :mod:`~tcmbench.inference.onnx_runtime` (onnxruntime: sessions, the
  detector posing as a torch one, ``--runtime onnxruntime``), with the ONNX
  model's config (:mod:`~tcmbench.inference.onnx_config`), its checks
  before a session opens (:mod:`~tcmbench.inference.onnx_graph`), its
  one-pass pre-processing (:mod:`~tcmbench.inference.preprocess`) and the
  PyTorch-to-ONNX export (:mod:`~tcmbench.inference.onnx_export`);
- :mod:`~tcmbench.inference.db_postprocess`: DB-family probability maps
  to polygons, shared by every DB-family model (the dbnet plugin's, the
  onnx plugin's foreign ones);
- :mod:`~tcmbench.inference.world`: this process's place under torchrun,
  its device and the process-group helpers (training uses them too);
- :mod:`~tcmbench.inference.profiling`: size and speed of a detector
  (``tcmbench bench``).

Nothing here imports torch at import time, nor any plugin: a plugin hands
its parts in through its ``DetectorSpec`` (the onnx plugin's
``load_weights`` builds an onnxruntime detector from these pieces).
"""

from __future__ import annotations

from tcmbench.inference.cache import (
    CACHE_VERSION,
    TEST_KEYS,
    PredictionCache,
    cache_key,
    cached_predict,
    samples_fingerprint,
    test_settings,
)
from tcmbench.inference.pipeline import STAGES, dataset_protocol, postprocessor_for, predict_samples

__all__ = [
    "CACHE_VERSION",
    "STAGES",
    "TEST_KEYS",
    "PredictionCache",
    "cache_key",
    "cached_predict",
    "dataset_protocol",
    "postprocessor_for",
    "predict_samples",
    "samples_fingerprint",
    "test_settings",
]
