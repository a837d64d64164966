"""``mmocr-hmean-iou``: mmocr 0.x's hmean-iou, the papers' figure (issue 17,
rows 2 and 14).

Hand-made inputs; every expected value is worked out by hand from mmocr
0.x's rules (wenwenyu/TCM mmocr_src 0.4.0: ``hmean_iou.eval_hmean_iou``,
``utils.ignore_pred`` / ``poly_iou`` / ``compute_hmean``,
``hmean.eval_hmean``, ``IcdarDataset._parse_ann_info``), the working in
each docstring. Boxes are written ``[x0, x1] x [y0, y1]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval import evaluate
from tcmbench.eval.mmocr_iou import NAME, papers_figure
from tcmbench.eval.submission import rrc_quad, submitted_predictions


def box(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def gt_of(*boxes: tuple[np.ndarray, bool]) -> list[Instance]:
    return [Instance(polygon=b.astype(np.float32), ignore=dc, text="w") for b, dc in boxes]


def side(points: list[tuple[float, float]], xs: np.ndarray) -> np.ndarray:
    """Points at ``xs`` on the polyline through ``points`` (x increasing)."""
    px, py = zip(*points)
    return np.stack([xs, np.interp(xs, px, py)], axis=1)


# 25 x positions per side, the bend of each word among them.
X_V = np.linspace(0, 100, 25)  # 0, 4.1667, ..., 50 (index 12), ..., 100
X_BENT = np.concatenate([np.arange(0, 65, 4.0), np.arange(68.5, 100.1, 4.5)])  # 17 + 8


def v_word() -> np.ndarray:
    """A smile-shaped word, 50 points: top side (0, 0) -> (50, 20) ->
    (100, 0), bottom side 18 px lower, walked back."""
    top = side([(0, 0), (50, 20), (100, 0)], X_V)
    bottom = side([(0, 18), (50, 38), (100, 18)], X_V)[::-1]
    return np.vstack([top, bottom])


def bent_word() -> np.ndarray:
    """A word that turns up at its end, 50 points: top side (0, 80) ->
    (64, 80) -> (100, 8), bottom side (0, 100) -> (64, 100) -> (100, 28)."""
    top = side([(0, 80), (64, 80), (100, 8)], X_BENT)
    bottom = side([(0, 100), (64, 100), (100, 28)], X_BENT)[::-1]
    return np.vstack([top, bottom])


def shoelace(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))) / 2


# ------------------------------------------------------------------ row 2


def test_row2_fce_polygons_scored_as_polygons_in_papers_figure() -> None:
    """FCENet's IC15 output is 50-point polygons and mmocr 0.x scored them
    as polygons; the RRC submission holds their minAreaRect quads. The
    papers' figure must be computed on the polygons.

    img_1, GT quad R1 = [0, 100] x [0, 40] (area 4000) around a smile-shaped
    word; detection P1 (score 0.95) = ``v_word()``: a band 18 px high
    (vertically) over 100 px: area 18 x 100 = 1800, inside R1.
      polygon: IoU = 1800 / 4000 = 0.45, not > 0.5 -> miss.
      quad: P1's hull is (0,0) (100,0) (100,18) (50,38) (0,18), area 1800
      + 100 x 20 / 2 = 2800; the rectangles along its edges: axis-aligned
      [0, 100] x [0, 38] = 3800, along the slanted edges (+-50, 20):
      99.54 x 53.85 = 5360. minAreaRect = [0, 100] x [0, 38]; IoU 3800 /
      4000 = 0.95 -> hit.
    img_2, GT quad R2 = [0, 100] x [80, 100] (area 2000) around a word that
    turns up; detection P2 (score 0.55) = ``bent_word()``: the rectangle
    [0, 64] x [80, 100] (1280) plus a parallelogram 20 px high rising 2 px
    per px from x 64 to 100 (20 x 36 = 720): area 2000. P2 & R2 = 1280 +
    the parallelogram's part below y 80: int_0^10 (20 - 2u) du = 100 ->
    1380; IoU = 1380 / (2000 + 2000 - 1380) = 0.5267 -> hit.
      quad: P2's hull (0,80) (100,8) (100,28) (64,100) (0,100) has area 2000
      + 64 x 72 / 2 = 4304; any rectangle Q holding it has IoU with R2 <=
      area(R2) / area(Q) <= 2000 / 4304 = 0.4647 -> miss.

    Papers' figure (mmocr-hmean-iou on the polygons): t <= 0.5 keeps both:
    1 hit (img_2) of 2 GT, 2 dets -> H 0.5; t >= 0.6 keeps P1 only: 0 hits
    -> H 0. Best 0.5 at t = 0.3.
    What the sweep gave before (the icdar2015 rules on the submission's
    quads): t <= 0.5: 1 hit (img_1), H 0.5; t >= 0.6: P 1, R 1/2, H 2/3:
    best 2/3 at t = 0.6.
    """
    p1, p2 = v_word(), bent_word()
    assert p1.shape == p2.shape == (50, 2)
    assert shoelace(p1) == pytest.approx(1800) and shoelace(p2) == pytest.approx(2000)
    gt = {
        "img_1": gt_of((box(0, 100, 0, 40), False)),
        "img_2": gt_of((box(0, 100, 80, 100), False)),
    }
    raw = {"img_1": [Prediction(p1, 0.95)], "img_2": [Prediction(p2, 0.55)]}

    # the polygons, as mmocr scored them
    res = evaluate(gt, raw, NAME)
    assert res.per_image["img_1"]["pairs"] == []
    ((g, d, iou),) = res.per_image["img_2"]["pairs"]
    assert (g, d) == (0, 0) and iou == pytest.approx(1380 / 2620)
    # the submission's quads
    quads = submitted_predictions(raw, "icdar2015")
    assert sorted(map(tuple, rrc_quad(p1).tolist())) == [(0, 0), (0, 38), (100, 0), (100, 38)]
    assert shoelace(quads["img_2"][0].polygon.astype(np.float64)) >= 4304 - 200  # rounded corners
    official = evaluate(gt, quads, "icdar2015", sweep=True)
    assert official.per_image["img_1"]["pairs"] == [[0, 0, pytest.approx(0.95)]]
    assert official.per_image["img_2"]["pairs"] == []

    papers = papers_figure(gt, raw)
    assert papers["protocol"] == NAME and "as output" in papers["predictions"]
    assert papers["hmean"] == pytest.approx([0.5, 0.5, 0.5, 0, 0, 0, 0])
    assert (papers["best_threshold"], papers["best_hmean"]) == (0.3, 0.5)
    before = official.sweep
    assert before is not None
    assert before["hmean"] == pytest.approx([0.5, 0.5, 0.5, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert (before["best_threshold"], before["best_hmean"]) == (0.6, pytest.approx(2 / 3))


# ------------------------------------------------------------------ rules


def test_dont_care_rule_is_strict_and_absorbs_before_matching() -> None:
    """``ignore_pred``: a detection is don't care when area(det & dc) /
    area(det) > 0.5 (strictly) for some don't-care GT; an ignored
    detection never matches, even a care GT it covers.

    GT: G1 [0, 10]^2 care, DC1 [100, 110] x [0, 10] ###, G2 [200, 210] x
    [0, 10] care, DC2 = the same box ### (a duplicate annotation).
    D0 [100, 120] x [0, 10]: 100 / 200 = 0.5, not > 0.5 -> care (a false
    positive). D1 [100, 118] x [0, 10]: 100 / 180 = 0.556 -> don't care.
    D2 = G1: IoU 1 -> hit. D3 = G2: inside DC2, 100 / 100 = 1 -> don't care,
    so G2 is missed.
    Care GT 2, care dets 2 (D0, D2), hits 1: P 1/2, R 1/2, H 1/2 (with
    >= instead of >, D0 would be don't care: P 1, H 2/3).
    """
    gt = {
        "img_1": gt_of(
            (box(0, 10, 0, 10), False),
            (box(100, 110, 0, 10), True),
            (box(200, 210, 0, 10), False),
            (box(200, 210, 0, 10), True),
        )
    }
    dets = [box(100, 120, 0, 10), box(100, 118, 0, 10), box(0, 10, 0, 10), box(200, 210, 0, 10)]
    res = evaluate(gt, {"img_1": [Prediction(d, 0.9) for d in dets]}, NAME)
    assert (res.precision, res.recall, res.hmean) == (0.5, 0.5, 0.5)
    image = res.per_image["img_1"]
    assert image["det_dont_care"] == [1, 3] and image["gt_dont_care"] == [1, 3]
    assert image["pairs"] == [[0, 2, 1.0]]


def test_matching_in_input_order_first_iou_above_half_wins() -> None:
    """``eval_hmean_iou``: GT in index order, detections in the order given
    (not by score), the first unmatched one with IoU > 0.5 wins; no
    best-IoU search, no optimal assignment.

    G1 [10, 20] x [0, 10], G2 [12, 22] x [0, 10].
    D_a [11, 21] x [0, 10] (score 0.6): IoU with G1 = 90 / 110 = 9/11, with
    G2 = 90 / 110 = 9/11. D_b [8, 18] x [0, 10] (score 0.9): IoU with G1 =
    80 / 120 = 2/3, with G2 = 60 / 140 = 3/7.
    Order (D_a, D_b): G1 takes D_a; G2: D_a taken, D_b 3/7 -> 1 hit: P R H
    1/2. Order (D_b, D_a): G1 takes D_b, G2 takes D_a -> 2 hits, H 1.
    IoU exactly 0.5 is no match: G [0, 10]^2, D [0, 10] x [0, 20]: 100 /
    200 -> P 0, R 0.
    """
    gt = {"img_1": gt_of((box(10, 20, 0, 10), False), (box(12, 22, 0, 10), False))}
    d_a, d_b = Prediction(box(11, 21, 0, 10), 0.6), Prediction(box(8, 18, 0, 10), 0.9)
    first = evaluate(gt, {"img_1": [d_a, d_b]}, NAME)
    assert (first.precision, first.recall, first.hmean) == (0.5, 0.5, 0.5)
    assert first.per_image["img_1"]["pairs"] == [[0, 0, pytest.approx(9 / 11)]]
    second = evaluate(gt, {"img_1": [d_b, d_a]}, NAME)
    assert second.hmean == 1.0
    assert second.per_image["img_1"]["pairs"] == [
        [0, 0, pytest.approx(2 / 3)],
        [1, 1, pytest.approx(9 / 11)],
    ]
    half = evaluate(
        {"img_1": gt_of((box(0, 10, 0, 10), False))},
        {"img_1": [Prediction(box(0, 10, 0, 20), 0.9)]},
        NAME,
    )
    assert (half.precision, half.recall) == (0.0, 0.0)


def test_sweep_picks_the_strictly_best_threshold() -> None:
    """``eval_hmean``: score <= 0.3 dropped first, then score >= thr for
    thr = iter * 0.1 (iter 3..9); the hmean strictly higher than every
    earlier one is kept.

    GT G1 G2 G3; D1 = G1 @0.9, D2 = G2 @0.45, D3 = G3 @0.95, false
    positives F1 @0.55, F2 @0.35, F3 @0.3 (exactly: never kept).
    t 0.3: D1 D2 D3 F1 F2 -> P 3/5, R 1, H 0.75
    t 0.4: D1 D2 D3 F1    -> P 3/4, R 1, H 6/7   <- best
    t 0.5: D1 D3 F1       -> P 2/3, R 2/3, H 2/3
    t 0.6 .. 0.9: D1 D3   -> P 1, R 2/3, H 0.8 (0.9 >= 0.9 keeps D1)
    The headline (mmocr's first filter only) is t 0.3's figure, with F3
    counted as below the minimum score.
    Ties: one GT, one exact detection @1.0: H 1 at every t -> t 0.3.
    """
    gts = gt_of(*[(box(x, x + 10, 0, 10), False) for x in (0, 20, 40)])
    scored = [(0, 0.9), (20, 0.45), (40, 0.95), (60, 0.55), (80, 0.35), (100, 0.3)]
    preds = [Prediction(box(x, x + 10, 0, 10), s) for x, s in scored]
    res = evaluate({"img_1": gts}, {"img_1": preds}, NAME, sweep=True)
    assert res.sweep is not None
    assert res.sweep["hmean"] == pytest.approx([0.75, 6 / 7, 2 / 3, 0.8, 0.8, 0.8, 0.8])
    assert (res.sweep["best_threshold"], res.sweep["best_hmean"]) == (0.4, pytest.approx(6 / 7))
    assert res.sweep["protocol"] == NAME
    assert res.precision == pytest.approx(3 / 5) and res.recall == 1.0
    assert res.extra["num_det_below_min_score"] == 1

    tie = evaluate(
        {"img_1": gt_of((box(0, 10, 0, 10), False))},
        {"img_1": [Prediction(box(0, 10, 0, 10), 1.0)]},
        NAME,
        sweep=True,
    )
    assert tie.sweep is not None and tie.sweep["hmean"] == [1.0] * 7
    assert tie.sweep["best_threshold"] == 0.3


def test_no_care_gt_and_degenerate_gt_follow_mmocr() -> None:
    """``compute_hmean``: no care GT gives R 1 and P 0 with a care detection,
    P 1 without. ``IcdarDataset._parse_ann_info`` leaves out a GT whose
    area is <= 0 or whose bounding box is under 1 px wide or high.

    img_1: GT [0, 0.5] x [0, 10] (area 5, 0.5 px wide: left out) and a
    collinear quad (area 0: left out); one detection elsewhere -> 0 care GT,
    1 care det: R 1, P 0, H 0. Without the rule
    (``drop_degenerate_gt=false``): 2 care GT, nothing matched: R 0, P 0.
    img_2 alone (no GT, no detection): R 1, P 1, H 1.
    """
    thin = box(0, 0.5, 0, 10)
    flat = np.array([[0, 0], [5, 5], [10, 10], [5, 5]], dtype=np.float64)
    gt = {"img_1": gt_of((thin, False), (flat, False))}
    preds = {"img_1": [Prediction(box(50, 60, 0, 10), 0.9)]}
    res = evaluate(gt, preds, NAME)
    assert (res.recall, res.precision, res.hmean) == (1.0, 0.0, 0.0)
    assert res.per_image["img_1"]["gt_dropped"] == [0, 1]
    kept = evaluate(gt, preds, NAME, drop_degenerate_gt=False)
    assert (kept.recall, kept.precision) == (0.0, 0.0) and kept.extra["num_gt_care"] == 2
    empty = evaluate({"img_2": []}, {"img_2": []}, NAME)
    assert (empty.recall, empty.precision, empty.hmean) == (1.0, 1.0, 1.0)


def test_sweep_without_scores_is_one_clear_error() -> None:
    gt = {"img_1": gt_of((box(0, 10, 0, 10), False))}
    with pytest.raises(ProtocolError, match="needs a score for every detection"):
        papers_figure(gt, {"img_1": [Prediction(box(0, 10, 0, 10))]})


# ------------------------------------------------------------------ evaluate --sweep


def test_evaluate_sweep_records_the_papers_figure_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``evaluate --sweep``: the official figure stays the dataset
    protocol's (icdar2015 on the submission); the papers' figure says it
    was scored with mmocr-hmean-iou on the polygons as predicted, in the
    JSON and on the printed line."""
    from tiny_data import THRESHOLD_SPEC, make_ic15_folder

    from tcmbench.cli import main
    from tcmbench.contract import registry as plugins
    from tcmbench.contract.hookspecs import hookimpl
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.hub import checkpoints as hub

    class _Plugin:
        @hookimpl
        def register_detectors(self, register):  # type: ignore[no-untyped-def]
            register(THRESHOLD_SPEC)

    pm = plugins.get_plugin_manager()
    plugin = _Plugin()
    pm.register(plugin, name="tiny-mmocr-iou-plugin")
    try:
        model = pm.hook.build_detector(spec=THRESHOLD_SPEC, config=DetectorConfig())
        ckpt = hub.save_checkpoint(tmp_path / "ckpt", model, THRESHOLD_SPEC, DetectorConfig())
        root = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
        out_json = tmp_path / "r.json"
        args = ["evaluate", "--plugin", "tiny-threshold", "--dataset", "icdar2015"]
        args += ["--data-root", str(root), "--weights", str(ckpt), "--device", "cpu"]
        args += ["--sweep", "--json", str(out_json), "--no-progress", "--no-cache"]
        try:
            main(args)
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
    finally:
        pm.unregister(plugin)
    out = capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["protocol"] == "icdar2015" and doc["hmean"] == 1.0
    assert doc["sweep"]["protocol"] == NAME and doc["sweep"]["best_hmean"] == 1.0
    assert "as output" in doc["sweep"]["predictions"]
    assert f"protocol {NAME} on the polygons as predicted" in out
