"""Prediction / ground-truth file reading for ``tcmbench score``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

from tcmbench.data.schema import Prediction
from tcmbench.errors import AnnotationFormatError, ProtocolError
from tcmbench.eval.api import canonical_id, match_prediction_ids, numeric_key
from tcmbench.eval.io import guess_gt_format, read_predictions, write_predictions_json


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("res_img_17.txt", "img_17"),
        ("gt_img_17.txt", "img_17"),
        ("img_17", "img_17"),
        ("poly_gt_img12.txt", "img12"),
        ("img12.txt", "img12"),
        ("1001.txt", "1001"),
        ("sub/dir/1001.txt", "1001"),
        ("res_IMG_0059.txt", "IMG_0059"),
        ("IMG_0059.gt", "IMG_0059"),
    ],
)
def test_canonical_id(name: str, expected: str) -> None:
    assert canonical_id(name) == expected


def test_numeric_key_lets_naming_conventions_meet() -> None:
    assert numeric_key("img_59") == numeric_key("IMG_0059") == numeric_key("59") == "59"
    assert numeric_key("word_3") is None
    gt = {"IMG_0059": [], "IMG_0060": []}
    preds = match_prediction_ids(
        gt, {"res_img_59.txt": [Prediction(polygon=np.zeros((4, 2)))], "img_60": []}
    )
    assert set(preds) == {"IMG_0059", "IMG_0060"} and len(preds["IMG_0059"]) == 1
    with pytest.raises(ProtocolError, match="both name"):
        match_prediction_ids({"img_1": []}, {"res_img_1.txt": [], "img_01": []})


def test_rrc_zip_as_the_rrc_script_reads_it(tmp_path: Path) -> None:
    z = make_zip(
        tmp_path / "submit.zip",
        {
            "res_img_1.txt": "\ufeff1, 2, 3,4,5,6 , 7,8\r\n\r\n-1,-2,3,4,5,6,7,8\n",
            "res_img_2.txt": "",
        },
    )
    preds, report = read_predictions(z, style="rrc")
    assert preds.style == "rrc" and set(preds) == {"img_1", "img_2"}
    np.testing.assert_array_equal(preds["img_1"][0].polygon, [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert preds["img_1"][1].polygon[0, 0] == -1 and preds["img_1"][0].score is None
    assert preds["img_2"] == [] and not report.skipped
    assert preds.locate("img_1", 1).endswith("res_img_1.txt, line 3")


def test_rrc_malformed_line_names_file_line_and_format(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "s.zip", {"res_img_3.txt": "1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7.5,8\n"})
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(z, style="rrc")
    msg = str(err.value)
    assert "s.zip:res_img_3.txt, line 2" in msg and "x1,y1,x2,y2,x3,y3,x4,y4" in msg
    preds, report = read_predictions(z, style="rrc", skip_invalid=True)
    assert len(preds["img_3"]) == 1 and len(report.skipped) == 1


def test_rrc_confidences_and_entry_names(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "s.zip", {"res_img_1.txt": "1,2,3,4,5,6,7,8,0.75\n"})
    preds, _ = read_predictions(z, style="rrc", confidences=True)
    assert preds["img_1"][0].score == 0.75
    with pytest.raises(AnnotationFormatError):
        read_predictions(z, style="rrc")  # 9 fields without confidences: the script's regex fails
    bad = make_zip(tmp_path / "b.zip", {"res_img_1.txt": "", "readme.txt": "hi"})
    with pytest.raises(ProtocolError, match=r"readme\.txt.*res_img_<N>\.txt"):
        read_predictions(bad, style="rrc")


def test_ltrb_lines(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "s.zip", {"res_img_1.txt": "10,20,30,40\n5,5,4,9\n"})
    with pytest.raises(AnnotationFormatError, match="right >= left"):
        read_predictions(z, style="rrc-ltrb")
    z = make_zip(tmp_path / "t.zip", {"res_img_1.txt": "10,20,30,40,0.5\n"})
    preds, _ = read_predictions(z, style="rrc-ltrb", confidences=True)
    np.testing.assert_array_equal(
        preds["img_1"][0].polygon, [[10, 40], [10, 20], [30, 20], [30, 40]]
    )


def test_polygon_folder_with_scores_and_order(tmp_path: Path) -> None:
    folder = tmp_path / "det"
    folder.mkdir()
    (folder / "img12.txt").write_text("1,2,3,4,5,6\n1.5,2.5,3,4,5,6,0.9\n")
    (folder / ".DS_Store").write_bytes(b"\0")
    preds, _ = read_predictions(folder, style="polygon")
    assert preds["img12"][0].score is None and preds["img12"][1].score == 0.9
    np.testing.assert_array_equal(preds["img12"][1].polygon, [[1.5, 2.5], [3, 4], [5, 6]])
    yx, _ = read_predictions(folder, style="polygon-yx")
    np.testing.assert_array_equal(yx["img12"][0].polygon, [[2, 1], [4, 3], [6, 5]])


def test_polygon_malformed_line(tmp_path: Path) -> None:
    folder = tmp_path / "det"
    folder.mkdir()
    (folder / "1001.txt").write_text("1,2,3,4,5,6\n\n1,2,x,4,5,6\n")
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(folder, style="polygon")
    assert "1001.txt, line 3" in str(err.value) and "x1,y1,x2,y2" in str(err.value)
    (folder / "notes.md").write_text("x")
    with pytest.raises(ProtocolError, match=r"notes\.md"):
        read_predictions(folder, style="polygon")


def test_json_predictions_round_trip(tmp_path: Path) -> None:
    preds = {
        "img_1": [Prediction(polygon=np.array([[0, 0], [4, 0], [4, 4], [0, 4]]), score=0.5)],
        "img_2": [],
    }
    path = tmp_path / "p.json"
    write_predictions_json(preds, path)
    back, _ = read_predictions(path)
    assert back.style == "json" and back["img_2"] == []
    np.testing.assert_array_equal(back["img_1"][0].polygon, preds["img_1"][0].polygon)
    assert back["img_1"][0].score == 0.5
    path.write_text(json.dumps({"img_1": [{"polygon": [0, 0, 1]}]}))
    with pytest.raises(AnnotationFormatError, match="img_1\\[0\\]"):
        read_predictions(path)
    path.write_text("{not json")
    with pytest.raises(AnnotationFormatError, match="not valid JSON"):
        read_predictions(path)


def test_json_prediction_without_points_is_a_malformed_entry(tmp_path: Path) -> None:
    """An empty point list once reached evaluate() and failed there with
    numpy's "zero-size array" ValueError (found by the fuzz suite)."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"img_1": [{"polygon": []}, {"polygon": [0, 0, 4, 0, 4, 4]}]}))
    with pytest.raises(AnnotationFormatError, match=r"img_1\[0\].*0 point\(s\)"):
        read_predictions(path, style="json")
    files, report = read_predictions(path, style="json", skip_invalid=True)
    assert len(files["img_1"]) == 1 and report.skipped_count == 1


def test_auto_style(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "a.zip", {"res_img_1.txt": "1,2,3,4,5,6,7,8\n"})
    assert read_predictions(z)[0].style == "rrc"
    z = make_zip(tmp_path / "b.zip", {"1001.txt": "1,2,3,4,5,6,7,8,9,10\n"})
    assert read_predictions(z)[0].style == "polygon"


def test_guess_gt_format(tmp_path: Path) -> None:
    assert guess_gt_format(tmp_path, "icdar2015") == "icdar2015"
    z = make_zip(tmp_path / "g.zip", {"poly_gt_img1.txt": ""})
    assert guess_gt_format(z, "tiou") == "totaltext"
    z = make_zip(tmp_path / "c.zip", {"1001.txt": ""})
    assert guess_gt_format(z, "tiou") == "ctw1500"
    z = make_zip(tmp_path / "m.zip", {"IMG_0059.gt": ""})
    assert guess_gt_format(z, "msra-td500") == "msra-td500"
    z = make_zip(tmp_path / "x.zip", {"what.csv": ""})
    with pytest.raises(ProtocolError, match="--gt-format"):
        guess_gt_format(z, "tiou")


@pytest.mark.realdata
def test_official_zips_read_completely() -> None:
    preds, _ = read_predictions(shared_file("icdar2015/pixellink_submit.zip"), style="rrc")
    assert len(preds) == 500 and sum(map(len, preds.values())) == 2823
    preds, _ = read_predictions(shared_file("ctw1500/example_det.zip"), style="polygon")
    assert len(preds) == 500 and sum(map(len, preds.values())) == 3340
    preds, _ = read_predictions(shared_file("totaltext/baseline_det.zip"), style="polygon")
    assert sum(map(len, preds.values())) == 2098


@pytest.mark.realdata
def test_deteval_mat_predictions() -> None:
    preds, _ = read_predictions(shared_file("totaltext/mat_examples/Prediction"))
    assert preds.style == "mat" and set(preds) == {f"img{i}" for i in range(1, 6)}
    assert all(p.polygon.shape[1] == 2 for ps in preds.values() for p in ps)
