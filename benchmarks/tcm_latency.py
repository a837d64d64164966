"""TCM-DBNet vs DBNet-R50: forward latency ratio and where TCM's time goes.

    .venv/bin/python benchmarks/tcm_latency.py [--sizes 640,1024] [--repeat 10]
        [--threads N] [--device cpu|cuda] [--json OUT]

Both models are built through the plugin hook (random weights: latency does
not depend on them), in eval mode, batch 1, under ``torch.inference_mode``.
The two models are timed interleaved and in alternating order, so a busy
phase of a shared machine slows both alike; the ratio is the ratio of the
medians. The breakdown times TCM-DBNet's parts separately on the same
input: CLIP image encoder (trunk + attention pool), the attention pool
alone, matching (text encoder, LG, VG, context decoder, score map), neck +
head.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Any, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def build(tcm: bool, device: str) -> Any:
    import torch

    from tcmbench.models.spec import DetectorConfig, TCMConfig
    from tcmbench.plugins import get_detector, get_plugin_manager

    config = DetectorConfig(backbone="resnet50", tcm=TCMConfig(clip_pretrained=None) if tcm else None)
    model = get_plugin_manager().hook.build_detector(spec=get_detector("dbnet"), config=config)
    return model.to(torch.device(device)).eval()


def time_tcm_parts(tcm: Any, x: Any, repeat: int, device: str) -> dict[str, float]:
    """Median ms of TCM-DBNet's parts on input ``x``."""
    enc, ft = tcm.backbone, tcm.feature_transform
    feats = enc(x)
    fused = ft(feats)[0]
    runs = {
        "clip_trunk_and_pool": lambda: enc(x),
        "attention_pool": lambda: enc.attnpool(feats[-1]),
        "matching": lambda: ft(feats),
        "neck_head": lambda: tcm.head(tcm.neck(fused)),
    }
    times = {k: [_timed(fn, device) for _ in range(repeat)] for k, fn in runs.items()}
    return {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}


def measure(sizes: list[int], repeat: int, warmup: int, device: str) -> dict[str, Any]:
    import torch

    plain, tcm = build(False, device), build(True, device)
    results: dict[str, Any] = {}
    with torch.inference_mode():
        for size in sizes:
            x = torch.randn(1, 3, size, size, device=device)
            for _ in range(warmup):
                plain(x)
                tcm(x)
            times: dict[str, list[float]] = {"dbnet_r50": [], "tcm_dbnet": []}
            for i in range(repeat):
                order = [("dbnet_r50", plain), ("tcm_dbnet", tcm)]
                for name, model in order if i % 2 == 0 else order[::-1]:
                    times[name].append(_timed(lambda m=model, x=x: m(x), device))
            parts = time_tcm_parts(tcm, x, repeat, device)
            med = {k: statistics.median(v) * 1000 for k, v in times.items()}
            results[str(size)] = {
                "dbnet_r50_ms": round(med["dbnet_r50"], 1),
                "tcm_dbnet_ms": round(med["tcm_dbnet"], 1),
                "tcm_latency_ratio": round(med["tcm_dbnet"] / med["dbnet_r50"], 3),
                "tcm_parts_ms": parts,
            }
    return results


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640,1024")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    report = {
        "machine": platform.processor() or platform.machine(),
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "results": measure(sizes, args.repeat, args.warmup, args.device),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
