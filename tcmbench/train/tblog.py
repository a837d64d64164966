"""TensorBoard event files beside ``train_log.jsonl`` (``OUT/tensorboard``).

A thin layer over :class:`torch.utils.tensorboard.SummaryWriter`, written
by the main rank only. TensorBoard is an optional extra
(``tcmbench[tensorboard]``): without it the run goes on with one warning
and no event files, since ``train_log.jsonl`` holds the same numbers.

Tags: ``train/<loss term>`` and ``train/lr`` for every logged training
step; ``<role>/<dataset>/<split>/{precision,recall,hmean}`` for every
evaluation (role ``validation`` or ``test``), so validation and test
curves sit in separate sections of the TensorBoard page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
EVAL_METRICS = ("precision", "recall", "hmean")


def eval_tags(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one eval record of ``train_log.jsonl``, by tag."""
    prefix = f"{record.get('role', 'test')}/{record['dataset']}/{record['split']}"
    return {f"{prefix}/{m}": float(record[m]) for m in EVAL_METRICS}


class TensorBoardLog:
    """Scalars into ``run_dir/tensorboard``; every method is a no-op when
    disabled or when tensorboard is not installed."""

    def __init__(self) -> None:
        self._writer: Any = None

    def open(self, run_dir: Path, start_step: int, warn: Callable[[str], None]) -> bool:
        """Start writing. A resumed run (``start_step`` > 0) drops the
        events an interrupted run wrote after its checkpoint (TensorBoard's
        ``purge_step``), as the steps are trained again. Returns whether
        event files are written."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warn(
                "tensorboard is not installed: no event files are written "
                "(pip install 'tcmbench[tensorboard]'); train_log.jsonl has the same numbers"
            )
            return False
        self._writer = SummaryWriter(
            log_dir=str(run_dir / TENSORBOARD_DIR),
            purge_step=start_step + 1 if start_step > 0 else None,
        )
        return True

    @property
    def active(self) -> bool:
        return self._writer is not None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self._writer is None:
            return
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), global_step=step)

    def train(self, step: int, lr: float, losses: Mapping[str, float]) -> None:
        """One ``train`` event: every loss term and the learning rate."""
        self.scalars({**{f"train/{k}": v for k, v in losses.items()}, "train/lr": lr}, step)

    def eval(self, record: Mapping[str, Any]) -> None:
        """One ``eval`` event (precision / recall / hmean)."""
        self.scalars(eval_tags(record), int(record["step"]))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close (idempotent; called at the end and on errors)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:  # never hide the error that ended the run
                log.warning("closing the TensorBoard writer failed: %s", exc)
            self._writer = None
