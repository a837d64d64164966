"""Speed of scoring against the official scripts, in one run.

Measures (results go to docs/benchmarks/eval.md):

1. ``icdar2015`` on the 500-image PixelLink submission, in-process
   (``evaluate()`` on already-read files; target < 0.05 s).
2. The three official comparisons as whole processes, side by side and
   interleaved (official, tcmbench, official, ...), so that a change of the
   machine's load hits both alike:

   - ``tcmbench score -p icdar2015`` on the PixelLink submission against
     the RRC ``script.py`` (target: >= 2x faster);
   - ``tcmbench score -p totaltext-deteval`` on the Total-Text baseline
     against Total-Text's ``Deteval.py`` (target: >= 20x);
   - ``tcmbench score -p ctw1500-iou`` on the CTW1500 example detections
     against TIoU-metric's curved ``script.py`` (target: >= 8x).

   ``tcmbench score`` runs as a user runs it (``--workers auto``: on Linux
   a second process reads the predictions and scores part of the images,
   tcmbench/eval/workers.py) and in one process (``--workers 1``), both
   interleaved with the official script; the ratio is given for both.

   Each command runs once untimed, then ``--repeat`` times; the table gives
   the median wall time (and CPU time, user + sys), the ratios and whether
   the printed figures agree. Every process is started with Python's
   bytecode cache on (``PYTHONPYCACHEPREFIX`` in a temporary folder, even
   where ``PYTHONDONTWRITEBYTECODE`` is set), as an installed package and
   the scripts run.
3. The stress set (benchmarks/stress_set.py: 10,000 images x 50 curved
   14-point polygons) scored by ``ctw1500-iou`` (target < 30 s), its peak
   memory at 1/10 and all of the images (flat), and a straightforward
   shapely pair-by-pair loop on a subset, extrapolated, with the ratio.

The official scripts are not part of tcmbench (Python 2 code under their
authors' terms): pass the folders of local Python 3 ports with
``--official-rrc`` / ``--official-curved`` (``script.py`` +
``rrc_evaluation_funcs.py``) and ``--official-deteval`` (``Deteval.py`` +
``polygon_fast.py``, taking the prediction folder, the GT folder and the
result file from its command line); they need Polygon3 / shapely / scipy.
The DetEval inputs (GT ``.mat`` files, ``y,x`` prediction files) are
written from the shared zips by this script. docs/benchmarks/eval.md says
how the ports were made. Sections whose inputs are missing are skipped with
a note.

The run's figures, the date, the machine (platform, CPU count, load
average before and after) go to stdout as a markdown table and to
``--out`` as JSON.

    python benchmarks/bench_eval.py --official-rrc /work/official/rrc \\
        --official-curved /work/official/curved \\
        --official-deteval /work/official/deteval --skip-stress --out eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
DATA = Path(os.environ.get("TCMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


def best_of(fn, repeat: int) -> tuple[float, float]:
    """Fastest wall time and the CPU time of that run."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        if w < best[0]:
            best = (w, c)
    return best


def section_icdar2015_in_process(repeat: int) -> list[str]:
    from tcmbench.eval import evaluate
    from tcmbench.eval.io import read_ground_truth, read_predictions

    gt, _ = read_ground_truth(DATA / "icdar2015/test_gt.zip", "icdar2015")
    preds, _ = read_predictions(DATA / "icdar2015/pixellink_submit.zip", style="rrc")
    result = evaluate(gt, preds, "icdar2015")
    wall, cpu = best_of(lambda: evaluate(gt, preds, "icdar2015"), repeat)
    wall_nd, cpu_nd = best_of(lambda: evaluate(gt, preds, "icdar2015", details=False), repeat)
    return [
        (
            f"| icdar2015, PixelLink (500 images), `evaluate()` in-process | {wall:.4f} s "
            f"(CPU {cpu:.4f} s); details=false: {wall_nd:.4f} s (CPU {cpu_nd:.4f} s) | | "
            f"H = {result.hmean!r} | < 0.05 s |"
        )
    ]


def child_env(pycache: str) -> dict[str, str]:
    """The environment of every timed process: bytecode cached (in
    ``pycache``), as for an installed package; nothing else changed."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time, CPU time (user + sys) and stdout of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, -6, 134):  # Polygon3 may abort at exit (PROTOCOLS.md)
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return wall, cpu, proc.stdout


def write_deteval_inputs(gt_zip: Path, pred_zip: Path, out: Path) -> tuple[Path, Path]:
    """Total-Text's ``Deteval.py`` inputs from the shared zips: one
    ``poly_gt_imgN.mat`` per image (variable ``polygt``, rows ['x:', xs,
    'y:', ys, text, '#' for a ``###`` don't care else 'c']) and the
    predictions as ``y,x`` lines (the script's order)."""
    import zipfile

    import numpy as np
    from scipy import io as sio

    gt_dir, pred_dir = out / "gt", out / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    with zipfile.ZipFile(gt_zip) as z:
        for name in z.namelist():
            rows = []
            for line in z.read(name).decode("utf-8-sig").splitlines():
                if not line.strip():
                    continue
                *coords, text = line.split(",")
                xy = np.array([int(v) for v in coords], dtype=np.int16).reshape(-1, 2)
                rows.append(
                    [
                        "x:",
                        xy[None, :, 0],
                        "y:",
                        xy[None, :, 1],
                        text,
                        "#" if text == "###" else "c",
                    ]
                )
            table = np.empty((len(rows), 6), dtype=object)
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    table[i, j] = value
            sio.savemat(str(gt_dir / (Path(name).stem + ".mat")), {"polygt": table})
    with zipfile.ZipFile(pred_zip) as z:
        for name in z.namelist():
            lines = []
            for line in z.read(name).decode().splitlines():
                if line.strip():
                    v = line.split(",")
                    lines.append(",".join(c for pair in zip(v[1::2], v[0::2]) for c in pair))
            (pred_dir / name).write_text("".join(f"{x}\n" for x in lines))
    return gt_dir, pred_dir


OFFICIAL_SETS = {
    # set: (protocol, GT, predictions, extra score options, target ratio)
    "icdar2015": ("icdar2015", "icdar2015/test_gt.zip", "icdar2015/pixellink_submit.zip", [], 2.0),
    "totaltext": (
        "totaltext-deteval",
        "totaltext/test_gt.zip",
        "totaltext/baseline_det.zip",
        ["--pred-order", "xy"],
        20.0,
    ),
    "ctw1500": ("ctw1500-iou", "ctw1500/test_gt.zip", "ctw1500/example_det.zip", [], 8.0),
}


def _precision_recall(text: str) -> tuple[float, float] | None:
    """The first precision and recall a script printed (tcmbench's table
    row, the RRC / curved scripts' tuples, Deteval.py's last line)."""
    import re

    row = re.search(r"^\| [\w-]+ \| ([\d.]+) \| ([\d.]+) \|", text, re.MULTILINE)
    if row:
        return float(row.group(1)), float(row.group(2))
    p = re.search(r"precision[:_\s',]+([\d.]+)", text, re.IGNORECASE)
    r = re.search(r"recall[:_\s',]+([\d.]+)", text, re.IGNORECASE)
    return (float(p.group(1)), float(r.group(1))) if p and r else None


def section_official(args: argparse.Namespace, tmp: Path) -> tuple[list[str], dict[str, Any]]:
    """The three official comparisons, interleaved (see the module doc)."""
    env = child_env(str(tmp / "pycache"))
    official = {
        "icdar2015": args.official_rrc,
        "totaltext": args.official_deteval,
        "ctw1500": args.official_curved,
    }
    commands: dict[str, dict[str, tuple[list[str], Path]]] = {}
    notes: dict[str, str] = {}
    for key, (protocol, gt_rel, pred_rel, extra, _) in OFFICIAL_SETS.items():
        gt, pred = DATA / gt_rel, DATA / pred_rel
        ours = [sys.executable, "-m", "tcmbench", "score", "-p", protocol, "--gt", str(gt)]
        ours += ["--pred", str(pred), *extra]
        commands[key] = {
            # as a user runs it (--workers auto) and in one process (--workers 1)
            "tcmbench": (ours, REPO),
            "tcmbench-1": (ours + ["--workers", "1"], REPO),
        }
        folder = official[key]
        script = "Deteval.py" if key == "totaltext" else "script.py"
        if folder is None or not (folder / script).is_file():
            notes[key] = f"official script skipped (pass the folder holding {script})"
            continue
        work = tmp / key
        work.mkdir()
        if key == "totaltext":
            gt_dir, pred_dir = write_deteval_inputs(gt, pred, work / "inputs")
            cmd = [sys.executable, str(folder / script), str(pred_dir), str(gt_dir), "result.txt"]
        else:
            # the curved script keys its settings on these file names
            names = (
                ("gt.zip", "submit.zip")
                if key == "icdar2015"
                else ("ctw1500-gt.zip", "det_ctw1500.zip")
            )
            os.symlink(gt, work / names[0])
            os.symlink(pred, work / names[1])
            cmd = [sys.executable, str(folder / script), f"-g={names[0]}", f"-s={names[1]}"]
        commands[key]["official"] = (cmd, work)
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {k: {} for k in commands}
    outputs: dict[str, dict[str, str]] = {k: {} for k in commands}
    for key, cmds in commands.items():  # warm-up: bytecode written, files cached
        for who, (cmd, cwd) in cmds.items():
            outputs[key][who] = run_once(cmd, cwd, env)[2]
    for _ in range(args.repeat):
        for key, cmds in commands.items():
            for who, (cmd, cwd) in cmds.items():
                wall, cpu, _out = run_once(cmd, cwd, env)
                runs[key].setdefault(who, []).append((wall, cpu))
    rows = []
    results: dict[str, Any] = {}
    for key, cmds in commands.items():
        protocol, target = OFFICIAL_SETS[key][0], OFFICIAL_SETS[key][4]
        entry: dict[str, Any] = {"protocol": protocol, "target_ratio": target}
        for who in cmds:
            walls = [w for w, _ in runs[key][who]]
            cpus = [c for _, c in runs[key][who]]
            entry[who] = {
                "command": " ".join(cmds[who][0]),
                "wall_median_s": round(statistics.median(walls), 4),
                "wall_min_s": round(min(walls), 4),
                "cpu_median_s": round(statistics.median(cpus), 4),
                "output_tail": outputs[key][who].strip()[-400:],
            }
        ours = entry["tcmbench"]
        one = entry["tcmbench-1"]
        line = (
            f"| {key}: `tcmbench score -p {protocol}` | {ours['wall_median_s']:.3f} s "
            f"(min {ours['wall_min_s']:.3f}, CPU {ours['cpu_median_s']:.3f}; one process "
            f"`--workers 1`: {one['wall_median_s']:.3f} s, CPU {one['cpu_median_s']:.3f}) |"
        )
        if "official" in entry:
            off = entry["official"]
            a, b = (
                _precision_recall(outputs[key]["tcmbench"]),
                _precision_recall(outputs[key]["official"]),
            )
            entry["same_figures"] = (
                a is not None and b is not None and all(abs(x - y) < 6e-4 for x, y in zip(a, b))
            )
            entry["ratio_wall_median"] = round(off["wall_median_s"] / ours["wall_median_s"], 2)
            entry["ratio_wall_min"] = round(off["wall_min_s"] / ours["wall_min_s"], 2)
            entry["ratio_cpu_median"] = round(off["cpu_median_s"] / ours["cpu_median_s"], 2)
            entry["ratio_wall_median_one_process"] = round(
                off["wall_median_s"] / one["wall_median_s"], 2
            )
            same_one = _precision_recall(outputs[key]["tcmbench-1"]) == a
            line += (
                f" {off['wall_median_s']:.3f} s (min {off['wall_min_s']:.3f}, CPU "
                f"{off['cpu_median_s']:.3f}) | **{entry['ratio_wall_median']:.2f}x** wall "
                f"(min/min {entry['ratio_wall_min']:.2f}x, CPU {entry['ratio_cpu_median']:.2f}x; "
                f"one process {entry['ratio_wall_median_one_process']:.2f}x) "
                f"| {target:g}x |"
                + ("" if entry["same_figures"] and same_one else " FIGURES DIFFER")
            )
        else:
            line += f" {notes[key]} | | {target:g}x |"
        rows.append(line)
        results[key] = entry
    return rows, results


STRESS_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {here!r})
from stress_set import stress_inputs
from tcmbench.eval import evaluate
n = int(sys.argv[1])
gt, preds = stress_inputs(n)
w, c = time.perf_counter(), time.process_time()
r = evaluate(gt, preds, "ctw1500-iou", details=False)
w, c = time.perf_counter() - w, time.process_time() - c
print(json.dumps({{"wall": w, "cpu": c, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "hmean": r.hmean, "tiou_hmean": r.tiou_hmean, "gt": r.extra["num_gt"], "det": r.extra["num_det"]}}))
"""


def section_stress(n_images: int, baseline_images: int) -> list[str]:
    import json

    from stress_set import stress_image

    gen_n = min(n_images, 500)
    w, c = time.perf_counter(), time.process_time()
    for i in range(gen_n):
        stress_image(i)
    gen_wall = (time.perf_counter() - w) * n_images / gen_n
    gen_cpu = (time.process_time() - c) * n_images / gen_n
    rows = []
    runs = {}
    for n in sorted({max(1, n_images // 10), n_images}):
        proc = subprocess.run(
            [sys.executable, "-c", STRESS_CHILD.format(here=str(HERE)), str(n)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        runs[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    full = runs[n_images]
    score_wall = full["wall"] - gen_wall
    score_cpu = full["cpu"] - gen_cpu
    rows.append(
        f"| stress set, ctw1500-iou (TIoU included), {n_images} images, {full['gt']} GT, {full['det']} detections | "
        f"{full['wall']:.1f} s wall incl. generating the images ({gen_wall:.1f} s est.); scoring {score_wall:.1f} s "
        f"(CPU {score_cpu:.1f} s) | H = {full['hmean']:.4f}, TIoU H = {full['tiou_hmean']:.4f} |"
    )
    mem = ", ".join(f"{n} images: {runs[n]['maxrss_mb']:.0f} MB" for n in sorted(runs))
    rows.append(f"| stress set peak RSS (whole process) | {mem} |")
    # Baseline: the straightforward way, one shapely call per pair.
    bw, bc = time.perf_counter(), time.process_time()
    _baseline(baseline_images)
    bw, bc = time.perf_counter() - bw, time.process_time() - bc
    gw = bw - gen_wall * baseline_images / n_images
    est = gw * n_images / baseline_images
    rows.append(
        f"| shapely pair-by-pair loop (same rules, IoU matrix + TIoU of matches), {baseline_images} images, "
        f"extrapolated to {n_images} | {est:.0f} s | ratio baseline / tcmbench: {est / max(score_wall, 1e-9):.1f}x |"
    )
    return rows


def _baseline(n_images: int) -> None:
    """IoU 0.5 + TIoU the obvious way: shapely Polygon objects, a Python
    double loop over every GT x detection pair of every image."""
    from shapely.geometry import Polygon
    from stress_set import stress_image

    for i in range(n_images):
        _, gts, dets = stress_image(i)
        gp = [Polygon(g.polygon) for g in gts]
        dp = [Polygon(d.polygon) for d in dets]
        dc = [g.ignore for g in gts]
        det_dc = []
        for d in dp:
            det_dc.append(
                any(dc[j] and d.intersection(gp[j]).area / d.area > 0.5 for j in range(len(gp)))
            )
        iou = [[0.0] * len(dp) for _ in gp]
        for a, g in enumerate(gp):
            for b, d in enumerate(dp):
                inter = g.intersection(d).area
                iou[a][b] = inter / (g.area + d.area - inter)
        used_g, used_d = set(), set()
        for a in range(len(gp)):
            for b in range(len(dp)):
                if a in used_g or b in used_d or dc[a] or det_dc[b] or iou[a][b] <= 0.5:
                    continue
                used_g.add(a)
                used_d.add(b)
                others = [
                    gp[j] for j in range(len(gp)) if j != a and dp[b].intersection(gp[j]).area > 0
                ]
                if others:
                    from shapely.ops import unary_union

                    u = unary_union(others)
                    _ = dp[b].intersection(u).area - dp[b].intersection(gp[a]).intersection(u).area


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--official-rrc",
        type=Path,
        default=None,
        help="folder with the RRC script.py (Python 3 port)",
    )
    ap.add_argument(
        "--official-curved",
        type=Path,
        default=None,
        help="folder with TIoU-metric's curved script.py (Python 3 port)",
    )
    ap.add_argument(
        "--official-deteval",
        type=Path,
        default=None,
        help="folder with Total-Text's Deteval.py + polygon_fast.py (paths from argv)",
    )
    ap.add_argument("--stress-images", type=int, default=10_000)
    ap.add_argument("--baseline-images", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--skip-stress", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench_eval.json"), help="JSON results file")
    args = ap.parse_args()

    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
        },
    }
    print(
        f"{report['date']}; {report['machine']['platform']}, {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}; "
        f"python {platform.python_version()}"
    )
    print("\n| what | tcmbench | official | ratio | target |\n|---|---|---|---|---|")
    if not (DATA / "icdar2015/test_gt.zip").is_file():
        print(f"| real-data sections | skipped: {DATA} not found | | | |")
    else:
        for row in section_icdar2015_in_process(args.repeat):
            print(row, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            rows, report["official"] = section_official(args, Path(tmp))
        for row in rows:
            print(row, flush=True)
    if not args.skip_stress:
        for row in section_stress(args.stress_images, args.baseline_images):
            print(row, flush=True)
    load_after = os.getloadavg()
    report["machine"]["load_average_after"] = [round(x, 2) for x in load_after]
    print(f"\nload average after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
