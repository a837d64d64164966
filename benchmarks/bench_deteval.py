"""Benchmark of the DetEval protocols (not a test; see docs/benchmarks/deteval.md).

Two measurements:

1. ``baseline``: ``totaltext-deteval`` on the Total-Text baseline detections
   as a whole ``tcmbench score`` process (start-up, reading the zips,
   scoring), median of ``--repeat`` runs. ``--official-cmd`` times another
   command the same way, side by side: the official Deteval.py, which this
   project does not ship (fetch cs-chan/Total-Text-Dataset yourself, give
   it GT ``.mat`` files and y,x prediction files, and pass the command).
2. ``stress``: the deterministic stress set (benchmarks/stress_set.py,
   10,000 images x 50 curved 14-point polygons) scored by
   ``totaltext-deteval``: the time with the set already in memory (wall and
   CPU), then the peak memory when the set is streamed (generated per image
   on access) at two sizes, each in its own process, to show it does not
   grow with the number of images. A straightforward shapely pairwise loop
   (every GT x detection pair, ``Polygon(..).buffer(0).intersection(..)`` as
   the official script does, then the same matching) scores the first
   ``--baseline-images`` images; the per-image CPU ratio is printed.

Usage::

    python benchmarks/bench_deteval.py baseline [--repeat 5] [--official-cmd "python Deteval.py ..."]
    python benchmarks/bench_deteval.py stress [--images 10000] [--baseline-images 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TCMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _run_timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def _time_side_by_side(cmds: dict[str, list[str]], repeat: int) -> dict[str, dict[str, Any]]:
    """Median wall and CPU time of each command, runs interleaved so that a
    change of machine load hits all commands alike."""
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    outputs: dict[str, str] = {}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            wall, cpu, out = _run_timed(cmd)
            runs[name].append((wall, cpu))
            outputs[name] = out
    return {
        name: {
            "wall_s": round(statistics.median(w for w, _ in r), 3),
            "cpu_s": round(statistics.median(c for _, c in r), 3),
            "output": outputs[name].strip()[-300:],
        }
        for name, r in runs.items()
    }


def _score_cmd(gt: Path, pred: Path) -> list[str]:
    """``tcmbench score`` when the command exists, else the same work
    (read both zips, score) in a bare Python process."""
    import importlib.util

    if importlib.util.find_spec("tcmbench.commands.score") is not None:
        exe = Path(sys.executable).with_name("tcmbench")
        return [
            str(exe),
            "score",
            "--protocol",
            "totaltext-deteval",
            "--gt",
            str(gt),
            "--pred",
            str(pred),
            "--pred-order",
            "xy",
        ]
    code = (
        "import sys, zipfile, numpy as np\n"
        "from tcmbench.data.formats.api import read_annotations\n"
        "from tcmbench.data.schema import Prediction\n"
        "from tcmbench.eval.api import evaluate\n"
        "samples, _ = read_annotations('totaltext', sys.argv[1])\n"
        "z = zipfile.ZipFile(sys.argv[2])\n"
        "pred = {n[:-4]: [Prediction(np.array([float(v) for v in l.split(',')]))\n"
        "        for l in z.read(n).decode().splitlines() if l.strip()] for n in z.namelist()}\n"
        "r = evaluate(samples, pred, protocol='totaltext-deteval')\n"
        "print(r.precision, r.recall, r.hmean)\n"
    )
    return [sys.executable, "-c", code, str(gt), str(pred)]


def bench_baseline(args: argparse.Namespace) -> dict[str, Any]:
    gt, pred = SHARED / "totaltext" / "test_gt.zip", SHARED / "totaltext" / "baseline_det.zip"
    if not gt.exists() or not pred.exists():
        raise SystemExit(
            f"Total-Text reference files not found under {SHARED} (set TCMBENCH_SHARED_DATA)"
        )
    cmds = {"tcmbench": _score_cmd(gt, pred)}
    if args.official_cmd:
        cmds["official"] = shlex.split(args.official_cmd)
    report: dict[str, Any] = {
        "commands": {k: shlex.join(v) for k, v in cmds.items()},
        "load_average_before": os.getloadavg(),
    }
    report.update(_time_side_by_side(cmds, args.repeat))
    ours = report["tcmbench"]
    print(
        f"tcmbench (whole process, median of {args.repeat}): {ours['wall_s']:.3f} s wall, "
        f"{ours['cpu_s']:.3f} s CPU"
    )
    if "official" in report:
        off = report["official"]
        report["speedup_wall"] = round(off["wall_s"] / ours["wall_s"], 1)
        report["speedup_cpu"] = round(off["cpu_s"] / ours["cpu_s"], 1)
        print(
            f"official (whole process, median of {args.repeat}): {off['wall_s']:.3f} s wall, "
            f"{off['cpu_s']:.3f} s CPU -> {report['speedup_wall']}x wall, {report['speedup_cpu']}x CPU"
        )
    return report


# --------------------------------------------------------------------------- stress


class _LazyGT(Mapping[str, list[Any]]):
    """Ground truth of the stress set, regenerated per access (flat memory)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, key: str) -> list[Any]:
        from stress_set import stress_image

        return stress_image(int(key.rsplit("_", 1)[1]))[1]

    def __iter__(self) -> Iterator[str]:
        return (f"stress_{i}" for i in range(self.n))

    def __len__(self) -> int:
        return self.n


def _speed_child(n: int) -> dict[str, Any]:
    """Scoring time: the set generated beforehand in memory, so the figure
    is evaluation alone (as a user's predictions are already loaded)."""
    from stress_set import stress_image

    from tcmbench.eval.deteval import evaluate_totaltext_deteval

    gt, preds = {}, {}
    for i in range(n):
        sid, inst, pred = stress_image(i)
        gt[sid], preds[sid] = inst, pred
    load = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    r = evaluate_totaltext_deteval(gt, preds)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "images": n,
        "load_average_before": round(load, 1),
        "scoring_s": round(wall, 2),
        "scoring_cpu_s": round(cpu, 2),
        "precision": r.precision,
        "recall": r.recall,
        "hmean": r.hmean,
    }


def _memory_child(n: int) -> dict[str, Any]:
    """Peak memory when the set is streamed (generated per image on access)
    and scored without per-image match lists: it must not grow with n."""
    from stress_set import stress_inputs

    from tcmbench.eval.deteval import evaluate_totaltext_deteval

    _, preds = stress_inputs(n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = evaluate_totaltext_deteval(_LazyGT(n), preds, details=False)
    return {
        "images": n,
        "rss_before_mb": round(base, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "precision": r.precision,
        "recall": r.recall,
    }


def _naive_child(n: int) -> dict[str, Any]:
    """The straightforward loop: every pair through shapely, one by one."""
    import numpy as np
    from shapely.geometry import Polygon
    from stress_set import stress_image

    from tcmbench.eval.deteval import match_totaltext

    rule = {"tr": 0.7, "tp": 0.6, "k": 2, "penalty": 0.8}
    images = [stress_image(i) for i in range(n)]
    acc_r = acc_p = 0.0
    n_gt = n_det = 0
    t, c = time.perf_counter(), time.process_time()
    for _, gts, dets in images:
        gpolys = [Polygon(g.polygon.astype(float)) for g in gts]
        dpolys = [Polygon(d.polygon) for d in dets]
        inter = np.zeros((len(gpolys), len(dpolys)))
        for i, g in enumerate(gpolys):
            for j, d in enumerate(dpolys):
                inter[i, j] = d.buffer(0).intersection(g.buffer(0)).area
        dc = np.array([g.ignore for g in gts])
        d_area = np.array([d.area for d in dpolys])
        keep = ~((inter[dc] / (d_area + 1.0)) > 0.5).any(axis=0)
        g_area = np.array([g.area for g in gpolys])[~dc]
        sub = inter[~dc][:, keep]
        sigma = np.round(sub / g_area[:, None], 2)
        tau = np.round(sub / d_area[keep][None, :], 2)
        scored = match_totaltext(sigma, tau, **rule)
        acc_r += sum(scored.recall_credits)
        acc_p += sum(scored.precision_credits)
        n_gt += sigma.shape[0]
        n_det += sigma.shape[1]
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "images": n,
        "naive_s": round(elapsed, 2),
        "naive_cpu_s": round(cpu, 2),
        "recall": acc_r / n_gt,
        "precision": acc_p / n_det,
    }


def _child(kind: str, n: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_child", kind, str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_stress(args: argparse.Namespace) -> dict[str, Any]:
    speed = _child("speed", args.images)
    memory = [_child("memory", n) for n in (max(1, args.images // 10), args.images)]
    naive = _child("naive", args.baseline_images)
    same = _child("speed", args.baseline_images)
    per_naive = naive["naive_cpu_s"] / naive["images"]
    per_fast = same["scoring_cpu_s"] / same["images"]
    report = {
        "speed": speed,
        "memory": memory,
        "naive": naive,
        "fast_on_naive_subset": same,
        "ratio_per_image_cpu": round(per_naive / max(per_fast, 1e-9), 1),
        "naive_extrapolated_full_cpu_s": round(per_naive * args.images, 1),
    }
    print(
        f"stress set, {speed['images']} images: scoring {speed['scoring_s']} s wall, "
        f"{speed['scoring_cpu_s']} s CPU (load average {speed['load_average_before']})"
    )
    print(
        "streamed, without per-image match lists: peak RSS "
        + ", ".join(f"{m['peak_rss_mb']} MB for {m['images']} images" for m in memory)
    )
    print(
        f"naive shapely pairwise loop on {naive['images']} images: {naive['naive_s']} s wall, "
        f"{naive['naive_cpu_s']} s CPU (~{report['naive_extrapolated_full_cpu_s']} s CPU for {args.images}); "
        f"tcmbench on the same images: {same['scoring_cpu_s']} s CPU -> ratio {report['ratio_per_image_cpu']}x"
    )
    agree = (
        abs(naive["precision"] - same["precision"]) < 1e-9
        and abs(naive["recall"] - same["recall"]) < 1e-9
    )
    print(f"same figures as the naive loop on its subset: {agree}")
    return report


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        kind, n = argv[1], int(argv[2])
        child = {"speed": _speed_child, "memory": _memory_child, "naive": _naive_child}[kind]
        print(json.dumps(child(n)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("baseline")
    b.add_argument("--repeat", type=int, default=5)
    b.add_argument(
        "--official-cmd",
        default=None,
        help="command line of the official Deteval.py run to compare",
    )
    s = sub.add_parser("stress")
    s.add_argument("--images", type=int, default=10_000)
    s.add_argument("--baseline-images", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"machine: {_machine()}; {time.strftime('%Y-%m-%d')}")
    report = bench_baseline(args) if args.what == "baseline" else bench_stress(args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
