"""DBNet parts benchmark: parameter counts, DB target building and
postprocessing time per image (CPU).

    .venv/bin/python benchmarks/dbnet_parts.py [--repeat 20] [--json OUT]

Maps are synthetic but shaped like a trained network's output: soft
(Gaussian-blurred) shrunk text regions with noise, IC15-like (many rotated
words, 736 x 1280) and Total-Text-like (curved bands, 800 x 800).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import cv2
import numpy as np


def _place(make: Any, n: int) -> list[np.ndarray]:
    """``n`` shapes from ``make()`` that do not touch each other (text
    instances rarely overlap; overlapping ones would merge in the map)."""
    from shapely.geometry import Polygon

    polys: list[np.ndarray] = []
    shapes: list[Any] = []
    while len(polys) < n:
        poly = make()
        shape = Polygon(poly).buffer(4)
        if all(not shape.intersects(other) for other in shapes):
            polys.append(poly)
            shapes.append(shape)
    return polys


def _words(rng: np.random.Generator, n: int, h: int, w: int) -> list[np.ndarray]:
    def make() -> np.ndarray:
        cx, cy = rng.uniform(90, w - 90), rng.uniform(40, h - 40)
        size = (rng.uniform(30, 160), rng.uniform(12, 40))
        return cv2.boxPoints(((cx, cy), size, rng.uniform(-30, 30))).astype(np.float64)

    return _place(make, n)


def _arcs(rng: np.random.Generator, n: int, h: int, w: int) -> list[np.ndarray]:
    def make() -> np.ndarray:
        cx, cy, r = rng.uniform(150, w - 150), rng.uniform(150, h - 150), rng.uniform(60, 120)
        t = np.radians(np.linspace(200, 340, 10) + rng.uniform(-90, 90))
        thick = rng.uniform(16, 36)
        outer = np.stack([cx + (r + thick) * np.cos(t), cy + (r + thick) * np.sin(t)], 1)
        inner = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)[::-1]
        return np.concatenate([outer, inner])

    return _place(make, n)


def _soft_map(targets: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    prob = cv2.GaussianBlur(targets["gt_shrink"], (0, 0), 2.0)
    prob = np.clip(prob + rng.normal(0, 0.05, prob.shape).astype(np.float32), 0, 1)
    return prob.astype(np.float32)


def _time(fn: Any, repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in ms (the median resists the
    noise of a shared machine better than the mean)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    from tcmbench_dbnet.model import build_parts
    from tcmbench_dbnet.targets import DBTargetBuilder

    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.inference.db_postprocess import DBPostprocessor
    from tcmbench.models.detector import Detector

    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    }
    params = {}
    for backbone, options in [
        ("resnet50", {}),
        ("resnet18", {}),
        ("mobilenetv3_large", {}),
        ("mobilenetv3_small", {"lateral_channels": 96}),
    ]:
        model = Detector(build_parts(DetectorConfig(backbone=backbone, options=options)))
        parts = {
            k: sum(p.numel() for p in getattr(model, k).parameters())
            for k in ("backbone", "neck", "head")
        }
        params[f"{backbone}{'-lat96' if options else ''}"] = {**parts, "total": sum(parts.values())}
    results["params"] = params

    rng = np.random.default_rng(0)
    builder = DBTargetBuilder()
    cases = {
        "ic15-like 736x1280, 40 rotated words, quad": (
            _words(rng, 40, 736, 1280),
            736,
            1280,
            "quad",
        ),
        "totaltext-like 800x800, 12 curved bands, poly": (
            _arcs(rng, 12, 800, 800),
            800,
            800,
            "poly",
        ),
    }
    timing = {}
    for name, (polys, h, w, output) in cases.items():
        ignores = [False] * len(polys)
        targets = builder(polys, ignores, h, w)
        prob = _soft_map(targets, rng)[None, None]
        post = DBPostprocessor(output=output, mask_thr=0.3, min_score=0.3, unclip_ratio=1.5)
        meta = [{"orig_size": (h, w), "scale": (1.0, 1.0)}]
        found = len(post({"prob": prob}, meta)[0])
        timing[name] = {
            "targets_ms": round(
                _time(lambda p=polys, i=ignores, h=h, w=w: builder(p, i, h, w), args.repeat), 2
            ),
            "postprocess_ms": round(
                _time(lambda f=post, x=prob, m=meta: f({"prob": x}, m), args.repeat), 2
            ),
            "instances": len(polys),
            "found": found,
        }
    results["per_image"] = timing
    print(json.dumps(results, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
