"""Detection scores of the models the project ships or imports, through the
real CLI: the P / R / H figures of docs/benchmarks.md.

    python benchmarks/bench_scores.py [--shared ../shared/data] [--only NAME,...]
        [--out scores.md] [--json scores.json]

Each case is one ``tcmbench evaluate ... --no-cache --json FILE`` process
(``--no-cache``: predictions are made again, never read from an earlier
run), timed end to end:

``dbnet-synth``, ``pan-synth``, ``fcenet-synth``
    each plugin's shipped weights (MobileNetV3-small, trained on
    synthtext-mini) on the 200 synthtext-mini test images, with the test
    settings the checkpoint records (what ``evaluate`` uses by default);
``fcenet-synth-recipe``
    the same FCENet weights with ``--recipe synthtext-mini`` (the recipe's
    post-processing, which differs from what its config.json records);
``dbnet-td500``
    the shipped DBNet weights on the 200 MSRA-TD500 test photos (the test
    settings the checkpoint records, evaluate's default; trained on
    synthetic scenes only, so the score is low: it shows what the weights
    are, not what DBNet can do);
``dbnet-td500-recipe``
    the same with ``--recipe msra-td500`` (the DBNet recipe's test size and
    post-processing for that dataset, as ``benchmarks/bench_onnx_runtime.py``
    runs it);
``ppocrv3-onnx``
    PaddleOCR's PP-OCRv3 detector (``models/ch_PP-OCRv3_det_infer.onnx``)
    through ``--plugin onnx`` on MSRA-TD500;
``ppocrv3-dbnet``
    the same file after ``tcmbench import ppocr`` (into a temporary
    folder), through ``--plugin dbnet``;
``ppocrv4-onnx``
    PP-OCRv4's detector from the ``rapidocr-onnxruntime`` wheel (when that
    package is installed) through ``--plugin onnx`` on MSRA-TD500.

Scores are deterministic on one machine (the same figures on every rerun);
the wall times are not, and the load average before and after each case is
recorded beside them. Cases whose data is missing under ``--shared`` are
skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PPOCR = "models/ch_PP-OCRv3_det_infer.onnx"


def cases(shared: Path, tmp: Path) -> dict[str, dict[str, Any]]:
    """Name -> the evaluate arguments, the shared files it needs, and an
    optional preparation command (run untimed)."""
    td500 = ["--dataset", "msra-td500", "--data-root", str(shared / "msra-td500")]
    out: dict[str, dict[str, Any]] = {}
    for plugin in ("dbnet", "pan", "fcenet"):
        out[f"{plugin}-synth"] = {
            "args": ["--plugin", plugin, "--dataset", "synthtext-mini"],
            "needs": [],
        }
    # FCENet's shipped config.json records other post-processing settings
    # than its synthtext-mini recipe; this case scores with the recipe's.
    out["fcenet-synth-recipe"] = {
        "args": ["--plugin", "fcenet", "--dataset", "synthtext-mini", "--recipe", "synthtext-mini"],
        "needs": [],
    }
    out["dbnet-td500"] = {
        "args": [
            "--plugin",
            "dbnet",
            "--weights",
            str(REPO / "plugins/tcmbench_dbnet/weights"),
            *td500,
        ],
        "needs": ["msra-td500"],
    }
    out["dbnet-td500-recipe"] = {
        "args": [*out["dbnet-td500"]["args"], "--recipe", "msra-td500"],
        "needs": ["msra-td500"],
    }
    out["ppocrv3-onnx"] = {
        "args": ["--plugin", "onnx", "--weights", str(shared / PPOCR), *td500],
        "needs": ["msra-td500", PPOCR],
    }
    out["ppocrv3-dbnet"] = {
        "prepare": ["import", "ppocr", str(shared / PPOCR), "--out", str(tmp / "ppocrv3")],
        "args": ["--plugin", "dbnet", "--weights", str(tmp / "ppocrv3"), *td500],
        "needs": ["msra-td500", PPOCR],
    }
    # An optional reference model, found without importing its package.
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is not None and spec.origin:
        v4 = Path(spec.origin).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    else:
        v4 = shared / "rapidocr-onnxruntime is not installed"
    out["ppocrv4-onnx"] = {
        "args": ["--plugin", "onnx", "--weights", str(v4), *td500],
        "needs": ["msra-td500", str(v4)],
    }
    return out


def tcmbench(args: list[str]) -> None:
    """Run the CLI as a user does; its own output goes to stderr here."""
    subprocess.run(
        [sys.executable, "-m", "tcmbench", *args, "--no-progress"]
        if args[0] == "evaluate"
        else [sys.executable, "-m", "tcmbench", *args],
        check=True,
        stdout=sys.stderr,
    )


def weights_bytes(args: list[str]) -> int | None:
    """Size of the model file a case evaluates (the plugin's shipped one
    when ``--weights`` is not given)."""
    if "--weights" in args:
        path = Path(args[args.index("--weights") + 1])
    else:
        path = REPO / "plugins" / f"tcmbench_{args[args.index('--plugin') + 1]}" / "weights"
    if path.is_dir():
        path = path / "model.safetensors"
    return path.stat().st_size if path.is_file() else None


def run_case(name: str, case: dict[str, Any], tmp: Path) -> dict[str, Any]:
    if case.get("prepare"):
        tcmbench(case["prepare"])
    result_file = tmp / f"{name}.json"
    load_before = os.getloadavg()
    t0 = time.monotonic()
    tcmbench(["evaluate", *case["args"], "--no-cache", "--json", str(result_file)])
    wall = time.monotonic() - t0
    figures = json.loads(result_file.read_text(encoding="utf-8"))
    return {
        "name": name,
        "command": "tcmbench evaluate " + " ".join(case["args"]) + " --no-cache",
        "wall_s": wall,
        "weights_bytes": weights_bytes(case["args"]),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "figures": figures,
    }


def _pick(figures: dict[str, Any], key: str) -> float | None:
    """A figure from evaluate's JSON, at the top or under its protocol's result."""
    for where in (figures, figures.get("result") or {}, figures.get("metrics") or {}):
        if isinstance(where, dict) and isinstance(where.get(key), int | float):
            return float(where[key])
    return None


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| case | images | precision | recall | hmean | detections (care) | matched "
            "| weights MB | inference s | wall s (load before -> after) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        f = row["figures"]
        p, r, h = (_pick(f, k) for k in ("precision", "recall", "hmean"))
        cells = [f"{v:.4f}" if v is not None else "?" for v in (p, r, h)]
        load = f"{row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f}"
        infer = _pick(f, "inference_seconds")
        size = f"{row['weights_bytes'] / 1e6:.1f}" if row["weights_bytes"] else "?"
        lines.append(
            f"| {row['name']} | {f.get('images', '?')} | {' | '.join(cells)} | "
            f"{f.get('num_det', '?')} ({f.get('num_det_care', '?')}) | {f.get('num_matched', '?')} | {size} | "
            f"{infer if infer is not None else '?'} | {row['wall_s']:.1f} ({load}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", default="", help="Comma-separated case names (default: all).")
    ap.add_argument("--out", type=Path, help="Write the markdown table here too.")
    ap.add_argument("--json", type=Path, help="Write every figure and timing here.")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scores-") as tmp_name:
        tmp = Path(tmp_name)
        every = cases(args.shared, tmp)
        wanted = [n for n in args.only.split(",") if n] or list(every)
        unknown = sorted(set(wanted) - set(every))
        if unknown:
            ap.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(every)}")
        for name in wanted:
            missing = [n for n in every[name]["needs"] if not (args.shared / n).exists()]
            if missing:
                print(
                    f"skipped {name}: {', '.join(missing)} not under {args.shared}", file=sys.stderr
                )
                continue
            rows.append(run_case(name, every[name], tmp))

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}"
    text = f"# tcmbench scores, {stamp}, {machine}\n\n{table(rows)}\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        payload = {"date": stamp, "machine": machine, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
