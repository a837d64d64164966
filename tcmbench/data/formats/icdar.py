"""ICDAR Robust Reading Competition formats: 2015 (quadrilaterals), 2013
(axis-aligned boxes) and 2017 MLT (quadrilaterals + script).

All three are one ``gt_img_N.txt`` per image, usually shipped as a zip; the
sample id is the image stem (``img_N``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tcmbench.data.formats.common import (
    LineFile,
    LineFormat,
    LineParser,
    Tokens,
    box_to_polygon,
    checked_options,
    label,
    make_instance,
    parse_lines,
    parse_numbers,
    read_per_image_files,
    to_polygon,
    unquote,
)
from tcmbench.data.formats.lines import split_numbered
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

IC15_EXPECTED = "ICDAR 2015 'x1,y1,x2,y2,x3,y3,x4,y4,transcription' (### = don't care)"
IC13_EXPECTED = (
    "ICDAR 2013 'left,top,right,bottom,\"word\"' or 'left top right bottom \"word\"' "
    "(### = don't care)"
)
MLT_EXPECTED = "ICDAR 2017 MLT 'x1,y1,x2,y2,x3,y3,x4,y4,script,transcription' (### = don't care)"


def ic15_tokens(line: str) -> Tokens | None:
    """The usual IC15 line, split without checks (:func:`parse_lines_fast`
    converts and checks the coordinates of the whole file; anything unusual
    is None)."""
    fields = line.split(",", 8)
    if len(fields) < 8:
        return None
    text, ignore = label(unquote(fields[8]) if len(fields) == 9 else None)
    return ",".join(fields[:8]), 8, text, ignore


def parse_ic15_line(line: str) -> Instance:
    """Eight coordinates, then the transcription: everything after the 8th
    comma, so a transcription may itself contain commas (``$5,50``)."""
    fields = line.split(",", 8)
    if len(fields) < 8:
        raise ValueError(f"{len(fields)} field(s); need 8 coordinates and a transcription")
    coords = parse_numbers(fields[:8])
    text = unquote(fields[8]) if len(fields) == 9 else None
    return make_instance(to_polygon(coords), text)


# Possessive quantifiers (``++``, ``*+``, ``?+``) and atomic groups never give
# back what they matched, so a line that fails (40,000 digits, a megabyte of
# spaces) is rejected in one pass: with plain ``\d+\.?\d*`` the engine tried
# every split of a digit run between the two quantifiers, which made a
# 20,000-digit line take 14 s. The transcription is captured greedily and
# stripped in Python for the same reason (a lazy ``(.*?)\s*$`` rescans the
# rest of the line at every space).
_NUM = r"([-+]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][-+]?+\d++)?+)"
_SEP = r"(?>\s*+,\s*+|\s++)"
_IC13_LINE = re.compile(rf"\s*+{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}(?:{_SEP}(.*))?+")


def parse_ic13_line(line: str) -> Instance:
    """``left, top, right, bottom, "word"`` (comma variant, the test set) or
    ``left top right bottom "word"`` (space variant, the training set); the
    box becomes TL, TR, BR, BL."""
    m = _IC13_LINE.match(line)
    if m is None or (m.group(5) is None and line[m.end() :].strip()):
        raise ValueError("not 4 numbers followed by a quoted word")
    left, top, right, bottom = parse_numbers(m.group(1, 2, 3, 4))
    if right < left or bottom < top:
        raise ValueError(
            f"right < left or bottom < top in box {left:g},{top:g},{right:g},{bottom:g}"
        )
    text = unquote(m.group(5)) if m.group(5) is not None else None
    return make_instance(box_to_polygon(left, top, right, bottom), text)


def parse_mlt_line(line: str) -> Instance:
    """Eight coordinates, the script (Latin, Arabic, ..., None), then the
    transcription (may contain commas). The script is not kept: the sample
    schema has no field for it and no protocol uses it."""
    fields = line.split(",", 9)
    if len(fields) < 10:
        raise ValueError(
            f"{len(fields)} field(s); need 8 coordinates, a script and a transcription"
        )
    coords = parse_numbers(fields[:8])
    return make_instance(to_polygon(coords), unquote(fields[9]))


def _line_reader(
    expected: str, parse_line: LineParser
) -> Callable[[AnnotationSource, str, ParseReport], list[Instance]]:
    def parse_file(source: AnnotationSource, name: str, report: ParseReport) -> list[Instance]:
        return parse_lines(source, name, report, expected, parse_line)

    return parse_file


IC15_LINES = LineFormat(IC15_EXPECTED, parse_ic15_line, ic15_tokens)


def _read_ic15_file(source: AnnotationSource, name: str, report: ParseReport) -> LineFile:
    """The file's lines, parsed with the files around it (:class:`LineBatch`)."""
    return LineFile(source.location(name), split_numbered(source.read_text(name)))


@checked_options("icdar2015")
def read_icdar2015(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, pattern: str = "gt_*.txt"
) -> list[Sample]:
    """ICDAR 2015 incidental text (also MSRA-TD500 converted to IC15 form)."""
    return read_per_image_files(
        source,
        images,
        report,
        pattern=pattern,
        parse_file=_read_ic15_file,
        expected=IC15_EXPECTED,
        line_format=IC15_LINES,
    )


@checked_options("icdar2013")
def read_icdar2013(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, pattern: str = "gt_*.txt"
) -> list[Sample]:
    """ICDAR 2013 focused scene text, both punctuation variants."""
    return read_per_image_files(
        source,
        images,
        report,
        pattern=pattern,
        parse_file=_line_reader(IC13_EXPECTED, parse_ic13_line),
        expected=IC13_EXPECTED,
    )


@checked_options("mlt17")
def read_mlt17(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, pattern: str = "gt_*.txt"
) -> list[Sample]:
    """ICDAR 2017 MLT (multi-lingual)."""
    return read_per_image_files(
        source,
        images,
        report,
        pattern=pattern,
        parse_file=_line_reader(MLT_EXPECTED, parse_mlt_line),
        expected=MLT_EXPECTED,
    )
