"""ICDAR 2019 ArT (Arbitrary-shaped Text) JSON.

One file for the whole split: ``{"gt_N": [{"points": [[x, y], ...],
"transcription": str, "language": str, "illegibility": bool}, ...], ...}``.
The sample id is the key (``gt_N``), the image ``gt_N.jpg``. Illegible
words and ``###`` transcriptions are don't care.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcmbench.data.formats.common import (
    ImageFinder,
    JsonFile,
    attach_image,
    checked_options,
    finalize,
    load_json,
    make_instance,
    pick_json,
    to_polygon,
)
from tcmbench.data.ids import check_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

EXPECTED = (
    'ArT JSON {"gt_N": [{"points": [[x, y], ...] (>= 3 points), "transcription": str, '
    '"language": str, "illegibility": bool}]}'
)


def parse_art_word(word: Any) -> Instance:
    if not isinstance(word, dict):
        raise ValueError(f"a word must be an object, got {type(word).__name__}")
    if "points" not in word:
        raise ValueError("no 'points'")
    try:
        poly = to_polygon(word["points"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad 'points': {exc}") from None
    text = word.get("transcription")
    if text is not None and not isinstance(text, str):
        raise ValueError("'transcription' is not a string")
    illegible = word.get("illegibility", False)
    if not isinstance(illegible, bool):
        raise ValueError("'illegibility' is not true/false")
    return make_instance(poly, text, ignore=illegible)


@checked_options("art")
def read_art(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, file: str | None = None
) -> list[Sample]:
    """ArT labels (``train_labels.json``); ``file`` picks the JSON when a
    folder or zip holds several."""
    name = pick_json(source, file, "ArT")
    data = load_json(source, name, report, EXPECTED)
    if data is None:
        return []
    jf = JsonFile(source, name)
    if not isinstance(data, dict):
        report.fail(jf.location, 1, EXPECTED, "the top level is not an object keyed by image id")
        return []
    finder = ImageFinder(images) if images is not None else None
    found: list[tuple[Sample, str]] = []
    for key, words in data.items():
        if not isinstance(words, list):
            jf.fail(report, [key], EXPECTED, "value is not a list of words")
            continue
        try:
            check_id(key)  # the key becomes file names (<id>.png, res_<id>.txt)
        except ValueError as exc:
            jf.fail(report, [key], EXPECTED, str(exc))
            continue
        instances = []
        for i, word in enumerate(words):
            try:
                instances.append(parse_art_word(word))
            except ValueError as exc:
                jf.fail(report, [key, i], EXPECTED, str(exc))
        sample = Sample(str(key), None, 0, 0, instances)
        if finder is not None:
            attach_image(sample, finder.find(sample.id))
        found.append((sample, jf.location))
    return finalize(found, report, EXPECTED)
