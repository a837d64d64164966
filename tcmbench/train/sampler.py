"""The seeded, step-indexed sampler, few-shot subsets and held-out
validation splits.

The training data is one endless stream: epoch ``e`` is the permutation
``rng(seed, e)`` of the sample indices, and the stream is the epochs laid end
to end. Optimizer step ``s`` consumes stream positions ``[s * S, (s + 1) *
S)`` with ``S = micro_batch * accumulate * world_size``; inside a micro-step,
rank ``r`` takes its own contiguous slice. So the samples of a step depend
only on (seed, step) -- not on the number of workers, not on whether the run
was interrupted -- which is what makes ``--resume`` exact and makes two
processes with batch b see the same images as one process with batch 2b.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: a function of (seed, epoch) only."""
    return np.random.default_rng([int(seed), int(epoch), 0x5A11]).permutation(num_samples)


class StepSampler:
    """Yields ``(sample_index, draw)`` keys for micro-steps
    ``[start_micro_step, end_micro_step)`` of this rank.

    ``draw`` is the global stream position; the dataset seeds the sample's
    augmentation from it, so augmentations are reproducible too.
    """

    def __init__(
        self,
        num_samples: int,
        micro_batch: int,
        seed: int,
        start_micro_step: int,
        end_micro_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.num_samples = num_samples
        self.micro_batch = micro_batch
        self.seed = seed
        self.start = start_micro_step
        self.end = end_micro_step
        self.rank = rank
        self.world_size = world_size
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._perm_epoch:
            self._perm = epoch_permutation(self.num_samples, self.seed, epoch)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def positions(self, micro_step: int) -> range:
        """Stream positions this rank reads at ``micro_step``."""
        base = (micro_step * self.world_size + self.rank) * self.micro_batch
        return range(base, base + self.micro_batch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for m in range(self.start, self.end):
            for p in self.positions(m):
                yield self._index(p), p

    def __len__(self) -> int:
        return max(0, self.end - self.start) * self.micro_batch


def few_shot_subset(items: Sequence[T], fraction: float, seed: int) -> list[T]:
    """A deterministic subset of ``fraction`` of ``items`` (at least one),
    kept in the original order. Same (items, fraction, seed) -> same subset;
    a smaller fraction with the same seed is a subset of a larger one."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
    n = len(items)
    if fraction >= 1.0 or n == 0:
        return list(items)
    k = max(1, round(fraction * n))
    order = np.random.default_rng([int(seed), 0xF5]).permutation(n)
    chosen = np.sort(order[:k])
    return [items[i] for i in chosen]


def holdout_split(items: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(rest, held_out): ``fraction`` of ``items`` (at least one) held out as
    a validation split, both kept in the original order and disjoint.

    A function of (items, fraction, seed) only, drawn from its own random
    stream (not the few-shot one): ``few_shot_subset`` then picks the
    training subset from ``rest``, so validation images are never trained
    on. A smaller fraction with the same seed holds out a subset of a
    larger one. ``fraction`` 0 holds out nothing."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(items)
    if fraction == 0.0:
        return list(items), []
    k = max(1, round(fraction * n))
    if n - k < 1:
        raise ValueError(
            f"cannot hold out {fraction:g} of {n} images for validation and keep any to train on"
        )
    order = np.random.default_rng([int(seed), 0x7A1]).permutation(n)
    held = {int(i) for i in order[:k]}
    return [x for i, x in enumerate(items) if i not in held], [items[i] for i in sorted(held)]
