"""Train the embedded default DBNet on synthtext-mini, time it, score it.

    python benchmarks/train_synthtext_mini.py [--output DIR] [--install] [--json OUT] [-- extra train options]

Runs exactly the user command ``tcmbench train --plugin dbnet --dataset
synthtext-mini`` (the plugin's ``synthtext-mini`` recipe: MobileNetV3-small
DBNet, 224-px crops, from scratch) as a subprocess and times its wall clock,
then ``tcmbench evaluate`` on the 200 test images with the dataset's
protocol. The data is generated (or found in the cache) before the clock
starts. ``--install`` copies the final checkpoint (<= 10 MB) into
``plugins/tcmbench_dbnet/weights/``, where ``tcmbench evaluate --plugin dbnet
--dataset synthtext-mini`` finds it without ``--weights``.

OpenMP: on a shared or oversubscribed CPU, spinning OpenMP threads slow
torch down by an order of magnitude; ``OMP_WAIT_POLICY=PASSIVE`` (set here
unless already set) avoids that at little cost on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO / "plugins" / "tcmbench_dbnet" / "weights"
MAX_BYTES = 10 * 1024 * 1024


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "tcmbench", *args], check=True, env=env)
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default=str(REPO / "runs" / "dbnet-synthtext-mini-default"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for training")
    parser.add_argument(
        "--install", action="store_true", help="copy the final checkpoint into the plugin package"
    )
    parser.add_argument(
        "--skip-train",
        action="store_true",
        help="re-use --output from an earlier run (evaluate / install only)",
    )
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("extra", nargs="*", help="extra `tcmbench train` options (after --)")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    # Generate (or find) the data before timing: generation is a one-off.
    t0 = time.monotonic()
    from tcmbench.data.dataset import load_split

    for split in ("train", "test"):
        load_split("synthtext-mini", split, need_images=True)
    gen_s = time.monotonic() - t0

    out = Path(args.output)
    load_before = os.getloadavg()
    train_s = None
    if not args.skip_train:
        if out.exists():
            shutil.rmtree(out)
        train_s = round(
            _run(
                [
                    "train",
                    "--plugin",
                    "dbnet",
                    "--dataset",
                    "synthtext-mini",
                    "--output",
                    str(out),
                    "--device",
                    "cpu",
                    *args.extra,
                ],
                env,
            ),
            1,
        )
    load_after = os.getloadavg()
    result_json = out / "eval_test.json"
    eval_s = _run(
        [
            "evaluate",
            "--plugin",
            "dbnet",
            "--dataset",
            "synthtext-mini",
            "--weights",
            str(out / "final"),
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--no-cache",
            "--json",
            str(result_json),
        ],
        env,
    )
    result = json.loads(result_json.read_text())
    size = (out / "final" / "model.safetensors").stat().st_size

    figures = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core CPU, no GPU ({platform.processor() or platform.machine()})",
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "omp": {k: env.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
        "data_generation_s": round(gen_s, 1),
        "train_wall_s": train_s,
        "eval_wall_s": round(eval_s, 1),
        "precision": result["precision"],
        "recall": result["recall"],
        "hmean": result["hmean"],
        "protocol": result["protocol"],
        "model_bytes": size,
        "command": "tcmbench train --plugin dbnet --dataset synthtext-mini " + " ".join(args.extra),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.install:
        if size > MAX_BYTES:
            print(f"not installing: {size} bytes > {MAX_BYTES}", file=sys.stderr)
            return 1
        from tcmbench.safety.paths import atomic_dir

        config = json.loads((out / "final" / "config.json").read_text())
        for key in ("output", "resume", "data_root"):  # no local paths in the package
            (config.get("train") or {})[key] = None
        config["results"] = [
            {
                "dataset": "synthtext-mini",
                "split": "test",
                "protocol": result["protocol"],
                "precision": result["precision"],
                "recall": result["recall"],
                "hmean": result["hmean"],
            }
        ]
        with atomic_dir(WEIGHTS_DIR) as tmp:
            for name in ("model.safetensors", "README.md"):
                shutil.copyfile(out / "final" / name, tmp / name)
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        print(f"installed into {WEIGHTS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
