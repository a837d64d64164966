"""SCUT-CTW1500 (curved text lines, 14-point polygons) in all its releases.

Per line of a ``NNNN.txt`` file, the shape is recognised from the fields:

(a) 32 integers: ``xmin,ymin,xmax,ymax`` then 14 ``(dx, dy)`` offsets from
    ``(xmin, ymin)`` -- the original training labels;
(b) 28 absolute coordinates then ``,####text`` -- the test labels with
    transcriptions (``####`` followed by ``###`` = don't care);
(c) any even number of coordinates then one label field: ``CARE``
    (no transcription), ``###`` (don't care) or the transcription -- the
    TIoU-style evaluation GT;
(d) coordinates only (an even count other than 32): a polygon without text.

``NNNN.xml`` files (the training XML: ``<image file="0001.jpg"><box>
<label>text</label><segs>x1,y1,...,x14,y14</segs>``) are read as well.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from tcmbench.data.formats.common import (
    ImageFinder,
    LineBatch,
    LineFile,
    LineFormat,
    Tokens,
    annotation_names,
    attach_image,
    checked_options,
    finalize,
    is_number,
    label,
    leading_numbers,
    make_instance,
    parse_numbers,
    shorten,
    stem_id,
    to_polygon,
    unquote,
)
from tcmbench.data.formats.lines import split_numbered
from tcmbench.data.ids import file_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

TXT_EXPECTED = (
    "SCUT-CTW1500 'xmin,ymin,xmax,ymax,dx1,dy1,...,dx14,dy14' (32 ints), "
    "'x1,y1,...,x14,y14,####text', or 'x1,y1,...,xn,yn,CARE|###|text'"
)
XML_EXPECTED = (
    "SCUT-CTW1500 XML <image file=...><box><label>text</label>"
    "<segs>x1,y1,...,x14,y14</segs></box></image>"
)


# The field that starts with ``####`` (shape (b)); found by one linear search
# rather than by stripping and testing every field of a possibly huge line.
_TEXT_MARKER = re.compile(r"(?:^|,)\s*+####")


def parse_ctw_line(line: str) -> Instance:
    marker = _TEXT_MARKER.search(line)
    if marker is not None:  # (b) absolute polygon, ####text
        before = line[: marker.start()].split(",") if marker.group()[0] == "," else []
        coords = parse_numbers(before)
        text = line[line.index("####") + 4 :].strip()
        return make_instance(to_polygon(coords), text)
    fields = line.split(",")
    k = leading_numbers(fields)
    if k == len(fields) and k % 2 == 0:
        values = parse_numbers(fields)
        if len(values) == 32:  # (a) box + 14 offsets
            xmin, ymin = values[0], values[1]
            offsets = np.asarray(values[4:], dtype=np.float64).reshape(14, 2)
            return make_instance(to_polygon(offsets + [xmin, ymin]), None)
        return make_instance(to_polygon(values), None)  # (d)
    if k % 2:  # a numeric transcription ends the coordinates
        k -= 1
    coords = parse_numbers(fields[:k])
    label = unquote(line.split(",", k)[k])
    return make_instance(to_polygon(coords), None if label == "CARE" else label)  # (c)


def ctw_tokens(line: str) -> Tokens | None:
    """The TIoU-style line (coordinates, then CARE, ``###`` or a word that
    is not a number), split without checks; any other shape is None (the
    exact parser decides)."""
    if "####" in line:
        return None
    coords, comma, last = line.rpartition(",")
    count = coords.count(",") + 1
    if not comma or count % 2 or is_number(last):
        return None  # an odd number of coordinates, or a numeric transcription
    word = unquote(last)
    text, ignore = label(None if word == "CARE" else word)
    return coords, count, text, ignore


_BOX_TAG = re.compile(r"<box\b")


def _read_xml(
    source: AnnotationSource, name: str, report: ParseReport
) -> list[tuple[str, list[Instance]]]:
    """(image stem, instances) for every ``<image>`` of one XML file. Line
    numbers of boxes come from the raw text (ElementTree keeps none)."""
    import xml.etree.ElementTree as ET  # only for the XML release: keeps `score` light

    text = source.read_text(name)
    loc = source.location(name)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        report.fail(loc, exc.position[0], XML_EXPECTED, f"invalid XML: {exc}")
        return []
    box_lines = [text.count("\n", 0, m.start()) + 1 for m in _BOX_TAG.finditer(text)]
    images = [root] if root.tag == "image" else root.iter("image")
    out: list[tuple[str, list[Instance]]] = []
    box_no = 0
    for image in images:
        file_name = image.get("file")
        if not file_name:
            report.fail(loc, None, XML_EXPECTED, "<image> without a file attribute")
            box_no += len(image.findall("box"))
            continue
        instances = []
        for box in image.iter("box"):
            line = box_lines[box_no] if box_no < len(box_lines) else None
            box_no += 1
            try:
                segs = box.findtext("segs")
                if segs is not None and segs.strip():
                    poly = to_polygon(parse_numbers(segs.replace(";", ",").split(",")))
                else:
                    pts = [(p.get("x"), p.get("y")) for p in box.iter("pts")]
                    if not pts:
                        raise ValueError("<box> without <segs> or <pts>")
                    poly = to_polygon(parse_numbers([v or "" for xy in pts for v in xy]))
                label = box.findtext("label")
                instances.append(make_instance(poly, label.strip() if label is not None else None))
            except ValueError as exc:
                report.fail(loc, line, XML_EXPECTED, str(exc))
        try:
            sid = file_id(file_name)
        except ValueError as exc:
            report.fail(loc, None, XML_EXPECTED, f"<image file={shorten(file_name)!r}>: {exc}")
            continue
        out.append((sid, instances))
    return out


CTW_LINES = LineFormat(TXT_EXPECTED, parse_ctw_line, ctw_tokens)


@checked_options("ctw1500")
def read_ctw1500(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    pattern: str | tuple[str, ...] = ("*.txt", "*.xml"),
) -> list[Sample]:
    """SCUT-CTW1500: ``1001.txt`` (any of the text shapes) or ``0001.xml``.

    Text files are parsed together (:class:`LineBatch`); anything that can
    report an error on its own (an XML file, a read error, an image) first
    lets the files before it report theirs."""
    names = annotation_names(source, pattern)
    finder = ImageFinder(images) if images is not None else None
    found: list[list[tuple[Sample, str]]] = []
    batch = LineBatch(CTW_LINES, report)

    def add(name: str, loc: str, slot: int, instances: list[Instance]) -> None:
        sample = Sample(stem_id(name, ()), None, 0, 0, instances)
        if finder is not None:
            attach_image(sample, finder.find(sample.id))
        found[slot] = [(sample, loc)]

    try:
        for name in names:
            loc = source.location(name)
            found.append([])
            if not name.lower().endswith(".xml"):
                lines = split_numbered(source.read_text(name))
                batch.add(LineFile(loc, lines), functools.partial(add, name, loc, len(found) - 1))
                if finder is not None:
                    batch.flush()
                continue
            batch.flush()
            for sid, instances in _read_xml(source, name, report):
                sample = Sample(sid, None, 0, 0, instances)
                if finder is not None:
                    attach_image(sample, finder.find(sid))
                found[-1].append((sample, loc))
        batch.flush()
    except Exception:
        batch.flush()  # the files before this one report their errors first
        raise
    return finalize([x for per_file in found for x in per_file], report, TXT_EXPECTED)
