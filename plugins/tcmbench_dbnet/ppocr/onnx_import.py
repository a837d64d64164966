"""``tcmbench import ppocr``: a PaddleOCR PP-OCR detector (ONNX) as a
trainable DBNet checkpoint.

How the weights are found: the graph is read as the sequence of its layers
in topological order (:class:`~tcmbench_dbnet.ppocr.onnx_graph.Graph`),
the PyTorch model as the sequence of its layers in the order a forward pass
runs them (forward pre-hooks on a dummy input); the two are walked in step
and each pair is checked -- kind, kernel, channels, stride, padding,
groups, bias, BatchNorm epsilon, activation and hard-sigmoid slope -- before
the node's constants are copied into the module. No initializer name or
position is assumed. The first pair that does not fit stops the import
with one line naming the node and what was expected there.

Which model: each known architecture (:data:`ARCHITECTURES`) is tried; the
one whose layers all fit is taken, otherwise the error of the one that
fitted longest is reported. Then, when onnxruntime is installed, the graph
and the PyTorch model run on the same random input and their probability
maps must agree within :data:`VERIFY_TOLERANCE`: a graph that differs in
what the walk does not see (an ``Add`` wired elsewhere) is caught there.

What is not in the graph: the DB head's threshold branch (an inference
graph only computes the probability map). It is initialised freshly, from
a fixed seed so that an import is reproducible; it only matters for
fine-tuning, whose loss trains it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import CheckpointError
from tcmbench_dbnet.ppocr.layers import HardSigmoid, LearnableAffine
from tcmbench_dbnet.ppocr.onnx_graph import Graph, GraphLayer, UnsupportedGraph, load_model
from tcmbench_dbnet.ppocr.recipe import ppocr_recipe

log = logging.getLogger(__name__)

#: Largest difference of probability maps (graph vs PyTorch, random input)
#: an import accepts.
VERIFY_TOLERANCE = 1e-4
#: Seed of the threshold branch's fresh weights.
SEED = 0
LICENSE = "apache-2.0"


@dataclass(frozen=True)
class Architecture:
    """A PP-OCR detector the importer can rebuild."""

    title: str
    backbone: str
    neck_channels: int = 96

    def config(self) -> DetectorConfig:
        return DetectorConfig(
            backbone=self.backbone,
            pretrained_backbone=False,
            options={"neck": "rse_fpn", "lateral_channels": self.neck_channels},
        )


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("PP-OCRv3 mobile text detector (ch_PP-OCRv3_det)", "ppocrv3_mobilenetv3"),
    Architecture("PP-OCRv4 mobile text detector (ch_PP-OCRv4_det)", "ppocrv4_lcnetv3"),
)


def module_kind(module: nn.Module) -> str | None:
    """The :class:`GraphLayer` kind a module reproduces, or None."""
    if isinstance(module, nn.ConvTranspose2d):
        return "conv_transpose"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.BatchNorm2d):
        return "batch_norm"
    if isinstance(module, LearnableAffine):
        return "affine"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Hardswish):
        return "hardswish"
    if isinstance(module, HardSigmoid):
        return "hardsigmoid"
    return None


def describe_module(name: str, module: nn.Module) -> str:
    """A module in the words of :meth:`GraphLayer.describe`, with its name."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        kind = "conv" if isinstance(module, nn.Conv2d) else "transposed conv"
        k = "x".join(str(s) for s in module.kernel_size)
        stride = module.stride
        text = (
            f"{k} {kind} {module.in_channels}->{module.out_channels} channels, stride "
            f"{stride[0] if stride[0] == stride[1] else 'x'.join(map(str, stride))}, groups "
            f"{module.groups}, {'with' if module.bias is not None else 'no'} bias"
        )
    elif isinstance(module, nn.BatchNorm2d):
        text = f"BatchNorm over {module.num_features} channels"
    elif isinstance(module, LearnableAffine):
        text = "learnable affine (scalar scale and bias)"
    elif isinstance(module, HardSigmoid):
        text = f"HardSigmoid alpha {module.slope:.6g} beta {module.offset:.6g}"
    else:
        text = module_kind(module) or type(module).__name__
    return f"{text} ({name})"


def layer_sequence(model: nn.Module, size: int = 64) -> list[tuple[str, nn.Module]]:
    """The model's weight and activation layers in the order an inference
    forward pass runs them."""
    seen: list[tuple[str, nn.Module]] = []
    handles = []
    for name, module in model.named_modules():
        if module_kind(module) is not None:

            def hook(mod: nn.Module, args: Any, name: str = name) -> None:
                seen.append((name, mod))

            handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


class Mismatch(UnsupportedGraph):
    """A pair that does not fit; ``matched`` layers fitted before it."""

    def __init__(self, message: str, matched: int) -> None:
        super().__init__(message)
        self.matched = matched


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _conv_problem(layer: GraphLayer, module: nn.Conv2d | nn.ConvTranspose2d) -> str | None:
    """What differs between a conv node and a conv module (None: they fit)."""
    a = layer.attrs
    weight = layer.tensors["weight"]
    if tuple(weight.shape) != tuple(module.weight.shape):
        return f"weight {list(weight.shape)} vs {list(module.weight.shape)}"
    if tuple(a.get("strides", [1, 1])) != tuple(module.stride):
        return "stride"
    if int(a.get("group", 1)) != module.groups:
        return "groups"
    if tuple(a.get("dilations", [1, 1])) != tuple(module.dilation):
        return "dilation"
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:] or tuple(pads[:2]) != tuple(module.padding):
        return f"padding {pads} vs {list(module.padding)}"
    if ("bias" in layer.tensors) != (module.bias is not None):
        return "bias"
    return None


def match_layers(
    layers: list[GraphLayer], modules: list[tuple[str, nn.Module]], title: str
) -> dict[str, torch.Tensor]:
    """Walk graph layers and model layers in step; the state-dict entries
    the graph's constants give (module doc). :class:`Mismatch` on the first
    pair that does not fit."""
    state: dict[str, torch.Tensor] = {}
    for n, layer in enumerate(layers):
        if n >= len(modules):
            raise Mismatch(
                f"{layer.where}: the {title} has no layer left, found {layer.describe()}", n
            )
        name, module = modules[n]
        kind = module_kind(module)
        problem = None
        if kind != layer.kind:
            problem = "kind"
        elif isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            problem = _conv_problem(layer, module)
        elif isinstance(module, nn.BatchNorm2d):
            if layer.tensors["weight"].size != module.num_features or any(
                v.size != module.num_features for v in layer.tensors.values()
            ):
                problem = "channels"
            elif not _close(layer.attrs["epsilon"], module.eps):
                problem = f"epsilon {layer.attrs['epsilon']:.3g} vs {module.eps:.3g}"
        elif isinstance(module, HardSigmoid) and not (
            _close(layer.attrs["alpha"], module.slope)
            and _close(layer.attrs["beta"], module.offset)
        ):
            problem = "slope"
        if problem is not None:
            raise Mismatch(
                f"{layer.where}: expected {describe_module(name, module)}, found "
                f"{layer.describe()}",
                n,
            )
        prefix = f"{name}." if name else ""
        for key, value in layer.tensors.items():
            state[prefix + key] = torch.from_numpy(np.array(value, dtype=np.float32, copy=True))
    if len(modules) > len(layers):
        name, module = modules[len(layers)]
        after = f" (after {layers[-1].where})" if layers else ""
        raise Mismatch(
            f"the graph ends{after} where the {title} expects {describe_module(name, module)}",
            len(layers),
        )
    return state


def build_model(arch: Architecture) -> Any:
    """The DBNet detector of ``arch``, its fresh weights from :data:`SEED`."""
    from tcmbench.contract.registry import get_detector, get_plugin_manager

    spec = get_detector("dbnet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return spec, get_plugin_manager().hook.build_detector(spec=spec, config=arch.config())


def fit_graph(graph: Graph, path: Path) -> tuple[Architecture, Any, Any, dict[str, torch.Tensor]]:
    """(architecture, spec, model, state) for the first architecture whose
    layers the graph's fit; else the closest one's mismatch, one line."""
    layers = list(graph.layers())
    if not layers:
        raise UnsupportedGraph(f"{path}: unsupported graph: it has no conv layers")
    if layers[0].kind != "conv" or layers[0].input not in graph.inputs:
        raise UnsupportedGraph(
            f"{path}: unsupported graph: {layers[0].where} should be a conv reading the image"
        )
    best: tuple[int, Architecture, Mismatch] | None = None
    for arch in ARCHITECTURES:
        spec, model = build_model(arch)
        try:
            state = match_layers(layers, layer_sequence(model), arch.title)
        except Mismatch as exc:
            if best is None or exc.matched > best[0]:
                best = (exc.matched, arch, exc)
            continue
        return arch, spec, model, state
    assert best is not None
    raise UnsupportedGraph(
        f"{path}: unsupported graph: {best[2]} (closest: {best[1].title}, {best[0]} of its "
        f"layers fitted; tcmbench imports {' and '.join(a.title for a in ARCHITECTURES)})"
    )


def load_state(model: Any, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy the graph's tensors in; every parameter and buffer outside the
    threshold branch (and BatchNorm's step counters) must have one."""
    own = model.state_dict()
    unfilled = [
        k
        for k in own
        if k not in state
        and not k.startswith("head.thr_branch.")
        and not k.endswith("num_batches_tracked")
    ]
    if unfilled:
        raise UnsupportedGraph(
            f"{path}: the graph gives no value for {len(unfilled)} model tensor(s): "
            + ", ".join(unfilled[:5])
        )
    model.load_state_dict(state, strict=False)


def reverse_input_channels(model: Any) -> None:
    """BGR -> RGB: reverse the input channels of the first conv (the one
    reading the image), so that the network computes on an RGB image
    exactly what it computed on the BGR one."""
    first = next(m for _, m in layer_sequence(model) if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first.weight.copy_(first.weight.flip(1))


def probe_image() -> np.ndarray:
    """A small picture of printed text, (1, 3, 96, 256) float32, normalised
    as PaddleOCR does, channels B, G, R. Random noise is no test: the
    detectors answer 0.0 everywhere, so any network would pass."""
    import cv2

    from tcmbench_dbnet.ppocr.recipe import PADDLE_MEAN_BGR, PADDLE_STD_BGR

    img = np.full((96, 256, 3), 255, np.uint8)
    cv2.putText(img, "Text 2024", (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
    cv2.putText(img, "tcmbench", (150, 88), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 90, 200), 1)
    x = (img.astype(np.float32) / 255.0 - np.asarray(PADDLE_MEAN_BGR, np.float32)) / np.asarray(
        PADDLE_STD_BGR, np.float32
    )
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _with_logits_output(onnx_model: Any, graph: Graph) -> tuple[Any, bool]:
    """A copy of the graph that also outputs the input of its final
    ``Sigmoid`` (the logits), and whether it could."""
    import onnx

    producer = next(
        (n for n in onnx_model.graph.node if graph.outputs and graph.outputs[0] in n.output), None
    )
    if producer is None or producer.op_type != "Sigmoid":
        return onnx_model, False
    copy = onnx.ModelProto()
    copy.CopyFrom(onnx_model)
    copy.graph.output.append(
        onnx.helper.make_tensor_value_info(producer.input[0], onnx.TensorProto.FLOAT, None)
    )
    return copy, True


def verify(model: Any, onnx_model: Any, graph: Graph, path: Path, bgr_input: bool) -> float | None:
    """Run the graph (onnxruntime) and the model on :func:`probe_image`:
    their probability maps must agree within :data:`VERIFY_TOLERANCE`, and
    so must their logits, relative to the largest (they are not saturated
    where the maps are). Returns the largest probability difference, or
    None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        log.warning("onnxruntime is not installed: the import is not checked against the graph")
        return None
    x = probe_image()
    if not bgr_input:
        x = np.ascontiguousarray(x[:, ::-1])
    probe, has_logits = _with_logits_output(onnx_model, graph)
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        results = session.run(None, {graph.inputs[0]: x})
    except Exception as exc:  # noqa: BLE001  (onnxruntime's Fail, InvalidGraph...)
        raise UnsupportedGraph(f"{path}: onnxruntime cannot run the graph ({exc})") from None
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x[:, ::-1]) if bgr_input else x))
    ours = out["prob"].numpy()
    theirs = results[0]
    if theirs.shape != ours.shape:
        raise UnsupportedGraph(
            f"{path}: unsupported graph: its output has shape {list(theirs.shape)}, the rebuilt "
            f"model's probability map {list(ours.shape)}"
        )
    diff = float(np.abs(theirs - ours).max())
    logit_diff = 0.0
    if has_logits:
        their_logits, our_logits = results[-1], out["prob_logits"].numpy()
        scale = max(1.0, float(np.abs(their_logits).max()))
        logit_diff = float(np.abs(their_logits - our_logits).max()) / scale
    if not (diff <= VERIFY_TOLERANCE and logit_diff <= VERIFY_TOLERANCE):
        raise UnsupportedGraph(
            f"{path}: unsupported graph: its layers fit, but its output differs from the rebuilt "
            f"model's (probability up to {diff:.3g}, logits up to {logit_diff:.3g} of their "
            f"range; limit {VERIFY_TOLERANCE:g}) on a test picture: the graph is wired differently"
        )
    return diff


def model_card_notes(arch: Architecture, path: Path, sha256: str) -> list[list[str]]:
    """The model card's Source and License sections."""
    source = (
        f"Converted by `tcmbench import ppocr` from `{path.name}` (sha256 `{sha256}`): "
        f"PaddleOCR's {arch.title}, https://github.com/PaddlePaddle/PaddleOCR, as an ONNX "
        "inference graph. Every weight of the backbone, the RSE-FPN neck and the DB head's "
        "probability branch is the graph's; the head's threshold branch is not in an "
        "inference graph and starts from fresh weights (it only matters for fine-tuning). "
        "PaddleOCR reads BGR images, tcmbench RGB: the first convolution's input channels are "
        "reversed. The recipe in config.json holds PaddleOCR's own test settings (longer side "
        "limited to 960, ImageNet normalisation, DB threshold 0.3, box threshold 0.6, unclip "
        "ratio 1.5)."
    )
    licence = (
        "The weights are PaddleOCR's, released under the Apache License 2.0 "
        "(https://www.apache.org/licenses/LICENSE-2.0); the converted checkpoint is under the "
        "same licence. Keep this notice when you redistribute it or a model fine-tuned from it."
    )
    return [["Source", source], ["License", licence]]


def import_ppocr(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    bgr_input: bool = True,
    check: bool = True,
) -> Path:
    """Convert a PP-OCR detection graph into a tcmbench checkpoint folder.

    ``bgr_input``: the graph reads BGR images (PaddleOCR's do); the first
    conv is reversed to RGB. ``check``: compare with onnxruntime (when
    installed) before writing anything."""
    from tcmbench.data.archives import sha256_file
    from tcmbench.hub.checkpoints import save_checkpoint

    path = Path(onnx_path)
    onnx_model = load_model(path)
    graph = Graph(onnx_model)
    arch, spec, model, state = fit_graph(graph, path)
    load_state(model, state, path)
    if bgr_input:
        reverse_input_channels(model)
    diff = verify(model, onnx_model, graph, path, bgr_input) if check else None
    if diff is not None:
        log.info("probability maps agree with onnxruntime within %.2g", diff)
    config = arch.config()
    sha = sha256_file(path)
    recipe = ppocr_recipe(
        {
            "backbone": config.backbone,
            "pretrained_backbone": False,
            "options": dict(config.options),
        },
        bgr_input=bgr_input,
    )
    source = {
        "ppocr_onnx": {
            "file": path.name,
            "sha256": sha,
            "architecture": arch.title,
            "input_order": "bgr" if bgr_input else "rgb",
            "max_abs_diff_vs_onnxruntime": diff,
        }
    }
    try:
        return save_checkpoint(
            out_dir,
            model,
            spec,
            config,
            recipe=recipe,
            extra={
                "source": source,
                "license": LICENSE,
                "model_card": model_card_notes(arch, path, sha),
            },
        )
    except OSError as exc:
        raise CheckpointError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
