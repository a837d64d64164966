"""SCUT-CTW1500 reader: offset, ####text, CARE/### polygons and the XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from annotation_sources import write_sources as _write_sources
from conftest import shared_file

from tcmbench.data.formats.api import read_annotations
from tcmbench.errors import AnnotationFormatError


def write_sources(tmp_path: Path, files: dict[str, str | bytes]) -> list[Path]:
    return _write_sources(tmp_path, files, subdir="ctw1500_test_labels")


# 14 points of a curved line, absolute
ABS = np.array(
    [
        [48, 84],
        [61, 79],
        [75, 73],
        [88, 68],
        [102, 74],
        [116, 79],
        [130, 84],
        [135, 73],
        [119, 67],
        [104, 60],
        [89, 56],
        [74, 61],
        [59, 67],
        [45, 73],
    ]
)
XMIN, YMIN = ABS.min(axis=0)
XMAX, YMAX = ABS.max(axis=0)


def flat(values: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in values.reshape(-1))


FILES = {
    # (a) box + offsets, (b) ####text and ####### (don't care), (c) CARE / ### / text, (d) bare
    "0001.txt": f"{XMIN},{YMIN},{XMAX},{YMAX},{flat(ABS - [XMIN, YMIN])}\n",
    "1001.txt": f"{flat(ABS)},####Hello, world\n{flat(ABS)},#######\n",
    "1002.txt": f"{flat(ABS)},CARE\n1,1,9,1,9,9,1,9,###\n1,1,9,1,9,9,1,9,2019\n1,1,9,1,9,9,OPEN, NOW\n"
    "1,1,9,1,9,9,1,9\n",
    "0002.xml": '<?xml version="1.0"?>\n<Annotations>\n  <image file="0002.jpg">\n'
    '    <box height="29" left="45" top="56" width="91">\n      <label>abc</label>\n'
    f"      <segs>{flat(ABS)}</segs>\n    </box>\n"
    '    <box height="9" left="1" top="1" width="9">\n      <label>###</label>\n'
    "      <segs>1,1,9,1,9,9</segs>\n    </box>\n  </image>\n</Annotations>\n",
}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_ctw1500_every_shape(tmp_path: Path, which: int) -> None:
    samples, report = read_annotations("ctw1500", write_sources(tmp_path, FILES)[which])
    assert [s.id for s in samples] == ["0001", "0002", "1001", "1002"]
    offset, xml, text, care = samples
    np.testing.assert_array_equal(offset.instances[0].polygon, ABS)  # offsets made absolute
    assert offset.instances[0].text is None and not offset.instances[0].ignore
    assert [i.text for i in xml.instances] == ["abc", None]
    assert [i.ignore for i in xml.instances] == [False, True]
    np.testing.assert_array_equal(xml.instances[0].polygon, ABS)
    assert [i.text for i in text.instances] == ["Hello, world", None]
    assert [i.ignore for i in text.instances] == [False, True]
    np.testing.assert_array_equal(text.instances[0].polygon, ABS)
    assert [i.text for i in care.instances] == [None, None, "2019", "OPEN, NOW", None]
    assert [i.ignore for i in care.instances] == [False, True, False, False, False]
    assert [i.polygon.shape[0] for i in care.instances] == [14, 4, 4, 3, 4]
    assert report.skipped == []


@pytest.mark.parametrize(
    "name, content, line",
    [
        ("1003.txt", "1,1,9,1,9,9,CARE\n1,1,9,1,CARE\n", 2),
        ("1003.txt", "1,1,9,1,9,9,CARE\n\n1,1,9,x,9,9,1,9,####t\n", 3),
        (
            "1003.xml",
            (
                '<Annotations>\n<image file="1003.jpg">\n<box><label>a</label><segs>1,1,9,1,9,9</segs></box>\n'
                "<box><label>b</label>\n<segs>1,1,9,1</segs></box>\n</image>\n</Annotations>\n"
            ),
            4,
        ),
    ],
)
def test_ctw1500_malformed(tmp_path: Path, name: str, content: str, line: int) -> None:
    for src in write_sources(tmp_path, {name: content})[:2]:
        with pytest.raises(AnnotationFormatError) as exc:
            read_annotations("ctw1500", src)
        assert f"{name}, line {line}" in str(exc.value) and "SCUT-CTW1500" in str(exc.value)
        (s,), report = read_annotations("ctw1500", src, skip_invalid=True)
        assert len(s.instances) == 1 and len(report.skipped) == 1


def test_ctw1500_broken_xml_names_its_line(tmp_path: Path) -> None:
    src = write_sources(
        tmp_path, {"0009.xml": "<Annotations>\n<image file='a.jpg'>\n</Annotations>\n"}
    )[0]
    with pytest.raises(AnnotationFormatError, match=r"0009.xml, line 3.*invalid XML"):
        read_annotations("ctw1500", src)


@pytest.mark.realdata
def test_real_ctw1500_test_gt() -> None:
    samples, report = read_annotations("ctw1500", shared_file("ctw1500/test_gt.zip"))
    assert len(samples) == 500
    assert sum(len(s.instances) for s in samples) == 3068
    assert sum(s.num_ignored for s in samples) == 0
    assert samples[0].id == "1001" and samples[-1].id == "1500"
    assert all(i.polygon.shape == (14, 2) for s in samples for i in s.instances)
    np.testing.assert_array_equal(samples[0].instances[0].polygon[:2], [[48, 84], [61, 79]])
    assert report.skipped == []
