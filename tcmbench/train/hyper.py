"""What a training run is: its configuration and the hyper-parameters it
resolves to.

A :class:`TrainConfig` is the command line; :func:`resolve_hyper` merges it
with the detector's recipe into :class:`Hyper`, the numbers the loop runs
with. The too-short check lives here too: it compares those numbers with the
shortest run measured to learn anything, before a minute is spent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tcmbench.errors import TcmbenchError

log = logging.getLogger(__name__)

# Run settings a resumed run may change: they do not alter the numbers.
RESUME_OVERRIDABLE = ("device", "workers", "data_root", "progress", "output", "resume")

#: Weight-decay exempt kinds when neither --no-decay nor the recipe's
#: ``optimizer.no_decay`` says: norm layers only, as the official TCM
#: configs (TCM.md section 7).
DEFAULT_NO_DECAY = ("norm",)
#: The set tcmbench used before it became configurable; a checkpoint saved
#: then resumes with it (its optimizer state has those groups).
LEGACY_NO_DECAY = ("norm", "bias")
#: Splits whose evaluation may choose best/ (besides a held-out part of
#: the training split, ``--val-fraction``); any other split is a test split.
VALIDATION_SPLITS = ("val", "valid", "validation", "dev")
#: The EvalSet split name of the images held out by --val-fraction.
HELDOUT_SPLIT = "heldout"
#: The too-short check's minimum where a recipe sets no
#: ``train_loop.min_steps``: 600 steps of batch 8 (4800 training images),
#: the shortest from-scratch run measured to learn anything (DBNet on
#: synthtext-mini, docs/benchmarks/training.md: 600 steps hmean 0.867, 400
#: steps 0.004). Real photos need more, so it is a floor that catches runs
#: far too short, never a length that suffices.
DEFAULT_MIN_STEPS = 600
DEFAULT_MIN_STEPS_BATCH = 8
_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
    "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]"
)


class TrainingDivergedError(TcmbenchError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything ``tcmbench train`` was asked for. ``None`` = the recipe's
    value (see :func:`resolve_hyper`)."""

    plugin: str = "dbnet"
    datasets: list[str] = field(default_factory=lambda: ["synthtext-mini"])
    recipe: str | None = None
    output: str | None = None
    backbone: str | None = None
    pretrained_backbone: bool | None = None
    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    accumulate: int = 1
    lr_schedule: str | None = None  # "step" | "epoch"
    eval_every: int | None = None
    eval_datasets: list[str] | None = None  # default: the first training dataset
    eval_split: str = "test"
    eval_limit: int | None = None
    eval_batch_size: int = 1
    save_every: int | None = None
    keep_checkpoints: int = 2
    train_fraction: float = 1.0
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    data_root: str | None = None
    tcm: dict[str, Any] | None = None
    amp: bool = True
    log_every: int = 10
    cache_images: bool | None = None
    progress: bool = True
    resume: str | None = None
    # Fine-tuning: weights only (no optimizer / step state) from a checkpoint
    # folder, an hf:// reference or an official TCM checkpoint.
    init_from: str | None = None
    # Share of the training images held out as a validation split; best/ is
    # chosen on it (never on a test split).
    val_fraction: float = 0.0
    # Parameter kinds exempt from weight decay (None = the recipe's
    # optimizer.no_decay, else the official set).
    no_decay: list[str] | None = None
    tensorboard: bool = True
    # Run an --init-from load that fills less than MIN_INIT_SHARE of the
    # parameter values (tcmbench.train.init_from.check_coverage).
    allow_partial_init: bool = False
    # BatchNorm layers in eval mode while training (None = the recipe's
    # train_loop.norm_eval).
    norm_eval: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Hyper:
    """Resolved training hyper-parameters (command line over recipe over
    defaults); saved with every checkpoint."""

    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    batch_size: int
    accumulate: int
    total_steps: int
    lr_power: float
    min_lr: float
    lr_by: str
    warmup: int
    eval_every: int
    save_every: int
    workers: int
    cache_images: bool
    grad_clip: float | None
    # Parameter kinds without weight decay (Detector.param_groups).
    no_decay: list[str] = field(default_factory=lambda: list(DEFAULT_NO_DECAY))
    # The too-short minimum: the recipe's train_loop.min_steps at its
    # batch_size, else DEFAULT_MIN_STEPS at DEFAULT_MIN_STEPS_BATCH
    # (min_steps_from "recipe" or "default"); None = no minimum.
    min_steps: int | None = None
    min_steps_batch: int | None = None
    min_steps_from: str = "recipe"
    # BatchNorm layers stay in eval mode (running statistics frozen).
    norm_eval: bool = False
    # train_loop.train_only: for the first train_only_steps steps only the
    # parameters under these prefixes train (tcmbench.train.train_only).
    train_only_prefixes: list[str] = field(default_factory=list)
    train_only_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_no_decay(cfg: TrainConfig, recipe: Mapping[str, Any]) -> list[str]:
    """``--no-decay`` over the recipe's ``optimizer.no_decay`` over
    :data:`DEFAULT_NO_DECAY`; ``["none"]`` (or an empty list) = exempt
    nothing. Unknown kinds are an error naming the valid ones."""
    from tcmbench.models.detector import check_no_decay

    opt = recipe.get("optimizer") or {}
    if cfg.no_decay is not None:
        kinds: Any = cfg.no_decay
    elif "no_decay" in opt:
        kinds = opt["no_decay"] if opt["no_decay"] is not None else []
    else:
        kinds = list(DEFAULT_NO_DECAY)
    if isinstance(kinds, (list, tuple)) and list(kinds) == ["none"]:
        kinds = []
    return check_no_decay(kinds)


def too_short(hyper: Hyper, world_size: int) -> dict[str, Any] | None:
    """Whether the run sees fewer training images than the recipe's
    ``train_loop.min_steps`` at the recipe's batch size (a smaller batch
    needs more steps, a larger one fewer), or than the default minimum
    where the recipe sets none: a description, or None. For a run trained
    from scratch: the trainer skips it for a fine-tune (``--init-from``)."""
    if not hyper.min_steps:
        return None
    recipe_batch = int(hyper.min_steps_batch or hyper.batch_size)
    per_step = hyper.batch_size * hyper.accumulate * world_size
    seen = hyper.total_steps * per_step
    needed = hyper.min_steps * recipe_batch
    if seen >= needed:
        return None
    return {
        "too_short": True,
        "min_steps": hyper.min_steps,
        "min_steps_batch": recipe_batch,
        "min_images": needed,
        "images_seen": seen,
        "min_steps_at_this_batch": math.ceil(needed / per_step),
        "min_steps_from": hyper.min_steps_from,
    }


def too_short_message(hyper: Hyper, short: Mapping[str, Any], world_size: int) -> str:
    """The too-short warning: what the run sees, the minimum and where it
    comes from, the steps it takes at this batch size."""
    if short.get("min_steps_from") == "default":
        minimum = (
            "the recipe sets no train_loop.min_steps, so the default minimum applies: "
            f"{short['min_steps']} steps x {short['min_steps_batch']} = {short['min_images']}"
        )
        below = (
            "below it a detector trained from scratch typically finds nothing (hmean 0; "
            "the default is the shortest run measured to learn, DBNet on synthtext-mini)"
        )
    else:
        minimum = (
            f"the recipe's minimum is {short['min_steps']} steps x {short['min_steps_batch']} "
            f"= {short['min_images']}"
        )
        below = "below it the detector typically finds nothing (hmean 0)"
    return (
        f"this run is too short to learn: {hyper.total_steps} steps x "
        f"{hyper.batch_size * hyper.accumulate * world_size} images = {short['images_seen']} "
        f"training images, {minimum} ({short['min_steps_at_this_batch']} steps at this batch "
        f"size); {below}"
    )


def resolve_hyper(
    cfg: TrainConfig, recipe: Mapping[str, Any], num_samples: int, world_size: int
) -> Hyper:
    """Merge the command line with the recipe (``optimizer``, ``schedule``,
    ``batch_size``, ``steps`` / ``epochs``, optional ``train_loop``).

    Length: ``--steps``, else ``--epochs`` (or the recipe's ``epochs``)
    converted with the effective batch ``batch_size * accumulate *
    world_size``, else the recipe's ``steps``."""
    opt = dict(recipe.get("optimizer") or {})
    sched = dict(recipe.get("schedule") or {})
    loop = dict(recipe.get("train_loop") or {})
    batch = int(cfg.batch_size or recipe.get("batch_size") or 16)
    accumulate = max(1, int(cfg.accumulate))
    per_step = batch * accumulate * world_size
    if cfg.steps is not None:
        total = int(cfg.steps)
    elif cfg.epochs is not None:
        total = math.ceil(float(cfg.epochs) * num_samples / per_step)
    elif recipe.get("steps") is not None:
        total = int(recipe["steps"])
    elif recipe.get("epochs") is not None:
        total = math.ceil(float(recipe["epochs"]) * num_samples / per_step)
    else:
        raise TcmbenchError(
            "how long to train? give --steps N or --epochs E (the recipe sets neither)"
        )
    if total < 1:
        raise TcmbenchError(f"training length must be at least one step (got {total})")
    if sched.get("name", "poly") != "poly":
        raise TcmbenchError(
            f"learning-rate schedule {sched.get('name')!r} is not supported (poly only)"
        )
    lr_by = cfg.lr_schedule or sched.get("by", "epoch")
    if lr_by not in ("step", "epoch"):
        raise TcmbenchError(f"--lr-schedule must be 'step' or 'epoch', got {lr_by!r}")
    workers = cfg.workers if cfg.workers is not None else int(loop.get("workers", 2))
    cache = (
        cfg.cache_images if cfg.cache_images is not None else bool(loop.get("cache_images", False))
    )
    clip = loop.get("grad_clip")
    min_steps = loop.get("min_steps")
    if min_steps is not None and (
        isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 1
    ):
        raise TcmbenchError(
            f"recipe train_loop.min_steps must be a positive integer, got {min_steps!r}"
        )
    min_from = "recipe" if min_steps is not None else "default"
    norm_eval = loop.get("norm_eval", False)
    if not isinstance(norm_eval, bool):
        raise TcmbenchError(f"recipe train_loop.norm_eval must be true or false, got {norm_eval!r}")
    if cfg.norm_eval is not None:
        norm_eval = bool(cfg.norm_eval)
    from tcmbench.train.train_only import parse as parse_train_only

    train_only = parse_train_only(loop.get("train_only"))
    return Hyper(
        optimizer=str(cfg.optimizer or opt.get("name", "adam")).lower(),
        lr=float(cfg.lr if cfg.lr is not None else opt.get("lr", 1e-3)),
        weight_decay=float(
            cfg.weight_decay if cfg.weight_decay is not None else opt.get("weight_decay", 0.0)
        ),
        momentum=float(opt.get("momentum", 0.9)),
        batch_size=batch,
        accumulate=accumulate,
        total_steps=total,
        lr_power=float(sched.get("power", 0.9)),
        min_lr=float(sched.get("min_lr", 1e-7)),
        lr_by=lr_by,
        warmup=int(sched.get("warmup") or 0),
        eval_every=int(cfg.eval_every if cfg.eval_every is not None else loop.get("eval_every", 0)),
        save_every=int(cfg.save_every if cfg.save_every is not None else loop.get("save_every", 0)),
        workers=max(0, int(workers)),
        cache_images=cache,
        grad_clip=float(clip) if clip else None,
        no_decay=resolve_no_decay(cfg, recipe),
        min_steps=min_steps if min_steps is not None else DEFAULT_MIN_STEPS,
        min_steps_batch=(
            int(recipe.get("batch_size") or 16) if min_steps else DEFAULT_MIN_STEPS_BATCH
        ),
        min_steps_from=min_from,
        norm_eval=norm_eval,
        train_only_prefixes=train_only.prefixes,
        train_only_steps=train_only.steps,
    )
