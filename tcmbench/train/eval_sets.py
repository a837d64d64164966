"""The images a run trains on and the splits it evaluates on.

Training samples come from the datasets' train splits (optionally minus a
held-out part, ``--val-fraction``); evaluation sets are either validation
splits, which may choose ``best/``, or test splits, which never do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcmbench.data.schema import Sample
from tcmbench.errors import TcmbenchError
from tcmbench.train.hyper import HELDOUT_SPLIT, VALIDATION_SPLITS

log = logging.getLogger(__name__)


def split_role(split: str) -> str:
    """``validation`` for a split that may choose best/, else ``test``."""
    return "validation" if split in (HELDOUT_SPLIT, *VALIDATION_SPLITS) else "test"


@dataclass
class EvalSet:
    """A dataset split the trainer scores periodically. ``role``
    ``validation`` (a held-out part of the training images, or a dataset's
    own validation split) chooses best/; ``test`` is logged only."""

    name: str
    split: str
    samples: list[Sample]
    protocol: str
    recipe: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    role: str = ""
    # What the split is, in words (the held-out share and seed), for records.
    description: str = ""

    def __post_init__(self) -> None:
        if not self.role:
            self.role = split_role(self.split)
        if self.role not in ("validation", "test"):
            raise TcmbenchError(f"eval set role must be 'validation' or 'test', got {self.role!r}")
        if not self.description:
            self.description = f"{self.name}/{self.split}"


def load_train_splits(
    datasets: Sequence[str],
    data_root: str | None,
    fraction: float,
    seed: int,
    val_fraction: float = 0.0,
) -> tuple[list[Sample], dict[str, list[Sample]]]:
    """(training samples, held-out validation samples by dataset).

    For each dataset: ``val_fraction`` of its training split is held out
    (:func:`tcmbench.train.sampler.holdout_split`), then ``fraction`` of the
    rest is kept (few-shot), both with ``seed``. ``data_root`` applies to a
    single dataset only (a joint run finds each set in its default place)."""
    from tcmbench.data.dataset import load_split
    from tcmbench.train.sampler import few_shot_subset, holdout_split

    if data_root is not None and len(datasets) > 1:
        raise TcmbenchError(
            "--data-root names one dataset's folder; joint training uses each dataset's default location"
        )
    out: list[Sample] = []
    held: dict[str, list[Sample]] = {}
    for name in datasets:
        samples, _ = load_split(name, "train", data_root=data_root, need_images=True)
        if not samples:
            raise TcmbenchError(f"dataset {name!r} has no training images")
        try:
            rest, val = holdout_split(samples, val_fraction, seed)
        except ValueError as exc:
            raise TcmbenchError(f"--val-fraction on {name}: {exc}") from None
        subset = few_shot_subset(rest, fraction, seed)
        log.info(
            "%s/train: %d of %d images%s",
            name,
            len(subset),
            len(samples),
            f" ({len(val)} held out for validation)" if val else "",
        )
        out.extend(subset)
        if val:
            held[name] = val
    return out, held


def load_train_samples(
    datasets: Sequence[str],
    data_root: str | None,
    fraction: float,
    seed: int,
    val_fraction: float = 0.0,
) -> list[Sample]:
    """The training samples of :func:`load_train_splits` (held-out
    validation images excluded)."""
    return load_train_splits(datasets, data_root, fraction, seed, val_fraction)[0]


def validation_sets(
    held: Mapping[str, list[Sample]],
    val_fraction: float,
    seed: int,
    spec: Any,
    recipe_name: str | None,
    run_recipe: Mapping[str, Any] | None = None,
) -> list[EvalSet]:
    """One validation :class:`EvalSet` per dataset with held-out images:
    the dataset's default protocol and test recipe (``run_recipe`` when
    given: the run's --recipe, or the one chosen for its --init-from
    checkpoint), as a test split."""
    from tcmbench.data.dataset import get_dataset_config
    from tcmbench.inference import dataset_protocol

    sets = []
    for name, samples in held.items():
        protocol, params = dataset_protocol(get_dataset_config(name), None)
        sets.append(
            EvalSet(
                name,
                HELDOUT_SPLIT,
                list(samples),
                protocol,
                _eval_recipe(spec, recipe_name or name, run_recipe),
                params,
                role="validation",
                description=(
                    f"{name}/train: {len(samples)} images held out "
                    f"(--val-fraction {val_fraction:g}, seed {seed})"
                ),
            )
        )
    return sets


def load_eval_sets(
    names: Sequence[str],
    split: str,
    data_root: str | None,
    limit: int | None,
    spec: Any,
    recipe_name: str | None,
    run_recipe: Mapping[str, Any] | None = None,
) -> list[EvalSet]:
    """Evaluation splits with their default protocols and test recipes
    (``run_recipe`` when given, as :func:`validation_sets`)."""
    from tcmbench.data.dataset import get_dataset_config, load_split

    sets = []
    for name in names:
        samples, _ = load_split(name, split, data_root=data_root, need_images=True)
        if limit:
            samples = samples[: int(limit)]
        from tcmbench.inference import dataset_protocol

        protocol, params = dataset_protocol(get_dataset_config(name), None)
        recipe = _eval_recipe(spec, recipe_name or name, run_recipe)
        sets.append(EvalSet(name, split, samples, protocol, recipe, params))
    return sets


def _eval_recipe(spec: Any, name: str, run_recipe: Mapping[str, Any] | None) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(run_recipe)) if run_recipe is not None else spec.recipe(name)


# --------------------------------------------------------------------------
# The trainer
