"""Result files of the line styles (``rrc``, ``polygon``, ``polygon-yx``)
read without a Python step per field.

:mod:`tcmbench.eval.io` parses a result file line by line with the official
patterns, which name a malformed line. Real submissions are hundreds of
small files of well formed lines, so the usual case is read here, many
files at once: the coordinates of every line of every file become one
array (:func:`tcmbench.data.formats.numbers.float_fields`), the rules are
checked on the whole array, and a file is handed back (None) at the first
doubt -- a field only ``float()`` reads, a value beyond float32, a line
the pattern would refuse, a file over an image limit -- for the line
parser, which decides and names the line. The result for every file is
the line parser's (tests/test_fast_paths.py).
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from tcmbench.data.formats.lines import split_numbered
from tcmbench.data.formats.numbers import float_fields
from tcmbench.data.schema import Prediction, image_work, limit, polygon_rows

# The RRC scripts' line patterns, possessive (see tcmbench.eval.io).
_INT = r"\s*+(-?[0-9]++)\s*+"
CONFIDENCE_FIELD = r"\s*+([0-1].?[0-9]*+)\s*+"
_RRC = r"^" + ",".join([_INT] * 8)


@functools.cache
def rrc_line(confidences: bool) -> re.Pattern[str]:
    """The RRC line pattern, with the confidence field or without,
    compiled on first use (a curved-text ``score`` never needs it)."""
    return re.compile(_RRC + ("," + CONFIDENCE_FIELD if confidences else "") + r"$")


#: (predictions, line numbers) of one file, or None: read it line by line.
FileResult = tuple[list[Prediction], list[int | None]] | None

RRC_FIELDS = 8


def rrc_file_fast(text: str, confidences: bool) -> FileResult:
    """An RRC result file whose every line is well formed, its quads in one
    array (any doubt -- a line the pattern refuses, a confidence that is no
    number, a coordinate beyond float32, a file over an image limit --
    returns None)."""
    numbered = split_numbered(text)
    n = len(numbered)
    if not _rrc_within_limits(n):
        return None
    pattern = rrc_line(confidences)
    values: list[float] = []
    scores: list[float | None] = []
    for _, line in numbered:
        m = pattern.match(line)
        if m is None:
            return None
        fields = m.groups()
        values.extend([float(v) for v in fields[:RRC_FIELDS]])
        if confidences:
            try:
                score = float(fields[RRC_FIELDS])
            except ValueError:
                return None
            if not math.isfinite(score):
                return None  # the line parser says why
            scores.append(score)
        else:
            scores.append(None)
    ok, flat = polygon_rows(values, [2 * 4] * n, min_points=4, keep_float64=True)
    if not all(ok):
        return None
    quads = flat.reshape(-1, 4, 2)
    preds = [Prediction(quads[i], scores[i]) for i in range(n)]
    return preds, [i for i, _ in numbered]


def _rrc_within_limits(n: int) -> bool:
    return n <= limit("MAX_IMAGE_POLYGONS") and 16 * n <= limit("MAX_IMAGE_WORK")


def rrc_files_fast(texts: list[str]) -> list[FileResult]:
    """:func:`rrc_file_fast` (without confidences) of many files at once:
    every line of the files taken here is 8 integer fields (``-?[0-9]+``,
    no spaces: what the RRC pattern matches, checked on the whole text by
    :func:`float_fields`), their quads checked as one array."""
    numbered = [split_numbered(t) for t in texts]
    take = [
        _rrc_within_limits(len(lines))
        and all(line.count(",") == RRC_FIELDS - 1 for _, line in lines)
        for lines in numbered
    ]
    lines = [line for keep, file in zip(take, numbered) if keep for _, line in file]
    joined = ",".join(lines)
    values = None if "." in joined else float_fields(joined, RRC_FIELDS * len(lines))
    if values is None:
        return [None] * len(texts)
    ok, flat = polygon_rows(values, [RRC_FIELDS] * len(lines), min_points=4, keep_float64=True)
    if not all(ok):
        return [None] * len(texts)
    quads = flat.reshape(-1, 4, 2)
    out: list[FileResult] = []
    k = 0
    for keep, file in zip(take, numbered):
        if not keep:
            out.append(None)
            continue
        out.append(([Prediction(quads[k + i]) for i in range(len(file))], [i for i, _ in file]))
        k += len(file)
    return out


def polygon_file_fast(text: str, yx: bool) -> FileResult:
    """All lines of a polygon result file converted by one numpy call (the
    per-line parser is the fallback that reports a malformed line, so any
    doubt -- a field numpy cannot read, a non-finite value, a polygon over
    the points limit -- returns None)."""
    numbered = split_numbered(text)
    if not numbered:
        return [], []
    counts = [line.count(",") + 1 for _, line in numbered]
    if not _polygons_within_limits(counts):
        return None
    try:
        values = np.array(",".join(line for _, line in numbered).split(","), dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    if not _finite32(values):
        return None
    return _polygon_predictions(values, counts, yx), [i for i, _ in numbered]


def polygon_files_fast(texts: list[str], yx: bool) -> list[FileResult]:
    """:func:`polygon_file_fast` of many files at once (one conversion of
    all their coordinates)."""
    numbered = [split_numbered(t) for t in texts]
    counts = [[line.count(",") + 1 for _, line in file] for file in numbered]
    joined = ",".join([line for file in numbered for _, line in file])
    values = float_fields(joined, sum(map(sum, counts)))
    if values is None or not _finite32(values):
        return [None] * len(texts)
    out: list[FileResult] = []
    pos = 0
    for file, cnt in zip(numbered, counts):
        span = sum(cnt)
        if _polygons_within_limits(cnt):
            preds = _polygon_predictions(values[pos : pos + span], cnt, yx)
            out.append((preds, [i for i, _ in file]))
        else:
            out.append(None)
        pos += span
    return out


def _polygons_within_limits(counts: list[int]) -> bool:
    """Every line has a point and at most MAX_POLYGON_POINTS (plus a
    score field), and the file is within MAX_IMAGE_POLYGONS and
    MAX_IMAGE_WORK (the line parser names the line that crosses one; the
    exact sum of squares only when the cheap bound is over)."""
    if not counts:
        return True
    top = max(counts)
    if min(counts) < 2 or top > 2 * limit("MAX_POLYGON_POINTS") + 1:
        return False
    n, work_cap = len(counts), limit("MAX_IMAGE_WORK")
    if n > limit("MAX_IMAGE_POLYGONS"):
        return False
    return n * (top // 2) ** 2 <= work_cap or image_work([c // 2 for c in counts]) <= work_cap


def _finite32(values: np.ndarray) -> bool:
    """Every value finite once stored as float32 (the schema's type)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(values.astype(np.float32)).all())


def _polygon_predictions(values: np.ndarray, counts: list[int], yx: bool) -> list[Prediction]:
    """One prediction per line (``counts`` fields each; an odd count ends
    with the score)."""
    preds: list[Prediction] = []
    pos = 0
    for c in counts:
        row = values[pos : pos + c]
        pos += c
        score = None
        if c % 2 == 1:
            score = float(row[-1])
            row = row[:-1]
        pts = row.reshape(-1, 2)
        preds.append(Prediction(pts[:, ::-1] if yx else pts, score))
    return preds
