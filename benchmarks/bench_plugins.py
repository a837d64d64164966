"""Detector figures of issue 8 (docs/benchmarks.md, "Detectors: PANet,
FCENet, DBNet with and without TCM"): DBNet, PANet and FCENet, plain and
with TCM, on a CPU.

    .venv/bin/python benchmarks/bench_plugins.py --out bench8 \
        [--only params,flops,ratio,scales,postprocess,real] [--dry-run]

Every figure except the last step comes from the real CLI (``tcmbench
bench ... --json``), run as a subprocess with one torch thread and
``OMP_WAIT_POLICY=PASSIVE`` (the project's CPU is shared; spinning OpenMP
threads make timings erratic). Each command, its wall time and the load
average before and after it go to ``OUT/log.jsonl``; the JSON of each
command to ``OUT/<step>.json``; at the end the tables are printed as
markdown. Steps:

``params``       parameter counts (``--params-only``) of DBNet-R50,
                 PANet-R18 / R50, FCENet-R50 and their TCM versions
                 (TCM: with and without the frozen CLIP text encoder);
``flops``        GFLOPs at 640x640 (``--runs 0``: no timing);
``ratio``        TCM / plain latency of the three plugins side by side in
                 one interleaved run at 640 (``--compare-tcm``);
``scales``       GFLOPs and one timed forward, plain R50 and TCM side by
                 side, at the size a typical test image of each dataset is
                 resized (and padded) to under each plugin's recipe;
``postprocess``  ``bench --weights`` with each plugin's shipped
                 synthtext-mini weights (trained maps, synthetic scene);
``real``         post-processing time of the same weights on real images
                 (the ICDAR 2015 sample images and a few MSRA-TD500 test
                 images from ../shared/data, when present), in-process.

Random weights everywhere except ``postprocess`` / ``real``: size, FLOPs
and latency do not depend on the values, post-processing does (random maps
are arbitrary), which is why it is measured on trained weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

# (label, plugin, extra bench arguments) of the parameter / FLOP tables.
MODELS: list[tuple[str, str, list[str]]] = [
    ("DBNet-R50", "dbnet", ["--backbone", "resnet50"]),
    ("TCM-DBNet", "dbnet", ["--tcm"]),
    ("PANet-R18", "pan", ["--backbone", "resnet18"]),
    ("PANet-R50", "pan", ["--backbone", "resnet50"]),
    ("TCM-PANet", "pan", ["--tcm"]),
    ("FCENet-R50", "fcenet", ["--backbone", "resnet50"]),
    ("TCM-FCENet", "fcenet", ["--tcm"]),
]

PLUGINS = ("dbnet", "pan", "fcenet")

# A typical test image per dataset, (height, width). Every recipe's test
# resize keeps the aspect ratio and scales up as well as down, so only the
# aspect ratio matters (up to rounding). ICDAR 2015: all 1280x720.
# MSRA-TD500: 118 of the 200 test images are 1600x1200 and 76 are
# 1728x1296 (4:3; only 4 are 1296x864). CTW1500 / Total-Text images vary;
# their ground truth spans mostly landscape images (79 % / 73 % wider than
# high by the GT's extent), taken as 4:3.
TYPICAL: dict[str, tuple[int, int]] = {
    "icdar2015": (720, 1280),
    "ctw1500": (480, 640),
    "totaltext": (768, 1024),
    "msra-td500": (1200, 1600),
}


def padded(n: int, divisor: int) -> int:
    return int(math.ceil(n / divisor) * divisor)


def test_size(plugin: str, dataset: str) -> tuple[int, int]:
    """(height, width) the network sees for the dataset's typical image:
    the recipe's keep-ratio resize (``InferenceTransform``), padded up to
    the recipe's divisor (32)."""
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.transforms import test_resize_size

    test = get_detector(plugin).recipe(dataset).get("test") or {}
    h, w = TYPICAL[dataset]
    rh, rw = test_resize_size(h, w, test.get("long_side"), test.get("short_side"))
    div = int(test.get("pad_divisor", 32))
    return padded(rh, div), padded(rw, div)


class Runner:
    """Runs ``tcmbench`` subprocesses, logs command, wall time and load."""

    def __init__(self, out: Path, dry_run: bool) -> None:
        self.out, self.dry_run = out, dry_run
        self.env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}

    def bench(self, step: str, args: list[str]) -> dict[str, Any] | None:
        json_path = self.out / f"{step}.json"
        argv = ["bench", *args, "--threads", "1", "--no-progress", "--json", str(json_path)]
        shown = "tcmbench " + shlex.join(argv)
        print(f"$ {shown}", file=sys.stderr, flush=True)
        if self.dry_run:
            return None
        load0, t0 = os.getloadavg(), time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "tcmbench", *argv],
            check=False,
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - t0
        record = {
            "step": step,
            "command": shown,
            "returncode": proc.returncode,
            "wall_s": round(wall, 1),
            "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }
        if proc.returncode:
            record["stderr_tail"] = proc.stderr[-2000:]
        with (self.out / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(
            f"  rc {proc.returncode}, {wall:.0f} s, load {record['load_before'][0]} -> "
            f"{record['load_after'][0]}",
            file=sys.stderr,
            flush=True,
        )
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        return json.loads(json_path.read_text())


def step_params(run: Runner) -> None:
    for label, plugin, extra in MODELS:
        run.bench(f"params_{label}", ["--plugin", plugin, *extra, "--params-only"])


def step_flops(run: Runner) -> None:
    for label, plugin, extra in MODELS:
        run.bench(
            f"flops_{label}", ["--plugin", plugin, *extra, "--resolution", "640", "--runs", "0"]
        )


def step_ratio(run: Runner) -> None:
    common = ["--compare-tcm", "--resolution", "640", "--runs", "3", "--warmup", "1", "--no-flops"]
    run.bench("ratio_640", ["--plugin", ",".join(PLUGINS), *common])
    # PANet's recipes build R18 (the TCM paper's PAN baseline); R50 too.
    run.bench("ratio_640_pan_r50", ["--plugin", "pan", "--backbone", "resnet50", *common])


def step_scales(run: Runner) -> None:
    for plugin in PLUGINS:
        for dataset in TYPICAL:
            h, w = test_size(plugin, dataset)
            run.bench(
                f"scale_{plugin}_{dataset}",
                [
                    "--plugin",
                    plugin,
                    "--backbone",
                    "resnet50",
                    "--compare-tcm",
                    "--recipe",
                    dataset,
                    "--resolution",
                    f"{w}x{h}",
                    "--runs",
                    "1",
                    "--warmup",
                    "0",
                ],
            )


def step_postprocess(run: Runner) -> None:
    for plugin in PLUGINS:
        run.bench(
            f"post_{plugin}",
            [
                "--plugin",
                plugin,
                "--weights",
                f"plugins/tcmbench_{plugin}/weights",
                "--resolution",
                "640",
                "--runs",
                "3",
                "--no-flops",
            ],
        )


def real_images(n_td500: int) -> list[Path]:
    images = sorted((DATA / "icdar2015" / "test_images_sample").glob("*.jpg"))
    images += sorted((DATA / "msra-td500" / "test").glob("*.JPG"))[:n_td500]
    return images


def step_real(out: Path, dry_run: bool, repeats: int = 3, n_td500: int = 3) -> None:
    """Post-processing ms per image of the shipped weights on real images,
    at the checkpoint recipe's test scale (synthtext-mini: original size,
    padded to 32), with its postprocess parameters; median of ``repeats``
    calls on the same maps."""
    images = real_images(n_td500)
    print(f"# real images: {len(images)} ({DATA})", file=sys.stderr, flush=True)
    if dry_run or not images:
        return
    import torch

    from tcmbench.data.torch_data import load_image
    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.hub.checkpoints import load_checkpoint
    from tcmbench.inference import postprocessor_for

    torch.set_num_threads(1)
    rows = []
    load0 = os.getloadavg()
    for plugin in PLUGINS:
        ckpt = load_checkpoint(ROOT / "plugins" / f"tcmbench_{plugin}" / "weights", plugin=plugin)
        recipe = dict(ckpt.meta.get("recipe") or {}) or ckpt.spec.recipe("synthtext-mini")
        transform = InferenceTransform.from_recipe(recipe)
        post = postprocessor_for(ckpt.model, recipe)
        model = ckpt.model.eval()
        for path in images:
            img = load_image(path, path.stem)
            x, scale = transform(img)
            metas = [{"id": path.stem, "orig_size": img.shape[:2], "scale": scale}]
            with torch.inference_mode():
                outputs = model(torch.from_numpy(x)[None])
            times, n_det = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                preds = post(outputs, metas)
                times.append((time.perf_counter() - t0) * 1000.0)
                n_det = len(preds[0])
            rows.append(
                {
                    "plugin": plugin,
                    "image": f"{path.parent.parent.name}/{path.name}",
                    "input": f"{x.shape[2]}x{x.shape[1]}",
                    "postprocess_ms": statistics.median(times),
                    "detections": n_det,
                }
            )
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    doc = {
        "rows": rows,
        "load_before": [round(v, 2) for v in load0],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    (out / "real.json").write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------
# Tables


def _load(out: Path, step: str) -> dict[str, Any] | None:
    path = out / f"{step}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _m(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}M ({n:,})"


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report(out: Path) -> str:
    lines = ["## Parameters and GFLOPs at 640x640", ""]
    lines += [
        "| model | params | params without text encoder | GFLOPs 640 | GMACs 640 |",
        "|---|---|---|---|---|",
    ]
    for label, _plugin, _extra in MODELS:
        p = _load(out, f"params_{label}") or {}
        f = _load(out, f"flops_{label}") or {}
        r = (f.get("results") or [{}])[0]
        lines.append(
            f"| {label} | {_m(p.get('params'))} | {_m(p.get('params_without_text_encoder'))} | "
            f"{_f(r.get('gflops'))} | {_f(r.get('gmacs'))} |"
        )
    lines += ["", "## TCM / plain latency at 640 (one interleaved run)", ""]
    lines += [
        "| plugin | plain | plain ms (median / fastest) | TCM ms (median / fastest) | ratio | ratio fastest |",
        "|---|---|---|---|---|---|",
    ]
    for step in ("ratio_640", "ratio_640_pan_r50"):
        doc = _load(out, step)
        if not doc:
            continue
        models = doc["models"]
        for i in range(0, len(models), 2):
            plain, tcm = models[i]["results"][0], models[i + 1]["results"][0]
            lines.append(
                f"| {models[i + 1]['model']} | {models[i]['model']} | "
                f"{_f(plain['latency_ms'], 0)} / {_f(plain['latency_ms_min'], 0)} | "
                f"{_f(tcm['latency_ms'], 0)} / {_f(tcm['latency_ms_min'], 0)} | "
                f"{tcm['latency_ms'] / plain['latency_ms']:.2f}x | "
                f"{tcm['latency_ms_min'] / plain['latency_ms_min']:.2f}x |"
            )
    lines += ["", "## Test scales (random weights, 1 run)", ""]
    lines += [
        (
            "| plugin | dataset | typical image | network input | plain GFLOPs | plain ms | "
            "TCM GFLOPs | TCM ms | TCM / plain |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for plugin in PLUGINS:
        for dataset, (h, w) in TYPICAL.items():
            doc = _load(out, f"scale_{plugin}_{dataset}")
            if not doc:
                continue
            plain, tcm = (m["results"][0] for m in doc["models"])
            lines.append(
                f"| {plugin} | {dataset} | {w}x{h} | {plain['resolution']} | "
                f"{_f(plain.get('gflops'))} | {_f(plain.get('latency_ms'), 0)} | "
                f"{_f(tcm.get('gflops'))} | {_f(tcm.get('latency_ms'), 0)} | "
                f"{tcm['latency_ms'] / plain['latency_ms']:.2f}x |"
            )
    lines += ["", "## Post-processing, shipped synthtext-mini weights", ""]
    lines += [
        "| plugin | model | input | latency ms | postprocess ms/img | detections/img |",
        "|---|---|---|---|---|---|",
    ]
    for plugin in PLUGINS:
        doc = _load(out, f"post_{plugin}")
        if not doc:
            continue
        r = doc["results"][0]
        lines.append(
            f"| {plugin} | {doc['model']} | synthetic scene {r['resolution']} | "
            f"{_f(r['latency_ms'], 0)} | {_f(r['postprocess_ms'], 2)} | "
            f"{_f(r['detections_per_image'])} |"
        )
    real = _load(out, "real")
    if real:
        for row in real["rows"]:
            lines.append(
                f"| {row['plugin']} | shipped | {row['image']} at {row['input']} | - | "
                f"{row['postprocess_ms']:.2f} | {row['detections']} |"
            )
    return "\n".join(lines)


STEPS = ("params", "flops", "ratio", "scales", "postprocess", "real")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_plugins_out"))
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated of {STEPS}")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--report-only", action="store_true", help="tables from OUT's JSON")
    args = parser.parse_args()
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; expected some of {STEPS}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        run = Runner(args.out, args.dry_run)
        actions = {
            "params": lambda: step_params(run),
            "flops": lambda: step_flops(run),
            "ratio": lambda: step_ratio(run),
            "scales": lambda: step_scales(run),
            "postprocess": lambda: step_postprocess(run),
            "real": lambda: step_real(args.out, args.dry_run),
        }
        for step in steps:
            actions[step]()
    if not args.dry_run:
        print(report(args.out))


if __name__ == "__main__":
    main()
