"""What a cell is doing, beside its record: ``state.json`` and ``launch.json``.

``record.json`` means "done" and is written last; until then nothing in
the cell folder said whether a cell was waiting in a scheduler's queue,
training, or had failed. Two small files say it, each written by one
process only, so that they never race:

- ``launch.json``: written by the process that *submits* the cell as a
  scheduler job (``experiment run --launcher slurm``): the job id, its log
  files, when it was submitted and with what resources.
- ``state.json``: written by the process that *runs* the cell (the local
  command, a torchrun rank or the SLURM job): ``running`` when it starts,
  ``failed`` with the error when it raises, ``preempted`` when the
  scheduler signals it to stop (it is requeued and resumes from its last
  checkpoint), ``done`` after the record.

``experiment status`` (tcmbench.experiment.status) reads both, with the
record and the scheduler's view. Torch-free; every read is checked against
its schema (tcmbench.experiment.schema.CELL_STATE / CELL_LAUNCH), and a
file that does not parse is reported, never a crash.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LAUNCH_FILE = "launch.json"
#: The lines of a failed job's log that ``experiment status`` shows.
TAIL_LINES = 15
_TAIL_BYTES = 64 * 1024
_MAX_BYTES = 1024 * 1024


def now() -> str:
    """Local time with its UTC offset, to the second (as the records)."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def launch_info(
    launcher: str,
    *,
    job_id: str | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
    world_size: int = 1,
    restarts: int | None = None,
) -> dict[str, Any]:
    """The ``launch`` entry of records and state files (schema.LAUNCH)."""
    return {
        "launcher": launcher,
        "job_id": job_id,
        "stdout": stdout,
        "stderr": stderr,
        "host": socket.gethostname(),
        "world_size": int(world_size),
        "restarts": restarts,
    }


def _write(path: Path, doc: Mapping[str, Any]) -> None:
    from tcmbench.safety.paths import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")


def _read(path: Path, schema: Any) -> dict[str, Any] | None:
    """The checked document, or None when absent; a file that does not
    parse or fit is logged (one line naming it) and treated as absent."""
    if not path.is_file():
        return None
    from tcmbench.safety.validation import check_document, parse_json, read_document

    try:
        doc = check_document(
            parse_json(read_document(path, max_bytes=_MAX_BYTES), str(path)), schema, str(path)
        )
    except TcmbenchError as exc:
        log.warning("%s (ignored)", exc)
        return None
    return doc if isinstance(doc, dict) else None


def write_state(
    cell_dir: Path,
    cell_id: str,
    state: str,
    launch: Mapping[str, Any] | None,
    *,
    error: str | None = None,
) -> None:
    """Record what the process running the cell is doing. ``running``
    starts the clock; later states keep that start and add ``ended``."""
    started = now() if state == "running" else (read_state(cell_dir) or {}).get("started")
    doc = {
        "schema": 1,
        "cell": cell_id,
        "state": state,
        "started": started,
        "ended": None if state == "running" else now(),
        "pid": os.getpid(),
        "error": error,
        "launch": dict(launch) if launch is not None else None,
    }
    cell_dir.mkdir(parents=True, exist_ok=True)
    _write(cell_dir / STATE_FILE, doc)


def read_state(cell_dir: Path) -> dict[str, Any] | None:
    from tcmbench.experiment.schema import CELL_STATE

    return _read(cell_dir / STATE_FILE, CELL_STATE)


def write_launch(
    cell_dir: Path, cell_id: str, launch: Mapping[str, Any], resources: Mapping[str, Any]
) -> None:
    """Record a submission (by the submitting process, never the job)."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    _write(
        cell_dir / LAUNCH_FILE,
        {
            "schema": 1,
            "cell": cell_id,
            "submitted": now(),
            "launch": dict(launch),
            "resources": dict(resources),
        },
    )


def read_launch(cell_dir: Path) -> dict[str, Any] | None:
    from tcmbench.experiment.schema import CELL_LAUNCH

    return _read(cell_dir / LAUNCH_FILE, CELL_LAUNCH)


def log_tail(path: str | os.PathLike[str] | None, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log file (at most its last 64 kB are
    read); empty when there is none."""
    if not path:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return kept[-lines:]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a local run's
    ``running`` state whose process is gone was stopped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
