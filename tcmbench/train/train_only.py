"""Recipe ``train_loop.train_only``: for the first steps, train a part only.

``{"prefixes": ["head.thr_branch."], "steps": 60}``: during optimizer steps
1..60 only the parameters whose names start with one of the prefixes are
updated; the others keep their values exactly (their gradients are dropped
before the optimizer step, so they get no update, no weight decay and no
optimizer state). From step 61 everything trains.

Why: a model imported from an inference graph (``tcmbench import ppocr``)
has a good probability branch but a freshly initialised threshold branch
(the graph does not compute it). Fine-tuning all at once sends that random
branch's large loss into the shared neck and backbone; training the branch
alone first lets the threshold loss become small before it reaches the
features the detector's output depends on.

The steps are a function of the step index, so ``--resume`` continues
exactly; under DDP every rank drops the same gradients after they are
averaged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tcmbench.errors import TcmbenchError

KEY = "train_loop.train_only"


@dataclass
class TrainOnly:
    """The resolved setting; ``steps`` 0 = off."""

    prefixes: list[str] = field(default_factory=list)
    steps: int = 0

    def active(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based) trains the part only."""
        return self.steps > 0 and step <= self.steps


def parse(value: Any) -> TrainOnly:
    """The recipe's value, checked; a wrong one is one line naming the key."""
    if value is None:
        return TrainOnly()
    if not isinstance(value, Mapping) or set(value) - {"prefixes", "steps"}:
        raise TcmbenchError(
            f'recipe {KEY} must be {{"prefixes": [NAME, ...], "steps": N}}, got {value!r}'
        )
    prefixes = value.get("prefixes")
    steps = value.get("steps")
    if (
        not isinstance(prefixes, list)
        or not prefixes
        or not all(isinstance(p, str) and p for p in prefixes)
    ):
        raise TcmbenchError(
            f"recipe {KEY}.prefixes must be a non-empty list of parameter-name prefixes, "
            f"got {prefixes!r}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TcmbenchError(f"recipe {KEY}.steps must be a positive integer, got {steps!r}")
    return TrainOnly(list(prefixes), steps)


def held_parameters(model: Any, setting: TrainOnly) -> list[Any]:
    """The parameters held fixed while ``setting`` is active. A prefix that
    names no parameter is an error (a typo would freeze the whole model)."""
    if not setting.steps:
        return []
    names = [name for name, _ in model.named_parameters()]
    for prefix in setting.prefixes:
        if not any(name.startswith(prefix) for name in names):
            tops = sorted({name.split(".", 1)[0] + "." for name in names})
            raise TcmbenchError(
                f"recipe {KEY}.prefixes: {prefix!r} names no parameter of this model "
                f"(its parameter names start with {', '.join(tops)})"
            )
    prefixes = tuple(setting.prefixes)
    return [p for name, p in model.named_parameters() if not name.startswith(prefixes)]


def describe(model: Any, setting: TrainOnly) -> str:
    """``for the first 60 steps only head.thr_branch.* trains (164,417 of
    603,418 parameter values)``."""
    prefixes = tuple(setting.prefixes)
    total = trained = 0
    for name, param in model.named_parameters():
        total += int(param.numel())
        if name.startswith(prefixes):
            trained += int(param.numel())
    parts = ", ".join(f"{p}*" for p in setting.prefixes)
    return (
        f"for the first {setting.steps} steps only {parts} trains ({trained:,} of {total:,} "
        "parameter values; recipe train_loop.train_only), then every parameter"
    )
