"""The poly learning-rate schedule of DBNet / TCM.

``lr = (base - min) * (1 - progress / total) ** power + min`` with power 0.9
and min 1e-7, where progress counts optimizer steps (``by="step"``) or whole
epochs (``by="epoch"``, the official recipes: the rate changes once per pass
over the data). The rate is a pure function of the step, so resuming needs
only the step; ``state_dict`` exists for symmetry with torch schedulers.
An optional linear warm-up over the first ``warmup`` steps multiplies the
factor (the official recipes use none).
"""

from __future__ import annotations

from typing import Any

import torch


class PolyLR:
    """Sets each param group's ``lr`` to ``poly(progress) * base`` where the
    group's base is its ``lr`` at construction (so per-module LR factors
    carry through)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        power: float = 0.9,
        min_lr: float = 1e-7,
        by: str = "step",
        steps_per_epoch: float = 1.0,
        warmup: int = 0,
    ) -> None:
        if by not in ("step", "epoch"):
            raise ValueError(f"poly schedule 'by' must be 'step' or 'epoch', got {by!r}")
        self.optimizer = optimizer
        self.total_steps = max(1, int(total_steps))
        self.power = power
        self.min_lr = min_lr
        self.by = by
        self.steps_per_epoch = max(float(steps_per_epoch), 1e-12)
        self.warmup = max(0, int(warmup))
        self.step_count = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.apply(0)

    def _progress(self, step: int) -> tuple[float, float]:
        if self.by == "step":
            return float(step), float(self.total_steps)
        total_epochs = max(1, int(-(-self.total_steps // self.steps_per_epoch)))
        return float(int(step // self.steps_per_epoch)), float(total_epochs)

    def factor(self, step: int) -> float:
        """(1 - progress / total) ** power, clamped at 0."""
        done, total = self._progress(step)
        poly = max(0.0, 1.0 - done / total) ** self.power
        if step < self.warmup:
            poly *= (step + 1) / self.warmup
        return poly

    def lr_of(self, base: float, step: int) -> float:
        if base == 0.0:
            return 0.0
        return (base - self.min_lr) * self.factor(step) + self.min_lr

    def apply(self, step: int) -> None:
        self.step_count = step
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_of(group["initial_lr"], step)

    def step(self) -> None:
        self.apply(self.step_count + 1)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "total_steps": self.total_steps,
            "power": self.power,
            "min_lr": self.min_lr,
            "by": self.by,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup": self.warmup,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("total_steps", "power", "min_lr", "by", "steps_per_epoch", "warmup"):
            setattr(self, key, state[key])
        self.apply(int(state["step_count"]))
