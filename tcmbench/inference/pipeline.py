"""Running a detector over samples, with a prediction cache.

:func:`predict_samples` resizes each image to the recipe's test scale
(:class:`tcmbench.data.transforms.InferenceTransform`), batches images of
different sizes by zero-padding, runs the model and its postprocessor, and
returns polygons in original-image coordinates. Under ``torchrun`` every
rank takes every ``world_size``-th image and the predictions are gathered,
so scoring happens once on complete results.

Scoring a checkpoint with another protocol or ``--sweep`` must not run the
network again: :class:`PredictionCache` stores predictions under
``<cache>/predictions/<key>.json.gz``, the key hashing the checkpoint's
sha256, the dataset, split and sample list, and the test-time settings
(scale and postprocessing). Entries are written atomically.
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

log = logging.getLogger(__name__)

CACHE_VERSION = 2
# Recipe keys that change what inference produces (part of the cache key).
TEST_KEYS = ("test", "normalize", "postprocess")


def postprocessor_for(
    model: Any, recipe: Mapping[str, Any]
) -> Callable[..., list[list[Prediction]]]:
    """The model's postprocessor with the recipe's ``postprocess`` params
    applied (through its ``with_params`` when it has one)."""
    post = model.postprocessor
    params = dict(recipe.get("postprocess") or {})
    if params:
        if not hasattr(post, "with_params"):
            raise TypeError(
                f"postprocessor {post!r} takes no parameters but the recipe sets {sorted(params)}"
            )
        post = post.with_params(**params)
    return post


def test_settings(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a recipe that inference depends on."""
    return {k: recipe[k] for k in TEST_KEYS if k in recipe}


def predict_samples(
    model: Any,
    samples: Sequence[Sample],
    recipe: Mapping[str, Any],
    device: Any,
    batch_size: int = 1,
    progress: bool = True,
    amp: bool = False,
) -> dict[str, list[Prediction]]:
    """Predictions for ``samples`` keyed by sample id (all of them, on every
    rank when distributed). The model is put in eval mode for the call and
    its previous mode restored.

    ``model`` is a torch detector or anything shaped like one for inference
    (called on the padded batch it returns the maps; ``postprocessor``;
    ``eval`` / ``train``; optionally ``make_transform(recipe)`` returning
    its own ``image -> (CHW input, (sx, sy))`` pre-processing), such as
    the onnx plugin's onnxruntime detector."""
    import torch
    from tqdm.auto import tqdm

    from tcmbench.data.torch_data import load_image, pad_batch
    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.train.distributed import all_gather_objects, world

    net = getattr(model, "module", model)  # unwrap DDP
    # A model may bring its own pre-processing (an ONNX detector's config:
    # PaddleOCR's resize rule, BGR input); None = the recipe's.
    make_transform = getattr(net, "make_transform", None)
    transform = (make_transform(recipe) if make_transform else None) or (
        InferenceTransform.from_recipe(recipe)
    )
    post = postprocessor_for(net, recipe)
    w = world()
    mine = list(samples)[w.rank :: w.world_size]
    was_training = net.training
    net.eval()
    results: dict[str, list[Prediction]] = {}
    bar = tqdm(
        total=len(mine),
        desc="predict",
        unit="img",
        disable=not (progress and w.is_main),
        leave=False,
    )
    use_amp = amp and getattr(device, "type", str(device)) == "cuda"
    try:
        for start in range(0, len(mine), max(1, batch_size)):
            chunk = mine[start : start + batch_size]
            images, metas = [], []
            for s in chunk:
                img = load_image(s.image_path, s.id)
                x, scale = transform(img)
                images.append(x)
                metas.append({"id": s.id, "orig_size": img.shape[:2], "scale": scale})
            batch = torch.from_numpy(pad_batch(images)).to(device)
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=torch.float16, enabled=use_amp),
            ):
                outputs = net(batch)
            outputs = {k: (v.float() if torch.is_tensor(v) else v) for k, v in outputs.items()}
            for s, preds in zip(chunk, post(outputs, metas)):
                results[s.id] = list(preds)
            bar.update(len(chunk))
    finally:
        bar.close()
        net.train(was_training)
    if w.distributed:
        merged: dict[str, list[Prediction]] = {}
        for part in all_gather_objects(results):
            merged.update(part)
        results = merged
    return {s.id: results.get(s.id, []) for s in samples}


def dataset_protocol(cfg: Any, override: str | None) -> tuple[str, dict[str, Any]]:
    """The protocol to score a detector's output on a dataset with, and its
    parameters: the dataset's default with the YAML's ``protocol.params``,
    or ``override`` with its own defaults.

    The official scripts' file-format checks (``validate``: the RRC
    "clockwise" quads, the curved script's point orientation) judge
    *submission files*; they would reject a whole dataset whose native
    annotations run the other way round (ArT, NightTime-ArT) or a model's
    curved polygons. When tcmbench scores its own predictions against a
    loaded dataset the check is therefore off unless the YAML turns it on;
    the matching rules are unchanged. ``tcmbench score`` on files keeps it.
    """
    from tcmbench.plugins import get_protocol

    default = cfg.protocol or "icdar2015"
    name = override or default
    params: dict[str, Any] = {}
    if "validate" in (get_protocol(name).params or {}):
        params["validate"] = False
    if name == default:
        params.update(dict(getattr(cfg, "protocol_params", None) or {}))
    return name, params


# --------------------------------------------------------------------------
# Cache


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
        from tcmbench.paths import cache_dir

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
        from tcmbench.paths import atomic_write_bytes

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
    from tcmbench.train.distributed import barrier, broadcast_object, world

    if key is None:
        return compute(), False
    cache = cache or PredictionCache()
    w = world()
    hit = cache.load(key) if w.is_main else None
    if broadcast_object(hit is not None):
        return (broadcast_object(hit) if w.distributed else hit), True  # type: ignore[return-value]
    preds = compute()
    if w.is_main:
        cache.save(key, preds)
    barrier()
    return preds, False
