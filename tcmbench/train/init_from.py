"""``tcmbench train --init-from``: start a run from existing weights.

Interface (implementation lands with issue 9): :func:`init_weights` loads
weights only (no optimizer / step state) into a freshly built model and
returns an :class:`InitReport` whose :meth:`InitReport.table` the trainer
hands to its ``announce`` callback (the CLI prints it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcmbench.errors import TcmbenchError


@dataclass
class InitReport:
    """What ``--init-from`` did, key by key."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def table(self) -> str:
        return (
            f"| init-from {self.source} | keys |\n|---|---|\n"
            f"| loaded | {len(self.loaded)} |\n| missing | {len(self.missing)} |\n"
            f"| unexpected | {len(self.unexpected)} |\n| shape mismatch | {len(self.mismatched)} |"
        )


def init_weights(model: Any, ref: str, spec: Any) -> InitReport:
    """Load the weights named by ``ref`` into ``model``."""
    raise TcmbenchError("--init-from is not implemented yet")
