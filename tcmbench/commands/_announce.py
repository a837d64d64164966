"""The first line of a command that loads a model.

Importing torch and building a detector takes 8-10 s on a small machine;
without a word first, a user cannot tell a slow start from a hung one.
:func:`announce_start` prints what the command is about to do before any
of that, on stderr (stdout may carry JSON or the results table alone), and
only on the main process under ``torchrun`` (one line, not one per rank),
and only where stderr is a terminal, as the progress bars: a script or a
log that captures stderr gets exactly the one-line errors tcmbench
promises (``TCMBENCH_ANNOUNCE=1`` forces the line, ``0`` silences it).
"""

from __future__ import annotations

import os
import sys

import click


def _is_main_process() -> bool:
    """Rank 0 or no launcher, read from the environment ``torchrun`` sets
    (the process group does not exist yet, and making it imports torch)."""
    return os.environ.get("RANK", "0") == "0"


def _wanted() -> bool:
    forced = os.environ.get("TCMBENCH_ANNOUNCE")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def announce_start(command: str, what: str) -> None:
    """``"<command>: <what> (loading the model...)"`` on stderr, at once."""
    if _is_main_process() and _wanted():
        click.echo(f"{command}: {what} (loading the model...)", err=True)
