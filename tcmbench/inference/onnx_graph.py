"""Checks of an ONNX graph before onnxruntime gets it, and of what it returns.

An ONNX file is untrusted input like a checkpoint. onnxruntime folds
constants while it *creates* a session, so a graph that expands a scalar to
(46341, 46341) allocates 8 GB before a single image is run, and a constant
whose dims declare a billion floats is allocated as declared. A model with
one input channel, a fixed 32 x 32 input or a scalar output ends in an
onnxruntime traceback on the first image, and one whose "probability map"
has 3 channels or holds NaN is post-processed into 29 or 0 detections
without a word. So, from the model proto and before any session exists
(:func:`check_model_file`):

- the file is at most :data:`MAX_MODEL_FILE_BYTES` (protobuf's own limit;
  large weights belong in external data files);
- every initializer and ``Constant`` (subgraphs included), measured from
  its declared dims, is at most the tensor limit, and all of them together
  at most :data:`TOTAL_CONSTANT_FACTOR` times that;
- every tensor whose size ONNX shape inference can tell (with data
  propagation, so a constant target shape counts) is at most the tensor
  limit; unknown (dynamic) dims count as 1, so this is a lower bound;
- the model has one image input, float, (batch, 3, height, width) with
  height and width dynamic.

The tensor limit is :data:`MAX_TENSOR_BYTES` (1 GiB: a TCM detector's
largest weight is about 100 MB), raised with ``TCMBENCH_ONNX_MAX_TENSOR_BYTES``.

For a DB model run by the ``onnx`` plugin, :func:`check_prob_declared`
checks the probability map's declared shape, and :func:`check_prob_map`
checks each map onnxruntime returns: (batch, 1, H, W) or (batch, H, W) at
the input's height and width, finite, within [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.errors import CheckpointError, PluginError

#: Largest .onnx file read (protobuf cannot hold more).
MAX_MODEL_FILE_BYTES = 2 * 1024**3
#: Default of the largest tensor (constant, or any tensor of known size).
MAX_TENSOR_BYTES = 1024**3
#: All constants together may take this many times the tensor limit.
TOTAL_CONSTANT_FACTOR = 4
#: How far a probability may stray outside [0, 1] (float rounding).
PROB_TOLERANCE = 1e-3
#: Initializers above this size are emptied before shape inference (their
#: values never decide a shape; the copy would double the memory).
_STRIP_BYTES = 1 << 16


def max_tensor_bytes() -> int:
    """The tensor limit: ``TCMBENCH_ONNX_MAX_TENSOR_BYTES`` when set to a
    positive integer, else :data:`MAX_TENSOR_BYTES`."""
    raw = os.environ.get("TCMBENCH_ONNX_MAX_TENSOR_BYTES", "").strip()
    if not raw:
        return MAX_TENSOR_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise CheckpointError(f"TCMBENCH_ONNX_MAX_TENSOR_BYTES={raw!r} is not a positive integer")
    return int(raw)


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise PluginError(
            f"checking ONNX models needs the onnx package, which is not installed ({exc}); "
            "install the optional extra: pip install 'tcmbench[onnx]'"
        ) from None
    return onnx


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _itemsize(onnx: Any, data_type: int) -> int:
    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 1  # strings and unknown types: at least a byte per element


def _elements(dims: Sequence[int]) -> int | None:
    """The element count of ``dims``, or None when one is negative."""
    if any(d < 0 for d in dims):
        return None
    return math.prod(dims)


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph (If / Loop / Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _constants(graph: Any) -> Iterator[tuple[str, Any, list[int]]]:
    """(name, TensorProto or None, dims) of every constant of one graph:
    initializers (dense and sparse) and ``Constant`` nodes' values."""
    for t in graph.initializer:
        yield t.name, t, list(t.dims)
    for sp in graph.sparse_initializer:
        yield sp.values.name or sp.indices.name, None, list(sp.dims)
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            continue
        name = node.output[0] if node.output else node.name
        for attr in node.attribute:
            if attr.HasField("t"):
                yield name, attr.t, list(attr.t.dims)
            elif attr.HasField("sparse_tensor"):
                yield name, None, list(attr.sparse_tensor.dims)
            elif attr.floats or attr.ints or attr.strings:
                yield name, None, [len(attr.floats) + len(attr.ints) + len(attr.strings)]


def _check_constants(onnx: Any, model: Any, path: Path, limit: int) -> None:
    total = 0
    for graph in _graphs(model.graph):
        for name, tensor, dims in _constants(graph):
            count = _elements(dims)
            if count is None:
                raise CheckpointError(f"{path}: constant {name!r} has negative dims {dims}")
            nbytes = count * (_itemsize(onnx, tensor.data_type) if tensor is not None else 4)
            if nbytes > limit:
                raise CheckpointError(
                    f"{path}: constant {name!r} declares {_size(nbytes)} (dims {dims}), over the "
                    f"{_size(limit)} limit of one tensor (TCMBENCH_ONNX_MAX_TENSOR_BYTES raises "
                    "it); the model is refused before onnxruntime allocates it"
                )
            total += nbytes
            if tensor is not None and tensor.raw_data and len(tensor.raw_data) != nbytes:
                raise CheckpointError(
                    f"{path}: constant {name!r} declares dims {dims} ({_size(nbytes)}) but holds "
                    f"{_size(len(tensor.raw_data))}; the file is damaged or forged"
                )
    if total > TOTAL_CONSTANT_FACTOR * limit:
        raise CheckpointError(
            f"{path}: the model's constants declare {_size(total)} in all, over the "
            f"{_size(TOTAL_CONSTANT_FACTOR * limit)} limit"
        )


def _strip_large(model: Any) -> None:
    """Empty the data of large constants in place (shape inference needs
    their dims only; shape tensors are small and keep their values)."""
    for graph in _graphs(model.graph):
        for t in graph.initializer:
            if len(t.raw_data) > _STRIP_BYTES or len(t.float_data) > _STRIP_BYTES // 4:
                t.ClearField("raw_data")
                t.ClearField("float_data")
                t.data_location = 0
                del t.external_data[:]


def _dims(value_info: Any) -> list[int | str] | None:
    """Declared dims of a tensor value (int, or str for a dynamic one), or
    None when its type or shape is unknown."""
    tt = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


def _check_inferred(onnx: Any, model: Any, path: Path, limit: int) -> Any:
    """Shape inference with data propagation; refuse any tensor whose known
    dims already exceed the limit. Returns the inferred model."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001  (onnx raises InferenceError, ValidationError...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(
            f"{path}: ONNX shape inference fails on the model ({first})"
        ) from None
    for graph in _graphs(inferred.graph):
        for vi in [*graph.value_info, *graph.output]:
            dims = _dims(vi)
            if not dims:
                continue
            known = math.prod(d for d in dims if isinstance(d, int) and d > 0)
            nbytes = known * _itemsize(onnx, vi.type.tensor_type.elem_type)
            if nbytes > limit:
                raise CheckpointError(
                    f"{path}: tensor {vi.name!r} would take at least {_size(nbytes)} (shape "
                    f"{dims}), over the {_size(limit)} limit of one tensor "
                    "(TCMBENCH_ONNX_MAX_TENSOR_BYTES raises it); the model is refused before "
                    "onnxruntime allocates it"
                )
    return inferred


def _check_input(onnx: Any, graph: Any, path: Path, input_name: str | None) -> None:
    constants = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in constants]
    names = [vi.name for vi in inputs]
    if len(inputs) != 1:
        raise CheckpointError(
            f"{path}: the model has {len(inputs)} inputs ({', '.join(names) or 'none'}); "
            "tcmbench feeds one image batch (batch, 3, height, width)"
        )
    vi = inputs[0]
    if input_name is not None and input_name != vi.name:
        return  # OnnxDetector names the missing input
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or tt.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "not a tensor"
        raise CheckpointError(f"{path}: input {vi.name!r} is {kind}; tcmbench feeds float32 images")
    dims = _dims(vi)
    if dims is None:
        return
    if len(dims) != 4:
        raise CheckpointError(
            f"{path}: input {vi.name!r} has {len(dims)} dims {dims}; tcmbench feeds "
            "(batch, 3, height, width)"
        )
    if isinstance(dims[1], int) and dims[1] != 3:
        raise CheckpointError(
            f"{path}: input {vi.name!r} takes {dims[1]} channel(s) (shape {dims}); tcmbench feeds "
            "3 (RGB, or BGR with input.channel_order bgr)"
        )
    fixed = [d for d in dims[2:] if isinstance(d, int) and d > 0]
    if fixed:
        raise CheckpointError(
            f"{path}: input {vi.name!r} has a fixed size (shape {dims}); tcmbench feeds images "
            "of any size, so height and width must be dynamic (re-export with dynamic axes)"
        )
    if isinstance(dims[0], int) and dims[0] > 1:
        raise CheckpointError(
            f"{path}: input {vi.name!r} has a fixed batch of {dims[0]} (shape {dims}); the batch "
            "must be dynamic or 1"
        )


def check_model_file(
    path: Path, input_name: str | None = None
) -> dict[str, list[int | str] | None]:
    """Refuse a hostile or unusable ONNX model (module doc) before a
    session is created; returns the inferred dims of each graph output."""
    onnx = _require_onnx()
    limit = max_tensor_bytes()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if size > MAX_MODEL_FILE_BYTES:
        raise CheckpointError(
            f"{path} is {_size(size)}, over the {_size(MAX_MODEL_FILE_BYTES)} an ONNX file can "
            "hold (large weights belong in external data files)"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  (protobuf DecodeError, onnx errors)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path}: not an ONNX model ({first})") from None
    _check_constants(onnx, model, path, limit)
    _check_input(onnx, model.graph, path, input_name)
    _strip_large(model)
    inferred = _check_inferred(onnx, model, path, limit)
    return {vi.name: _dims(vi) for vi in inferred.graph.output}


def check_prob_declared(path: Path, name: str, dims: list[int | str] | None) -> None:
    """The probability map's declared (or inferred) shape must be
    (batch, 1, H, W) or (batch, H, W), when known."""
    if dims is None:
        return
    if len(dims) not in (3, 4):
        what = "a scalar" if not dims else f"{len(dims)}-dimensional (shape {dims})"
        raise CheckpointError(
            f"{path}: output {name!r} is {what}; a DB probability map is (batch, 1, height, "
            "width): set output.name to the map in the model's config"
        )
    if len(dims) == 4 and isinstance(dims[1], int) and dims[1] != 1:
        raise CheckpointError(
            f"{path}: output {name!r} has {dims[1]} channels (shape {dims}); a DB probability "
            "map has 1: set output.name to the map in the model's config"
        )


def check_prob_map(path: Path, name: str, value: Any, batch_shape: Sequence[int]) -> None:
    """A probability map onnxruntime returned for an input of
    ``batch_shape`` (B, 3, H, W): its shape, finiteness and range."""
    arr = np.asarray(value)
    b, _, h, w = batch_shape
    shape = tuple(arr.shape)
    ok = (arr.ndim == 4 and shape[1] == 1 and shape[2:] == (h, w)) or (
        arr.ndim == 3 and shape[1:] == (h, w)
    )
    if not ok or shape[0] != b:
        raise CheckpointError(
            f"{path}: output {name!r} has shape {shape} for an input of {tuple(batch_shape)}; a DB "
            f"probability map is ({b}, 1, {h}, {w}): set output.name to the map"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise CheckpointError(f"{path}: output {name!r} is {arr.dtype}, not a probability map")
    finite = np.isfinite(arr)
    if not finite.all():
        raise CheckpointError(
            f"{path}: output {name!r} holds {int((~finite).sum())} NaN or infinite value(s) for "
            f"an input of {tuple(batch_shape)}; the model is broken"
        )
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if lo < -PROB_TOLERANCE or hi > 1 + PROB_TOLERANCE:
        raise CheckpointError(
            f"{path}: output {name!r} holds values from {lo:.4g} to {hi:.4g}, outside [0, 1]: it is "
            "not a probability map (logits?); set output.name to the map"
        )
