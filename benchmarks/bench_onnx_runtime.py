"""PyTorch eager vs onnxruntime on the same DBNet checkpoint, interleaved,
at 1 and 2 threads: the figure behind docs/benchmarks.md's runtime claim.

    python benchmarks/bench_onnx_runtime.py --data-root ../shared/data/msra-td500 \
        --limit 30 --threads 1,2 --out docs/benchmarks/onnx-runtime.md

Both runtimes go through :func:`tcmbench.inference.predict_samples` (what
``tcmbench evaluate`` runs) at the DBNet ``msra-td500`` recipe's test
settings (``--recipe msra-td500``: short side 736); the onnxruntime model is
the checkpoint exported by ``--runtime onnxruntime`` (``tcmbench export
onnx``), so the network is the only thing that changes. Default weights:
the DBNet-MobileNetV3-small shipped in the plugin (trained on synthetic
images: its hmean on TD500 is low, which does not matter for speed; the
two runtimes' figures must agree, and the script checks it).

For each thread count the runtimes alternate chunk by chunk (A B, B A,
...), so a busy phase of the shared machine slows both alike; one warm-up
image each, untimed. Each stage is timed inside the pipeline (reading,
pre-processing, network, post-processing). The speed-up is the ratio of
total times; its noise is the spread of the same ratio over the chunks
(min-max and the interquartile range), stated beside it. Figures go to
``--out`` (markdown) and ``--json`` with the date, machine, versions and
the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from tcmbench.inference import STAGES


def shown(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data/msra-td500")
    ap.add_argument("--weights", default=None, help="checkpoint (default: DBNet's shipped one)")
    ap.add_argument("--limit", type=int, default=30, help="the first N photos (0: all 200)")
    ap.add_argument("--threads", default="1,2", help="thread counts, each run for both runtimes")
    ap.add_argument("--chunk", type=int, default=5, help="photos per alternation")
    ap.add_argument("--out", default=None, help="write the markdown figures here")
    ap.add_argument("--json", default=None, help="write the figures here as JSON")
    opts = ap.parse_args()
    counts = [int(t) for t in opts.threads.split(",")]

    import torch

    from tcmbench.contract.registry import get_detector
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.eval import evaluate as score
    from tcmbench.eval.submission import submitted_predictions
    from tcmbench.hub.checkpoints import embedded_weights
    from tcmbench.inference import dataset_protocol, predict_samples
    from tcmbench.inference.loading import load_for_inference, resolve_for_checkpoint
    from tcmbench.inference.onnx_runtime import open_session
    from tcmbench.inference.profiling import cpu_name

    load_before = os.getloadavg()
    spec = get_detector("dbnet")
    weights = opts.weights or str(embedded_weights(spec))
    samples, _ = load_split("msra-td500", "test", data_root=opts.data_root, need_images=True)
    samples = samples[: opts.limit] if opts.limit else samples
    protocol, params = dataset_protocol(get_dataset_config("msra-td500"), None)
    eager = load_for_inference(weights, spec=spec, runtime="torch")
    ort = load_for_inference(weights, spec=spec, runtime="onnxruntime")
    recipe = resolve_for_checkpoint(spec, eager, "msra-td500", "msra-td500").recipe
    onnx_path = Path(ort.meta["onnx_model"])
    results: list[dict[str, Any]] = []
    for threads in counts:
        torch.set_num_threads(threads)
        ort.model.session = open_session(onnx_path, threads=threads)
        models = {"PyTorch eager": eager.model, "onnxruntime": ort.model}
        for model in models.values():  # warm-up, untimed
            predict_samples(model, samples[:1], recipe, "cpu", progress=False)
        timings: dict[str, dict[str, float]] = {name: {} for name in models}
        wall = dict.fromkeys(models, 0.0)
        chunk_ratios: list[float] = []
        preds: dict[str, dict[str, Any]] = {name: {} for name in models}
        order = list(models)
        for i, start in enumerate(range(0, len(samples), opts.chunk)):
            chunk = samples[start : start + opts.chunk]
            spent = {}
            for name in order if i % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                preds[name].update(
                    predict_samples(
                        models[name], chunk, recipe, "cpu", progress=False, timings=timings[name]
                    )
                )
                spent[name] = time.perf_counter() - t0
                wall[name] += spent[name]
            chunk_ratios.append(spent["PyTorch eager"] / spent["onnxruntime"])
            print(f"{threads} thread(s): {start + len(chunk)}/{len(samples)} photos", flush=True)
        hmeans = {
            n: score(samples, submitted_predictions(preds[n], protocol), protocol, **params).hmean
            for n in models
        }
        lo, hi = quartiles(chunk_ratios)
        results.append(
            {
                "threads": threads,
                "images": len(samples),
                "ratio": wall["PyTorch eager"] / wall["onnxruntime"],
                "chunk_ratio_min": min(chunk_ratios),
                "chunk_ratio_max": max(chunk_ratios),
                "chunk_ratio_q1": lo,
                "chunk_ratio_q3": hi,
                "runtimes": {
                    name: {
                        "seconds": wall[name],
                        "images_per_s": len(samples) / wall[name],
                        **{f"{s}_s": timings[name].get(s, 0.0) for s in STAGES},
                        "hmean": hmeans[name],
                    }
                    for name in models
                },
            }
        )
    load_after = os.getloadavg()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    import onnxruntime

    lines = [
        (
            f"Generated by `benchmarks/bench_onnx_runtime.py` on {date}: DBNet checkpoint "
            f"`{shown(weights)}` (sha256 {eager.sha256[:12]}), {len(samples)} MSRA-TD500 test photos at "
            f"its `msra-td500` test settings, batch 1, the runtimes alternating every "
            f"{opts.chunk} photos."
        ),
        "",
        (
            f"Machine: {cpu_name()} ({os.cpu_count()} CPUs), Python {platform.python_version()}, "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; load average "
            f"(1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after "
            f"{', '.join(f'{x:.2f}' for x in load_after)}."
        ),
        "",
        "| threads | runtime | images/s | s/photo | "
        + " | ".join(STAGES)
        + " | hmean | onnxruntime / eager (chunks: IQR; min-max) |",
        "|---" * (6 + len(STAGES)) + "|",
    ]
    for r in results:
        for name, row in r["runtimes"].items():
            stages = " | ".join(f"{1000 * row[s + '_s'] / r['images']:.0f} ms" for s in STAGES)
            ratio = (
                f"**{r['ratio']:.2f}x** ({r['chunk_ratio_q1']:.2f}-{r['chunk_ratio_q3']:.2f}; "
                f"{r['chunk_ratio_min']:.2f}-{r['chunk_ratio_max']:.2f})"
                if name == "onnxruntime"
                else ""
            )
            lines.append(
                f"| {r['threads']} | {name} | {row['images_per_s']:.2f} | "
                f"{row['seconds'] / r['images']:.3f} | {stages} | {row['hmean']:.4f} | {ratio} |"
            )
    same = all(
        len({round(row["hmean"], 4) for row in r["runtimes"].values()}) == 1 for r in results
    )
    lines += ["", f"hmean equal across runtimes (4 decimals): {same}."]
    report = "\n".join(lines) + "\n"
    print(report)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(report)
    if opts.json:
        doc = {
            "date": date,
            "weights": weights,
            "onnx_model": str(onnx_path),
            "load_avg_before": load_before,
            "load_avg_after": load_after,
            "results": results,
            "hmean_equal": same,
        }
        Path(opts.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
