"""Running a detector over samples: read, pre-process, run, post-process.

:func:`predict_samples` reads each image, turns it into the network's input
(the model's own pre-processing when it brings one, e.g. an ONNX model's
config; else :class:`tcmbench.data.transforms.InferenceTransform` at the
recipe's test scale), batches images of different sizes by zero-padding,
runs the network and its postprocessor, and returns polygons in
original-image coordinates. Under ``torchrun`` every rank takes every
``world_size``-th image and the predictions are gathered, so scoring
happens once on complete results.

The network runs in its own runtime: a torch module through
:mod:`tcmbench.inference.torch_runtime`; a model that runs on numpy
batches itself (``runs_numpy``, the onnxruntime detector of
:mod:`tcmbench.inference.onnx_runtime`) is called directly, so that path
never imports torch. The prediction cache is :mod:`tcmbench.inference.cache`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from tcmbench.data.schema import Prediction, Sample
from tcmbench.inference.world import current_world

# Heartbeats go here by default: the CLI shows this logger without -v.
progress_log = logging.getLogger("tcmbench.progress")

#: The stages :func:`predict_samples` times when asked (``timings``).
STAGES = ("read", "preprocess", "network", "postprocess")


def postprocessor_for(
    model: Any, recipe: Mapping[str, Any]
) -> Callable[..., list[list[Prediction]]]:
    """The model's postprocessor with the recipe's ``postprocess`` params
    applied (through its ``with_params`` when it has one)."""
    post = model.postprocessor
    params = dict(recipe.get("postprocess") or {})
    if params:
        if not hasattr(post, "with_params"):
            raise TypeError(
                f"postprocessor {post!r} takes no parameters but the recipe sets {sorted(params)}"
            )
        post = post.with_params(**params)
    return post


def predict_samples(
    model: Any,
    samples: Sequence[Sample],
    recipe: Mapping[str, Any],
    device: Any,
    batch_size: int = 1,
    progress: bool = True,
    amp: bool = False,
    *,
    images: Mapping[str, np.ndarray] | None = None,
    timings: MutableMapping[str, float] | None = None,
    announce: Callable[[str], Any] | None = None,
) -> dict[str, list[Prediction]]:
    """Predictions for ``samples`` keyed by sample id (all of them, on every
    rank when distributed). The model is put in eval mode for the call and
    its previous mode restored.

    ``model`` is a torch detector or anything shaped like one for inference
    (called on the padded batch it returns the maps; ``postprocessor``;
    ``eval`` / ``train``; optionally ``make_transform(recipe)`` returning
    its own ``image -> (CHW input, (sx, sy))`` pre-processing, and
    ``runs_numpy`` when it takes the numpy batch itself), such as the
    onnxruntime detector.

    ``images``: already decoded images by sample id (``predict`` reads
    them to draw on; decoding twice would cost as much as pre-processing).
    ``timings``: seconds spent per stage (:data:`STAGES`) are added to it,
    for benchmarks that report where the time goes. For a model that runs
    numpy batches itself (onnxruntime, which releases the GIL) the next
    images are read and pre-processed in a helper thread while the network
    runs, so those stages overlap it and the shares may add up to more than
    the wall time.
    ``announce``: where the heartbeat lines go when ``progress`` is off
    (:mod:`tcmbench.inference.heartbeat`; the CLI passes ``click.echo``),
    by default the ``tcmbench.progress`` log."""
    from tcmbench.data.torch_data import load_image, pad_batch
    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.inference.heartbeat import Heartbeat

    net = getattr(model, "module", model)  # unwrap DDP
    # A model may bring its own pre-processing (an ONNX detector's config:
    # PaddleOCR's resize rule, BGR input); None = the recipe's.
    make_transform = getattr(net, "make_transform", None)
    transform: Any = (make_transform(recipe) if make_transform else None) or (
        InferenceTransform.from_recipe(recipe)
    )
    # A transform that decodes itself gives the image in the model's channel
    # order (BGR for a PaddleOCR model): no conversion there and back.
    decode = getattr(transform, "decode", None)
    run = (
        _numpy_runner(net) if getattr(net, "runs_numpy", False) else _torch_runner(net, device, amp)
    )
    post = postprocessor_for(net, recipe)
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    w = current_world()
    mine = list(samples)[w.rank :: w.world_size]
    was_training = net.training
    net.eval()
    results: dict[str, list[Prediction]] = {}
    bar = progress_bar(len(mine), enabled=progress and w.is_main)
    say = announce if announce is not None else progress_log.info
    beat = Heartbeat("predict: image", len(mine), say, enabled=not progress and w.is_main)

    def prepare(chunk: Sequence[Sample]) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        inputs, metas = [], []
        for s in chunk:
            t0 = clock()
            img = images.get(s.id) if images is not None else None
            order = "rgb"
            if img is None and decode is not None:
                img, order = decode(s.image_path, s.id)
            elif img is None:
                img = load_image(s.image_path, s.id)
            t1 = clock()
            x, scale = transform(img) if order == "rgb" else transform(img, order=order)
            inputs.append(x)
            metas.append({"id": s.id, "orig_size": img.shape[:2], "scale": scale})
            spent["read"] += t1 - t0
            spent["preprocess"] += clock() - t1
        return inputs, metas

    step = max(1, batch_size)
    chunks = [mine[i : i + step] for i in range(0, len(mine), step)]
    # onnxruntime releases the GIL while it runs: the next chunk is read and
    # pre-processed meanwhile, in one helper thread, in order.
    ahead = getattr(net, "runs_numpy", False) and len(chunks) > 1
    try:
        for chunk, (inputs, metas) in zip(chunks, _prepared(chunks, prepare, ahead)):
            t0 = clock()
            batch = inputs[0][None] if len(inputs) == 1 else pad_batch(inputs)
            outputs = run(batch)
            t1 = clock()
            for s, preds in zip(chunk, post(outputs, metas)):
                results[s.id] = list(preds)
            spent["network"] += t1 - t0
            spent["postprocess"] += clock() - t1
            bar.update(len(chunk))
            beat.update(len(results))
    finally:
        bar.close()
        net.train(was_training)
    if timings is not None:
        for stage, seconds in spent.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    if w.distributed:
        from tcmbench.inference.world import all_gather_objects

        merged: dict[str, list[Prediction]] = {}
        for part in all_gather_objects(results):
            merged.update(part)
        results = merged
    return {s.id: results.get(s.id, []) for s in samples}


def _prepared(
    chunks: Sequence[Sequence[Sample]],
    prepare: Callable[[Sequence[Sample]], Any],
    ahead: bool,
) -> Iterator[Any]:
    """``prepare(chunk)`` for each chunk, in order; with ``ahead`` the next
    one is prepared in a helper thread while the caller works on this one
    (an error reading it surfaces when its turn comes, as without)."""
    if not ahead:
        for chunk in chunks:
            yield prepare(chunk)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcmbench-read") as pool:
        pending = pool.submit(prepare, chunks[0])
        for i in range(len(chunks)):
            ready = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(prepare, chunks[i + 1])
            yield ready


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, desc: str = "predict") -> Any:
    """A tqdm bar over ``total`` images, or a silent stand-in without
    importing tqdm (whose ``auto`` flavour loads asyncio: start-up time)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)


def _numpy_runner(net: Any) -> Callable[[np.ndarray], Any]:
    """A model that runs numpy batches itself (onnxruntime): no torch."""

    def run(batch: np.ndarray) -> Any:
        return net(batch)

    return run


def _torch_runner(net: Any, device: Any, amp: bool) -> Callable[[np.ndarray], Any]:
    from tcmbench.inference.torch_runtime import TorchRunner

    return TorchRunner(net, device, amp)


def dataset_protocol(cfg: Any, override: str | None) -> tuple[str, dict[str, Any]]:
    """The protocol to score a detector's output on a dataset with, and its
    parameters: the dataset's default with the YAML's ``protocol.params``,
    or ``override`` with its own defaults.

    The official scripts' file-format checks (``validate``: the RRC
    "clockwise" quads, the curved script's point orientation) judge
    *submission files*; they would reject a whole dataset whose native
    annotations run the other way round (ArT, NightTime-ArT) or a model's
    curved polygons. When tcmbench scores its own predictions against a
    loaded dataset the check is therefore off unless the YAML turns it on;
    the matching rules are unchanged. ``tcmbench score`` on files keeps it.
    """
    from tcmbench.contract.registry import get_protocol

    default = cfg.protocol or "icdar2015"
    name = override or default
    params: dict[str, Any] = {}
    if "validate" in (get_protocol(name).params or {}):
        params["validate"] = False
    if name == default:
        params.update(dict(getattr(cfg, "protocol_params", None) or {}))
    return name, params
