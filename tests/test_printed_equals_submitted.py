"""What ``evaluate`` prints equals ``tcmbench score`` on what it saved.

One coordinate rule serves both (tcmbench/eval/submission.py:
``submitted_polygon``): evaluate scores its detections exactly as
``submit.zip`` holds them, and ``score`` gives ``predictions.json`` the same
rule. Before, evaluate scored float boxes (truncated by the protocol) while
the submission rounded them: PP-OCRv3 on MSRA-TD500 printed H 0.8329 and its
own submit.zip scored 0.8346.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import shared_file

from tcmbench.cli import main
from tcmbench.contract.registry import get_protocol

REPO = Path(__file__).resolve().parents[1]
METRICS = ("precision", "recall", "hmean")


def _run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _figures(path: Path) -> dict[str, float]:
    doc = json.loads(path.read_text())
    return {k: doc[k] for k in METRICS}


def _evaluate_then_score(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    evaluate_args: list[str],
    score_args: list[str],
    protocol: str,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    saved, printed = tmp_path / f"saved-{protocol}", tmp_path / f"printed-{protocol}.json"
    code, out = _run(
        [
            "evaluate",
            *evaluate_args,
            "--protocol",
            protocol,
            "--save-predictions",
            str(saved),
            "--json",
            str(printed),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, out
    rescored = {}
    for name in ("submit.zip", "predictions.json"):
        out_json = tmp_path / f"score-{protocol}-{name}.json"
        code, out = _run(
            [
                "score",
                "-p",
                protocol,
                "--pred",
                str(saved / name),
                *score_args,
                "--json",
                str(out_json),
            ],
            capsys,
        )
        assert code == 0, out
        rescored[name] = _figures(out_json)
    return _figures(printed), rescored["submit.zip"], rescored["predictions.json"]


@pytest.mark.parametrize(
    "protocol",
    ["icdar2015", "icdar2013", "totaltext-iou", "totaltext-deteval", "ctw1500-iou", "tiou"],
)
def test_synthtext_mini_printed_equals_score_on_both_saved_files(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every protocol family (RRC quads, LTRB boxes, x,y and y,x polygons)
    on the built-in set with the shipped DBNet: the three figures agree
    exactly, and the detector found something (a 0 = 0 = 0 would prove
    nothing)."""
    # synthtext-mini is scored with the RRC / curved format checks off (its dataset config).
    takes_validate = "validate" in (get_protocol(protocol).params or {})
    params = ["--param", "validate=false"] if takes_validate else []
    printed, from_zip, from_json = _evaluate_then_score(
        tmp_path,
        capsys,
        ["--plugin", "dbnet", "--dataset", "synthtext-mini"],
        ["--dataset", "synthtext-mini", *params],
        protocol,
    )
    assert printed["hmean"] > 0.3
    assert from_zip == printed
    assert from_json == printed


def _first_td500_photos(root: Path, n: int) -> Path:
    """A TD500 layout holding the first ``n`` test photos (natural order)."""
    src = shared_file("msra-td500/test")
    dst = root / "test"
    dst.mkdir(parents=True)
    for gt in sorted(src.glob("*.gt"))[:n]:
        for part in (gt, gt.with_suffix(".JPG")):
            (dst / part.name).symlink_to(part)
    return root


@pytest.mark.realdata
def test_msra_td500_pp_ocr_printed_equals_score(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The issue's case: PP-OCRv3 through the onnx plugin on real TD500
    photos, scored with the msra-td500 protocol."""
    pytest.importorskip("onnxruntime")
    model = shared_file("models/ch_PP-OCRv3_det_infer.onnx")
    root = _first_td500_photos(tmp_path / "td500", 12)
    printed, from_zip, from_json = _evaluate_then_score(
        tmp_path,
        capsys,
        ["--plugin", "onnx", "--weights", str(model), "--dataset", "msra-td500"]
        + ["--data-root", str(root)],
        ["--dataset", "msra-td500", "--data-root", str(root)],
        "msra-td500",
    )
    assert printed["hmean"] > 0.5
    assert from_zip == printed
    assert from_json == printed


@pytest.mark.realdata
def test_icdar2015_real_gt_printed_equals_score(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Real ICDAR 2015 ground truth (the 10 toy training photos, with their
    BOM and ### lines) through the icdar2015 protocol and its RRC zip."""
    pytest.importorskip("onnxruntime")
    model = shared_file("models/ch_PP-OCRv3_det_infer.onnx")
    toy = shared_file("icdar2015-toy")
    gts = tmp_path / "gts"
    shutil.copytree(toy / "train_gts", gts)
    printed, from_zip, from_json = _evaluate_then_score(
        tmp_path,
        capsys,
        ["--plugin", "onnx", "--weights", str(model), "--dataset", "icdar2015"]
        + ["--split", "train", "--data-root", str(toy)],
        ["--gt", str(gts)],
        "icdar2015",
    )
    assert printed["hmean"] > 0.3
    assert from_zip == printed
    assert from_json == printed


def test_a_malformed_evaluate_predictions_json_names_the_file_and_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """evaluate's predictions.json is a new input of `score`: a broken
    entry is one line naming the file and the image, like any JSON input."""
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_text("0,0,10,0,10,10,0,10,WORD\n")
    bad = tmp_path / "predictions.json"
    bad.write_text(
        json.dumps(
            {
                "format": "tcmbench evaluate predictions",
                "protocol": "icdar2015",
                "predictions": {"img_1": [{"polygon": [[0, 0], [10, "x"]], "score": 0.9}]},
            }
        )
    )
    code, out = _run(["score", "-p", "icdar2015", "--gt", str(gt), "--pred", str(bad)], capsys)
    assert code == 2, out
    assert str(bad) in out and "img_1" in out and "Traceback" not in out
