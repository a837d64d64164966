"""``experiment status DIR``: where each cell of an experiment stands.

A cell is **done** (its ``record.json``), **failed**, **running**,
**queued** (submitted, not started), **preempted** (stopped before it
finished: a SLURM preemption or requeue, or a local run that was killed;
the requeued job, or the next ``experiment run``, continues it from its
last checkpoint) or **pending** (never started).

The files say what the processes last wrote (tcmbench.experiment.cellstate);
the scheduler knows what happened since (a job killed for memory writes
nothing). So for cells run as SLURM jobs the scheduler is asked
(:func:`query_slurm`: ``squeue``, then ``sacct`` for jobs ``squeue`` has
forgotten) and its answer wins; when it cannot be reached the states are
the files' and the summary says so. A local run's ``running`` is checked
against its process id on the same machine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATES = ("done", "running", "queued", "preempted", "failed", "pending")
#: SLURM job states, as this module reads them.
_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "CONFIGURING"}
_WAITING = {"PENDING"}
_STOPPED = {"REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED", "SUSPENDED", "RESIZING"}
_FAILED = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
}
_QUERY_TIMEOUT_S = 30
NOT_ASKED = "not asked"


@dataclass
class SchedulerView:
    """What SLURM said about the jobs: ``reachable`` None = not asked (no
    job to ask about), False = it could not be asked (``note`` says why)."""

    reachable: bool | None
    states: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=_QUERY_TIMEOUT_S, check=False
    )


def _first_line(text: str) -> str:
    """A client's first error line, without its own ``squeue: `` prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "no output"
    for prefix in ("squeue: ", "sacct: "):
        first = first.removeprefix(prefix)
    return first[:300]


def query_slurm(job_ids: Sequence[str]) -> SchedulerView:
    """The SLURM state of each job (``PENDING``, ``RUNNING``, ``COMPLETED``,
    ...): ``squeue`` for jobs it still shows, ``sacct`` for older ones
    where accounting is on. A job neither knows is left out."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return SchedulerView(None, {}, "no SLURM jobs")
    if shutil.which("squeue") is None:
        return SchedulerView(False, {}, "squeue not found")
    try:
        done = _run(
            ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T"]
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return SchedulerView(False, {}, f"squeue: {exc}")
    states: dict[str, str] = {}
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            job, _, state = line.strip().partition("|")
            if job in ids and state:
                states[job] = state.strip().upper()
    elif "invalid job id" not in done.stderr.lower():  # none known is an answer, not a failure
        return SchedulerView(False, {}, f"squeue: {_first_line(done.stderr)}")
    note = "squeue"
    missing = [j for j in ids if j not in states]
    if missing and shutil.which("sacct") is not None:
        try:
            acct = _run(
                [
                    "sacct",
                    "--noheader",
                    "--parsable2",
                    "--allocations",
                    f"--jobs={','.join(missing)}",
                    "--format=JobID,State",
                ]
            )
        except (OSError, subprocess.SubprocessError) as exc:
            acct = subprocess.CompletedProcess([], 1, "", str(exc))
        if acct.returncode == 0:
            note = "squeue, sacct"
            for line in acct.stdout.splitlines():
                job, _, state = line.strip().partition("|")
                if job in missing and state:
                    states[job] = state.split()[0].upper()  # "CANCELLED by 0"
        else:
            note = f"squeue (sacct: {_first_line(acct.stderr or acct.stdout)})"
    return SchedulerView(True, states, note)


@dataclass
class CellStatus:
    """One row of ``experiment status``."""

    cell: str
    label: str
    state: str
    launcher: str | None = None
    job_id: str | None = None
    scheduler_state: str | None = None
    submitted: str | None = None
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    restarts: int | None = None
    note: str | None = None
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class ExperimentStatus:
    root: str
    grid: str
    tiny: bool
    cells: list[CellStatus]
    scheduler: SchedulerView

    def counts(self) -> dict[str, int]:
        seen = Counter(c.state for c in self.cells)
        return {s: seen.get(s, 0) for s in STATES}

    def summary(self) -> str:
        """The one-line summary: counts, and where the states come from."""
        counts = self.counts()
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        sched = self.scheduler
        if sched.reachable is None:
            where = "no scheduler jobs"
        elif sched.reachable:
            where = f"scheduler asked ({sched.note})"
        elif sched.note == NOT_ASKED:
            where = "scheduler not asked (--no-scheduler): job states from the records only"
        else:
            where = f"scheduler unreachable ({sched.note}): job states from the records only"
        return f"{self.grid}: {len(self.cells)} cells: {', '.join(parts) or 'none'}; {where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.root,
            "grid": self.grid,
            "tiny": self.tiny,
            "summary": {**self.counts(), "total": len(self.cells)},
            "scheduler": asdict(self.scheduler),
            "cells": [asdict(c) for c in self.cells],
        }


def _launch(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    launch = (doc or {}).get("launch")
    return dict(launch) if isinstance(launch, dict) else {}


def experiment_status(root: str | Path, ask_scheduler: bool = True) -> ExperimentStatus:
    """Every cell's state (raises a one-line TcmbenchError when ``root`` is
    not an experiment folder)."""
    from tcmbench.experiment.cellstate import read_launch, read_state
    from tcmbench.experiment.results import load_experiment

    exp = load_experiment(root)
    files = {}
    for cell in exp.cells:
        cell_dir = exp.root / "cells" / cell.id
        files[cell.id] = (read_state(cell_dir), read_launch(cell_dir))
    jobs = []
    for state, launch in files.values():
        for doc in (state, launch):
            info = _launch(doc)
            if info.get("launcher") == "slurm" and info.get("job_id"):
                jobs.append(str(info["job_id"]))
    if ask_scheduler:
        view = query_slurm(jobs)
    else:
        view = SchedulerView(False if jobs else None, {}, NOT_ASKED if jobs else "no SLURM jobs")
    rows = []
    for cell in exp.cells:
        state, launch = files[cell.id]
        rows.append(_cell_status(cell, state, launch, view))
    return ExperimentStatus(str(exp.root), exp.name, bool(exp.tiny), rows, view)


def _cell_status(
    cell: Any,
    state: Mapping[str, Any] | None,
    launch: Mapping[str, Any] | None,
    view: SchedulerView,
) -> CellStatus:
    from tcmbench.experiment.cellstate import log_tail, pid_alive

    row = CellStatus(cell.id, cell.label, "pending")
    if launch:
        row.submitted = launch.get("submitted")
    if cell.done:
        rec = cell.record or {}
        info = _launch(rec)
        row.state = "done"
        _fill(row, info)
        row.started, row.finished, row.seconds = (
            rec.get("started"),
            rec.get("finished"),
            cell.seconds,
        )
        if info.get("job_id"):
            row.scheduler_state = view.states.get(str(info["job_id"]))
        return row
    sub, run = _launch(launch), _launch(state)
    # A submission newer than what the runner wrote: its job has not started.
    if sub and (not run or run.get("job_id") != sub.get("job_id")):
        _fill(row, sub)
        return _from_scheduler(
            row, "queued", view, "the job left the queue before the cell started"
        )
    if state is None:
        return row
    _fill(row, run)
    row.started, row.finished = state.get("started"), state.get("ended")
    if row.job_id:
        row.scheduler_state = view.states.get(row.job_id)
    said = str(state.get("state"))
    if said == "failed":
        row.state, row.error = "failed", state.get("error")
        row.log_tail = log_tail(row.stderr) or log_tail(row.stdout)
        return row
    if said == "done":  # the record is missing or unreadable
        row.state, row.note = "failed", "state.json says done but record.json is missing"
        return row
    if run.get("launcher") == "slurm":
        return _from_scheduler(row, said, view, "the job ended without finishing the cell")
    row.state = said
    if run.get("host") == socket.gethostname():
        pid = state.get("pid")
        if said == "running" and isinstance(pid, int) and not pid_alive(pid):
            row.state = "preempted"
            row.note = "its process is gone; running the command again resumes the cell"
    elif said == "running":
        row.note = f"running on {run.get('host')} (not checked from here)"
    return row


def _fill(row: CellStatus, info: Mapping[str, Any]) -> None:
    row.launcher = info.get("launcher")
    row.job_id = str(info["job_id"]) if info.get("job_id") else None
    row.stdout, row.stderr = info.get("stdout"), info.get("stderr")
    row.restarts = info.get("restarts")


def _from_scheduler(row: CellStatus, said: str, view: SchedulerView, gone: str) -> CellStatus:
    """The row's state for a SLURM cell: the scheduler's when it answered,
    else what the files said (``said``)."""
    from tcmbench.experiment.cellstate import log_tail

    job = row.job_id
    sched = view.states.get(job) if job else None
    row.scheduler_state = sched
    if not view.reachable:
        row.state = said
        row.note = "scheduler unreachable: from the records"
    elif sched is None:
        row.state, row.note = "failed", f"job {job} is not known to the scheduler any more: {gone}"
    elif sched in _WAITING:
        # waiting again after it ran: requeued (preempted, timed out, scontrol requeue)
        row.state = "preempted" if said in ("running", "preempted") else "queued"
    elif sched in _RUNNING:
        row.state = "running"
    elif sched in _STOPPED:
        row.state = "preempted"
    elif sched in _FAILED or sched == "COMPLETED":
        row.state = "failed"
        row.note = f"job {job} {sched.lower()}" + (
            " without a record" if sched == "COMPLETED" else ""
        )
    else:
        row.state, row.note = said, f"scheduler state {sched}"
    if row.state == "failed":
        row.log_tail = log_tail(row.stderr) or log_tail(row.stdout)
    return row


def _short_time(value: str | None) -> str:
    """``2026-12-07T12:20:55+00:00`` as ``12-07 12:20:55``."""
    if not value:
        return "-"
    date, _, clock = value.partition("T")
    return f"{date[5:]} {clock[:8]}" if clock else value


def _duration(row: CellStatus) -> str:
    if row.seconds is not None:
        return f"{row.seconds:.0f} s"
    return "-"


def render(status: ExperimentStatus) -> str:
    """The table, each failed cell's error and log tail, and the summary."""
    lines = [
        f"experiment {status.root} (grid {status.grid}{', tiny' if status.tiny else ''})",
        "",
        "| cell | state | launcher | job | submitted | started | ended | time | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in status.cells:
        state = c.state + (f" ({c.scheduler_state.lower()})" if c.scheduler_state else "")
        lines.append(
            f"| {c.cell} | {state} | {c.launcher or '-'} | {c.job_id or '-'} | "
            f"{_short_time(c.submitted)} | {_short_time(c.started)} | {_short_time(c.finished)} | "
            f"{_duration(c)} | {(c.note or '').replace('|', '/')} |"
        )
    for c in status.cells:
        if c.state != "failed":
            continue
        lines += ["", f"{c.cell}: failed" + (f": {c.error}" if c.error else "")]
        if c.log_tail:
            lines.append(f"  last lines of {c.stderr if c.stderr else c.stdout}:")
            lines += [f"    {line}" for line in c.log_tail]
    lines += ["", status.summary()]
    return "\n".join(lines)


def unfinished(status: ExperimentStatus, cells: Sequence[str]) -> list[str]:
    """Of ``cells``, those still queued, running or preempted (``--wait``)."""
    waiting = {"queued", "running", "preempted"}
    return [c.cell for c in status.cells if c.cell in cells and c.state in waiting]
