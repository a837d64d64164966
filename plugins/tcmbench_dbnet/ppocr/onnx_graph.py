"""An ONNX detector graph read as the sequence of layers it computes.

The importer (:mod:`tcmbench_dbnet.ppocr.onnx_import`) pairs the layers of
a PyTorch model with the nodes of a graph. This module does the graph's
half: it resolves every constant (initializers, ``Constant`` nodes,
``Identity`` of a constant), orders the nodes topologically (Kahn's
algorithm, ties broken by position in the file, so a graph already in
order keeps its order) and walks them, turning each node that holds
weights or computes an activation into a :class:`GraphLayer`:

- ``Conv`` / ``ConvTranspose`` (with their bias; paddle2onnx writes a
  transposed conv's bias as a following ``Add`` of a ``[1, C, 1, 1]``
  constant, which is folded back in), ``BatchNormalization``;
- PP-LCNetV3's learnable affine blocks: ``Mul`` by a one-element constant
  followed by ``Add`` of one;
- activations ``Relu``, ``HardSwish`` (also written out as ``x *
  Clip(x + 3, 0, 6) / 6``, as paddle2onnx does at opset 12),
  ``HardSigmoid`` (also written out as ``Clip(alpha * x + beta, 0, 1)``,
  as ``torch.onnx.export`` does).

Nodes that only route tensors (``Add`` / ``Mul`` of two tensors,
``Concat``, ``GlobalAveragePool``, nearest ``Resize``, ``Sigmoid``) are
checked and passed over, and so are computations on tensor shapes only
(``Shape``, ``Gather``, ``Slice``... feeding a ``Resize``'s sizes, as
``torch.onnx.export`` writes them). Any other op, or an op used in another
way, is an :class:`UnsupportedGraph` naming the node.

Only ``onnx`` (the ``onnx`` extra) and numpy are needed; no weights are
looked up by name or position.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tcmbench.errors import CheckpointError, PluginError

if TYPE_CHECKING:
    import onnx

#: Largest graph file read: PP-OCR detection graphs are 2-5 MiB.
MAX_FILE_BYTES = 256 * 2**20
#: The install hint a missing ``onnx`` package gets.
INSTALL_HINT = "pip install 'tcmbench[onnx]'"

#: Ops that route tensors and hold no weights.
ROUTING_OPS = ("Add", "Mul", "Concat", "GlobalAveragePool", "Resize", "Sigmoid", "Identity")
#: Ops that may compute a Resize's sizes from tensor shapes.
SHAPE_OPS = ("Gather", "Slice", "Unsqueeze", "Squeeze", "Cast", "Concat", "Identity")
#: Activation ops, as :attr:`GraphLayer.kind`.
ACTIVATIONS = {"Relu": "relu", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid"}


class UnsupportedGraph(CheckpointError):
    """The graph is not one the importer can rebuild; the message is one
    line naming the node and what did not match."""


def import_onnx() -> Any:
    """The ``onnx`` module, or a one-line error naming the extra."""
    try:
        import onnx
    except ImportError:
        raise PluginError(
            f"importing an ONNX model needs the onnx package: {INSTALL_HINT}"
        ) from None
    return onnx


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file; a missing, unreadable or non-ONNX file is one line."""
    onnx = import_onnx()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UnsupportedGraph(
            f"{path} is {size / 2**20:.0f} MiB; a PP-OCR detector graph is a few MiB (limit "
            f"{MAX_FILE_BYTES // 2**20} MiB)"
        )
    try:
        # External data files are never followed: a graph names them by path.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError, onnx errors)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path} is not a readable ONNX model ({first})") from None
    if not model.graph.node:
        raise UnsupportedGraph(f"{path}: the ONNX graph has no nodes")
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise UnsupportedGraph(
            f"{path}: initializer {external[0]!r} is stored in an external data file; "
            "tcmbench imports self-contained graphs only"
        )
    return model


@dataclass
class GraphLayer:
    """A layer of the graph: ``kind`` (conv, conv_transpose, batch_norm,
    affine, relu, hardswish, hardsigmoid), its weights and attributes, and
    the node it starts at (for messages)."""

    kind: str
    index: int
    op: str
    name: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    input: str = ""

    @property
    def where(self) -> str:
        return f"node {self.index} ({self.op} {self.name!r})"

    def describe(self) -> str:
        """What this layer is, in the words the importer's messages use."""
        if self.kind in ("conv", "conv_transpose"):
            w = self.tensors["weight"]
            if self.kind == "conv":
                out_c, in_c = w.shape[0], w.shape[1] * int(self.attrs.get("group", 1))
            else:
                out_c, in_c = w.shape[1] * int(self.attrs.get("group", 1)), w.shape[0]
            k = "x".join(str(s) for s in w.shape[2:])
            kind = "conv" if self.kind == "conv" else "transposed conv"
            return (
                f"{k} {kind} {in_c}->{out_c} channels, stride "
                f"{_pair_text(self.attrs.get('strides', [1, 1]))}, groups "
                f"{self.attrs.get('group', 1)}, {'with' if 'bias' in self.tensors else 'no'} bias"
            )
        if self.kind == "batch_norm":
            return f"BatchNorm over {self.tensors['weight'].size} channels"
        if self.kind == "affine":
            return "learnable affine (scalar scale and bias)"
        if self.kind == "hardsigmoid":
            return f"HardSigmoid alpha {self.attrs['alpha']:.6g} beta {self.attrs['beta']:.6g}"
        return self.kind


def _pair_text(values: Any) -> str:
    values = list(values)
    return str(values[0]) if len(set(values)) == 1 else "x".join(str(v) for v in values)


class Graph:
    """Constants, producers and consumers of an ONNX graph, in topological order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        onnx = import_onnx()
        self._onnx = onnx
        from onnx import numpy_helper

        self._helper = onnx.helper
        graph = model.graph
        self.nodes = list(graph.node)
        self.consts: dict[str, np.ndarray] = {}
        for init in graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        self.inputs = [i.name for i in graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in graph.output]
        self.order = self._topological_order()
        self.consumers: dict[str, list[int]] = {}
        for i in self.order:
            for name in self.nodes[i].input:
                if name:
                    self.consumers.setdefault(name, []).append(i)
        for i in self.order:
            node = self.nodes[i]
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant_value(i)
            elif node.op_type == "Identity" and node.input[0] in self.consts:
                self.consts[node.output[0]] = self.consts[node.input[0]]
            elif node.op_type == "Cast" and node.input[0] in self.consts:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(int(self.attrs(i)["to"]))
                self.consts[node.output[0]] = self.consts[node.input[0]].astype(dtype)

    def where(self, i: int) -> str:
        node = self.nodes[i]
        return f"node {i} ({node.op_type} {node.name!r})"

    def attrs(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in self.nodes[i].attribute:
            value = self._helper.get_attribute_value(a)
            out[a.name] = value.decode() if isinstance(value, bytes) else value
        return out

    def _constant_value(self, i: int) -> np.ndarray:
        from onnx import numpy_helper

        attrs = {a.name: a for a in self.nodes[i].attribute}
        if "value" in attrs:
            return numpy_helper.to_array(attrs["value"].t)
        for key, dtype in (
            ("value_float", np.float32),
            ("value_floats", np.float32),
            ("value_int", np.int64),
            ("value_ints", np.int64),
        ):
            if key in attrs:
                return np.asarray(self._helper.get_attribute_value(attrs[key]), dtype=dtype)
        raise UnsupportedGraph(f"{self.where(i)}: a Constant without a numeric value")

    def _topological_order(self) -> list[int]:
        produced: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            for name in node.output:
                if name in produced:
                    raise UnsupportedGraph(
                        f"{self.where(i)}: tensor {name!r} is also written by node {produced[name]}"
                    )
                produced[name] = i
        available = set(self.consts) | set(self.inputs)
        waiting: list[set[str]] = []
        users: dict[str, list[int]] = {}
        ready: list[int] = []
        for i, node in enumerate(self.nodes):
            needs = {n for n in node.input if n and n not in available}
            for n in needs:
                if n not in produced:
                    raise UnsupportedGraph(
                        f"{self.where(i)}: input {n!r} is neither a graph input, a constant "
                        "nor any node's output"
                    )
                users.setdefault(n, []).append(i)
            waiting.append(needs)
            if not needs:
                heapq.heappush(ready, i)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for name in self.nodes[i].output:
                for j in users.get(name, []):
                    waiting[j].discard(name)
                    if not waiting[j]:
                        heapq.heappush(ready, j)
        if len(order) != len(self.nodes):
            stuck = min(set(range(len(self.nodes))) - set(order))
            raise UnsupportedGraph(f"{self.where(stuck)}: the graph has a cycle")
        return order

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def single_consumer(self, name: str) -> int | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def split_const(self, i: int) -> tuple[str, np.ndarray] | None:
        """(tensor input, constant) of a two-input node with exactly one
        constant input, else None."""
        a, b = self.nodes[i].input[:2]
        ca, cb = self.const(a), self.const(b)
        if (ca is None) == (cb is None):
            return None
        return (b, ca) if ca is not None else (a, cb)  # type: ignore[return-value]

    def layers(self) -> Iterator[GraphLayer]:
        """The graph's layers in topological order (module doc)."""
        done: set[int] = set()
        shapes: set[str] = set()  # tensors computed from tensor shapes only
        for i in self.order:
            if i in done:
                continue
            node = self.nodes[i]
            op = node.op_type
            if op in ("Constant", "Identity", "Cast") and node.output[0] in self.consts:
                continue
            inputs = [n for n in node.input if n]
            if op == "Shape" or (
                op in SHAPE_OPS and all(n in shapes or n in self.consts for n in inputs)
            ):
                # Sizes for a Resize, as torch.onnx.export writes them.
                shapes.update(node.output)
                continue
            if op in ("Conv", "ConvTranspose"):
                yield self._conv(i, done)
            elif op == "BatchNormalization":
                yield self._batch_norm(i)
            elif op in ACTIVATIONS:
                layer = GraphLayer(ACTIVATIONS[op], i, op, node.name, input=node.input[0])
                if op == "HardSigmoid":
                    attrs = self.attrs(i)
                    layer.attrs = {
                        "alpha": float(attrs.get("alpha", 0.2)),
                        "beta": float(attrs.get("beta", 0.5)),
                    }
                yield layer
            elif op in ("Add", "Mul") and self.split_const(i) is not None:
                yield self._constant_arithmetic(i, done)
            elif op == "Resize":
                self._check_resize(i, shapes)
            elif op in ROUTING_OPS:
                continue
            else:
                raise UnsupportedGraph(
                    f"{self.where(i)}: op {op} is not part of a PP-OCR DB detector (supported: "
                    "Conv, ConvTranspose, BatchNormalization, Relu, HardSwish, HardSigmoid, "
                    "Sigmoid, Add, Mul, Concat, GlobalAveragePool, nearest Resize; Clip and Div in a "
                    "written-out hard swish)"
                )

    def _conv(self, i: int, done: set[int]) -> GraphLayer:
        node = self.nodes[i]
        attrs = self.attrs(i)
        kind = "conv" if node.op_type == "Conv" else "conv_transpose"
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise UnsupportedGraph(
                f"{self.where(i)}: auto_pad {attrs['auto_pad']} is not supported"
            )
        if any(attrs.get(k) for k in ("output_padding", "output_shape")):
            raise UnsupportedGraph(
                f"{self.where(i)}: output_padding / output_shape are not supported"
            )
        weight = self.const(node.input[1]) if len(node.input) > 1 else None
        if weight is None or weight.ndim != 4:
            raise UnsupportedGraph(f"{self.where(i)}: the weight is not a constant 4-d tensor")
        tensors = {"weight": weight}
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node.input[2])
            if bias is None:
                raise UnsupportedGraph(f"{self.where(i)}: the bias is not a constant")
            tensors["bias"] = bias
        elif kind == "conv_transpose":
            # paddle2onnx: ConvTranspose, then Add of a [1, C, 1, 1] bias.
            j = self.single_consumer(node.output[0])
            group = int(attrs.get("group", 1))
            out_c = weight.shape[1] * group
            if j is not None and self.nodes[j].op_type == "Add":
                split = self.split_const(j)
                if split is not None and split[0] == node.output[0] and split[1].size == out_c:
                    tensors["bias"] = split[1].reshape(out_c)
                    done.add(j)
        return GraphLayer(kind, i, node.op_type, node.name, tensors, attrs, input=node.input[0])

    def _batch_norm(self, i: int) -> GraphLayer:
        node = self.nodes[i]
        attrs = self.attrs(i)
        if attrs.get("training_mode", 0):
            raise UnsupportedGraph(f"{self.where(i)}: a BatchNormalization in training mode")
        values = [self.const(n) for n in node.input[1:5]]
        if len(values) != 4 or any(v is None for v in values):
            raise UnsupportedGraph(
                f"{self.where(i)}: scale, bias, mean and variance must be constants"
            )
        names = ("weight", "bias", "running_mean", "running_var")
        tensors = {k: v for k, v in zip(names, values) if v is not None}
        return GraphLayer(
            "batch_norm",
            i,
            node.op_type,
            node.name,
            tensors,
            {"epsilon": float(attrs.get("epsilon", 1e-5))},
            input=node.input[0],
        )

    def _constant_arithmetic(self, i: int, done: set[int]) -> GraphLayer:
        """``Mul`` / ``Add`` with one constant: a learnable affine block
        (``Mul`` by a scalar, then ``Add`` of a scalar) or a hard swish
        written out (``Add 3, Clip 0..6, Mul x, Div 6``)."""
        node = self.nodes[i]
        x, c = self.split_const(i) or ("", np.zeros(0))
        if node.op_type == "Add" and c.size == 1 and math.isclose(float(c.item()), 3.0):
            chain = self._hardswish_chain(i, x)
            if chain is not None:
                done.update(chain)
                return GraphLayer("hardswish", i, node.op_type, node.name, input=x)
        if node.op_type == "Mul" and c.size == 1:
            j = self.single_consumer(node.output[0])
            if j is not None and self.nodes[j].op_type == "Add":
                split = self.split_const(j)
                if split is not None and split[0] == node.output[0] and split[1].size == 1:
                    done.add(j)
                    clip = self.single_consumer(self.nodes[j].output[0])
                    if (
                        clip is not None
                        and self.nodes[clip].op_type == "Clip"
                        and self._clip_bounds(clip) == (0.0, 1.0)
                    ):
                        # clamp(alpha * x + beta, 0, 1), a hard sigmoid
                        # written out (torch.onnx.export of HardSigmoid).
                        done.add(clip)
                        return GraphLayer(
                            "hardsigmoid",
                            i,
                            node.op_type,
                            node.name,
                            attrs={"alpha": float(c.item()), "beta": float(split[1].item())},
                            input=x,
                        )
                    return GraphLayer(
                        "affine",
                        i,
                        node.op_type,
                        node.name,
                        {"scale": c.reshape(1), "bias": split[1].reshape(1)},
                        input=x,
                    )
        raise UnsupportedGraph(
            f"{self.where(i)}: {node.op_type} with a constant of shape {list(c.shape)} is neither "
            "a learnable affine block (Mul by a scalar, then Add of a scalar), a transposed "
            "conv's bias nor a written-out hard swish"
        )

    def _hardswish_chain(self, i: int, x: str) -> list[int] | None:
        """Nodes of ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` starting at
        the ``Add`` ``i``, or None when the pattern does not hold."""
        clip = self.single_consumer(self.nodes[i].output[0])
        if clip is None or self.nodes[clip].op_type != "Clip":
            return None
        lo, hi = self._clip_bounds(clip)
        if lo != 0.0 or hi != 6.0:
            return None
        mul = self.single_consumer(self.nodes[clip].output[0])
        if mul is None or self.nodes[mul].op_type != "Mul":
            return None
        if sorted(self.nodes[mul].input) != sorted([x, self.nodes[clip].output[0]]):
            return None
        div = self.single_consumer(self.nodes[mul].output[0])
        if div is None or self.nodes[div].op_type != "Div":
            return None
        split = self.split_const(div)
        if (
            split is None
            or split[0] != self.nodes[mul].output[0]
            or split[1].size != 1
            or not math.isclose(float(split[1].item()), 6.0)
        ):
            return None
        return [clip, mul, div]

    def _clip_bounds(self, i: int) -> tuple[float | None, float | None]:
        node, attrs = self.nodes[i], self.attrs(i)
        if "min" in attrs or "max" in attrs:  # opset < 11
            return float(attrs.get("min", -np.inf)), float(attrs.get("max", np.inf))
        bounds: list[float | None] = []
        for k in (1, 2):
            value = self.const(node.input[k]) if len(node.input) > k and node.input[k] else None
            bounds.append(float(value.item()) if value is not None and value.size == 1 else None)
        return bounds[0], bounds[1]

    def _check_resize(self, i: int, shapes: set[str]) -> None:
        attrs = self.attrs(i)
        mode = attrs.get("mode", "nearest")
        if mode != "nearest":
            raise UnsupportedGraph(
                f"{self.where(i)}: expected nearest upsampling, found Resize mode {mode!r}"
            )
        sizes = [n for n in self.nodes[i].input[1:] if n]
        if any(n not in self.consts and n not in shapes for n in sizes):
            raise UnsupportedGraph(
                f"{self.where(i)}: the Resize's scales / sizes must be constants or computed "
                "from tensor shapes"
            )
