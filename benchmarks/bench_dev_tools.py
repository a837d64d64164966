"""How long the lint and type checks of the test suite take: mypy on a fresh
clone (no cache) and again with its cache, and ruff.

    python benchmarks/bench_dev_tools.py [--cold 2] [--warm 2] [--json OUT]

Each check is the command ``tests/test_lint.py`` runs, with the settings in
pyproject.toml, as a fresh process from the repository root, timed wall and
CPU (the child's user + system time):

- ``mypy cold``: ``python -m mypy --cache-dir EMPTY`` with a new, empty
  cache folder each time: what the first run on a fresh clone costs;
- ``mypy warm``: the same with the cache the last cold run left;
- ``ruff check`` and ``ruff format --check`` on the whole repository.

Every run is reported (not only the best), with the load average before and
after, because on a shared machine the spread is the honest noise figure.
A check that finds problems in the working tree is timed all the same; its
exit status is reported beside the time.
The repository's own ``.mypy_cache`` is never touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> dict[str, Any]:
    """Wall and CPU seconds of one child process, and its exit status (the
    checks of a working tree in progress may find something; the time is
    still the time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    t0 = time.monotonic()
    done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "exit": done.returncode,
        "load_before": load,
        "load_after": os.getloadavg(),
    }


def summary(runs: list[dict[str, Any]]) -> str:
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    loads = [r["load_before"][0] for r in runs] + [r["load_after"][0] for r in runs]
    return (
        f"wall {statistics.median(walls):.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)}), "
        f"CPU {statistics.median(cpus):.1f} s (runs: {', '.join(f'{c:.1f}' for c in cpus)}), "
        f"load {min(loads):.1f}-{max(loads):.1f}, exit status {sorted({r['exit'] for r in runs})}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cold", type=int, default=2, help="mypy runs, each with an empty cache")
    ap.add_argument("--warm", type=int, default=2, help="mypy runs with the last cold run's cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    results: dict[str, list[dict[str, Any]]] = {"mypy cold": [], "mypy warm": []}
    with tempfile.TemporaryDirectory(prefix="bench-mypy-") as tmp:
        cache = Path(tmp) / "cache"
        for i in range(args.cold):
            cache = Path(tmp) / f"cache{i}"
            mypy = [sys.executable, "-m", "mypy", "--cache-dir", str(cache)]
            results["mypy cold"].append(timed(mypy))
        for _ in range(args.warm):
            mypy = [sys.executable, "-m", "mypy", "--cache-dir", str(cache)]
            results["mypy warm"].append(timed(mypy))
    results["ruff check"] = [timed([sys.executable, "-m", "ruff", "check", "."])]
    results["ruff format --check"] = [
        timed([sys.executable, "-m", "ruff", "format", "--check", "."])
    ]

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}"
    print(f"# lint and type checks, {stamp}, {machine}")
    for name, runs in results.items():
        if runs:
            print(f"- {name}: {summary(runs)}")
    if args.json:
        payload = {"date": stamp, "machine": machine, "results": results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
