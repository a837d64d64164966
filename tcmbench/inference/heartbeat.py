"""A line every so often when the progress bar is off.

``--no-progress`` (or a log file instead of a terminal) should not mean
minutes of silence: a user, or a job scheduler's log, must be able to tell
a slow run from a hung one. :class:`Heartbeat` says one line (done/total,
elapsed, ETA and whatever the caller adds, such as the last loss) at most
every :func:`heartbeat_seconds`; training and inference use it when their
bar is off. The interval lives here only; ``TCMBENCH_HEARTBEAT_S``
overrides it (0 = a line at every update, for tests).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between two heartbeat lines unless ``TCMBENCH_HEARTBEAT_S`` says otherwise.
DEFAULT_HEARTBEAT_S = 30.0
HEARTBEAT_ENV = "TCMBENCH_HEARTBEAT_S"


def heartbeat_seconds() -> float:
    """The interval: ``TCMBENCH_HEARTBEAT_S`` when it is a finite number >= 0,
    else :data:`DEFAULT_HEARTBEAT_S` (a bad value is logged, never fatal: a
    progress setting must not stop a run)."""
    raw = os.environ.get(HEARTBEAT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_HEARTBEAT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        log.warning(
            "%s=%r is not a number of seconds >= 0; using %g",
            HEARTBEAT_ENV,
            raw,
            DEFAULT_HEARTBEAT_S,
        )
        return DEFAULT_HEARTBEAT_S
    return value


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: short enough for one line."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Heartbeat:
    """Says ``"<what> k/N, <elapsed> elapsed, ETA <eta>[, extra]"`` through
    ``say`` when :meth:`update` is called and ``every`` seconds have passed
    since the last line (or since the start).

    ``start`` is where the count begins (a resumed training run starts at
    its step): the ETA comes from the rate of this process's work only.
    ``enabled=False`` makes every call a no-op (the bar is showing).
    """

    def __init__(
        self,
        what: str,
        total: int,
        say: Callable[[str], Any],
        *,
        enabled: bool = True,
        start: int = 0,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = int(total)
        self.say = say
        self.enabled = enabled
        self.start = int(start)
        self.every = heartbeat_seconds() if every is None else float(every)
        self.clock = clock
        self.t0 = clock()
        self.last = self.t0
        self.lines = 0

    def update(self, done: int, extra: str = "") -> None:
        """Report ``done`` of ``total`` if a line is due."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        worked = done - self.start
        remaining = self.total - done
        eta = elapsed / worked * remaining if worked > 0 else math.nan
        line = (
            f"{self.what} {done}/{self.total}, {format_seconds(elapsed)} elapsed, "
            f"ETA {format_seconds(eta)}"
        )
        self.say(f"{line}, {extra}" if extra else line)
        self.lines += 1
