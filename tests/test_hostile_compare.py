"""``compare`` against per-image counts that no protocol can produce (issue
15, case 4): the attack's exact inputs (num_matched above num_gt_care gave
an hmean of 50.0; fractional counts a precision of 2.5e299, and both were
reported as significant, "the interval excludes 0"). Each is refused with
one line naming the file, the line, the image and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tcmbench.commands.compare import compare
from tcmbench.errors import AnnotationFormatError, ProtocolError
from tcmbench.eval.api import evaluate
from tcmbench.eval.bootstrap import (
    MAX_IMAGE_VALUE,
    accumulators_from_per_image,
    accumulators_from_result,
    entry_accumulators,
)

IMAGES = 20


def _rows(**override: Any) -> list[dict[str, Any]]:
    """Per-image records of a plausible IoU run: 4 care GTs and detections
    an image, 1 to 3 matched."""
    return [
        {
            "id": f"img_{i}",
            "num_gt_care": 4,
            "num_det_care": 4,
            "num_matched": 1 + i % 3,
            **override,
        }
        for i in range(1, IMAGES + 1)
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _compare(a: Path, b: Path) -> Result:
    return CliRunner().invoke(
        compare, [str(a), str(b), "-p", "icdar2015", "--resamples", "200"], catch_exceptions=True
    )


def _refused(res: Result, *needles: str) -> str:
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, AnnotationFormatError), repr(res.exception)
    msg = str(res.exception)
    assert "\n" not in msg and "excludes 0" not in res.output and "interval" not in res.output
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_the_baseline_compares(tmp_path: Path) -> None:
    """The same files with consistent counts go through: what the refusals
    below refuse is the counts, nothing else."""
    a = _write(tmp_path / "a.jsonl", _rows())
    b = _write(tmp_path / "b.jsonl", [{**r, "num_matched": 4} for r in _rows()])
    res = _compare(a, b)
    assert res.exit_code == 0, res.output
    assert "excludes 0" in res.output  # 4/4 matched against 2/4 on average: a real difference


def test_num_matched_above_num_gt_care_is_refused(tmp_path: Path) -> None:
    """The attack: 50 matches of 1 care GT and 1 detection (hmean 50.0)."""
    a = _write(tmp_path / "a.jsonl", _rows())
    forged = _rows()
    forged[6] = {**forged[6], "num_gt_care": 1, "num_det_care": 1, "num_matched": 50}
    b = _write(tmp_path / "b.jsonl", forged)
    _refused(_compare(a, b), "b.jsonl, line 7", "image 'img_7'", "num_matched 50", "num_gt_care 1")
    # above the care detections only
    forged[6] = {**forged[6], "num_gt_care": 9, "num_det_care": 2, "num_matched": 3}
    _write(b, forged)
    _refused(_compare(a, b), "line 7", "num_matched 3 is above num_det_care 2")


def test_fractional_counts_are_refused(tmp_path: Path) -> None:
    """The attack: fractional counts (precision 2.5e299)."""
    a = _write(tmp_path / "a.jsonl", _rows())
    forged = _rows(num_det_care=1e-300, num_matched=0.25, num_gt_care=1)
    b = _write(tmp_path / "b.jsonl", forged)
    _refused(_compare(a, b), "b.jsonl, line 1", "image 'img_1'", "num_det_care must be an integer")
    _write(b, _rows(num_matched=2.5))
    _refused(_compare(a, b), "num_matched must be an integer", "got 2.5")
    _write(b, _rows(num_matched=2.0))  # integral: a JSON number like any other
    assert _compare(a, b).exit_code == 0


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"id": "img_1", "num_gt_care": -4, "num_det_care": 4, "num_matched": 0}', "num_gt_care"),
        (
            '{"id": "img_1", "num_gt_care": 4, "num_det_care": NaN, "num_matched": 1}',
            "num_det_care",
        ),
        ('{"id": "img_1", "num_gt_care": Infinity, "num_det_care": 4, "num_matched": 1}', "num_gt"),
        ('{"id": "img_1", "num_gt_care": 1e999, "num_det_care": 4, "num_matched": 1}', "num_gt"),
        ('{"id": "img_1", "num_gt_care": 4, "num_det_care": 4, "num_matched": true}', "matched"),
        ('{"id": "img_1", "num_gt_care": "4", "num_det_care": 4, "num_matched": 1}', "num_gt"),
        ('{"id": "img_1", "num_gt_care": 2e12, "num_det_care": 2e12, "num_matched": 1}', "<= 1099"),
        ('{"id": "img_1", "num_gt_care": 4, "num_det_care": 4, "num_matched": -0.5}', "matched"),
    ],
)
def test_negative_non_finite_and_absurd_counts(tmp_path: Path, line: str, needle: str) -> None:
    a = _write(tmp_path / "a.jsonl", _rows())
    b = tmp_path / "b.jsonl"
    b.write_text(line + "\n" + "".join(json.dumps(r) + "\n" for r in _rows()[1:]))
    _refused(_compare(a, b), "b.jsonl, line 1", needle)


def test_deteval_credits_and_tiou_ratios(tmp_path: Path) -> None:
    ok = {"num_gt_care": 3, "num_det_care": 2, "recall_credit": 2.4, "precision_credit": 1.6}
    assert entry_accumulators(ok) == (2.4, 3.0, 1.6, 2.0)
    with pytest.raises(ValueError, match=r"image 'x': recall_credit 3\.5 is above num_gt_care 3"):
        entry_accumulators({**ok, "recall_credit": 3.5}, image="x")
    with pytest.raises(ValueError, match=r"precision_credit 2\.01 is above num_det_care 2"):
        entry_accumulators({**ok, "precision_credit": 2.01}, image="x")
    tiou = {"num_gt_care": 2, "num_det_care": 2, "tiou_recall": 0.5, "tiou_precision": 0.25}
    assert entry_accumulators(tiou, tiou=True) == (1.0, 2.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="tiou_recall must be a number >= 0 and <= 1"):
        entry_accumulators({**tiou, "tiou_recall": 1.5}, tiou=True)
    # a skipped image (Total-Text DetEval, official) adds nothing, whatever it says
    assert entry_accumulators({"skipped": "x", "num_gt_care": 7}) == (0.0, 0.0, 0.0, 0.0)
    assert MAX_IMAGE_VALUE == 2**40


def test_protocol_results_get_the_same_checks() -> None:
    """The counts of a protocol's Result (prediction sets scored by compare)
    go through the same checks: a plugin protocol cannot make them up."""
    import numpy as np

    from tcmbench.data.schema import Instance, Prediction

    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    gt = {"img_1": [Instance(square)], "img_2": [Instance(square + 20)]}
    preds = {"img_1": [Prediction(square)], "img_2": [Prediction(square + 20)]}
    result = evaluate(gt, preds, "icdar2015", details=True)
    acc = accumulators_from_result(result)
    assert acc.figures() == (1.0, 1.0, 1.0)
    result.per_image["img_2"]["num_matched"] = 2  # above its 1 care GT
    with pytest.raises(ProtocolError, match=r"run B: image 'img_2': num_matched 2 is above"):
        accumulators_from_result(result, source="run B")
    with pytest.raises(ProtocolError, match=r"image 'a': num_det_care must be an integer"):
        accumulators_from_per_image(
            {"a": {"num_gt_care": 1, "num_det_care": 0.5, "num_matched": 0}}
        )
