"""Speed of the IoU-family protocols, against the official scripts.

Measures (results go to docs/benchmarks/eval.md):

1. ``icdar2015`` on the 500-image PixelLink submission, in-process
   (``evaluate()`` on already-read files; target < 0.05 s).
2. ``tcmbench score --protocol icdar2015`` as a whole process against the
   official RRC script (target: no slower).
3. ``tcmbench score --protocol ctw1500-iou`` on the CTW1500 example
   detections as a whole process against TIoU-metric's curved script
   (target: >= 4x faster).
4. The stress set (benchmarks/stress_set.py: 10,000 images x 50 curved
   14-point polygons) scored by ``ctw1500-iou`` (target < 30 s), its peak
   memory at 1/10 and all of the images (flat), and a straightforward
   shapely pair-by-pair loop on a subset, extrapolated, with the ratio.

The official scripts are not part of tcmbench (they are Python 2 code under
their own terms): pass the folders of local Python 3 ports with
``--official-rrc`` / ``--official-curved`` (``script.py`` +
``rrc_evaluation_funcs.py``; they need Polygon3). Sections whose inputs are
missing are skipped with a note.

    python benchmarks/bench_eval.py --official-rrc /tmp/official/rrc \\
        --official-curved /tmp/official/curved
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_process(cmd: list[str], cwd: Path | None, repeat: int) -> tuple[float, float, str]:
    """Fastest wall time of a whole process, its user+sys CPU time, stdout."""
    best = (float("inf"), 0.0, "")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode not in (0, -6, 134):  # Polygon3 may abort at exit (PROTOCOLS.md)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
        if wall < best[0]:
            best = (wall, cpu, proc.stdout)
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
            f"| icdar2015, PixelLink (500 images), `evaluate()` in-process | {wall:.4f} s (CPU {cpu:.4f} s) | "
            f"details=false: {wall_nd:.4f} s (CPU {cpu_nd:.4f} s) | H = {result.hmean!r} |"
        )
    ]


def section_process(protocol: str, official: Path | None, repeat: int) -> list[str]:
    tcm = [sys.executable, "-m", "tcmbench", "score", "-p", protocol]
    if protocol == "icdar2015":
        gt, pred = DATA / "icdar2015/test_gt.zip", DATA / "icdar2015/pixellink_submit.zip"
        names = ("gt.zip", "submit.zip")
    else:
        gt, pred = DATA / "ctw1500/test_gt.zip", DATA / "ctw1500/example_det.zip"
        names = (
            "ctw1500-gt.zip",
            "det_ctw1500.zip",
        )  # the curved script keys its settings on these names
    ours = run_process(tcm + ["--gt", str(gt), "--pred", str(pred)], REPO, repeat)
    rows = [
        f"| `tcmbench score -p {protocol}` (whole process) | {ours[0]:.3f} s (CPU {ours[1]:.3f} s) |"
    ]
    if official is None or not (official / "script.py").is_file():
        rows.append(f"| official script for {protocol} | skipped (pass its folder) |")
        return rows
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(gt, Path(tmp) / names[0])
        os.symlink(pred, Path(tmp) / names[1])
        cmd = [sys.executable, str(official / "script.py"), f"-g={names[0]}", f"-s={names[1]}"]
        theirs = run_process(cmd, Path(tmp), repeat)
    rows.append(
        f"| official script ({official.name}, Polygon3) | {theirs[0]:.3f} s (CPU {theirs[1]:.3f} s) | "
        f"ratio official / tcmbench: wall {theirs[0] / ours[0]:.2f}x, CPU {theirs[1] / ours[1]:.2f}x |"
    )
    return rows


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
        help="folder with TIoU-metric's curved script.py",
    )
    ap.add_argument("--stress-images", type=int, default=10_000)
    ap.add_argument("--baseline-images", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-stress", action="store_true")
    args = ap.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}; {time.strftime('%Y-%m-%d')}"
    )
    print("\n| what | time | notes |\n|---|---|---|")
    if not (DATA / "icdar2015/test_gt.zip").is_file():
        print(f"| real-data sections | skipped: {DATA} not found | |")
    else:
        for row in section_icdar2015_in_process(args.repeat):
            print(row, flush=True)
        for row in section_process("icdar2015", args.official_rrc, args.repeat):
            print(row, flush=True)
        for row in section_process("ctw1500-iou", args.official_curved, max(2, args.repeat // 2)):
            print(row, flush=True)
    if not args.skip_stress:
        for row in section_stress(args.stress_images, args.baseline_images):
            print(row, flush=True)


if __name__ == "__main__":
    main()
