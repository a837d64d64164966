"""Score labels on ``predict``'s pictures: inside the image, off the text,
off each other (tcmbench.report.label_placement and its drawing).

Geometry is checked with shapely, independently of the placement's own
pixel masks; the drawing is checked on the pixels of real drawn images.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon, box

from tcmbench.cli import main
from tcmbench.data.schema import Prediction
from tcmbench.report.label_placement import Placement, place_labels
from tcmbench.report.visualize import LABEL_TEXT_COLOUR, PRED_COLOUR, draw, score_labels

H, W = 160, 240
LABEL = (30, 12)  # (width, height) of every label in the geometric tests


def rect_poly(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


# Tight boxes: one in the top-left corner, one along the top edge, one in
# the bottom-right corner, a tilted one, and three lines stacked 3 px apart
# (no room for a label between them).
SCENE = [
    rect_poly(0, 0, 50, 14),
    rect_poly(90, 0, 150, 10),
    rect_poly(200, 146, 239, 159),
    np.array([[20, 120], [70, 100], [76, 114], [26, 134]], np.float64),
    rect_poly(80, 50, 170, 62),
    rect_poly(80, 65, 170, 77),
    rect_poly(80, 80, 170, 92),
]


def label_box(p: Placement) -> Polygon:
    # pixels x0 .. x1 - 1 cover the area [x0, x1) x [y0, y1)
    return box(p.x0, p.y0, p.x1, p.y1)


def text_area(poly: np.ndarray, shape: tuple[int, int] = (H, W)) -> Polygon:
    """The part of a polygon inside the image, in the same area coordinates
    (pixel i's centre at i + 0.5): what a label could cover."""
    return Polygon(poly + 0.5).intersection(box(0, 0, shape[1], shape[0]))


def disjoint(a: Placement, b: Placement) -> bool:
    """No pixel in common (touching edges or corners is fine)."""
    return label_box(a).intersection(label_box(b)).area == 0


GAP = 2  # place_labels' default space between a label and any polygon


def assert_inside(p: Placement, shape: tuple[int, int]) -> None:
    h, w = shape
    assert 0 <= p.x0 < p.x1 <= w and 0 <= p.y0 < p.y1 <= h, (p, shape)


def test_labels_in_a_scene_with_room_cover_nothing_and_stay_inside() -> None:
    got = place_labels((H, W), SCENE, [LABEL] * len(SCENE))
    assert len(got) == len(SCENE)
    for p in got:
        assert_inside(p, (H, W))
        assert (p.x1 - p.x0, p.y1 - p.y0) == LABEL, "labels are shifted, never shrunk"
        assert p.free
        for poly in SCENE:
            assert label_box(p).distance(text_area(poly)) >= GAP, (p, poly)
    for a, b in combinations(got, 2):
        assert disjoint(a, b), (a, b)


def test_labels_stay_near_their_box() -> None:
    """Free space far away does not count: each label of the scene lies
    within two label heights of its own polygon."""
    got = place_labels((H, W), SCENE, [LABEL] * len(SCENE))
    for p, poly in zip(got, SCENE):
        assert label_box(p).distance(text_area(poly)) <= 2 * LABEL[1], (p, poly)


def test_label_of_a_box_at_the_top_edge_goes_below_it() -> None:
    """The defect seen on real photos: the label above a box at the top
    edge was cut off by the image border."""
    (p,) = place_labels((H, W), [rect_poly(100, 0, 200, 15)], [LABEL])
    assert p.y0 >= 0 and p.free
    assert label_box(p).distance(box(100, 0, 201, 16)) >= GAP


def test_a_dense_page_falls_back_without_leaving_the_image() -> None:
    """Boxes tile the whole image: no label can be free, yet each is
    placed, whole and inside the image."""
    boxes = [rect_poly(x, y, x + 38, y + 8) for y in range(0, H, 10) for x in range(0, W, 40)]
    got = place_labels((H, W), boxes, [LABEL] * len(boxes))
    assert len(got) == len(boxes)
    assert not any(p.free for p in got)
    for p in got:
        assert_inside(p, (H, W))
        assert (p.x1 - p.x0, p.y1 - p.y0) == LABEL


def test_partly_dense_scene_uses_the_free_space_that_exists() -> None:
    """A full-width paragraph in the middle: the labels go above and below
    it (with a leader line when away from their line), not onto it."""
    lines = [rect_poly(0, y, W - 1, y + 9) for y in range(60, 100, 12)]
    got = place_labels((H, W), lines, [LABEL] * len(lines))
    for p in got:
        assert p.free
        assert_inside(p, (H, W))
        for poly in lines:
            assert label_box(p).distance(text_area(poly)) >= GAP
    for a, b in combinations(got, 2):
        assert disjoint(a, b)
    inner = [p for p, poly in zip(got, lines) if label_box(p).distance(text_area(poly)) > LABEL[1]]
    assert inner and all(p.anchor is not None for p in inner), "far labels get a leader line"


def test_label_larger_than_the_image_is_pinned_to_its_corner() -> None:
    (p,) = place_labels((8, 10), [rect_poly(2, 2, 6, 5)], [(40, 20)])
    assert (p.x0, p.y0) == (0, 0) and not p.free


def test_mismatched_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="2 boxes but 1 label sizes"):
        place_labels((H, W), SCENE[:2], [LABEL])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20, W), st.integers(-20, H), st.integers(1, 90), st.integers(1, 30)),
        min_size=1,
        max_size=14,
    ),
    st.integers(4, 60),
    st.integers(4, 20),
)
def test_any_scene_labels_stay_inside_and_free_means_free(
    rects: list[tuple[int, int, int, int]], lw: int, lh: int
) -> None:
    """Random boxes (some past the border): every label is whole and inside
    the image, and one reported free keeps clear of every polygon and of
    the labels placed before it; two free labels never overlap."""
    boxes = [rect_poly(x, y, x + bw, y + bh) for x, y, bw, bh in rects]
    got = place_labels((H, W), boxes, [(lw, lh)] * len(boxes))
    for i, p in enumerate(got):
        assert_inside(p, (H, W))
        assert (p.x1 - p.x0, p.y1 - p.y0) == (lw, lh)
        if p.free:  # of the polygons, and of the labels placed before it
            for poly in boxes:
                visible = text_area(poly)
                assert visible.is_empty or label_box(p).distance(visible) >= GAP
            assert all(disjoint(p, q) for q in got[:i])
    free = [p for p in got if p.free]
    assert all(disjoint(a, b) for a, b in combinations(free, 2))


# -- the drawing that predict writes ------------------------------------------


def colour_mask(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(image == np.array(colour, np.uint8), axis=-1)


def interiors(shape: tuple[int, int], polygons: list[np.ndarray], margin: int) -> np.ndarray:
    """The polygons' pixels farther than ``margin`` from any drawn outline
    (their own or an overlapping neighbour's)."""
    pts = [np.round(p).astype(np.int32) for p in polygons]
    fill, lines = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    cv2.fillPoly(fill, pts, 1)
    cv2.polylines(lines, pts, True, 1, 2 * margin + 1)
    return (fill > 0) & (lines == 0)


def test_drawn_labels_are_whole_and_off_the_text() -> None:
    """visualize.draw (what predict saves): no pixel of a label's colours
    inside any polygon; each label drawn whole where score_labels put it
    (the one for the box at the top edge included), its digits in white."""
    image = np.full((H, W, 3), 128, np.uint8)
    preds = [Prediction(p, score=0.5 + 0.05 * i) for i, p in enumerate(SCENE)]
    drawn = draw(image, preds, thickness=1)
    inside = interiors((H, W), SCENE, margin=2)
    assert not (colour_mask(drawn, PRED_COLOUR) & inside).any()
    assert not (colour_mask(drawn, LABEL_TEXT_COLOUR) & inside).any()
    labels = score_labels((H, W), preds, [], 1)
    assert [text for text, _ in labels] == [f"{p.score:.2f}" for p in preds]
    for _, at in labels:
        assert_inside(at, (H, W))
        patch = drawn[at.y0 : at.y1, at.x0 : at.x1]
        red = colour_mask(patch, PRED_COLOUR)
        white = np.all(patch >= 200, axis=-1)  # anti-aliased white digits
        edge = np.concatenate([red[0], red[-1], red[:, 0], red[:, -1]])
        assert edge.all(), "the label's box is drawn whole"
        assert white.sum() >= 10, "its digits are drawn"
    for (_, a), (_, b) in combinations(labels, 2):
        assert disjoint(a, b)


def grown(shape: tuple[int, int], polygons: list[np.ndarray], margin: int) -> np.ndarray:
    """The polygons' pixels, grown by ``margin`` (covering the drawn outline)."""
    mask = np.zeros(shape, np.uint8)
    pts = [np.round(p).astype(np.int32) for p in polygons]
    cv2.fillPoly(mask, pts, 1)
    cv2.polylines(mask, pts, True, 1, 2 * margin + 1)
    return mask.astype(bool)


@pytest.mark.realdata
def test_predict_ppocr_labels_leave_the_sign_text_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real defect: PP-OCRv3 on ICDAR 2015 img_10, three stacked lines
    on a sign, the first near the top edge. predict's PNG must add no pixel
    of the label colours inside any detected polygon."""
    model = shared_file("models/ch_PP-OCRv3_det_infer.onnx")
    image = shared_file("icdar2015/test_images_sample/img_10.jpg")
    out = tmp_path / "out"
    args = ["predict", str(image), "--plugin", "onnx", "--weights", str(model)]
    capsys.readouterr()
    try:
        code = main([*args, "--out", str(out), "--no-progress"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert not code, capsys.readouterr().err
    (record,) = json.loads((out / "predictions.json").read_text())["images"]
    polys = [np.array(p["polygon"], np.float64).reshape(-1, 2) for p in record["predictions"]]
    assert len(polys) >= 3
    original = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    drawn = cv2.cvtColor(cv2.imread(str(out / "img_10.png")), cv2.COLOR_BGR2RGB)
    t = max(1, round(max(drawn.shape[:2]) / 500))
    inside = interiors(drawn.shape[:2], polys, margin=t + 1)
    for colour in (PRED_COLOUR, LABEL_TEXT_COLOUR):
        before = (colour_mask(original, colour) & inside).sum()
        assert (colour_mask(drawn, colour) & inside).sum() == before, colour
    labels = colour_mask(drawn, PRED_COLOUR) & ~grown(drawn.shape[:2], polys, margin=t + 2)
    assert labels.sum() > 200 * len(polys), "the labels are drawn, outside the polygons"


def test_a_label_that_cannot_be_attached_is_level_with_its_own_line() -> None:
    """Three lines stacked 3 px apart leave no gap for the middle line's
    label: it goes beside the line, level with it (its own outline is the
    nearest to the label's centre), not level with the line above, and its
    leader ends on its own outline."""
    placements = place_labels((H, W), SCENE, [LABEL] * len(SCENE))
    middle = placements[5]
    assert middle.free and middle.anchor is not None
    centre = np.array([(middle.x0 + middle.x1 - 1) / 2, (middle.y0 + middle.y1 - 1) / 2])

    def distance(poly: np.ndarray) -> float:
        return Polygon(poly).exterior.distance(Point(*centre))

    own = distance(SCENE[5])
    assert all(distance(p) > own for k, p in enumerate(SCENE) if k != 5)
    assert Polygon(SCENE[5]).exterior.distance(Point(*middle.anchor)) <= 1.0
