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

import numpy as np

from tcmbench.data.schema import (
    Instance,
    Prediction,
    Sample,
    image_work,
    limit,
    limit_hint,
    natural_key,
)
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
    stem = PurePosixPath(str(name)).name
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
    """The :class:`~tcmbench.plugins.ProtocolSpec` called ``name``: built-ins
    without starting the plugin manager, then installed plugins."""
    from tcmbench.eval.catalog import IOU_PROTOCOLS, iou_spec

    if name in IOU_PROTOCOLS:
        return iou_spec(name)
    from tcmbench.eval.protocols import builtin_protocols

    specs = builtin_protocols()
    if name in specs:
        return specs[name]
    from tcmbench.plugins import get_protocol

    return get_protocol(name)


def evaluate(
    gt: Sequence[Sample] | Mapping[str, Sequence[Instance]] | Iterable[Sample],
    predictions: Mapping[str, Sequence[Prediction]],
    protocol: str = "icdar2015",
    **params: Any,
) -> Result:
    """Score ``predictions`` against ``gt`` with ``protocol``.

    ``gt``: a list of :class:`Sample` or a mapping sample id -> list of
    :class:`Instance` (``ignore`` = don't care). ``predictions``: a mapping
    sample id -> list of :class:`Prediction`; a missing id means "no
    prediction file" and an empty list "a file with no detections".
    ``params`` are the protocol's parameters (see ``docs/protocols.md``;
    ``sweep=True`` adds the labelled best-threshold sweep where the
    protocol supports it).
    """
    spec = get_protocol_spec(protocol)
    gt_map = gt_mapping(gt)
    preds = match_prediction_ids(gt_map, predictions, protocol)
    return spec.evaluate(
        _Bounded(gt_map, protocol, "ground-truth polygon"),
        _Bounded(preds, protocol, "detection", partner=gt_map),
        **params,
    )


def crossings(points: np.ndarray) -> int:
    """How many times the closed contour ``points`` crosses itself (proper
    crossings of non-adjacent edges), counted with one vectorised
    orientation test per edge pair: O(n^2) arithmetic but no geometry
    library, so even a hostile 1,024-point contour takes milliseconds (GEOS
    noding such a contour takes seconds)."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if n < 4:
        return 0
    a, b = pts, np.roll(pts, -1, axis=0)
    total = 0

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    for start in range(0, n, 256):  # rows in blocks: memory stays O(256 n)
        i = np.arange(start, min(start + 256, n))[:, None]
        j = np.arange(n)[None, :]
        # Each unordered pair once, adjacent edges (sharing a vertex) left out.
        pair = (j > i + 1) & ~((i == 0) & (j == n - 1))
        ai, bi = a[i[:, 0]][:, None, :], b[i[:, 0]][:, None, :]
        aj, bj = a[None, :, :], b[None, :, :]
        with np.errstate(all="ignore"):  # huge coordinates: NaN signs never count
            o1, o2 = orient(ai, bi, aj), orient(ai, bi, bj)
            o3, o4 = orient(aj, bj, ai), orient(aj, bj, bi)
        hit = pair & (o1 * o2 < 0) & (o3 * o4 < 0)
        total += int(hit.sum())
    return total


def polygon_complexity(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Vertices the exact intersection code works with, per polygon: its
    points, plus four per self-crossing for a self-intersecting contour (its
    even-odd repair nodes the outline at every crossing, which GEOS then
    carries on both edges of both faces). Contours of up to 4 points are
    counted as they are; simple ones are found in one vectorised GEOS call,
    so real data (simple polygons) costs next to nothing."""
    counts = np.array([len(p) for p in polygons], dtype=np.int64)
    # Polygons with non-finite points are void for every protocol (built in
    # code; the readers refuse them): nothing to repair.
    long = np.array(
        [i for i in np.flatnonzero(counts > 4).tolist() if np.isfinite(polygons[i]).all()],
        dtype=np.int64,
    )
    if long.size:
        import shapely

        try:
            rings = shapely.linearrings(
                np.concatenate([np.asarray(polygons[i], dtype=np.float64) for i in long.tolist()]),
                indices=np.repeat(np.arange(long.size), counts[long]),
            )
            suspects = np.flatnonzero(~shapely.is_simple(rings))
        except shapely.errors.GEOSException:  # extreme coordinates: count them all
            suspects = np.arange(long.size)
        for k in suspects.tolist():
            counts[long[k]] += 4 * crossings(polygons[long[k]])
    return counts


def overlap_work(
    gt_polygons: Sequence[np.ndarray], det_polygons: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The MAX_IMAGE_OVERLAPS / MAX_IMAGE_PAIR_WORK measures of one image
    (see data/schema.py): per detection, how many ground-truth boxes its box
    overlaps and the work of those pairs plus its own repair; and the repair
    work of the ground truth. Repairing a self-intersecting contour costs
    about (its vertices)^2, even when it overlaps nothing."""
    n_det = len(det_polygons)
    raw_g = np.array([len(p) for p in gt_polygons], dtype=np.int64)
    raw_d = np.array([len(p) for p in det_polygons], dtype=np.int64)
    cg, cd = polygon_complexity(gt_polygons), polygon_complexity(det_polygons)
    gt_repair = int(np.where(cg > raw_g, cg * cg, 0).sum())
    det_repair = np.where(cd > raw_d, cd * cd, 0).astype(np.int64)
    if not len(gt_polygons) or not n_det:
        return np.zeros(n_det, np.int64), det_repair, gt_repair

    def boxes(polys: Sequence[np.ndarray]) -> np.ndarray:
        return np.array(
            [[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polys],
            dtype=np.float64,
        )

    g, d = boxes(gt_polygons), boxes(det_polygons)
    overlap = (
        (g[:, None, 0] <= d[None, :, 2])
        & (d[None, :, 0] <= g[:, None, 2])
        & (g[:, None, 1] <= d[None, :, 3])
        & (d[None, :, 1] <= g[:, None, 3])
    )
    pairs = overlap.sum(axis=0).astype(np.int64)
    work = (np.where(overlap, cg[:, None], 0).sum(axis=0) * cd).astype(np.int64)
    return pairs, work + det_repair, gt_repair


class _Bounded(Mapping[str, Sequence[Any]]):
    """A view of one side (ground truth or detections) that checks each
    image against the geometry limits of :mod:`tcmbench.data.schema` when a
    protocol first reads it (lazily, so a lazy mapping stays lazy).

    The readers check points per polygon already; this is the same bound for
    polygons built in code, plus the per-image bounds (polygons and points of
    one image), which cap the quadratic matching and repair work. The error
    is a :class:`ProtocolError` carrying ``sample_id`` / ``role`` /
    ``index``, which ``tcmbench score`` turns into the file and line.
    """

    def __init__(
        self,
        items: Mapping[str, Sequence[Any]],
        protocol: str,
        role: str,
        partner: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self._items = items
        self._protocol = protocol
        self._role = role
        self._partner = partner  # the ground truth, on the detections' side
        self._checked: set[str] = set()

    def __getitem__(self, sample_id: str) -> Sequence[Any]:
        value = self._items[sample_id]
        if sample_id not in self._checked:
            self._check(sample_id, value)
            if self._partner is not None and sample_id in self._partner:
                self._check_pairs(sample_id, self._partner[sample_id], value)
            elif self._partner is None:
                # Ground truth: its own repair work, whether or not the image
                # has a prediction file.
                self._check_pairs(sample_id, value, [])
            self._checked.add(sample_id)
        return value

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _check(self, sample_id: str, items: Sequence[Any]) -> None:
        max_polygons = limit("MAX_IMAGE_POLYGONS")
        if len(items) > max_polygons:
            raise self._error(
                sample_id,
                max_polygons,
                f"more than {max_polygons} in one image; over {limit_hint('MAX_IMAGE_POLYGONS')}",
            )
        max_points, max_work = limit("MAX_POLYGON_POINTS"), limit("MAX_IMAGE_WORK")
        counts = [len(getattr(item, "polygon", ())) for item in items]
        if max(counts, default=0) <= max_points and image_work(counts) <= max_work:
            return  # the usual case: one pass, no per-polygon bookkeeping
        work = 0
        for k, n in enumerate(counts):
            work += n * n
            if n > max_points:
                raise self._error(
                    sample_id, k, f"{n} points; over {limit_hint('MAX_POLYGON_POINTS')}"
                )
            if work > max_work:
                raise self._error(
                    sample_id,
                    k,
                    f"the polygons of one image are too large to match (sum of squared point "
                    f"counts {work} > {max_work}); over {limit_hint('MAX_IMAGE_WORK')}",
                )

    def _check_pairs(self, sample_id: str, gt: Sequence[Any], dets: Sequence[Any]) -> None:
        """The matching work of one image (MAX_IMAGE_OVERLAPS,
        MAX_IMAGE_PAIR_WORK): the error names the detection at which the
        running total passes the limit."""
        polys_g = [np.asarray(x.polygon) for x in gt]
        polys_d = [np.asarray(x.polygon) for x in dets]
        pairs, work, gt_repair = overlap_work(polys_g, polys_d)
        for name, per_det, base, what in (
            ("MAX_IMAGE_OVERLAPS", pairs, 0, "overlapping (ground truth, detection) pairs"),
            (
                "MAX_IMAGE_PAIR_WORK",
                work,
                gt_repair,
                (
                    "exact-geometry work (vertex products of overlapping pairs and of "
                    "self-intersecting contours)"
                ),
            ),
        ):
            cap = limit(name)
            total = base + np.cumsum(per_det)
            worst = int(total[-1]) if total.size else base
            if worst > cap:
                k = int(np.searchsorted(total, cap, side="right")) if total.size else 0
                role = None if base > cap else "self"
                raise self._error(
                    sample_id,
                    k,
                    f"one image needs too much exact geometry to match: {what} "
                    f"{worst} > {cap}; over {limit_hint(name)}",
                    role=role,
                )

    def _error(
        self, sample_id: str, index: int, reason: str, role: str | None = "self"
    ) -> ProtocolError:
        """``role`` None: the image as a whole (its ground truth alone is
        over a limit), so no polygon is named."""
        if role is None:
            err = ProtocolError(f"{self._protocol}: sample {sample_id}: {reason}")
            err.sample_id = sample_id  # type: ignore[attr-defined]
            err.role = "image"  # type: ignore[attr-defined]
            err.index = -1  # type: ignore[attr-defined]
            return err
        err = ProtocolError(
            f"{self._protocol}: sample {sample_id}, {self._role} {index + 1}: {reason}"
        )
        err.sample_id = sample_id  # type: ignore[attr-defined]
        err.role = "detection" if self._role == "detection" else "ground truth"  # type: ignore[attr-defined]
        err.index = index  # type: ignore[attr-defined]
        return err


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
