"""MSRA-TD500 and HUST-TR400: rotated rectangles, one ``IMG_xxxx.gt`` per image.

Each line is ``index difficult x y w h theta``: ``(x, y)`` is the top-left
corner of the unrotated ``w x h`` box, ``theta`` the rotation in radians
about the box centre. The polygon is the rotated rectangle's corners TL, TR,
BR, BL (the same corners the common IC15-format conversion of TD500 rounds
to integers). ``difficult = 1`` -> don't care.

The authors ship images and ``.gt`` files side by side, so when no image
folder is given and the annotations are a folder, images are looked up next
to each ``.gt`` file.
"""

from __future__ import annotations

from pathlib import Path

from tcmbench.data.formats.common import (
    checked_options,
    parse_lines,
    parse_number,
    read_per_image_files,
    rotated_rect_to_polygon,
)
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

EXPECTED = "MSRA-TD500 'index difficult x y w h theta' (7 numbers, theta in radians, difficult 0/1)"


def parse_td500_line(line: str) -> Instance:
    fields = line.split()
    if len(fields) != 7:
        raise ValueError(f"{len(fields)} field(s), need 7")
    _index, difficult, x, y, w, h, theta = (parse_number(f) for f in fields)
    if difficult not in (0.0, 1.0):
        raise ValueError(f"difficult flag {fields[1]!r} is not 0 or 1")
    if w < 0 or h < 0:
        raise ValueError(f"negative size {w:g} x {h:g}")
    return Instance(rotated_rect_to_polygon(x, y, w, h, theta), ignore=difficult == 1.0, text=None)


def _parse_file(source: AnnotationSource, name: str, report: ParseReport) -> list[Instance]:
    return parse_lines(source, name, report, EXPECTED, parse_td500_line)


@checked_options("msra-td500 / hust-tr400")
def read_msra_td500(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, pattern: str = "*.gt"
) -> list[Sample]:
    """MSRA-TD500 / HUST-TR400 ``.gt`` files -> samples ``IMG_xxxx``."""
    return read_per_image_files(
        source,
        images,
        report,
        pattern=pattern,
        parse_file=_parse_file,
        expected=EXPECTED,
        id_prefixes=(),
        images_next_to_annotations=True,
    )
