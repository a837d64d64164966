"""Total-Text ground truth in its three published shapes.

- comma polygons ``x1,y1,...,xn,yn,transcription`` (``poly_gt_imgN.txt``,
  as in the TIoU / mmocr conversions);
- the legacy text records the authors first released::

      x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'c'], transcriptions: [u'nauGHTY']

  (numpy's printing, so long arrays wrap onto following lines);
- MATLAB ``.mat`` files (``poly_gt_imgN.mat``, key ``polygt``), which the
  official DetEval evaluation reads -- :func:`read_totaltext_mat` is public
  for the ``totaltext-deteval`` protocol.

The shape is detected per file. ``#`` (Total-Text's own marker) and ``###``
transcriptions, and ``#`` orientations, are don't-care.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.data.formats.common import (
    LineFile,
    LineFormat,
    Tokens,
    checked_options,
    label,
    leading_numbers,
    make_instance,
    mat_strings,
    parse_numbers,
    read_per_image_files,
    to_polygon,
    unquote,
)
from tcmbench.data.formats.lines import split_numbered
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

COMMA_EXPECTED = "Total-Text 'x1,y1,...,xn,yn,transcription' (n >= 3; # or ### = don't care)"
LEGACY_EXPECTED = (
    "Total-Text legacy record 'x: [[x1 x2 ...]], y: [[y1 y2 ...]], ornt: [u'c'], "
    "transcriptions: [u'text']'"
)
MAT_EXPECTED = (
    "Total-Text .mat with variable 'polygt': rows ['x:', [x1 ... xn], 'y:', [y1 ... yn], "
    "text, orientation]"
)
DONT_CARE = ("#", "###")
ID_PREFIXES = ("poly_gt_", "gt_")


# --------------------------------------------------------------------------- comma polygons


def parse_comma_line(line: str) -> Instance:
    """Coordinates, then the transcription in the last field(s).

    The transcription can be a number (``1996``) or contain commas, so: the
    leading run of numeric fields holds the coordinates; when that run is
    odd, its last member is the transcription.
    """
    fields = line.split(",")
    k = leading_numbers(fields)
    if k % 2:
        k -= 1
    coords = parse_numbers(fields[:k])
    rest = fields[k:]
    text = unquote(",".join(rest)) if rest else None
    return make_instance(to_polygon(coords), text, dont_care=DONT_CARE)


def comma_tokens(line: str) -> Tokens | None:
    """The usual comma line (an even number of coordinates, then the
    transcription), split without checks; anything else is None (the exact
    parser decides). A numeric transcription (``1996``: 81 of the 300
    Total-Text test files have one) is taken as :func:`parse_comma_line`
    takes it -- after an even run of numbers, the odd one out is the text --
    as long as every field before it is a number, which the batch's number
    check verifies (a file where it is not is parsed exactly)."""
    coords, comma, last = line.rpartition(",")
    count = coords.count(",") + 1
    if not comma or count % 2:
        return None  # an odd number of fields before the transcription
    text, ignore = label(unquote(last), DONT_CARE)
    return coords, count, text, ignore


# --------------------------------------------------------------------------- legacy records


# Possessive quantifiers and bracket-free groups keep matching linear in the
# record's length: with a lazy ``ornt: [(.*?)]`` every ``]`` of a long
# malformed record restarted the scan of the rest of it (quadratic time).
_LEGACY = re.compile(
    r"\s*+x:\s*+\[\[(?P<x>[^\]]*+)\]\]\s*+,\s*+y:\s*+\[\[(?P<y>[^\]]*+)\]\]\s*+,\s*+"
    r"ornt:\s*+\[(?P<ornt>[^\]]*+)\]\s*+,\s*+transcriptions:\s*+\[(?P<text>.*)\]\s*+$",
    re.DOTALL,
)


def _py_str(token: str) -> str:
    """``u'abc'`` / ``u"it's"`` / ``'abc'`` -> the string inside."""
    token = token.strip()
    if token[:1] in ("u", "b") and token[1:2] in ("'", '"'):
        token = token[1:]
    if len(token) >= 2 and token[0] == token[-1] and token[0] in ("'", '"'):
        token = token[1:-1]
    return token


def parse_legacy_record(record: str) -> Instance:
    m = _LEGACY.match(record)
    if m is None:
        raise ValueError(
            "not an 'x: [[...]], y: [[...]], ornt: [...], transcriptions: [...]' record"
        )
    xs = parse_numbers(m.group("x").split())
    ys = parse_numbers(m.group("y").split())
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    poly = to_polygon(np.stack([xs, ys], axis=1) if xs else [])
    ornt = _py_str(m.group("ornt"))
    text = _py_str(m.group("text"))
    return make_instance(poly, text, ignore=ornt == "#", dont_care=DONT_CARE)


def _parse_legacy_file(source: AnnotationSource, name: str, report: ParseReport) -> list[Instance]:
    """Group lines into records (a record starts with ``x:``) and parse each;
    errors name the record's first line."""
    records: list[tuple[int, list[str]]] = []
    for line_no, line in source.iter_lines(name):
        if line.lstrip().startswith("x:") or not records:
            records.append((line_no, [line]))
        else:
            records[-1][1].append(line)
    instances = []
    for line_no, lines in records:
        try:
            instances.append(parse_legacy_record(" ".join(lines)))
        except ValueError as exc:
            report.fail(source.location(name), line_no, LEGACY_EXPECTED, str(exc))
    return instances


# --------------------------------------------------------------------------- .mat


def _mat_str(value: Any) -> str:
    """A MATLAB char array / cell as loaded by scipy -> str ('' when empty)."""
    return "".join(mat_strings(value))


def read_totaltext_mat(
    data: bytes, location: str, report: ParseReport | None = None
) -> list[Instance]:
    """Instances of one Total-Text ground-truth ``.mat`` file.

    ``polygt`` holds one row per word: ``'x:'``, the x coordinates,
    ``'y:'``, the y coordinates, the transcription, the orientation
    (``c``/``h``/``m``, ``#`` = don't care). Row numbers (1-based) are
    reported as the "line" of a malformed row. Without a ``report`` any
    malformed row raises :class:`AnnotationFormatError`.
    """
    from tcmbench.data.matfile import MatFileError, load_mat

    report = report if report is not None else ParseReport()
    try:
        # load_mat validates the file first: a crafted .mat can crash scipy.
        mat = load_mat(data, ["polygt"])
    except MatFileError as exc:
        report.fail(location, None, MAT_EXPECTED, f"not a readable MATLAB file: {exc}")
        return []
    if "polygt" not in mat:
        keys = mat["__variables__"]
        report.fail(location, None, MAT_EXPECTED, f"no variable 'polygt' (found {keys})")
        return []
    polygt = mat["polygt"]
    if polygt.size == 0:
        return []
    if polygt.ndim != 2 or polygt.shape[1] < 4:
        report.fail(location, None, MAT_EXPECTED, f"'polygt' has shape {polygt.shape}")
        return []
    instances = []
    for row_no, row in enumerate(polygt, start=1):
        try:
            xs = np.asarray(row[1], dtype=np.float64).ravel()
            ys = np.asarray(row[3], dtype=np.float64).ravel()
            if xs.size != ys.size:
                raise ValueError(f"{xs.size} x values but {ys.size} y values")
            poly = to_polygon(np.stack([xs, ys], axis=1))
            text = _mat_str(row[4]) if len(row) > 4 else None
            ornt = _mat_str(row[5]) if len(row) > 5 else ""
            instances.append(make_instance(poly, text, ignore=ornt == "#", dont_care=DONT_CARE))
        except (ValueError, TypeError) as exc:
            report.fail(location, row_no, MAT_EXPECTED, f"row {row_no}: {exc}")
    return instances


# --------------------------------------------------------------------------- reader


COMMA_LINES = LineFormat(COMMA_EXPECTED, parse_comma_line, comma_tokens)


def _parse_file(
    source: AnnotationSource, name: str, report: ParseReport
) -> list[Instance] | LineFile:
    """A .mat or legacy file's instances; a comma file's lines, parsed with
    the comma files around it (:class:`LineBatch`)."""
    if name.lower().endswith(".mat"):
        return read_totaltext_mat(source.read_bytes(name), source.location(name), report)
    text = source.read_text(name)
    if text.lstrip().startswith("x:"):
        return _parse_legacy_file(source, name, report)
    return LineFile(source.location(name), split_numbered(text))


@checked_options("totaltext")
def read_totaltext(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    pattern: str | tuple[str, ...] = ("*gt_*.txt", "*gt_*.mat"),
) -> list[Sample]:
    """Total-Text: ``poly_gt_imgN.{txt,mat}`` (or ``gt_imgN.*``) -> id ``imgN``.

    The default pattern skips DetEval prediction ``.mat`` files (``imgN.mat``)
    that sit beside the ground truth in the official example folder."""
    return read_per_image_files(
        source,
        images,
        report,
        pattern=pattern,
        parse_file=_parse_file,
        expected=COMMA_EXPECTED,
        id_prefixes=ID_PREFIXES,
        line_format=COMMA_LINES,
    )
