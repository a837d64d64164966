"""MSRA-TD500 / HUST-TR400 rotated rectangles."""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file
from PIL import Image

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.formats.common import rotated_rect_to_polygon
from tcmbench.errors import AnnotationFormatError


def test_rotated_rectangle_corners() -> None:
    # unrotated: TL, TR, BR, BL of the box itself
    np.testing.assert_allclose(
        rotated_rect_to_polygon(10, 20, 100, 40, 0.0), [[10, 20], [110, 20], [110, 60], [10, 60]]
    )
    # a quarter turn about the centre (60, 40): TL goes to the top right on screen
    np.testing.assert_allclose(
        rotated_rect_to_polygon(10, 20, 100, 40, math.pi / 2),
        [[80, -10], [80, 90], [40, 90], [40, -10]],
        atol=1e-4,
    )
    # rotation keeps side lengths and centre
    p = rotated_rect_to_polygon(300, 675, 1232, 112, 0.053651).astype(np.float64)
    assert np.linalg.norm(p[1] - p[0]) == pytest.approx(1232, abs=1e-3)
    assert np.linalg.norm(p[3] - p[0]) == pytest.approx(112, abs=1e-3)
    np.testing.assert_allclose(p.mean(axis=0), [916, 731], atol=1e-3)


GT = "0 0 300 675 1232 112 0.053651\n1 1 208 801 1489 178 -0.101044\n"


@pytest.mark.parametrize("fmt", ["msra-td500", "hust-tr400"])
def test_td500_folder_with_images_beside(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "test"
    folder.mkdir()
    (folder / "IMG_0059.gt").write_text(GT)
    (folder / "IMG_0100.gt").write_text("")
    Image.new("RGB", (1920, 1080)).save(folder / "IMG_0059.JPG")
    samples, _ = read_annotations(fmt, folder)
    assert [s.id for s in samples] == ["IMG_0059", "IMG_0100"]
    s, no_image = samples
    assert Path(s.image_path) == folder / "IMG_0059.JPG" and (s.width, s.height) == (1920, 1080)
    assert no_image.image_path is None and (no_image.width, no_image.height) == (0, 0)
    assert [i.ignore for i in s.instances] == [False, True]
    np.testing.assert_allclose(
        s.instances[0].polygon[0], [303.889, 642.047], atol=0.01
    )  # IC15 conversion: 304,642

    z = tmp_path / "gt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(folder / "IMG_0059.gt", "MSRA-TD500/test/IMG_0059.gt")
    (zs,), _ = read_annotations(fmt, z)
    assert zs.image_path is None and zs.instances == s.instances


@pytest.mark.parametrize(
    "line, why",
    [
        ("0 0 300 675 1232 112", "6 field"),
        ("0 2 1 1 5 5 0.1", "difficult"),
        ("0 0 1 1 5 5 zero", "non-numeric"),
    ],
)
def test_td500_malformed(tmp_path: Path, line: str, why: str) -> None:
    (tmp_path / "IMG_1.gt").write_text("0 0 1 1 5 5 0\n" + line + "\n")
    with pytest.raises(AnnotationFormatError) as exc:
        read_annotations("msra-td500", tmp_path)
    msg = str(exc.value)
    assert "IMG_1.gt, line 2" in msg and why in msg and "index difficult x y w h theta" in msg
    (s,), report = read_annotations("msra-td500", tmp_path, skip_invalid=True)
    assert len(s.instances) == 1 and len(report.skipped) == 1


@pytest.mark.realdata
@pytest.mark.parametrize(
    "split, images, lines, difficult", [("test", 200, 651, 69), ("train", 300, 1068, 101)]
)
def test_real_td500(split: str, images: int, lines: int, difficult: int) -> None:
    samples, _ = read_annotations("msra-td500", shared_file(f"msra-td500/{split}"))
    assert len(samples) == images
    assert sum(len(s.instances) for s in samples) == lines
    assert sum(s.num_ignored for s in samples) == difficult
    assert all(s.image_path and s.width > 0 and s.height > 0 for s in samples)


@pytest.mark.realdata
def test_real_td500_matches_its_ic15_conversion() -> None:
    """The IC15-format TD500 test GT (rounded corners, difficult -> ###) is
    our rotated-rectangle conversion of the .gt files, to within rounding."""
    ours, _ = read_annotations("msra-td500", shared_file("msra-td500/test"))
    ic15, _ = read_annotations("icdar2015", shared_file("msra-td500/test_gt_ic15.zip"))
    by_number = {int(re.sub(r"\D", "", s.id)): s for s in ic15}
    assert len(by_number) == len(ours) == 200
    for s in ours:
        other = by_number[int(s.id.split("_")[1])]
        assert [i.ignore for i in s.instances] == [i.ignore for i in other.instances]
        for a, b in zip(s.instances, other.instances):
            assert np.abs(a.polygon - b.polygon).max() <= 1.0
