"""Total-Text reader: comma polygons, legacy multi-line records, .mat files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from annotation_sources import write_sources as _write_sources
from conftest import shared_file

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.formats.totaltext import read_totaltext_mat
from tcmbench.data.source import ParseReport
from tcmbench.errors import AnnotationFormatError


def write_sources(tmp_path: Path, files: dict[str, str | bytes]) -> list[Path]:
    return _write_sources(tmp_path, files, subdir="Test")


def polygt_bytes(rows: list[tuple[list[int], list[int], str, str]]) -> bytes:
    """A ``poly_gt_*.mat`` laid out as the official files are (checked
    against totaltext/mat_examples by test_real_mat_examples...)."""
    cell = np.empty((len(rows), 6), dtype=object)
    for r, (xs, ys, text, ornt) in enumerate(rows):
        cell[r] = [
            np.array(["x:"]),
            np.array([xs], dtype=np.int16),
            np.array(["y:"]),
            np.array([ys], dtype=np.int16),
            np.array([text]),
            np.array([ornt]),
        ]
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"polygt": cell})
    return buf.getvalue()


LEGACY = (
    "x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'c'], transcriptions: [u'nauGHTY']\n"
    "x: [[ 734 1058 1061  744  700  690  680  670  660  650  640  630  620\n"
    "   610]], y: [[360 369 449 430 420 410 400 390 380 370 360 350 340\n"
    "   330]], ornt: [u'm'], transcriptions: [u\"it's\"]\n"
    "x: [[1 5 5]], y: [[1 1 5]], ornt: [u'#'], transcriptions: [u'#']\n"
)
FILES = {
    "poly_gt_img1.txt": "140,629,189,845,358,989,550,1009,PETROSAINS\n"
    "596,437,637,441,638,422,599,419,1996\n"
    "1,1,9,1,9,9,###\n"
    "2,2,8,2,8,8,#\n"
    "3,3,7,3,7,7,a,b\n",
    "poly_gt_img12.txt": LEGACY,
    "poly_gt_img2.mat": polygt_bytes(
        [([10, 50, 50, 10], [10, 10, 30, 30], "MEX", "h"), ([1, 2, 3], [4, 5, 7], "#", "#")]
    ),
}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_totaltext_all_three_shapes(tmp_path: Path, which: int) -> None:
    samples, report = read_annotations("totaltext", write_sources(tmp_path, FILES)[which])
    assert [s.id for s in samples] == ["img1", "img2", "img12"]
    comma, mat, legacy = samples
    assert [i.text for i in comma.instances] == ["PETROSAINS", "1996", None, None, "a,b"]
    assert [i.ignore for i in comma.instances] == [False, False, True, True, False]
    np.testing.assert_array_equal(comma.instances[1].polygon[-1], [599, 419])
    assert [i.polygon.shape[0] for i in comma.instances] == [4, 4, 3, 3, 3]
    assert [i.text for i in legacy.instances] == ["nauGHTY", "it's", None]
    assert [i.ignore for i in legacy.instances] == [False, False, True]
    second = legacy.instances[1].polygon
    assert second.shape == (14, 2)
    np.testing.assert_array_equal(second[0], [734, 360])
    np.testing.assert_array_equal(second[13], [610, 330])
    assert [i.text for i in mat.instances] == ["MEX", None]
    assert [i.ignore for i in mat.instances] == [False, True]
    np.testing.assert_array_equal(
        mat.instances[0].polygon, [[10, 10], [50, 10], [50, 30], [10, 30]]
    )
    assert report.skipped == []


@pytest.mark.parametrize(
    "name, content, line, expected",
    [
        ("poly_gt_img3.txt", "1,1,9,1,9,9,ok\n1,1,9,1,word\n", 2, "x1,y1,...,xn,yn,transcription"),
        (
            "poly_gt_img3.txt",
            "1,1,9,1,9,9,ok\n1,1,9,1,9,inf,bad\n",
            2,
            "x1,y1,...,xn,yn,transcription",
        ),
        (
            "poly_gt_img3.txt",
            (
                "x: [[1 5 5]], y: [[1 1 5]], ornt: [u'c'], transcriptions: [u'a']\n"
                "x: [[1 5 5 9]],\n y: [[1 1 5]], ornt: [u'c'], transcriptions: [u'b']\n"
            ),
            2,
            "x: [[x1 x2 ...]]",
        ),
        (
            "poly_gt_img3.txt",
            (
                "x: [[1 5 5]], y: [[1 1 5]], ornt: [u'c'], transcriptions: [u'a']\n\n"
                "x: [[1 5 5]], y: [[1 1 5]], transcriptions: [u'b']\n"
            ),
            3,
            "ornt",
        ),
    ],
)
def test_totaltext_malformed(
    tmp_path: Path, name: str, content: str, line: int, expected: str
) -> None:
    for src in write_sources(tmp_path, {name: content})[:2]:
        with pytest.raises(AnnotationFormatError) as exc:
            read_annotations("totaltext", src)
        assert f"{name}, line {line}" in str(exc.value) and expected in str(exc.value)
        (s,), report = read_annotations("totaltext", src, skip_invalid=True)
        assert len(s.instances) == 1 and len(report.skipped) == 1


def test_totaltext_mat_malformed_rows_and_files(tmp_path: Path) -> None:
    data = polygt_bytes([([1, 5, 5], [1, 1, 5], "ok", "c"), ([1, 5], [1, 1], "two", "c")])
    with pytest.raises(AnnotationFormatError, match=r"poly_gt_img9.mat, line 2.*polygt"):
        read_totaltext_mat(data, "poly_gt_img9.mat")
    report = ParseReport(skip_invalid=True)
    assert [i.text for i in read_totaltext_mat(data, "poly_gt_img9.mat", report)] == ["ok"]
    assert len(report.skipped) == 1
    with pytest.raises(AnnotationFormatError, match="not a readable MATLAB file"):
        read_totaltext_mat(b"garbage", "poly_gt_img9.mat")
    src = write_sources(
        tmp_path, {"poly_gt_img9.mat": b"garbage", "poly_gt_img8.txt": "1,1,5,1,5,5,a\n"}
    )[1]
    samples, report = read_annotations("totaltext", src, skip_invalid=True)
    assert [s.id for s in samples] == ["img8", "img9"] and samples[1].instances == []
    assert len(report.skipped) == 1


# ----------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_totaltext_test_gt() -> None:
    samples, report = read_annotations("totaltext", shared_file("totaltext/test_gt.zip"))
    assert len(samples) == 300
    assert sum(len(s.instances) for s in samples) == 2545
    assert sum(s.num_ignored for s in samples) == 331
    assert report.skipped == []


@pytest.mark.realdata
def test_real_mat_examples_match_the_text_gt() -> None:
    """The official DetEval .mat GT and the comma GT describe the same words
    (the text files list the points in reverse order)."""
    mats, _ = read_annotations("totaltext", shared_file("totaltext/mat_examples"))
    assert [s.id for s in mats] == [
        "img1",
        "img2",
        "img3",
        "img4",
        "img5",
    ]  # Prediction/*.mat skipped
    assert [len(s.instances) for s in mats] == [1, 9, 4, 12, 1]
    assert sum(s.num_ignored for s in mats) == 3
    assert mats[0].instances[0].text == "PETROSAINS"
    texts, _ = read_annotations("totaltext", shared_file("totaltext/test_gt.zip"))
    by_id = {s.id: s for s in texts}
    for m in mats:
        t = by_id[m.id]
        assert len(t.instances) == len(m.instances)
        for a, b in zip(m.instances, t.instances):
            assert a.ignore == b.ignore
            np.testing.assert_array_equal(a.polygon[::-1], b.polygon)
    raw = shared_file("totaltext/mat_examples/Groundtruth/poly_gt_img4.mat").read_bytes()
    direct = read_totaltext_mat(raw, "poly_gt_img4.mat")
    assert direct == mats[3].instances
