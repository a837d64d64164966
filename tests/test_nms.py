"""Polygon NMS (tcmbench.models.nms), shared by the detector plugins."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tcmbench.models.nms import polygon_iou, polygon_nms


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def ellipse(cx: float, cy: float, a: float, b: float, n: int = 50) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def naive_nms(polys: list[np.ndarray], scores: np.ndarray, thr: float) -> list[int]:
    """Reference: greedy NMS with one shapely call per pair."""
    geoms = [shapely.make_valid(shapely.Polygon(p)) for p in polys]
    order = sorted(range(len(polys)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            inter = geoms[i].intersection(geoms[j]).area
            union = geoms[i].area + geoms[j].area - inter
            if union > 0 and inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_empty_input_keeps_nothing():
    assert polygon_nms([], [], 0.5).tolist() == []
    assert polygon_nms(np.zeros((0, 4, 2)), np.zeros(0), 0.5).dtype == np.int64


def test_overlapping_lower_score_is_suppressed():
    a, b = rect(0, 0, 10, 10), rect(1, 0, 11, 10)  # IoU 9 / 11
    assert polygon_nms([a, b], [0.6, 0.9], 0.5).tolist() == [1]
    # Threshold above their IoU: both survive, best first.
    assert polygon_nms([a, b], [0.6, 0.9], 0.85).tolist() == [1, 0]


def test_nested_polygon_suppressed_by_iou_not_by_containment():
    big, small = rect(0, 0, 10, 10), rect(2, 2, 6, 6)  # IoU = 16 / 100
    assert polygon_iou(shapely.Polygon(big), np.array([shapely.Polygon(small)]))[0] == 0.16
    assert polygon_nms([big, small], [0.9, 0.8], 0.1).tolist() == [0]
    # Containment alone does not suppress: IoU 0.16 is not above 0.2.
    assert polygon_nms([big, small], [0.9, 0.8], 0.2).tolist() == [0, 1]
    # The small one scoring higher suppresses the big one just the same.
    assert polygon_nms([big, small], [0.8, 0.9], 0.1).tolist() == [1]


def test_disjoint_polygons_all_kept_in_score_order():
    polys = [rect(0, 0, 5, 5), rect(10, 0, 15, 5), rect(0, 10, 5, 15)]
    assert polygon_nms(polys, [0.2, 0.9, 0.5], 0.0).tolist() == [1, 2, 0]


def test_touching_boxes_with_zero_area_overlap_survive_threshold_zero():
    # Bounding boxes meet (shared edge): the pre-filter lets the pair
    # through, the exact IoU is 0, which is not above 0.
    assert polygon_nms([rect(0, 0, 5, 5), rect(5, 0, 10, 5)], [0.9, 0.8], 0.0).tolist() == [0, 1]


def test_self_intersecting_and_degenerate_candidates_do_not_crash():
    bow_tie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    line = np.array([[0, 0], [5, 5], [10, 10]], dtype=np.float64)
    nan = rect(0, 0, 1, 1)
    nan[0, 0] = np.nan
    keep = polygon_nms(
        [bow_tie, rect(0, 0, 10, 10), line, nan, rect(20, 20, 30, 30)],
        [0.9, 0.8, 0.99, 0.99, 0.1],
        0.3,
    )
    # The bow tie (two triangles, area 50) overlaps the square by IoU 0.5.
    assert keep.tolist() == [0, 4]


def test_array_fast_path_matches_list_and_naive_reference():
    rng = np.random.default_rng(3)
    polys = np.stack(
        [
            ellipse(*rng.uniform(0, 60, 2), rng.uniform(5, 25), rng.uniform(3, 10), 24)
            for _ in range(60)
        ]
    )
    scores = rng.random(60)
    for thr in (0.0, 0.1, 0.5):
        fast = polygon_nms(polys, scores, thr).tolist()
        assert fast == polygon_nms(list(polys), scores, thr).tolist()
        assert fast == naive_nms(list(polys), scores, thr)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="2 polygons but 1 scores"):
        polygon_nms([rect(0, 0, 1, 1), rect(0, 0, 2, 2)], [0.5], 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        polygon_nms([rect(0, 0, 1, 1)], [0.5], 1.5)
