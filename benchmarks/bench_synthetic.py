"""synthtext-mini: generation time per image and cached read time.

    .venv/bin/python benchmarks/bench_synthetic.py [--gen-images 200] [--read-samples 10000]
        [--base-images 500] [--full] [--repeat 3] [--json OUT]

1. Generation: ``load_synthtext_mini("test", num_images=G)`` into an empty
   temporary cache, timed end to end (render, camera / night effects, JPEG
   encode, write, annotation file), plus the per-stage split measured on
   the same images.
2. Reading: ``load_synthtext_mini("train", num_images=N)`` served from a
   complete N-image cache folder, best of ``--repeat`` (plus the registered
   ``synthtext-mini`` reader on the same folder). Making N = 10,000 real
   images costs minutes of CPU, so by default the folder is assembled from
   ``--base-images`` really generated images: the N records cycle over
   them with their own ids, and the image files are hard links. The folder,
   its ``train.jsonl`` and ``meta.json`` are exactly what a generation
   writes, and reading never opens the pixels, so the read figure is the
   same; ``--full`` generates all N images for real instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from tcmbench.data.schema import Sample
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.data.synthetic import generate
from tcmbench.data.synthetic.generate import (
    IMAGE_EXTENSION,
    NIGHT_SUFFIX,
    encode_jpeg,
    load_synthtext_mini,
    sample_id,
    split_dir,
    synthesize,
    write_split_files,
)
from tcmbench.safety.paths import atomic_dir


def bench_generation(cache: Path, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    samples = load_synthtext_mini("test", num_images=n, cache_dir=cache)
    total = time.perf_counter() - t0
    assert len(samples) == n
    render = encode = 0.0
    for i in range(n):
        t = time.perf_counter()
        item = synthesize(0, "test", i)
        render += time.perf_counter() - t
        t = time.perf_counter()
        encode_jpeg(item.pixels, item.jpeg_quality)
        encode += time.perf_counter() - t
    return {
        "images": n,
        "total_s": total,
        "ms_per_image": 1000 * total / n,
        "render_ms_per_image": 1000 * render / n,
        "jpeg_ms_per_image": 1000 * encode / n,
        "instances_per_image": sum(len(s.instances) for s in samples) / n,
    }


def assemble_cache(cache: Path, n: int, base_images: int) -> list[Sample]:
    """An n-image train cache folder whose records cycle over base_images
    really generated ones (image files hard-linked, ids renumbered)."""
    base = load_synthtext_mini("train", num_images=base_images, cache_dir=cache)
    folder = split_dir("train", 0, n, cache)
    with atomic_dir(folder) as tmp:
        images = tmp / "images"
        images.mkdir()
        samples = []
        for k in range(n):
            src = base[k % len(base)]
            sid = sample_id("train", k, src.id.endswith(NIGHT_SUFFIX))
            path = images / f"{sid}{IMAGE_EXTENSION}"
            os.link(src.image_path, path)
            samples.append(Sample(sid, str(path), src.width, src.height, src.instances))
        write_split_files(tmp, "train", 0, samples)
    return samples


def bench_read(cache: Path, n: int, repeat: int) -> dict[str, float]:
    calls = {"synthesize": 0}
    real = generate.synthesize

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["synthesize"] += 1
        return real(*args, **kwargs)

    generate.synthesize = counting
    try:
        api, reader = [], []
        from tcmbench.contract.registry import get_dataset_format

        fmt = get_dataset_format("synthtext-mini")
        for _ in range(repeat):
            t = time.perf_counter()
            samples = load_synthtext_mini("train", num_images=n, cache_dir=cache)
            api.append(time.perf_counter() - t)
            t = time.perf_counter()
            with AnnotationSource(split_dir("train", 0, n, cache)) as source:
                via_reader = fmt.reader(source, None, ParseReport())
            reader.append(time.perf_counter() - t)
    finally:
        generate.synthesize = real
    assert calls["synthesize"] == 0, "the read benchmark regenerated images"
    assert len(samples) == n and len(via_reader) == n
    return {
        "samples": n,
        "instances": sum(len(s.instances) for s in samples),
        "load_synthtext_mini_s": min(api),
        "reader_s": min(reader),
        "us_per_sample": 1e6 * min(api) / n,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen-images", type=int, default=200)
    ap.add_argument("--read-samples", type=int, default=10_000)
    ap.add_argument("--base-images", type=int, default=500)
    ap.add_argument(
        "--full", action="store_true", help="generate all --read-samples images for real"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        cache = Path(tmp)
        gen = bench_generation(cache / "gen", args.gen_images)
        t = time.perf_counter()
        if args.full:
            load_synthtext_mini("train", num_images=args.read_samples, cache_dir=cache / "read")
        else:
            assemble_cache(cache / "read", args.read_samples, args.base_images)
        build_s = time.perf_counter() - t
        read = bench_read(cache / "read", args.read_samples, args.repeat)

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU(s), "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    result = {
        "date": date.today().isoformat(),
        "machine": machine,
        "generation": gen,
        "read": read,
        "cache_build_s": build_s,
        "full": args.full,
    }
    print(f"# synthtext-mini benchmark, {result['date']}, {machine}")
    print(
        f"generation: {gen['images']} images in {gen['total_s']:.1f} s "
        f"= {gen['ms_per_image']:.1f} ms/image (render {gen['render_ms_per_image']:.1f}, "
        f"JPEG {gen['jpeg_ms_per_image']:.1f}; {gen['instances_per_image']:.2f} instances/image)"
    )
    how = "full generation" if args.full else f"{args.base_images} generated + links"
    print(
        f"read {read['samples']} samples ({read['instances']} instances) from the cache: "
        f"load_synthtext_mini {read['load_synthtext_mini_s']:.3f} s "
        f"({read['us_per_sample']:.0f} us/sample), registered reader {read['reader_s']:.3f} s "
        f"(best of {args.repeat}); cache built in {build_s:.1f} s ({how})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
