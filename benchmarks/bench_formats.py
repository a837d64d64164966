"""How long each annotation reader takes on the shared real data, and on
10,000 synthetic samples in tcmbench's JSON-lines format (the synthtext-mini
cache format).

    .venv/bin/python benchmarks/bench_formats.py [--repeat 5] [--shared ../shared/data]

Prints one row per dataset: best-of-N wall time, images, instances, ignored.
Readers are called through ``read_annotations`` exactly as the CLI does.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.formats.jsonl import write_jsonl
from tcmbench.data.schema import Instance, Sample

REPO = Path(__file__).resolve().parent.parent

# (label, format, annotations relative to the shared data, images or None)
SHARED = [
    ("icdar2015 test_gt.zip", "icdar2015", "icdar2015/test_gt.zip", None),
    ("icdar2015-toy + images", "icdar2015", "icdar2015-toy/train_gts", "icdar2015-toy/train_images"),
    ("icdar2013 test_gt.zip", "icdar2013", "icdar2013/test_gt.zip", None),
    ("ctw1500 test_gt.zip", "ctw1500", "ctw1500/test_gt.zip", None),
    ("totaltext test_gt.zip", "totaltext", "totaltext/test_gt.zip", None),
    ("totaltext mat_examples (.mat)", "totaltext", "totaltext/mat_examples", None),
    ("msra-td500 test (+ image headers)", "msra-td500", "msra-td500/test", None),
    ("msra-td500 train (+ image headers)", "msra-td500", "msra-td500/train", None),
    ("msra-td500 test_gt_ic15.zip", "icdar2015", "msra-td500/test_gt_ic15.zip", None),
]


def synthetic_samples(n: int, seed: int = 0) -> list[Sample]:
    """Samples shaped like synthtext-mini's (a few quads and curved 14-point
    polygons per 512 x 512 image), made here so the figure does not depend on
    the renderer."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        insts = []
        for _ in range(int(rng.integers(2, 9))):
            pts = 8 if rng.random() < 0.7 else 28
            poly = rng.uniform(0, 512, size=(pts // 2, 2)).round(2)
            insts.append(Instance(poly, bool(rng.random() < 0.1), "word"))
        out.append(Sample(f"{i:06d}", f"images/{i:06d}.jpg", 512, 512, insts))
    return out


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--synthetic", type=int, default=10_000)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"best of {args.repeat}")
    print(f"| {'data':38s} | {'format':10s} | {'seconds':>8s} | {'images':>6s} | {'inst.':>6s} | {'ign.':>5s} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 10}|{'-' * 8}|{'-' * 8}|{'-' * 7}|")

    def row(label: str, fmt: str, seconds: float, samples: list[Sample]) -> None:
        n_inst = sum(len(s.instances) for s in samples)
        n_ign = sum(s.num_ignored for s in samples)
        print(f"| {label:38s} | {fmt:10s} | {seconds:8.3f} | {len(samples):6d} | {n_inst:6d} | {n_ign:5d} |")

    for label, fmt, ann, images in SHARED:
        path = args.shared / ann
        if not path.exists():
            print(f"| {label:38s} | {fmt:10s} | missing: {path}")
            continue
        img = None if images is None else args.shared / images
        seconds, (samples, _) = timed(
            lambda f=fmt, p=path, i=img: read_annotations(f, p, images=i), args.repeat
        )
        row(label, fmt, seconds, samples)

    samples = synthetic_samples(args.synthetic)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "train.jsonl"
        w, _ = timed(lambda: write_jsonl(samples, out), args.repeat)
        seconds, (back, _) = timed(lambda: read_annotations("jsonl", out), args.repeat)
        row(f"{args.synthetic} synthetic samples (read)", "jsonl", seconds, back)
        row(f"{args.synthetic} synthetic samples (write_jsonl)", "jsonl", w, samples)
        print(f"\njsonl size: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
