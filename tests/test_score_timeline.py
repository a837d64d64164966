"""benchmarks/score_timeline.py: the phases of one ``tcmbench score`` run.

The script's figures go to docs/benchmarks.md, so what it reports must be
what happened: the marks of every process of a run become the right
columns (the reading worker's time as ``pred``, one ``score`` per
process), and on a real set each phase it names was really passed through.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "score_timeline.py"
DATA = Path(os.environ.get("TCMBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def timeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("score_timeline", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_marks_of_three_processes_become_the_columns(timeline: ModuleType) -> None:
    stderr = """\
@timeline 10 40.0 up
@timeline 10 240.5 imports
@timeline 10 250.0 > _read_gt
@timeline 11 251.0 > read_predictions_ahead
@timeline 11 251.1 > read_predictions
@timeline 10 310.0 < _read_gt
@timeline 11 331.0 < read_predictions
@timeline 11 333.0 < read_predictions_ahead
some warning in between
@timeline 10 340.0 > received_predictions
@timeline 10 351.0 < received_predictions
@timeline 10 352.0 > _score_ids
@timeline 12 353.0 > _score_ids
@timeline 10 500.0 < _score_ids
@timeline 12 520.0 < _score_ids
@timeline 10 530.0 end
"""
    assert timeline._phases(stderr) == {
        "up": "40",
        "imports": "200",
        "gt": "60",
        "pred": "82",  # the worker's read_predictions_ahead, not its inner call
        "recv": "11",
        "score": "148 / 167",
        "end": "530",
    }


def test_one_process_reads_its_own_predictions(timeline: ModuleType) -> None:
    stderr = """\
@timeline 7 30.0 up
@timeline 7 100.0 imports
@timeline 7 101.0 > _read_gt
@timeline 7 121.0 < _read_gt
@timeline 7 121.5 > read_predictions
@timeline 7 131.5 < read_predictions
@timeline 7 140.0 end
"""
    row = timeline._phases(stderr)
    assert (row["gt"], row["pred"], row["recv"], row["score"]) == ("20", "10", "-", "-")


@pytest.mark.realdata
def test_a_real_run_passes_every_phase() -> None:
    if not (DATA / "icdar2015" / "test_gt.zip").is_file():
        pytest.skip(f"shared data not found at {DATA} (set TCMBENCH_SHARED_DATA)")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "icdar2015", "--runs", "1", "--", "--workers", "1"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TCMBENCH_SHARED_DATA": str(DATA)},
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1
    up, imports, gt, pred, recv, score, end = [c.strip() for c in rows[0].split("|")[2:-1]]
    assert recv == "-"  # one process: nothing received
    numbers = [float(x) for x in (up, imports, gt, pred, score, end)]
    assert all(x > 0 for x in numbers)
    assert float(end) > float(up) + float(gt) + float(pred) + float(score)
