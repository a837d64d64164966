"""SynthText gt.mat reader on a small gt.mat with SynthText's layout."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tcmbench.data.formats.api import read_annotations
from tcmbench.errors import AnnotationFormatError, DatasetNotFoundError


def cells(values: list[object]) -> np.ndarray:
    out = np.empty((1, len(values)), dtype=object)
    for i, v in enumerate(values):
        out[0, i] = v
    return out


BOXES = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3) + 0.5  # 3 words


def write_gt(path: Path, txt1: list[str] | None = None) -> None:
    """Cell arrays as in the real file: imnames, wordBB (2x4xN or 2x4), txt
    (strings whose words align with the boxes), plus charBB (not read)."""
    scipy.io.savemat(
        path,
        {
            "imnames": cells(
                [
                    np.array(["8/ballet_106_0.jpg"]),
                    np.array(["8/ballet_106_1.jpg"]),
                    np.array(["10/ant_1_0.jpg"]),
                ]
            ),
            "wordBB": cells(
                [
                    BOXES,
                    np.array([[1, 5, 5, 1], [2, 2, 6, 6]], dtype=np.float64),
                    np.zeros((2, 4, 0)),
                ]
            ),
            "txt": cells(
                [
                    np.array(txt1 or ["I lost", "Kevin  "], dtype=object),
                    np.array(["hello"]),
                    np.array([], dtype=object),
                ]
            ),
            "charBB": cells([np.zeros((2, 4, 1))] * 3),
        },
    )


@pytest.mark.parametrize("in_zip", [False, True])
def test_synthtext(tmp_path: Path, in_zip: bool) -> None:
    write_gt(tmp_path / "gt.mat")
    src: Path = tmp_path
    if in_zip:
        src = tmp_path / "SynthText.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.write(tmp_path / "gt.mat", "SynthText/gt.mat")
    samples, report = read_annotations("synthtext", src)
    # ids keep the folder as a name (tcmbench.data.ids.path_id): never a path
    assert [s.id for s in samples] == ["8__ballet_106_0", "8__ballet_106_1", "10__ant_1_0"]
    first, one_word, empty = samples
    assert [i.text for i in first.instances] == ["I", "lost", "Kevin"]
    assert [i.text for i in one_word.instances] == ["hello"]
    np.testing.assert_array_equal(one_word.instances[0].polygon, [[1, 2], [5, 2], [5, 6], [1, 6]])
    np.testing.assert_array_equal(first.instances[2].polygon[:, 0], BOXES[0, :, 2])
    np.testing.assert_array_equal(first.instances[2].polygon[:, 1], BOXES[1, :, 2])
    assert empty.instances == []
    assert report.skipped == []
    assert len(read_annotations("synthtext", src, limit=1)[0]) == 1


def test_synthtext_words_align_with_boxes(tmp_path: Path) -> None:
    write_gt(tmp_path / "gt.mat", txt1=["Lines:\nI", "lost  "])
    samples, _ = read_annotations("synthtext", tmp_path)
    assert [i.text for i in samples[0].instances] == ["Lines:", "I", "lost"]


def test_synthtext_misaligned_text_and_bad_file(tmp_path: Path) -> None:
    write_gt(tmp_path / "gt.mat", txt1=["only two"])
    with pytest.raises(AnnotationFormatError, match=r"gt.mat, line 1.*2 words for 3 boxes.*wordBB"):
        read_annotations("synthtext", tmp_path)
    samples, report = read_annotations("synthtext", tmp_path, skip_invalid=True)
    assert [i.text for i in samples[0].instances] == [None, None, None]  # boxes kept, text dropped
    assert len(report.skipped) == 1
    (tmp_path / "gt.mat").write_bytes(b"MATLAB 5.0 but not really")
    with pytest.raises(AnnotationFormatError, match="not a readable MATLAB file"):
        read_annotations("synthtext", tmp_path)
    (tmp_path / "gt.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"gt\.mat"):
        read_annotations("synthtext", tmp_path)


def test_synthtext_images_keep_their_folder(tmp_path: Path) -> None:
    write_gt(tmp_path / "gt.mat")
    for rel, size in (
        ("8/ballet_106_0.jpg", (30, 20)),
        ("8/ballet_106_1.jpg", (31, 21)),
        ("10/ant_1_0.jpg", (32, 22)),
    ):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.new("RGB", size).save(tmp_path / rel)
    samples, _ = read_annotations("synthtext", tmp_path, images=tmp_path)
    assert [(s.width, s.height) for s in samples] == [(30, 20), (31, 21), (32, 22)]
    assert samples[2].image_path == str(tmp_path / "10" / "ant_1_0.jpg")
