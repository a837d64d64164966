"""Train the example's default weights and ship them in ``tcmbench_blobs/weights/``.

    python docs/examples/tcmbench_blobs/make_weights.py [--output DIR] [--threads N] [--json OUT]

Runs the user commands ``tcmbench train --plugin blobs --dataset synthtext-mini``
(the plugin's ``synthtext-mini`` recipe: MobileNetV3-small, 224-px crops,
from scratch, on the built-in synthetic images) and ``tcmbench evaluate`` of
its final checkpoint on the 200 test images, times both, then copies the
checkpoint into ``tcmbench_blobs/weights/``. Its ``config.json`` keeps what
the run recorded (``datasets: [synthtext-mini]``, recipe, hyper-parameters,
versions), so ``evaluate`` on real images warns that the weights are
synthetic-trained, gains the test figures under ``results``, and loses the
local paths of the run.

The package need not be installed: when no ``blobs`` detector is loaded,
the package beside this script is registered in-process, as its entry
point would register it. The data is generated (or found in the cache)
before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WEIGHTS_DIR = HERE / "tcmbench_blobs" / "weights"
#: The built-in detectors keep their shipped weights under this size.
MAX_BYTES = 10 * 1024 * 1024
DATASET = "synthtext-mini"


def register_blobs() -> None:
    """Load the plugin from this folder unless it is installed."""
    from tcmbench.contract.registry import detectors, get_plugin_manager

    if "blobs" in detectors():
        return
    sys.path.insert(0, str(HERE))
    import tcmbench_blobs

    get_plugin_manager().register(tcmbench_blobs, name="blobs")


def tcmbench(*args: str) -> float:
    """Run one tcmbench command in this process; its wall time in seconds.
    A failing command ends the script with its exit status."""
    from tcmbench.cli import main

    t0 = time.monotonic()
    try:
        main(list(args))
    except SystemExit as exc:
        if exc.code:
            raise
    return time.monotonic() - t0


def install(final: Path, result: dict[str, Any]) -> None:
    """Copy the checkpoint into the package, atomically, with its test
    figures and without the paths of this machine."""
    from tcmbench.safety.paths import atomic_dir

    config = json.loads((final / "config.json").read_text())
    for key in ("output", "resume", "data_root", "init_from"):
        if key in (config.get("train") or {}):
            config["train"][key] = None
    config["results"] = [
        {"dataset": DATASET, "split": "test"}
        | {k: result[k] for k in ("protocol", "precision", "recall", "hmean")}
    ]
    with atomic_dir(WEIGHTS_DIR) as tmp:
        for name in ("model.safetensors", "README.md"):
            shutil.copyfile(final / name, tmp / name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="runs/blobs-synthtext-mini", help="the run folder")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--no-install", action="store_true", help="train and score only; leave weights/ alone"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see tcmbench.cli
    register_blobs()
    from tcmbench.data.dataset import load_split

    t0 = time.monotonic()
    for split in ("train", "test"):
        load_split(DATASET, split, need_images=True)
    generate_s = time.monotonic() - t0

    out = Path(args.output)
    if out.exists():
        shutil.rmtree(out)
    threads = ["--threads", str(args.threads)] if args.threads else []
    load_before = os.getloadavg()[0]
    train_s = tcmbench(
        "train", "--plugin", "blobs", "--dataset", DATASET, "--output", str(out),
        "--device", args.device, "--no-tensorboard", *threads,
    )  # fmt: skip
    load_after = os.getloadavg()[0]
    report = out / "eval_test.json"
    eval_s = tcmbench(
        "evaluate", "--plugin", "blobs", "--dataset", DATASET, "--weights", str(out / "final"),
        "--device", args.device, "--batch-size", "4", "--no-cache", "--json", str(report),
    )  # fmt: skip
    result = json.loads(report.read_text())
    size = (out / "final" / "model.safetensors").stat().st_size
    figures = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core {platform.machine()}, device {args.device}",
        "threads": args.threads,
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "data_generation_s": round(generate_s, 1),
        "train_wall_s": round(train_s, 1),
        "eval_wall_s": round(eval_s, 1),
        "protocol": result["protocol"],
        "precision": result["precision"],
        "recall": result["recall"],
        "hmean": result["hmean"],
        "model_bytes": size,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.no_install:
        return 0
    if size > MAX_BYTES:
        print(f"not installing: {size} bytes > {MAX_BYTES}", file=sys.stderr)
        return 1
    install(out / "final", result)
    print(f"installed into {WEIGHTS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
