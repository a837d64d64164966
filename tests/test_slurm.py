"""``experiment run --launcher slurm`` against a real one-node SLURM
cluster (tests/slurm_cluster.py: munged, slurmctld and slurmd started for
this module; skipped with the reason where they cannot run):

- the small test grid's cells as jobs end with the same records as the
  local launcher's, but for times, job ids and log paths;
- ``experiment status`` shows the scheduler's view, and says so when the
  scheduler cannot be asked;
- a running cell signalled as SLURM signals a preempted job is requeued
  by submitit and resumes from its last checkpoint;
- a job of two CPU tasks trains its cell as one DDP (gloo) group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("submitit", reason="submitit is not installed (pip install 'tcmbench[slurm]')")

sys.path.insert(0, str(Path(__file__).parent))
from slurm_cluster import ClusterUnavailable, SlurmCluster, slurm_cluster
from test_experiment import SMALL_GRID, _in_process, _records, _write_grid
from test_experiment_status import STATES_GRID

from tcmbench.commands.experiment import experiment

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    try:
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as c:
            yield c
    except ClusterUnavailable as exc:
        pytest.skip(f"no one-node SLURM cluster here: {exc}")


@pytest.fixture(scope="module")
def ic15_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_data import make_ic15_folder

    root = tmp_path_factory.mktemp("data")
    make_ic15_folder(root / "icdar2015", n_train=6, n_test=3)
    return root


@pytest.fixture
def job_env(
    cluster: SlurmCluster, ic15_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's environment as the jobs inherit it (sbatch exports
    it): the test cluster, the tiny data, one thread."""
    for key in list(os.environ):
        if key.startswith(("SLURM_", "SBATCH_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    monkeypatch.setenv("TCMBENCH_DATA", str(ic15_root))
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


# --time 60: submitit counts a signal in the last 20 % of a job's time (or in its last 10
# minutes, whichever is longer) as a timeout, not a preemption
SLURM = ["--launcher", "slurm", "--gpus-per-cell", "0", "--time", "60", "--threads", "1"]


def _run_facts_dropped(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without what depends on how and when it ran: times, the
    launch (launcher, job id, log paths) and the checksum over them."""
    out = {
        k: v
        for k, v in rec.items()
        if k not in ("started", "finished", "seconds", "launch", "checksum")
    }
    if out.get("train"):
        out["train"] = {k: v for k, v in out["train"].items() if k != "seconds"}
    return out


def _status_json(out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(experiment, ["status", str(out), "--json", "-"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_slurm_records_equal_the_local_launchers(
    cluster: SlurmCluster, job_env: None, ic15_root: Path, tmp_path: Path
) -> None:
    grid = _write_grid(tmp_path / "small.yaml", SMALL_GRID)
    out = tmp_path / "slurm"
    only = ["--only", "0,2", "--no-progress"]  # untrained and fully trained; 1 stays pending
    result = CliRunner().invoke(
        experiment, ["run", str(grid), "--out", str(out), *only, *SLURM, "--wait"]
    )
    assert result.exit_code == 0, result.output + cluster.logs()
    (local,) = _in_process(
        ic15_root, tmp_path / "cache", ["run", str(grid), "--out", str(tmp_path / "local"), *only]
    )
    assert local.exit_code == 0, local.output
    on_slurm, here = _records(out), _records(tmp_path / "local")
    assert list(on_slurm) == list(here) == ["000-train_fraction=0.0", "002-train_fraction=1.0"]
    for cell_id, rec in on_slurm.items():
        assert _run_facts_dropped(rec) == _run_facts_dropped(here[cell_id]), cell_id
        launch = rec["launch"]
        submitted = json.loads((out / "cells" / cell_id / "launch.json").read_text())
        assert launch["launcher"] == "slurm" and here[cell_id]["launch"]["launcher"] == "local"
        assert launch["job_id"] == submitted["launch"]["job_id"]
        assert launch["restarts"] == 0 and launch["world_size"] == 1
        assert Path(launch["stdout"]).parent == out.resolve() / "cells" / cell_id / "slurm"
        assert cell_id in Path(launch["stdout"]).read_text()  # the job's own output
    doc = _status_json(out)
    states = {c["cell"]: (c["state"], c["scheduler_state"]) for c in doc["cells"]}
    assert states == {
        "000-train_fraction=0.0": ("done", "COMPLETED"),
        "001-train_fraction=0.5": ("pending", None),
        "002-train_fraction=1.0": ("done", "COMPLETED"),
    }
    assert doc["scheduler"]["reachable"] is True
    # a second submission skips the finished cells
    again = CliRunner().invoke(experiment, ["run", str(grid), "--out", str(out), *only, *SLURM])
    assert again.exit_code == 0 and again.output.count("done earlier, skipped") == 2


def test_status_of_failed_and_queued_jobs_with_and_without_the_scheduler(
    cluster: SlurmCluster, job_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell whose job fails (it is scored on a split that does not exist)
    shows its error and its log's tail; a cell whose job is held stays
    queued and is not submitted twice; asked from a machine without
    squeue, the states are the records' and the summary says so."""
    grid = _write_grid(tmp_path / "states.yaml", STATES_GRID)
    out = tmp_path / "out"
    run = ["run", str(grid), "--out", str(out), *SLURM]
    failed = CliRunner().invoke(experiment, [*run, "--only", "1", "--wait"])
    assert failed.exit_code == 2, failed.output
    assert "1 cell(s) failed: 001-broken" in failed.output
    # --wait ends on the cell's own "failed"; the job ends a moment later
    first = json.loads((out / "cells" / "001-broken" / "launch.json").read_text())
    _wait_for(
        "FAILED", lambda: cluster.job_state(first["launch"]["job_id"]) == "FAILED", 60, cluster
    )
    held = [*run, "--only", "2", "--sbatch-arg", "hold"]
    result = CliRunner().invoke(experiment, held)
    assert result.exit_code == 0, result.output
    cells = {c["cell"]: c for c in _status_json(out)["cells"]}
    assert {k: (c["state"], c["scheduler_state"]) for k, c in cells.items()} == {
        "000-trains": ("pending", None),
        "001-broken": ("failed", "FAILED"),
        "002-later": ("queued", "PENDING"),
    }
    broken = cells["001-broken"]
    assert "no-such-split" in broken["error"]
    assert broken["stderr"] == str(
        out.resolve() / "cells" / "001-broken" / "slurm" / f"{broken['job_id']}_0_log.err"
    )
    assert any("no-such-split" in line for line in broken["log_tail"])
    text = CliRunner().invoke(experiment, ["status", str(out)]).output
    assert f"last lines of {broken['stderr']}:" in text
    job = cells["002-later"]["job_id"]
    again = CliRunner().invoke(experiment, held)
    assert again.exit_code == 0 and f"already job {job} (pending), not submitted" in again.output
    with monkeypatch.context() as mp:
        mp.setenv("PATH", str(tmp_path / "no-slurm-here"))
        text = CliRunner().invoke(experiment, ["status", str(out)]).output
    assert "| 002-later | queued |" in text and "| 001-broken | failed |" in text
    summary = text.strip().splitlines()[-1]
    assert summary == (
        "states: 3 cells: 1 queued, 1 failed, 1 pending; "
        "scheduler unreachable (squeue not found): job states from the records only"
    )
    cluster.run("scancel", job)


def _wait_for(what: str, ready: Any, timeout: float, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s\n{cluster.logs()}"
        time.sleep(0.05)


def test_a_preempted_cell_is_requeued_and_resumes_from_its_checkpoint(
    cluster: SlurmCluster, job_env: None, tmp_path: Path
) -> None:
    grid = dict(SMALL_GRID, name="long", axes={"train_fraction": [1.0]})
    grid["base"] = dict(SMALL_GRID["base"], steps=20)  # checkpoints every 2 steps
    path = _write_grid(tmp_path / "long.yaml", grid)
    out = tmp_path / "out"
    result = CliRunner().invoke(experiment, ["run", str(path), "--out", str(out), *SLURM])
    assert result.exit_code == 0, result.output
    cell_dir = out / "cells" / "000-long"
    job = json.loads((cell_dir / "launch.json").read_text())["launch"]["job_id"]
    ck = cell_dir / "run" / "checkpoints"
    _wait_for(
        "checkpoint", lambda: ck.is_dir() and any(ck.glob("step-*/training_state.pt")), 120, cluster
    )
    # what SLURM does to a job it preempts or that nears its time limit
    cluster.run("scancel", "--signal=USR2", job)
    _wait_for("record", (cell_dir / "record.json").is_file, 120, cluster)
    rec = json.loads((cell_dir / "record.json").read_text())
    assert rec["train"]["steps"] == 20
    assert rec["train"]["resumed_from_step"] > 0
    assert rec["launch"]["job_id"] == job and rec["launch"]["restarts"] == 1
    log = Path(rec["launch"]["stdout"]).read_text()
    assert "preempted; requeued, it resumes from its last checkpoint" in log
    assert "stopped before it finished; continuing from its last checkpoint" in log
    starts = [
        json.loads(line)
        for line in (cell_dir / "run" / "train_log.jsonl").read_text().splitlines()
        if '"start"' in line
    ]
    assert len(starts) == 2 and starts[0]["start_step"] == 0 and starts[1]["start_step"] > 0
    (row,) = [c for c in _status_json(out)["cells"] if c["cell"] == "000-long"]
    assert (row["state"], row["restarts"]) == ("done", 1)


def test_a_two_task_cell_trains_as_one_ddp_group(
    cluster: SlurmCluster, job_env: None, tmp_path: Path
) -> None:
    """Two CPU tasks (what two GPUs per cell give, with gloo for NCCL):
    both train, rank 0 evaluates and writes the record."""
    import submitit

    from tcmbench.experiment.grid import expand, load_grid
    from tcmbench.experiment.runner import prepare_out
    from tcmbench.experiment.slurm import CellJob

    grid_path = _write_grid(tmp_path / "small.yaml", SMALL_GRID)
    grid = load_grid(str(grid_path))
    cells = expand(grid)
    out = tmp_path / "out"
    prepare_out(out, grid, cells)
    cell = cells[2]  # all the training data: 6 images, 6 steps
    executor = submitit.SlurmExecutor(folder=out / "cells" / cell.id / "slurm")
    executor.update_parameters(time=10, nodes=1, ntasks_per_node=2, job_name="ddp")
    job = executor.submit(CellJob(grid, cell, str(out), "cpu", 1))
    try:
        ends = job.results()  # one per task; raises with a task's traceback if it failed
    except Exception as exc:  # noqa: BLE001 - the job's own error, shown whole
        pytest.fail(f"{exc}\n{cluster.logs()}")
    assert ends[1] == f"{cell.id}: rank 1 trained" and "hmean" in ends[0]
    rec = json.loads((out / "cells" / cell.id / "record.json").read_text())
    assert rec["launch"]["world_size"] == 2 and rec["train"]["steps"] == 6
    starts = [
        json.loads(line)
        for line in (out / "cells" / cell.id / "run" / "train_log.jsonl").read_text().splitlines()
        if '"start"' in line
    ]
    assert [s["world_size"] for s in starts] == [2]
    assert 0.0 <= rec["results"][0]["hmean"] <= 1.0


def test_the_daemons_are_children_of_this_process(cluster: SlurmCluster) -> None:
    """The fixture's daemons are this process's children, stopped by id."""
    for name, proc in cluster.procs.items():
        assert proc.poll() is None, name
        ps = subprocess.run(
            ["ps", "-o", "ppid=", "-p", str(proc.pid)], capture_output=True, text=True, check=False
        )
        assert int(ps.stdout.strip()) == os.getpid(), name
