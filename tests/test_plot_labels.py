"""Threshold labels on the report's precision-recall plot never collide
(tcmbench.report.plot_labels, through tcmbench.report.plots).

The text boxes are measured as matplotlib lays them out (``Text.
get_window_extent`` with the figure's renderer), on the figure the report
saves.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib", reason="the report extra (matplotlib) is not installed")

from tcmbench.report.curve import Curve
from tcmbench.report.plot_labels import LABEL_GID, format_threshold
from tcmbench.report.plots import pr_curve_figure, pr_curve_png, require_matplotlib

OLD_SWEEP = [round(0.05 * i, 2) for i in range(20)]  # 0.0 .. 0.95


def make_curve(thresholds: list[float], precision: list[float], recall: list[float]) -> Curve:
    hmean = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall)]
    return Curve(list(thresholds), list(precision), list(recall), hmean, [10] * len(thresholds))


def flat_below(start: float, thresholds: list[float]) -> Curve:
    """A detector with its own box threshold ``start``: every point up to it
    is the same (the official figure), then precision rises, recall falls."""
    p = [0.52 + 1.1 * max(0.0, t - start) for t in thresholds]
    r = [0.61 - 1.6 * max(0.0, t - start) ** 1.5 for t in thresholds]
    return make_curve(thresholds, p, r)


def figure_of(curve: Curve) -> Any:
    """The report's figure, official point at the sweep's first point and the
    best-hmean point marked, as build.py draws it."""
    best = int(np.argmax(curve.hmean))
    return pr_curve_figure(
        curve,
        (curve.precision[0], curve.recall[0]),
        (curve.precision[best], curve.recall[best], curve.thresholds[best]),
    )


def labels_of(fig: Any) -> list[Any]:
    return [t for t in fig.axes[0].texts if t.get_gid() == LABEL_GID]


def extents(fig: Any, texts: list[Any]) -> list[Any]:
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def assert_no_collision(fig: Any) -> list[str]:
    """No two threshold labels overlap, none overlaps another text of the
    axes (the iso-hmean labels), the official star or the best-sweep
    diamond, and all lie inside the axes. Returns the label texts."""
    ax = fig.axes[0]
    labels = labels_of(fig)
    boxes = extents(fig, labels)
    for (a, ba), (b, bb) in combinations(zip(labels, boxes), 2):
        assert not ba.overlaps(bb), (a.get_text(), b.get_text())
    others = [t for t in ax.texts if t.get_gid() != LABEL_GID]
    assert others, "the iso-hmean labels are there to collide with"
    for box, other in ((b, o) for b in boxes for o in extents(fig, others)):
        assert not box.overlaps(other)
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    for box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, box
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, box
    markers = [line for line in ax.lines if line.get_marker() in ("*", "D")]
    assert len(markers) == 2
    for line in markers:
        marker = line.get_window_extent(renderer)
        for label, box in zip(labels, boxes):
            assert not box.overlaps(marker), (label.get_text(), line.get_marker())
    return [t.get_text() for t in labels]


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    require_matplotlib().close("all")


def test_coincident_points_below_the_model_threshold_share_one_label() -> None:
    """The defect: a sweep from 0 of a model whose boxes all score >= 0.6
    put "0.0", "0.2", "0.4" and "0.6" on one point, on the star."""
    fig = figure_of(flat_below(0.6, OLD_SWEEP))
    texts = assert_no_collision(fig)
    assert texts[0] == "0.0-0.6"
    assert "0.8" in texts
    assert not {"0.0", "0.2", "0.4", "0.6"} & set(texts)


def test_a_normal_sweep_keeps_every_round_label() -> None:
    """Well-spread points: each multiple of 0.2 gets its own label, none
    merged, none left out, none colliding."""
    p = [0.3 + 0.65 * t for t in OLD_SWEEP]
    r = [0.9 - 0.8 * t**1.2 for t in OLD_SWEEP]
    texts = assert_no_collision(figure_of(make_curve(OLD_SWEEP, p, r)))
    assert texts == ["0.0", "0.2", "0.4", "0.6", "0.8"]


def test_a_sweep_from_the_model_threshold_labels_its_start() -> None:
    """A sweep that starts at the model's box threshold (0.6, steps of
    0.025): the first point is labelled, then every 0.1."""
    ts = [0.6 + 0.025 * i for i in range(16)]
    texts = assert_no_collision(figure_of(flat_below(0.6, ts)))
    assert texts[0] == "0.6"
    assert {"0.7", "0.8", "0.9"} <= set(texts)


def test_points_a_pixel_apart_do_not_pile_up() -> None:
    """Near (not identical) points: a cluster whose points drift by a
    fraction of a pixel is one label, the rest still never overlap."""
    p = [0.70 + 0.0004 * i for i in range(10)] + [0.72 + 0.02 * i for i in range(10)]
    r = [0.50 - 0.0004 * i for i in range(10)] + [0.49 - 0.03 * i for i in range(10)]
    texts = assert_no_collision(figure_of(make_curve(OLD_SWEEP, p, r)))
    assert texts[0] == "0.0-0.45"


@settings(max_examples=8, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1)),
        min_size=20,
        max_size=20,
    ),
    st.integers(0, 19),
)
def test_any_curve_gets_non_colliding_labels(points: list[tuple[float, float]], flat: int) -> None:
    """Random points (a zig-zag no detector makes), the first ``flat`` of
    them identical: still no collision."""
    points = [points[0]] * flat + points[flat:]
    assert_no_collision(
        figure_of(make_curve(OLD_SWEEP, [p for p, _ in points], [r for _, r in points]))
    )


def test_saving_keeps_the_checked_layout() -> None:
    """The labels are placed in pixels: writing the PNG must not lay the
    figure out again (constrained layout would move the axes under them)."""
    import io

    fig = figure_of(flat_below(0.6, OLD_SWEEP))
    ax = fig.axes[0]
    before = [b.bounds for b in extents(fig, labels_of(fig))]
    frame = ax.get_position().bounds
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    assert ax.get_position().bounds == frame
    assert [b.bounds for b in extents(fig, labels_of(fig))] == before
    curve = flat_below(0.6, OLD_SWEEP)
    png = pr_curve_png(curve, (curve.precision[0], curve.recall[0]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_threshold_that_keeps_no_detection_is_not_a_point() -> None:
    """PP-OCRv3 on TD500 at t = 0.975 keeps nothing: precision 0 by the
    protocol's convention. Drawn, it ran the curve down the y axis to (0, 0)."""
    ts = [0.6 + 0.025 * i for i in range(16)]
    curve = flat_below(0.6, ts)
    curve.precision[-1] = curve.recall[-1] = 0.0
    curve.detections[-1] = 0
    fig = figure_of(curve)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("score >= t")]
    xs, ys = line.get_data()
    assert len(xs) == len(ts) - 1 and min(ys) > 0
    assert_no_collision(fig)


@pytest.mark.parametrize(
    ("t", "text"), [(0.0, "0.0"), (0.6, "0.6"), (0.625, "0.625"), (0.95, "0.95"), (1.0, "1.0")]
)
def test_threshold_format(t: float, text: str) -> None:
    assert format_threshold(t) == text
