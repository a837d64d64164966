"""The matching-work limits of one image (MAX_IMAGE_OVERLAPS,
MAX_IMAGE_PAIR_WORK): hostile geometry that would take minutes of exact
intersections is refused at once, naming the sample and the detection;
the reference data stays far below both limits."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import shared_file

from tcmbench.data.schema import MAX_IMAGE_OVERLAPS, MAX_IMAGE_PAIR_WORK, Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval.api import evaluate, gt_mapping, match_prediction_ids
from tcmbench.eval.bounds import overlap_work


def _stacked_rects(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        x, y = rng.uniform(0, 50, 2)
        w, h = rng.uniform(100, 200), rng.uniform(40, 60)
        out.append(np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))
    return out


@pytest.mark.parametrize("protocol", ["totaltext-iou", "msra-td500", "totaltext-deteval"])
def test_densely_stacked_detections_are_refused_at_once(protocol: str) -> None:
    rng = np.random.default_rng(0)
    gt = {"img_1": [Instance(p) for p in _stacked_rects(120, rng)]}
    preds = {"img_1": [Prediction(p, score=0.5) for p in _stacked_rects(120, rng)]}
    start = time.process_time()
    with pytest.raises(
        ProtocolError, match=r"sample img_1, detection \d+: .*MAX_IMAGE_OVERLAPS"
    ) as e:
        evaluate(gt, preds, protocol=protocol)
    assert time.process_time() - start < 1.0
    assert e.value.role == "detection" and 0 <= e.value.index < 120  # type: ignore[attr-defined]


def test_self_intersecting_contours_count_their_crossings() -> None:
    """12 random 24-point contours against 12 others: few pairs, but each
    repaired contour has hundreds of vertices (9.4 M products: 15 s of GEOS
    on this machine before the limit)."""
    rng = np.random.default_rng(3)
    gt = {"img_1": [Instance(rng.uniform(0, 400, (24, 2))) for _ in range(12)]}
    preds = {"img_1": [Prediction(rng.uniform(0, 400, (24, 2))) for _ in range(12)]}
    with pytest.raises(ProtocolError, match="MAX_IMAGE_PAIR_WORK"):
        evaluate(gt, preds, protocol="msra-td500")
    simple = [Prediction(p) for p in _stacked_rects(12, rng)]
    _pairs, work, _ = overlap_work([g.polygon for g in gt["img_1"]], [p.polygon for p in simple])
    assert work.sum() < MAX_IMAGE_PAIR_WORK  # the same count of simple quads is cheap


def test_one_heavily_self_intersecting_contour_is_refused_alone() -> None:
    """A 1,000-point random contour crosses itself ~10^5 times: repairing
    it alone took minutes under msra-td500 (found by the fuzz suite), even
    with only three small ground-truth boxes to match."""
    rng = np.random.default_rng(0)
    gt = {"img_1": [Instance(p) for p in _stacked_rects(3, rng)]}
    preds = {"img_1": [Prediction(rng.uniform(0, 300, (1000, 2)))]}
    start = time.process_time()
    with pytest.raises(ProtocolError, match=r"detection 1: .*self-intersecting contours"):
        evaluate(gt, preds, protocol="msra-td500")
    assert time.process_time() - start < 2.0
    gt_bad = {"img_1": [Instance(rng.uniform(0, 300, (1000, 2)))]}
    for no_detections in ({"img_1": []}, {}):  # an empty or a missing prediction file
        with pytest.raises(ProtocolError, match=r"sample img_1: one image needs"):
            evaluate(gt_bad, no_detections, protocol="msra-td500")


def test_limits_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    gt = {"img_1": [Instance(p) for p in _stacked_rects(75, rng)]}
    preds = {"img_1": [Prediction(p) for p in _stacked_rects(75, rng)]}
    with pytest.raises(ProtocolError, match="TCMBENCH_MAX_IMAGE_OVERLAPS"):
        evaluate(gt, preds, protocol="msra-td500")
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_OVERLAPS", "100000")
    assert 0.0 <= evaluate(gt, preds, protocol="msra-td500").hmean <= 1.0


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("fmt", "gt_rel", "pred_rel", "style", "protocol"),
    [
        (
            "icdar2015",
            "icdar2015/test_gt.zip",
            "icdar2015/pixellink_submit.zip",
            "rrc",
            "icdar2015",
        ),
        ("ctw1500", "ctw1500/test_gt.zip", "ctw1500/example_det.zip", "polygon", "ctw1500-iou"),
        (
            "totaltext",
            "totaltext/test_gt.zip",
            "totaltext/baseline_det.zip",
            "polygon",
            "totaltext-iou",
        ),
        (
            "totaltext",
            "totaltext/test_gt.zip",
            "totaltext/mat_examples/Prediction",
            "mat",
            "totaltext-deteval",
        ),
    ],
)
def test_reference_data_is_far_below_the_limits(
    fmt: str, gt_rel: str, pred_rel: str, style: str, protocol: str
) -> None:
    from tcmbench.eval.io import read_ground_truth, read_predictions

    samples, _ = read_ground_truth(shared_file(gt_rel), fmt)
    preds, _ = read_predictions(shared_file(pred_rel), style=style)
    gt = gt_mapping(samples)
    matched = match_prediction_ids(gt, preds, protocol)
    worst_pairs = worst_work = 0
    for sid, instances in gt.items():
        dets = matched.get(sid) or []
        pairs, work, gt_repair = overlap_work(
            [i.polygon for i in instances], [np.asarray(d.polygon) for d in dets]
        )
        worst_pairs = max(worst_pairs, int(pairs.sum()))
        worst_work = max(worst_work, gt_repair + int(work.sum()))
    assert worst_pairs * 20 < MAX_IMAGE_OVERLAPS
    assert worst_work * 20 < MAX_IMAGE_PAIR_WORK
