"""Deformable-convolution backbones (issue 9, docs/benchmarks.md
"Deformable convolution backbones"): size, GFLOPs and CPU latency of
ResNet-50 vs ResNet-50-DCN under each detector plugin.

    .venv/bin/python benchmarks/bench_dcn.py --out bench_dcn \
        [--only params,latency] [--size 640] [--runs 5] [--warmup 1]

``params``   for dbnet, pan and fcenet with resnet50, resnet50-dcn and
             resnet50-dcn-g2: the real CLI, ``tcmbench bench --plugin P
             --backbone B --resolution SIZE --runs 0 --json`` (parameters
             and GFLOPs, no timing), one subprocess each, plus the share of
             the DCN overhead that is offset convs vs bilinear sampling
             (in-process, ``tcmbench.inference.profiling.flops_by_module``);
``latency``  DBNet with the three backbones in one process, timed
             interleaved run by run (``tcmbench.inference.profiling.compare_latency``,
             A B C C B A ...) on the same synthetic batch, forward only, one
             torch thread: the ratio is what DCN costs on this CPU.

Random weights (size, FLOPs and speed do not depend on the values). The
load average before and after each step goes into ``OUT/dcn.json`` with
the figures; the tables are printed as markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("dbnet", "pan", "fcenet")
BACKBONES = ("resnet50", "resnet50-dcn", "resnet50-dcn-g2")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("tcmbench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tcmbench"]


def params_and_flops(out: Path, size: int) -> list[dict[str, Any]]:
    """One ``tcmbench bench --runs 0`` per plugin and backbone."""
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for plugin in PLUGINS:
        for backbone in BACKBONES:
            path = out / f"{plugin}_{backbone}.json"
            cmd = [
                *_cli(),
                "bench",
                "--plugin",
                plugin,
                "--backbone",
                backbone,
                "--resolution",
                str(size),
                "--runs",
                "0",
                "--threads",
                "1",
                "--no-progress",
                "--json",
                str(path),
            ]
            t0 = time.time()
            subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
            doc = json.loads(path.read_text())
            result = doc["results"][0]
            rows.append(
                {
                    "plugin": plugin,
                    "backbone": backbone,
                    "params": doc["params"],
                    "gflops": result["gflops"],
                    "gmacs": result["gmacs"],
                    "seconds": round(time.time() - t0, 1),
                }
            )
            print(f"{plugin} {backbone}: {doc['params']:,} params, {result['gflops']:.2f} GFLOPs")
    return rows


def dcn_overhead(size: int) -> dict[str, dict[str, float]]:
    """GFLOPs the deformable convs add to the plain backbone at SIZE:
    offset / mask convs and bilinear sampling + modulation."""

    from tcmbench.inference.profiling import flops_by_module
    from tcmbench.models.backbones import build_backbone
    from tcmbench.models.dcn import ModulatedDeformConv2d

    out: dict[str, dict[str, float]] = {}
    plain = flops_by_module(build_backbone("resnet50"), size, size)
    for name in ("resnet50-dcn", "resnet50-dcn-g2"):
        backbone = build_backbone(name)
        per = flops_by_module(backbone, size, size)
        dcns = [n for n, m in backbone.named_modules() if isinstance(m, ModulatedDeformConv2d)]
        offsets = sum(per[f"{n}.conv_offset"] for n in dcns)
        sampling = sum(per[n] - per[f"{n}.conv_offset"] - plain[n] for n in dcns)
        out[name] = {
            "backbone_gflops_plain": plain[""] / 1e9,
            "backbone_gflops": per[""] / 1e9,
            "offset_convs_gflops": offsets / 1e9,
            "sampling_gflops": sampling / 1e9,
        }
    return out


def latency(size: int, runs: int, warmup: int) -> dict[str, Any]:
    """DBNet-R50 and its DCN variants, interleaved, forward only."""
    import torch

    from tcmbench import profiling
    from tcmbench.commands.bench import build_for_bench
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.transforms import MEAN_RGB, STD_RGB

    torch.set_num_threads(1)
    spec = get_detector("dbnet")
    recipe = spec.recipe(None)
    models = {}
    for backbone in BACKBONES:
        torch.manual_seed(0)
        models[backbone] = build_for_bench(spec, recipe, backbone, None)[0].eval()
    batch = profiling.bench_batch(size, size, 1, mean=MEAN_RGB, std=STD_RGB)
    timings = profiling.compare_latency(
        models,
        dict.fromkeys(models, batch),
        warmup=warmup,
        runs=runs,
        postprocess=False,
        progress=False,
    )
    return {
        name: {k: v for k, v in t.items() if k.startswith("latency")} for name, t in timings.items()
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = []
    if "params" in doc:
        size = doc["size"]
        lines += [
            f"| plugin | backbone | params | GFLOPs / GMACs at {size}x{size} |",
            "|---|---|---|---|",
        ]
        for r in doc["params"]:
            lines.append(
                f"| {r['plugin']} | {r['backbone']} | {r['params'] / 1e6:.2f}M ({r['params']:,}) | "
                f"{r['gflops']:.1f} / {r['gmacs']:.1f} |"
            )
        lines.append("")
        lines += ["| backbone | backbone GFLOPs | offset convs | sampling + modulation |"]
        lines += ["|---|---|---|---|"]
        for name, o in doc["overhead"].items():
            lines.append(
                f"| {name} | {o['backbone_gflops']:.2f} (plain {o['backbone_gflops_plain']:.2f}) | "
                f"{o['offset_convs_gflops']:.2f} | {o['sampling_gflops']:.2f} |"
            )
    if "latency" in doc:
        lat = doc["latency"]
        base = lat["resnet50"]
        lines += ["", "| DBNet backbone | median ms | fastest ms | median / R50 | fastest / R50 |"]
        lines += ["|---|---|---|---|---|"]
        for name, t in lat.items():
            lines.append(
                f"| {name} | {t['latency_ms']:.0f} | {t['latency_ms_min']:.0f} | "
                f"{t['latency_ms'] / base['latency_ms']:.2f}x | "
                f"{t['latency_ms_min'] / base['latency_ms_min']:.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="params,latency")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    steps = {s.strip() for s in args.only.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    from tcmbench.inference.profiling import environment

    doc: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "size": args.size,
        "environment": environment("cpu"),
    }
    if "params" in steps:
        doc["load_before_params"] = _load()
        doc["params"] = params_and_flops(args.out, args.size)
        doc["overhead"] = dcn_overhead(args.size)
        doc["load_after_params"] = _load()
    if "latency" in steps:
        doc["load_before_latency"] = _load()
        doc["latency"] = latency(args.size, args.runs, args.warmup)
        doc["latency_settings"] = {"runs": args.runs, "warmup": args.warmup, "threads": 1}
        doc["load_after_latency"] = _load()
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tmp = args.out / "dcn.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, args.out / "dcn.json")
    print(markdown(doc))


if __name__ == "__main__":
    main()
