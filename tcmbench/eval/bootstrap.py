"""Paired bootstrap over images: is B's hmean really better than A's?

Every built-in protocol computes its global figures from sums over images:
R = (sum of recall numerators) / (sum of recall denominators), P likewise,
H = 2PR / (P + R). The numerators and denominators of one image are its
*accumulators* (:class:`Accumulators`):

* IoU family (``icdar2015``, ``msra-td500``, ``totaltext-iou``,
  ``ctw1500-iou``): matched pairs / care GTs, matched pairs / care
  detections;
* ``tiou`` (TIoU as the headline): the image's summed TIoU recall and
  precision credits over care GTs / care detections;
* DetEval family (``totaltext-deteval``, ``icdar2013``,
  ``icdar2013-deteval``): the protocol's recall / precision credits (which
  hold the one-to-many and many-to-one weights) over care GTs / detections
  left after the don't-care filter; an image the official Total-Text script
  skips (no prediction file) adds nothing.

Because the figures are functions of the summed accumulators, the statistic
of a bootstrap resample (images drawn with replacement) is computed exactly
from a weighted sum: weight = how many times the image was drawn. Both runs
use the *same* draws (paired). Nothing here re-runs a protocol; see
``docs/compare.md`` for the method, its references and what it leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcmbench.contract.options import Opt
from tcmbench.data.schema import natural_key
from tcmbench.errors import ProtocolError
from tcmbench.safety.validation import DocumentError, Section, check_document

#: Default number of bootstrap resamples.
DEFAULT_RESAMPLES = 10_000
#: Default confidence level of the percentile interval.
DEFAULT_CONFIDENCE = 0.95
#: Weight-matrix cells held at once (rows x images): bounds the memory
#: (about 16 bytes a cell) whatever the number of images.
CHUNK_CELLS = 1 << 21
#: The metrics reported, the headline first.
METRICS = ("hmean", "precision", "recall")
#: How the p-value is computed (written into reports).
P_VALUE_METHOD = (
    "two-sided paired bootstrap test, shift method: p = (1 + #{b: |d*_b - d| >= |d|}) / (B + 1)"
)
CI_METHOD = "percentile"


@dataclass(frozen=True)
class Accumulators:
    """Per-image numerators and denominators of one run, images in a fixed
    order (``ids``). All arrays are float64 of length ``len(ids)``."""

    ids: tuple[str, ...]
    recall_num: np.ndarray
    recall_den: np.ndarray
    precision_num: np.ndarray
    precision_den: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ids)
        for name in ("recall_num", "recall_den", "precision_num", "precision_den"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n},)")

    def matrix(self) -> np.ndarray:
        """The four accumulators as an (images, 4) float64 matrix."""
        return np.stack(
            [self.recall_num, self.recall_den, self.precision_num, self.precision_den], axis=1
        ).astype(np.float64)

    def figures(self) -> tuple[float, float, float]:
        """(precision, recall, hmean) over all images."""
        p, r, h = figures(self.matrix().sum(axis=0, keepdims=True))
        return float(p[0]), float(r[0]), float(h[0])

    def reordered(self, ids: Sequence[str]) -> Accumulators:
        """The same accumulators in the order of ``ids`` (same set)."""
        where = {sid: k for k, sid in enumerate(self.ids)}
        idx = np.array([where[sid] for sid in ids], dtype=np.int64)
        return Accumulators(
            tuple(ids),
            self.recall_num[idx],
            self.recall_den[idx],
            self.precision_num[idx],
            self.precision_den[idx],
        )


def figures(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, hmean) of each row of summed accumulators
    ``[recall_num, recall_den, precision_num, precision_den]``, with the
    protocols' rule: a ratio with a zero denominator is 0, and so is H when
    P + R = 0."""
    sums = np.asarray(sums, dtype=np.float64)
    rn, rd, pn, pd = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    recall = np.divide(rn, rd, out=np.zeros_like(rn), where=rd != 0)
    precision = np.divide(pn, pd, out=np.zeros_like(pn), where=pd != 0)
    total = precision + recall
    hmean = np.divide(2 * recall * precision, total, out=np.zeros_like(total), where=total != 0)
    return precision, recall, hmean


# --------------------------------------------------------------------------- per-image input


#: Largest per-image value accepted (real counts are far below it): a
#: hostile per-image file cannot make the sums overflow to inf.
MAX_IMAGE_VALUE = float(2**40)
_COUNT = Opt(0, "int", ge=0, le=MAX_IMAGE_VALUE, help="care GTs / detections / matches")
_CREDIT = Opt(0.0, "float", ge=0.0, le=MAX_IMAGE_VALUE, help="summed DetEval credits")
_RATIO = Opt(0.0, "float", ge=0.0, le=1.0, help="TIoU recall / precision of the image")
#: The per-image keys the accumulators are made of (``Result.per_image[id]``,
#: a line of ``tcmbench score --per-image``). Other keys (matches, the
#: image's own P / R / H) are kept unchecked: nothing is computed from them.
PER_IMAGE_RECORD = Section(
    {
        "num_gt_care": _COUNT,
        "num_det_care": _COUNT,
        "num_matched": _COUNT,
        "recall_credit": _CREDIT,
        "precision_credit": _CREDIT,
        "tiou_recall": _RATIO,
        "tiou_precision": _RATIO,
    },
    strict=False,
    help="per-image counts",
)
#: Slack for summed float credits (each at most 1 per GT / detection).
_CREDIT_SLACK = 1e-9


class CountsError(ValueError):
    """A per-image record without the counts (``missing``) or with counts
    that cannot come from a protocol (a negative or fractional count, more
    matches than care GTs...)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def entry_accumulators(
    entry: Mapping[str, Any], tiou: bool = False, image: str = ""
) -> tuple[float, ...]:
    """(recall_num, recall_den, precision_num, precision_den) of one image's
    per-image record (``Result.per_image[id]`` or one line of ``tcmbench
    score --per-image``). ``tiou``: the TIoU figures are the headline (the
    ``tiou`` protocol).

    :class:`CountsError` (a ValueError) naming ``image`` and the key when the
    record does not hold consistent counts: counts are integers >= 0, every
    value is finite, a match pairs one care GT with one care detection
    (``num_matched`` <= both), a credit is at most 1 per GT / detection.
    Else the figures, and the bootstrap's "interval excludes 0", would be
    made up (``num_matched`` 50 of 1 GT gives an hmean of 50)."""
    where = f"image {image!r}" if image else "per-image record"
    if not isinstance(entry, Mapping):
        raise CountsError(f"{where}: a per-image record is an object, got {type(entry).__name__}")
    if "skipped" in entry:
        # Total-Text DetEval, missing_predictions=official: the official
        # script never sees the image, so nothing enters the sums.
        return (0.0, 0.0, 0.0, 0.0)
    try:
        rec = check_document(entry, PER_IMAGE_RECORD, where)
    except DocumentError as exc:
        raise CountsError(str(exc)) from None

    def need(key: str) -> float:
        if rec.get(key) is None:
            raise CountsError(f"{where}: no {key!r}", missing=True)
        return float(rec[key])

    if "recall_credit" in rec or "precision_credit" in rec:
        r_num, gt_care = need("recall_credit"), need("num_gt_care")
        p_num, det_care = need("precision_credit"), need("num_det_care")
        _at_most(where, "recall_credit", r_num, "num_gt_care", gt_care)
        _at_most(where, "precision_credit", p_num, "num_det_care", det_care)
        return (r_num, gt_care, p_num, det_care)
    gt_care, det_care = need("num_gt_care"), need("num_det_care")
    if tiou:
        # The record keeps the ratios; the sums are ratio * count (the
        # ratio of an image without care GTs / detections carries no credit).
        t_r = need("tiou_recall") if gt_care else 0.0
        t_p = need("tiou_precision") if det_care else 0.0
        return (t_r * gt_care, gt_care, t_p * det_care, det_care)
    matched = need("num_matched")
    _at_most(where, "num_matched", matched, "num_gt_care", gt_care)
    _at_most(where, "num_matched", matched, "num_det_care", det_care)
    return (matched, gt_care, matched, det_care)


def _at_most(where: str, key: str, value: float, bound_key: str, bound: float) -> None:
    """A match or a credit counts one care GT / detection at most once."""
    if value > bound * (1 + _CREDIT_SLACK) + _CREDIT_SLACK:
        raise CountsError(
            f"{where}: {key} {value:g} is above {bound_key} {bound:g} (a match or a credit "
            f"counts each care GT / detection at most once); these counts cannot come from a "
            f"protocol"
        )


def accumulators_from_per_image(
    per_image: Mapping[str, Mapping[str, Any]], tiou: bool = False, source: str = "per-image"
) -> Accumulators:
    """:class:`Accumulators` of ``Result.per_image`` (images in numeric id
    order). A record without the counts is a :class:`ProtocolError` naming
    ``source`` and the image: the protocol's per-image results do not add up
    to its global figures (a plugin protocol may not give them)."""
    ids = sorted(per_image, key=natural_key)
    rows = np.zeros((len(ids), 4), dtype=np.float64)
    for k, sid in enumerate(ids):
        try:
            rows[k] = entry_accumulators(per_image[sid], tiou, image=str(sid))
        except CountsError as exc:
            if not exc.missing:
                raise ProtocolError(f"{source}: {exc}") from None
            raise ProtocolError(
                f"{source}: image {sid}: no per-image counts to resample ({exc}); compare needs "
                f"num_gt_care / num_det_care with num_matched (IoU protocols) or recall_credit / "
                f"precision_credit (DetEval protocols)"
            ) from None
    return Accumulators(tuple(ids), rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])


def accumulators_from_result(result: Any, source: str = "", rtol: float = 1e-9) -> Accumulators:
    """:class:`Accumulators` of a :class:`~tcmbench.eval.result.Result`,
    checked: the figures of the summed accumulators must equal the result's
    own precision / recall / hmean (else the statistic would not be the
    protocol's, and resampling would be meaningless)."""
    where = source or result.protocol
    tiou = "iou05" in result.extra  # TIoU is the headline (protocol "tiou")
    acc = accumulators_from_per_image(result.per_image, tiou=tiou, source=where)
    got = acc.figures()
    want = (result.precision, result.recall, result.hmean)
    for name, g, w in zip(("precision", "recall", "hmean"), got, want):
        if not math.isclose(g, float(w), rel_tol=rtol, abs_tol=1e-12):
            raise ProtocolError(
                f"{where}: the per-image results do not add up to the global {name} ({g!r} vs "
                f"{float(w)!r}); protocol {result.protocol!r} cannot be resampled by image"
            )
    return acc


# --------------------------------------------------------------------------- the bootstrap


@dataclass(frozen=True)
class MetricDelta:
    """One metric of the comparison: A, B, observed B - A, its percentile
    interval, bootstrap standard error and two-sided p-value."""

    name: str
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float

    def as_dict(self) -> dict[str, float]:
        return {
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "se": self.se,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class BootstrapResult:
    """The paired bootstrap of B against A over ``images`` images."""

    images: int
    resamples: int
    confidence: float
    seed: int
    metrics: dict[str, MetricDelta] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "ci_method": CI_METHOD,
            "p_value_method": P_VALUE_METHOD,
            **{name: m.as_dict() for name, m in self.metrics.items()},
        }


def resample_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap weights, in blocks of rows: row b holds how many times each
    of the ``n`` images is drawn in resample b (n draws with replacement,
    ``numpy.random.default_rng(seed).integers(0, n, (rows, n))``, rows
    counted with one ``bincount``). At most :data:`CHUNK_CELLS` cells per
    block; the draws are the same whatever the block size."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        m = min(rows, resamples - done)
        idx = rng.integers(0, n, size=(m, n))
        flat = (idx + (np.arange(m, dtype=np.int64) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=m * n).reshape(m, n)
        done += m


def resampled_figures(
    a: Accumulators, b: Accumulators, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(figures of A, figures of B) for each row of ``weights``: arrays of
    shape (rows, 3), columns precision, recall, hmean."""
    w = weights.astype(np.float64)
    # One product per run, never one for both: identical runs then give
    # bit-identical sums (a blocked product may round columns differently).
    fa = np.stack(figures(w @ a.matrix()), axis=1)
    fb = np.stack(figures(w @ b.matrix()), axis=1)
    return fa, fb


def paired_bootstrap(
    a: Accumulators,
    b: Accumulators,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap of B - A for hmean, precision and recall.

    ``a`` and ``b`` must cover the same images (same ids, any order). Each
    resample draws ``n`` images with replacement, the same draw for both
    runs, and recomputes both runs' figures exactly from the weighted sums.
    The interval is the percentile interval of the resampled differences;
    the p-value tests H0: difference = 0 by shifting the resampled
    differences to mean zero (see :data:`P_VALUE_METHOD`).
    """
    if set(a.ids) != set(b.ids) or len(a.ids) != len(b.ids):
        raise ProtocolError("paired bootstrap: the two runs do not cover the same images")
    if not a.ids:
        raise ProtocolError("paired bootstrap: no images to resample")
    if resamples < 1:
        raise ProtocolError(f"paired bootstrap: resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ProtocolError(f"paired bootstrap: confidence must be in (0, 1), got {confidence}")
    if b.ids != a.ids:
        b = b.reordered(a.ids)
    n = len(a.ids)
    obs_a = np.array(a.figures())
    obs_b = np.array(b.figures())
    observed = obs_b - obs_a  # precision, recall, hmean
    deltas = np.empty((resamples, 3), dtype=np.float64)
    row = 0
    for weights in resample_weights(n, resamples, seed):
        fa, fb = resampled_figures(a, b, weights)
        deltas[row : row + len(weights)] = fb - fa
        row += len(weights)
    alpha = 1.0 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2], axis=0)
    extreme = np.abs(deltas - observed) >= np.abs(observed)
    p_values = (1.0 + extreme.sum(axis=0)) / (resamples + 1.0)
    se = deltas.std(axis=0, ddof=1) if resamples > 1 else np.zeros(3)
    metrics: dict[str, MetricDelta] = {}
    for name in METRICS:
        k = ("precision", "recall", "hmean").index(name)
        metrics[name] = MetricDelta(
            name=name,
            a=float(obs_a[k]),
            b=float(obs_b[k]),
            delta=float(observed[k]),
            ci_low=float(low[k]),
            ci_high=float(high[k]),
            se=float(se[k]),
            p_value=float(p_values[k]),
        )
    return BootstrapResult(
        images=n, resamples=resamples, confidence=confidence, seed=seed, metrics=metrics
    )
