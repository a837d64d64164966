"""ICDAR 2015 / 2013 / 2017 MLT readers: fixtures in folders and zips,
malformed lines, images, and the real RRC ground truth."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from annotation_sources import write_sources as _write_sources
from conftest import shared_file
from PIL import Image

from tcmbench.data.formats.api import read_annotations
from tcmbench.errors import (
    AnnotationFormatError,
    DatasetNotFoundError,
    ImageReadError,
    TcmbenchError,
)


def write_sources(tmp_path: Path, files: dict[str, str | bytes]) -> list[Path]:
    return _write_sources(tmp_path, files, subdir="test_gt")


IC15_FILES = {
    "gt_img_1.txt": "\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
    "493,115,519,115,519,131,493,131,[06]\r\n"
    "374,155,409,155,409,170,374,170,###\r\n",
    "gt_img_2.txt": '10,20,30,20,30,40,10,40,"say \\"hi\\", ok"\n1.5,2.5,3,2,3,4,1,4,$5,50\n\n',
    "gt_img_10.txt": "",
}


@pytest.mark.parametrize("kind", ["folder", "zip", "nested zip"])
def test_icdar2015_reads_folder_and_zips(tmp_path: Path, kind: str) -> None:
    src = write_sources(tmp_path, IC15_FILES)[["folder", "zip", "nested zip"].index(kind)]
    samples, report = read_annotations("icdar2015", src)
    assert [s.id for s in samples] == ["img_1", "img_2", "img_10"]  # natural order
    s1, s2, s10 = samples
    assert [i.text for i in s1.instances] == ["Genaxis Theatre", "[06]", None]
    assert [i.ignore for i in s1.instances] == [False, False, True]
    np.testing.assert_array_equal(
        s1.instances[0].polygon, [[377, 117], [463, 117], [465, 130], [378, 130]]
    )
    assert s1.instances[0].polygon.dtype == np.float32
    # quoted transcription with escaped quotes and commas; comma inside an unquoted one
    assert [i.text for i in s2.instances] == ['say "hi", ok', "$5,50"]
    np.testing.assert_allclose(s2.instances[1].polygon[0], [1.5, 2.5])
    assert s10.instances == []
    assert s1.image_path is None and (s1.width, s1.height) == (0, 0)
    assert report.skipped == []


@pytest.mark.parametrize(
    "line, why",
    [
        ("1,2,3,4,5,6,7,x8,word", "non-numeric"),
        ("1,2,3,4,5,6,nan,8,word", "non-finite"),
        ("1,2,3,4,5,6,word", "field"),
    ],
)
def test_icdar2015_malformed_line_names_file_line_and_format(
    tmp_path: Path, line: str, why: str
) -> None:
    files = {"gt_img_1.txt": "1,1,2,1,2,2,1,2,ok\n\n" + line + "\n"}
    for src in write_sources(tmp_path, files)[:2]:
        with pytest.raises(AnnotationFormatError) as exc:
            read_annotations("icdar2015", src)
        msg = str(exc.value)
        assert "gt_img_1.txt" in msg and "line 3" in msg and why in msg
        assert "x1,y1,x2,y2,x3,y3,x4,y4,transcription" in msg
        samples, report = read_annotations("icdar2015", src, skip_invalid=True)
        assert len(samples[0].instances) == 1 and len(report.skipped) == 1
        assert report.skipped[0].line == 3 and "1 malformed" in report.summary()


def test_icdar2015_images_give_path_and_header_size(tmp_path: Path) -> None:
    src = write_sources(
        tmp_path, {"gt_img_1.txt": "1,1,2,1,2,2,1,2,a\n", "gt_img_2.txt": "1,1,2,1,2,2,1,2,b\n"}
    )[1]
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 32)).save(images / "img_1.jpg")
    Image.new("RGB", (20, 50)).save(images / "img_2.PNG")
    samples, _ = read_annotations("icdar2015", src, images=images)
    assert [(Path(s.image_path).name, s.width, s.height) for s in samples] == [
        ("img_1.jpg", 64, 32),
        ("img_2.PNG", 20, 50),
    ]
    (images / "img_2.PNG").write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match=r"img_2\.PNG"):
        read_annotations("icdar2015", src, images=images)
    (images / "img_2.PNG").unlink()
    with pytest.raises(ImageReadError, match="img_2"):
        read_annotations("icdar2015", src, images=images)


def test_missing_files_and_unknown_options_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="gt_"):
        read_annotations("icdar2015", tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError):
        read_annotations("icdar2015", tmp_path / "nope")
    src = write_sources(tmp_path, {"gt_img_1.txt": "1,1,2,1,2,2,1,2,a\n"})[0]
    with pytest.raises(TcmbenchError, match=r"patern.*accepted: pattern"):
        read_annotations("icdar2015", src, patern="*.txt")
    samples, _ = read_annotations("icdar2015", src, pattern="gt_img_1.txt")
    assert len(samples) == 1


def test_duplicate_ids_in_one_zip_are_reported(tmp_path: Path) -> None:
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/gt_img_1.txt", "1,1,2,1,2,2,1,2,a\n")
        zf.writestr("b/gt_img_1.txt", "1,1,2,1,2,2,1,2,b\n")
    with pytest.raises(AnnotationFormatError, match=r"already read from .*a/gt_img_1\.txt"):
        read_annotations("icdar2015", z)
    samples, report = read_annotations("icdar2015", z, skip_invalid=True)
    assert len(samples) == 1 and len(report.skipped) == 1


IC13_FILES = {
    "gt_img_1.txt": '38, 43, 920, 215, "Tiredness"\n275, 264, 665, 450, "kills"\n',
    "gt_img_2.txt": '10 20 30 40 "two words"\n5 6 7 8 "###"\n0.5 1 2 3 "x, y"\n',
}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_icdar2013_comma_and_space_variants(tmp_path: Path, which: int) -> None:
    samples, _ = read_annotations("icdar2013", write_sources(tmp_path, IC13_FILES)[which])
    s1, s2 = samples
    np.testing.assert_array_equal(
        s1.instances[0].polygon, [[38, 43], [920, 43], [920, 215], [38, 215]]
    )
    assert [i.text for i in s1.instances] == ["Tiredness", "kills"]
    assert [i.text for i in s2.instances] == ["two words", None, "x, y"]
    assert [i.ignore for i in s2.instances] == [False, True, False]
    np.testing.assert_array_equal(s2.instances[0].polygon, [[10, 20], [30, 20], [30, 40], [10, 40]])


@pytest.mark.parametrize(
    "line", ['38, 43, 920, "word"', '30, 43, 20, 215, "reversed"', "a b c d e"]
)
def test_icdar2013_malformed(tmp_path: Path, line: str) -> None:
    src = write_sources(tmp_path, {"gt_img_7.txt": '1 2 3 4 "ok"\n' + line + "\n"})[2]
    with pytest.raises(AnnotationFormatError) as exc:
        read_annotations("icdar2013", src)
    assert "gt_img_7.txt, line 2" in str(exc.value) and "left,top,right,bottom" in str(exc.value)
    samples, report = read_annotations("icdar2013", src, skip_invalid=True)
    assert len(samples[0].instances) == 1 and len(report.skipped) == 1


MLT_FILES = {
    "gt_img_1.txt": "10,10,50,10,50,30,10,30,Latin,Hello, world\n"
    "60,10,90,10,90,30,60,30,Arabic,###\n"
    "1,1,5,1,5,5,1,5,Chinese,中文\n",
}


@pytest.mark.parametrize("which", [0, 1])
def test_mlt17(tmp_path: Path, which: int) -> None:
    (s,), _ = read_annotations("mlt17", write_sources(tmp_path, MLT_FILES)[which])
    assert s.id == "img_1"
    assert [i.text for i in s.instances] == ["Hello, world", None, "中文"]
    assert [i.ignore for i in s.instances] == [False, True, False]
    np.testing.assert_array_equal(s.instances[1].polygon[2], [90, 30])


def test_mlt17_malformed(tmp_path: Path) -> None:
    src = write_sources(
        tmp_path, {"gt_img_3.txt": "1,1,5,1,5,5,1,5,Latin,ok\n1,1,5,1,5,5,1,5,Latin\n"}
    )[1]
    with pytest.raises(AnnotationFormatError, match=r"gt_img_3.txt, line 2.*script,transcription"):
        read_annotations("mlt17", src)
    (s,), report = read_annotations("mlt17", src, skip_invalid=True)
    assert len(s.instances) == 1 and len(report.skipped) == 1


# ----------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_icdar2015_test_gt() -> None:
    samples, report = read_annotations("icdar2015", shared_file("icdar2015/test_gt.zip"))
    assert len(samples) == 500
    assert sum(len(s.instances) for s in samples) == 5230
    assert sum(s.num_ignored for s in samples) == 3153
    assert samples[0].id == "img_1" and samples[-1].id == "img_500"
    assert all(i.polygon.shape == (4, 2) for s in samples for i in s.instances)
    assert report.skipped == []


@pytest.mark.realdata
def test_real_icdar2015_toy_with_bom_and_images() -> None:
    gts = shared_file("icdar2015-toy/train_gts")
    assert (gts / "gt_img_1.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    samples, _ = read_annotations(
        "icdar2015", gts, images=shared_file("icdar2015-toy/train_images")
    )
    assert [s.id for s in samples] == [f"img_{i}" for i in range(1, 11)]
    first = samples[0].instances[0]
    assert first.text == "Genaxis Theatre" and "\ufeff" not in first.text
    np.testing.assert_array_equal(first.polygon[0], [377, 117])
    assert all(Path(s.image_path).name == f"{s.id}.jpg" for s in samples)
    assert all((s.width, s.height) == (1280, 720) for s in samples)


@pytest.mark.realdata
def test_real_icdar2013_test_gt() -> None:
    samples, _ = read_annotations("icdar2013", shared_file("icdar2013/test_gt.zip"))
    assert len(samples) == 233
    assert sum(len(s.instances) for s in samples) == 1095
    assert sum(s.num_ignored for s in samples) == 0
    assert samples[0].instances[0].text == "Tiredness"


def test_single_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    one = tmp_path / "my_labels.txt"
    one.write_text("1,1,2,1,2,2,1,2,a\n")
    (s,), _ = read_annotations("icdar2015", one)
    assert s.id == "my_labels" and s.instances[0].text == "a"
    folder = write_sources(
        tmp_path, {"gt_img_1.txt": "1,1,2,1,2,2,1,2,a\n", "._gt_img_1.txt": b"\x00\x05\x16"}
    )[0]
    assert [s.id for s in read_annotations("icdar2015", folder)[0]] == [
        "img_1"
    ]  # macOS litter skipped
