"""``tcmbench experiment status``: the states of a grid's cells, read from a
folder a real ``experiment run`` wrote (a trained cell that finished, a
cell that fails at its evaluation, a cell never selected), the one-line
summary, ``--json`` (``-`` = stdout alone) and the launcher options'
usage errors. The SLURM states are checked against a real scheduler in
tests/test_slurm.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tcmbench.commands.experiment import experiment

sys.path.insert(0, str(Path(__file__).parent))
from test_experiment import SMALL_GRID, _in_process, _write_grid

# SMALL_GRID's keys, three cells: one trains 6 steps and finishes, one is
# scored on a split the dataset does not have (it fails when it gets
# there), one is never selected.
STATES_GRID: dict[str, Any] = {
    **SMALL_GRID,
    "name": "states",
    "report": {"kind": "table"},
    "axes": {},
    "cells": [
        {"label": "trains", "train_fraction": 0.5, "steps": 2},
        {"label": "broken", "train_fraction": 0.0, "eval_split": "no-such-split"},
        {"label": "later", "train_fraction": 0.0},
    ],
}


@pytest.fixture(scope="module")
def states_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from tiny_data import make_ic15_folder

    tmp = tmp_path_factory.mktemp("states")
    make_ic15_folder(tmp / "data" / "icdar2015", n_train=6, n_test=3)
    grid = _write_grid(tmp / "states.yaml", STATES_GRID)
    (result,) = _in_process(
        tmp / "data",
        tmp / "cache",
        ["run", str(grid), "--out", str(tmp / "out"), "--only", "0,1", "--no-progress"],
    )
    return tmp / "out", result


def _status(*args: str) -> Any:
    return CliRunner().invoke(experiment, ["status", *args])


def test_done_failed_and_pending_cells(states_run: tuple[Path, Any]) -> None:
    out, run = states_run
    # the failing cell stops the run, as before, with its one-line error
    assert run.exit_code == 2, run.output
    assert "no-such-split" in run.output
    result = _status(str(out))
    assert result.exit_code == 0, result.output
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in result.output.splitlines()
        if line.startswith("| 00")
    }
    assert {k: v[1] for k, v in rows.items()} == {
        "000-trains": "done",
        "001-broken": "failed",
        "002-later": "pending",
    }
    assert rows["000-trains"][2] == "local" and rows["002-later"][2] == "-"
    assert rows["000-trains"][5] != "-" and rows["000-trains"][7].endswith(" s")  # started, time
    assert rows["001-broken"][5] != "-" and rows["001-broken"][6] != "-"  # started and ended
    # the failed cell's error, under the table
    failed = [line for line in result.output.splitlines() if line.startswith("001-broken: failed")]
    assert len(failed) == 1 and "no-such-split" in failed[0]
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("states: 3 cells: 1 done, 1 failed, 1 pending;")
    assert "no scheduler jobs" in summary


def test_json_on_stdout_and_in_a_file(states_run: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = states_run
    result = CliRunner().invoke(experiment, ["status", str(out), "--json", "-"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)  # stdout carries the JSON alone
    assert doc["summary"] == {
        "done": 1,
        "running": 0,
        "queued": 0,
        "preempted": 0,
        "failed": 1,
        "pending": 1,
        "total": 3,
    }
    by_cell = {c["cell"]: c for c in doc["cells"]}
    assert by_cell["000-trains"]["seconds"] > 0 and by_cell["000-trains"]["launcher"] == "local"
    assert "no-such-split" in by_cell["001-broken"]["error"]
    assert by_cell["002-later"]["started"] is None
    assert doc["scheduler"]["reachable"] is None
    # the record of the finished cell says how it ran
    record = json.loads((out / "cells" / "000-trains" / "record.json").read_text())
    assert record["launch"]["launcher"] == "local" and record["launch"]["job_id"] is None
    target = tmp_path / "status.json"
    result = _status(str(out), "--json", str(target))
    assert result.exit_code == 0 and json.loads(target.read_text()) == doc
    assert "| 000-trains | done |" in result.stdout


def test_a_folder_that_is_not_an_experiment_is_one_line(tmp_path: Path) -> None:
    result = _status(str(tmp_path))
    assert result.exit_code == 2
    assert "experiment.json" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition", "gpu"], "--partition only make(s) sense with --launcher slurm"),
        (
            ["--launcher", "slurm", "--gpus-per-cell", "3", "--nodes-per-cell", "2"],
            "not a multiple",
        ),
        (["--launcher", "slurm", "--time", "soon"], "expected minutes"),
        (["--launcher", "slurm", "--sbatch-arg", "output=/tmp/x"], "set by the launcher"),
        (["--launcher", "slurm", "--sbatch-arg", "comment=a\nb"], "one line"),
        (["--launcher", "slurm", "--mem", "lots"], "--mem 'lots'"),
    ],
)
def test_launcher_option_errors_are_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump(STATES_GRID))
    result = CliRunner().invoke(experiment, ["run", str(grid), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_dry_run_describes_the_jobs(tmp_path: Path) -> None:
    grid = _write_grid(tmp_path / "g.yaml", STATES_GRID)
    result = CliRunner().invoke(
        experiment,
        [
            "run",
            str(grid),
            "--dry-run",
            "--launcher",
            "slurm",
            "--gpus-per-cell",
            "8",
            "--nodes-per-cell",
            "2",
            "--time",
            "1-12:00:00",
            "--partition",
            "gpu",
            "--sbatch-arg",
            "qos=high",
            "--sbatch-arg",
            "exclusive",
        ],
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line == (
        "each cell one SLURM job: 2 node(s) x 4 task(s), 8 GPU(s), time 2160 min, "
        "partition gpu, --qos=high, --exclusive"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"schema": 1, "state": NaN}',
        "[" * 10_000 + "]" * 10_000,
        '{"schema": 1, "state": "done", "started": 1e39}',
        "\x00\xff" * 100,
    ],
    ids=["truncated", "nan", "deep", "huge-number", "binary"],
)
def test_hostile_state_and_launch_files_are_named_and_ignored(
    states_run: tuple[Path, Any],
    tmp_path: Path,
    text: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cell's state.json / launch.json that does not parse or fit its
    schema is one logged line naming the file; the status still comes
    from the record (the finished cell stays done), without a traceback."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(states_run[0], out)
    cell = next(d for d in (out / "cells").iterdir() if d.name.endswith("trains"))
    for name in ("state.json", "launch.json"):
        (cell / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    with caplog.at_level("WARNING"):
        result = _status(str(out), "--no-scheduler", "--json", "-")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    states = {c["cell"]: c["state"] for c in json.loads(result.stdout)["cells"]}
    assert states[cell.name] == "done"
    named = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for name in ("state.json", "launch.json"):
        assert any(str(cell / name) in m and "(ignored)" in m for m in named), named
