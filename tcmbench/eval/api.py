"""``evaluate(gt, predictions, protocol=..., **params) -> Result``.

One entry point for every protocol. It normalises the inputs the protocols
share -- ground truth as a list of samples or a mapping, predictions keyed
by whatever the files were called -- and applies the official rule on
samples that exist on one side only before handing over:

* a prediction sample with no ground truth stops every official script
  ("The sample N not present in GT"): :class:`ProtocolError`;
* a ground-truth sample with no prediction key means "no prediction file";
  each protocol decides what that means officially (zero detections for the
  RRC / TIoU scripts; the Total-Text DetEval script skips the image). An
  empty list means "a file with no detections".

Ids are matched after normalisation, so ``res_img_17.txt``, ``gt_img_17.txt``
and ``img_17`` name the same image, as do ``img12`` / ``poly_gt_img12`` and
CTW1500's ``1001``. Nothing here imports shapely or torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from tcmbench.data.schema import Instance, Prediction, Sample, natural_key
from tcmbench.errors import ProtocolError
from tcmbench.eval.result import Result

# Prefixes of annotation / result file names that are not part of the image id.
ID_PREFIXES = ("res_", "poly_gt_", "gt_")
_KNOWN_SUFFIXES = (".txt", ".json", ".gt", ".mat", ".jpg", ".jpeg", ".png", ".gif", ".bmp")
_NUMERIC = re.compile(r"(?:img_?|image_?)?(\d+)", re.IGNORECASE)


def canonical_id(name: str) -> str:
    """The image id a file or key refers to.

    ``res_img_17.txt`` / ``gt_img_17.txt`` / ``img_17`` -> ``img_17``;
    ``poly_gt_img12.txt`` / ``img12.txt`` -> ``img12``; ``1001.txt`` ->
    ``1001``; ``res_IMG_0059.txt`` -> ``IMG_0059``.
    """
    stem = str(name)
    if "/" in stem or stem == ".":
        stem = PurePosixPath(stem).name
    lower = stem.lower()
    for suffix in _KNOWN_SUFFIXES:
        if lower.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    for prefix in ID_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            stem = stem[len(prefix) :]
            break
    return stem


def numeric_key(sample_id: str) -> str | None:
    """The number of ``img_17`` / ``img17`` / ``17`` / ``IMG_0017`` (the key
    the official scripts extract with their file-name regular expressions;
    leading zeros dropped so that naming conventions can meet)."""
    m = _NUMERIC.fullmatch(sample_id)
    # Leading zeros stripped as text: int() refuses more than 4300 digits.
    return (m.group(1).lstrip("0") or "0") if m else None


def gt_mapping(
    gt: Sequence[Sample] | Mapping[str, Sequence[Instance]] | Iterable[Sample],
) -> Mapping[str, Sequence[Instance]]:
    """Ground truth as ``{sample id: instances}`` (a mapping is kept as is,
    so a lazily generated one stays lazy)."""
    if isinstance(gt, Mapping):
        return gt
    out: dict[str, Sequence[Instance]] = {}
    for sample in gt:
        if not isinstance(sample, Sample):
            raise ProtocolError(
                f"ground truth must be a list of Sample or a mapping id -> list[Instance], "
                f"got an item of type {type(sample).__name__}"
            )
        if sample.id in out:
            raise ProtocolError(f"ground truth has two samples with id {sample.id!r}")
        out[sample.id] = sample.instances
    return out


class _Rekeyed(Mapping[str, Sequence[Prediction]]):
    """Predictions seen under the ground truth's ids (no copy: a lazy
    mapping stays lazy)."""

    def __init__(
        self, predictions: Mapping[str, Sequence[Prediction]], keys: dict[str, str]
    ) -> None:
        self._predictions = predictions
        self._keys = keys  # gt id -> prediction key

    def __getitem__(self, gt_id: str) -> Sequence[Prediction]:
        return self._predictions[self._keys[gt_id]]

    def __contains__(self, gt_id: object) -> bool:
        return gt_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def in_memory(self) -> bool:
        """Whether the predictions underneath are already in memory."""
        inner = self._predictions
        return isinstance(inner, dict) or bool(getattr(inner, "in_memory", False))


def match_prediction_ids(
    gt: Mapping[str, Any], predictions: Mapping[str, Sequence[Prediction]], protocol: str = ""
) -> Mapping[str, Sequence[Prediction]]:
    """Re-key ``predictions`` to the ground truth's ids.

    A prediction key matches a GT id when both name the same image after
    :func:`canonical_id`, or else when both carry the same number and the
    number is unique on the GT side. A key matching nothing is the official
    scripts' fatal "sample not present in GT": :class:`ProtocolError`.
    """
    gt_ids = list(gt)
    gt_set = set(gt_ids)
    if all(k in gt_set for k in predictions):
        return predictions
    by_canon: dict[str, str] = {}
    by_number: dict[str, str | None] = {}
    for gid in gt_ids:
        c = canonical_id(gid)
        by_canon.setdefault(c, gid)
        num = numeric_key(c)
        if num is not None:
            by_number[num] = None if num in by_number else gid
    keys: dict[str, str] = {}
    orphans: list[str] = []
    for key in predictions:
        if key in gt_set:
            target: str | None = key
        else:
            c = canonical_id(key)
            target = by_canon.get(c)
            if target is None:
                num = numeric_key(c)
                target = by_number.get(num) if num is not None else None
        if target is None:
            orphans.append(key)
            continue
        if target in keys:
            raise ProtocolError(
                f"{protocol or 'evaluate'}: predictions {keys[target]!r} and {key!r} both name "
                f"ground-truth sample {target!r}"
            )
        keys[target] = key
    if orphans:
        shown = ", ".join(sorted(orphans, key=natural_key)[:5]) + (
            " ..." if len(orphans) > 5 else ""
        )
        raise ProtocolError(
            f"{protocol or 'evaluate'}: {len(orphans)} prediction sample(s) have no ground truth: "
            f"{shown} (the official script stops here: 'The sample ... not present in GT'); "
            f"check that ground truth and predictions belong to the same split"
        )
    return _Rekeyed(predictions, keys)


def get_protocol_spec(name: str) -> Any:
    """The :class:`~tcmbench.contract.registry.ProtocolSpec` called ``name``: built-ins
    without starting the plugin manager, then installed plugins."""
    from tcmbench.eval.catalog import DETEVAL_PROTOCOLS, IOU_PROTOCOLS, iou_spec

    if name in IOU_PROTOCOLS or name in DETEVAL_PROTOCOLS:
        return iou_spec(name)
    from tcmbench.eval.protocols import builtin_protocols

    specs = builtin_protocols()
    if name in specs:
        return specs[name]
    from tcmbench.contract.registry import get_protocol

    return get_protocol(name)


def evaluate(
    gt: Sequence[Sample] | Mapping[str, Sequence[Instance]] | Iterable[Sample],
    predictions: Mapping[str, Sequence[Prediction]],
    protocol: str = "icdar2015",
    *,
    workers: int = 1,
    **params: Any,
) -> Result:
    """Score ``predictions`` against ``gt`` with ``protocol``.

    ``gt``: a list of :class:`Sample` or a mapping sample id -> list of
    :class:`Instance` (``ignore`` = don't care). ``predictions``: a mapping
    sample id -> list of :class:`Prediction`; a missing id means "no
    prediction file" and an empty list "a file with no detections".
    ``params`` are the protocol's parameters (see ``docs/protocols.md``;
    ``sweep=True`` adds the labelled best-threshold sweep where the
    protocol supports it). ``workers`` > 1 lets the built-in engines split
    a large run over that many processes on Linux
    (:mod:`tcmbench.eval.workers`; the figures are the same).
    """
    from tcmbench.eval import workers as worker_pool
    from tcmbench.eval.bounds import Bounded, ImageLimits

    spec = get_protocol_spec(protocol)
    gt_map = gt_mapping(gt)
    preds = match_prediction_ids(gt_map, predictions, protocol)
    limits = ImageLimits(gt_map, preds)
    with worker_pool.use(workers):
        return spec.evaluate(
            Bounded(gt_map, protocol, "ground-truth polygon", limits),
            Bounded(preds, protocol, "detection", limits),
            **params,
        )


# --------------------------------------------------------------------------- parameters


def parse_bool(value: Any, name: str, protocol: str) -> bool:
    """``true/false/1/0/yes/no`` (as ``--param`` gives them) or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ProtocolError(f"{protocol}: parameter {name}={value!r} is not a boolean (true/false)")


def parse_float(value: Any, name: str, protocol: str, low: float = 0.0, high: float = 1.0) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"{protocol}: parameter {name}={value!r} is not a number") from None
    if not low <= out <= high:
        raise ProtocolError(f"{protocol}: parameter {name}={value!r} must be in [{low}, {high}]")
    return out


def check_params(
    protocol: str, defaults: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults overridden by ``given``; an unknown key is a ProtocolError
    naming the known ones (a typo must not silently run the default)."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ProtocolError(
            f"{protocol}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **given}
