"""Prediction and ground-truth files as the official scripts take them.

Predictions (a zip, a folder, or one JSON file):

* ``rrc``: ICDAR 2015 RRC submissions, ``res_img_<N>.txt``, lines of
  exactly 8 integers (``-?[0-9]+``, spaces allowed around commas), plus a
  9th confidence field when ``confidences`` is on, parsed with the RRC
  script's own patterns. An entry whose name does not match
  ``res_img_<N>.txt`` makes the RRC script reject the submission; so it
  does here.
* ``rrc-ltrb``: ICDAR 2013 submissions, ``res_img_<N>.txt`` lines
  ``left,top,right,bottom[,confidence]``.
* ``polygon``: curved-text results, one ``.txt`` per image (``1001.txt``,
  ``img12.txt``, ``res_img12.txt``...), lines of comma separated numbers
  ``x1,y1,...,xn,yn``; an odd count means a trailing score.
* ``polygon-yx``: the same with points as ``y,x`` pairs, the input of the
  official Total-Text ``Deteval.py`` (``--pred-order yx``).
* ``mat``: the official DetEval example predictions (``imgN.mat``,
  variable ``accuInf``).
* ``json``: tcmbench's own ``{"img_1": [{"polygon": [x1, y1, ...],
  "score": 0.9}, ...], ...}`` (``score`` optional).

Keys are image ids (``res_img_17.txt`` -> ``img_17``); ``tcmbench.eval.api``
matches them with the ground truth's ids. Every malformed line is reported
with its file, line number and the expected format.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.data.schema import (
    Prediction,
    Sample,
    image_work,
    limit,
    limit_hint,
    polygon_array,
)
from tcmbench.data.source import (
    AnnotationSource,
    JsonInputError,
    ParseReport,
    ReadLimits,
    base_name,
    numbered_lines,
    parse_json,
    read_file_bytes,
)
from tcmbench.errors import AnnotationFormatError, ProtocolError
from tcmbench.eval.api import canonical_id
from tcmbench.eval.prediction_lines import (
    CONFIDENCE_FIELD,
    polygon_file_fast,
    polygon_files_fast,
    rrc_file_fast,
    rrc_files_fast,
    rrc_line,
)

STYLES = ("auto", "rrc", "rrc-ltrb", "polygon", "polygon-yx", "mat", "json")

# The RRC scripts' line patterns (the 2015 one, rrc_line, lives with the
# fast reader, tcmbench.eval.prediction_lines), written with possessive
# quantifiers (``*+``, ``++``): they accept exactly the same lines, but never
# give back what they matched, so a failing line is rejected in one pass.
# The plain ``\s*,?\s*$`` of the 2013 pattern retried every split of a run
# of spaces between its two ``\s*`` (20,000 spaces: 10 s).
# Compiled on first use: only ICDAR 2013 submissions need them.
_LTRB = r"^\s*+(-?[0-9]++)\s*+,\s*+(-?[0-9]++)\s*+,\s*+([0-9]++)\s*+,\s*+([0-9]++)\s*+,"


@functools.cache
def ltrb_line(confidences: bool) -> re.Pattern[str]:
    """The RRC 2013 line pattern, with the confidence field or without."""
    return re.compile(_LTRB + (CONFIDENCE_FIELD + r"$" if confidences else r"?\s*+$"))


RRC_NAME = re.compile(r"res_img_([0-9]+).txt")  # re.match, as the RRC script applies it

RRC_EXPECTED = "ICDAR 2015 result line 'x1,y1,x2,y2,x3,y3,x4,y4' (8 integers)"
RRC_EXPECTED_CONF = (
    "ICDAR 2015 result line 'x1,y1,x2,y2,x3,y3,x4,y4,confidence' (8 integers, confidence in [0,1])"
)
LTRB_EXPECTED = (
    "ICDAR 2013 result line 'left,top,right,bottom' (4 integers, right >= left, bottom >= top)"
)
LTRB_EXPECTED_CONF = "ICDAR 2013 result line 'left,top,right,bottom,confidence'"
POLYGON_EXPECTED = "polygon line 'x1,y1,x2,y2,...,xn,yn[,score]' (comma separated numbers)"
POLYGON_YX_EXPECTED = "DetEval line 'y1,x1,y2,x2,...,yn,xn[,score]' (comma separated numbers)"
JSON_EXPECTED = 'JSON object {"img_1": [{"polygon": [x1, y1, ...], "score": 0.9}, ...], ...}'

# Default prediction style and ground-truth format of each built-in protocol.
PROTOCOL_INPUTS: dict[str, tuple[str, str | None]] = {
    "icdar2015": ("rrc", "icdar2015"),
    "msra-td500": ("rrc", None),  # GT: .gt files or the ICDAR 2015 conversion
    "totaltext-iou": ("polygon", "totaltext"),
    "ctw1500-iou": ("polygon", "ctw1500"),
    "tiou": ("polygon", None),
    "totaltext-deteval": ("polygon-yx", "totaltext"),
    "icdar2013": ("rrc-ltrb", "icdar2013"),
    "icdar2013-deteval": ("rrc-ltrb", "icdar2013"),
}


@dataclass
class PredictionFiles(Mapping[str, list[Prediction]]):
    """Predictions read from files: image id -> predictions, plus where
    each came from (for error messages that point at a line)."""

    predictions: dict[str, list[Prediction]]
    origins: dict[str, tuple[str, list[int | None]]] = field(default_factory=dict)
    #: Read ahead freely (:mod:`tcmbench.eval.bounds` measures runs of images).
    in_memory = True
    style: str = ""
    #: The protocol of the ``evaluate --save-predictions`` run whose
    #: ``predictions.json`` this is (None for other files): its float
    #: polygons are scored after the submission's coordinate rule
    #: (:func:`tcmbench.eval.submission.submitted_predictions`), as evaluate did.
    evaluate_protocol: str | None = None

    def __getitem__(self, key: str) -> list[Prediction]:
        return self.predictions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.predictions)

    def __len__(self) -> int:
        return len(self.predictions)

    def locate(self, sample_id: str, index: int) -> str | None:
        """``file, line N`` of prediction ``index`` of ``sample_id``."""
        where = self.origins.get(sample_id)
        if where is None:
            return None
        location, lines = where
        line = lines[index] if 0 <= index < len(lines) else None
        return f"{location}, line {line}" if line is not None else location


# --------------------------------------------------------------------------- predictions


def read_predictions(
    path: str | os.PathLike[str],
    *,
    style: str = "auto",
    confidences: bool = False,
    skip_invalid: bool = False,
    rrc_names: bool = True,
) -> tuple[PredictionFiles, ParseReport]:
    """Read predictions from a zip, a folder or a JSON file (see the module
    doc for the styles). ``skip_invalid`` turns malformed lines into counted
    warnings instead of an error. ``rrc_names=False`` accepts any
    ``res_<id>.txt`` in the RRC styles: for ground truth whose images are not
    numbered (synthtext-mini), which no RRC script judges."""
    if style not in STYLES:
        raise ProtocolError(f"unknown prediction style {style!r}; known: {', '.join(STYLES)}")
    report = ParseReport(skip_invalid=skip_invalid)
    path = Path(path)
    if style == "json" or (style == "auto" and path.is_file() and path.suffix.lower() == ".json"):
        return _read_json(path, report), report
    # Prediction limits: each file's size from the zip headers (or stat) and
    # its line count are checked before a line is parsed.
    with AnnotationSource(path, ReadLimits.predictions()) as source:
        names = [n for n in source.names() if not base_name(n).startswith(".")]
        if style == "auto" or (
            style in ("polygon", "polygon-yx")
            and names
            and all(n.lower().endswith(".mat") for n in names)
        ):
            style = _guess_style(source, names)  # .mat files: the DetEval example predictions
        if style == "json":
            raise ProtocolError(f"{path}: JSON predictions must be one .json file")
        # Names first: the official scripts reject a submission with a
        # stray entry before reading any line.
        for name in names:
            base = base_name(name)
            if style == "mat" and not base.lower().endswith(".mat"):
                raise ProtocolError(
                    f"{source.location(name)}: unexpected entry; expected imgN.mat files"
                )
            if style in ("rrc", "rrc-ltrb") and (
                RRC_NAME.match(base) is None if rrc_names else not base.endswith(".txt")
            ):
                raise ProtocolError(
                    f"{source.location(name)}: entry name not valid (the RRC script rejects the "
                    f"submission: 'ZIP entry not valid'); expected res_img_<N>.txt"
                )
            if style in ("polygon", "polygon-yx") and not base.lower().endswith(".txt"):
                raise ProtocolError(
                    f"{source.location(name)}: unexpected entry; expected one .txt result file per image"
                )
        out = PredictionFiles({}, {}, style)
        if style == "mat":
            from tcmbench.eval.deteval import read_deteval_mat_predictions

            for name in names:
                location = source.location(name)
                preds, cells = _checked_cells(
                    read_deteval_mat_predictions(source.read_bytes(name), location),
                    location,
                    report,
                )
                _check_image_limits(location, preds, cells)
                _put(out, canonical_id(base_name(name)), preds, location, cells)
            return out, report
        # Text files are read in order and parsed in batches (what parsing
        # each alone gives, errors in file order: a read error first lets the
        # files before it report theirs).
        texts: list[tuple[str, str]] = []
        try:
            for name in names:
                texts.append((name, source.read_text(name)))
                if len(texts) >= TEXT_BATCH_FILES:
                    _parse_text_files(out, source, texts, style, confidences, report)
            _parse_text_files(out, source, texts, style, confidences, report)
        except Exception:
            _parse_text_files(out, source, texts, style, confidences, report)
            raise
    return out, report


#: Result files parsed in one batch at most (their arrays stay small).
TEXT_BATCH_FILES = 1024


def _parse_text_files(
    out: PredictionFiles,
    source: AnnotationSource,
    texts: list[tuple[str, str]],
    style: str,
    confidences: bool,
    report: ParseReport,
) -> None:
    """Parse the queued ``(name, text)`` files into ``out``, in order, and
    empty the queue: the usual files all at once
    (:mod:`tcmbench.eval.prediction_lines`), any other file line by line."""
    batch, texts[:] = list(texts), []
    fast: list[Any] = [None] * len(batch)
    if style in ("polygon", "polygon-yx"):
        fast = polygon_files_fast([t for _, t in batch], yx=style == "polygon-yx")
    elif style == "rrc" and not confidences:
        fast = rrc_files_fast([t for _, t in batch])
    for (name, text), result in zip(batch, fast):
        location = source.location(name)
        if result is not None:
            _check_image_limits(location, *result)
        else:
            result = _parse_text_file(text, location, style, confidences, report)
        _put(out, canonical_id(base_name(name)), result[0], location, result[1])


def scored_as_evaluated(preds: PredictionFiles, protocol: str) -> PredictionFiles:
    """``preds`` as ``protocol`` scores them: the predictions.json of an
    evaluate run gets the submission's coordinate rule first, so that
    ``score`` on it prints what evaluate printed (and what its submit.zip
    scores); any other file is returned unchanged."""
    if preds.evaluate_protocol is None:
        return preds
    from tcmbench.eval.submission import submitted_predictions

    return PredictionFiles(
        submitted_predictions(preds.predictions, protocol), preds.origins, preds.style
    )


# --------------------------------------------------------------------------- between processes


def read_predictions_ahead(
    path: str | os.PathLike[str], *, style: str, confidences: bool
) -> tuple[tuple[Any, ...], ParseReport, list[str] | None]:
    """What a worker process reading the predictions while this one reads
    the ground truth sends back: :func:`read_predictions` with any
    ``res_*.txt`` name accepted (the RRC name check needs the ground truth,
    which this process does not have), the result as :func:`flat_predictions`
    and, for the RRC styles, the entry names for :func:`received_predictions`
    to check."""
    files, report = read_predictions(path, style=style, confidences=confidences, rrc_names=False)
    names = None
    if files.style in ("rrc", "rrc-ltrb"):
        with AnnotationSource(Path(path), ReadLimits.predictions()) as source:
            names = [base_name(n) for n in source.names() if not base_name(n).startswith(".")]
    return flat_predictions(files), report, names


def received_predictions(
    ahead: tuple[tuple[Any, ...], ParseReport, list[str] | None], rrc_names: bool
) -> tuple[PredictionFiles, ParseReport] | None:
    """:func:`read_predictions_ahead`'s result as :func:`read_predictions`
    with ``rrc_names`` would have returned it, or None when an entry name
    fails the RRC check (then :func:`read_predictions` must run here, to
    raise the error in its place among the others)."""
    flat, report, names = ahead
    if rrc_names and names is not None and any(RRC_NAME.match(n) is None for n in names):
        return None
    return unflat_predictions(flat), report


def flat_predictions(files: PredictionFiles) -> tuple[Any, ...]:
    """``files`` as a few flat arrays and lists (pickling thousands of
    small arrays costs more than reading them: 17 ms for CTW1500's 3,340
    detections against 2 ms this way)."""
    preds = [p for items in files.predictions.values() for p in items]
    points = np.fromiter((len(p.polygon) for p in preds), dtype=np.int64, count=len(preds))
    coords = np.concatenate([p.polygon for p in preds], axis=0) if preds else np.zeros((0, 2))
    # Submissions are mostly whole pixels: a quarter of the bytes, exactly
    # (not for NaN, inf, huge values or -0.0, which integers cannot hold).
    if not np.signbit(coords).any():
        for kind in (np.int16, np.int32):
            with np.errstate(invalid="ignore"):
                whole = coords.astype(kind)
            if np.array_equal(whole, coords):
                coords = whole
                break
    return (
        list(files.predictions),
        [len(items) for items in files.predictions.values()],
        points,
        coords,
        [p.score for p in preds],
        files.origins,
        files.style,
        files.evaluate_protocol,
    )


def unflat_predictions(flat: tuple[Any, ...]) -> PredictionFiles:
    """The :class:`PredictionFiles` :func:`flat_predictions` was given."""
    ids, counts, points, coords, scores, origins, style, evaluate_protocol = flat
    coords = np.asarray(coords, dtype=np.float64)
    ends = np.cumsum(points).tolist()
    starts = [0, *ends[:-1]] if ends else []
    preds = [
        Prediction(coords[a:b], score) for a, b, score in zip(starts, ends, scores, strict=True)
    ]
    out: dict[str, list[Prediction]] = {}
    at = 0
    for key, n in zip(ids, counts, strict=True):
        out[key] = preds[at : at + n]
        at += n
    return PredictionFiles(out, origins, style, evaluate_protocol)


def _put(
    out: PredictionFiles, key: str, preds: list[Prediction], location: str, lines: list[int | None]
) -> None:
    if key in out.predictions:
        raise ProtocolError(f"{location}: a second result file for image {key!r}")
    out.predictions[key] = preds
    out.origins[key] = (location, lines)


def _guess_style(source: AnnotationSource, names: list[str]) -> str:
    """``mat`` for .mat files, ``rrc`` when every entry is a res_img_N.txt
    of 8 (or 9) integer fields, else ``polygon``."""
    if names and all(n.lower().endswith(".mat") for n in names):
        return "mat"
    if names and all(RRC_NAME.match(base_name(n)) for n in names):
        for name in names:
            for _, line in source.iter_lines(name):
                fields = line.split(",")
                if len(fields) in (4, 5):
                    return "rrc-ltrb"
                return "rrc" if len(fields) in (8, 9) else "polygon"
        return "rrc"
    return "polygon"


def _parse_text_file(
    text: str, location: str, style: str, confidences: bool, report: ParseReport
) -> tuple[list[Prediction], list[int | None]]:
    """One result file: its usual form at once, else line by line with the
    official patterns (a malformed line goes through ``report``)."""
    fast = None
    if style in ("polygon", "polygon-yx"):
        fast = polygon_file_fast(text, yx=style == "polygon-yx")
    elif style == "rrc":
        fast = rrc_file_fast(text, confidences)
    if fast is not None:
        _check_image_limits(location, *fast)
        return fast
    preds: list[Prediction] = []
    lines: list[int | None] = []
    work, poly_cap, work_cap = 0, limit("MAX_IMAGE_POLYGONS"), limit("MAX_IMAGE_WORK")
    for lineno, raw in numbered_lines(text):
        line = raw.replace("\r", "")
        if style == "rrc":
            parse, expected = _rrc_line, RRC_EXPECTED_CONF if confidences else RRC_EXPECTED
        elif style == "rrc-ltrb":
            parse, expected = _ltrb_line, LTRB_EXPECTED_CONF if confidences else LTRB_EXPECTED
        else:
            parse = _polygon_yx_line if style == "polygon-yx" else _polygon_xy_line
            expected = POLYGON_YX_EXPECTED if style == "polygon-yx" else POLYGON_EXPECTED
        try:
            pred = parse(line, confidences)
        except ValueError as exc:
            detail = f"{exc}; {_why(line)}" if str(exc) else _why(line)
            if style == "rrc" and not confidences and line.count(",") == 8:
                detail += "; 9 fields: if the last is a confidence, pass --param confidences=true"
            report.fail(location, lineno, expected, detail)
            continue
        preds.append(pred)
        lines.append(lineno)
        points = pred.polygon.shape[0]
        work += points * points  # image_work, inline: this loop is the scoring path
        if len(preds) > poly_cap or work > work_cap:
            break  # over a limit: the check below names this line; no need to read on
    _check_image_limits(location, preds, lines)
    return preds, lines


def _check_image_limits(location: str, preds: list[Prediction], lines: list[int | None]) -> None:
    """One image's detections within MAX_IMAGE_POLYGONS and MAX_IMAGE_WORK
    (the matching and repair work grows with their product and squares); the
    error names the line where a limit is crossed. Not a malformed line that
    ``--skip-invalid`` could drop: the file is what it is."""
    poly_cap, cap = limit("MAX_IMAGE_POLYGONS"), limit("MAX_IMAGE_WORK")
    if len(preds) <= poly_cap and image_work([p.polygon.shape[0] for p in preds]) <= cap:
        return  # the usual file: nothing to name
    if len(preds) > poly_cap:
        k = poly_cap
        raise ProtocolError(
            f"{_at(location, lines[k])}: more than {k} detections for one image; "
            f"over {limit_hint('MAX_IMAGE_POLYGONS')}"
        )
    work = 0
    for pred, line in zip(preds, lines):
        work += image_work([int(pred.polygon.shape[0])])
        if work > cap:
            raise ProtocolError(
                f"{_at(location, line)}: the detections of one image are too large to match "
                f"(sum of squared point counts {work} > {cap}); over "
                f"{limit_hint('MAX_IMAGE_WORK')}"
            )


MAT_EXPECTED = "DetEval prediction .mat: variable 'accuInf', N x 1 cells of K x 2 (x, y) arrays"


def _checked_cells(
    preds: list[Prediction], location: str, report: ParseReport
) -> tuple[list[Prediction], list[int | None]]:
    """The same geometry checks as every other reader, on the cells of a
    DetEval ``.mat`` (the cell number is reported as the line)."""
    kept: list[Prediction] = []
    cells: list[int | None] = []
    for cell, pred in enumerate(preds, start=1):
        try:
            _points(pred.polygon, 0)
        except ValueError as exc:
            report.fail(location, cell, MAT_EXPECTED, f"cell {cell}: {exc}")
            continue
        kept.append(pred)
        cells.append(cell)
    return kept, cells


def _at(location: str, line: int | None) -> str:
    return f"{location}, line {line}" if line is not None else location


def _why(line: str) -> str:
    shown = line if len(line) <= 60 else line[:57] + "..."
    return f"got {shown!r}"


def _points(values: Sequence[Any] | np.ndarray, min_points: int) -> np.ndarray:
    """Checked float64 points (the rules every reader shares:
    :func:`tcmbench.data.schema.polygon_array`)."""
    return polygon_array(values, min_points=min_points, keep_float64=True)


def _score(text: str) -> float:
    """A confidence field the RRC pattern accepted. The pattern (kept as the
    official script has it) lets through ``0x1`` or ``0 5``, on which the
    script's ``float()`` crashes: a malformed line here. So is ``1`` followed
    by 400 digits, which ``float()`` reads as infinity."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"confidence {_short(text.strip())!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"confidence {_short(text.strip())!r} is not a finite number")
    return value


def _rrc_line(line: str, confidences: bool) -> Prediction:
    m = rrc_line(confidences).match(line)
    if m is None:
        raise ValueError("")
    pts = _points([float(m.group(i)) for i in range(1, 9)], 4)
    score = _score(m.group(9)) if confidences else None
    return Prediction(polygon=pts, score=score)


def _ltrb_line(line: str, confidences: bool) -> Prediction:
    m = ltrb_line(confidences).match(line)
    if m is None:
        raise ValueError("")
    # float, not the script's int(): equal for every number a float32 holds,
    # and no ValueError on a 5,000-digit field (the points check rejects it).
    xmin, ymin, xmax, ymax = (float(m.group(i)) for i in range(1, 5))
    if xmax < xmin or ymax < ymin:
        raise ValueError("right < left or bottom < top")
    # The RRC 2013 script's rectangle_to_polygon order.
    pts = _points([xmin, ymax, xmin, ymin, xmax, ymin, xmax, ymax], 4)
    return Prediction(polygon=pts, score=_score(m.group(5)) if confidences else None)


def _polygon_xy_line(line: str, confidences: bool = False) -> Prediction:
    return _polygon_line(line, yx=False)


def _polygon_yx_line(line: str, confidences: bool = False) -> Prediction:
    return _polygon_line(line, yx=True)


def _polygon_line(line: str, yx: bool) -> Prediction:
    fields = [f.strip() for f in line.split(",")]
    if fields and fields[-1] == "":
        fields = fields[:-1]  # a trailing comma
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise ValueError("") from None
    if len(values) < 2:
        raise ValueError("")
    score = None
    if len(values) % 2 == 1:
        score = values.pop()
        if not math.isfinite(score):
            raise ValueError(f"non-finite score {score:g}")
    pts = _points(values, 1)
    if yx:
        pts = pts[:, ::-1].copy()
    return Prediction(polygon=pts, score=score)


def _read_json(path: Path, report: ParseReport) -> PredictionFiles:
    location = str(path)
    try:
        # size-checked before it is read (TCMBENCH_MAX_PREDICTION_FILE_BYTES)
        data = parse_json(read_file_bytes(path, ReadLimits.predictions()).decode("utf-8-sig"))
    except FileNotFoundError:
        raise ProtocolError(f"prediction file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(
            location, None, JSON_EXPECTED, f"not valid JSON: {exc}"
        ) from None
    except JsonInputError as exc:
        raise AnnotationFormatError(
            location, exc.line, JSON_EXPECTED, f"not valid JSON: {exc.detail}"
        ) from None
    if not isinstance(data, dict):
        raise AnnotationFormatError(
            location, None, JSON_EXPECTED, f"top level is a {type(data).__name__}"
        )
    out = PredictionFiles({}, {}, "json")
    if _is_evaluate_document(data):
        # evaluate --save-predictions' predictions.json: {"protocol": P, "predictions": {...}}
        out.evaluate_protocol = data["protocol"]
        data = data["predictions"]
    for key, items in data.items():
        shown_key = _short(key)
        if not isinstance(items, list):
            report.fail(location, None, JSON_EXPECTED, f"value of {shown_key!r} is not a list")
            continue
        preds: list[Prediction] = []
        for k, item in enumerate(items):
            try:
                preds.append(_json_prediction(item))
            except ValueError as exc:
                report.fail(
                    location, None, JSON_EXPECTED, f"{shown_key}[{k}] is not a prediction: {exc}"
                )
        where = f"{location} [{shown_key}]"
        _check_image_limits(where, preds, [None] * len(preds))
        _put(out, canonical_id(str(key)), preds, where, [None] * len(preds))
    return out


def _is_evaluate_document(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is the ``predictions.json`` that ``evaluate
    --save-predictions`` writes (tcmbench/eval/submission.py), not a plain
    image id -> predictions mapping."""
    return (
        isinstance(data.get("protocol"), str)
        and isinstance(data.get("predictions"), dict)
        and set(data) <= {"format", "protocol", "coordinates", "predictions"}
    )


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _json_prediction(item: Any) -> Prediction:
    """One JSON prediction: ``{"polygon": [...], "score": s}`` or a bare
    point list. ValueError with the reason otherwise."""
    if isinstance(item, dict):
        poly, score = item.get("polygon"), item.get("score")
    else:
        poly, score = item, None
    if poly is None:
        raise ValueError("no 'polygon'")
    pts = _points(poly, 1)  # an empty point list is no detection
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ValueError("'score' is not a number") from None
        except OverflowError:
            score = math.inf
        if not math.isfinite(score):
            raise ValueError(f"non-finite 'score' {score:g}")
    return Prediction(polygon=pts, score=score)


def write_predictions_json(
    predictions: Mapping[str, list[Prediction]], path: str | os.PathLike[str]
) -> None:
    """Write predictions in tcmbench's JSON (atomically)."""
    from tcmbench.safety.paths import atomic_write_text

    data = {k: [p.to_dict() for p in v] for k, v in predictions.items()}
    import json

    atomic_write_text(path, json.dumps(data))


# --------------------------------------------------------------------------- ground truth


def guess_gt_format(path: str | os.PathLike[str], protocol: str) -> str:
    """The ground-truth format for ``protocol``, from the file names where
    the protocol accepts several (msra-td500: ``.gt`` files or the ICDAR
    2015 conversion; tiou: any of the curved or quad formats)."""
    fixed = PROTOCOL_INPUTS.get(protocol, (None, None))[1]
    if fixed is not None:
        return fixed
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_file() and suffix == ".jsonl":
        return "jsonl"
    if p.is_file() and suffix == ".parquet":
        return "hf"
    with AnnotationSource(p) as source:
        names = [base_name(n) for n in source.names()]
    if any(n.lower().endswith(".gt") for n in names):
        return "msra-td500"
    if any(n.startswith("poly_gt_") for n in names):
        return "totaltext"
    if any(re.fullmatch(r"\d+\.txt", n) for n in names):
        return "ctw1500"
    if any(n.startswith("gt_") for n in names):
        return "icdar2015"
    raise ProtocolError(
        f"cannot tell the ground-truth format of {path} for protocol {protocol!r}; pass --gt-format"
    )


def read_ground_truth(
    path: str | os.PathLike[str], fmt: str, *, skip_invalid: bool = False
) -> tuple[list[Sample], ParseReport]:
    """Ground truth through the registered dataset readers.

    Built-in formats are read without starting the plugin manager (which
    imports every plugin): ``tcmbench score`` has to start fast.
    """
    from tcmbench.data.formats import BUILTIN_FORMATS

    for name, target, _summary, _pattern in BUILTIN_FORMATS:
        if name == fmt:
            import importlib

            modname, func = target.split(":")
            reader = getattr(importlib.import_module(modname), func)
            report = ParseReport(skip_invalid=skip_invalid)
            with AnnotationSource(path) as source:
                samples = reader(source, None, report)
            return samples, report
    from tcmbench.data.formats.api import read_annotations

    return read_annotations(fmt, path, skip_invalid=skip_invalid)
