"""Model size and speed measurements behind ``tcmbench bench``.

Numbers a paper's efficiency table reports: parameters, GFLOPs at a
resolution, latency and throughput on the current device, and the time
spent in post-processing. FLOPs come from ``torch.utils.flop_counter``
(a multiply-add counts as 2 FLOPs); ``gmacs`` is half of that, the unit
many detection papers (DBNet, TCM Table 10) call "GFLOPs".

Latency is the median over timed runs after warm-up runs, on one fixed
batch. Comparisons (``--compare-tcm``) interleave the models run by run and
alternate their order, so a slow phase of a shared machine (other
processes, thermal throttling) hits both models alike instead of biasing
the ratio.

The input is not noise: by default it is a synthtext-mini-style image
(words on a cluttered background) resized to the resolution, so a trained
checkpoint produces realistic maps and the post-processing time means
something. With random weights the maps, and so the post-processing time,
are arbitrary (see docs/predict-bench.md).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcmbench.safety.run_limits import bound_hint, run_bound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """An input size; ``label`` is ``WIDTHxHEIGHT`` (``640x640``)."""

    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"


def parse_resolutions(text: str) -> list[Resolution]:
    """``"640,1024,1280x800"`` -> square 640, square 1024, 1280 wide x 800
    high. Raises ValueError with the offending item."""
    out: list[Resolution] = []
    for raw in str(text).split(","):
        item = raw.strip().lower()
        if not item:
            continue
        try:
            if "x" in item:
                w_text, h_text = item.split("x", 1)
                width, height = int(w_text), int(h_text)
            else:
                width = height = int(item)
        except ValueError:
            raise ValueError(
                f"bad resolution {raw.strip()!r}; expected N (square) or WIDTHxHEIGHT"
            ) from None
        if width < 32 or height < 32:
            raise ValueError(f"resolution {raw.strip()!r} is below 32 pixels")
        if width % 32 or height % 32:
            raise ValueError(
                f"resolution {raw.strip()!r}: width and height must be multiples of 32 "
                "(the detectors' output stride)"
            )
        if max(width, height) > run_bound("MAX_BENCH_SIDE"):
            side = str(max(width, height))
            side = side if len(side) <= 20 else side[:17] + "..."
            raise ValueError(
                f"resolution {raw.strip()[:40]!r}: a side of {side} is over "
                f"{bound_hint('MAX_BENCH_SIDE')}"
            )
        res = Resolution(width, height)
        if res not in out:
            out.append(res)
    if not out:
        raise ValueError("no resolution given")
    return out


def count_parameters(model: Any, *, trainable_only: bool = False) -> int:
    """Parameters of ``model`` (shared parameters counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def parameter_counts(model: Any) -> dict[str, int]:
    """``params`` (all) and, for a TCM model, ``params_without_text_encoder``
    (the paper's convention: CLIP's frozen text tower left out)."""
    from tcmbench.tcm.params import count_tcm_params

    counts = count_tcm_params(model)
    out = {"params": int(counts["params"])}
    if (
        getattr(model, "feature_transform", None) is not None
        and counts["params_without_text_encoder"] != counts["params"]
    ):
        out["params_without_text_encoder"] = int(counts["params_without_text_encoder"])
    return out


def bench_images(
    height: int, width: int, batch_size: int = 1, *, kind: str = "synthetic", seed: int = 0
) -> np.ndarray:
    """``batch_size`` uint8 RGB images (B, H, W, 3): synthtext-mini-style
    scenes resized to the resolution (``kind="synthetic"``) or uniform noise
    (``kind="noise"``). Deterministic for a seed."""
    import cv2

    if kind == "noise":
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(batch_size, height, width, 3), dtype=np.uint8)
    if kind != "synthetic":
        raise ValueError(f"unknown bench input {kind!r}; expected synthetic or noise")
    from tcmbench.data.synthetic.generate import synthesize

    images = []
    for i in range(batch_size):
        pixels = synthesize(seed, "bench", i).pixels
        images.append(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR))
    return np.stack(images)


def bench_batch(
    height: int,
    width: int,
    batch_size: int = 1,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: Any = "cpu",
    kind: str = "synthetic",
) -> tuple[Any, list[dict[str, Any]]]:
    """(normalised (B, 3, H, W) tensor on ``device``, metas for the
    postprocessor: original size = input size, scale 1)."""
    import torch

    from tcmbench.data.transforms import normalize

    images = bench_images(height, width, batch_size, kind=kind)
    x = torch.from_numpy(np.stack([normalize(im, mean, std) for im in images])).to(device)
    metas = [
        {"id": f"bench_{i}", "orig_size": (height, width), "scale": (1.0, 1.0)}
        for i in range(batch_size)
    ]
    return x, metas


def _sdpa_flops(
    query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """FLOPs of one attention call from the shapes of q, k, v (b, heads,
    tokens, dim): the two batched matmuls, as torch counts its GPU kernels."""
    from torch.utils.flop_counter import sdpa_flop_count

    return int(sdpa_flop_count(query, key, value))


def _deform_conv2d_flops(
    input: Any,
    weight: Any,
    offset: Any,
    mask: Any,
    bias: Any,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of one ``torchvision::deform_conv2d`` call from its shapes
    (the last positional argument is ``use_mask``); see
    :func:`tcmbench.models.dcn.deform_conv2d_flops`."""
    from tcmbench.models.dcn import deform_conv2d_flops

    use_mask = bool(args[-1]) if args else True
    return deform_conv2d_flops(tuple(input), tuple(weight), tuple(out_shape), use_mask)


def flop_counter() -> Any:
    """A ``FlopCounterMode`` that also counts attention on CPU and
    torchvision's deformable convolution.

    torch's table covers the flash / efficient / cuDNN attention kernels
    but not ``_scaled_dot_product_flash_attention_for_cpu``, what
    ``F.scaled_dot_product_attention`` runs on a CPU: without this entry
    the attention of TCM's attention pool, decoders and text tower would
    count as zero on a CPU machine and the same model would report
    different GFLOPs on a GPU one. Causal attention counts as full.
    ``torchvision::deform_conv2d`` (the ``-dcn`` backbones) is not in
    torch's table at all: without its entry a DCN layer would count zero.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    extra: dict[Any, Any] = {
        getattr(aten, name): _sdpa_flops
        for name in (
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_fused_attention_overrideable",
        )
        if hasattr(aten, name)
    }
    try:
        import torchvision.ops  # noqa: F401  (registers the torchvision:: operators)

        extra[torch.ops.torchvision.deform_conv2d] = _deform_conv2d_flops
    except (ImportError, AttributeError, RuntimeError):  # torchvision without its C++ ops
        log.debug("torchvision::deform_conv2d unavailable; its FLOPs are not counted")
    return FlopCounterMode(display=False, custom_mapping=extra)


def flops_by_module(
    model: Any, height: int, width: int, device: Any = "cpu", inputs: Any = None
) -> dict[str, float]:
    """Forward FLOPs of one image per submodule, keyed by qualified name
    relative to ``model`` (``"backbone.layer1"``; ``""`` = the whole
    forward), for breakdowns of where a model's FLOPs go."""
    import torch

    was_training = model.training
    model.eval()
    x = inputs[:1] if inputs is not None else torch.zeros(1, 3, height, width, device=device)
    counter = flop_counter()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    root = type(model).__name__
    out: dict[str, float] = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            out[""] = float(sum(ops.values()))
        elif name == root or name.startswith(root + "."):
            out[name[len(root) + 1 :]] = float(sum(ops.values()))
    return out


def measure_flops(
    model: Any, height: int, width: int, device: Any = "cpu", inputs: Any = None
) -> float:
    """Forward FLOPs for one image of ``height`` x ``width`` (multiply-add =
    2 FLOPs). Post-processing (OpenCV, not torch) is not counted."""
    return flops_by_module(model, height, width, device, inputs).get("", 0.0)


def _sync(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def compare_latency(
    models: Mapping[str, Any],
    batches: Mapping[str, tuple[Any, list[dict[str, Any]]]],
    *,
    device: Any = "cpu",
    warmup: int = 2,
    runs: int = 5,
    postprocessors: Mapping[str, Callable[..., Any]] | None = None,
    postprocess: bool = True,
    progress: bool = False,
    desc: str = "bench",
) -> dict[str, dict[str, Any]]:
    """Latency of each model on its batch, interleaved run by run.

    ``batches[name] = (inputs, metas)``: each model gets its own input so
    models normalising differently (CLIP vs ImageNet statistics) see the
    same picture. Per model: ``latency_ms`` (median forward time per
    batch), ``latency_ms_min``, ``images_per_s`` (batch size / median),
    ``postprocess_ms`` (median post-processing time per image),
    ``detections_per_image`` (mean over timed runs) and the raw
    ``latency_runs_ms``. Models run in A, B, B, A... order so neither
    always follows the other (cache state, turbo). ``postprocessors``
    overrides a model's own ``postprocessor`` (e.g. with recipe params).
    """
    import torch
    from tqdm.auto import tqdm

    if runs < 1:
        raise ValueError("runs must be >= 1")
    names = list(models)
    posts = {
        n: (postprocessors or {}).get(n) or getattr(models[n], "postprocessor", None) for n in names
    }
    forward_ms: dict[str, list[float]] = {n: [] for n in names}
    post_ms: dict[str, list[float]] = {n: [] for n in names}
    detections: dict[str, list[float]] = {n: [] for n in names}
    modes = {n: models[n].training for n in names}
    for m in models.values():
        m.eval()
    bar = tqdm(
        total=(warmup + runs) * len(names), desc=desc, unit="run", leave=False, disable=not progress
    )
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                for name in names if i % 2 == 0 else names[::-1]:
                    inputs, metas = batches[name]
                    batch = int(inputs.shape[0])
                    _sync(device)
                    t0 = time.perf_counter()
                    out = models[name](inputs)
                    _sync(device)
                    t1 = time.perf_counter()
                    post = posts[name] if postprocess else None
                    preds = post(out, metas) if post is not None else None
                    t2 = time.perf_counter()
                    if i >= warmup:
                        forward_ms[name].append((t1 - t0) * 1000.0)
                        if preds is not None:
                            post_ms[name].append((t2 - t1) * 1000.0 / batch)
                            detections[name].append(sum(len(p) for p in preds) / batch)
                    bar.update(1)
    finally:
        bar.close()
        for n, mode in modes.items():
            models[n].train(mode)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        batch = int(batches[name][0].shape[0])
        med = statistics.median(forward_ms[name])
        results[name] = {
            "latency_ms": med,
            "latency_ms_min": min(forward_ms[name]),
            "images_per_s": batch * 1000.0 / med if med > 0 else float("inf"),
            "postprocess_ms": statistics.median(post_ms[name]) if post_ms[name] else None,
            "detections_per_image": statistics.fmean(detections[name])
            if detections[name]
            else None,
            "latency_runs_ms": forward_ms[name],
        }
    return results


def measure_latency(
    model: Any,
    height: int,
    width: int,
    *,
    device: Any = "cpu",
    batch_size: int = 1,
    warmup: int = 2,
    runs: int = 5,
    postprocess: bool = True,
    inputs: Any = None,
    metas: list[dict[str, Any]] | None = None,
    postprocessor: Callable[..., Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Median forward latency (ms per batch), images/s and the median
    post-processing time per image (ms) of one model; see
    :func:`compare_latency`. Without ``inputs`` a synthetic text batch with
    CLIP/ImageNet-like normalisation is made."""
    if inputs is None:
        from tcmbench.data.transforms import MEAN_RGB, STD_RGB

        inputs, metas = bench_batch(
            height, width, batch_size, mean=MEAN_RGB, std=STD_RGB, device=device
        )
    if metas is None:
        h, w = int(inputs.shape[2]), int(inputs.shape[3])
        metas = [{"orig_size": (h, w), "scale": (1.0, 1.0)} for _ in range(int(inputs.shape[0]))]
    return compare_latency(
        {"model": model},
        {"model": (inputs, metas)},
        device=device,
        warmup=warmup,
        runs=runs,
        postprocessors={"model": postprocessor} if postprocessor is not None else None,
        postprocess=postprocess,
        progress=progress,
    )["model"]


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux), else the architecture."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any) -> dict[str, Any]:
    """What the figures depend on: device name, threads, library versions."""
    import platform

    import torch

    from tcmbench import __version__

    env: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "tcmbench": __version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    if str(device).startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env
