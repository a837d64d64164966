"""A cache of predictions, so re-scoring never runs the network again.

Scoring a checkpoint with another protocol or ``--sweep`` must not run the
network again: :class:`PredictionCache` stores predictions under
``<cache>/predictions/<key>.json.gz``, the key hashing the checkpoint's
sha256, the dataset, split and sample list, and the test-time settings
(scale and postprocessing). Entries are written atomically; a damaged one
is a logged miss, never a traceback.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench import __version__
from tcmbench.data.schema import Prediction, Sample
from tcmbench.inference.world import current_world

log = logging.getLogger(__name__)

CACHE_VERSION = 2
# Recipe keys that change what inference produces (part of the cache key).
TEST_KEYS = ("test", "normalize", "postprocess")


def test_settings(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a recipe that inference depends on."""
    return {k: recipe[k] for k in TEST_KEYS if k in recipe}


def samples_fingerprint(samples: Sequence[Sample]) -> str:
    """Hash of the sample list (ids, image paths, sizes and file sizes):
    a re-prepared dataset gets fresh predictions."""
    h = hashlib.sha256()
    for s in samples:
        size = -1
        if s.image_path:
            with contextlib.suppress(OSError):  # a missing image hashes as -1
                size = os.stat(s.image_path).st_size
        h.update(f"{s.id}\0{s.image_path}\0{s.width}x{s.height}\0{size}\n".encode())
    return h.hexdigest()


def cache_key(
    checkpoint_sha256: str,
    dataset: str,
    split: str,
    samples: Sequence[Sample],
    recipe: Mapping[str, Any],
) -> dict[str, Any]:
    """What identifies a set of predictions (also stored in the entry)."""
    return {
        "checkpoint": checkpoint_sha256,
        "dataset": dataset,
        "split": split,
        "samples": samples_fingerprint(samples),
        "test": test_settings(recipe),
        # Bump CACHE_VERSION when inference changes what it produces.
        "version": CACHE_VERSION,
        "tcmbench": __version__,
    }


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


class PredictionCache:
    """Predictions on disk, one gzip JSON per key."""

    def __init__(self, root: str | Path | None = None) -> None:
        from tcmbench.safety.paths import cache_dir

        self.root = Path(root) if root is not None else cache_dir() / "predictions"

    def path(self, key: Mapping[str, Any]) -> Path:
        return self.root / f"{_digest(key)}.json.gz"

    def load(self, key: Mapping[str, Any]) -> dict[str, list[Prediction]] | None:
        """The cached predictions, or None: absent, for another key, or
        damaged. A damaged entry (unreadable, hand-edited, truncated) is
        logged once and treated as a miss, so the caller recomputes and
        overwrites it; it must never turn into a traceback or a result
        computed from edited predictions."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            doc = json.loads(gzip.decompress(p.read_bytes()))
        except (OSError, ValueError, EOFError) as exc:
            _damaged_entry(p, f"unreadable: {exc}")
            return None
        if not isinstance(doc, dict):
            _damaged_entry(p, f"a JSON {type(doc).__name__}, not an object")
            return None
        if doc.get("key") != json.loads(json.dumps(dict(key), sort_keys=True, default=str)):
            return None  # another key's entry (a digest collision): a plain miss
        raw = doc.get("predictions")
        if not isinstance(raw, dict):
            _damaged_entry(p, "no 'predictions' object")
            return None
        digest = doc.get("predictions_sha256")
        if digest is not None and digest != _predictions_digest(raw):
            _damaged_entry(p, "its predictions do not match their checksum (edited?)")
            return None
        try:
            return {str(sid): [_prediction(d) for d in preds] for sid, preds in raw.items()}
        except (KeyError, TypeError, ValueError) as exc:
            _damaged_entry(p, f"malformed prediction: {exc}")
            return None

    def save(self, key: Mapping[str, Any], predictions: Mapping[str, Sequence[Prediction]]) -> Path:
        from tcmbench.safety.paths import atomic_write_bytes

        raw = {sid: [p.to_dict() for p in preds] for sid, preds in predictions.items()}
        doc = {
            "key": json.loads(json.dumps(dict(key), sort_keys=True, default=str)),
            "predictions": raw,
            "predictions_sha256": _predictions_digest(raw),
        }
        p = self.path(key)
        atomic_write_bytes(p, gzip.compress(json.dumps(doc).encode(), compresslevel=5))
        return p


def _damaged_entry(path: Path, reason: str) -> None:
    log.warning("ignoring damaged prediction cache entry %s (%s); recomputing", path, reason)


def _predictions_digest(raw: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _prediction(d: Any) -> Prediction:
    """A cached prediction, checked: a dict with a finite even-length
    ``polygon`` and an optional finite ``score``."""
    if not isinstance(d, dict):
        raise TypeError(f"{type(d).__name__} instead of an object")
    pred = Prediction.from_dict(d)
    if pred.polygon.size == 0 or not np.isfinite(pred.polygon).all():
        raise ValueError(f"polygon {d.get('polygon')!r:.80}")
    if pred.score is not None and not math.isfinite(pred.score):
        raise ValueError(f"score {pred.score}")
    return pred


def cached_predict(
    key: Mapping[str, Any] | None,
    compute: Callable[[], dict[str, list[Prediction]]],
    cache: PredictionCache | None = None,
) -> tuple[dict[str, list[Prediction]], bool]:
    """(predictions, hit): from the cache when ``key`` is there, otherwise
    ``compute()`` and store (rank 0). Every rank takes the same branch, so
    a torchrun job never deadlocks on a cache only one rank can see."""
    if key is None:
        return compute(), False
    cache = cache or PredictionCache()
    w = current_world()
    if not w.distributed:  # one process: no collective calls (and no torch)
        hit = cache.load(key)
        if hit is not None:
            return hit, True
        preds = compute()
        cache.save(key, preds)
        return preds, False
    from tcmbench.inference.world import barrier, broadcast_object

    hit = cache.load(key) if w.is_main else None
    if broadcast_object(hit is not None):
        return broadcast_object(hit), True
    preds = compute()
    if w.is_main:
        cache.save(key, preds)
    barrier()
    return preds, False
