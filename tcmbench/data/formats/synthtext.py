"""SynthText (Gupta et al. 2016) ``gt.mat``.

Variables used: ``imnames`` (relative image paths such as
``8/ballet_106_0.jpg``), ``wordBB`` (per image 2 x 4 x N word quadrilaterals,
2 x 4 when N = 1; row 0 = x, row 1 = y) and ``txt`` (per image the text
instances, whose whitespace-separated words align with the ``wordBB``
columns). ``charBB`` is not loaded: it is most of the file's size.

The sample id keeps the folder, because stems repeat across SynthText's
folders, as a name: ``8/ballet_106_0.jpg`` -> ``8__ballet_106_0``
(:func:`tcmbench.data.ids.path_id`). An image name that is absolute or
climbs out with ``..`` is a malformed entry (naming ``gt.mat`` and the
image index), and an image is only looked for inside the image folder.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from tcmbench.data.formats.common import (
    ImageFinder,
    attach_image,
    checked_options,
    finalize,
    mat_strings,
    to_polygon,
)
from tcmbench.data.ids import path_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.errors import DatasetNotFoundError

EXPECTED = (
    "SynthText gt.mat with cell arrays 'imnames', 'wordBB' (2 x 4 x N per image) and "
    "'txt' (N whitespace-separated words per image)"
)


def _words(txt: Any) -> list[str]:
    return " ".join(mat_strings(txt)).split()


def _boxes(bb: Any) -> np.ndarray:
    arr = np.asarray(bb, dtype=np.float64)
    if arr.shape == (2, 4):
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[:2] != (2, 4):
        raise ValueError(f"wordBB of shape {arr.shape}, expected 2 x 4 x N")
    return arr


@checked_options("synthtext")
def read_synthtext(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    file: str = "gt.mat",
    limit: int | None = None,
) -> list[Sample]:
    """SynthText's ``gt.mat``; ``limit`` keeps the first N images (the full
    file has 858,750), ``images`` is the folder holding ``8/``, ``9/``, ..."""
    from tcmbench.data.matfile import MatFileError, load_mat

    names = [n for n in source.names() if PurePosixPath(n).name == file]
    if not names:
        raise DatasetNotFoundError(f"no SynthText {file} in {source.path}")
    name = names[0]
    loc = source.location(name)
    local = source.local_path(name)
    try:
        # load_mat validates the file first: a crafted gt.mat can crash scipy.
        data = local if local is not None else source.read_bytes(name)
        mat = load_mat(data, ["imnames", "wordBB", "txt"])
    except MatFileError as exc:
        report.fail(loc, None, EXPECTED, f"not a readable MATLAB file: {exc}")
        return []
    missing = [k for k in ("imnames", "wordBB", "txt") if k not in mat]
    if missing:
        present = ", ".join(mat["__variables__"]) or "none"
        report.fail(
            loc, None, EXPECTED, f"missing variable(s) {', '.join(missing)} (found {present})"
        )
        return []
    imnames, word_bbs, txts = (np.asarray(mat[k]).ravel() for k in ("imnames", "wordBB", "txt"))
    if not len(imnames) == len(word_bbs) == len(txts):
        report.fail(
            loc, None, EXPECTED, f"{len(imnames)} imnames, {len(word_bbs)} wordBB, {len(txts)} txt"
        )
        return []
    count = len(imnames) if limit is None else min(int(limit), len(imnames))
    finder = ImageFinder(images) if images is not None else None
    found: list[tuple[Sample, str]] = []
    for i in range(count):
        record = i + 1  # reported as the "line": the 1-based image index
        try:
            imname = "".join(mat_strings(imnames[i])).strip()
            if not imname:
                raise ValueError("empty image name")
            sid = path_id(imname)
            boxes = _boxes(word_bbs[i])
        except ValueError as exc:
            report.fail(loc, record, EXPECTED, f"image {record}: {exc}")
            continue
        words = _words(txts[i])
        text_ok = len(words) == boxes.shape[2]
        if not text_ok:
            report.fail(
                loc,
                record,
                EXPECTED,
                f"image {record} ({imname}): {len(words)} words for {boxes.shape[2]} boxes",
            )
            # skip_invalid: keep the boxes, drop the misaligned text
        instances: list[Instance] = []
        for j in range(boxes.shape[2]):
            try:
                poly = to_polygon(boxes[:, :, j].T)
            except ValueError as exc:
                report.fail(loc, record, EXPECTED, f"image {record} ({imname}) word {j + 1}: {exc}")
                continue
            instances.append(Instance(poly, ignore=False, text=words[j] if text_ok else None))
        sample = Sample(sid, None, 0, 0, instances)
        if finder is not None:
            try:
                path = finder.find_file(imname)
            except ValueError as exc:
                report.fail(loc, record, EXPECTED, f"image {record}: {exc}")
                continue
            attach_image(sample, path)
        found.append((sample, loc))
    return finalize(found, report, EXPECTED)
