"""How long loading a dataset split takes, per reader, on the shared real
data and on 10,000 generated synthtext-mini samples.

    .venv/bin/python benchmarks/bench_readers.py [--repeat 5] [--shared ../shared/data]
        [--synth-n 10000] [--synth-cache DIR] [--out table.md]

Every row times :func:`tcmbench.data.dataset.load_split` -- what
``tcmbench datasets stats`` and evaluation do: YAML lookup, root and split
resolution, then the format's reader -- best of N runs after one warm-up.
Two rows time the ``hf`` reader on a parquet export of msra-td500 test
(images embedded; with and without writing the images back to the cache).
The synthtext-mini rows generate N images with the real generator into a
cache folder (timed once: that is rendering, not reading), then time
reading them back through the ``jsonl`` reader the cache uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# (label, dataset, split, data root relative to the shared data)
SHARED_ROWS = [
    ("icdar2015 test_gt.zip", "icdar2015", "test", "icdar2015/test_gt.zip"),
    ("icdar2015-toy (GT + images)", "icdar2015", "train", "icdar2015-toy"),
    ("icdar2013 test_gt.zip", "icdar2013", "test", "icdar2013/test_gt.zip"),
    ("ctw1500 test_gt.zip", "ctw1500", "test", "ctw1500/test_gt.zip"),
    ("totaltext test_gt.zip", "totaltext", "test", "totaltext/test_gt.zip"),
    (
        "totaltext mat_examples/Groundtruth (.mat)",
        "totaltext",
        "test",
        "totaltext/mat_examples/Groundtruth",
    ),
    ("msra-td500 test (GT + images)", "msra-td500", "test", "msra-td500"),
    ("msra-td500 train (GT + images)", "msra-td500", "train", "msra-td500"),
]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best, median) seconds over ``repeat`` runs after one warm-up."""
    result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), result


def counts(samples: list[Any]) -> tuple[int, int, int]:
    return (
        len(samples),
        sum(len(s.instances) for s in samples),
        sum(s.num_ignored for s in samples),
    )


def row(label: str, reader: str, best: float, median: float, samples: list[Any]) -> list[str]:
    n, inst, ign = counts(samples)
    rate = f"{n / best:,.0f}" if best > 0 else "-"
    return [
        label,
        reader,
        f"{best * 1000:.1f}",
        f"{median * 1000:.1f}",
        str(n),
        str(inst),
        str(ign),
        rate,
    ]


def bench_shared(shared: Path, repeat: int) -> list[list[str]]:
    from tcmbench.data.dataset import get_dataset_config, load_split

    rows = []
    for label, name, split, rel in SHARED_ROWS:
        root = shared / rel
        if not root.exists():
            rows.append([label, get_dataset_config(name).format, "absent", "", "", "", "", ""])
            continue
        best, med, (samples, _) = timed(
            lambda name=name, split=split, root=root: load_split(name, split, data_root=root),
            repeat,
        )
        rows.append(row(label, get_dataset_config(name).format, best, med, samples))
    return rows


def bench_hf(shared: Path, repeat: int, work: Path) -> list[list[str]]:
    from tcmbench.data.dataset import load_split
    from tcmbench.data.hf import export_parquet, load_hf

    root = shared / "msra-td500"
    if not root.exists():
        return []
    samples, _ = load_split("msra-td500", "test", data_root=root)
    t = time.perf_counter()
    export_parquet(samples, work / "hf", split="test", progress=False)
    export_s = time.perf_counter() - t
    rows = [
        row(
            "msra-td500 test -> parquet (export_parquet, once)",
            "hf write",
            export_s,
            export_s,
            samples,
        )
    ]
    for label, materialize in (("annotations only", False), ("+ images to cache", True)):
        best, med, (back, _) = timed(
            lambda m=materialize: load_hf(work / "hf", split="test", materialize_images=m), repeat
        )
        rows.append(row(f"msra-td500 test parquet ({label})", "hf", best, med, back))
    return rows


def bench_synth(n: int, repeat: int, cache: Path) -> list[list[str]]:
    from tcmbench.data.formats.api import read_annotations
    from tcmbench.data.synthetic.generate import load_synthtext_mini, split_dir

    t = time.perf_counter()
    samples = load_synthtext_mini("train", num_images=n, cache_dir=cache)
    gen_s = time.perf_counter() - t
    folder = split_dir("train", 0, n, cache)
    jsonl = folder / "train.jsonl"
    rows = [row(f"synthtext-mini {n} (generate + cache, once)", "generator", gen_s, gen_s, samples)]
    best, med, back = timed(
        lambda: load_synthtext_mini("train", num_images=n, cache_dir=cache), repeat
    )
    rows.append(
        row(f"synthtext-mini {n} from cache (load_synthtext_mini)", "jsonl", best, med, back)
    )
    best, med, (back, _) = timed(lambda: read_annotations("jsonl", jsonl), repeat)
    rows.append(row(f"synthtext-mini {n} train.jsonl (read_annotations)", "jsonl", best, med, back))
    best, med, (back, _) = timed(
        lambda: read_annotations("jsonl", jsonl, images=folder / "images"), repeat
    )
    rows.append(row(f"synthtext-mini {n} train.jsonl + image folder", "jsonl", best, med, back))
    return rows


def markdown(rows: list[list[str]]) -> str:
    headers = [
        "data",
        "reader",
        "best ms",
        "median ms",
        "images",
        "instances",
        "ignored",
        "images/s",
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--synth-n", type=int, default=10_000, help="synthtext-mini images (0: skip)")
    ap.add_argument(
        "--synth-cache", type=Path, help="keep the generated images here (reused when complete)"
    )
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-readers-"))
    os.environ.setdefault("TCMBENCH_CACHE", str(work / "cache"))
    try:
        rows = bench_shared(args.shared, args.repeat)
        rows += bench_hf(args.shared, args.repeat, work)
        if args.synth_n > 0:
            rows += bench_synth(args.synth_n, args.repeat, args.synth_cache or work / "synth")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = markdown(rows)
    header = (
        f"{dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU(s), Python {platform.python_version()}, repeat={args.repeat}"
    )
    text = f"{header}\n\n{table}\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
