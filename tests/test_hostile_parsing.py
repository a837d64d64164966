"""Hostile input to the parsing layer (issue 10): every reader of annotations
and predictions turns a crafted file into a one-line error that names the
file, the line and the expected format -- never a traceback, never a
silently corrupted score, never minutes of CPU.

Each test feeds exactly the input of one defect of the issue:

2. JSON: deep nesting, integers over 4300 digits, lists / objects where ids
   are expected, sample ids whose digit runs are too long for ``int()``;
3. numbers: ``Infinity`` / huge widths, coordinates beyond float32, ``1e999``
   in ICDAR 2013, NaN boxes, NaN / inf predictions and ground truth;
5. an RRC confidence the official pattern accepts but ``float()`` rejects;
6. lines that made the line regular expressions backtrack quadratically;
7. polygons and images beyond the geometry limits;
8. characters ``str.splitlines()`` treats as line breaks inside a line.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

from tcmbench.cli import cli, main
from tcmbench.data.formats.api import read_annotations
from tcmbench.data.schema import (
    MAX_POLYGON_POINTS,
    Instance,
    Prediction,
    Sample,
    image_work,
    limit,
    natural_key,
    polygon_array,
)
from tcmbench.data.source import split_lines
from tcmbench.errors import AnnotationFormatError, ProtocolError, TcmbenchError
from tcmbench.eval.api import evaluate, match_prediction_ids, numeric_key
from tcmbench.eval.io import read_predictions

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "7" * 5000  # over Python's 4300-digit int() limit
FAST = 1.0  # CPU seconds ("well under a second"; CPU time, as wall time on a
# shared machine says more about the neighbours than about the parser)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def read_error(fmt: str, folder: Path) -> AnnotationFormatError:
    with pytest.raises(AnnotationFormatError) as err:
        read_annotations(fmt, folder)
    return err.value


def square(x: float = 0, y: float = 0, s: float = 10) -> np.ndarray:
    return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], dtype=np.float64)


# --------------------------------------------------------------------------- 2. JSON

COCO_HEAD = '{"images": [{"id": 1, "file_name": "a.jpg"}],'

# (format, file name, the document wrapping a value where a record is expected)
JSON_FORMATS = [
    ("jsonl", "a.jsonl", "{}"),
    ("coco-text", "a.json", '{{"images": [{{"id": 1, "file_name": "a.jpg", "width": {}}}]}}'),
    ("art", "a.json", '{{"gt_1": [{{"points": [[0, 0], [9, 0], {}]}}]}}'),
    ("mmocr", "a.json", '{{"data_list": [{{"img_path": "a.jpg", "width": {}}}]}}'),
]


@pytest.mark.parametrize(("fmt", "name", "doc"), JSON_FORMATS)
def test_json_nested_too_deeply_names_file_line_and_format(
    tmp_path: Path, fmt: str, name: str, doc: str
) -> None:
    """Python's parser raises RecursionError on deep nesting; every JSON
    reader reports it instead, at the line where the nesting goes deep."""
    write(tmp_path / "d", name, "\n\n" + doc.format(DEEP))
    err = read_error(fmt, tmp_path / "d")
    msg = str(err)
    assert name in msg and "nested too deeply" in msg
    assert err.line == 3 and err.expected and "expected" in msg


@pytest.mark.parametrize(("fmt", "name", "doc"), JSON_FORMATS)
def test_json_integer_over_4300_digits_names_file_line_and_format(
    tmp_path: Path, fmt: str, name: str, doc: str
) -> None:
    write(tmp_path / "d", name, "\n" + doc.format(HUGE_INT))
    err = read_error(fmt, tmp_path / "d")
    assert name in str(err) and "5000 digits" in str(err) and err.line == 2


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ('{"images": [{"id": [1], "file_name": "a.jpg"}]}', "'id' must be an integer or a string"),
        ('{"images": [{"id": {"a": 1}, "file_name": "a.jpg"}]}', "not an object"),
        (
            COCO_HEAD + '\n"annotations": [{"image_id": [1], "bbox": [0, 0, 5, 5]}]}',
            "'image_id' must be an integer or a string, not a list",
        ),
        (
            COCO_HEAD + '\n"annotations": [{"image_id": {"x": 1}, "bbox": [0, 0, 5, 5]}]}',
            "'image_id' must be an integer or a string, not an object",
        ),
    ],
)
def test_unhashable_coco_ids_are_malformed_records(tmp_path: Path, record: str, why: str) -> None:
    """A list or an object as an id used to raise ``TypeError: unhashable``."""
    write(tmp_path / "d", "a.json", record)
    err = read_error("coco-text", tmp_path / "d")
    assert why in str(err) and "a.json" in str(err) and err.line is not None


def test_nighttime_art_unhashable_id(tmp_path: Path) -> None:
    gts = tmp_path / "Text_at_Night" / "test_gts" / "gt_jsons"
    write(gts, "instances_all_test.json", '{"images": [{"id": [1], "file_name": "a.jpg"}]}')
    err = read_error("nighttime-art", tmp_path)
    assert "instances_all_test.json" in str(err) and "'id' must be" in str(err)


def test_sample_ids_with_digit_runs_over_4300_digits_sort(tmp_path: Path) -> None:
    long_a, long_b = "img_" + "1" * 5000, "img_" + "2" * 4999
    lines = [json.dumps({"id": i}) for i in (long_a, "img_10", long_b, "img_9")]
    write(tmp_path / "d", "a.jsonl", "\n".join(lines) + "\n")
    samples, _ = read_annotations("jsonl", tmp_path / "d")
    assert [s.id for s in samples] == ["img_9", "img_10", long_b, long_a]
    # the same order as int() gives where int() works
    ids = ["a007", "a7", "a10", "a" + "9" * 4001, "a" + "1" * 4002]
    assert sorted(ids, key=natural_key)[:3] == ["a007", "a7", "a10"]
    assert sorted(ids, key=natural_key)[3:] == ["a" + "9" * 4001, "a" + "1" * 4002]


def test_ids_with_huge_numbers_match_predictions() -> None:
    """The id matching of the protocols extracts numbers from ids too."""
    gt_id = "img_" + "0" + "5" * 5000
    assert numeric_key(gt_id) == "5" * 5000 and numeric_key("img_000") == "0"
    preds = match_prediction_ids({gt_id: []}, {"res_img_" + "5" * 5000: []})
    assert list(preds) == [gt_id]


def test_json_predictions_deep_nesting_and_huge_integers(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '{"img_1":\n' + DEEP + "}")
    with pytest.raises(AnnotationFormatError, match=r"p\.json, line 2: .*nested too deeply"):
        read_predictions(path)
    path.write_text('{"img_1": [{"polygon": [0, 0, 1, 0, 1, 1],\n"score": ' + HUGE_INT + "}]}")
    with pytest.raises(AnnotationFormatError, match=r"p\.json, line 2: .*5000 digits"):
        read_predictions(path)


def test_score_cli_reports_hostile_json_predictions(tmp_path: Path) -> None:
    gt = write(tmp_path / "gt", "gt_img_1.txt", "0,0,10,0,10,10,0,10,word\n").parent
    pred = write(tmp_path, "p.json", '{"img_1": ' + DEEP + "}")
    args = ["score", "--protocol", "icdar2015", "--gt", str(gt), "--pred", str(pred)]
    res = CliRunner().invoke(cli, args)
    assert isinstance(res.exception, AnnotationFormatError), res.output
    assert "p.json, line 1" in str(res.exception)


def test_main_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real entry point: a one-line message, no traceback."""
    write(tmp_path / "gt", "a.jsonl", '{"id": "x"}\n{"id": "y", "width": ' + HUGE_INT + "}\n")
    pred = write(tmp_path, "p.json", "{}")
    args = ["score", "--protocol", "tiou", "--gt-format", "jsonl"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--gt", str(tmp_path / "gt"), "--pred", str(pred)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "a.jsonl, line 2" in err and "5000 digits" in err


# --------------------------------------------------------------------------- 3. numbers


@pytest.mark.parametrize(
    ("fmt", "name", "text"),
    [
        ("jsonl", "a.jsonl", '{"id": "x", "width": Infinity}'),
        ("jsonl", "a.jsonl", '{"id": "x", "height": 1e400}'),
        ("jsonl", "a.jsonl", '{"id": "x", "width": -1}'),
        ("coco-text", "a.json", '{"images": [{"id": 1, "file_name": "a.jpg", "width": Infinity}]}'),
        ("mmocr", "a.json", '{"data_list": [{"img_path": "a.jpg", "height": 1e308}]}'),
    ],
)
def test_infinite_or_huge_image_sizes_are_malformed(
    tmp_path: Path, fmt: str, name: str, text: str
) -> None:
    """``int(float('inf'))`` used to raise OverflowError."""
    write(tmp_path / "d", name, text + "\n")
    err = read_error(fmt, tmp_path / "d")
    assert "must be" in err.detail and name in str(err)


# One line or record per reader with a coordinate that float64 holds but
# float32 (the schema's type) stores as infinity.
BEYOND_FLOAT32 = [
    ("icdar2015", "gt_img_1.txt", "0,0,10,0,10,1e39,0,10,word"),
    ("mlt17", "gt_img_1.txt", "0,0,10,0,10,1e39,0,10,Latin,word"),
    ("icdar2013", "gt_img_1.txt", '0, 0, 1e39, 10, "word"'),
    ("icdar2013", "gt_img_1.txt", '0 0 1e999 10 "word"'),
    ("totaltext", "poly_gt_img1.txt", "0,0,10,0,10,1e39,word"),
    ("totaltext", "poly_gt_img1.txt",
     "x: [[0 10 1e39]], y: [[0 0 10]], ornt: [u'c'], transcriptions: [u'a']"),
    ("ctw1500", "1001.txt", "0,0,10,0,10,1e39,CARE"),
    ("ctw1500", "1001.txt", ",".join(["3e38"] * 4 + ["3e38"] * 28)),  # offsets + xmin overflow
    ("msra-td500", "IMG_1.gt", "0 0 0 0 3e38 3e38 0.5"),  # the rotated corners overflow
    ("jsonl", "a.jsonl", '{"id": "x", "instances": [{"polygon": [0, 0, 9, 0, 9, 1e39]}]}'),
    ("jsonl", "a.jsonl", '{"id": "x", "instances": [{"polygon": [0, 0, 9, 0, 9, ' + "9" * 400 + "]}]}"),
    ("art", "a.json", '{"gt_1": [{"points": [[0, 0], [9, 0], [9, 1e39]]}]}'),
    ("coco-text", "a.json",
     COCO_HEAD + '"annotations": [{"image_id": 1, "segmentation": [[0, 0, 9, 0, 9, -1e39]]}]}'),
    ("coco-text", "a.json",
     COCO_HEAD + '"annotations": [{"image_id": 1, "bbox": [3e38, 0, 3e38, 5]}]}'),
    ("mmocr", "a.json",
     '{"data_list": [{"img_path": "a.jpg", "instances": [{"bbox": [0, 0, 1e39, 5]}]}]}'),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "name", "text"), BEYOND_FLOAT32)
def test_coordinates_beyond_float32_are_malformed_in_every_reader(
    tmp_path: Path, fmt: str, name: str, text: str
) -> None:
    write(tmp_path / "d", name, "\n" + text + "\n")
    err = read_error(fmt, tmp_path / "d")
    assert name in str(err) and err.line == 2
    assert "non-finite" in err.detail or "out-of-range" in err.detail or "too large" in err.detail


@pytest.mark.parametrize(
    "ann",
    [
        '{"image_id": 1, "bbox": [NaN, 0, 5, 5]}',
        '{"image_id": 1, "bbox": [0, 0, NaN, 5]}',
        '{"image_id": 1, "bbox": [0, 0, 5, Infinity]}',
        '{"image_id": 1, "segmentation": [[0, 0, 9, 0, NaN, 9]]}',
    ],
)
def test_nan_coco_boxes_are_malformed(tmp_path: Path, ann: str) -> None:
    text = COCO_HEAD + '\n"annotations": [\n' + ann + "]}"
    write(tmp_path / "d", "a.json", text)
    err = read_error("coco-text", tmp_path / "d")
    assert err.line == 3 and "['annotations'][0]" in err.detail


def test_polygon_array_is_the_one_check() -> None:
    assert polygon_array([0, 0, 1, 0, 1, 1]).dtype == np.float32
    kept = polygon_array([0, 0, 1, 0, 2**31 + 5, 1], keep_float64=True)
    assert kept.dtype == np.float64 and kept[2, 0] == 2**31 + 5  # not rounded to float32
    for bad, why in [
        ([0, 0, 1, 0, 1, 3.5e38], "out-of-range"),
        ([0, 0, 1, 0, 1, float("nan")], "non-finite"),
        ([0, 0, 1, 0, 1, 10**400], "too large"),
        ([0, 0, 1, 0, 1, {"x": 1}], "must be numbers"),
        ([[0, 0], [1]], "must be numbers"),
        ([0.0] * (2 * MAX_POLYGON_POINTS + 2), "MAX_POLYGON_POINTS"),
    ]:
        with pytest.raises(ValueError, match=why):
            polygon_array(bad)


# Prediction lines that used to become NaN / inf detections, per style.
NON_FINITE_PREDICTIONS = [
    ("polygon", "img_1.txt", "0,0,10,0,10,10,0,nan", "non-finite"),
    ("polygon", "img_1.txt", "0,0,10,0,10,10,0,10,inf", "non-finite score"),
    ("polygon", "img_1.txt", "0,0,10,0,10,10,0,1e39", "out-of-range"),
    ("polygon-yx", "img_1.txt", "0,0,10,0,10,10,-inf,10", "non-finite"),
    ("rrc", "res_img_1.txt", "0,0,10,0,10,10,0," + "9" * 40, "out-of-range"),
    ("rrc-ltrb", "res_img_1.txt", "0,0," + "9" * 5000 + ",10", "non-finite"),
]


@pytest.mark.parametrize(("style", "name", "line", "why"), NON_FINITE_PREDICTIONS)
def test_non_finite_predictions_are_malformed_lines(
    tmp_path: Path, style: str, name: str, line: str, why: str
) -> None:
    good = "0,0,10,10" if style == "rrc-ltrb" else "0,0,10,0,10,10,0,10"
    folder = write(tmp_path / "p", name, good + "\n" + line + "\n").parent
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(folder, style=style)
    assert err.value.line == 2 and name in str(err.value) and why in err.value.detail
    preds, report = read_predictions(folder, style=style, skip_invalid=True)
    assert len(report.skipped) == 1 and all(np.isfinite(p.polygon).all() for p in preds["img_1"])


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ('{"polygon": [0, 0, 9, 0, NaN, 9]}', "non-finite"),
        ('{"polygon": [0, 0, 9, 0, 9, 9], "score": NaN}', "non-finite 'score'"),
        ('{"polygon": [0, 0, 9, 0, 9, 9], "score": 1e999}', "non-finite 'score'"),
        ('{"polygon": [0, 0, 9, 0, 9, 1e39]}', "out-of-range"),
        ('{"polygon": [0, 0, 9, 0, 9, 9], "score": [1]}', "'score' is not a number"),
    ],
)
def test_non_finite_json_predictions(tmp_path: Path, item: str, why: str) -> None:
    path = write(tmp_path, "p.json", '{"img_1": [' + item + "]}")
    with pytest.raises(AnnotationFormatError, match=why):
        read_predictions(path)
    preds, report = read_predictions(path, skip_invalid=True)
    assert preds["img_1"] == [] and len(report.skipped) == 1


def _score(args: list[str]) -> tuple[int, str]:
    """``tcmbench score`` through click: (exit code, output or the message of
    the user error that ``tcmbench.cli.main`` prints as one line, exit 2)."""
    res = CliRunner().invoke(cli, ["score", *args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        assert isinstance(res.exception, TcmbenchError), repr(res.exception)
        return 2, str(res.exception)
    return res.exit_code, res.output


def test_nan_prediction_line_no_longer_halves_precision(tmp_path: Path) -> None:
    """One ``nan`` line used to count as a detection: P 0.5, no message.
    Now the line is an error, and under --skip-invalid it is skipped and
    counted, and the figures are those of the remaining lines."""
    gt = write(tmp_path / "gt", "poly_gt_img1.txt", "0,0,0,10,10,10,10,0,word\n").parent
    pred = write(tmp_path / "pred", "img1.txt", "0,0,0,10,10,10,10,0\nnan,0,0,10,10,10,10,0\n")
    args = ["--protocol", "totaltext-iou", "--gt", str(gt), "--pred", str(pred.parent)]
    code, out = _score(args)
    assert code == 2 and "img1.txt, line 2" in out and "non-finite" in out
    out_json = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["score", *args, "--skip-invalid", "--json", str(out_json)])
    assert res.exit_code == 0, res.output
    assert "1 malformed line(s) skipped" in res.output
    figures = json.loads(out_json.read_text())
    assert figures["precision"] == 1.0 and figures["recall"] == 1.0


def test_inf_ground_truth_box_is_not_a_care_gt(tmp_path: Path) -> None:
    """An IC13 ``1e999`` box used to be a care GT nobody can match (with an
    inf coordinate, R 1.0 came with 1 of 2 care GTs); it is a malformed line
    now, skipped and counted under --skip-invalid."""
    gt = write(
        tmp_path / "gt", "gt_img_1.txt", '0, 0, 10, 10, "word"\n20, 0, 1e999, 10, "inf"\n'
    ).parent
    pred = write(tmp_path / "pred", "res_img_1.txt", "0,0,10,10\n").parent
    args = ["--protocol", "icdar2013", "--gt", str(gt), "--pred", str(pred)]
    code, out = _score(args)
    assert code == 2 and "gt_img_1.txt, line 2" in out and "1e999" in out
    out_json = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["score", *args, "--skip-invalid", "--json", str(out_json)])
    assert res.exit_code == 0 and "1 malformed line(s) skipped" in res.output
    figures = json.loads(out_json.read_text())
    assert figures["recall"] == 1.0 and figures["precision"] == 1.0


# --------------------------------------------------------------------------- 5. confidences


@pytest.mark.parametrize(
    ("style", "line"),
    [
        ("rrc", "0,0,10,0,10,10,0,10,0x1"),
        ("rrc", "0,0,10,0,10,10,0,10,0 5"),
        ("rrc-ltrb", "0,0,10,10,1x5"),
    ],
)
def test_confidence_the_rrc_pattern_accepts_but_float_rejects(
    tmp_path: Path, style: str, line: str
) -> None:
    folder = write(tmp_path / "p", "res_img_1.txt", "\n" + line + "\n").parent
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(folder, style=style, confidences=True)
    assert err.value.line == 2 and "is not a number" in err.value.detail
    assert "res_img_1.txt" in str(err.value) and "confidence" in err.value.expected
    # a confidence float() reads is still accepted as the script accepts it
    write(folder, "res_img_1.txt", line.rsplit(",", 1)[0] + ",0.25\n")
    preds, _ = read_predictions(folder, style=style, confidences=True)
    assert preds["img_1"][0].score == 0.25


# --------------------------------------------------------------------------- 6. linear parsing

ONE_MB = 1 << 20
# Lines that made a regular expression retry every split of a long run.
SLOW_LINES = {
    "digits_40k": "1" * 40_000,
    "digits_1mb": "1" * ONE_MB,
    "spaces_then_junk": "1,2,3,4" + " " * ONE_MB + "x",
    "numbers_then_spaces": "1 2 3 4 " + "5 " * (ONE_MB // 2),
    "commas_1mb": "1," * (ONE_MB // 2),
    "brackets_1mb": "x: [[1 2 3]], y: [[1 2 3]], ornt: [" + "], transcriptions: [" * 50_000,
}
LINE_READERS = [
    ("icdar2015", "gt_img_1.txt"),
    ("icdar2013", "gt_img_1.txt"),
    ("mlt17", "gt_img_1.txt"),
    ("totaltext", "poly_gt_img1.txt"),
    ("ctw1500", "1001.txt"),
    ("msra-td500", "IMG_1.gt"),
]


@pytest.mark.parametrize(("fmt", "name"), LINE_READERS)
def test_every_annotation_line_reader_is_linear(tmp_path: Path, fmt: str, name: str) -> None:
    """IC13's line regex took 14 s on 20,000 digits and minutes on 40,000."""
    for key, line in SLOW_LINES.items():
        folder = write(tmp_path / key, name, line + "\n").parent
        start = time.process_time()
        try:
            read_annotations(fmt, folder)
        except AnnotationFormatError as exc:
            assert exc.line == 1 and len(str(exc)) < 1000  # the line is not echoed whole
        assert time.process_time() - start < FAST, (fmt, key)


@pytest.mark.parametrize(
    ("style", "confidences"),
    [("rrc", False), ("rrc", True), ("rrc-ltrb", False), ("rrc-ltrb", True), ("polygon", False),
     ("polygon-yx", False)],
)  # fmt: skip
def test_every_prediction_line_reader_is_linear(
    tmp_path: Path, style: str, confidences: bool
) -> None:
    """The 2013 result pattern ``\\s*,?\\s*$`` took 10 s on 20,000 spaces."""
    lines = {
        **SLOW_LINES,
        "ltrb_spaces": "1,2,3,4" + " " * 40_000 + "x",
        "conf_digits": "1,2,3,4,5,6,7,8,0" + "1" * ONE_MB + "x",
    }
    name = "res_img_1.txt" if style.startswith("rrc") else "img_1.txt"
    for key, line in lines.items():
        folder = write(tmp_path / key, name, line + "\n").parent
        start = time.process_time()
        try:
            read_predictions(folder, style=style, confidences=confidences)
        except AnnotationFormatError as exc:
            assert exc.line == 1 and len(str(exc)) < 1000
        assert time.process_time() - start < FAST, (style, key)


def test_ic13_regex_still_reads_both_variants() -> None:
    """The linear pattern accepts exactly the lines the old one did."""
    from tcmbench.data.formats.icdar import parse_ic13_line

    assert parse_ic13_line('1, 2, 3, 4, "a, b"  ').text == "a, b"
    assert parse_ic13_line('1 2 3 4 "w"').text == "w"
    assert parse_ic13_line("1,2,3,4").text is None
    assert parse_ic13_line("1.5,2e0,3.,4").polygon[1].tolist() == [3.0, 2.0]
    for bad in ("1,2,3,4x", "1,2,3", "1,2,3,4.5.6"):
        with pytest.raises(ValueError, match="not 4 numbers"):
            parse_ic13_line(bad)


# --------------------------------------------------------------------------- 7. geometry limits


@pytest.mark.realdata
def test_limits_are_above_the_real_data() -> None:
    """The documented limits are chosen so that no real data reaches them:
    the reference GT, published detections and the official DetEval example
    predictions (raw contours, up to 552 points) stay below, with margin."""
    images: list[list[int]] = []  # point counts of each image's polygons
    for rel, fmt in [
        ("totaltext/test_gt.zip", "totaltext"),
        ("ctw1500/test_gt.zip", "ctw1500"),
        ("icdar2015/test_gt.zip", "icdar2015"),
    ]:
        samples, _ = read_annotations(fmt, shared_file(rel))
        images += [[len(i.polygon) for i in s.instances] for s in samples]
    for rel, style in [
        ("ctw1500/example_det.zip", "polygon"),
        ("totaltext/baseline_det.zip", "polygon"),
        ("totaltext/mat_examples/Prediction", "mat"),
    ]:
        preds, _ = read_predictions(shared_file(rel), style=style)
        images += [[len(p.polygon) for p in v] for v in preds.values()]
    assert max(max(im, default=0) for im in images) == 552
    assert limit("MAX_POLYGON_POINTS") / 1.5 > 552
    assert max(len(im) for im in images) < limit("MAX_IMAGE_POLYGONS") / 10
    assert max(image_work(im) for im in images) < limit("MAX_IMAGE_WORK") / 5


def zigzag(n: int) -> str:
    """A self-intersecting detection of ``n`` points as a polygon line."""
    rng = np.random.default_rng(0)
    return ",".join(str(v) for v in rng.integers(0, 1000, 2 * n).tolist())


def test_a_5000_point_detection_is_rejected_fast_under_deteval(tmp_path: Path) -> None:
    """It cost 41 s and 5.9 GB under totaltext-deteval."""
    gt = write(tmp_path / "gt", "poly_gt_img1.txt", "0,0,0,1000,1000,1000,1000,0,word\n").parent
    pred = write(tmp_path / "pred", "img1.txt", "0,0,0,10,10,10,10,0\n" + zigzag(5000) + "\n")
    args = ["--protocol", "totaltext-deteval", "--pred-order", "xy", "--gt", str(gt)]
    start = time.process_time()
    code, out = _score([*args, "--pred", str(pred.parent)])
    assert time.process_time() - start < 5 * FAST
    assert code == 2 and "img1.txt, line 2" in out and "MAX_POLYGON_POINTS" in out
    assert "TCMBENCH_MAX_POLYGON_POINTS" in out  # says how to raise it


def test_point_limit_applies_to_ground_truth_and_can_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = MAX_POLYGON_POINTS + 1
    line = ",".join(f"{i},{(i * 7) % 5}" for i in range(n)) + ",word"
    folder = write(tmp_path / "gt", "poly_gt_img1.txt", "0,0,9,0,9,9,a\n" + line + "\n").parent
    err = read_error("totaltext", folder)
    assert err.line == 2 and "MAX_POLYGON_POINTS" in err.detail
    monkeypatch.setenv("TCMBENCH_MAX_POLYGON_POINTS", str(n))
    samples, _ = read_annotations("totaltext", folder)
    assert len(samples[0].instances[1].polygon) == n
    monkeypatch.setenv("TCMBENCH_MAX_POLYGON_POINTS", "lots")
    with pytest.raises(TcmbenchError, match="TCMBENCH_MAX_POLYGON_POINTS='lots'"):
        read_annotations("totaltext", folder)


def test_evaluate_bounds_polygons_built_in_code() -> None:
    """API callers skip the readers: ``evaluate`` applies the same bounds,
    with the sample and the index in the error."""
    gt = [Sample("img_1", None, 0, 0, [Instance(square())])]
    huge = Prediction(np.random.default_rng(0).uniform(0, 10, (MAX_POLYGON_POINTS + 1, 2)))
    with pytest.raises(
        ProtocolError, match=r"sample img_1, detection 2: .*MAX_POLYGON_POINTS"
    ) as e:
        evaluate(gt, {"img_1": [Prediction(square()), huge]}, "totaltext-deteval")
    assert (e.value.sample_id, e.value.role, e.value.index) == ("img_1", "detection", 1)


def test_evaluate_bounds_the_work_per_image(monkeypatch: pytest.MonkeyPatch) -> None:
    gt = [Sample("img_1", None, 0, 0, [Instance(square()) for _ in range(4)])]
    preds = {"img_1": [Prediction(square(i)) for i in range(3)]}
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_POLYGONS", "3")
    with pytest.raises(ProtocolError, match="ground-truth polygon 4: more than 3 in one image"):
        evaluate(gt, preds, "icdar2015")
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_POLYGONS", "4")
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_WORK", "40")  # 16 per 4-point polygon
    two_gts = [Sample("img_1", None, 0, 0, gt[0].instances[:2])]
    with pytest.raises(ProtocolError, match=r"detection 3: .*\(sum .* 48 > 40\).*MAX_IMAGE_WORK"):
        evaluate(two_gts, preds, "icdar2015")
    monkeypatch.delenv("TCMBENCH_MAX_IMAGE_WORK")
    result = evaluate(gt, preds, "icdar2015")  # within the limits: scored as before
    assert (result.precision, result.recall) == (1.0, 0.75)


def test_prediction_files_over_the_per_image_limits_name_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_POLYGONS", "2")
    folder = write(tmp_path / "p", "img1.txt", "0,0,1,0,1,1\n\n0,0,1,0,1,1\n0,0,1,0,1,1\n").parent
    with pytest.raises(ProtocolError, match=r"img1\.txt, line 4: more than 2 detections"):
        read_predictions(folder, style="polygon")
    with pytest.raises(ProtocolError, match="more than 2 detections"):  # not skippable
        read_predictions(folder, style="polygon", skip_invalid=True)
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_POLYGONS", "10")
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_WORK", "20")  # 9 per triangle
    with pytest.raises(ProtocolError, match=r"img1\.txt, line 4: .*27 > 20.*MAX_IMAGE_WORK"):
        read_predictions(folder, style="polygon")
    path = write(tmp_path, "p.json", json.dumps({"img_9": [[0, 0, 1, 0, 1, 1]] * 3}))
    with pytest.raises(ProtocolError, match=r"p\.json \[img_9\]: .*too large to match"):
        read_predictions(path)


# --------------------------------------------------------------------------- 8. line breaks

# Characters str.splitlines() breaks on that are not line breaks in a file.
NOT_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_split_lines_breaks_on_newlines_only() -> None:
    assert split_lines("a\r\nb\rc\nd") == ["a", "b", "c", "d"]
    text = "".join(f"w{c}x\n" for c in NOT_BREAKS)
    assert split_lines(text)[: len(NOT_BREAKS)] == [f"w{c}x" for c in NOT_BREAKS]


@pytest.mark.parametrize("char", NOT_BREAKS)
def test_transcription_characters_do_not_split_a_line(tmp_path: Path, char: str) -> None:
    """A transcription holding one of these used to become two lines: the
    record broke and every later error named the wrong line."""
    text = f"0,0,10,0,10,10,0,10,a{char}b\n0,0,10,0,10,10,0,10,ok\n0,0,10,0,x,10,0,10,bad\n"
    folder = write(tmp_path / "gt", "gt_img_1.txt", text).parent
    err = read_error("icdar2015", folder)
    assert err.line == 3
    samples, report = read_annotations("icdar2015", folder, skip_invalid=True)
    assert samples[0].instances[0].text == f"a{char}b" and len(report.skipped) == 1


def test_cp1252_byte_in_a_latin1_file_does_not_split_a_line(tmp_path: Path) -> None:
    """``\\x85`` (cp1252's ellipsis) decodes as U+0085 through the Latin-1
    fallback, which splitlines() treats as NEL."""
    data = b"0,0,10,0,10,10,0,10,caf\xe9\x85\n0,0,10,0,10,10,0,10,ok\n1,2,3\n"
    folder = write(tmp_path / "gt", "gt_img_1.txt", data).parent
    assert read_error("icdar2015", folder).line == 3


@pytest.mark.parametrize("style", ["polygon", "polygon-yx", "rrc"])
def test_prediction_lines_are_numbered_by_newlines_only(tmp_path: Path, style: str) -> None:
    name = "res_img_1.txt" if style == "rrc" else "img_1.txt"
    text = "0,0,10,0,10,10,0,10\x0c\n\u20280,0,10,0,10,10,0,10\n0,0,10,0,10,10,0,zz\n"
    folder = write(tmp_path / "p", name, text).parent
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(folder, style=style)
    assert err.value.line == 3


def test_old_mac_line_endings_still_split(tmp_path: Path) -> None:
    folder = write(tmp_path / "gt", "gt_img_1.txt", "0,0,10,0,10,10,0,10,a\r1,2\r").parent
    assert read_error("icdar2015", folder).line == 2
    pred = write(tmp_path / "p", "img_1.txt", "0,0,10,0,10,10\r0,0,10,0,10,10,0,1\r").parent
    preds, _ = read_predictions(pred, style="polygon")
    assert len(preds["img_1"]) == 2 and preds.locate("img_1", 1).endswith("line 2")


def test_zip_sources_behave_the_same(tmp_path: Path) -> None:
    """Archives go through the same line splitting and checks."""
    z = tmp_path / "gt.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("gt_img_1.txt", "0,0,10,0,10,10,0,10,a\x1cb\n0,0,10,0,10,10,0,inf,c\n")
    err = read_error("icdar2015", z)
    assert "gt.zip:gt_img_1.txt, line 2" in str(err) and "non-finite" in err.detail


def test_non_finite_deteval_mat_prediction_is_a_malformed_cell(tmp_path: Path) -> None:
    """The official DetEval example format goes through the same checks;
    the cell number is reported as the line."""
    import scipy.io

    cells = np.empty((2, 1), dtype=object)
    cells[0, 0] = square()
    cells[1, 0] = np.array([[0, 0], [np.nan, 0], [5, 5]], dtype=np.float64)
    folder = tmp_path / "pred"
    folder.mkdir()
    scipy.io.savemat(folder / "img1.mat", {"accuInf": cells})
    with pytest.raises(AnnotationFormatError) as err:
        read_predictions(folder, style="mat")
    assert err.value.line == 2 and "cell 2: non-finite" in err.value.detail
    preds, report = read_predictions(folder, style="mat", skip_invalid=True)
    assert len(preds["img1"]) == 1 and len(report.skipped) == 1
