"""``train_log.jsonl`` across an interruption.

A run killed after its checkpoint at step K has logged rows for steps past
K (train losses, evaluations, perhaps a later checkpoint) that the resumed
run will log again. :func:`rewind` drops those rows, so the file holds one
row per step and event, in order, as an uninterrupted run's would (the
resumed run appends a second ``start`` event with its ``start_step``).
The file is rewritten atomically (temporary file + rename) and only when
something is dropped; otherwise it stays append-only. A last line cut
short by the kill is dropped too.

:func:`elapsed_at` reads the ``elapsed_s`` logged at step K, for training
states saved before they recorded it, so ``elapsed_s`` continues from the
interrupted run's clock instead of restarting at 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_NAME = "train_log.jsonl"


@dataclass
class Rewind:
    """What :func:`rewind` found: the last step the interrupted run logged
    (None: no step logged) and how many rows it dropped."""

    last_logged_step: int | None
    dropped_rows: int

    def lost_steps(self, resumed_step: int) -> int:
        """Steps trained after the checkpoint and trained again now."""
        if self.last_logged_step is None:
            return 0
        return max(0, self.last_logged_step - resumed_step)


def _step_of(row: Any) -> int | None:
    if isinstance(row, dict):
        step = row.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            return step
    return None


def rewind(path: Path, step: int) -> Rewind:
    """Drop the rows of ``path`` logged for steps after ``step``."""
    if not path.is_file():
        return Rewind(None, 0)
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: b"" when the file ends with a newline
    kept: list[bytes] = []
    last: int | None = None
    dropped = 1 if tail.strip() else 0
    for line in complete:
        try:
            row = json.loads(line)
        except ValueError:
            kept.append(line)  # not ours to judge; kept as it is
            continue
        row_step = _step_of(row)
        if row_step is not None:
            last = row_step if last is None else max(last, row_step)
            if row_step > step:
                dropped += 1
                continue
        kept.append(line)
    if dropped:
        from tcmbench.safety.paths import atomic_write_bytes

        atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
    return Rewind(last, dropped)


def elapsed_at(path: Path, step: int) -> float | None:
    """``elapsed_s`` of the last ``train`` row at or before ``step``."""
    if not path.is_file():
        return None
    found: float | None = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        row_step = _step_of(row)
        if (
            row_step is not None
            and row_step <= step
            and row.get("event") == "train"
            and isinstance(row.get("elapsed_s"), (int, float))
        ):
            found = float(row["elapsed_s"])
    return found
