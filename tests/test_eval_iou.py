"""The IoU family (icdar2015, msra-td500, totaltext-iou, ctw1500-iou, tiou).

Expected values are worked out by hand from the official rules (see
PROTOCOLS.md), or are the official scripts' published results on the real
files in ../shared/data.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from tcmbench.data.schema import Instance, Prediction, Sample
from tcmbench.errors import ProtocolError
from tcmbench.eval import Result, evaluate
from tcmbench.eval.intersection import intersection_area
from tcmbench.eval.pairs import bbox_overlap_area, candidate_pairs, grouped_pairs
from tcmbench.eval.polygons import pack, shapely_is_valid


def rrc_box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """TL, TR, BR, BL: the order the RRC script accepts ("clockwise" with y down)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def curved_box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The reverse order, which the curved TIoU script requires (not is_ccw)."""
    return rrc_box(x0, y0, x1, y1)[::-1].copy()


def gt(*polys: np.ndarray, dont_care: tuple[int, ...] = ()) -> list[Instance]:
    return [
        Instance(polygon=p, ignore=i in dont_care, text="###" if i in dont_care else "w")
        for i, p in enumerate(polys)
    ]


def dets(*polys: np.ndarray, scores: list[float] | None = None) -> list[Prediction]:
    return [
        Prediction(polygon=p, score=None if scores is None else scores[i])
        for i, p in enumerate(polys)
    ]


def score_one(protocol: str, g: list[Instance], d: list[Prediction] | None, **params) -> Result:
    preds = {} if d is None else {"img_1": d}
    return evaluate({"img_1": g}, preds, protocol, **params)


# --------------------------------------------------------------------------- matching rules


def test_iou_must_exceed_half_strictly() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    tie = score_one("icdar2015", g, dets(rrc_box(0, 0, 10, 20)))  # 100 / 200 = 0.5
    assert tie.extra["num_matched"] == 0 and tie.recall == 0
    above = score_one("icdar2015", g, dets(rrc_box(0, 0, 10, 19)))  # 100 / 190
    assert above.extra["num_matched"] == 1 and above.precision == 1.0 and above.hmean == 1.0


def test_greedy_first_come_first_matched() -> None:
    # GT0 overlaps det0 and det1 (IoU > 0.5), GT1 only det0: the greedy walk
    # gives GT0 det0 and leaves GT1 unmatched (a maximum matching would have 2).
    g = gt(rrc_box(0, 0, 10, 10), rrc_box(0, 1, 10, 11))
    d = dets(rrc_box(0, 0, 10, 10.5), rrc_box(0, 0, 10, 9))
    r = score_one("icdar2015", g, d, validate=False)
    assert r.per_image["img_1"]["pairs"][0][:2] == [0, 0]
    # det1 = [0,10]x[0,9] vs GT1 = [0,10]x[1,11]: 80 / 100 > 0.5, so GT1 takes det1.
    assert r.extra["num_matched"] == 2
    g2 = gt(rrc_box(0, 0, 10, 10), rrc_box(0, 4, 10, 14))
    d2 = dets(rrc_box(0, 2, 10, 12), rrc_box(0, 0, 10, 10))
    # GT0: det0 IoU 80/120 > 0.5 (first) and det1 IoU 1; GT1: det0 80/120, det1 60/140.
    r2 = score_one("icdar2015", g2, d2)
    assert r2.extra["num_matched"] == 1
    assert r2.per_image["img_1"]["pairs"] == [[0, 0, pytest.approx(80 / 120)]]


def test_dont_care_absorbs_detections_over_half_their_area() -> None:
    g = gt(rrc_box(0, 0, 10, 10), rrc_box(100, 100, 110, 110), dont_care=(0,))
    inside = dets(rrc_box(0, 0, 10, 12))  # 100 / 120 of the det inside the ### region
    r = score_one("icdar2015", g, inside)
    assert r.extra["num_det_care"] == 0 and r.precision == 0 and r.recall == 0
    assert r.per_image["img_1"]["det_dont_care"] == [0]
    half = dets(rrc_box(0, 0, 10, 20))  # exactly 0.5: not absorbed (strict)
    r = score_one("icdar2015", g, half)
    assert r.extra["num_det_care"] == 1 and r.precision == 0


def test_per_image_values_without_care_ground_truth() -> None:
    g = gt(rrc_box(0, 0, 10, 10), dont_care=(0,))
    r = score_one("icdar2015", g, dets(rrc_box(50, 50, 60, 60)))
    entry = r.per_image["img_1"]
    assert (entry["recall"], entry["precision"]) == (1.0, 0.0)
    r = score_one("icdar2015", g, dets())
    assert (r.per_image["img_1"]["recall"], r.per_image["img_1"]["precision"]) == (1.0, 1.0)
    # Global figures: zero denominators give 0.
    assert (r.precision, r.recall, r.hmean) == (0, 0, 0)


def test_int_truncation_decides_like_the_rrc_script() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    # As floats: 100 / 208.5 < 0.5. After int(): y in [0, 19] -> 100 / 190 > 0.5.
    d = dets(rrc_box(0, -0.9, 10, 19.95))
    assert score_one("icdar2015", g, d).extra["num_matched"] == 1
    curved = score_one(
        "ctw1500-iou", gt(curved_box(0, 0, 10, 10)), dets(curved_box(0, -0.9, 10, 19.95))
    )
    assert curved.extra["num_matched"] == 0


def test_int32_wraps_like_numpy_int32_assignment() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    far = 2.0**32 + 10  # int32 two's complement: 10
    r = score_one("icdar2015", g, dets(rrc_box(0, 0, far, 10)))
    assert r.extra["num_matched"] == 1 and r.hmean == 1.0


def test_bow_tie_scores_as_polygon3() -> None:
    # Polygon3: area(bow-tie) = 0 (raw shoelace), bow-tie & square = 50 (both
    # lobes) -> IoU = 50 / (0 + 100 - 50) = 1.0. The RRC "clockwise" sum of
    # this bow-tie is 0, so the official script accepts and matches it.
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    r = score_one("icdar2015", gt(rrc_box(0, 0, 10, 10)), dets(bow))
    assert r.extra["num_matched"] == 1
    a = pack([bow])
    b = pack([rrc_box(0, 0, 10, 10)])
    assert a.area[0] == 0.0
    assert intersection_area(a, np.array([0]), b, np.array([0]))[0] == pytest.approx(50.0)


def test_clockwise_validation_rejects_like_the_rrc_script() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    ccw = rrc_box(0, 0, 10, 10)[::-1].copy()
    with pytest.raises(ProtocolError, match="clockwise") as err:
        score_one("icdar2015", g, dets(rrc_box(50, 50, 60, 60), ccw))
    assert err.value.sample_id == "img_1" and err.value.index == 1 and err.value.role == "detection"
    # validate=false scores it (orientation does not change Polygon3 areas).
    assert score_one("icdar2015", g, dets(ccw), validate=False).hmean == 1.0
    with pytest.raises(ProtocolError, match="exactly 4"):
        score_one("icdar2015", g, dets(np.array([[0, 0], [10, 0], [10, 10]], dtype=float)))
    with pytest.raises(ProtocolError, match="ground-truth"):
        score_one("icdar2015", gt(ccw), dets(ccw))


def test_curved_validation_rejects_like_the_curved_script() -> None:
    g = gt(curved_box(0, 0, 10, 10))
    with pytest.raises(ProtocolError, match="is_ccw"):
        score_one("ctw1500-iou", g, dets(rrc_box(0, 0, 10, 10)))
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    with pytest.raises(ProtocolError, match="not a valid polygon"):
        score_one("totaltext-iou", g, dets(bow))
    with pytest.raises(ProtocolError, match="fewer than 3"):
        score_one("totaltext-iou", g, dets(np.array([[0, 0], [5, 5]], dtype=float)))
    assert score_one("ctw1500-iou", g, dets(rrc_box(0, 0, 10, 10)), validate=False).hmean == 1.0


def test_confidences_sort_detections_and_give_ap() -> None:
    g = gt(rrc_box(0, 0, 10, 10), rrc_box(20, 0, 30, 10))
    d = dets(
        rrc_box(50, 50, 60, 60),
        rrc_box(0, 0, 10, 10),
        rrc_box(20, 0, 30, 10),
        scores=[0.9, 0.8, 0.7],
    )
    r = score_one("icdar2015", g, d, confidences=True)
    # ranks: FP, TP, TP -> (1/2 + 2/3) / 2 care GTs
    assert r.ap == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.precision == pytest.approx(2 / 3) and r.recall == 1.0
    assert score_one("icdar2015", g, d).ap is None
    # Sorting decides which of two overlapping detections takes the GT.
    g1 = gt(rrc_box(0, 0, 10, 10))
    d1 = dets(rrc_box(0, 0, 10, 11), rrc_box(0, 0, 10, 10), scores=[0.2, 0.9])
    assert score_one("icdar2015", g1, d1, confidences=True).per_image["img_1"]["pairs"][0][1] == 1
    assert score_one("icdar2015", g1, d1).per_image["img_1"]["pairs"][0][1] == 0
    with pytest.raises(ProtocolError, match="score"):
        score_one("icdar2015", g1, dets(rrc_box(0, 0, 10, 10)), confidences=True)


def test_sweep_is_labelled_and_apart_from_the_official_figure() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    d = dets(rrc_box(0, 0, 10, 10), rrc_box(40, 40, 50, 50), scores=[0.95, 0.35])
    r = score_one("icdar2015", g, d, sweep=True)
    assert r.precision == 0.5 and r.hmean == pytest.approx(2 / 3)  # official: every detection
    s = r.sweep
    assert "not the official" in s["label"]
    assert s["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert s["precision"][0] == 0.5 and s["precision"][1] == 1.0
    assert s["best_threshold"] == 0.4 and s["best_hmean"] == 1.0
    assert s["recall"][-1] == 1.0  # 0.95 survives 0.9000000000000001
    assert r.summary()["hmean"] == r.hmean and r.summary()["sweep"]["best_hmean"] == 1.0
    with pytest.raises(ProtocolError, match="score"):
        score_one("icdar2015", g, dets(rrc_box(0, 0, 10, 10)), sweep=True)


def test_missing_prediction_file_counts_as_no_detections() -> None:
    g = {"img_1": gt(rrc_box(0, 0, 10, 10)), "img_2": gt(rrc_box(0, 0, 10, 10))}
    r = evaluate(g, {"img_1": dets(rrc_box(0, 0, 10, 10))}, "icdar2015")
    assert r.recall == 0.5 and r.precision == 1.0
    assert r.extra["images_without_predictions"] == 1
    assert r.per_image["img_2"]["missing_prediction_file"] is True


def test_prediction_without_ground_truth_stops_like_the_official() -> None:
    g = {"img_1": gt(rrc_box(0, 0, 10, 10))}
    with pytest.raises(ProtocolError, match="not present in GT"):
        evaluate(g, {"img_1": [], "img_7": []}, "icdar2015")


def test_ids_are_matched_across_naming_styles() -> None:
    samples = [
        Sample(id="img_17", image_path=None, width=0, height=0, instances=gt(rrc_box(0, 0, 10, 10)))
    ]
    r = evaluate(samples, {"res_img_17.txt": dets(rrc_box(0, 0, 10, 10))}, "icdar2015")
    assert r.hmean == 1.0
    r = evaluate(
        {"img12": gt(curved_box(0, 0, 10, 10))},
        {"poly_gt_img12": dets(curved_box(0, 0, 10, 10))},
        "totaltext-iou",
    )
    assert r.hmean == 1.0
    r = evaluate(
        {"1001": gt(curved_box(0, 0, 10, 10))},
        {"1001.txt": dets(curved_box(0, 0, 10, 10))},
        "ctw1500-iou",
    )
    assert r.hmean == 1.0


def test_unknown_parameter_is_an_error() -> None:
    with pytest.raises(ProtocolError, match=r"unknown parameter.*iou_thresh"):
        score_one("icdar2015", gt(rrc_box(0, 0, 10, 10)), dets(), iou_thresh=0.6)
    with pytest.raises(ProtocolError, match="rules"):
        score_one("tiou", gt(curved_box(0, 0, 10, 10)), dets(), rules="polygon3")


# --------------------------------------------------------------------------- TIoU


def test_tiou_recall_and_precision_by_hand() -> None:
    g = gt(curved_box(0, 0, 10, 10))
    # det [0,10]x[0,8]: inter 80, union 100; Ct = 20 -> f = 0.8 -> 0.64; Ot = 0 -> 0.8
    r = score_one("ctw1500-iou", g, dets(curved_box(0, 0, 10, 8)))
    assert r.tiou_recall == pytest.approx(0.64) and r.tiou_precision == pytest.approx(0.8)
    assert r.tiou_hmean == pytest.approx(2 * 0.64 * 0.8 / 1.44)
    t = score_one("tiou", g, dets(curved_box(0, 0, 10, 8)))
    assert (t.recall, t.precision) == (pytest.approx(0.64), pytest.approx(0.8))
    assert t.extra["iou05"]["hmean"] == 1.0


def test_tiou_outlier_area_with_overlapping_ground_truth() -> None:
    # G0 = [0,10]x[0,10] matched with D = [0,10]x[0,11] (IoU 100/110). Other GTs
    # meeting D: G1 = [0,10]x[8,20] and G2 = [5,15]x[9,20], overlapping each
    # other and G0. |D & (G1|G2)| = 30, |D & G0 & (G1|G2)| = 20 -> Ot = 10.
    g = gt(curved_box(0, 0, 10, 10), curved_box(0, 8, 10, 20), curved_box(5, 9, 15, 20))
    r = score_one("ctw1500-iou", g, dets(curved_box(0, 0, 10, 11)))
    assert r.extra["num_matched"] == 1
    assert r.tiou_precision == pytest.approx(100 * (1 - 10 / 110) / 110)  # one care det
    assert r.tiou_recall == pytest.approx((100 / 110) / 3)  # Ct = 0; three care GTs
    # Ot counts don't-care GTs too (the official condition tests the matched GT's index).
    g_dc = gt(curved_box(0, 0, 10, 10), curved_box(0, 11, 10, 20), dont_care=(1,))
    r = score_one("ctw1500-iou", g_dc, dets(curved_box(0, 0, 10, 12)))
    assert r.tiou_precision == pytest.approx(100 * (1 - 10 / 120) / 120)


def test_tiou_outlier_area_below_one_percent_and_above() -> None:
    # D = [0,100]x[0,10] (area 1000) matched with G0 = [0,100]x[1,10]: inter
    # 900, union 1000. A triangle G1 whose box covers 5% of D's box but which
    # meets D in 20/3 (0.67% of |D|): f(Ot / |D|) = 1 whatever Ot is (G1 also
    # overlaps G0, so Ot itself would need their overlap).
    g0 = curved_box(0, 1, 100, 10)
    tri = np.array([[90.0, -20.0], [90.0, 4.0], [110.0, -20.0]])  # not is_ccw
    r = score_one("ctw1500-iou", gt(g0, tri), dets(curved_box(0, 0, 100, 10)))
    assert r.extra["num_matched"] == 1
    assert r.tiou_precision == pytest.approx(0.9)
    # G1 = [80,110]x[-20,5]: |D & G1| = 100, |D & G0 & G1| = 80 -> Ot = 20 (2%).
    r = score_one(
        "ctw1500-iou", gt(g0, curved_box(80, -20, 110, 5)), dets(curved_box(0, 0, 100, 10))
    )
    assert r.tiou_precision == pytest.approx(900 * (1 - 20 / 1000) / 1000)
    # G1 = [90,110]x[-20,5]: |D & G1| = 50 (5%), Ot = 50 - 40 = 10: exactly 1%, f = 1.
    r = score_one(
        "ctw1500-iou", gt(g0, curved_box(90, -20, 110, 5)), dets(curved_box(0, 0, 100, 10))
    )
    assert r.tiou_precision == 0.9


def test_tiou_icdar2015_rules() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    r = score_one("tiou", g, dets(rrc_box(0, 0, 10, 8)), rules="icdar2015")
    assert r.params["rules"] == "icdar2015" and r.recall == pytest.approx(0.64)
    r15 = score_one("icdar2015", g, dets(rrc_box(0, 0, 10, 8)), tiou=True)
    assert r15.tiou_recall == pytest.approx(0.64) and r15.hmean == 1.0


def test_non_finite_and_degenerate_polygons_never_match() -> None:
    g = gt(rrc_box(0, 0, 10, 10))
    nan = rrc_box(0, 0, 10, 10)
    nan[1, 0] = np.nan
    line = np.array([[0, 0], [5, 5], [10, 10], [0, 0]], dtype=float)
    r = score_one("msra-td500", g, dets(nan, line, np.array([[1, 1], [2, 2]], dtype=float)))
    assert r.extra["num_matched"] == 0 and r.extra["num_det_care"] == 3 and r.precision == 0
    with pytest.raises(ProtocolError, match="non-finite"):
        score_one("icdar2015", g, dets(nan))


# --------------------------------------------------------------------------- geometry


def test_intersection_kernel_matches_geos_on_degenerate_integer_pairs() -> None:
    import shapely

    rng = np.random.default_rng(3)
    a_pts = rng.integers(0, 5, (3000, 4, 2)).astype(float)
    b_pts = rng.integers(0, 5, (3000, 4, 2)).astype(float)
    b_pts[:600] = a_pts[:600]  # identical polygons: every edge shared
    b_pts[600:1200] = a_pts[600:1200] + rng.integers(-1, 2, (600, 1, 2))  # shifted: collinear edges
    a = pack(list(a_pts))
    b = pack(list(b_pts))
    idx = np.arange(3000)
    got = intersection_area(a, idx, b, idx)
    ga = shapely.make_valid(shapely.polygons(a_pts))
    gb = shapely.make_valid(shapely.polygons(b_pts))
    want = shapely.area(shapely.intersection(ga, gb))
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert a.simple.sum() > 1000  # the kernel did most of the work


def test_intersection_kernel_matches_geos_on_floats_and_near_degenerate() -> None:
    import shapely

    rng = np.random.default_rng(4)
    ang = np.sort(rng.uniform(0, 2 * np.pi, (2000, 9)), axis=1)
    rad = rng.uniform(5, 30, (2000, 9))
    c = rng.uniform(0, 60, (2000, 1, 2))
    a_pts = c + np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1)
    b_pts = a_pts[rng.permutation(2000)] + rng.normal(0, 3, a_pts.shape)
    b_pts[:300] = a_pts[:300] + 1e-13  # near-identical floats: GEOS fallback
    a, b = pack(list(a_pts)), pack(list(b_pts))
    idx = np.arange(2000)
    got = intersection_area(a, idx, b, idx)
    want = shapely.area(
        shapely.intersection(
            shapely.make_valid(shapely.polygons(a_pts)), shapely.make_valid(shapely.polygons(b_pts))
        )
    )
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-7)


def test_candidate_pairs_equal_the_all_pairs_bbox_test() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        a = pack([rng.integers(0, 30, (4, 2)).astype(float) for _ in range(n)])
        b = pack([rng.integers(0, 30, (4, 2)).astype(float) for _ in range(m)])
        ga, gb = np.sort(rng.integers(0, 3, n)), np.sort(rng.integers(0, 3, m))
        ia, ib, bi = candidate_pairs(a, ga, b, gb)
        ra, rb = grouped_pairs(ga, gb)
        live = ~a.void[ra] & ~b.void[rb]
        ra, rb = ra[live], rb[live]
        rbi = bbox_overlap_area(a.bbox[ra], b.bbox[rb])
        keep = rbi > 0
        assert np.array_equal(ia, ra[keep]) and np.array_equal(ib, rb[keep])
        assert np.array_equal(bi, rbi[keep])


def test_simplicity_test_agrees_with_shapely() -> None:
    import shapely

    rng = np.random.default_rng(6)
    polys = [rng.integers(0, 6, (int(rng.integers(3, 9)), 2)).astype(float) for _ in range(1500)]
    batch = pack(polys)
    for i, p in enumerate(polys):
        if batch.simple[i]:
            assert shapely.Polygon(p).is_valid, p
    valid = shapely_is_valid(batch, np.arange(len(polys)))
    want = np.array([len(np.unique(p, axis=0)) >= 3 and shapely.Polygon(p).is_valid for p in polys])
    assert np.array_equal(valid, want)


# --------------------------------------------------------------------------- real data


def _read(gt_rel: str, fmt: str, pred_rel: str, style: str):
    from tcmbench.eval.io import read_ground_truth, read_predictions

    samples, _ = read_ground_truth(shared_file(gt_rel), fmt)
    preds, _ = read_predictions(shared_file(pred_rel), style=style)
    return samples, preds


@pytest.mark.realdata
def test_icdar2015_pixellink_equals_the_rrc_script_exactly() -> None:
    samples, preds = _read(
        "icdar2015/test_gt.zip", "icdar2015", "icdar2015/pixellink_submit.zip", "rrc"
    )
    r = evaluate(samples, preds, "icdar2015")
    assert r.precision == 0.8289345063538612
    assert r.recall == 0.8165623495426095
    assert r.hmean == 0.822701916080524
    assert (r.extra["num_gt_care"], r.extra["num_det"]) == (2077, 2823)


@pytest.mark.realdata
def test_ctw1500_example_equals_the_curved_script() -> None:
    samples, preds = _read("ctw1500/test_gt.zip", "ctw1500", "ctw1500/example_det.zip", "polygon")
    r = evaluate(samples, preds, "ctw1500-iou")
    assert (round(r.recall, 4), round(r.precision, 4), round(r.hmean, 4)) == (
        0.8162,
        0.7497,
        0.7815,
    )
    assert (round(r.tiou_recall, 3), round(r.tiou_precision, 3), round(r.tiou_hmean, 3)) == (
        0.52,
        0.572,
        0.545,
    )
    t = evaluate(samples, preds, "tiou")
    assert (round(t.recall, 3), round(t.precision, 3), round(t.hmean, 3)) == (0.52, 0.572, 0.545)


@pytest.mark.realdata
def test_totaltext_baseline_equals_the_curved_script() -> None:
    samples, preds = _read(
        "totaltext/test_gt.zip", "totaltext", "totaltext/baseline_det.zip", "polygon"
    )
    r = evaluate(samples, preds, "totaltext-iou")
    assert (round(r.recall, 4), round(r.precision, 4), round(r.hmean, 4)) == (
        0.7014,
        0.8038,
        0.7492,
    )
    assert (round(r.tiou_recall, 3), round(r.tiou_precision, 3), round(r.tiou_hmean, 2)) == (
        0.479,
        0.619,
        0.54,
    )
    assert (r.extra["num_gt_care"], r.extra["num_det"]) == (2214, 2098)


@pytest.mark.realdata
def test_msra_td500_gt_files_score_as_their_icdar2015_conversion() -> None:
    from tcmbench.eval.io import read_ground_truth

    native, _ = read_ground_truth(shared_file("msra-td500/test"), "msra-td500")
    converted, _ = read_ground_truth(shared_file("msra-td500/test_gt_ic15.zip"), "icdar2015")
    rng = np.random.default_rng(7)
    preds = {}
    for s in converted:
        preds[s.id] = [
            Prediction(polygon=np.round(i.polygon) + rng.normal(0, 3, (4, 2)))
            for i in s.instances
            if rng.random() < 0.8
        ]
    a = evaluate(native, preds, "msra-td500")
    b = evaluate(converted, preds, "msra-td500")
    assert (a.precision, a.recall, a.extra["num_gt_care"]) == (
        b.precision,
        b.recall,
        b.extra["num_gt_care"],
    )
    assert a.extra["num_gt"] == 651 and a.extra["num_gt"] - a.extra["num_gt_care"] == 69
    assert 0.5 < a.hmean < 1.0


@pytest.mark.realdata
def test_tiou_icdar2015_rules_equal_the_tiou_metric_icdar2015_script() -> None:
    # TIoU-metric's script.py (its ICDAR 2015 version, Polygon3) prints on
    # these files: tiouRecall 0.552, tiouPrecision 0.618, tiouHmean 0.583.
    samples, preds = _read(
        "icdar2015/test_gt.zip", "icdar2015", "icdar2015/pixellink_submit.zip", "rrc"
    )
    r = evaluate(samples, preds, "tiou", rules="icdar2015")
    assert (round(r.recall, 3), round(r.precision, 3), round(r.hmean, 3)) == (0.552, 0.618, 0.583)
    assert r.extra["iou05"]["hmean"] == 0.822701916080524
