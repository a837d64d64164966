"""tcmbench's onnxruntime path vs rapidocr's detector: one ONNX model, the
same settings, interleaved on the MSRA-TD500 test photos.

    python benchmarks/bench_onnx_vs_rapidocr.py --data-root ../shared/data/msra-td500 \
        --threads 2 --out docs/benchmarks/onnx-vs-rapidocr.md

Both run the same file (default PaddleOCR's PP-OCRv3 detector,
``../shared/data/models/ch_PP-OCRv3_det_infer.onnx``) with onnxruntime at
``--threads`` intra-op threads, PaddleOCR's resize (longer side limited to
960, ``max``), ImageNet normalisation on BGR, DB post-processing with
threshold 0.3, box score 0.6, unclip 1.5, no dilation, ``fast`` scores:

- tcmbench: ``--plugin onnx`` (the built-in ``ppocr-det`` config) through
  :func:`tcmbench.inference.predict_samples`, what ``tcmbench evaluate``
  runs, its stages timed inside the pipeline (``timings``);
- rapidocr: ``rapidocr_onnxruntime``'s ``LoadImage`` and ``TextDetector``
  (its resize pinned to 960 / max: left alone it picks 960, 1500 or 2000 by
  image size), its stages timed by wrapping its own parts.

Images/s is over the whole per-image work, reading included; scoring is
not timed (the hmean is ``evaluate``'s: the boxes as its submission
holds them). The two alternate chunk by chunk (A B, B A, ...), so a busy
phase of the shared machine slows both alike; one warm-up image each,
untimed. Both detections are scored with the TD500 protocol, as a check
that the settings match. With ``--startup-runs N`` the script also times
``tcmbench predict --plugin onnx`` from process start to the first image
read, N times in fresh processes (the median is reported).

The figures go to ``--out`` (markdown) and ``--json``, with the date,
machine, library versions and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = ("read", "preprocess", "network", "postprocess")
DEFAULT_MODEL = "../shared/data/models/ch_PP-OCRv3_det_infer.onnx"

#: A child that runs the CLI and prints, at the first image read, the
#: seconds since the epoch (the parent subtracts its launch time).
STARTUP_CHILD = """
import sys, time
import tcmbench.data.torch_data as td
real = td.load_image
def first(*args, **kwargs):
    print("FIRST_IMAGE", time.time(), flush=True)
    td.load_image = real
    return real(*args, **kwargs)
td.load_image = first
from tcmbench.cli import main
main(sys.argv[1:])
"""


def machine() -> dict[str, Any]:
    """What the figures depend on, torch-free."""
    import cv2
    import numpy
    import onnxruntime

    from tcmbench import __version__
    from tcmbench.inference.profiling import cpu_name

    try:
        from importlib.metadata import version

        rapid = version("rapidocr-onnxruntime")
    except Exception:  # noqa: BLE001  (not installed: reported as such)
        rapid = "not installed"
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tcmbench": __version__,
        "onnxruntime": onnxruntime.__version__,
        "rapidocr-onnxruntime": rapid,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
    }


class Timed:
    """Seconds per stage, accumulated by wrapping callables."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t0

        return timed


def rapidocr_detector(model: str, threads: int) -> Any:
    """rapidocr's TextDetector on ``model`` at the PP-OCR settings above."""
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector  # type: ignore[import-untyped]
    from rapidocr_onnxruntime.ch_ppocr_det.utils import (  # type: ignore[import-untyped]
        DetPreProcess,
    )

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    config = {
        "model_path": model,
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "use_cuda": False,
        "use_dml": False,
        "limit_side_len": 960,
        "limit_type": "max",
        "mean": mean,
        "std": std,
        "thresh": 0.3,
        "box_thresh": 0.6,
        "max_candidates": 1000,
        "unclip_ratio": 1.5,
        "use_dilation": False,
        "score_mode": "fast",
    }
    det = TextDetector(config)
    pinned = DetPreProcess(960, "max", mean, std)
    det.get_preprocess = lambda max_wh: pinned  # its own rule would pick 1500 / 2000
    return det


def run_rapidocr(det: Any, load: Any, samples: list[Any], clock: Timed) -> dict[str, list[Any]]:
    """rapidocr's detections of ``samples``, its stages timed into ``clock``."""
    import numpy as np

    from tcmbench.data.schema import Prediction

    pre = det.get_preprocess(0)
    det.get_preprocess = lambda max_wh: clock.wrap("preprocess", pre)
    infer, post, filt = det.infer, det.postprocess_op, det.filter_tag_det_res
    det.infer = clock.wrap("network", infer)
    det.postprocess_op = clock.wrap("postprocess", post)
    det.filter_tag_det_res = clock.wrap("postprocess", filt)
    read = clock.wrap("read", load)
    out: dict[str, list[Any]] = {}
    try:
        for s in samples:
            boxes, _ = det(read(s.image_path))
            out[s.id] = [
                Prediction(np.asarray(b, np.float64).reshape(-1))
                for b in (boxes if boxes is not None else [])
            ]
    finally:
        det.get_preprocess = lambda max_wh: pre
        det.infer, det.postprocess_op, det.filter_tag_det_res = infer, post, filt
    return out


def startup_seconds(model: str, image: str, runs: int, threads: int) -> list[float]:
    """Process start -> first image read of ``tcmbench predict --plugin onnx``."""
    times = []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            args = ["predict", image, "--plugin", "onnx", "--weights", model, "--out", out]
            t0 = time.time()
            run = subprocess.run(
                [sys.executable, "-c", STARTUP_CHILD, *args],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
        stamp = next(line for line in run.stdout.splitlines() if line.startswith("FIRST_IMAGE"))
        times.append(float(stamp.split()[1]) - t0)
    return times


def table(rows: list[dict[str, Any]]) -> str:
    head = "| detector | images/s | s/image | " + " | ".join(STAGES) + " | hmean |"
    lines = [head, "|---" * (4 + len(STAGES)) + "|"]
    for r in rows:
        cells = " | ".join(
            f"{1000 * r[s + '_s'] / r['images']:.0f} ms ({100 * r[s + '_share']:.0f}%)"
            for s in STAGES
        )
        lines.append(
            f"| {r['detector']} | **{r['images_per_s']:.2f}** | {r['seconds'] / r['images']:.3f} "
            f"| {cells} | {r['hmean']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data/msra-td500")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="the ONNX detector both run")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads, each")
    ap.add_argument("--chunk", type=int, default=10, help="images per alternation")
    ap.add_argument("--startup-runs", type=int, default=0, help="also time start-up N times")
    ap.add_argument("--out", default=None, help="write the markdown figures here")
    ap.add_argument("--json", default=None, help="write the figures here as JSON")
    opts = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(opts.threads)  # tcmbench's session reads it

    from rapidocr_onnxruntime.utils import LoadImage  # type: ignore[import-untyped]

    from tcmbench.contract.registry import get_detector
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.eval import evaluate as score
    from tcmbench.eval.submission import submitted_predictions
    from tcmbench.inference import dataset_protocol, predict_samples
    from tcmbench.inference.loading import load_for_inference, resolve_for_checkpoint, tag_runtime

    load_before = os.getloadavg()
    model = str(Path(opts.model).resolve())
    samples, _ = load_split("msra-td500", "test", data_root=opts.data_root, need_images=True)
    samples = samples[: opts.limit] if opts.limit else samples
    protocol, params = dataset_protocol(get_dataset_config("msra-td500"), None)
    spec = get_detector("onnx")
    ckpt = load_for_inference(model, spec=spec)
    recipe = tag_runtime(resolve_for_checkpoint(spec, ckpt, None, "msra-td500").recipe, ckpt)
    det = rapidocr_detector(model, opts.threads)
    load = LoadImage()

    def tcm(chunk: list[Any], timings: dict[str, float]) -> dict[str, list[Any]]:
        return predict_samples(ckpt.model, chunk, recipe, "cpu", progress=False, timings=timings)

    clocks = {"tcmbench": Timed(), "rapidocr": Timed()}
    runners = {
        "tcmbench": lambda chunk, clock: tcm(chunk, clock.seconds),
        "rapidocr": lambda chunk, clock: run_rapidocr(det, load, chunk, clock),
    }
    for fn in runners.values():  # warm-up, untimed
        fn(samples[:1], Timed())
    preds: dict[str, dict[str, list[Any]]] = {name: {} for name in runners}
    wall = dict.fromkeys(runners, 0.0)
    order = list(runners)
    for i, start in enumerate(range(0, len(samples), opts.chunk)):
        chunk = samples[start : start + opts.chunk]
        for name in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            preds[name].update(runners[name](chunk, clocks[name]))
            wall[name] += time.perf_counter() - t0
        print(f"{min(start + opts.chunk, len(samples))}/{len(samples)} photos", flush=True)
    rows: list[dict[str, Any]] = []
    for name in runners:
        # scored as evaluate scores: the boxes its submit.zip would hold
        result = score(samples, submitted_predictions(preds[name], protocol), protocol, **params)
        sec = clocks[name].seconds
        rows.append(
            {
                "detector": name,
                "images": len(samples),
                "seconds": round(wall[name], 3),
                "images_per_s": round(len(samples) / wall[name], 3),
                **{f"{s}_s": round(sec[s], 3) for s in STAGES},
                **{f"{s}_share": round(sec[s] / wall[name], 3) for s in STAGES},
                "other_share": round(1 - sum(sec.values()) / wall[name], 3),
                "hmean": result.hmean,
                "precision": result.precision,
                "recall": result.recall,
            }
        )
    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    startup = (
        startup_seconds(model, str(samples[0].image_path), opts.startup_runs, opts.threads)
        if opts.startup_runs
        else []
    )
    load_after = os.getloadavg()
    env = machine()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = (
        f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {', '.join(f'{x:.2f}' for x in load_after)}"
    )
    head = (
        f"Generated by `benchmarks/bench_onnx_vs_rapidocr.py` on {date}: {len(samples)} "
        f"MSRA-TD500 test photos, model `{Path(model).name}`, {opts.threads} onnxruntime "
        f"threads each, alternating every {opts.chunk} photos."
    )
    where = (
        f"Machine: {env['cpu']} ({env['cpu_count']} CPUs), Python {env['python']}, onnxruntime "
        f"{env['onnxruntime']}, rapidocr-onnxruntime {env['rapidocr-onnxruntime']}, numpy "
        f"{env['numpy']}, OpenCV {env['opencv']}; {loads}."
    )
    verdict = (
        f"tcmbench / rapidocr: **{ratio:.2f}x** the images per second; tcmbench's network "
        f"takes {100 * rows[0]['network_share']:.0f}% of its wall time (stages in ms per "
        "photo, and their share of that detector's wall time; tcmbench reads and "
        "pre-processes the next photo in a helper thread while onnxruntime runs, so its "
        "shares overlap and add up to more than 100%)."
    )
    text = [head, "", where, "", table(rows), "", verdict]
    if startup:
        text += [
            "",
            (
                f"Start-up of `tcmbench predict --plugin onnx` to the first image read, "
                f"{len(startup)} fresh processes: median **{statistics.median(startup):.2f} s** "
                f"(min {min(startup):.2f}, max {max(startup):.2f})."
            ),
        ]
    report = "\n".join(text) + "\n"
    print(report)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(report)
    if opts.json:
        doc = {
            "date": date,
            "machine": env,
            "load_avg_before": load_before,
            "load_avg_after": load_after,
            "model": model,
            "threads": opts.threads,
            "rows": rows,
            "ratio_images_per_s": round(ratio, 3),
            "startup_s": startup,
        }
        Path(opts.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
