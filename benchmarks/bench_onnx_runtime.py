"""Images per second of ``evaluate`` on MSRA-TD500: PyTorch eager vs
onnxruntime, the same checkpoint, side by side in one run.

    python benchmarks/bench_onnx_runtime.py --data-root ../shared/data/msra-td500 \
        --threads 2 --json td500_runtime.json

Both runtimes go through ``tcmbench.inference.predict_samples`` (what
``tcmbench evaluate`` runs) with the DBNet plugin's ``msra-td500`` test
settings; the onnxruntime model is the checkpoint exported by
``--runtime onnxruntime`` (``tcmbench export onnx``), so the network is the
only thing that changes. Default weights: the DBNet-MobileNetV3-small
shipped in the plugin (trained on synthetic images: its hmean on TD500 is
low, which does not matter for speed; the two runtimes' figures must be
equal, and the script checks it).

The time of each stage is measured inside that pipeline by wrapping its
parts: reading (``load_image``: file read + JPEG decode), pre-processing
(resize, normalise, pad), the model (forward of the padded batch),
post-processing (maps -> polygons) and scoring (the protocol, once per
runtime). The runtimes alternate chunk by chunk (A B, B A, ...) so that a
busy phase of a shared machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

STAGES = ("read", "preprocess", "model", "postprocess", "score")


class Clock:
    """Seconds per stage, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t0

        return timed


class TimedPost:
    """A postprocessor whose calls are timed (``with_params`` keeps timing)."""

    def __init__(self, post: Any, clock: Clock) -> None:
        self.post, self.clock = post, clock

    def with_params(self, **params: Any) -> TimedPost:
        return TimedPost(self.post.with_params(**params), self.clock)

    def __call__(self, outputs: Any, metas: Any) -> Any:
        return self.clock.wrap("postprocess", self.post)(outputs, metas)


class TimedModel:
    """The inference interface of a detector (torch or onnxruntime), every
    stage timed into ``clock``."""

    training = False

    def __init__(self, model: Any, clock: Clock) -> None:
        self.model, self.clock = model, clock
        self.postprocessor = TimedPost(model.postprocessor, clock)

    def eval(self) -> TimedModel:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> TimedModel:
        self.model.train(mode)
        return self

    def make_transform(self, recipe: Mapping[str, Any]) -> Any:
        from tcmbench.data.transforms import InferenceTransform

        own = getattr(self.model, "make_transform", None)
        transform = (own(recipe) if own else None) or InferenceTransform.from_recipe(recipe)
        return self.clock.wrap("preprocess", transform)

    def __call__(self, batch: Any) -> Any:
        return self.clock.wrap("model", self.model)(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data/msra-td500")
    ap.add_argument("--weights", default=None, help="checkpoint (default: DBNet's shipped one)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    ap.add_argument("--chunk", type=int, default=10, help="images per alternation")
    ap.add_argument("--json", default=None, help="write the figures here")
    opts = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(opts.threads)  # onnxruntime's session reads it
    import torch

    torch.set_num_threads(opts.threads)
    from tcmbench import profiling
    from tcmbench.commands.evaluate import eval_recipe
    from tcmbench.data import torch_data
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.eval import evaluate as score
    from tcmbench.hub import embedded_weights
    from tcmbench.inference import dataset_protocol, predict_samples
    from tcmbench.loading import load_for_inference
    from tcmbench.plugins import get_detector

    spec = get_detector("dbnet")
    weights = opts.weights or str(embedded_weights(spec))
    samples, _ = load_split("msra-td500", "test", data_root=opts.data_root, need_images=True)
    samples = samples[: opts.limit] if opts.limit else samples
    protocol, params = dataset_protocol(get_dataset_config("msra-td500"), None)
    t0 = time.perf_counter()
    loaded = {
        "torch": load_for_inference(weights, spec=spec, runtime="torch"),
        "onnxruntime": load_for_inference(weights, spec=spec, runtime="onnxruntime"),
    }
    load_s = time.perf_counter() - t0
    recipe = eval_recipe(spec, None, "msra-td500", loaded["torch"].meta.get("recipe"))
    clocks = {name: Clock() for name in loaded}
    models = {name: TimedModel(ck.model, clocks[name]) for name, ck in loaded.items()}
    real_load = torch_data.load_image
    preds: dict[str, dict[str, Any]] = {name: {} for name in loaded}
    # warm-up (not timed): first calls allocate, build kernels, fill caches
    for ck in loaded.values():
        predict_samples(ck.model, samples[:1], recipe, "cpu", progress=False)
    order = list(loaded)
    for i, start in enumerate(range(0, len(samples), opts.chunk)):
        chunk = samples[start : start + opts.chunk]
        for name in order if i % 2 == 0 else order[::-1]:
            torch_data.load_image = clocks[name].wrap("read", real_load)
            try:
                preds[name].update(
                    predict_samples(models[name], chunk, recipe, "cpu", progress=False)
                )
            finally:
                torch_data.load_image = real_load
        print(f"{min(start + opts.chunk, len(samples))}/{len(samples)} images", flush=True)
    results = {}
    for name in loaded:
        result = clocks[name].wrap("score", score)(samples, preds[name], protocol, **params)
        results[name] = result
    rows = []
    for name in loaded:
        sec = clocks[name].seconds
        total = sum(sec[s] for s in STAGES)
        rows.append(
            {
                "runtime": name,
                "images": len(samples),
                "seconds": round(total, 2),
                "images_per_s": round(len(samples) / total, 3),
                **{f"{s}_s": round(sec[s], 2) for s in STAGES},
                **{f"{s}_share": round(sec[s] / total, 3) for s in STAGES},
                "hmean": results[name].hmean,
                "precision": results[name].precision,
                "recall": results[name].recall,
            }
        )
    print(
        "| runtime | images/s | total s | "
        + " | ".join(f"{s} s (share)" for s in STAGES)
        + " | hmean |"
    )
    print("|---" * (4 + len(STAGES)) + "|")
    for r in rows:
        cells = " | ".join(f"{r[s + '_s']:.2f} ({100 * r[s + '_share']:.0f}%)" for s in STAGES)
        print(
            f"| {r['runtime']} | {r['images_per_s']:.2f} | {r['seconds']:.1f} | {cells} | "
            f"{r['hmean']:.4f} |"
        )
    same = rows[0]["hmean"] == rows[1]["hmean"]
    print(f"hmean identical: {same}; model load + export {load_s:.1f} s (not in the figures)")
    if opts.json:
        doc = {
            "weights": weights,
            "dataset": "msra-td500",
            "test": {k: recipe[k] for k in ("test", "normalize", "postprocess") if k in recipe},
            "environment": profiling.environment("cpu"),
            "load_avg": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "onnx_model": loaded["onnxruntime"].meta.get("onnx_model"),
            "rows": rows,
            "hmean_identical": same,
        }
        with open(opts.json, "w") as f:
            json.dump(doc, f, indent=2, default=str)


if __name__ == "__main__":
    main()
