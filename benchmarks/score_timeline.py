"""Where the time of one ``tcmbench score`` process goes, phase by phase.

``benchmarks/bench_eval.py`` gives whole-process times; this script shows
what is inside them. It runs ``tcmbench score`` on one of the shared sets
``--runs`` times (after one untimed run that writes the bytecode cache),
each time in a fresh process whose scoring functions are wrapped to print
a timestamp when they start and end, in every process of the run (the
worker that reads the predictions, the worker that scores a part). Times
are milliseconds since the run was started, on the monotonic clock all
processes share. It prints one row per run and the median of each column:

- ``up``: the interpreter started (site, the editable install's finder);
- ``imports``: ``tcmbench.cli`` then numpy and the scoring modules imported
  (the wrapper imports them up front, as the score path does before
  reading);
- ``gt``: the ground truth read by the command's own process;
- ``pred``: the predictions read (by the reading worker with ``--workers``
  above 1, else by the command itself);
- ``recv``: the worker's predictions rebuilt here;
- ``score``: ``_score_ids`` of each part, one figure per process;
- ``end``: the process about to exit.

    python benchmarks/score_timeline.py ctw1500 --runs 6
    python benchmarks/score_timeline.py ctw1500 --runs 6 -- --workers 1

(options after ``--`` go to ``tcmbench score``).

The wrappers cost a few microseconds per call; the figures are those of
the IoU engine's sets (icdar2015, ctw1500); for totaltext the ``score``
column stays empty (the DetEval engine has no ``_score_ids``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TCMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))

SETS = {
    "icdar2015": [
        "-p",
        "icdar2015",
        "--gt",
        "icdar2015/test_gt.zip",
        "--pred",
        "icdar2015/pixellink_submit.zip",
    ],
    "ctw1500": [
        "-p",
        "ctw1500-iou",
        "--gt",
        "ctw1500/test_gt.zip",
        "--pred",
        "ctw1500/example_det.zip",
    ],
    "totaltext": [
        "-p",
        "totaltext-deteval",
        "--gt",
        "totaltext/test_gt.zip",
        "--pred",
        "totaltext/baseline_det.zip",
        "--pred-order",
        "xy",
    ],
}

#: (module, function) pairs whose start and end are printed.
WRAPPED = [
    ("tcmbench.commands.score_run", "_read_gt"),
    ("tcmbench.eval.io", "read_predictions"),
    ("tcmbench.eval.io", "read_predictions_ahead"),
    ("tcmbench.eval.io", "received_predictions"),
    ("tcmbench.eval.catalog", "preload"),
    ("tcmbench.eval.iou", "_score_ids"),
]


def _wrapped_run(argv: list[str]) -> None:
    """Inside the timed process: wrap, then run ``tcmbench score``."""
    t0 = float(os.environ["SCORE_TIMELINE_T0"])

    def mark(what: str) -> None:
        ms = 1e3 * (time.perf_counter() - t0)
        os.write(2, f"@timeline {os.getpid()} {ms:.1f} {what}\n".encode())

    mark("up")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as score_run sets it before numpy
    import importlib

    import tcmbench.cli as cli

    modules = {name: importlib.import_module(name) for name, _ in WRAPPED}
    mark("imports")

    def wrap(module: object, name: str) -> None:
        inner = getattr(module, name)

        def timed(*args: object, **kwargs: object) -> object:
            mark(f"> {name}")
            try:
                return inner(*args, **kwargs)
            finally:
                mark(f"< {name}")

        setattr(module, name, timed)

    for name, func in WRAPPED:
        wrap(modules[name], func)
    real_exit = os._exit

    def exit_marked(code: int) -> None:
        mark("end")
        real_exit(code)

    os._exit = exit_marked  # type: ignore[assignment]
    sys.argv = ["tcmbench", "score", *argv]
    cli.main()
    mark("end")


def _phases(stderr: str) -> dict[str, str]:
    """One run's printed marks as the table's columns."""
    marks: dict[str, dict[str, float]] = {}
    for line in stderr.splitlines():
        if line.startswith("@timeline "):
            _, pid, ms, what = line.split(" ", 3)
            marks.setdefault(pid, {}).setdefault(what, float(ms))
    pids = list(marks)
    main = marks[pids[0]]

    def span(m: dict[str, float], name: str) -> float | None:
        if f"> {name}" in m and f"< {name}" in m:
            return m[f"< {name}"] - m[f"> {name}"]
        return None

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    pred = next(
        (
            span(m, "read_predictions_ahead")
            for m in marks.values()
            if "> read_predictions_ahead" in m
        ),
        None,
    )
    if pred is None:
        pred = span(main, "read_predictions")
    scores = [span(m, "_score_ids") for m in marks.values() if "> _score_ids" in m]
    return {
        "up": fmt(main.get("up")),
        "imports": fmt(main["imports"] - main["up"]) if "imports" in main else "-",
        "gt": fmt(span(main, "_read_gt")),
        "pred": fmt(pred),
        "recv": fmt(span(main, "received_predictions")),
        "score": " / ".join(fmt(s) for s in scores) or "-",
        "end": fmt(main.get("end")),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--wrapped":
        _wrapped_run(sys.argv[2:])
        return 0
    # Imported here, not above: the timed processes run this file too, and
    # their "up" must not include what only this parent needs.
    import argparse
    import statistics
    import subprocess

    own, extra = sys.argv[1:], []
    if "--" in own:
        at = own.index("--")
        own, extra = own[:at], own[at + 1 :]
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args(own)
    argv = [a if not a.endswith(".zip") else str(DATA / a) for a in SETS[args.set]]
    argv += extra
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path("/tmp") / "tcmbench-timeline-pycache"))
    rows = []
    for run in range(args.runs + 1):
        env["SCORE_TIMELINE_T0"] = repr(time.perf_counter())
        done = subprocess.run(
            [sys.executable, __file__, "--wrapped", *argv],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        if run:
            rows.append(_phases(done.stderr))
    cols = list(rows[0])
    print(f"`tcmbench score` {' '.join(SETS[args.set][:2] + extra)}: milliseconds\n")
    print("| run | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for i, row in enumerate(rows, 1):
        print(f"| {i} | " + " | ".join(row[c] for c in cols) + " |")

    def median(col: str) -> str:
        parts = [r[col].split(" / ") for r in rows]
        if any("-" in p for p in parts):
            return "-"
        return " / ".join(
            f"{statistics.median(float(p[k]) for p in parts):.0f}"
            for k in range(min(len(p) for p in parts))
        )

    print("| median | " + " | ".join(median(c) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
